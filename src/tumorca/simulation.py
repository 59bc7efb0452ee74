"""The simulation object: lattice state plus the step that calls the compiled kernels in MODEL.md order."""
from __future__ import annotations

import numbers
import os
import warnings
from time import perf_counter
from typing import Any

import numpy as np

from . import __version__
from . import _fields, _neutrophils, _o2, _tissue, _vessels
from ._constants import FIELD_NAMES, Cell
from ._numerics import MultigridWorkspace, float32_exact, tridiagonal_factors
from .errors import LatticeError, ParameterError, ResourceError
from ._lattice import normalize_shape
from .initial import initial_state
from .params import Params

#: Arrays that make up the state, with their dtypes (fields are float32, one value per site).
#: ``clock`` counts steps in the current condition: quiescent (tumour), cut off from inlets (stalk), age (tip).
#: ``neut``/``neut_p``/``neut_age``: the neutrophil layer (presence, polarisation 0 = N1 .. 1 = N2, age in steps).
STATE_ARRAYS: dict[str, np.dtype] = {"tissue": np.dtype(np.uint8), "clock": np.dtype(np.uint16),
                                     "perfused": np.dtype(np.uint8), "inlet": np.dtype(np.uint8),
                                     "neut": np.dtype(np.uint8), "neut_p": np.dtype(np.float32),
                                     "neut_age": np.dtype(np.uint16),
                                     **{name: np.dtype(np.float32) for name in FIELD_NAMES}}
#: Scratch bytes per site used during a step: the proposal byte every phase reuses.  (Perfusion also holds an
#: 8-byte queue entry per endothelial site, and the kernels small per-row buffers, not counted here.)
SCRATCH_BYTES_PER_SITE = 1
#: Slow fields advanced by the implicit diffusion step, with the prefix of their rate constants.
DIFFUSING_FIELDS = ("vegf_free", "mmp9", "cxcl")
#: Phases of a step, in order, as timed by :attr:`Simulation.phase_times`.
PHASES = ("perfusion", "o2", "slow_fields", "endothelium", "tumour", "neutrophils")
_RATE_PREFIX = {"vegf_free": "vegf", "mmp9": "mmp9", "cxcl": "cxcl"}


def bytes_per_site() -> int:
    """Bytes of state and per-site scratch held per lattice site."""
    return sum(dt.itemsize for dt in STATE_ARRAYS.values()) + SCRATCH_BYTES_PER_SITE


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


#: Upper bound of the multigrid workspace per lattice site (float64 lattice residual, transfer scratch and the
#: coarse levels; measured 29 B/site on 512^2 and 22 B/site on 128^3, docs/o2-solver.md).
MULTIGRID_BYTES_PER_SITE = 32


def solver_bytes_per_site(params: Params | None = None) -> int:
    """Bytes per site the O2 solver allocates besides the state (0 for SOR)."""
    solver = params.o2_solver if params is not None else "multigrid"
    return MULTIGRID_BYTES_PER_SITE if solver == "multigrid" else 0


def check_memory(shape3: tuple[int, int, int], params: Params | None = None) -> int:
    """Estimate the bytes a lattice needs (state, scratch and solver workspace); ResourceError if more than is
    available.  Returns the estimate."""
    nz, ny, nx = shape3
    per_site = bytes_per_site() + solver_bytes_per_site(params)
    need = nz * ny * nx * per_site
    avail = available_memory()
    if avail is not None and need > avail:
        raise ResourceError(f"lattice {nz}x{ny}x{nx} needs {_fmt_bytes(need)} of memory "
                            f"({per_site} B/site) but only {_fmt_bytes(avail)} is available")
    return need


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise LatticeError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if not 0 <= int(seed) < 2 ** 64:
        raise LatticeError(f"seed must be in [0, 2**64), got {seed!r}")
    return int(seed)


def _check_threads(threads: Any) -> int:
    if threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise LatticeError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def uptake_table(params: Params) -> np.ndarray:
    """O2 uptake (1/min) indexed by tissue state, as the O2 kernels read it."""
    table = np.zeros(8, dtype=np.float64)
    table[Cell.EMPTY] = params.o2_uptake_stroma
    table[Cell.TUMOR_P] = table[Cell.TUMOR_Q] = params.o2_uptake_tumor
    table[Cell.NECROTIC] = params.o2_uptake_necrotic
    table[Cell.EC_STALK] = table[Cell.EC_TIP] = params.o2_uptake_endothelium
    return table


def diffusion_factors(params: Params, rates: dict[str, float], shape3: tuple[int, int, int]) -> dict[str, list]:
    """Tridiagonal factors of every diffusing field along each axis of the whole lattice (a lattice split across
    MPI ranks uses the factors of the whole line too)."""
    dirichlet = params.field_boundary == "dirichlet"
    return {name: [tridiagonal_factors(n, rates[_RATE_PREFIX[name] + "_alpha"], dirichlet and n > 1) for n in shape3]
            for name in DIFFUSING_FIELDS}


class _RunProperties:
    """What every simulation object says about itself (the serial :class:`Simulation` and
    :class:`tumorca.parallel.DistributedSimulation`): it holds ``_shape3``, ``_ndim``, ``_params``, ``_seed``,
    ``_threads`` and ``_step``."""

    _shape3: tuple[int, int, int]
    _ndim: int
    _params: Params
    _seed: int
    _threads: int
    _step: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The lattice shape as given: (ny, nx) or (nz, ny, nx)."""
        return self._shape3[1:] if self._ndim == 2 else self._shape3

    @property
    def ndim(self) -> int:
        return self._ndim

    @property
    def params(self) -> Params:
        return self._params

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def threads(self) -> int:
        return self._threads

    @threads.setter
    def threads(self, value: int) -> None:
        self._threads = _check_threads(value)

    @property
    def step_index(self) -> int:
        """Number of steps taken since the initial condition."""
        return self._step

    @property
    def time_min(self) -> float:
        """Simulated time in minutes."""
        return self._step * self._params.dt_min


class Simulation(_RunProperties):
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
        seed = _check_seed(seed)
        threads = _check_threads(threads)
        check_memory(shape3, params)
        self._setup(shape3, len(tuple(shape)), params, seed, threads, 0, initial_state(shape3, params))

    # -- construction ---------------------------------------------------------------------------------------
    def _setup(self, shape3, ndim, params, seed, threads, step_index, arrays) -> None:
        self._shape3 = shape3
        self._ndim = ndim
        self._params = params
        self._seed = seed
        self._threads = threads
        self._step = int(step_index)
        self._arrays = {name: np.ascontiguousarray(arrays[name], dtype=dt).copy()
                        for name, dt in STATE_ARRAYS.items()}
        nz, ny, nx = shape3
        self._prop = np.zeros(shape3, dtype=np.uint8)
        self._rowflags = np.zeros(nz * ny, dtype=np.uint8)
        self._rates = params.rates()
        self._last_o2 = (0, 0.0, 0.0)
        self._produced = (0.0, 0.0)
        self._neut_events = (0, 0, 0)
        self._born = 0
        self._phase_time = dict.fromkeys(PHASES, 0.0)
        self._warned_o2 = False
        self._last_ifn = self.ifn_level()
        self._o2_sweeps_total = 0
        self._o2_work_total = 0.0
        p = params
        self._uptake = uptake_table(p)
        self._factors = diffusion_factors(p, self._rates, shape3)
        self._identity = tridiagonal_factors(nx, 0.0, False)
        # Coarse levels and scratch of the multigrid O2 solve, allocated once for the whole run.
        self._mg = MultigridWorkspace(shape3) if p.o2_solver == "multigrid" else None
        self._mg_cycle_work = (self._mg.plan.cycle_work(p.o2_mg_presmooth, p.o2_mg_postsmooth)
                               if self._mg is not None else 0.0)

    @classmethod
    def from_state(cls, state: dict[str, Any], threads: int | None = None) -> "Simulation":
        """Continue a run from :meth:`get_state`; the continuation equals the uninterrupted run bit for bit.

        Neutrophil polarisation and age at sites without a neutrophil are set to 0 (they carry no meaning).

        Raises LatticeError if the state is incomplete or its arrays do not match its shape.
        """
        if not isinstance(state, dict):
            raise LatticeError(f"state must be a dict from Simulation.get_state(), got {type(state).__name__}")
        missing = [k for k in ("shape", "params", "seed", "step_index", "arrays") if k not in state]
        if missing:
            raise LatticeError(f"state is missing {', '.join(missing)}")
        shape3 = normalize_shape(state["shape"])
        params = state["params"]
        params = params if isinstance(params, Params) else Params.from_dict(params)
        arrays = state["arrays"]
        for name in STATE_ARRAYS:
            if name not in arrays:
                raise LatticeError(f"state is missing the array {name!r}")
            if tuple(np.shape(arrays[name])) not in (shape3, tuple(state["shape"])):
                raise LatticeError(f"state array {name!r} has shape {np.shape(arrays[name])}, expected {shape3}")
        step = state["step_index"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise LatticeError(f"state step_index must be a non-negative integer, got {step!r}")
        sim = cls.__new__(cls)
        sim._setup(shape3, len(tuple(state["shape"])), params, _check_seed(state["seed"]),
                   _check_threads(threads), step, {k: np.reshape(arrays[k], shape3) for k in STATE_ARRAYS})
        # Polarisation and age mean nothing where no neutrophil is; the kernels keep them 0 there.
        empty = sim._arrays["neut"] == 0
        sim._arrays["neut_p"][empty] = 0
        sim._arrays["neut_age"][empty] = 0
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

    # -- stepping -------------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance ``n`` steps of ``dt_min`` each."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise LatticeError(f"number of steps must be a non-negative integer, got {n!r}")
        for _ in range(int(n)):
            self._step_once()

    def _step_once(self) -> None:
        """One step in MODEL.md §4 order; each phase is one kernel call (see docs/model.md)."""
        p, r, a, nt = self._params, self._rates, self._arrays, self._threads
        if self._step >= 2 ** 32:
            raise LatticeError("step index passed 2**32, the range of the random-number counter")
        ifn = self.ifn_level()
        self._last_ifn = ifn
        ir = p.ifn_rates(ifn)
        seed, step = self._seed, self._step
        t0 = perf_counter()
        # 1. perfusion and regression
        _vessels.perfusion(a["tissue"], a["inlet"], a["perfused"], a["clock"], self._prop,
                           p.vessel_inlets == "edge", r["regress_steps"])
        t1 = perf_counter()
        # 2. fields, sources and sinks frozen at the state of this step
        o2_args = (a["o2"], a["tissue"], a["perfused"], self._uptake, r["o2_k"], float32_exact(p.o2_vessel),
                   p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value))
        if self._mg is not None:
            sweeps, res = _o2.o2_solve_multigrid(*o2_args, p.o2_mg_vessel_uptake, p.o2_mg_presmooth,
                                                     p.o2_mg_postsmooth, p.o2_tol, p.o2_mg_max_cycles, self._mg,
                                                     nt)
            work = sweeps * self._mg_cycle_work
        else:
            sweeps, res = _o2.o2_solve(*o2_args, p.o2_omega, p.o2_tol, p.o2_max_sweeps, nt)
            work = float(sweeps)
        self._last_o2 = (sweeps, res, work)
        self._o2_sweeps_total += sweeps
        self._o2_work_total += work
        if res > p.o2_tol and not self._warned_o2:
            self._warned_o2 = True
            cap = "o2_mg_max_cycles" if self._mg is not None else "o2_max_sweeps"
            warnings.warn(f"O2 solve stopped at its cap ({cap} = {p[cap]}) with correction {res:.3g} mmHg > "
                          f"o2_tol = {p.o2_tol:g} (step {self._step}); raise {cap} or o2_tol",
                          RuntimeWarning, stacklevel=3)
        t2 = perf_counter()
        p_sum = float(a["neut_p"][a["neut"] != 0].sum(dtype=np.float64))
        self._produced = (p.dt_min * ir["v_neut"] * p_sum, p.dt_min * ir["m_neut"] * p_sum)
        _fields.secrete(a["tissue"], a["o2"], a["neut"], a["neut_p"], a["vegf_free"], a["vegf_bound"], a["mmp9"],
                        a["cxcl"], p.vegf_tumor_min, p.vegf_tumor_max, p.vegf_hill_o2, p.vegf_hill_n,
                        r["vegf_dt_free"], r["vegf_dt_bound"], p.dt_min, p.cxcl_tumor_live, p.cxcl_tumor_hypoxic,
                        ir["v_neut"], ir["m_neut"], r["krel_dt"], nt)
        for name in DIFFUSING_FIELDS:
            self._diffuse(a[name], self._factors[name], r[_RATE_PREFIX[name] + "_alpha"],
                          r[_RATE_PREFIX[name] + "_gain"])
        _fields.implicit_axis(a["vegf_bound"], 2, *self._identity, 0.0, r["vegf_bound_gain"], 0.0, nt)
        t3 = perf_counter()
        # 3. endothelium: sprouting, tip moves, anastomosis (tips resolve before divisions)
        _vessels.endothelium_update(a["tissue"], a["clock"], a["perfused"], a["vegf_free"], a["mmp9"], self._prop,
                                    self._rowflags, seed, step, r["p_sprout_max"], p.sprout_vegf_half, p.tip_move_min,
                                    p.tip_move_max, p.tip_mmp9_half, p.tip_chemotaxis, p.branch_max,
                                    p.branch_vegf_half, p.tip_fusion_min_age, r["exclusion_sites"], nt)
        t4 = perf_counter()
        # 4. tumour cells
        self._born = _tissue.tumor_update(
            a["tissue"], a["clock"], a["o2"], self._prop, self._rowflags, seed, step, r["p_div_max"],
            p.cycle_o2_low, p.cycle_o2_high, p.quiescence_o2_enter, p.quiescence_o2_exit, r["p_nec_max"],
            p.necrosis_o2_onset, p.necrosis_o2_full, r["q_death_steps"], nt)
        t5 = perf_counter()
        # 5. neutrophils: recruitment, death, polarisation, killing, chemotactic sub-moves
        self._neut_events = _neutrophils.neutrophil_update(
            a["tissue"], a["clock"], a["perfused"], a["cxcl"], a["neut"], a["neut_p"], a["neut_age"], self._prop,
            self._rowflags, seed, step, ir["p_rec"], p.neut_cxcl_half, ir["p_death"], ir["pstar"], r["g_pol"],
            r["p_kill_max"], ir["chi"], p.neut_substeps, nt)
        t6 = perf_counter()
        for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            self._phase_time[name] += dt
        self._step += 1

    def _diffuse(self, c: np.ndarray, factors, alpha: float, gain: float) -> None:
        # x first (it also applies the decay gain), then y and z; axes of length 1 are skipped (identity).
        nt = self._threads
        _fields.implicit_axis(c, 2, *factors[2], alpha, gain, 0.0, nt)
        for axis in (1, 0):
            if c.shape[axis] > 1:
                _fields.implicit_axis(c, axis, *factors[axis], alpha, 1.0, 0.0, nt)

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
    def perfused(self) -> np.ndarray:
        """Read-only view of the O2-source flag of each site (1 where perfused endothelium)."""
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

    def ifn_level(self, time_min: float | None = None) -> float:
        """IFN-beta level I(t) of the schedule at ``time_min`` (default: the current time)."""
        p = self._params
        t = self.time_min if time_min is None else time_min
        if p.ifn_therapy_level > 0 and t >= p.ifn_therapy_start:
            return p.ifn_therapy_level
        return p.ifn_level

    def summary(self) -> dict[str, float]:
        """Scalars describing the current state and the last step (the per-step time series of a run file).

        Keys: ``step``, ``time_min``, ``ifn_level`` (the level the last step used); tumour sites ``tumor_p``, ``tumor_q``, ``necrotic``,
        ``tumor_live`` and ``hypoxic_fraction`` (live tumour below ``hypoxia_o2``); vessels ``vessel_sites``
        (stalk + tip), ``tips``, ``perfused_sites``, ``perfused_fraction``; neutrophils ``neutrophils``,
        ``neutrophils_n1`` (p < 0.5), ``neutrophils_n2``, ``mean_polarization``; ``neut_vegf_produced`` and
        ``neut_mmp9_produced`` (nM summed over sites, secreted by neutrophils during the last step),
        ``tumor_born``, ``neut_recruited``, ``neut_died`` and ``tumor_killed`` (events of the last step); O2 solver
        ``o2_sweeps`` (SOR sweeps, or multigrid V-cycles) and ``o2_residual`` of the last step.
        """
        a = self._arrays
        bc = np.bincount(a["tissue"].ravel(), minlength=len(Cell))
        live_mask = (a["tissue"] == Cell.TUMOR_P) | (a["tissue"] == Cell.TUMOR_Q)
        live = int(bc[Cell.TUMOR_P] + bc[Cell.TUMOR_Q])
        hypoxic = int(np.count_nonzero(a["o2"][live_mask] < np.float32(self._params.hypoxia_o2))) if live else 0
        vessels = int(bc[Cell.EC_STALK] + bc[Cell.EC_TIP])
        perfused = int(np.count_nonzero(a["perfused"]))
        present = a["neut"] != 0
        n_neut = int(np.count_nonzero(present))
        pol = a["neut_p"][present]
        n1 = int(np.count_nonzero(pol < 0.5))
        return {
            "step": self._step, "time_min": self.time_min, "ifn_level": self._last_ifn,
            "tumor_p": int(bc[Cell.TUMOR_P]), "tumor_q": int(bc[Cell.TUMOR_Q]), "necrotic": int(bc[Cell.NECROTIC]),
            "tumor_live": live, "hypoxic_fraction": hypoxic / live if live else 0.0,
            "vessel_sites": vessels, "tips": int(bc[Cell.EC_TIP]), "perfused_sites": perfused,
            "perfused_fraction": perfused / vessels if vessels else 0.0,
            "neutrophils": n_neut, "neutrophils_n1": n1, "neutrophils_n2": n_neut - n1,
            "mean_polarization": float(pol.astype(np.float64).mean()) if n_neut else 0.0,
            "neut_vegf_produced": self._produced[0], "neut_mmp9_produced": self._produced[1],
            "tumor_born": self._born, "neut_recruited": self._neut_events[0], "neut_died": self._neut_events[1],
            "tumor_killed": self._neut_events[2],
            "o2_sweeps": self._last_o2[0], "o2_residual": self._last_o2[1],
        }

    @property
    def phase_times(self) -> dict[str, float]:
        """Wall seconds spent in each phase of the step (:data:`PHASES`) since this object was created."""
        return dict(self._phase_time)

    @property
    def o2_solver_stats(self) -> dict[str, float]:
        """The last O2 solve: ``sweeps`` (SOR sweeps, or multigrid V-cycles), final Jacobi correction
        ``residual``, ``work`` in lattice-sweep equivalents (a V-cycle counts as its smoothing and residual
        passes on every level, weighted by the level's size), and ``sweeps_total`` and ``work_total`` over this
        object's steps."""
        return {"sweeps": self._last_o2[0], "residual": self._last_o2[1], "work": self._last_o2[2],
                "sweeps_total": self._o2_sweeps_total, "work_total": self._o2_work_total}

    def __repr__(self) -> str:
        return (f"Simulation(shape={self.shape}, seed={self._seed}, step_index={self._step}, "
                f"threads={self._threads})")
