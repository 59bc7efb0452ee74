"""One lattice split across MPI ranks, stepping bit for bit as the serial :class:`tumorca.Simulation`.

Each rank holds its block of every state array plus a halo (:mod:`tumorca.parallel.decomposition`), refreshes
the halo before each phase to that phase's dependency radius (:func:`halo_widths`, docs/parallel.md), and runs
the serial kernels on its local array with the block's global placement, so that random draws and tie-breaks
use global site indices.  Results in the halo are wrong near the rim of the local array and are never used:
only the owned block is kept and the next exchange overwrites the halo.  The global pieces are done as
fixed-point iterations (perfusion), with an Allreduce at the serial stopping test (O2 SOR), as a pipelined
Thomas solve (diffusion along a split axis) and by gathering in global order (float sums of the summary).
"""
from __future__ import annotations

import numbers
import warnings
from time import perf_counter
from typing import Any, Callable

import numpy as np

from .. import __version__
from .. import _fields, _neutrophils, _o2, _tissue, _vessels
from .._constants import Cell
from .._lattice import normalize_shape
from .._numerics import float32_exact, tridiagonal_factors
from ..errors import LatticeError, ParameterError, TumorcaError
from ..initial import initial_state
from ..params import Params
from ..errors import ResourceError
from ..simulation import (DIFFUSING_FIELDS, PHASES, STATE_ARRAYS, _RATE_PREFIX, _check_seed, _check_threads,
                          _fmt_bytes, _RunProperties, available_memory, bytes_per_site, diffusion_factors,
                          uptake_table)
from .decomposition import Decomposition
from .lod import implicit_axis_split


#: Scratch bytes per site of a block besides the serial engine's: the float64 line buffer of a pipelined
#: diffusion pass (8) and the O2 copy kept for a batch of SOR sweeps (4).
PARALLEL_BYTES_PER_SITE = 12


class MPIUnavailableError(TumorcaError):
    """mpi4py (or an MPI library) is not installed."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MPIUnavailableError("mpi4py is not installed: pip install 'tumorca[mpi]'") from exc
    return MPI


def halo_widths(params: Params) -> dict[str, int]:
    """Halo layers each phase needs refreshed before it runs, and ``"halo"``, the width to allocate (their max).

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
    * ``tumour``: 2 (a stroma site gathers its neighbours' division proposals, made from their neighbours);
    * ``neutrophil_move``: 3 per sub-move (a neutrophil leaves its site if it wins at its target, decided by the
      target's neighbours' proposals, made from their neighbours); one exchange serves floor(halo/3) sub-moves;
    * ``neutrophils``: 2 for the kill pass (a tumour cell gathers its neighbours' kill targets);
    * secretion and diffusion: 0 (per site; diffusion along a split axis is a pipelined solve).
    """
    e = int(params.rates()["exclusion_sites"])
    d = max(2, e)
    w = {"perfusion": 1, "o2": 1, "endothelium": d + max(1, e), "tumour": 2, "neutrophils": 2,
         "neutrophil_move": 3}
    w["halo"] = max(w.values())
    return w


def initial_block(shape3: tuple[int, int, int], params: Params,
                  region: tuple[slice, slice, slice]) -> dict[str, np.ndarray]:
    """The arrays of :func:`tumorca.initial.initial_state` restricted to ``region`` (global slices), computed
    without building the whole lattice."""
    return initial_state(shape3, params, region)


def _agree(comm, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on every rank; if it raised a TumorcaError on any rank, raise it on all of them (the message
    of the lowest failing rank, same class), so that no rank goes on into a collective the others left."""
    err = None
    try:
        out = fn()
    except TumorcaError as exc:
        err, out = exc, None
    flags = comm.allgather(None if err is None else (type(err), str(err)))
    for f in flags:
        if f is not None:
            cls, msg = f
            raise (err if err is not None and str(err) == msg else cls(msg))
    return out


class DistributedSimulation(_RunProperties):
    """A tumour lattice split across the ranks of an MPI communicator; the same model as
    :class:`tumorca.Simulation`, and the same result bit for bit for any rank count and block shape.

    Every method is collective (all ranks call it, in the same order) unless its docstring says otherwise.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    params : Params, optional
        Model parameters.  ``o2_solver = "multigrid"`` is refused (serial only).
    seed : int
        Seed of the counter-based generator.
    threads : int, optional
        OpenMP threads per rank.
    comm : mpi4py.MPI.Comm, optional
        Communicator to split the lattice over (default COMM_WORLD).
    ranks_shape : None, "auto", "PzxPyxPx", "PyxPx" or a 3-tuple
        The rank grid; None and "auto" choose the grid with the fewest halo sites
        (:meth:`Decomposition.auto_dims`).

    Raises
    ------
    tumorca.errors.TumorcaError
        On every rank together: MPIUnavailableError without mpi4py; LatticeError for a bad shape, seed, thread
        count or a rank grid that does not fit the lattice; ParameterError for bad params or multigrid;
        ResourceError if a block would not fit in memory.
    """

    # -- construction ---------------------------------------------------------------------------------------
    def __init__(self, shape, params: Params | None = None, seed: int = 0, threads: int | None = None,
                 comm=None, ranks_shape: Any = None) -> None:
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD if comm is None else comm

        def prepare():
            shape3 = normalize_shape(shape)
            p = Params() if params is None else params
            if not isinstance(p, Params):
                raise ParameterError(f"params must be a tumorca.Params, got {type(p).__name__}")
            return shape3, len(tuple(shape)), p, _check_seed(seed), _check_threads(threads)

        shape3, ndim, p, sd, nt = _agree(comm, prepare)
        self._init_common(comm, shape3, ndim, p, sd, nt, ranks_shape)
        arrays = _agree(comm, lambda: self._initial_local())
        self._setup(0, arrays)

    @classmethod
    def from_blocks(cls, meta: dict[str, Any], read_block: Callable[[str, tuple[slice, slice, slice]], np.ndarray],
                    threads: int | None = None, comm=None, ranks_shape: Any = None) -> "DistributedSimulation":
        """Continue a run, each rank reading only its own block (with halo) of the whole-lattice arrays.

        Parameters
        ----------
        meta : dict
            ``shape``, ``params``, ``seed`` and ``step_index`` as in :meth:`tumorca.Simulation.get_state`.
        read_block : callable
            ``read_block(name, (zslice, yslice, xslice))`` returns that region (global 3D slices) of the
            whole-lattice array ``name`` of :data:`tumorca.simulation.STATE_ARRAYS`, whichever rank count wrote
            it.  This is how a checkpoint written by P ranks continues on Q ranks.

        The continuation equals the uninterrupted (serial) run bit for bit.
        """
        MPI = _import_mpi()
        comm = MPI.COMM_WORLD if comm is None else comm

        def prepare():
            if not isinstance(meta, dict):
                raise LatticeError(f"meta must be a dict, got {type(meta).__name__}")
            missing = [k for k in ("shape", "params", "seed", "step_index") if k not in meta]
            if missing:
                raise LatticeError(f"state is missing {', '.join(missing)}")
            shape3 = normalize_shape(meta["shape"])
            p = meta["params"]
            p = p if isinstance(p, Params) else Params.from_dict(p)
            step = meta["step_index"]
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
                raise LatticeError(f"state step_index must be a non-negative integer, got {step!r}")
            return shape3, len(tuple(meta["shape"])), p, _check_seed(meta["seed"]), _check_threads(threads), \
                int(step)

        shape3, ndim, p, sd, nt, step = _agree(comm, prepare)
        sim = cls.__new__(cls)
        sim._init_common(comm, shape3, ndim, p, sd, nt, ranks_shape)

        def read():
            region = sim._dec.local
            want = sim._dec.local_shape
            out = {}
            for name, dt in STATE_ARRAYS.items():
                blk = np.asarray(read_block(name, region))
                if blk.shape != want:
                    blk = blk.reshape(want) if blk.size == int(np.prod(want)) else None
                if blk is None:
                    raise LatticeError(f"block of state array {name!r} for region {region} has the wrong shape")
                out[name] = np.ascontiguousarray(blk, dtype=dt)
            return out

        arrays = _agree(comm, read)
        sim._setup(step, arrays)
        # Polarisation and age mean nothing where no neutrophil is (as Simulation.from_state).
        a = sim._arrays
        empty = a["neut"] == 0
        a["neut_p"][empty] = 0
        a["neut_age"][empty] = 0
        return sim

    def _init_common(self, comm, shape3, ndim, params, seed, threads, ranks_shape) -> None:
        MPI = _import_mpi()
        self._shape3, self._ndim, self._params, self._seed, self._threads = shape3, ndim, params, seed, threads
        self._widths = halo_widths(params)
        halo = self._widths["halo"]

        def grid():
            if params.o2_solver == "multigrid":
                raise ParameterError('o2_solver = "multigrid" is serial-only; use "sor"')
            return Decomposition.choose_dims(shape3, comm.Get_size(), ranks_shape, halo)

        dims = _agree(comm, grid)
        # reorder=False: rank r of the grid is rank r of ``comm``, in C order of the coordinates (as blocks()).
        self._cart = comm.Create_cart(list(dims), periods=[False, False, False], reorder=False)
        self._comm = comm
        coords = tuple(self._cart.Get_coords(self._cart.Get_rank()))
        self._dec = Decomposition(shape3, dims, coords, halo=halo, size=comm.Get_size())
        try:
            _agree(comm, lambda: self._check_node_memory(MPI))
        except BaseException:
            self.close()  # every rank raised together: free the communicator on all of them
            raise
        from .halo import HaloExchanger
        self._halo = HaloExchanger(self._cart, self._dec)
        self._mpi = MPI

    def _check_node_memory(self, MPI) -> None:
        """ResourceError if the blocks (with halo and the engine's scratch) of all ranks sharing this node's
        memory need more than is available here (the serial check, counted per node, not per rank)."""
        need = int(np.prod(self._dec.local_shape)) * (bytes_per_site() + PARALLEL_BYTES_PER_SITE)
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            total, ranks = node.allreduce(need), node.Get_size()
        finally:
            node.Free()
        avail = available_memory()
        if avail is not None and total > avail:
            raise ResourceError(f"the blocks of the {ranks} ranks on this node need {_fmt_bytes(total)} of memory "
                                f"({bytes_per_site() + PARALLEL_BYTES_PER_SITE} B/site with halo) but only "
                                f"{_fmt_bytes(avail)} is available; use more nodes")

    def _initial_local(self) -> dict[str, np.ndarray]:
        return initial_block(self._shape3, self._params, self._dec.local)

    def _setup(self, step_index: int, arrays: dict[str, np.ndarray]) -> None:
        p = self._params
        dec = self._dec
        self._step = int(step_index)
        self._arrays = {name: np.ascontiguousarray(arrays[name], dtype=dt).copy()
                        for name, dt in STATE_ARRAYS.items()}
        lz, ly, lx = dec.local_shape
        self._prop = np.zeros(dec.local_shape, dtype=np.uint8)
        self._rowflags = np.zeros(lz * ly, dtype=np.uint8)
        self._rates = p.rates()
        self._last_o2 = (0, 0.0, 0.0)
        self._produced = (0.0, 0.0)
        self._events = np.zeros(4, dtype=np.int64)  # tumor_born, neut recruited, died, killed (global)
        self._phase_time = dict.fromkeys(PHASES, 0.0)
        self._halo_time0 = self._halo.seconds
        self._warned_o2 = False
        self._last_ifn = self.ifn_level()
        self._o2_sweeps_total = 0
        self._o2_work_total = 0.0
        self._pol_cache = None
        self._uptake = uptake_table(p)
        # Factors of the whole global line along each axis (a split axis is solved across ranks).
        self._factors = diffusion_factors(p, self._rates, self._shape3)
        self._identity = tridiagonal_factors(self._shape3[2], 0.0, False)
        self._geom = (dec.origin, self._shape3, dec.box)
        self._axis_nb = tuple(self._cart.Shift(a, 1) for a in range(3))
        self._dirichlet_o2 = tuple(p.o2_boundary == "dirichlet" and n > 1 for n in self._shape3)
        # The inlet layer never changes: one full exchange makes its halo right for the whole run (it arrives
        # right from initial_block or read_block already; this also covers a read_block that leaves it stale).
        self._halo.exchange([self._arrays["inlet"]], dec.halo)

    # -- stepping -------------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Advance ``n`` steps (collective)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise LatticeError(f"number of steps must be a non-negative integer, got {n!r}")
        for _ in range(int(n)):
            self._step_once()

    def _step_once(self) -> None:
        p, r, a, nt = self._params, self._rates, self._arrays, self._threads
        if self._step >= 2 ** 32:
            raise LatticeError("step index passed 2**32, the range of the random-number counter")
        X, W = self._halo, self._widths
        origin, gshape, box = self._geom
        ifn = self.ifn_level()
        self._last_ifn = ifn
        ir = p.ifn_rates(ifn)
        seed, step = self._seed, self._step
        t0 = perf_counter()
        # 1. perfusion and regression
        self._perfusion()
        t1 = perf_counter()
        # 2a. O2
        sweeps, res = self._o2_solve()
        work = float(sweeps)
        self._last_o2 = (sweeps, res, work)
        self._o2_sweeps_total += sweeps
        self._o2_work_total += work
        if res > p.o2_tol and not self._warned_o2:
            self._warned_o2 = True
            if self.rank == 0:
                warnings.warn(f"O2 solve stopped at its cap (o2_max_sweeps = {p.o2_max_sweeps}) with correction "
                              f"{res:.3g} mmHg > o2_tol = {p.o2_tol:g} (step {self._step}); raise o2_max_sweeps "
                              f"or o2_tol", RuntimeWarning, stacklevel=3)
        t2 = perf_counter()
        # 2b, 2c. secretion (per site: the whole local array) and diffusion
        p_sum = float(self._polarizations().sum(dtype=np.float64))
        self._produced = (p.dt_min * ir["v_neut"] * p_sum, p.dt_min * ir["m_neut"] * p_sum)
        _fields.secrete(a["tissue"], a["o2"], a["neut"], a["neut_p"], a["vegf_free"], a["vegf_bound"], a["mmp9"],
                        a["cxcl"], p.vegf_tumor_min, p.vegf_tumor_max, p.vegf_hill_o2, p.vegf_hill_n,
                        r["vegf_dt_free"], r["vegf_dt_bound"], p.dt_min, p.cxcl_tumor_live, p.cxcl_tumor_hypoxic,
                        ir["v_neut"], ir["m_neut"], r["krel_dt"], nt)
        for name in DIFFUSING_FIELDS:
            pre = _RATE_PREFIX[name]
            fac = self._factors[name]
            self._implicit(a[name], 2, fac[2], r[pre + "_alpha"], r[pre + "_gain"])
            for axis in (1, 0):
                if self._shape3[axis] > 1:
                    self._implicit(a[name], axis, fac[axis], r[pre + "_alpha"], 1.0)
        self._implicit(a["vegf_bound"], 2, self._identity, 0.0, r["vegf_bound_gain"])
        t3 = perf_counter()
        # 3. endothelium
        X.exchange([a["tissue"], a["clock"], a["perfused"], a["vegf_free"], a["mmp9"]], W["endothelium"])
        _vessels.endothelium_update(a["tissue"], a["clock"], a["perfused"], a["vegf_free"], a["mmp9"], self._prop,
                                    self._rowflags, seed, step, r["p_sprout_max"], p.sprout_vegf_half, p.tip_move_min,
                                    p.tip_move_max, p.tip_mmp9_half, p.tip_chemotaxis, p.branch_max,
                                    p.branch_vegf_half, p.tip_fusion_min_age, r["exclusion_sites"], nt,
                                    origin, gshape, box)
        t4 = perf_counter()
        # 4. tumour
        X.exchange([a["tissue"], a["clock"], a["o2"]], W["tumour"])
        born = _tissue.tumor_update(
            a["tissue"], a["clock"], a["o2"], self._prop, self._rowflags, seed, step, r["p_div_max"],
            p.cycle_o2_low, p.cycle_o2_high, p.quiescence_o2_enter, p.quiescence_o2_exit, r["p_nec_max"],
            p.necrosis_o2_onset, p.necrosis_o2_full, r["q_death_steps"], nt, origin, gshape, box)
        t5 = perf_counter()
        # 5. neutrophils; the neutrophil layer is good to ``valid`` sites beyond the block, 3 fewer per sub-move
        layer = [a["neut"], a["neut_p"], a["neut_age"]]
        substeps = p.neut_substeps
        width = min(W["halo"], max(W["neutrophils"], W["neutrophil_move"] * substeps))
        X.exchange([a["tissue"], a["perfused"], a["cxcl"]] + layer, width)
        valid = width
        events = _neutrophils.neutrophil_life_kill(
            a["tissue"], a["clock"], a["perfused"], a["cxcl"], a["neut"], a["neut_p"], a["neut_age"], self._prop,
            self._rowflags, seed, step, ir["p_rec"], p.neut_cxcl_half, ir["p_death"], ir["pstar"], r["g_pol"],
            r["p_kill_max"], nt, origin, gshape, box)
        move = W["neutrophil_move"]
        for k in range(substeps):
            if valid < move:
                valid = min(W["halo"], move * (substeps - k))
                X.exchange(layer, valid)
            _neutrophils.neutrophil_submove(a["neut"], a["neut_p"], a["neut_age"], a["cxcl"], self._prop,
                                            self._rowflags, seed, step, k, ir["chi"], nt, origin, gshape, box)
            valid -= move
        if substeps > 0:
            _neutrophils.neutrophil_clear(a["neut"], a["neut_p"], a["neut_age"], self._prop, nt)
        # the step's event counts: one reduction (integer sums are exact in any order)
        local = np.array([born, *events], dtype=np.int64)
        self._cart.Allreduce(local, self._events, op=self._mpi.SUM)
        t6 = perf_counter()
        for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            self._phase_time[name] += dt
        self._step += 1
        self._pol_cache = None

    def _allsum(self, value: int) -> int:
        buf = np.array([value], dtype=np.int64)
        out = np.empty(1, dtype=np.int64)
        self._cart.Allreduce(buf, out, op=self._mpi.SUM)
        return int(out[0])

    def _region(self, margin: int) -> tuple[tuple[int, int], ...]:
        """The block plus ``margin`` halo layers on each side that has a halo, in local indices."""
        return tuple((lo - h[0], hi + h[1]) for (lo, hi), h in zip(self._dec.box, self._dec.halo_sides(margin)))

    def _perfusion(self) -> None:
        """Phase 1 as fixed-point iterations over the ranks (see ``_vessels.perfusion_connect``).

        Tissue is refreshed over the whole halo (width H) once; the searches stay inside that region (tissue
        farther out is not exact, and a path through it could connect what is not connected), and pruning runs
        in batches of H rounds per exchange of the flags: round j of a batch is exact up to H - j layers out, so
        the block's own sites are exact for the whole batch (communication-avoiding; the result is the same).
        """
        a, X, r, p = self._arrays, self._halo, self._rates, self._params
        origin, gshape, box = self._geom
        H = self._dec.halo
        X.exchange([a["tissue"]], H)
        a["perfused"].fill(0)
        self._prop.fill(0)
        t = a["tissue"]
        search = self._region(H)
        region = tuple(slice(lo, hi) for lo, hi in search)
        sub = t[region]
        zz, yy, xx = np.nonzero((sub == Cell.EC_STALK) | (sub == Cell.EC_TIP))
        _, ly, lx = t.shape
        ec = (((zz + search[0][0]) * ly + (yy + search[1][0])) * lx + (xx + search[2][0])).astype(np.int64)
        edge = p.vessel_inlets == "edge"
        # connectivity: search, exchange the marks, search again from the neighbours' marks, until no new
        # owned site is marked anywhere (marks only grow, so an unchanged global count means nothing changed)
        last = -1
        while True:
            n = self._allsum(_vessels.perfusion_connect(t, a["inlet"], a["perfused"], ec, edge, origin, gshape,
                                                        box, search))
            if n == last:
                break
            last = n
            X.exchange([a["perfused"]], H)
        # pruning: synchronous rounds, each judged on the state the last one left everywhere.  The first batch
        # needs no exchange: nothing is removed yet, and removal flags are all a round reads besides tissue.
        counts = np.zeros(H, dtype=np.int64)
        total = np.zeros(H, dtype=np.int64)
        while True:
            for j in range(H):
                counts[j] = _vessels.perfusion_prune_round(t, a["inlet"], a["perfused"], self._prop, ec, edge,
                                                           origin, gshape, box)
            self._cart.Allreduce(counts, total, op=self._mpi.SUM)
            # a round that pruned nothing anywhere is the fixed point: later rounds of the batch changed nothing
            if (total == 0).any():
                break
            X.exchange([a["perfused"]], H)
        _vessels.perfusion_finish(t, a["perfused"], a["clock"], ec, r["regress_steps"])

    def _o2_solve(self) -> tuple[int, float]:
        """Red-black SOR, bit-identical to the serial ``_o2.o2_solve``, with few messages.

        After an exchange of H halo layers, b = H // 2 sweeps can run without another: half-sweep j also updates
        the H - j halo layers whose inputs are still exact (the same values the neighbour computes).  The
        stopping test is the serial one, on the global max of each sweep's largest correction over owned sites
        (Allreduce MAX, exact), done once per batch for its b sweeps; if it stops the solve at sweep k < b, the
        batch is redone from a copy for k sweeps only, so the result and the sweep count are the serial ones.
        """
        p, r, a, X = self._params, self._rates, self._arrays, self._halo
        origin, _, box = self._geom
        c, tis, src = a["o2"], a["tissue"], a["perfused"]
        H = self._dec.halo
        X.exchange([tis, src, c], H)
        _o2.o2_hold_sources(c, src, float32_exact(p.o2_vessel), self._threads)
        dz, dy, dx = self._dirichlet_o2
        edge = float32_exact(p.o2_boundary_value)
        MPI = self._mpi
        nt = self._threads
        per = max(1, H // 2)
        regions = [self._region(m) for m in range(2 * per)]
        snapshot = np.empty_like(c)
        loc = np.zeros(per, dtype=np.float64)
        glob = np.zeros(per, dtype=np.float64)

        def sweeps_from(b: int) -> None:
            # b sweeps after an exchange of at least 2b layers; half-sweep j updates 2b - 1 - j halo layers
            for s in range(b):
                red = _o2.o2_sor_half_sweep(c, tis, src, self._uptake, r["o2_k"], dz, dy, dx, edge,
                                                p.o2_omega, 0, origin, regions[2 * b - 1 - 2 * s], box, nt)
                black = _o2.o2_sor_half_sweep(c, tis, src, self._uptake, r["o2_k"], dz, dy, dx, edge,
                                                  p.o2_omega, 1, origin, regions[2 * b - 2 - 2 * s], box, nt)
                loc[s] = red if red > black else black

        done = 0
        rmax = 0.0
        first = True
        while done < p.o2_max_sweeps:
            if not first:
                X.exchange([c], H)
            first = False
            b = min(per, p.o2_max_sweeps - done)
            np.copyto(snapshot, c)
            loc[:] = 0.0
            sweeps_from(b)
            self._cart.Allreduce(loc, glob, op=MPI.MAX)
            hit = np.flatnonzero(glob[:b] <= p.o2_tol)
            if hit.size:
                k = int(hit[0]) + 1
                if k < b:
                    np.copyto(c, snapshot)
                    sweeps_from(k)
                done += k
                rmax = float(glob[k - 1])
                break
            done += b
            rmax = float(glob[b - 1])
        return done, rmax

    def _implicit(self, c: np.ndarray, axis: int, factors, alpha: float, gain: float) -> None:
        """One backward-Euler axis pass: the serial kernel on the local array where the axis is not split (its
        lines are whole; lines through the halo are computed and discarded), the pipelined solve where it is."""
        dec = self._dec
        if dec.dims[axis] == 1:
            _fields.implicit_axis(c, axis, factors[0], factors[1], alpha, gain, 0.0, self._threads)
            return
        low, high = self._axis_nb[axis]
        # Pipelining pays only when a chunk of lines is big enough to hide a message's latency.
        bs = dec.block_shape
        lines = bs[0] * bs[1] * bs[2] // bs[axis]
        chunks = min(dec.dims[axis], max(1, lines // 4096))
        implicit_axis_split(c, axis, factors[0], factors[1], alpha, gain, 0.0, dec.box_slices,
                            dec.owned[axis].start, self._cart, low, high, chunks=chunks)

    # -- reductions -----------------------------------------------------------------------------------------
    def _polarizations(self) -> np.ndarray:
        """neut_p at every neutrophil of the lattice, in global C order (float32), on every rank.

        Float sums depend on the order of their terms (NumPy sums pairwise), so the values are gathered with
        their global site indices and sorted: the serial code sums exactly this array.
        """
        if self._pol_cache is not None:
            return self._pol_cache
        dec = self._dec
        a = self._arrays
        bs = dec.box_slices
        present = a["neut"][bs] != 0
        zz, yy, xx = np.nonzero(present)
        o = [s.start for s in dec.owned]
        _, gny, gnx = self._shape3
        idx = ((zz + o[0]) * gny + (yy + o[1])) * gnx + (xx + o[2])
        vals = a["neut_p"][bs][present]
        parts = self._cart.allgather((idx.astype(np.int64), vals))
        allidx = np.concatenate([q[0] for q in parts])
        allval = np.concatenate([q[1] for q in parts]).astype(np.float32, copy=False)
        self._pol_cache = allval[np.argsort(allidx, kind="stable")]
        return self._pol_cache

    # -- observables ----------------------------------------------------------------------------------------
    @property
    def comm(self):
        """The communicator the lattice is split over (as given)."""
        return self._comm

    @property
    def cart(self):
        """The Cartesian communicator of the rank grid."""
        return self._cart

    @property
    def decomposition(self) -> Decomposition:
        return self._dec

    @property
    def rank(self) -> int:
        return self._comm.Get_rank()

    @property
    def size(self) -> int:
        return self._comm.Get_size()

    def close(self) -> None:
        """Free the Cartesian communicator (collective: every rank calls it).  MPI has a limited number of
        communicators per process, so a program that builds many simulations should close them (or use the
        object as a context manager)."""
        cart, self._cart = getattr(self, "_cart", None), None
        if cart is not None:
            cart.Free()

    def __enter__(self) -> "DistributedSimulation":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def halo_width(self) -> int:
        """Halo layers allocated on each side facing another block."""
        return self._dec.halo

    def ifn_level(self, time_min: float | None = None) -> float:
        """IFN-beta level of the schedule at ``time_min`` (default: now); not collective."""
        p = self._params
        t = self.time_min if time_min is None else time_min
        if p.ifn_therapy_level > 0 and t >= p.ifn_therapy_start:
            return p.ifn_therapy_level
        return p.ifn_level

    def layer(self, name: str) -> np.ndarray:
        """Read-only view of this rank's block (3D) of state array ``name``; not collective."""
        if name not in STATE_ARRAYS:
            raise ParameterError(f"unknown state array {name!r}; arrays are {', '.join(STATE_ARRAYS)}")
        v = self._arrays[name][self._dec.box_slices]
        v.flags.writeable = False
        return v

    def local_state(self) -> dict[str, Any]:
        """This rank's block of the state (copies), with its global position ``owned``; not collective."""
        return {"version": __version__, "shape": self.shape, "params": self._params.to_dict(), "seed": self._seed,
                "step_index": self._step, "owned": self._dec.owned,
                "arrays": {name: self._arrays[name][self._dec.box_slices].copy() for name in STATE_ARRAYS}}

    def gather_state(self, root: int = 0) -> dict[str, Any] | None:
        """The whole state as :meth:`tumorca.Simulation.get_state` on rank ``root``, None elsewhere (gathers the
        lattice on one rank: for tests and small runs)."""
        mine = self.local_state()
        parts = self._comm.gather((mine["owned"], mine["arrays"]), root=root)
        if self.rank != root:
            return None
        arrays = {}
        for name, dt in STATE_ARRAYS.items():
            full = np.empty(self._shape3, dtype=dt)
            for owned, arrs in parts:
                full[owned] = arrs[name]
            arrays[name] = full.reshape(self.shape)
        return {"version": __version__, "shape": self.shape, "params": self._params.to_dict(), "seed": self._seed,
                "step_index": self._step, "arrays": arrays}

    def summary(self) -> dict[str, float]:
        """:meth:`tumorca.Simulation.summary` of the whole lattice, bit for bit, on every rank.

        Integer counts are summed over the blocks (exact in any order); the mean polarisation is computed from
        the gathered values in global order, as the serial code does.
        """
        a = self._arrays
        bs = self._dec.box_slices
        tis = a["tissue"][bs]
        bc = np.bincount(tis.ravel(), minlength=len(Cell)).astype(np.int64)
        live_mask = (tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q)
        hypoxic = np.count_nonzero(a["o2"][bs][live_mask] < np.float32(self._params.hypoxia_o2))
        perfused = np.count_nonzero(a["perfused"][bs])
        local = np.concatenate([bc[:len(Cell)], [hypoxic, perfused]]).astype(np.int64)
        tot = np.empty_like(local)
        self._cart.Allreduce(local, tot, op=self._mpi.SUM)
        bc, hypoxic, perfused = tot[:len(Cell)], int(tot[len(Cell)]), int(tot[len(Cell) + 1])
        live = int(bc[Cell.TUMOR_P] + bc[Cell.TUMOR_Q])
        vessels = int(bc[Cell.EC_STALK] + bc[Cell.EC_TIP])
        pol = self._polarizations()
        n_neut = int(pol.size)
        n1 = int(np.count_nonzero(pol < 0.5))
        ev = self._events
        return {
            "step": self._step, "time_min": self.time_min, "ifn_level": self._last_ifn,
            "tumor_p": int(bc[Cell.TUMOR_P]), "tumor_q": int(bc[Cell.TUMOR_Q]), "necrotic": int(bc[Cell.NECROTIC]),
            "tumor_live": live, "hypoxic_fraction": hypoxic / live if live else 0.0,
            "vessel_sites": vessels, "tips": int(bc[Cell.EC_TIP]), "perfused_sites": perfused,
            "perfused_fraction": perfused / vessels if vessels else 0.0,
            "neutrophils": n_neut, "neutrophils_n1": n1, "neutrophils_n2": n_neut - n1,
            "mean_polarization": float(pol.astype(np.float64).mean()) if n_neut else 0.0,
            "neut_vegf_produced": self._produced[0], "neut_mmp9_produced": self._produced[1],
            "tumor_born": int(ev[0]), "neut_recruited": int(ev[1]), "neut_died": int(ev[2]),
            "tumor_killed": int(ev[3]),
            "o2_sweeps": self._last_o2[0], "o2_residual": self._last_o2[1],
        }

    @property
    def phase_times(self) -> dict[str, float]:
        """Wall seconds of this rank in each phase (:data:`tumorca.simulation.PHASES`) since creation, plus
        ``halo``: the part of them spent in halo exchanges; not collective."""
        out = dict(self._phase_time)
        out["halo"] = self._halo.seconds - self._halo_time0
        return out

    @property
    def o2_solver_stats(self) -> dict[str, float]:
        """As :attr:`tumorca.Simulation.o2_solver_stats` (SOR sweeps; equal on every rank)."""
        return {"sweeps": self._last_o2[0], "residual": self._last_o2[1], "work": self._last_o2[2],
                "sweeps_total": self._o2_sweeps_total, "work_total": self._o2_work_total}

    def __repr__(self) -> str:
        return (f"DistributedSimulation(shape={self.shape}, seed={self._seed}, step_index={self._step}, "
                f"ranks={self.size}, grid={'x'.join(map(str, self._dec.dims))}, threads={self._threads})")
