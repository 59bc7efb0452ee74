"""The quasi-steady O2 solve in NumPy: the twin of ``ext/_o2.pyx`` (red-black SOR and geometric multigrid)."""
from __future__ import annotations


import numpy as np

from .._numerics import MG_COARSE_SWEEPS, MultigridPlan
from ._lattice import VN, shifted


class _Lattice:
    """The O2 operator on the lattice: ``diag_i c_i - k * sum of neighbours = 0`` at every free site.

    At a lattice face a missing neighbour is dropped from stencil and diagonal (no-flux) or, with ``dirichlet``
    on an axis longer than one site, counts with ``edge_value`` (a ghost).
    """

    def __init__(self, c, tissue, source, uptake, k, dirichlet, edge_value):
        self.k = k
        self.src = source != 0
        self.parity = np.indices(c.shape).sum(axis=0) % 2
        nn = np.zeros(c.shape, dtype=np.int64)
        self.ghosts = []
        for off in VN:
            axis = int(np.flatnonzero(off)[0])
            edge_counts = dirichlet and c.shape[axis] > 1
            inside = shifted(np.ones(c.shape, dtype=bool), off, False)
            nn += inside | edge_counts
            self.ghosts.append(np.float64(edge_value) if edge_counts else np.float64(0.0))
        self.diag = k * nn + uptake[tissue]

    def neighbour_sum(self, c):
        """Sum of the six neighbours in the order -x, +x, -y, +y, -z, +z (float64)."""
        s = np.zeros(c.shape, dtype=np.float64)
        for off, ghost in zip(VN, self.ghosts):
            s = s + shifted(c.astype(np.float64), off, ghost)
        return s

    def sweep(self, c, omega):
        """One red-black SOR sweep of ``c`` in place (red: x+y+z even); returns its largest Jacobi correction."""
        rmax = 0.0
        for color in (0, 1):
            gs = (self.k * self.neighbour_sum(c)) / self.diag
            old = c.astype(np.float64)
            corr = gs - old
            upd = (self.parity == color) & ~self.src
            c[upd] = (old + omega * corr)[upd].astype(np.float32)
            if upd.any():
                rmax = max(rmax, float(np.abs(corr[upd]).max()))
        return rmax

    def residual(self, c):
        """``k*s - diag*c`` (float64), 0 on source sites."""
        r = self.k * self.neighbour_sum(c) - self.diag * c.astype(np.float64)
        r[self.src] = 0.0
        return r


def o2_solve(c: np.ndarray, tissue: np.ndarray, source: np.ndarray, uptake: np.ndarray, k: float,
             source_value: float, dirichlet: bool, edge_value: float, omega: float, tol: float,
             max_sweeps: int) -> tuple[int, float]:
    """Quasi-steady O2, ``k*lap(c) - uptake[tissue]*c = 0``, by red-black SOR; ``c`` is updated in place.

    Source sites are held at ``source_value``.  At a lattice face a missing neighbour is dropped from stencil
    and diagonal (no-flux) or, with ``dirichlet`` on an axis longer than one site, counts with ``edge_value``.
    A sweep updates the sites with (x+y+z) even, then odd; it stops once the largest Jacobi correction
    ``|gs - c|`` seen in a full sweep is <= tol.  Returns (sweeps, that correction).
    """
    c[source != 0] = np.float32(source_value)
    lat = _Lattice(c, tissue, source, uptake, k, dirichlet, edge_value)
    sweeps, rmax = 0, 0.0
    while sweeps < max_sweeps:
        rmax = lat.sweep(c, omega)
        sweeps += 1
        if rmax <= tol:
            break
    return sweeps, rmax


# Multigrid.  Axis passes of the separable transfers; the tables come from MultigridPlan.
def _along(w: np.ndarray, axis: int) -> np.ndarray:
    """A 1D weight vector shaped to broadcast along ``axis`` of a 3D array."""
    shape = [1, 1, 1]
    shape[axis] = -1
    return w.reshape(shape)


def _restrict(a: np.ndarray, transfer) -> np.ndarray:
    """Coarse J = sum over t = 0..3 of rw[J, t] * fine[ridx[J, t]], along x, then y, then z."""
    for axis in (2, 1, 0):
        if transfer[axis] is not None:
            ridx, rw = transfer[axis][4:]
            out = _along(rw[:, 0], axis) * np.take(a, ridx[:, 0], axis=axis)
            for t in (1, 2, 3):
                out = out + _along(rw[:, t], axis) * np.take(a, ridx[:, t], axis=axis)
            a = out
    return a


def _prolong(a: np.ndarray, transfer) -> np.ndarray:
    """Fine i = wa[i] * coarse[ja[i]] + wb[i] * coarse[jb[i]], along z, then y, then x."""
    for axis in (0, 1, 2):
        if transfer[axis] is not None:
            ja, jb, wa, wb = transfer[axis][:4]
            a = _along(wa, axis) * np.take(a, ja, axis=axis) + _along(wb, axis) * np.take(a, jb, axis=axis)
    return a


def _pair_mean(a: np.ndarray, transfer) -> np.ndarray:
    """Mean of the two children (the lone child of an odd end) of each coarse cell, along x, then y, then z."""
    for axis in (2, 1, 0):
        if transfer[axis] is not None:
            n = a.shape[axis]
            lo = np.take(a, np.arange(0, n, 2), axis=axis)
            hi = np.take(a, np.arange(1, n, 2), axis=axis)
            pairs = np.take(lo, np.arange(n // 2), axis=axis)
            mean = (pairs + hi) * 0.5
            a = mean if n % 2 == 0 else np.concatenate([mean, np.take(lo, [n // 2], axis=axis)], axis=axis)
    return a


class _Coarse:
    """The correction equation on one coarse level: ``diag e - sum_a k_a (e[-a] + e[+a]) = f``, with a missing
    neighbour dropped (no-flux) or counted in the diagonal as a 0 correction (Dirichlet axis)."""

    def __init__(self, shape, k_axes, dirichlet_axes, uptake):
        self.k = k_axes  # (kz, ky, kx)
        self.parity = np.indices(shape).sum(axis=0) % 2
        idx = np.indices(shape)
        nn = [np.full(shape, 2) if dirichlet_axes[a] else (idx[a] > 0).astype(np.int64) + (idx[a] < shape[a] - 1)
              for a in range(3)]
        self.diag = self.k[2] * nn[2]
        self.diag = self.diag + self.k[1] * nn[1]
        self.diag = self.diag + self.k[0] * nn[0]
        self.diag = self.diag + uptake

    def terms(self, e, f):
        """f + kx*(e[x-1] + e[x+1]) + ky*(...) + kz*(...), each neighbour sum from 0.0, missing ones as 0.0."""
        t = f
        for axis in (2, 1, 0):
            s = np.zeros(e.shape)
            for step in (-1, 1):
                off = [0, 0, 0]
                off[axis] = step
                s = s + shifted(e, tuple(off), 0.0)
            t = t + self.k[axis] * s
        return t

    def sweep(self, e, f):
        for color in (0, 1):
            new = self.terms(e, f) / self.diag
            upd = self.parity == color
            e[upd] = new[upd]

    def residual(self, e, f):
        return self.terms(e, f) - self.diag * e


def o2_solve_multigrid(c: np.ndarray, tissue: np.ndarray, source: np.ndarray, uptake: np.ndarray, k: float,
                       source_value: float, dirichlet: bool, edge_value: float, vessel_uptake: float,
                       presmooth: int, postsmooth: int, tol: float, max_cycles: int) -> tuple[int, float]:
    """Quasi-steady O2 by multigrid V-cycles; ``c`` is updated in place.  Returns (V-cycles, last correction).

    The lattice level is the equation of :func:`o2_solve` with its source sites held exactly, smoothed by
    red-black Gauss-Seidel (the SOR sweep with omega = 1).  The levels of
    :class:`tumorca._numerics.MultigridPlan` below it solve for the correction: their uptake is the mean over
    each cell's children of the uptake above, where a source site counts as ``vessel_uptake``; their residual
    comes down by the plan's restriction and their correction goes up by its prolongation (never onto a source
    site).  Every level but the coarsest gets ``presmooth`` sweeps down and ``postsmooth`` sweeps up; the
    coarsest gets MG_COARSE_SWEEPS.  The solve stops after the first V-cycle whose last lattice sweep has no
    Jacobi correction above ``tol`` (the SOR test), or after ``max_cycles``.
    """
    plan = MultigridPlan(c.shape)
    src = source != 0
    c[src] = np.float32(source_value)
    lat = _Lattice(c, tissue, source, uptake, k, dirichlet, edge_value)
    dirichlet_axes = [dirichlet and n > 1 for n in c.shape]
    lam = np.where(src, vessel_uptake, uptake[tissue])
    levels = [None]
    for lvl in range(1, plan.levels):
        lam = _pair_mean(lam, plan.transfers[lvl - 1])
        levels.append(_Coarse(plan.shapes[lvl], [k * s for s in plan.kscale[lvl]], dirichlet_axes, lam))
    last = plan.levels - 1
    cycles, rmax = 0, 0.0
    while cycles < max_cycles:
        for _ in range(presmooth):
            lat.sweep(c, 1.0)
        if last > 0:
            f = [None] * plan.levels
            e = [None] * plan.levels
            r = lat.residual(c)
            for lvl in range(1, plan.levels):
                f[lvl] = _restrict(r, plan.transfers[lvl - 1])
                e[lvl] = np.zeros(plan.shapes[lvl])
                for _ in range(MG_COARSE_SWEEPS if lvl == last else presmooth):
                    levels[lvl].sweep(e[lvl], f[lvl])
                if lvl < last:
                    r = levels[lvl].residual(e[lvl], f[lvl])
            for lvl in range(last - 1, 0, -1):
                e[lvl] = e[lvl] + _prolong(e[lvl + 1], plan.transfers[lvl])
                for _ in range(postsmooth):
                    levels[lvl].sweep(e[lvl], f[lvl])
            p = _prolong(e[1], plan.transfers[0])
            c[~src] = (c.astype(np.float64) + p)[~src].astype(np.float32)
        for _ in range(postsmooth):
            rmax = lat.sweep(c, 1.0)
        cycles += 1
        if rmax <= tol:
            break
    return cycles, rmax
