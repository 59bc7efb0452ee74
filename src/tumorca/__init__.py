"""tumorca: a lattice cellular automaton of tumour growth, angiogenesis and the IFN-beta/neutrophil axis.

The public face is :class:`Simulation` (the engine), :class:`Params` (every model parameter with its default),
:class:`Cell` (tissue states), :class:`Vessel` (vessel-layer states) and :mod:`tumorca.reference` (the same model in plain NumPy, the executable
specification the compiled kernels are tested against).
"""
import os as _os
from importlib.metadata import PackageNotFoundError, version as _version

# Idle OpenMP threads sleep instead of spinning unless the user chose otherwise.  A step runs hundreds of short
# parallel passes; on a machine whose cores are busy with other jobs, spinning waiters steal the core the
# working thread needs, and 2 threads ran 10-50x slower than 1 (docs/performance.md).  Set before the kernels,
# and with them the OpenMP runtime, are loaded.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

try:
    __version__ = _version("tumorca")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

from ._constants import FIELD_NAMES, Cell, Vessel  # noqa: E402
from .errors import LatticeError, ParameterError, ResourceError, TumorcaError  # noqa: E402
from .params import PARAMETERS, Params  # noqa: E402


def __getattr__(name: str):
    # Simulation (and the compiled kernels it imports) load on first use, so that pure-Python parts -- the
    # parameter table, the run-file reader (tumorca.io), the analysis -- work where the kernels are not built.
    if name == "Simulation":
        from .simulation import Simulation
        return Simulation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Simulation", "Params", "PARAMETERS", "Cell", "Vessel", "FIELD_NAMES", "TumorcaError", "ParameterError",
           "LatticeError", "ResourceError", "__version__"]
