"""tumorca: a lattice cellular automaton of tumour growth, angiogenesis and the IFN-beta/neutrophil axis.

The public face is :class:`Simulation` (the engine), :class:`Params` (every model parameter with its default),
:class:`Cell` (tissue states) and :mod:`tumorca.reference` (the same model in plain NumPy, the executable
specification the compiled kernels are tested against).
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("tumorca")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

from ._constants import FIELD_NAMES, Cell  # noqa: E402
from .errors import LatticeError, ParameterError, ResourceError, TumorcaError  # noqa: E402
from .params import PARAMETERS, Params  # noqa: E402


def __getattr__(name: str):
    # Simulation (and the compiled kernels it imports) load on first use, so that pure-Python parts -- the
    # parameter table, the run-file reader (tumorca.io), the analysis -- work where the kernels are not built.
    if name == "Simulation":
        from .simulation import Simulation
        return Simulation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Simulation", "Params", "PARAMETERS", "Cell", "FIELD_NAMES", "TumorcaError", "ParameterError",
           "LatticeError", "ResourceError", "__version__"]
