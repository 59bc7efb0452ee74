"""Small pure-Python numerical helpers shared by the engine and the NumPy reference.

They are per-parameter constants, computed once per run in double precision, never per-site work.
"""
from __future__ import annotations

import numpy as np


def tridiagonal_factors(n: int, alpha: float, dirichlet: bool) -> tuple[np.ndarray, np.ndarray]:
    """Thomas-algorithm factors of the backward-Euler diffusion matrix along a line of ``n`` sites.

    The matrix is ``(1 + alpha*nn_i) on the diagonal and -alpha off it``, where ``nn_i`` counts the neighbours
    of site i: 2 inside, 1 at a no-flux end, 2 at a Dirichlet end (whose boundary value goes to the right-hand
    side).  A line of one site is always no-flux.

    Returns
    -------
    cp, m : float64 arrays of length n
        ``m[i] = 1 / (b_i + alpha*cp[i-1])`` and ``cp[i] = -alpha*m[i]``, so that the forward sweep is
        ``y_i = (d_i + alpha*y_{i-1}) * m[i]`` and the back substitution ``x_i = y_i - cp[i]*x_{i+1}``.
    """
    cp = np.zeros(n, dtype=np.float64)
    m = np.zeros(n, dtype=np.float64)
    prev = 0.0
    for i in range(n):
        nn = 2
        if n == 1:
            nn = 0
        elif (i == 0 or i == n - 1) and not dirichlet:
            nn = 1
        b = 1.0 + alpha * nn
        inv = 1.0 / (b + alpha * prev)
        m[i] = inv
        cp[i] = -alpha * inv
        prev = cp[i]
    return cp, m


def float32_exact(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Python float (values stored in float32 fields)."""
    return float(np.float32(value))


#: Red-black Gauss-Seidel sweeps on the coarsest multigrid level (at most 3 sites per axis: 27 unknowns, whose
#: system is diagonally dominant enough that 20 sweeps solve it far below any useful tolerance).
MG_COARSE_SWEEPS = 20
#: Stop coarsening once no axis is longer than this.
MG_COARSEST_AXIS = 3


def _axis_transfer(pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """Prolongation and restriction tables between one axis of ``len(pos)`` cells and its coarsening by 2.

    Coarse cell J is the union of fine cells 2J and 2J+1 (a lone last cell when the length is odd) and sits at the
    mean position of its children.  A fine cell takes the linear interpolation between the two coarse centres that
    bracket it (the nearest one alone beyond the last centre).  Restriction is the transpose of that, each row
    scaled to sum to 1 so that it averages: in the interior this is full weighting (1, 3, 3, 1)/8.

    Returns
    -------
    cpos : coarse positions; ja, jb, wa, wb : fine i = wa[i]*coarse[ja[i]] + wb[i]*coarse[jb[i]];
    ridx, rw : (m, 4) coarse J = sum over t of rw[J, t]*fine[ridx[J, t]], in the order t = 0..3 (weight 0 for a
    missing fine cell, whose index is clipped into range).
    """
    n = len(pos)
    m = (n + 1) // 2
    cpos = np.array([pos[2 * j:2 * j + 2].mean() for j in range(m)])
    ja = np.arange(n, dtype=np.intp) // 2
    jb = ja.copy()
    wa = np.ones(n)
    wb = np.zeros(n)
    for i in range(n):
        j = ja[i]
        other = j - 1 if pos[i] < cpos[j] else j + 1
        if pos[i] != cpos[j] and 0 <= other < m:
            jb[i] = other
            wa[i] = (cpos[other] - pos[i]) / (cpos[other] - cpos[j])
            wb[i] = 1.0 - wa[i]
    ridx = np.zeros((m, 4), dtype=np.intp)
    rw = np.zeros((m, 4))
    for j in range(m):
        for t in range(4):
            i = 2 * j - 1 + t
            ridx[j, t] = min(max(i, 0), n - 1)
            if 0 <= i < n:
                rw[j, t] = (wa[i] if ja[i] == j else 0.0) + (wb[i] if jb[i] == j else 0.0)
        rw[j] /= rw[j].sum()
    return cpos, ja, jb, wa, wb, ridx, rw


class MultigridPlan:
    """The grid hierarchy of the multigrid O2 solve, shared by the kernel and the NumPy reference.

    Level 0 is the lattice; each coarser level halves every axis longer than one site, until no axis is longer
    than :data:`MG_COARSEST_AXIS` or some axis is odd (that level is then the coarsest).  Both implementations take every table from here, so their
    transfers use the very same float64 weights.

    Parameters
    ----------
    shape : (nz, ny, nx) of the lattice.

    Attributes
    ----------
    shapes : list of (nz, ny, nx), one per level.
    kscale : list of float64 arrays (3,): per-axis (z, y, x) factor on D/dx^2 at each level (1/4 per halving).
    transfers : list, one per pair of levels (l, l+1), of three entries (z, y, x): None where the axis is not
        coarsened, else the tables ``(ja, jb, wa, wb, ridx, rw)`` of :func:`_axis_transfer`.
    work : fine-sweep equivalents of one V-cycle with ``presmooth``/``postsmooth`` sweeps (see :meth:`cycle_work`).
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        shape = tuple(int(n) for n in shape)
        self.shapes = [shape]
        self.kscale = [np.ones(3)]
        self.transfers = []
        pos = [np.arange(n, dtype=np.float64) for n in shape]
        # Coarsen only while every axis longer than one site is even: an odd axis would leave a lone coarse cell
        # off the uniform coarse spacing that the rediscretised coarse operator assumes, and that mismatch made
        # the V-cycle diverge on many lattices (docs/o2-solver.md).  The first level with an odd axis is then the
        # coarsest one.
        while max(self.shapes[-1]) > MG_COARSEST_AXIS and all(n % 2 == 0 for n in self.shapes[-1] if n > 1):
            cur = self.shapes[-1]
            tr, new_shape, new_scale = [], [], self.kscale[-1].copy()
            for a in range(3):
                if cur[a] > 1:
                    cpos, *tables = _axis_transfer(pos[a])
                    pos[a] = cpos
                    tr.append(tuple(tables))
                    new_shape.append(len(cpos))
                    new_scale[a] *= 0.25
                else:
                    tr.append(None)
                    new_shape.append(1)
            self.transfers.append(tr)
            self.shapes.append(tuple(new_shape))
            self.kscale.append(new_scale)

    @property
    def levels(self) -> int:
        return len(self.shapes)

    def sites(self, level: int) -> int:
        return int(np.prod(self.shapes[level]))

    def intermediate_shapes(self, level: int) -> list[tuple[int, int, int]]:
        """Shapes met between the axis passes of a transfer from ``level`` to ``level + 1`` (x, y, z going
        down; z, y, x going up), the final one excluded."""
        if level >= self.levels - 1:
            return []
        fine, coarse = self.shapes[level], self.shapes[level + 1]
        axes = [a for a in range(3) if self.transfers[level][a] is not None]
        out = []
        for order, start, end in ((axes[::-1], fine, coarse), (axes, coarse, fine)):
            cur = list(start)
            for a in order[:-1]:
                cur[a] = end[a]
                out.append(tuple(cur))
        return out

    def cycle_work(self, presmooth: int, postsmooth: int) -> float:
        """Cost of one V-cycle in fine-grid sweeps: (pre + post + 1 residual) sweeps on every level above the
        coarsest and :data:`MG_COARSE_SWEEPS` there, each weighted by its number of sites (docs/o2-solver.md's
        count)."""
        n0 = float(np.prod(self.shapes[0]))
        work = sum((presmooth + postsmooth + 1) * np.prod(s) / n0 for s in self.shapes[:-1])
        if self.levels == 1:
            return float(presmooth + postsmooth)
        return float(work + MG_COARSE_SWEEPS * np.prod(self.shapes[-1]) / n0)


class MultigridWorkspace:
    """Scratch arrays of the compiled multigrid O2 solve for one lattice shape, allocated once per Simulation.

    Parameters
    ----------
    shape : (nz, ny, nx) of the lattice.
    parallel_sites : levels with fewer sites than this run their passes on one thread (waking a thread team
        costs more than their work; the result does not depend on it).

    Attributes
    ----------
    plan : the :class:`MultigridPlan`.
    levels : one dict of flat float64 arrays per level: ``r`` (residual, then prolonged correction), ``t1`` and
        ``t2`` (intermediates of the separable transfers) and, below the lattice, ``e``, ``f`` and ``diag``.
    rowmax : per-row maxima of a lattice sweep.
    """

    def __init__(self, shape: tuple[int, int, int], parallel_sites: int = 16384) -> None:
        self.plan = MultigridPlan(shape)
        self.parallel_sites = int(parallel_sites)
        self.coarse_sweeps = MG_COARSE_SWEEPS
        self.rowmax = np.zeros(shape[0] * shape[1], dtype=np.float64)
        self.levels = []
        plan = self.plan
        for lvl, n in enumerate(plan.shapes):
            arrays = {"r": np.zeros(plan.sites(lvl))}
            scratch = max([1] + [int(np.prod(s)) for s in plan.intermediate_shapes(lvl)])
            arrays["t1"] = np.zeros(scratch)
            arrays["t2"] = np.zeros(scratch)
            if lvl > 0:
                for name in ("e", "f", "diag"):
                    arrays[name] = np.zeros(plan.sites(lvl))
            self.levels.append(arrays)

    @property
    def nbytes(self) -> int:
        return self.rowmax.nbytes + sum(a.nbytes for lv in self.levels for a in lv.values())


#: Factor on the face weights and the source/edge leak of each coarser aggregation level of the mgcg O2 solve.
#: The Galerkin operator of 2^d-cell aggregates with a piecewise-constant prolongation is twice as stiff as the
#: Laplacian rediscretised on the coarse grid for smooth functions; halving it restores the smooth-mode energy
#: (measured: docs/o2-solver.md).  Any positive factor keeps the preconditioner symmetric positive definite.
MGCG_COARSE_SCALE = 0.5


def mgcg_shapes(shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Level shapes of the aggregation hierarchy: each level halves every axis longer than one site, rounding up
    (pairs of cells, a lone last cell on an odd axis), down to a single cell."""
    shapes = [tuple(int(n) for n in shape)]
    while max(shapes[-1]) > 1:
        shapes.append(tuple((n + 1) // 2 for n in shapes[-1]))
    return shapes


def mgcg_workspace_nbytes(shape: tuple[int, int, int]) -> int:
    """Bytes :class:`MgcgWorkspace` allocates for ``shape`` (its ``nbytes``), counted without allocating: x in
    float64, r, p and z in float32, one float64 partial per row, and per coarse level e, f, m, b and one
    face-weight array per axis longer than one cell, float32.  Per site this is 28-29 B in 2D and 24-25 in 3D, but
    about 40-42 on thin lattices (1 x 1 x n: the coarse levels hold about as many cells as the lattice)."""
    shapes = mgcg_shapes(shape)
    nz, ny, nx = shapes[0]
    total = nz * ny * nx * (8 + 3 * 4) + nz * ny * 8
    for s in shapes[1:]:
        total += int(np.prod(s)) * 4 * (4 + sum(1 for n in s if n > 1))
    return total


#: Safety factor on the mgcg error estimate delta * rho / (1 - rho): the contraction rho is read off the last two
#: update ratios, and CG's ratios vary from one iteration to the next (measured: up to 2x underestimates without
#: it, docs/o2-solver.md).
MGCG_SAFETY = 2.0


def mgcg_error_estimate(delta: float, prev: float, prev_ratio: float) -> tuple[float, float]:
    """(estimated max-norm error left, this update's ratio) after a CG update of max-norm ``delta`` that followed
    one of ``prev`` whose ratio was ``prev_ratio`` (0 for the first).  The contraction rho is the larger of the
    last two ratios; the error left is MGCG_SAFETY * delta * rho / (1 - rho), infinite after the first update or
    while rho >= 1.  The compiled kernel evaluates the same expressions."""
    if prev <= 0.0:
        return float("inf"), 0.0
    ratio = delta / prev
    rho = ratio if ratio > prev_ratio else prev_ratio
    if rho >= 1.0:
        return float("inf"), ratio
    return MGCG_SAFETY * delta * rho / (1.0 - rho), ratio


def mgcg_cycle_work(shapes: list[tuple[int, int, int]], smooth: int) -> float:
    """Lattice-sweep equivalents of one mgcg V-cycle over the level ``shapes``: on every level 2*smooth sweeps
    and one residual (none on the coarsest), each weighted by its number of sites."""
    n0 = float(np.prod(shapes[0]))
    work = 0.0
    for lvl, s in enumerate(shapes):
        work += (2 * smooth + (1 if lvl < len(shapes) - 1 else 0)) * float(np.prod(s)) / n0
    return work


def mgcg_level_arrays(shape: int | tuple[int, ...], gshape: tuple[int, int, int]) -> dict:
    """The arrays of one coarse mgcg level, float32 of ``shape`` (flat size or local 3D shape): correction ``e``,
    right-hand side ``f``, mass ``m``, leak ``b`` and face weights ``w`` (None along an axis where the level's
    global shape ``gshape`` has one cell)."""
    def z() -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)
    return {"e": z(), "f": z(), "m": z(), "b": z(), "w": [z() if gshape[a] > 1 else None for a in range(3)]}


class MgcgTail:
    """The coarse levels ``first`` .. of an mgcg hierarchy, whole, as the rank that solves the agglomerated
    tail of a distributed solve holds them (the levels of :class:`MgcgWorkspace` from ``first`` on; the finer
    ones hold nothing)."""

    def __init__(self, shape: tuple[int, int, int], first: int, parallel_sites: int = 16384) -> None:
        self.shapes = mgcg_shapes(shape)
        if not 1 <= first < len(self.shapes):
            raise ValueError(f"first level {first} outside 1..{len(self.shapes) - 1}")
        self.first = first
        self.parallel_sites = int(parallel_sites)
        self.scale = MGCG_COARSE_SCALE
        self.levels = [{} for _ in range(first)] + [mgcg_level_arrays(int(np.prod(s)), s)
                                                    for s in self.shapes[first:]]

    @property
    def nbytes(self) -> int:
        return sum(sum(lv[k].nbytes for k in ("e", "f", "m", "b")) + sum(w.nbytes for w in lv["w"] if w is not None)
                   for lv in self.levels[self.first:])


class MgcgWorkspace:
    """Scratch of the compiled mgcg O2 solve for one lattice shape, allocated once per run.

    Attributes
    ----------
    shapes : level shapes (:func:`mgcg_shapes`).
    x : the float64 iterate of CG.
    r, p, z : float32 lattice vectors of CG (residual, search direction, preconditioned residual which also holds
        A p); every operation on them is evaluated in float64 and rounded when stored.
    part : per-row partials of the dot products and maxima.
    levels : per level, a dict of flat float32 arrays (level 0 holds none): ``e``, ``f``, ``m``, ``b`` and
        ``w`` (three arrays, or None along an axis of one site), from :func:`mgcg_level_arrays`.
    """

    def __init__(self, shape: tuple[int, int, int], parallel_sites: int = 16384) -> None:
        self.shapes = mgcg_shapes(shape)
        self.parallel_sites = int(parallel_sites)
        self.scale = MGCG_COARSE_SCALE
        self.safety = MGCG_SAFETY
        n = int(np.prod(self.shapes[0]))
        self.x = np.zeros(n)
        self.r, self.p, self.z = (np.zeros(n, dtype=np.float32) for _ in range(3))
        self.part = np.zeros(self.shapes[0][0] * self.shapes[0][1])
        self.levels = [{}] + [mgcg_level_arrays(int(np.prod(s)), s) for s in self.shapes[1:]]

    def cycle_work(self, smooth: int) -> float:
        """Lattice-sweep equivalents of one V-cycle (:func:`mgcg_cycle_work`)."""
        return mgcg_cycle_work(self.shapes, smooth)

    @property
    def nbytes(self) -> int:
        total = self.x.nbytes + self.r.nbytes + self.p.nbytes + self.z.nbytes + self.part.nbytes
        for lv in self.levels[1:]:
            total += sum(lv[k].nbytes for k in ("e", "f", "m", "b")) + sum(w.nbytes for w in lv["w"] if w is not None)
        return total


def flow_inlet_codes(nodes: np.ndarray, inlet: np.ndarray, gshape: tuple[int, int, int],
                     edge_inlets: bool) -> np.ndarray:
    """Inlet codes of the flow solve (0 none, 1 arterial, 2 venous) of vessel nodes (sorted global flat indices)
    whose ``inlet`` values are given: the values themselves, and with ``edge_inlets`` a vessel on a lattice face
    that is not flagged is arterial on a low face (index 0 of an axis longer than one site) and venous on a high
    face (low wins at a corner).  Pure NumPy: the engine, every MPI rank and the reference use this one rule."""
    codes = np.asarray(inlet, dtype=np.uint8).copy()
    if not edge_inlets or nodes.size == 0:
        return codes
    nz, ny, nx = gshape
    x = nodes % nx
    y = (nodes // nx) % ny
    z = nodes // (nx * ny)
    low = np.zeros(nodes.shape, dtype=bool)
    high = np.zeros(nodes.shape, dtype=bool)
    for c, n in ((z, nz), (y, ny), (x, nx)):
        if n > 1:
            low |= c == 0
            high |= c == n - 1
    free = codes == 0
    codes[free & high] = 2
    codes[free & low] = 1
    return codes
