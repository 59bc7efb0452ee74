"""The quasi-steady O2 solve on one block of a lattice split across MPI ranks, bit for bit the serial solve.

``o2_solver = "mgcg"`` (the default) runs on the blocks (:class:`tumorca.parallel.o2_mgcg.DistributedMgcg`)
when the rank grid keeps rows whole (Px = 1, which an automatic grid chooses wherever it can); on a grid that
splits x it agglomerates the whole lattice onto rank 0, which runs the serial solve with its threads and sends
each rank its block back.  ``"sor"`` runs red-black SOR on the blocks (:class:`BlockO2Solver` below).  Every way
gives the serial field, iteration count and error estimate, for any rank count.
"""
from __future__ import annotations

import numpy as np

from .. import _o2
from .._numerics import float32_exact, mgcg_workspace_nbytes
from ..errors import ParameterError
from ..o2 import CAP_NAME, MEASURE, WORKSPACE_BYTES_PER_SITE, uptake_table
from ..params import Params
from .o2_mgcg import DistributedMgcg, distributable

#: Bytes per site of the whole lattice that rank 0 holds during a gathered (mgcg) solve besides the solver's
#: workspace, at the peak: the blocks of o2, tissue and sources as received (pickled, 6) and unpickled (6), then
#: the unpickled blocks (6) while they are copied into the whole-lattice arrays (6).  Sending the field back needs
#: less: the o2 blocks copied (4) and pickled (4).
GATHER_BYTES_PER_SITE = 12


def o2_mode(params: Params, dec, size: int) -> str:
    """How an MPI run solves O2: ``"sor"`` (on the blocks), ``"distributed"`` (mgcg on the blocks: more than one
    rank and a grid that keeps rows whole, :func:`tumorca.parallel.o2_mgcg.distributable`) or ``"gathered"``
    (mgcg on rank 0 for the whole lattice: one rank, or a grid that splits x)."""
    if params.o2_solver != "mgcg":
        return "sor"
    return "distributed" if size > 1 and distributable(dec) else "gathered"


def block_solve_bytes(local_sites: int, mode: str) -> int:
    """Bytes a rank's block needs for its part of a distributed mgcg solve (its lattice vectors and coarse
    levels, bounded as the serial workspace per site); 0 for the other modes."""
    return local_sites * WORKSPACE_BYTES_PER_SITE["mgcg"] if mode == "distributed" else 0


def gathered_solve_bytes(shape3: tuple[int, int, int], params: Params) -> int:
    """Bytes rank 0 needs for the O2 solve of the whole lattice under MPI (besides its own block): the gathered
    arrays and the serial solver's workspace (counted exactly: :func:`tumorca._numerics.mgcg_workspace_nbytes`)
    for ``o2_solver = "mgcg"``; 0 for SOR, which stays distributed."""
    if params.o2_solver != "mgcg":
        return 0
    nz, ny, nx = shape3
    return nz * ny * nx * GATHER_BYTES_PER_SITE + mgcg_workspace_nbytes(shape3)


class BlockO2Solver:
    """The O2 solve of a block, bit-identical to the serial :class:`tumorca.o2.O2Solver`: mgcg on rank 0 (see the
    module), or red-black SOR on the blocks with few messages:

    After an exchange of H halo layers, b = H // 2 sweeps can run without another: half-sweep j also updates the
    H - j halo layers whose inputs are still exact (the same values the neighbour computes).  The stopping test
    is the serial one, on the global max of each sweep's largest correction over owned sites (Allreduce MAX,
    exact), done once per batch for its b sweeps; if it stops the solve at sweep k < b, the batch is redone from
    a copy for k sweeps only, so the result and the sweep count are the serial ones.
    """

    def __init__(self, domain, params: Params, rates: dict[str, float]) -> None:
        if params.o2_solver == "multigrid":
            raise ParameterError('o2_solver = "multigrid" is serial-only; use "sor"')
        self.cap_name = CAP_NAME[params.o2_solver]
        self.measure = MEASURE[params.o2_solver]
        self.mgcg = params.o2_solver == "mgcg"
        self._serial = None  # rank 0's serial solver (and its workspace), made at the first gathered solve
        #: how the solve runs (:func:`o2_mode`): "distributed", "gathered" (mgcg) or "sor"
        self.mode = o2_mode(params, domain.dec, domain.cart.Get_size())
        self.distributed = self.mode == "distributed"
        self._dist = None
        self.domain = domain
        self.params = params
        self.k = rates["o2_k"]
        self.uptake = uptake_table(params)
        self.dirichlet = tuple(params.o2_boundary == "dirichlet" and n > 1 for n in domain.shape3)
        self._snapshot: np.ndarray | None = None

    def solve(self, arrays: dict[str, np.ndarray], threads: int) -> tuple[int, float, float]:
        if self.mgcg:
            return self._solve_mgcg(arrays, threads)
        p, a, dom = self.params, arrays, self.domain
        origin, _, box = dom.geom
        c, tis, src = a["o2"], a["tissue"], a["perfused"]
        H = dom.halo
        dom.exchange([tis, src, c], H)
        _o2.o2_hold_sources(c, src, float32_exact(p.o2_vessel), threads)
        dz, dy, dx = self.dirichlet
        edge = float32_exact(p.o2_boundary_value)
        per = max(1, H // 2)
        regions = [dom.region(m) for m in range(2 * per)]
        if self._snapshot is None or self._snapshot.shape != c.shape:
            self._snapshot = np.empty_like(c)
        snapshot = self._snapshot
        loc = np.zeros(per, dtype=np.float64)

        def sweeps_from(b: int) -> None:
            # b sweeps after an exchange of at least 2b layers; half-sweep j updates 2b - 1 - j halo layers
            for s in range(b):
                red = _o2.o2_sor_half_sweep(c, tis, src, self.uptake, self.k, dz, dy, dx, edge, p.o2_omega, 0,
                                            origin, regions[2 * b - 1 - 2 * s], box, threads)
                black = _o2.o2_sor_half_sweep(c, tis, src, self.uptake, self.k, dz, dy, dx, edge, p.o2_omega, 1,
                                              origin, regions[2 * b - 2 - 2 * s], box, threads)
                loc[s] = red if red > black else black

        done = 0
        rmax = 0.0
        first = True
        while done < p.o2_max_sweeps:
            if not first:
                dom.exchange([c], H)
            first = False
            b = min(per, p.o2_max_sweeps - done)
            np.copyto(snapshot, c)
            loc[:] = 0.0
            sweeps_from(b)
            glob = dom.max_floats(loc)
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
        return done, rmax, float(done)

    def _solve_mgcg(self, arrays: dict[str, np.ndarray], threads: int) -> tuple[int, float, float]:
        """The distributed solve where the grid allows it (:func:`tumorca.parallel.o2_mgcg.distributable`), else
        the gathered one."""
        if self.distributed:
            if self._dist is None:
                self._dist = DistributedMgcg(self.domain, self.params, self.k)
            return self._dist.solve(arrays, threads)
        return self._solve_gathered(arrays, threads)

    def _solve_gathered(self, arrays: dict[str, np.ndarray], threads: int) -> tuple[int, float, float]:
        """Gather o2, tissue and sources of every block on rank 0, solve there, scatter the blocks back."""
        from ..o2 import O2Solver

        p, dom = self.params, self.domain
        comm = dom.cart
        if comm.Get_size() == 1:  # the block is the lattice
            if self._serial is None:
                self._serial = O2Solver(dom.shape3, p, {"o2_k": self.k})
            return self._serial.solve(arrays, threads)
        own = dom.owned
        names = ("o2", "tissue", "perfused")
        mine = (dom.dec.owned, [np.ascontiguousarray(arrays[n][own]) for n in names])
        parts = comm.gather(mine, root=0)
        del mine
        stats = None
        blocks = None
        if dom.is_root:
            shape3 = dom.shape3
            full = {n: np.empty(shape3, dtype=arrays[n].dtype) for n in names}
            where = []
            for owned, arrs in parts:
                where.append(owned)
                for n, v in zip(names, arrs):
                    full[n][owned] = v
            del parts, arrs  # the peak that GATHER_BYTES_PER_SITE counts is the copy above, not the solve
            if self._serial is None:
                self._serial = O2Solver(shape3, p, {"o2_k": self.k})
            stats = self._serial.solve(full, threads)
            o2 = full.pop("o2")
            del full
            blocks = [o2[owned].copy() for owned in where]
            del o2
        block = comm.scatter(blocks, root=0)
        del blocks
        arrays["o2"][own] = block
        return comm.bcast(stats, root=0)
