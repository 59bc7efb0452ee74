"""The default quasi-steady O2 solve in NumPy: conjugate gradients preconditioned by a symmetric aggregation
multigrid V-cycle (``o2_solver = "mgcg"``), the twin of the ``mgcg`` kernels of ``ext/_o2.pyx``.

Every expression is written in the order the kernels evaluate it, in float64 arithmetic on values stored in
float32 (``c``, the CG vectors r, p, z, the preconditioner's lattice correction and every array of the coarse
levels: widened where they are read, rounded where they are stored) and on the float64 iterate x.  Sums over the lattice
(dot products) are taken per row (an x-line), sequentially, and the row partials summed in row order, so that
both give bit-identical fields.
"""
from __future__ import annotations

import numpy as np

from .._numerics import MGCG_COARSE_SCALE, mgcg_error_estimate, mgcg_shapes
from ._lattice import VN, shifted


def _pair_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """out[J] = a[2J] + a[2J + 1] along ``axis`` (a lone last child is copied); axes of length 1 are kept."""
    n = a.shape[axis]
    if n == 1:
        return a
    lo = np.take(a, np.arange(0, n - 1, 2), axis=axis)
    hi = np.take(a, np.arange(1, n, 2), axis=axis)
    out = lo + hi
    if n % 2:
        out = np.concatenate([out, np.take(a, [n - 1], axis=axis)], axis=axis)
    return out


def coarsen_sum(a: np.ndarray, skip: int = -1) -> np.ndarray:
    """Sum of the children of each coarse cell: pairs along x, then y, then z (``skip``: an axis left alone)."""
    for axis in (2, 1, 0):
        if axis != skip:
            a = _pair_sum(a, axis)
    return a


def crossing(w: np.ndarray, axis: int) -> np.ndarray:
    """The fine weights that cross from coarse cell J to J + 1 along ``axis``: w[2J + 1] (0 for a lone last
    cell), other axes untouched."""
    n = w.shape[axis]
    out = np.take(w, np.arange(1, n, 2), axis=axis)
    if n % 2:
        shape = list(w.shape)
        shape[axis] = 1
        out = np.concatenate([out, np.zeros(shape)], axis=axis)
    return out


def _offset(axis: int, step: int) -> tuple[int, int, int]:
    off = [0, 0, 0]
    off[axis] = step
    return tuple(off)


class Level:
    """One coarse level: ``diag e_i - sum_j w_ij e_j = f_i`` with weights ``w[a]`` to the + neighbour along
    axis a (z, y, x) and ``diag = m + b + (the weights of its 6 faces)``; a cell with ``diag == 0`` (all its
    children are sources) is inactive, its correction stays 0.  m, b, w, e and f are stored in float32."""

    def __init__(self, m, b, w):
        self.m32, self.b32, self.w32 = m, b, w
        m, b = m.astype(np.float64), b.astype(np.float64)
        self.w = w = [a.astype(np.float64) for a in w]
        self.shape = m.shape
        self.parity = np.indices(self.shape).sum(axis=0) % 2
        d = m + b
        for axis in (2, 1, 0):
            d = d + shifted(w[axis], _offset(axis, -1), 0.0)
            d = d + w[axis]
        self.diag = d
        self.active = d > 0

    def terms(self, e, f):
        """f + w[x-1] e[x-1] + w[x] e[x+1] + (y) + (z) in float64 (e and f float32); a missing neighbour adds
        0.0."""
        e = e.astype(np.float64)
        t = f.astype(np.float64)
        for axis in (2, 1, 0):
            t = t + shifted(self.w[axis], _offset(axis, -1), 0.0) * shifted(e, _offset(axis, -1), 0.0)
            t = t + self.w[axis] * shifted(e, _offset(axis, 1), 0.0)
        return t

    def half_sweep(self, e, f, color):
        upd = (self.parity == color) & self.active
        new = np.where(self.active, self.terms(e, f) / np.where(self.active, self.diag, 1.0), 0.0)
        e[upd] = new[upd].astype(np.float32)

    def residual(self, e, f):
        """The residual in float64 (e and f float32)."""
        return np.where(self.active, self.terms(e, f) - self.diag * e.astype(np.float64), 0.0)


def coarsen(m, b, w, scale):
    """The operator of the next coarser level from (m, b, w) of this one (see :class:`Level`): sums in float64,
    stored in float32."""
    m, b = m.astype(np.float64), b.astype(np.float64)
    m2 = coarsen_sum(m)
    b2 = scale * coarsen_sum(b)
    w2 = []
    for axis in range(3):
        if m.shape[axis] > 1:
            w2.append(scale * coarsen_sum(crossing(w[axis].astype(np.float64), axis), skip=axis))
        else:
            w2.append(np.zeros(m2.shape))
    return m2.astype(np.float32), b2.astype(np.float32), [a.astype(np.float32) for a in w2]


def prolong(e, shape):
    """Piecewise-constant prolongation of a coarse correction to ``shape``."""
    for axis in range(3):
        if shape[axis] > 1:
            e = np.take(np.repeat(e, 2, axis=axis), np.arange(shape[axis]), axis=axis)
    return e


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum of a*b (in float64): per row (x-line) from 0.0 in x order, then the row partials from 0.0 in row
    order."""
    prod = (a.astype(np.float64) * b.astype(np.float64)).reshape(-1, a.shape[-1])
    rows = np.cumsum(np.concatenate([np.zeros((prod.shape[0], 1)), prod], axis=1), axis=1)[:, -1]
    return float(np.cumsum(np.concatenate([[0.0], rows]))[-1])


class Fine:
    """The lattice: ``diag_i c_i - k * sum of neighbours = 0`` at free sites, sources held.  For the correction
    equations (preconditioner, A p) a source neighbour and a Dirichlet ghost count as 0."""

    def __init__(self, tissue, source, uptake, k, dirichlet, edge_value):
        shape = tissue.shape
        self.k = k
        self.src = source != 0
        self.free = ~self.src
        self.parity = np.indices(shape).sum(axis=0) % 2
        nn = np.zeros(shape, dtype=np.int64)
        nb = np.zeros(shape, dtype=np.int64)
        self.ghosts = []
        for off in VN:
            axis = int(np.flatnonzero(off)[0])
            edge_counts = dirichlet and shape[axis] > 1
            inside = shifted(np.ones(shape, dtype=bool), off, False)
            nn += inside | edge_counts
            nb += (inside & shifted(self.src, off, False)) | (~inside & edge_counts)
            self.ghosts.append(np.float64(edge_value) if edge_counts else np.float64(0.0))
        lam = uptake[tissue]
        self.diag = k * nn + lam
        self.m = np.where(self.free, lam, 0.0)
        self.b = np.where(self.free, k * nb, 0.0)
        self.w = []
        for axis in range(3):
            nbr = shifted(self.free, _offset(axis, 1), False)
            self.w.append(np.where(self.free & nbr, k, 0.0))

    def neighbours(self, v, ghosts):
        s = np.zeros(v.shape)
        for off, g in zip(VN, ghosts):
            s = s + shifted(v, off, g)
        return s

    def residual_full(self, x):
        """k*S(x) - diag*x with the sources' values and the Dirichlet ghosts, 0 on sources."""
        return np.where(self.free, self.k * self.neighbours(x, self.ghosts) - self.diag * x, 0.0)

    def apply(self, p):
        """A p (float32 p, float32 result): diag*p - k*S(p), neighbours outside counting 0; 0 on sources."""
        p64 = p.astype(np.float64)
        return np.where(self.free, self.diag * p64 - self.k * self.neighbours(p64, [0.0] * 6),
                        0.0).astype(np.float32)

    def half_sweep(self, z, r, color):
        """One colour of red-black Gauss-Seidel on the float32 correction z for the float32 right-hand side r."""
        upd = (self.parity == color) & self.free
        new = (r.astype(np.float64) + self.k * self.neighbours(z.astype(np.float64), [0.0] * 6)) / self.diag
        z[upd] = new[upd].astype(np.float32)

    def residual(self, z, r):
        """r + k*S(z) - diag*z in float64, 0 on sources."""
        z64 = z.astype(np.float64)
        return np.where(self.free, r.astype(np.float64) + self.k * self.neighbours(z64, [0.0] * 6)
                        - self.diag * z64, 0.0)


class Hierarchy:
    """The lattice and its aggregation levels for one solve (the coarse operators depend on tissue and
    sources, so they are rebuilt every solve)."""

    def __init__(self, fine: Fine, smooth: int, scale: float | None = None):
        scale = MGCG_COARSE_SCALE if scale is None else scale
        self.fine = fine
        self.smooth = smooth
        self.shapes = mgcg_shapes(fine.diag.shape)
        self.levels = [None]
        m, b, w = fine.m, fine.b, fine.w
        for _ in range(1, len(self.shapes)):
            m, b, w = coarsen(m, b, w, scale)
            self.levels.append(Level(m, b, w))

    def _vcycle(self, lvl, f):
        """The correction (float32) of level ``lvl`` for the right-hand side ``f`` (float32)."""
        L = self.levels[lvl]
        e = np.zeros(L.shape, dtype=np.float32)
        for _ in range(self.smooth):
            L.half_sweep(e, f, 0)
            L.half_sweep(e, f, 1)
        if lvl + 1 < len(self.levels):
            f2 = coarsen_sum(L.residual(e, f)).astype(np.float32)
            e2 = self._vcycle(lvl + 1, f2)
            e = np.where(L.active, (e.astype(np.float64) + prolong(e2, L.shape).astype(np.float64)
                                    ).astype(np.float32), e)
        for _ in range(self.smooth):
            L.half_sweep(e, f, 1)
            L.half_sweep(e, f, 0)
        return e

    def apply(self, r):
        """z = B r (float32): the symmetric V-cycle from z = 0 (pre-smoothing red then black, post-smoothing in
        reverse)."""
        F = self.fine
        z = np.zeros(r.shape, dtype=np.float32)
        for _ in range(self.smooth):
            F.half_sweep(z, r, 0)
            F.half_sweep(z, r, 1)
        if len(self.levels) > 1:
            f1 = coarsen_sum(F.residual(z, r)).astype(np.float32)
            e1 = self._vcycle(1, f1)
            z = np.where(F.free, (z.astype(np.float64) + prolong(e1, z.shape).astype(np.float64)
                                  ).astype(np.float32), z)
        for _ in range(self.smooth):
            F.half_sweep(z, r, 1)
            F.half_sweep(z, r, 0)
        return z


def o2_solve_mgcg(c, tissue, source, uptake, k, source_value, dirichlet, edge_value, smooth, tol, max_iter,
                  source_values=None):
    """Quasi-steady O2, ``k*lap(c) - uptake[tissue]*c = 0`` with ``c`` held on source sites, by preconditioned
    conjugate gradients; ``c`` (float32) is updated in place.  Returns (iterations, error estimate in mmHg,
    V-cycles applied).

    Source sites hold ``source_value``, or ``source_values`` (a float32 array) where given.  The stopping test
    is :func:`tumorca._numerics.mgcg_error_estimate` <= ``tol``; the solve also stops at ``max_iter`` iterations.
    """
    src = source != 0
    if source_values is None:
        c[src] = np.float32(source_value)
    else:
        c[src] = source_values[src]
    F = Fine(tissue, source, uptake, k, dirichlet, edge_value)
    H = Hierarchy(F, smooth)
    x = c.astype(np.float64)
    r = F.residual_full(x).astype(np.float32)
    z = H.apply(r)
    vcycles = 1
    rz = dot(r, z)
    p = z
    its, est, prev, prev_ratio = 0, 0.0, 0.0, 0.0
    while its < max_iter:
        if not rz > 0.0:  # r = 0: the iterate is the solution
            est = 0.0
            break
        q = F.apply(p)
        pq = dot(p, q)
        if not pq > 0.0:  # p = 0, hence r = 0
            est = 0.0
            break
        alpha = rz / pq
        d = alpha * p.astype(np.float64)
        x = x + d
        r = (r.astype(np.float64) - alpha * q.astype(np.float64)).astype(np.float32)
        delta = float(np.abs(d).max())
        its += 1
        est, prev_ratio = mgcg_error_estimate(delta, prev, prev_ratio)
        prev = delta
        if est <= tol:
            break
        z = H.apply(r)
        vcycles += 1
        rz_new = dot(r, z)
        beta = rz_new / rz
        p = (z.astype(np.float64) + beta * p.astype(np.float64)).astype(np.float32)
        rz = rz_new
    c[~src] = x[~src].astype(np.float32)
    return its, est, vcycles
