"""The step of the model, written once: the phase order over a :class:`Domain`.

A domain is where the kernels run: the whole lattice (:class:`WholeLattice`, the serial :class:`tumorca.Simulation`)
or one rank's block of a lattice split across MPI ranks (:class:`tumorca.parallel.domain.BlockDomain`, behind
:class:`tumorca.parallel.DistributedSimulation`).  Both give the same result bit for bit.  The step below calls
the same kernels in the same order on either; what differs is behind the domain's small interface:

* ``exchange(arrays, width)``: refresh ``width`` halo layers (nothing to do on the whole lattice);
* ``sum_ints(values)``: global sums of integer counts (exact in any order);
* ``gather_sorted(mask, values)``: the values at the owned sites where ``mask`` holds, in global C order, so
  that float sums are taken in the order the serial run takes them;
* the global pieces: ``perfusion_rounds`` (fixed points of the connectivity search and of the pruning rounds),
  ``o2_solve`` (the quasi-steady O2 solve) and ``implicit`` (one backward-Euler axis pass, a pipelined solve
  where the axis is split across ranks).

Kernels place a block by ``geom`` = (origin, global shape, owned box), passed after their other arguments; the
whole lattice passes nothing (the kernels' default is the whole array).
"""
from __future__ import annotations

import numbers
import warnings
from time import perf_counter
from typing import Any, Protocol

import numpy as np

from . import _fields, _neutrophils, _tissue, _vessels, flow
from ._constants import FIELD_NAMES, PERFUSION_REMOVED, Cell, Vessel
from ._lattice import check_threads
from ._numerics import tridiagonal_factors
from .errors import LatticeError
from .o2 import O2Solver, uptake_table
from .params import Params
from .rules import PerfusionRules, StepRules

#: Arrays that make up the state, with their dtypes (fields are float32, one value per site).
#: ``tissue``/``clock``: the tissue layer (:class:`Cell`) and a tumour cell's steps quiescent.
#: ``vessel``/``vclock``: the vessel layer beside it (:class:`Vessel`) and a vessel's steps without flow (stalk)
#: or age (tip); ``perfused`` (1 where a vessel carries flow: an O2 source) and ``inlet`` (fixed inlets).
#: ``neut``/``neut_p``/``neut_age``: the neutrophil layer (presence, polarisation 0 = N1 .. 1 = N2, age in steps).
STATE_ARRAYS: dict[str, np.dtype] = {"tissue": np.dtype(np.uint8), "clock": np.dtype(np.uint16),
                                     "vessel": np.dtype(np.uint8), "vclock": np.dtype(np.uint16),
                                     "perfused": np.dtype(np.uint8), "inlet": np.dtype(np.uint8),
                                     "neut": np.dtype(np.uint8), "neut_p": np.dtype(np.float32),
                                     "neut_age": np.dtype(np.uint16),
                                     **{name: np.dtype(np.float32) for name in FIELD_NAMES}}
#: Slow fields advanced by the implicit diffusion step, with the prefix of their rate constants.
DIFFUSING_FIELDS = ("vegf_free", "mmp9", "cxcl")
_RATE_PREFIX = {"vegf_free": "vegf", "mmp9": "mmp9", "cxcl": "cxcl"}
#: Phases of a step, in order, as timed by ``phase_times``.
PHASES = ("perfusion", "o2", "slow_fields", "endothelium", "tumour", "neutrophils")
#: The step index is the random-number counter's step word: 32 bits.
MAX_STEPS = 2 ** 32


def diffusion_factors(params: Params, rates: dict[str, float], shape3: tuple[int, int, int]) -> dict[str, list]:
    """Tridiagonal factors of every diffusing field along each axis of the whole lattice (a lattice split across
    MPI ranks uses the factors of the whole line too)."""
    dirichlet = params.field_boundary == "dirichlet"
    return {name: [tridiagonal_factors(n, rates[_RATE_PREFIX[name] + "_alpha"], dirichlet and n > 1) for n in shape3]
            for name in DIFFUSING_FIELDS}


def ifn_level(params: Params, time_min: float) -> float:
    """The IFN-beta schedule I(t): ``ifn_level``, or ``ifn_therapy_level`` from ``ifn_therapy_start`` on."""
    if params.ifn_therapy_level > 0 and time_min >= params.ifn_therapy_start:
        return params.ifn_therapy_level
    return params.ifn_level


def halo_widths(params: Params) -> dict[str, int]:
    """Halo layers each phase needs refreshed before it runs on a block, and ``"halo"``, the width to allocate
    (their max).

    Counted from what each pass reads (docs/parallel.md): a site's result at distance r from the block is right
    if every input it reads is right, so each pass that reads neighbours within radius q adds q.

    * ``perfusion``: 1 per pruning round (Moore neighbours); the engine refreshes H layers and runs H rounds
      per exchange, and the searches stay inside the refreshed layers;
    * ``o2``: 1 per colour of a sweep (the von Neumann stencil); the engine refreshes H layers and runs H // 2
      sweeps per exchange;
    * ``endothelium``: D + max(1, e) where e = floor(sprout_exclusion/dx) and D = max(2, e): a site's result
      needs the proposals within D (a tip's move wins or loses at a target next to it by the proposals next to
      that target: 2; a sprout candidate is ranked against candidates within e), and a proposal needs the
      tissue within e (exclusion) or 1 (a tip's move);
    * ``tumour``: 2 (a stroma site gathers its neighbours' division proposals, made from their neighbours); with
      pushing (R = push_range >= 2) 4R: a site's result needs the pushes whose rays reach it (sources within R),
      a push wins or loses against the events claiming a site of its ray (sources within 2R of it), and an event
      is chosen from the tissue along its rays (within R of its source);
    * ``neutrophil_move``: 3 per sub-move (a neutrophil leaves its site if it wins at its target, decided by the
      target's neighbours' proposals, made from their neighbours); one exchange serves floor(halo/3) sub-moves;
    * ``neutrophils``: 2 for the kill pass (a tumour cell gathers its neighbours' kill targets);
    * secretion and diffusion: 0 (per site; diffusion along a split axis is a pipelined solve).
    """
    e = int(params.rates()["exclusion_sites"])
    d = max(2, e)
    push = int(params.push_range)
    w = {"perfusion": 1, "o2": 1, "endothelium": d + max(1, e), "tumour": 4 * push if push >= 2 else 2,
         "neutrophils": 2,
         "neutrophil_move": 3}
    w["halo"] = max(w.values())
    return w


class Domain(Protocol):
    """Where a step runs: the whole lattice or one block of it (see the module docstring)."""

    #: Trailing kernel arguments that place the local array in the lattice: () or (origin, gshape, box).
    geom: tuple
    #: The owned sites of the local arrays (slices).
    owned: tuple[slice, slice, slice]
    #: Halo layers allocated on each side facing another block (0 on the whole lattice).
    halo: int
    #: True on the rank that speaks for the run (warnings).
    is_root: bool

    def exchange(self, arrays: list[np.ndarray], width: int) -> None: ...

    def sum_ints(self, values: np.ndarray) -> np.ndarray: ...

    def gather_sorted(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray: ...

    def perfusion_rounds(self, arrays: dict[str, np.ndarray], scratch: np.ndarray,
                         rules: PerfusionRules, step: int) -> np.ndarray:
        ...

    def o2_solve(self, arrays: dict[str, np.ndarray]) -> tuple[int, float, float]: ...

    def implicit(self, c: np.ndarray, axis: int, factors: tuple[np.ndarray, np.ndarray], alpha: float,
                 gain: float) -> None: ...


class WholeLattice:
    """The :class:`Domain` of a serial run: the local arrays are the lattice, and there is nothing to exchange
    or reduce."""

    geom: tuple = ()
    halo = 0
    is_root = True

    def __init__(self, shape3: tuple[int, int, int], params: Params, rates: dict[str, float], threads: int) -> None:
        self.shape3 = shape3
        self.owned = (slice(None),) * 3
        self.threads = threads
        self.o2 = O2Solver(shape3, params, rates)
        #: the last flow solve: CG iterations and total arterial inflow (0 with perfusion = "loops")
        self.last_flow = {"iterations": 0, "inflow": 0.0}

    def exchange(self, arrays: list[np.ndarray], width: int) -> None:
        return None

    def sum_ints(self, values: np.ndarray) -> np.ndarray:
        return values

    def gather_sorted(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return values[mask]

    def perfusion_rounds(self, arrays: dict[str, np.ndarray], scratch: np.ndarray,
                         rules: PerfusionRules, step: int) -> np.ndarray:
        """Connectivity by one search from the inlets, then what carries flow: the flow solve (``rules.flow``; on
        steps that are multiples of its interval, in between the sites that carried flow and are still
        connected) or synchronous pruning rounds until one prunes nothing; returns the vessel sites (flat
        indices) for ``perfusion_finish``."""
        t, inlet, perf = arrays["vessel"], arrays["inlet"], arrays["perfused"]
        ec = np.flatnonzero(t != Vessel.NONE)
        kept = perf.ravel()[ec] != 0  # the last step's flow, kept between flow solves
        perf.fill(0)
        scratch.fill(0)
        _vessels.perfusion_connect(t, inlet, perf, ec, rules)
        if rules.flow is not None:
            if step % rules.flow.interval == 0:
                kept, self.last_flow = flow.flowing(ec, inlet.ravel()[ec], self.shape3, rules.flow,
                                                    rules.edge_inlets, self.threads)
            else:
                self.last_flow = {"iterations": 0, "inflow": 0.0}  # reported on solve steps only
            perf.ravel()[ec[~kept]] |= PERFUSION_REMOVED
        else:
            while _vessels.perfusion_prune_round(t, inlet, perf, scratch, ec, rules):
                pass
        return ec

    def o2_solve(self, arrays: dict[str, np.ndarray]) -> tuple[int, float, float]:
        return self.o2.solve(arrays, self.threads)

    def implicit(self, c: np.ndarray, axis: int, factors: tuple[np.ndarray, np.ndarray], alpha: float,
                 gain: float) -> None:
        _fields.implicit_axis(c, axis, factors[0], factors[1], alpha, gain, 0.0, self.threads)


class Engine:
    """State, the step and the observables shared by :class:`tumorca.Simulation` and
    :class:`tumorca.parallel.DistributedSimulation`.

    A face sets ``_shape3``, ``_ndim``, ``_params``, ``_seed``, ``_threads`` and a :class:`Domain`, then calls
    :meth:`_init_engine` with the (local) state arrays.
    """

    _shape3: tuple[int, int, int]
    _ndim: int
    _params: Params
    _seed: int
    _threads: int
    _step: int
    _domain: Any

    # -- identity -------------------------------------------------------------------------------------------
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
        self._threads = check_threads(value)
        self._domain.threads = self._threads

    @property
    def step_index(self) -> int:
        """Number of steps taken since the initial condition."""
        return self._step

    @property
    def time_min(self) -> float:
        """Simulated time in minutes."""
        return self._step * self._params.dt_min

    def ifn_level(self, time_min: float | None = None) -> float:
        """IFN-beta level I(t) of the schedule at ``time_min`` (default: the current time); not collective."""
        return ifn_level(self._params, self.time_min if time_min is None else time_min)

    # -- construction ---------------------------------------------------------------------------------------
    def _init_engine(self, step_index: int, arrays: dict[str, np.ndarray]) -> None:
        p = self._params
        self._step = int(step_index)
        self._arrays = {name: np.ascontiguousarray(arrays[name], dtype=dt).copy()
                        for name, dt in STATE_ARRAYS.items()}
        local = self._arrays["tissue"].shape
        # The proposal byte every phase reuses, and one flag byte per row (rows with work for the second pass).
        self._prop = np.zeros(local, dtype=np.uint8)
        self._rowflags = np.zeros(local[0] * local[1], dtype=np.uint8)
        self._rates = p.rates()
        self._widths = halo_widths(p)
        self._uptake = uptake_table(p)
        # Factors of the whole line along each axis (a split axis is solved across ranks).
        self._factors = diffusion_factors(p, self._rates, self._shape3)
        self._identity = tridiagonal_factors(self._shape3[2], 0.0, False)
        self._last_o2 = (0, 0.0, 0.0)
        self._produced = (0.0, 0.0)
        # tumour born, neutrophils recruited, died, tumour killed, vessels regressed without flow, co-opted
        self._events = np.zeros(6, dtype=np.int64)
        self._phase_time = dict.fromkeys(PHASES, 0.0)
        self._warned_o2 = False
        self._last_ifn = self.ifn_level()
        self._o2_sweeps_total = 0
        self._o2_work_total = 0.0
        self._pol_cache: np.ndarray | None = None
        # the rules of the step, one set per IFN-beta level (the level changes at most once per run)
        self._rules: dict[float, StepRules] = {}

    # -- stepping -------------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance ``n`` steps of ``dt_min`` each (collective under MPI)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise LatticeError(f"number of steps must be a non-negative integer, got {n!r}")
        for _ in range(int(n)):
            self._step_once()

    def _step_once(self) -> None:
        """One step in model order (docs/model.md §4): each phase is one or a few kernel calls."""
        p, r, a, nt = self._params, self._rates, self._arrays, self._threads
        d, W, geom = self._domain, self._widths, self._domain.geom
        if self._step >= MAX_STEPS:
            raise LatticeError("step index passed 2**32, the range of the random-number counter")
        ifn = self.ifn_level()
        self._last_ifn = ifn
        rules = self._rules.get(ifn)
        if rules is None:
            rules = self._rules[ifn] = StepRules.from_params(p, ifn)
        seed, step = self._seed, self._step
        t0 = perf_counter()
        # 1. perfusion and vessel remodelling
        ec = d.perfusion_rounds(a, self._prop, rules.perfusion, step)
        regressed = _vessels.perfusion_finish(a["vessel"], a["vclock"], a["inlet"], a["perfused"], a["tissue"],
                                              a["vegf_free"], ec, seed, step, rules.perfusion, *geom)
        t1 = perf_counter()
        # 2a. O2, sources and sinks frozen at the state of this step
        sweeps, res, work = d.o2_solve(a)
        self._last_o2 = (sweeps, res, work)
        self._o2_sweeps_total += sweeps
        self._o2_work_total += work
        if res > p.o2_tol and not self._warned_o2:
            self._warned_o2 = True
            if d.is_root:
                cap = d.o2.cap_name
                warnings.warn(f"O2 solve stopped at its cap ({cap} = {p[cap]}) with {d.o2.measure} {res:.3g} mmHg > "
                              f"o2_tol = {p.o2_tol:g} (step {self._step}); raise {cap} or o2_tol",
                              RuntimeWarning, stacklevel=3)
        t2 = perf_counter()
        # 2b, 2c. secretion (per site) and one implicit step of the slow fields
        p_sum = float(self._polarizations().sum(dtype=np.float64))
        sec = rules.secretion
        self._produced = (p.dt_min * sec.vegf_neut * p_sum, p.dt_min * sec.mmp9_neut * p_sum)
        _fields.secrete(a["tissue"], a["o2"], a["neut"], a["neut_p"], a["vegf_free"], a["vegf_bound"], a["mmp9"],
                        a["cxcl"], sec, nt)
        for name in DIFFUSING_FIELDS:
            pre = _RATE_PREFIX[name]
            fac = self._factors[name]
            # x first (it also applies the decay gain), then y and z; axes of length 1 are the identity
            d.implicit(a[name], 2, fac[2], r[pre + "_alpha"], r[pre + "_gain"])
            for axis in (1, 0):
                if self._shape3[axis] > 1:
                    d.implicit(a[name], axis, fac[axis], r[pre + "_alpha"], 1.0)
        d.implicit(a["vegf_bound"], 2, self._identity, 0.0, r["vegf_bound_gain"])
        t3 = perf_counter()
        # 3. endothelium: sprouting, tip moves, anastomosis (tips resolve before divisions)
        d.exchange([a["vessel"], a["vclock"], a["tissue"], a["perfused"], a["vegf_free"], a["mmp9"]],
                   W["endothelium"])
        _vessels.endothelium_update(a["vessel"], a["vclock"], a["tissue"], a["perfused"], a["vegf_free"], a["mmp9"],
                                    self._prop, self._rowflags, seed, step, rules.endothelium, nt, *geom)
        t4 = perf_counter()
        # 4. tumour cells
        d.exchange([a["tissue"], a["clock"], a["o2"]], W["tumour"])
        born = _tissue.tumor_update(a["tissue"], a["clock"], a["o2"], self._prop, self._rowflags, seed, step,
                                    rules.tumour, nt, *geom)
        t5 = perf_counter()
        # 5. neutrophils: recruitment, death, polarisation, killing, then chemotactic sub-moves; on a block the
        #    layer is right to ``valid`` sites beyond it, 3 fewer after each sub-move
        layer = [a["neut"], a["neut_p"], a["neut_age"]]
        nr = rules.neutrophils
        substeps = nr.substeps
        H, move = d.halo, W["neutrophil_move"]
        valid = min(H, max(W["neutrophils"], move * substeps))
        d.exchange([a["tissue"], a["perfused"], a["cxcl"]] + layer, valid)
        events = _neutrophils.neutrophil_life_kill(
            a["tissue"], a["clock"], a["perfused"], a["cxcl"], a["neut"], a["neut_p"], a["neut_age"], self._prop,
            self._rowflags, seed, step, nr, nt, *geom)
        for k in range(substeps):
            if H and valid < move:
                valid = min(H, move * (substeps - k))
                d.exchange(layer, valid)
            _neutrophils.neutrophil_submove(a["neut"], a["neut_p"], a["neut_age"], a["cxcl"], self._prop,
                                            self._rowflags, seed, step, k, nr, nt, *geom)
            valid -= move
        if substeps > 0:
            _neutrophils.neutrophil_clear(a["neut"], a["neut_p"], a["neut_age"], self._prop, nt)
        # the step's event counts: one reduction (integer sums are exact in any order)
        self._events = d.sum_ints(np.array([born, *events, *regressed], dtype=np.int64))
        t6 = perf_counter()
        for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            self._phase_time[name] += dt
        self._step += 1
        self._pol_cache = None

    # -- reductions -----------------------------------------------------------------------------------------
    def _polarizations(self) -> np.ndarray:
        """neut_p at every neutrophil of the lattice, in global C order (float32), on every rank: float sums
        depend on the order of their terms, so every domain sums exactly this array."""
        if self._pol_cache is None:
            own = self._domain.owned
            a = self._arrays
            self._pol_cache = self._domain.gather_sorted(a["neut"][own] != 0, a["neut_p"][own])
        return self._pol_cache

    # -- observables ----------------------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        """Scalars describing the current state and the last step (the per-step time series of a run file);
        the same bits on every domain (collective under MPI).

        Keys: ``step``, ``time_min``, ``ifn_level`` (the level the last step used); tumour sites ``tumor_p``,
        ``tumor_q``, ``necrotic``, ``tumor_live`` and ``hypoxic_fraction`` (live tumour below ``hypoxia_o2``),
        ``tumor_volume_mm3`` (live and necrotic sites times the site volume ``dx_um**3``; a 2D lattice is a slab
        one site deep); vessels ``vessel_sites`` (stalk + tip), ``tips``, ``perfused_sites``,
        ``perfused_fraction``, ``coopted_vessels`` (vessel sites under tumour tissue, live or necrotic),
        ``perfused_in_tumor`` (perfused ones among them); neutrophils ``neutrophils``, ``neutrophils_n1``
        (p < 0.5), ``neutrophils_n2``, ``mean_polarization``; ``neut_vegf_produced`` and ``neut_mmp9_produced``
        (nM summed over sites, secreted by neutrophils during the last step), ``tumor_born``, ``neut_recruited``,
        ``neut_died``, ``tumor_killed``, ``vessels_regressed`` (without flow) and ``coopted_regressed`` (events
        of the last step); O2 solver ``o2_sweeps`` (SOR sweeps, or multigrid V-cycles) and ``o2_residual`` of
        the last step; flow solve (``perfusion = "flow"``, on the steps that solve, every ``flow_interval``; 0 on
        the steps between and with ``perfusion = "loops"``) ``flow_iterations`` and ``flow_inflow`` (total flow
        into the network through its arterial inlets, mmHg times the conductance of one vessel site).
        """
        a = self._arrays
        own = self._domain.owned
        tis = a["tissue"][own]
        ves = a["vessel"][own]
        perf = a["perfused"][own] != 0
        bc = np.bincount(tis.ravel(), minlength=len(Cell))[:len(Cell)].astype(np.int64)
        vc = np.bincount(ves.ravel(), minlength=len(Vessel))[:len(Vessel)].astype(np.int64)
        live_mask = (tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q)
        tumour_mask = live_mask | (tis == Cell.NECROTIC)
        hypoxic = np.count_nonzero(a["o2"][own][live_mask] < np.float32(self._params.hypoxia_o2))
        coopt = tumour_mask & (ves != Vessel.NONE)
        extra = [hypoxic, np.count_nonzero(perf), np.count_nonzero(coopt), np.count_nonzero(coopt & perf)]
        tot = self._domain.sum_ints(np.concatenate([bc, vc, extra]).astype(np.int64))
        nb, nv = len(Cell), len(Vessel)
        bc, vc = tot[:nb], tot[nb:nb + nv]
        hypoxic, perfused, coopted, perf_tumour = (int(v) for v in tot[nb + nv:])
        live = int(bc[Cell.TUMOR_P] + bc[Cell.TUMOR_Q])
        vessels = int(vc[Vessel.STALK] + vc[Vessel.TIP])
        pol = self._polarizations()
        n_neut = int(pol.size)
        n1 = int(np.count_nonzero(pol < 0.5))
        ev = self._events
        site_mm3 = (self._params.dx_um / 1000.0) ** 3
        return {
            "step": self._step, "time_min": self.time_min, "ifn_level": self._last_ifn,
            "tumor_p": int(bc[Cell.TUMOR_P]), "tumor_q": int(bc[Cell.TUMOR_Q]), "necrotic": int(bc[Cell.NECROTIC]),
            "tumor_live": live, "hypoxic_fraction": hypoxic / live if live else 0.0,
            "tumor_volume_mm3": (live + int(bc[Cell.NECROTIC])) * site_mm3,
            "vessel_sites": vessels, "tips": int(vc[Vessel.TIP]), "perfused_sites": perfused,
            "perfused_fraction": perfused / vessels if vessels else 0.0,
            "coopted_vessels": coopted, "perfused_in_tumor": perf_tumour,
            "neutrophils": n_neut, "neutrophils_n1": n1, "neutrophils_n2": n_neut - n1,
            "mean_polarization": float(pol.astype(np.float64).mean()) if n_neut else 0.0,
            "neut_vegf_produced": self._produced[0], "neut_mmp9_produced": self._produced[1],
            "tumor_born": int(ev[0]), "neut_recruited": int(ev[1]), "neut_died": int(ev[2]),
            "tumor_killed": int(ev[3]), "vessels_regressed": int(ev[4]), "coopted_regressed": int(ev[5]),
            "o2_sweeps": self._last_o2[0], "o2_residual": self._last_o2[1],
            "flow_iterations": int(self._domain.last_flow["iterations"]),
            "flow_inflow": float(self._domain.last_flow["inflow"]),
        }

    @property
    def phase_times(self) -> dict[str, float]:
        """Wall seconds spent in each phase of the step (:data:`PHASES`) since this object was created (this
        rank's, under MPI; not collective)."""
        return dict(self._phase_time)

    @property
    def o2_solver_stats(self) -> dict[str, float]:
        """The last O2 solve: ``sweeps`` (SOR sweeps, or multigrid V-cycles), final Jacobi correction
        ``residual``, ``work`` in lattice-sweep equivalents (a V-cycle counts as its smoothing and residual
        passes on every level, weighted by the level's size), and ``sweeps_total`` and ``work_total`` over this
        object's steps."""
        return {"sweeps": self._last_o2[0], "residual": self._last_o2[1], "work": self._last_o2[2],
                "sweeps_total": self._o2_sweeps_total, "work_total": self._o2_work_total}
