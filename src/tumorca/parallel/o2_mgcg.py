"""The mgcg O2 solve distributed over the blocks of an MPI run, bit for bit the serial solve.

The lattice and the finer coarse levels stay on their ranks; the coarse levels below a few ten thousand cells (or
where a block would become thinner than two cells) are agglomerated onto rank 0, which runs the rest of each
V-cycle with the serial kernels.  Every value is computed by the serial expressions on the rank that owns it
(``ext/_o2.pyx``, "mgcg by blocks"), halos are refreshed where a kernel reads its neighbours', and the global sums
are taken as the serial solve takes them:

* dot products: each rank's per-row partials (rows are whole: the lattice is never split along x for this
  path) are gathered on every rank and added in global row order;
* the largest update: a MAX reduction (exact);
* a coarse cell belongs to the rank that owns its first child, so a restriction reads one halo layer of its
  children on the high side and a prolongation one layer of parents on the low side.

Hence the iteration count, the error estimate and the field are the serial ones, for any rank count and grid.
"""
from __future__ import annotations

import numpy as np

from .. import _o2
from .._numerics import (MGCG_COARSE_SCALE, MgcgTail, float32_exact, mgcg_cycle_work, mgcg_error_estimate,
                         mgcg_level_arrays, mgcg_shapes)
from ..o2 import uptake_table
from ..params import Params
from .decomposition import Decomposition
from .halo import HaloExchanger

#: Coarse levels of at most this many cells are agglomerated onto rank 0: below it a level's work costs less
#: than the messages of its halo exchanges.
AGGLOMERATE_CELLS = 32768

#: The fewest halo layers a level needs: a restriction reads the residual of a child one layer out, which reads
#: the correction one layer further.
MIN_HALO = 2


def level_halo(smooth: int) -> int:
    """Halo layers of a distributed coarse level: enough for the pre-smoothing (2 * smooth half-sweeps) and the
    restriction after it to run on one exchange of the right-hand side, the sweeps computing the halo
    redundantly on shrinking margins (communication-avoiding, as the SOR blocks)."""
    return 2 * smooth + MIN_HALO


def distributable(dec: Decomposition) -> bool:
    """Whether the distributed mgcg solve can run on this rank grid: rows whole (x not split) and a halo of at
    least two layers."""
    return dec.dims[2] == 1 and dec.halo >= MIN_HALO


class _LevelBlock:
    """A coarse level's block in the form :class:`HaloExchanger` reads (``box``, ``halo``, ``halo_sides``)."""

    def __init__(self, coords, dims, lo, hi, halo: int) -> None:
        self.coords, self.dims = coords, dims
        self.halo = halo
        sides = self.halo_sides()
        self.owned = tuple((lo[a], hi[a]) for a in range(3))
        self.org = tuple(lo[a] - sides[a][0] for a in range(3))
        self.shape = tuple(hi[a] - lo[a] + sides[a][0] + sides[a][1] for a in range(3))
        self.box = tuple((sides[a][0], sides[a][0] + hi[a] - lo[a]) for a in range(3))

    def halo_sides(self, width: int | None = None):
        w = self.halo if width is None else int(width)
        return tuple((w if self.coords[a] > 0 else 0, w if self.coords[a] < self.dims[a] - 1 else 0)
                     for a in range(3))


def _coarse_range(lo: int, hi: int) -> tuple[int, int]:
    """The coarse cells whose first child lies in [lo, hi)."""
    return (lo + 1) // 2, (hi + 1) // 2


class DistributedMgcg:
    """The mgcg solve of one rank's block (see the module).

    Parameters
    ----------
    domain : tumorca.parallel.domain.BlockDomain
        The rank's block, its halo exchange and communicator; its grid must be :func:`distributable`.
    params : Params
        Solver parameters (as the serial :class:`tumorca.o2.O2Solver`).
    k : float
        D / dx^2.
    """

    def __init__(self, domain, params: Params, k: float) -> None:
        dec = domain.dec
        if not distributable(dec):
            raise ValueError("the distributed mgcg solve needs whole rows and a halo of two layers")
        self.dom, self.params, self.k = domain, params, k
        self.cart = domain.cart
        self.uptake = uptake_table(params)
        self.gshape = dec.shape3
        self.shapes = mgcg_shapes(self.gshape)
        self.nlev = len(self.shapes)
        self.cycle_work = mgcg_cycle_work(self.shapes, params.o2_mgcg_smooth)
        self.dirichlet = params.o2_boundary == "dirichlet"
        self.edge = float32_exact(params.o2_boundary_value)
        self.fine_box, self.fine_org = dec.box, dec.origin
        self.halo_l = level_halo(params.o2_mgcg_smooth)
        self.halo_f = min(dec.halo, self.halo_l)
        local = dec.local_shape
        self.x = np.zeros(local)
        self.r, self.p, self.z = (np.zeros(local, dtype=np.float32) for _ in range(3))
        # the blocks of every rank, level by level, in global indices
        size = self.cart.Get_size()
        allcoords = [tuple(self.cart.Get_coords(q)) for q in range(size)]
        ranges = [[tuple((s.start, s.stop) for s in blk) for blk in Decomposition.blocks(self.gshape, dec.dims)]]
        self.first = self.nlev  # the first agglomerated level
        for lvl in range(1, self.nlev):
            nxt = [tuple(_coarse_range(*rg[a]) if dec.dims[a] > 1 else (0, self.shapes[lvl][a]) for a in range(3))
                   for rg in ranges[-1]]
            ranges.append(nxt)
            thin = any(hi - lo < self.halo_l for rg in nxt for a, (lo, hi) in enumerate(rg) if dec.dims[a] > 1)
            if thin or int(np.prod(self.shapes[lvl])) <= AGGLOMERATE_CELLS or lvl == self.nlev - 1:
                self.first = lvl
                break
        me = self.cart.Get_rank()
        self.coords, self.dims = tuple(dec.coords), tuple(dec.dims)
        self.levels: list = [None]
        for lvl in range(1, self.first):
            lo, hi = zip(*ranges[lvl][me])
            blk = _LevelBlock(self.coords, self.dims, lo, hi, self.halo_l)
            arrays = mgcg_level_arrays(blk.shape, self.shapes[lvl])
            self.levels.append({"blk": blk, "arrays": arrays, "ex": HaloExchanger(self.cart, blk)})
        self.tail = None
        if self.first < self.nlev:
            fl = self.first
            # this rank's cells of the first agglomerated level (restricted here, gathered) ...
            self.tail_own = [tuple(rg) for rg in ranges[fl]]
            # ... and the parents its finer block reads back (the prolongation)
            self.tail_read = [tuple(((lo // 2, (hi - 1) // 2 + 1) if self.dims[a] > 1 else (0, self.shapes[fl][a]))
                                    for a, (lo, hi) in enumerate(rg)) for rg in ranges[fl - 1]]
            lo, hi = zip(*self.tail_own[me])
            own_shape = tuple(h - l for l, h in zip(lo, hi))
            self.tail_buf = mgcg_level_arrays(own_shape, self.shapes[fl])
            self.tail_geom = (tuple((0, n) for n in own_shape), tuple(lo), self.shapes[fl])
            if self.dom.is_root:
                self.tail = MgcgTail(self.gshape, fl)
        # the global row order of the per-row partials of the dot products
        nz, ny, _ = self.gshape
        rows = []
        for rg in ranges[0]:
            (z0, z1), (y0, y1), _ = rg
            rows.append((np.arange(z0, z1)[:, None] * ny + np.arange(y0, y1)[None, :]).ravel())
        self._counts = np.array([r.size for r in rows])
        self._order = np.argsort(np.concatenate(rows), kind="stable")
        self._part = np.zeros(max(int(self._counts[me]), 1))
        self._allparts = np.zeros(int(self._counts.sum()))
        (bz0, bz1), (by0, by1), _ = dec.box
        self._nrows = (bz1 - bz0) * (by1 - by0)

    # -- global sums ----------------------------------------------------------------------------------------
    def _fold(self) -> float:
        """The sum of every rank's row partials (in ``self._part``) in global row order, from 0.0."""
        MPI = self.dom._mpi
        self.cart.Allgatherv([self._part[:self._nrows], MPI.DOUBLE], [self._allparts, self._counts, MPI.DOUBLE])
        ordered = np.concatenate(([0.0], self._allparts[self._order]))
        return float(np.add.accumulate(ordered)[-1])

    def _dot(self, a: np.ndarray, b: np.ndarray, threads: int) -> float:
        _o2.mgcg_blk_dot(a, b, self._part, self.fine_box, threads)
        return self._fold()

    # -- the preconditioner ---------------------------------------------------------------------------------
    def _geom(self, lvl: int):
        if lvl == 0:
            return self.fine_box, self.fine_org, self.gshape
        blk = self.levels[lvl]["blk"]
        return blk.box, blk.org, self.shapes[lvl]

    def _target(self, lvl: int):
        """Where level ``lvl``'s right-hand side (and operator) is written: its local arrays, or the buffer of the
        first agglomerated level."""
        if lvl == self.first:
            return self.tail_buf, self.tail_geom
        return self.levels[lvl]["arrays"], self._geom(lvl)

    def _build(self, tissue, source, threads: int) -> None:
        """The coarse operators of this solve: distributed levels on their blocks (halos refreshed one layer),
        the first agglomerated one gathered, the rest of the tail built on rank 0."""
        fbox, forg, fgn = self._geom(0)
        out, (cbox, corg, cgn) = self._target(1)
        if out["m"].size:
            _o2.mgcg_blk_build1(tissue, source, self.uptake, self.k, self.dirichlet, fbox, forg, fgn, out, cbox,
                                corg, cgn, MGCG_COARSE_SCALE, threads)
        for lvl in range(1, self.first):
            a = self.levels[lvl]["arrays"]
            self._exchange(lvl, [a["m"], a["b"]] + [w for w in a["w"] if w is not None], self.halo_l)
            box, org, gn = self._geom(lvl)
            out, (cbox, corg, cgn) = self._target(lvl + 1)
            if not out["m"].size:
                continue
            _o2.mgcg_blk_coarsen(a["m"], box, org, gn, out["m"], cbox, corg, cgn, -1, 1.0, False, threads)
            _o2.mgcg_blk_coarsen(a["b"], box, org, gn, out["b"], cbox, corg, cgn, -1, MGCG_COARSE_SCALE, True,
                                 threads)
            for ax in range(3):
                if out["w"][ax] is not None:
                    _o2.mgcg_blk_coarsen(a["w"][ax], box, org, gn, out["w"][ax], cbox, corg, cgn, ax,
                                         MGCG_COARSE_SCALE, True, threads)
        if self.first < self.nlev:
            buf = self.tail_buf
            parts = self.cart.gather([buf["m"], buf["b"], buf["w"]], root=0)
            if self.tail is not None:
                lv = self.tail.levels[self.first]
                shape = self.shapes[self.first]
                for (m, b, w), own in zip(parts, self.tail_own):
                    sl = tuple(slice(lo, hi) for lo, hi in own)
                    lv["m"].reshape(shape)[sl] = m
                    lv["b"].reshape(shape)[sl] = b
                    for ax in range(3):
                        if w[ax] is not None:
                            lv["w"][ax].reshape(shape)[sl] = w[ax]
                _o2.mgcg_tail_build(self.tail, self.first, threads)

    def _halo(self, lvl: int) -> int:
        return self.halo_f if lvl == 0 else self.halo_l

    def _box(self, lvl: int, margin: int):
        """The block of level ``lvl`` and ``margin`` layers of its halo (on the sides that have one)."""
        box = self._geom(lvl)[0]
        sides = self.dom.dec.halo_sides(margin) if lvl == 0 else self.levels[lvl]["blk"].halo_sides(margin)
        return tuple((lo - sd[0], hi + sd[1]) for (lo, hi), sd in zip(box, sides))

    def _exchange(self, lvl: int, arrays: list, width: int) -> None:
        if lvl == 0:
            self.dom.exchange(arrays, width)
        else:
            ex = self.levels[lvl]["ex"]
            ex.poison = self.dom.exchanger.poison  # a test poisons every level's halo with the lattice's
            ex.exchange(arrays, width)

    def _sweeps(self, lvl: int, colors: tuple[int, int], valid: int, r, tissue, source, threads: int,
                need: int) -> None:
        """``smooth`` sweeps of colours ``colors`` on a distributed level whose correction is exact ``valid``
        layers into the halo (its right-hand side and operator: the whole halo), leaving it exact ``need``
        layers deep.  Communication-avoiding: each half-sweep also updates the halo layers whose neighbours are
        still exact, on margins shrinking by one, and the halo is exchanged only when the margins run out (once
        per smoothing at the default halo)."""
        n = 2 * self.params.o2_mgcg_smooth
        box0, org, gn = self._geom(lvl)
        halo = self._halo(lvl)
        e = self.z if lvl == 0 else self.levels[lvl]["arrays"]["e"]
        for j in range(n):
            color = colors[j % 2]
            want = need + (n - 1 - j)
            if valid < want + 1 and valid < halo:
                width = min(halo, want + 1)
                self._exchange(lvl, [e], width)
                valid = width
            margin = min(want, valid - 1)
            if margin < 0:
                raise AssertionError("mgcg halo bookkeeping")
            box = self._box(lvl, margin)
            if lvl == 0:
                _o2.mgcg_blk_fine_sweep(e, r, tissue, source, self.uptake, self.k, self.dirichlet, color, box, org,
                                        gn, threads)
            else:
                _o2.mgcg_blk_c_sweep(self.levels[lvl]["arrays"], color, box, org, gn, threads)
            valid = margin
        if valid < need:
            self._exchange(lvl, [e], need)

    def _tail(self, threads: int) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Gather the first agglomerated level's f on rank 0, run the tail's V-cycle there, and return the
        parents this rank's finer block reads (an array and its global origin)."""
        fl = self.first
        parts = self.cart.gather(self.tail_buf["f"], root=0)
        blocks = None
        if self.tail is not None:
            shape = self.shapes[fl]
            lv = self.tail.levels[fl]
            for f, own in zip(parts, self.tail_own):
                lv["f"].reshape(shape)[tuple(slice(lo, hi) for lo, hi in own)] = f
            _o2.mgcg_tail_cycle(self.tail, fl, self.params.o2_mgcg_smooth, threads)
            e = lv["e"].reshape(shape)
            blocks = [e[tuple(slice(lo, hi) for lo, hi in rd)].copy() for rd in self.tail_read]
        mine = self.cart.scatter(blocks, root=0)
        me = self.cart.Get_rank()
        return np.ascontiguousarray(mine), tuple(lo for lo, _ in self.tail_read[me])

    def _precondition(self, tissue, source, threads: int) -> None:
        """z = B r on the block (the serial symmetric V-cycle).  Exchanges per level: the right-hand side once
        (its whole halo), the correction once before the post-smoothing."""
        r, z = self.r, self.z
        z.fill(0.0)  # exact everywhere, halo included
        self.dom.exchange([r], self.halo_f)
        self._sweeps(0, (0, 1), self.halo_f, r, tissue, source, threads, MIN_HALO)
        if self.nlev > 1:
            box, org, gn = self._geom(0)
            f1, (cbox, corg, cgn) = self._target(1)
            if f1["f"].size:
                _o2.mgcg_blk_fine_restrict(z, r, tissue, source, self.uptake, self.k, self.dirichlet, box, org, gn,
                                           f1["f"], cbox, corg, cgn, threads)
            for lvl in range(1, self.first):
                a = self.levels[lvl]["arrays"]
                self._exchange(lvl, [a["f"]], self.halo_l)
                a["e"].fill(0.0)
                self._sweeps(lvl, (0, 1), self.halo_l, None, None, None, threads, MIN_HALO)
                box, org, gn = self._geom(lvl)
                out, (cbox, corg, cgn) = self._target(lvl + 1)
                if out["f"].size:
                    _o2.mgcg_blk_c_restrict(a, box, org, gn, out["f"], cbox, corg, cgn, threads)
            ec, eorg = self._tail(threads) if self.first < self.nlev else (None, None)
            for lvl in range(self.first - 1, 0, -1):
                lv = self.levels[lvl]
                box, org, gn = self._geom(lvl)
                if lvl + 1 < self.first:
                    nxt = self.levels[lvl + 1]
                    ec, eorg = nxt["arrays"]["e"], nxt["blk"].org
                _o2.mgcg_blk_c_prolong(lv["arrays"], box, org, gn, ec, eorg, threads)
                # the next finer level's prolongation reads one layer of parents on the low side
                self._sweeps(lvl, (1, 0), 0, None, None, None, threads, 1)
            if self.first > 1:
                ec, eorg = self.levels[1]["arrays"]["e"], self.levels[1]["blk"].org
            box, org, _ = self._geom(0)
            _o2.mgcg_blk_fine_prolong(z, ec, source, box, org, eorg, threads)
        self._sweeps(0, (1, 0), 0, r, tissue, source, threads, 0)

    # -- the solve ------------------------------------------------------------------------------------------
    def solve(self, arrays: dict[str, np.ndarray], threads: int) -> tuple[int, float, float]:
        """Solve the block's ``arrays["o2"]`` in place; returns what :meth:`tumorca.o2.O2Solver.solve` returns,
        the same on every rank."""
        p, dom = self.params, self.dom
        c, tissue, source = arrays["o2"], arrays["tissue"], arrays["perfused"]
        dom.exchange([tissue, source, c], self.halo_f)
        box, org, gn = self._geom(0)
        x, r, pv, z = self.x, self.r, self.p, self.z
        _o2.mgcg_blk_start(c, tissue, source, self.uptake, self.k, float32_exact(p.o2_vessel), self.dirichlet,
                           self.edge, x, r, box, org, gn, threads)
        if self.nlev > 1:
            self._build(tissue, source, threads)
        self._precondition(tissue, source, threads)
        vcycles = 1
        rz = self._dot(r, z, threads)
        np.copyto(pv, z)
        its, est, prev, prev_ratio = 0, 0.0, 0.0, 0.0
        while its < p.o2_max_iter:
            if not rz > 0.0:  # r = 0: the iterate is the solution
                est = 0.0
                break
            dom.exchange([pv], 1)
            _o2.mgcg_blk_apply(pv, tissue, source, self.uptake, self.k, self.dirichlet, z, self._part, box, org, gn,
                               threads)
            pq = self._fold()
            if not pq > 0.0:  # p = 0, hence r = 0
                est = 0.0
                break
            alpha = rz / pq
            delta = _o2.mgcg_blk_update(x, r, pv, z, alpha, box, threads)
            delta = float(dom.max_floats(np.array([delta]))[0])
            its += 1
            est, prev_ratio = mgcg_error_estimate(delta, prev, prev_ratio)
            prev = delta
            if est <= p.o2_tol:
                break
            self._precondition(tissue, source, threads)
            vcycles += 1
            rz_new = self._dot(r, z, threads)
            beta = rz_new / rz
            _o2.mgcg_blk_next(pv, z, beta, box, threads)
            rz = rz_new
        _o2.mgcg_blk_finish(c, x, source, box, threads)
        return its, est, vcycles * self.cycle_work + its + 1.0
