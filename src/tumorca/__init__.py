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
from .simulation import Simulation  # noqa: E402

__all__ = ["Simulation", "Params", "PARAMETERS", "Cell", "FIELD_NAMES", "TumorcaError", "ParameterError",
           "LatticeError", "ResourceError", "__version__"]
