"""The serial simulation object: the whole lattice as one :class:`tumorca.engine.Engine` (the step lives there)."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import __version__
from ._constants import FIELD_NAMES, Cell
from .engine import STATE_ARRAYS, Engine, WholeLattice
from .errors import LatticeError, ParameterError, ResourceError
from ._lattice import available_memory, check_seed, check_threads, fmt_bytes, normalize_shape  # noqa: F401
from .initial import initial_state, state_from_arrays
from .params import Params

#: Scratch bytes per site used during a step: the proposal byte every phase reuses.  (Perfusion also holds an
#: 8-byte queue entry per endothelial site, and the kernels small per-row buffers, not counted here.)
SCRATCH_BYTES_PER_SITE = 1


def bytes_per_site() -> int:
    """Bytes of state and per-site scratch held per lattice site."""
    return sum(dt.itemsize for dt in STATE_ARRAYS.values()) + SCRATCH_BYTES_PER_SITE


def solver_bytes_per_site(params: Params | None = None) -> int:
    """Bytes per site the O2 solver allocates besides the state (0 for SOR)."""
    from .o2 import workspace_bytes_per_site
    return workspace_bytes_per_site(params.o2_solver if params is not None else "mgcg")


def check_memory(shape3: tuple[int, int, int], params: Params | None = None) -> int:
    """Estimate the bytes a lattice needs (state, scratch and solver workspace); ResourceError if more than is
    available.  Returns the estimate."""
    nz, ny, nx = shape3
    per_site = bytes_per_site() + solver_bytes_per_site(params)
    need = nz * ny * nx * per_site
    avail = available_memory()
    if avail is not None and need > avail:
        raise ResourceError(f"lattice {nz}x{ny}x{nx} needs {fmt_bytes(need)} of memory "
                            f"({per_site} B/site) but only {fmt_bytes(avail)} is available")
    return need


def check_state(state: Any) -> tuple[int, int, int]:
    """The lattice ``(nz, ny, nx)`` of a state dict from ``get_state()``; LatticeError (one line) if it is not one:
    a missing key or array, an array of another shape, a bad step index."""
    if not isinstance(state, dict):
        raise LatticeError(f"state must be a dict from Simulation.get_state(), got {type(state).__name__}")
    missing = [k for k in ("shape", "params", "seed", "step_index", "arrays") if k not in state]
    if missing:
        raise LatticeError(f"state is missing {', '.join(missing)}")
    shape3 = normalize_shape(state["shape"])
    for name in STATE_ARRAYS:
        if name not in state["arrays"]:
            raise LatticeError(f"state is missing the array {name!r}")
        if tuple(np.shape(state["arrays"][name])) not in (shape3, tuple(state["shape"])):
            raise LatticeError(f"state array {name!r} has shape {np.shape(state['arrays'][name])}, expected {shape3}")
    step = state["step_index"]
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise LatticeError(f"state step_index must be a non-negative integer, got {step!r}")
    return shape3


class Simulation(Engine):
    """A tumour lattice and its fields, advanced step by step by the compiled kernels.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` for 2D or ``(nz, ny, nx)`` for 3D.  2D runs as a 3D lattice one site deep.
    params : Params, optional
        Model parameters (defaults if None).
    seed : int
        Seed in [0, 2**64) of the counter-based generator; equal seeds give bit-identical runs.
    threads : int, optional
        OpenMP threads for the kernels (default: the CPUs this process may use).  The result does not depend
        on it.

    Raises
    ------
    tumorca.errors.TumorcaError
        LatticeError for a bad shape, seed or thread count, ParameterError for bad params, ResourceError if the
        lattice would not fit in memory.

    Examples
    --------
    >>> sim = Simulation((64, 64), seed=1)
    >>> sim.step(10)
    >>> sim.counts()[Cell.TUMOR_P] > 0
    True
    """

    def __init__(self, shape, params: Params | None = None, seed: int = 0, threads: int | None = None) -> None:
        shape3 = normalize_shape(shape)
        if params is None:
            params = Params()
        elif not isinstance(params, Params):
            raise ParameterError(f"params must be a tumorca.Params, got {type(params).__name__}")
        seed = check_seed(seed)
        threads = check_threads(threads)
        check_memory(shape3, params)
        self._setup(shape3, len(tuple(shape)), params, seed, threads, 0, initial_state(shape3, params))

    # -- construction ---------------------------------------------------------------------------------------
    def _setup(self, shape3, ndim, params, seed, threads, step_index, arrays) -> None:
        self._shape3 = shape3
        self._ndim = ndim
        self._params = params
        self._seed = seed
        self._threads = threads
        self._domain = WholeLattice(shape3, params, params.rates(), threads)
        self._init_engine(step_index, arrays)

    @classmethod
    def from_state(cls, state: dict[str, Any], threads: int | None = None) -> "Simulation":
        """Continue a run from :meth:`get_state`; the continuation equals the uninterrupted run bit for bit.

        Neutrophil polarisation and age at sites without a neutrophil are set to 0 (they carry no meaning).

        Raises LatticeError if the state is incomplete or its arrays do not match its shape.
        """
        shape3 = check_state(state)
        params = state["params"]
        params = params if isinstance(params, Params) else Params.from_dict(params)
        arrays, step = state["arrays"], state["step_index"]
        sim = cls.__new__(cls)
        sim._setup(shape3, len(tuple(state["shape"])), params, check_seed(state["seed"]),
                   check_threads(threads), step, {k: np.reshape(arrays[k], shape3) for k in STATE_ARRAYS})
        # Polarisation and age mean nothing where no neutrophil is; the kernels keep them 0 there.
        empty = sim._arrays["neut"] == 0
        sim._arrays["neut_p"][empty] = 0
        sim._arrays["neut_age"][empty] = 0
        return sim

    @classmethod
    def from_arrays(cls, tissue: np.ndarray, vessel: np.ndarray | None = None, *, inlet: np.ndarray | None = None,
                    fields: dict[str, np.ndarray] | None = None, params: Params | None = None, seed: int = 0,
                    threads: int | None = None) -> "Simulation":
        """A simulation at step 0 that starts from given tissue and vessel layers instead of the built-in disk and
        vessels (docs/initial-conditions.md; files are read by :func:`tumorca.io.initial.load_initial`).

        Parameters
        ----------
        tissue : array of int
            :class:`Cell` codes, ``(ny, nx)`` (a 2D lattice) or ``(nz, ny, nx)``; its shape is the lattice's.
        vessel : array of int, optional
            :class:`Vessel` codes of the same shape (default: no vessels, an avascular start).  A vessel may lie
            under tumour tissue (co-opted).
        inlet : array of int, optional
            Inlet codes: 0 none, 1 arterial, 2 venous, only on vessel sites.  Default: derived as for the built-in
            vessels, arterial where a stalk meets a low lattice face and venous at a high face (``perfusion =
            "flow"``), every stalk site (``"loops"``).
        fields : dict of str to array, optional
            Starting values of any of :data:`tumorca.FIELD_NAMES` (finite, >= 0); the others start as in the
            built-in state (``o2`` at ``init_o2``, the rest 0).
        params, seed, threads
            As for :class:`Simulation`.

        Everything not given starts as in the built-in state: clocks 0, every vessel site perfused until the
        first step's perfusion phase, no neutrophils.  Given the built-in initial arrays, the run equals the
        built-in one bit for bit.

        Raises
        ------
        tumorca.errors.LatticeError
            Bad shape, dtype, label, inlet or field value (naming the first bad index), or, with ``perfusion =
            "flow"``, vessels of which no piece joins an arterial inlet to a venous one.
        tumorca.errors.ParameterError
            Bad params or an unknown field name.
        """
        if params is None:
            params = Params()
        elif not isinstance(params, Params):
            raise ParameterError(f"params must be a tumorca.Params, got {type(params).__name__}")
        t = np.asarray(tissue)
        if t.ndim not in (2, 3):
            raise LatticeError(f"tissue must be a 2D (ny, nx) or 3D (nz, ny, nx) array, got {t.ndim} dimensions")
        shape3 = normalize_shape(t.shape)
        seed = check_seed(seed)
        threads = check_threads(threads)
        check_memory(shape3, params)
        arrays = state_from_arrays(shape3, params, t, vessel, inlet, fields)
        sim = cls.__new__(cls)
        sim._setup(shape3, t.ndim, params, seed, threads, 0, arrays)
        return sim

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue the run, as plain Python/NumPy objects (arrays are copies)."""
        return {
            "version": __version__,
            "shape": self.shape,
            "params": self._params.to_dict(),
            "seed": self._seed,
            "step_index": self._step,
            "arrays": {name: a.reshape(self.shape).copy() for name, a in self._arrays.items()},
        }

    # -- observables ----------------------------------------------------------------------------------------
    def _view(self, a: np.ndarray) -> np.ndarray:
        v = a.view()
        v.flags.writeable = False
        return v[0] if self._ndim == 2 else v

    @property
    def tissue(self) -> np.ndarray:
        """Read-only view of the tissue layer (uint8 values of :class:`tumorca.Cell`)."""
        return self._view(self._arrays["tissue"])

    @property
    def vessel(self) -> np.ndarray:
        """Read-only view of the vessel layer (uint8 values of :class:`tumorca.Vessel`), beside the tissue."""
        return self._view(self._arrays["vessel"])

    @property
    def perfused(self) -> np.ndarray:
        """Read-only view of the O2-source flag of each site (1 where a vessel carries flow)."""
        return self._view(self._arrays["perfused"])

    def field(self, name: str) -> np.ndarray:
        """Read-only view of one float32 field: one of ``o2`` (mmHg), ``vegf_free``, ``vegf_bound``, ``mmp9``,
        ``cxcl``.  ``o2`` is the quasi-steady solution the cells saw during the last step."""
        if name not in FIELD_NAMES:
            raise ParameterError(f"unknown field {name!r}; fields are {', '.join(FIELD_NAMES)}")
        return self._view(self._arrays[name])

    def counts(self) -> dict[Cell, int]:
        """Number of sites in each tissue state."""
        bc = np.bincount(self._arrays["tissue"].ravel(), minlength=len(Cell))
        return {c: int(bc[c]) for c in Cell}

    @property
    def neutrophils(self) -> dict[str, np.ndarray]:
        """Read-only views of the neutrophil layer: ``present`` (0/1), ``polarization`` (0 = N1 .. 1 = N2, valid
        where present) and ``age`` (steps since recruitment)."""
        a = self._arrays
        return {"present": self._view(a["neut"]), "polarization": self._view(a["neut_p"]),
                "age": self._view(a["neut_age"])}

    def __repr__(self) -> str:
        return (f"Simulation(shape={self.shape}, seed={self._seed}, step_index={self._step}, "
                f"threads={self._threads})")
