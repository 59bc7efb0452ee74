"""One rank's block of a lattice split across MPI ranks: the :class:`tumorca.engine.Domain` of
:class:`tumorca.parallel.DistributedSimulation`.

Each rank holds its block of every state array plus a halo (:mod:`tumorca.parallel.decomposition`).  The
engine refreshes the halo before each phase to that phase's dependency radius (:func:`tumorca.engine.halo_widths`,
docs/parallel.md) and runs the kernels on the local array with the block's global placement, so that random
draws and tie-breaks use global site indices.  Results in the halo are wrong near the rim of the local array and
are never used: only the owned block is kept and the next exchange overwrites the halo.  The global pieces are
here: fixed-point iterations (perfusion), an Allreduce at the serial stopping test (O2 SOR, in
:mod:`tumorca.parallel.o2`), a pipelined Thomas solve (diffusion along a split axis) and gathers in global order
(float sums).
"""
from __future__ import annotations

import numpy as np

from .. import _fields, _vessels, flow
from .._constants import PERFUSION_REMOVED, Vessel
from ..params import Params
from ..rules import PerfusionRules
from .decomposition import Decomposition
from .lod import implicit_axis_split

#: Lines of a pipelined diffusion chunk below which pipelining does not hide a message's latency.
PIPELINE_MIN_LINES = 4096


class BlockDomain:
    """The block of this rank: halo exchange, reductions and the distributed pieces of a step.

    Parameters
    ----------
    cart : mpi4py.MPI.Cartcomm
        The Cartesian communicator of the rank grid.
    decomposition : Decomposition
        This rank's block and halo.
    params, rates, threads
        The run's parameters, ``params.rates()`` and OpenMP threads per rank.
    """

    is_root: bool

    def __init__(self, cart, decomposition: Decomposition, params: Params, rates: dict[str, float],
                 threads: int) -> None:
        from mpi4py import MPI

        from .halo import HaloExchanger
        from .o2 import BlockO2Solver

        self._mpi = MPI
        self.cart = cart
        self.dec = dec = decomposition
        self.shape3 = dec.shape3
        self.halo = dec.halo
        self.owned = dec.box_slices
        self.geom = (dec.origin, dec.shape3, dec.box)
        self.threads = threads
        self.is_root = cart.Get_rank() == 0
        self.exchanger = HaloExchanger(cart, dec)
        self._axis_nb = tuple(cart.Shift(a, 1) for a in range(3))
        self.o2 = BlockO2Solver(self, params, rates)
        #: the last flow solve (as :class:`tumorca.engine.WholeLattice`)
        self.last_flow = {"iterations": 0, "inflow": 0.0}

    # -- communication --------------------------------------------------------------------------------------
    def exchange(self, arrays: list[np.ndarray], width: int) -> None:
        self.exchanger.exchange(arrays, width)

    def sum_ints(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        self.cart.Allreduce(values, out, op=self._mpi.SUM)
        return out

    def max_floats(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        self.cart.Allreduce(values, out, op=self._mpi.MAX)
        return out

    def gather_sorted(self, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The owned ``values`` where ``mask`` holds, from every rank, in global C order, on every rank."""
        zz, yy, xx = np.nonzero(mask)
        o = [s.start for s in self.dec.owned]
        _, gny, gnx = self.shape3
        idx = ((zz + o[0]) * gny + (yy + o[1])) * gnx + (xx + o[2])
        parts = self.cart.allgather((idx.astype(np.int64), values[mask]))
        allidx = np.concatenate([q[0] for q in parts])
        allval = np.concatenate([q[1] for q in parts]).astype(values.dtype, copy=False)
        return allval[np.argsort(allidx, kind="stable")]

    def region(self, margin: int) -> tuple[tuple[int, int], ...]:
        """The block plus ``margin`` halo layers on each side that has a halo, in local indices."""
        return tuple((lo - h[0], hi + h[1]) for (lo, hi), h in zip(self.dec.box, self.dec.halo_sides(margin)))

    # -- the distributed pieces -----------------------------------------------------------------------------
    def perfusion_rounds(self, arrays: dict[str, np.ndarray], scratch: np.ndarray,
                         rules: PerfusionRules, step: int) -> np.ndarray:
        """Connectivity and pruning as fixed-point iterations over the ranks; returns the vessel sites
        (local flat indices) for ``perfusion_finish``.

        The vessel layer is refreshed over the whole halo (width H) once; the searches stay inside that region (vessels
        farther out is not exact, and a path through it could connect what is not connected), and pruning runs
        in batches of H rounds per exchange of the flags: round j of a batch is exact up to H - j layers out, so
        the block's own sites are exact for the whole batch (communication-avoiding; the result is the same).
        """
        a, H = arrays, self.halo
        origin, gshape, box = self.geom
        t, inlet, perf = a["vessel"], a["inlet"], a["perfused"]
        # everything perfusion_finish reads at a site, so that it remodels the halo's vessels as their owners do,
        # and the last step's flow (kept between flow solves)
        self.exchange([t, a["vclock"], inlet, a["tissue"], a["vegf_free"], perf], H)
        scratch.fill(0)
        search = self.region(H)
        sub = t[tuple(slice(lo, hi) for lo, hi in search)]
        zz, yy, xx = np.nonzero(sub != Vessel.NONE)
        _, ly, lx = t.shape
        ec = (((zz + search[0][0]) * ly + (yy + search[1][0])) * lx + (xx + search[2][0])).astype(np.int64)
        kept = perf.ravel()[ec] != 0  # the last step's flow, kept between flow solves
        perf.fill(0)
        # connectivity: search, exchange the marks, search again from the neighbours' marks, until no new owned
        # site is marked anywhere (marks only grow, so an unchanged global count means nothing changed)
        last = -1
        one = np.zeros(1, dtype=np.int64)
        while True:
            one[0] = _vessels.perfusion_connect(t, inlet, perf, ec, rules, origin, gshape, box, search)
            n = int(self.sum_ints(one)[0])
            if n == last:
                break
            last = n
            self.exchange([perf], H)
        if rules.flow is not None:
            if step % rules.flow.interval == 0:
                self._flow(ec, inlet, perf, rules)
            else:
                self.last_flow = {"iterations": 0, "inflow": 0.0}  # reported on solve steps only
                perf.ravel()[ec[~kept]] |= PERFUSION_REMOVED
            return ec
        # pruning: synchronous rounds, each judged on the state the last one left everywhere.  The first batch
        # needs no exchange: nothing is removed yet, and removal flags are all a round reads besides tissue.
        counts = np.zeros(H, dtype=np.int64)
        while True:
            for j in range(H):
                counts[j] = _vessels.perfusion_prune_round(t, inlet, perf, scratch, ec, rules, origin, gshape,
                                                           box)
            # a round that pruned nothing anywhere is the fixed point: later rounds of the batch changed nothing
            if (self.sum_ints(counts) == 0).any():
                break
            self.exchange([perf], H)
        return ec

    def _flow(self, ec: np.ndarray, inlet: np.ndarray, perf: np.ndarray, rules: PerfusionRules) -> None:
        """The flow solve on rank 0 over the gathered vessel network (global sorted nodes: the serial solve's
        input, so the same bits), its verdict broadcast; every rank marks the sites of ``ec`` (its block and
        halo) that carry no flow.  Gathers O(vessel sites) onto rank 0 and back to every rank: simple, not
        scalable to very many ranks."""
        _, ly, lx = perf.shape
        origin = self.dec.origin
        _, gny, gnx = self.shape3
        z, y, x = ec // (ly * lx), (ec // lx) % ly, ec % lx
        gidx = ((z + origin[0]) * gny + (y + origin[1])) * gnx + (x + origin[2])
        (bz0, bz1), (by0, by1), (bx0, bx1) = self.dec.box
        mine = (bz0 <= z) & (z < bz1) & (by0 <= y) & (y < by1) & (bx0 <= x) & (x < bx1)
        parts = self.cart.gather((gidx[mine], inlet.ravel()[ec[mine]]), root=0)
        verdict = None
        if self.is_root:
            nodes = np.concatenate([q[0] for q in parts])
            values = np.concatenate([q[1] for q in parts])
            order = np.argsort(nodes, kind="stable")
            nodes, values = nodes[order], values[order]
            ok, stats = flow.flowing(nodes, values, self.shape3, rules.flow, rules.edge_inlets, self.threads)
            verdict = (nodes, ok, stats)
        nodes, ok, self.last_flow = self.cart.bcast(verdict, root=0)
        pos = np.minimum(np.searchsorted(nodes, gidx), max(nodes.size - 1, 0))
        flowing = np.zeros(ec.shape, dtype=bool)
        if nodes.size:
            flowing = (nodes[pos] == gidx) & ok[pos]
        perf.ravel()[ec[~flowing]] |= PERFUSION_REMOVED

    def o2_solve(self, arrays: dict[str, np.ndarray]) -> tuple[int, float, float]:
        return self.o2.solve(arrays, self.threads)

    def implicit(self, c: np.ndarray, axis: int, factors: tuple[np.ndarray, np.ndarray], alpha: float,
                 gain: float) -> None:
        """One backward-Euler axis pass: the kernel on the local array where the axis is not split (its lines
        are whole; lines through the halo are computed and discarded), the pipelined solve where it is."""
        dec = self.dec
        if dec.dims[axis] == 1:
            _fields.implicit_axis(c, axis, factors[0], factors[1], alpha, gain, 0.0, self.threads)
            return
        low, high = self._axis_nb[axis]
        bs = dec.block_shape
        lines = bs[0] * bs[1] * bs[2] // bs[axis]
        chunks = min(dec.dims[axis], max(1, lines // PIPELINE_MIN_LINES))
        implicit_axis_split(c, axis, factors[0], factors[1], alpha, gain, 0.0, dec.box_slices,
                            dec.owned[axis].start, self.cart, low, high, chunks=chunks)
