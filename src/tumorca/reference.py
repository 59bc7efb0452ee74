"""The tumorca step in plain, vectorised NumPy: the executable specification of the model.

Every rule here is written to be read; the compiled kernels in ``ext/`` must agree with it bit for bit
(tests/test_reference.py).  It never imports those kernels.  To agree bit for bit both sides follow the same
conventions:

* fields are stored in float32 and every arithmetic expression is evaluated in float64, term by term in the same
  order, then rounded to float32 when stored;
* no transcendental function is evaluated per site: hazards become per-step probabilities once per run
  (:meth:`tumorca.Params.rates`);
* random numbers are Philox4x32-10 words of (seed, step, site, purpose), so the order of evaluation is free.

It is one to two orders of magnitude slower than the kernels and meant for small lattices.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._constants import (FIELD_NAMES, KILL_OWN_SITE, MOORE, NEIGHBOUR_ADJACENCY, PROP_DIR_MASK, PROP_STATE_SHIFT, PURPOSE_NEUT,
                         PURPOSE_NEUT_MOVE, PURPOSE_SPROUT, PURPOSE_TIP, PURPOSE_TUMOR, SPROUT_CANDIDATE, TIP_BRANCH,
                         TIP_FUSE, Cell)
from ._numerics import MG_COARSE_SWEEPS, MultigridPlan, float32_exact, tridiagonal_factors
from .params import Params

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------------------------
# Random numbers
# ---------------------------------------------------------------------------------------------------------------
def philox4x32_10(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 (Salmon et al., SC'11) of counters ``(n, 4)`` uint32 under one key of two words."""
    c = [np.asarray(counter[..., i], dtype=np.uint32) for i in range(4)]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        p0 = _M0 * c[0].astype(np.uint64)
        p1 = _M1 * c[2].astype(np.uint64)
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
        c = [hi1 ^ c[1] ^ np.uint32(k0), lo1, hi0 ^ c[3] ^ np.uint32(k1), lo0]
    return np.stack(c, axis=-1)


def draw(seed: int, step: int, sites: np.ndarray, purpose: int) -> np.ndarray:
    """The four uint32 words of (seed, step, site, purpose) for each site: shape ``sites.shape + (4,)``."""
    sites = np.asarray(sites, dtype=np.uint64)
    ctr = np.empty(sites.shape + (4,), dtype=np.uint32)
    ctr[..., 0] = (sites & np.uint64(_MASK32)).astype(np.uint32)
    ctr[..., 1] = (sites >> np.uint64(32)).astype(np.uint32)
    ctr[..., 2] = step
    ctr[..., 3] = purpose
    return philox4x32_10(ctr, (seed & _MASK32, seed >> 32))


def u01(w: np.ndarray) -> np.ndarray:
    """Words as float64 in [0, 1): w * 2**-32, exact."""
    return w.astype(np.float64) * 2.0 ** -32


def below(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, n) from words, by multiply-shift: (w * n) >> 32."""
    return (w.astype(np.uint64) * n.astype(np.uint64)) >> np.uint64(32)


# ---------------------------------------------------------------------------------------------------------------
# Neighbourhood helpers
# ---------------------------------------------------------------------------------------------------------------
def shifted(a: np.ndarray, offset: tuple[int, int, int], fill) -> np.ndarray:
    """``out[i] = a[i + offset]`` where that lies in the lattice, ``fill`` elsewhere."""
    out = np.full_like(a, fill)
    src, dst = [], []
    for o, n in zip(offset, a.shape):
        src.append(slice(max(o, 0), n + min(o, 0)))
        dst.append(slice(max(-o, 0), n + min(-o, 0)))
    out[tuple(dst)] = a[tuple(src)]
    return out


# The 6 von Neumann neighbours in the order the O2 stencil sums them: -x, +x, -y, +y, -z, +z.
_VN = ((0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0))


# ---------------------------------------------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------------------------------------------
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
        for off in _VN:
            axis = int(np.flatnonzero(off)[0])
            edge_counts = dirichlet and c.shape[axis] > 1
            inside = shifted(np.ones(c.shape, dtype=bool), off, False)
            nn += inside | edge_counts
            self.ghosts.append(np.float64(edge_value) if edge_counts else np.float64(0.0))
        self.diag = k * nn + uptake[tissue]

    def neighbour_sum(self, c):
        """Sum of the six neighbours in the order -x, +x, -y, +y, -z, +z (float64)."""
        s = np.zeros(c.shape, dtype=np.float64)
        for off, ghost in zip(_VN, self.ghosts):
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


def implicit_axis(c: np.ndarray, axis: int, alpha: float, gain: float, dirichlet: bool,
                  edge_value: float = 0.0) -> None:
    """Backward-Euler diffusion along ``axis`` of ``c`` (float32, in place), by the Thomas algorithm.

    Each line is multiplied by ``gain`` and solved for ``(1 + alpha*nn_i) x_i - alpha (x_{i-1} + x_{i+1}) = d_i``
    (see :func:`tumorca._numerics.tridiagonal_factors`); a Dirichlet end adds ``alpha*edge_value`` to d.
    """
    n = c.shape[axis]
    cp, m = tridiagonal_factors(n, alpha, dirichlet and n > 1)
    edge_add = alpha * edge_value if (dirichlet and n > 1) else 0.0
    v = np.moveaxis(c, axis, 0)  # a view: writes go to c
    y = np.empty(v.shape, dtype=np.float64)
    for i in range(n):
        d = v[i].astype(np.float64) * gain
        if i == 0:
            d = d + edge_add
        if i == n - 1:
            d = d + edge_add
        y[i] = d * m[0] if i == 0 else (d + alpha * y[i - 1]) * m[i]
    v[n - 1] = y[n - 1].astype(np.float32)
    for i in range(n - 2, -1, -1):
        y[i] = y[i] - cp[i] * y[i + 1]
        v[i] = y[i].astype(np.float32)


def diffuse(c: np.ndarray, alpha: float, gain: float, dirichlet: bool) -> None:
    """One implicit step of a slow field: decay by ``gain`` then diffusion along x, y, z in turn (LOD)."""
    implicit_axis(c, 2, alpha, gain, dirichlet)
    for axis in (1, 0):
        if c.shape[axis] > 1:
            implicit_axis(c, axis, alpha, 1.0, dirichlet)


# ---------------------------------------------------------------------------------------------------------------
# Tumour cells
# ---------------------------------------------------------------------------------------------------------------
def tumor_update(tissue: np.ndarray, clock: np.ndarray, o2: np.ndarray, seed: int, step: int,
                 rates: dict[str, float], params: Params) -> int:
    """One step of every tumour cell, in place.

    Pass 1, each live tumour cell (words w0..w3 of its Philox draw):
      * necrosis with probability ``p_nec_max * ramp`` where ramp falls from 1 at ``necrosis_o2_full`` to 0 at
        ``necrosis_o2_onset`` (w0);
      * else a cycling cell below ``quiescence_o2_enter`` becomes quiescent;
      * else it divides with probability ``p_div_max * ramp(cycle_o2_low -> cycle_o2_high)`` (w1) into the
        ``below(w2, k)``-th of its k empty Moore neighbours (MOORE order); none empty: contact-inhibited;
      * a quiescent cell counts its steps quiescent, dies when they reach ``q_death_steps``, and cycles again
        above ``quiescence_o2_exit``.
    Pass 2: each empty site takes the proposal aimed at it with the largest key w3 (first in MOORE order on a
    tie) and becomes a cycling cell; every live cell takes its decided state.  Returns the number of births.
    """
    shape = tissue.shape
    t = tissue.copy()
    o = o2.astype(np.float64)
    sites = np.arange(t.size, dtype=np.uint64).reshape(shape)
    w = draw(seed, step, sites, PURPOSE_TUMOR)
    live = (t == Cell.TUMOR_P) | (t == Cell.TUMOR_Q)

    p = params
    p_nec = rates["p_nec_max"] * np.clip((p.necrosis_o2_onset - o) / (p.necrosis_o2_onset - p.necrosis_o2_full),
                                         0.0, 1.0)
    necrotic = live & (u01(w[..., 0]) < p_nec)
    cycling = (t == Cell.TUMOR_P) & ~necrotic
    to_q = cycling & (o < p.quiescence_o2_enter)
    p_div = rates["p_div_max"] * np.clip((o - p.cycle_o2_low) / (p.cycle_o2_high - p.cycle_o2_low), 0.0, 1.0)
    divides = cycling & ~to_q & (u01(w[..., 1]) < p_div)

    empty = t == Cell.EMPTY
    empty_nb = [shifted(empty, off, False) for off in MOORE]
    k = np.sum(empty_nb, axis=0)
    j = below(w[..., 2], k).astype(np.int64)
    direction = np.zeros(shape, dtype=np.int64)
    seen = np.zeros(shape, dtype=np.int64)
    for d, e in enumerate(empty_nb):
        pick = divides & e & (seen == j) & (direction == 0)
        direction[pick] = d + 1
        seen += e

    quiescent = (t == Cell.TUMOR_Q) & ~necrotic
    qt = clock.astype(np.int64) + 1
    dies = quiescent & (qt >= rates["q_death_steps"])
    to_p = quiescent & ~dies & (o > p.quiescence_o2_exit)

    new = t.copy()
    new[necrotic | dies] = Cell.NECROTIC
    new[to_q] = Cell.TUMOR_Q
    new[to_p] = Cell.TUMOR_P
    stays_q = live & (new == Cell.TUMOR_Q)
    clock[live] = 0
    keep = stays_q & (t == Cell.TUMOR_Q)
    clock[keep] = np.minimum(qt[keep], 65535).astype(np.uint16)
    prop = np.where(live, direction | (new.astype(np.int64) << PROP_STATE_SHIFT), 0)

    # pass 2: gather
    best = np.full(shape, -1, dtype=np.int64)
    key = w[..., 3].astype(np.int64)
    for d, off in enumerate(MOORE):
        back = tuple(-o_ for o_ in off)
        aimed = shifted((prop & PROP_DIR_MASK) == d + 1, back, False)
        kk = shifted(key, back, -1)
        best = np.where(aimed & (kk > best), kk, best)
    born = empty & (best >= 0)
    tissue[live] = new[live]
    tissue[born] = Cell.TUMOR_P
    clock[born] = 0
    return int(born.sum())


# ---------------------------------------------------------------------------------------------------------------
# Vessels
# ---------------------------------------------------------------------------------------------------------------
def _moore_any(mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for off in MOORE:
        out |= shifted(mask, off, False)
    return out


def face_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Sites on a lattice face of an axis longer than one site."""
    m = np.zeros(shape, dtype=bool)
    for axis, n in enumerate(shape):
        if n > 1:
            idx = [slice(None)] * 3
            idx[axis] = [0, n - 1]
            m[tuple(idx)] = True
    return m


def one_cluster(mask: np.ndarray) -> np.ndarray:
    """True where the neighbours in a 26-bit ``mask`` (bit d = MOORE[d]) form at most one touching cluster."""
    adj = np.array(NEIGHBOUR_ADJACENCY, dtype=np.uint32)
    comp = mask & (~mask + np.uint32(1))  # lowest set bit
    while True:
        grow = comp.copy()
        for d in range(len(MOORE)):
            grow |= np.where((comp >> np.uint32(d)) & np.uint32(1), adj[d], np.uint32(0))
        grow &= mask
        if np.array_equal(grow, comp):
            return comp == mask
        comp = grow


def perfusion(tissue: np.ndarray, inlet: np.ndarray, perfused: np.ndarray, clock: np.ndarray, edge_inlets: bool,
              regress_steps: int) -> None:
    """Perfused endothelium and regression, in place.

    Endothelium (stalk or tip) is a graph under Moore adjacency.  *Connected*: joined to an inlet (``inlet``
    sites, plus endothelium on a face with ``edge_inlets``) through endothelium.  *Perfused*: connected and not
    pruned, where rounds prune every non-inlet site whose endothelial neighbours form at most one touching
    cluster (a dead end) until none is left (on a loop or between inlets: blind sprouts carry no flow).  Connected stalks
    reset their clock; everything else becomes (or stays) a stalk counting up, and regresses to stroma when its
    count reaches ``regress_steps``.
    """
    ec = (tissue == Cell.EC_STALK) | (tissue == Cell.EC_TIP)
    inl = ec & ((inlet != 0) | (edge_inlets & face_mask(tissue.shape)))
    conn = inl.copy()
    while True:
        grown = (conn | _moore_any(conn)) & ec
        if np.array_equal(grown, conn):
            break
        conn = grown
    core = ec.copy()
    while True:  # synchronous rounds: prune every dead end at once
        mask = np.zeros(tissue.shape, dtype=np.uint32)
        for d, off in enumerate(MOORE):
            mask |= shifted(core, off, False).astype(np.uint32) << np.uint32(d)
        prune = core & ~inl & one_cluster(mask)
        if not prune.any():
            break
        core &= ~prune
    perfused[...] = (conn & core).astype(np.uint8)
    clock[conn & (tissue == Cell.EC_STALK)] = 0
    cut = ec & ~conn
    c = np.where(tissue == Cell.EC_TIP, 1, clock.astype(np.int64) + 1)
    gone = cut & (c >= regress_steps)
    tissue[cut] = Cell.EC_STALK
    tissue[gone] = Cell.EMPTY
    c = np.where(gone, 0, np.minimum(c, 65535))
    clock[cut] = c[cut].astype(np.uint16)


def _choose(weights: list[np.ndarray], u: np.ndarray) -> np.ndarray:
    """Index of the direction picked with probability weight/total by ``u*total < cumulative weight`` (first in
    MOORE order; the last positive weight if rounding leaves none); -1 where every weight is 0."""
    total = np.zeros(u.shape, dtype=np.float64)
    for w in weights:
        total = total + w
    target = u * total
    cum = np.zeros(u.shape, dtype=np.float64)
    pick = np.full(u.shape, -1, dtype=np.int64)
    last = np.full(u.shape, -1, dtype=np.int64)
    for d, w in enumerate(weights):
        cum = cum + w
        pick = np.where((pick < 0) & (w > 0) & (target < cum), d, pick)
        last = np.where(w > 0, d, last)
    pick = np.where((pick < 0) & (total > 0), last, pick)
    return np.where(total > 0, pick, -1)


def _gather_winner(dirs: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each site, the index of the neighbour whose proposal (1 + MOORE direction in ``dirs``) aims at it with
    the largest key (first in MOORE order on a tie), or -1."""
    sites = np.arange(dirs.size, dtype=np.int64).reshape(dirs.shape)
    best = np.full(dirs.shape, -1, dtype=np.int64)
    winner = np.full(dirs.shape, -1, dtype=np.int64)
    for d, off in enumerate(MOORE):
        back = tuple(-o for o in off)
        aimed = shifted(dirs == d + 1, back, False)
        k = shifted(keys, back, -1)
        better = aimed & (k > best)
        best = np.where(better, k, best)
        winner = np.where(better, shifted(sites, back, -1), winner)
    return winner


def _won(dirs: np.ndarray, winner: np.ndarray) -> np.ndarray:
    """True where a site's proposal (direction in ``dirs``) won the gather at its target."""
    sites = np.arange(dirs.size, dtype=np.int64).reshape(dirs.shape)
    won = np.zeros(dirs.shape, dtype=bool)
    for d, off in enumerate(MOORE):
        won |= (dirs == d + 1) & (shifted(winner, off, -2) == sites)
    return won


def _ball(radius: float, nz: int) -> list[tuple[int, int, int]]:
    e = int(radius)
    r2 = int(radius * radius)
    zs = range(-e, e + 1) if nz > 1 else (0,)
    return [(dz, dy, dx) for dz in zs for dy in range(-e, e + 1) for dx in range(-e, e + 1)
            if dz * dz + dy * dy + dx * dx <= r2]


def endothelium_update(tissue: np.ndarray, clock: np.ndarray, perfused: np.ndarray, vegf: np.ndarray,
                       mmp9: np.ndarray, seed: int, step: int, rates: dict[str, float], params: Params) -> None:
    """Sprouting and tip migration, in place (see ``tumorca._vessels.endothelium_update`` for the rules)."""
    p = params
    shape = tissue.shape
    sites = np.arange(tissue.size, dtype=np.uint64).reshape(shape)
    t0 = tissue.copy()
    v = vegf.astype(np.float64)
    m = mmp9.astype(np.float64)
    age = clock.astype(np.int64)
    is_tip = t0 == Cell.EC_TIP

    # pass A: sprout candidates
    ws = draw(seed, step, sites, PURPOSE_SPROUT)
    ball = [off for off in _ball(rates["exclusion_sites"], shape[0])]
    tip_near = np.zeros(shape, dtype=bool)
    for off in ball:
        tip_near |= shifted(is_tip, off, False)
    cand = ((t0 == Cell.EC_STALK) & (perfused != 0)
            & (u01(ws[..., 0]) < rates["p_sprout_max"] * (v / (v + p.sprout_vegf_half))) & ~tip_near)

    # pass A: tip moves
    wt = draw(seed, step, sites, PURPOSE_TIP)
    moving = is_tip & (u01(wt[..., 1]) < p.tip_move_min + (p.tip_move_max - p.tip_move_min)
                       * (m / (m + p.tip_mmp9_half)))
    fusion_ok = age >= p.tip_fusion_min_age
    perf = perfused != 0
    weights, target_ec = [], []
    for off in MOORE:
        tn = shifted(t0, off, 255)
        ec_target = (tn == Cell.EC_TIP) | ((tn == Cell.EC_STALK) & shifted(perf, off, False))
        ok = (tn == Cell.EMPTY) | (tn == Cell.NECROTIC) | (fusion_ok & ec_target)
        g = np.maximum(shifted(v, off, 0.0) - v, 0.0)
        weights.append(np.where(moving & ok, 1.0 + p.tip_chemotaxis * g, 0.0))
        target_ec.append(ec_target)
    pick = _choose(weights, u01(wt[..., 2]))
    fuse = np.zeros(shape, dtype=bool)
    for d in range(len(MOORE)):
        fuse |= (pick == d) & target_ec[d]
    dirs = np.where((pick >= 0) & ~fuse, pick + 1, 0)
    branch = (dirs > 0) & (u01(wt[..., 3]) < p.branch_max * (v / (v + p.branch_vegf_half)))

    # pass B: resolve
    winner = _gather_winner(dirs, wt[..., 0].astype(np.int64))
    target_free = ((t0 == Cell.EMPTY) | (t0 == Cell.NECROTIC)) & (winner >= 0)
    won = _won(dirs, winner)
    new_clock = clock.astype(np.int64)
    win_age = age.ravel()[np.maximum(winner, 0)].reshape(shape) + 1
    new_clock[target_free] = np.minimum(win_age[target_free], 65535)
    tissue[target_free] = Cell.EC_TIP
    tissue[won] = np.where(branch[won], Cell.EC_TIP, Cell.EC_STALK)
    tissue[fuse] = Cell.EC_STALK
    new_clock[fuse] = 0
    idle = is_tip & ~fuse & (dirs == 0)
    new_clock[idle] = np.minimum(age[idle] + 1, 65535)
    # sprout candidates compete within the exclusion distance (largest key, then lowest site index)
    key = np.where(cand, ws[..., 1].astype(np.int64), -1)
    site_i = sites.astype(np.int64)
    beaten = np.zeros(shape, dtype=bool)
    for off in ball:
        if off == (0, 0, 0):
            continue
        ok = shifted(key, off, -1)
        os_ = shifted(site_i, off, -1)
        beaten |= (ok >= 0) & ((ok > key) | ((ok == key) & (os_ < site_i)))
    sprout = cand & ~beaten
    tissue[sprout] = Cell.EC_TIP
    new_clock[sprout] = 0
    # pass C: clocks of the tips that proposed a move
    proposed = dirs > 0
    new_clock[proposed & won] = 0
    new_clock[proposed & ~won] = np.minimum(age[proposed & ~won] + 1, 65535)
    clock[...] = new_clock.astype(np.uint16)


# ---------------------------------------------------------------------------------------------------------------
# Growth factors
# ---------------------------------------------------------------------------------------------------------------
def secrete(a: dict[str, np.ndarray], rates: dict[str, float], ifn_rates: dict[str, float], params: Params) -> None:
    """One step of secretion into the slow fields and MMP9-driven release of bound VEGF, in place.

    Live tumour: VEGF ``vegf_tumor_min + (max - min)*h`` and CXCL ``cxcl_tumor_live + cxcl_tumor_hypoxic*h`` with
    ``h = 1/(1 + (pO2/vegf_hill_o2)^n)``; a neutrophil of polarisation p: VEGF ``p*v_neut`` and MMP9 ``p*m_neut``.
    Secreted VEGF splits into free and matrix-bound; then ``Vb' = Vb/(1 + k_rel*dt*M)`` and V_free gains the rest.
    """
    p = params
    live = (a["tissue"] == Cell.TUMOR_P) | (a["tissue"] == Cell.TUMOR_Q)
    q = a["o2"].astype(np.float64) / p.vegf_hill_o2
    qn = q
    for _ in range(1, p.vegf_hill_n):
        qn = qn * q
    h = 1.0 / (1.0 + qn)
    sv = np.where(live, p.vegf_tumor_min + (p.vegf_tumor_max - p.vegf_tumor_min) * h, 0.0)
    sc = np.where(live, p.cxcl_tumor_live + p.cxcl_tumor_hypoxic * h, 0.0)
    neut = a["neut"] != 0
    pp = a["neut_p"].astype(np.float64)
    sv = np.where(neut, sv + pp * ifn_rates["v_neut"], sv)
    sm = np.where(neut, pp * ifn_rates["m_neut"], 0.0)
    vf = a["vegf_free"].astype(np.float64) + rates["vegf_dt_free"] * sv
    vb = a["vegf_bound"].astype(np.float64) + rates["vegf_dt_bound"] * sv
    m = a["mmp9"].astype(np.float64) + p.dt_min * sm
    a["mmp9"][...] = m.astype(np.float32)
    a["cxcl"][...] = (a["cxcl"].astype(np.float64) + p.dt_min * sc).astype(np.float32)
    m32 = m.astype(np.float32).astype(np.float64)
    vbn = vb / (1.0 + rates["krel_dt"] * m32)
    vf = vf + (vb - vbn)
    a["vegf_free"][...] = vf.astype(np.float32)
    a["vegf_bound"][...] = vbn.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Neutrophils
# ---------------------------------------------------------------------------------------------------------------
def neutrophil_update(a: dict[str, np.ndarray], seed: int, step: int, rates: dict[str, float],
                      ifn_rates: dict[str, float], params: Params) -> tuple[int, int, int]:
    """Recruitment, death, polarisation, N1 killing and chemotactic sub-moves, in place (rules in
    ``tumorca._neutrophils.neutrophil_update``).  Returns (recruited, died, killed)."""
    p, ir = params, ifn_rates
    tissue, neut, neut_p, neut_age = a["tissue"], a["neut"], a["neut_p"], a["neut_age"]
    shape = tissue.shape
    sites = np.arange(tissue.size, dtype=np.uint64).reshape(shape)
    w = draw(seed, step, sites, PURPOSE_NEUT)
    present = neut != 0
    live = (tissue == Cell.TUMOR_P) | (tissue == Cell.TUMOR_Q)

    # life: death, kill decision, polarisation, ageing; recruitment
    dies = present & (u01(w[..., 0]) < ir["p_death"])
    alive = present & ~dies
    pold = neut_p.astype(np.float64)
    wants = alive & (u01(w[..., 1]) < rates["p_kill_max"] * (1.0 - pold))
    live_nb = [shifted(live, off, False) for off in MOORE]
    k = live.astype(np.int64) + np.sum(live_nb, axis=0)
    j = below(w[..., 2], k).astype(np.int64)
    kill = np.zeros(shape, dtype=np.int64)
    kill[wants & (k > 0) & live & (j == 0)] = KILL_OWN_SITE
    seen = live.astype(np.int64)
    for d, e in enumerate(live_nb):
        sel = wants & (k > 0) & (kill == 0) & e & (seen == j)
        kill[sel] = d + 1
        seen += e
    c = a["cxcl"].astype(np.float64)
    recruit = (~present & (a["perfused"] != 0) & (ir["p_rec"] > 0)
               & (u01(w[..., 0]) < ir["p_rec"] * (c / (c + p.neut_cxcl_half))))
    neut_p[alive] = (ir["pstar"] + (pold - ir["pstar"]) * rates["g_pol"])[alive].astype(np.float32)
    neut_age[alive] = np.minimum(neut_age[alive].astype(np.int64) + 1, 65535).astype(np.uint16)
    neut[dies] = 0
    neut_p[dies] = 0
    neut_age[dies] = 0
    neut[recruit] = 1
    neut_p[recruit] = np.float32(ir["pstar"])
    neut_age[recruit] = 0

    # kills: a live tumour cell aimed at by any neutrophil is cleared
    hit = live & (kill == KILL_OWN_SITE)
    for d, off in enumerate(MOORE):
        hit |= live & shifted(kill == d + 1, tuple(-o for o in off), False)
    tissue[hit] = Cell.EMPTY
    a["clock"][hit] = 0

    # chemotactic sub-moves
    for sub in range(p.neut_substeps):
        purpose = PURPOSE_NEUT_MOVE | (sub << 8)
        present = neut != 0
        neut_p[~present] = 0
        neut_age[~present] = 0
        wm = draw(seed, step, sites, purpose)
        weights = []
        for off in MOORE:
            free = shifted(~present, off, False)
            g = np.maximum(shifted(c, off, 0.0) - c, 0.0)
            weights.append(np.where(present & free, 1.0 + ir["chi"] * g, 0.0))
        dirs = _choose(weights, u01(wm[..., 1])) + 1
        winner = _gather_winner(dirs, wm[..., 0].astype(np.int64))
        arrive = ~present & (winner >= 0)
        won = _won(dirs, winner)
        src = np.maximum(winner, 0)
        new_p = neut_p.ravel()[src].reshape(shape)
        new_age = neut_age.ravel()[src].reshape(shape)
        neut[arrive] = 1
        neut_p[arrive] = new_p[arrive]
        neut_age[arrive] = new_age[arrive]
        neut[won] = 0
    if p.neut_substeps > 0:
        gone = neut == 0
        neut_p[gone] = 0
        neut_age[gone] = 0
    return int(recruit.sum()), int(dies.sum()), int(hit.sum())


# ---------------------------------------------------------------------------------------------------------------
# The whole step
# ---------------------------------------------------------------------------------------------------------------
def uptake_table(params: Params) -> np.ndarray:
    """O2 uptake (1/min) indexed by tissue state."""
    u = np.zeros(8, dtype=np.float64)
    u[Cell.EMPTY] = params.o2_uptake_stroma
    u[Cell.TUMOR_P] = u[Cell.TUMOR_Q] = params.o2_uptake_tumor
    u[Cell.NECROTIC] = params.o2_uptake_necrotic
    u[Cell.EC_STALK] = u[Cell.EC_TIP] = params.o2_uptake_endothelium
    return u


def ifn_level(params: Params, time_min: float) -> float:
    """The IFN-beta schedule I(t): ``ifn_level``, or ``ifn_therapy_level`` from ``ifn_therapy_start`` on."""
    if params.ifn_therapy_level > 0 and time_min >= params.ifn_therapy_start:
        return params.ifn_therapy_level
    return params.ifn_level


def step(state: dict[str, Any]) -> dict[str, Any]:
    """Advance a state (as from ``Simulation.get_state()``, 3D arrays) by one step, in place; returns it.

    Order (MODEL.md §4): perfusion and regression; O2 to quasi-steady state; secretion, release and one implicit
    step of the slow fields; tips; tumour cells; neutrophils.
    """
    p = state["params"] if isinstance(state["params"], Params) else Params.from_dict(state["params"])
    r = p.rates()
    a = state["arrays"]
    n = state["step_index"]
    seed = state["seed"]
    ir = p.ifn_rates(ifn_level(p, n * p.dt_min))
    perfusion(a["tissue"], a["inlet"], a["perfused"], a["clock"], p.vessel_inlets == "edge", r["regress_steps"])
    o2_args = (a["o2"], a["tissue"], a["perfused"], uptake_table(p), r["o2_k"], float32_exact(p.o2_vessel),
               p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value))
    if p.o2_solver == "multigrid":
        o2_solve_multigrid(*o2_args, p.o2_mg_vessel_uptake, p.o2_mg_presmooth, p.o2_mg_postsmooth, p.o2_tol,
                           p.o2_mg_max_cycles)
    else:
        o2_solve(*o2_args, p.o2_omega, p.o2_tol, p.o2_max_sweeps)
    secrete(a, r, ir, p)
    dirichlet = p.field_boundary == "dirichlet"
    for name, prefix in (("vegf_free", "vegf"), ("mmp9", "mmp9"), ("cxcl", "cxcl")):
        diffuse(a[name], r[prefix + "_alpha"], r[prefix + "_gain"], dirichlet)
    implicit_axis(a["vegf_bound"], 2, 0.0, r["vegf_bound_gain"], False)
    endothelium_update(a["tissue"], a["clock"], a["perfused"], a["vegf_free"], a["mmp9"], seed, n, r, p)
    tumor_update(a["tissue"], a["clock"], a["o2"], seed, n, r, p)
    neutrophil_update(a, seed, n, r, ir, p)
    state["step_index"] = n + 1
    return state


def run(state: dict[str, Any], steps: int) -> dict[str, Any]:
    """A copy of ``state`` advanced by ``steps`` steps.  2D states (arrays of shape (ny, nx)) are accepted."""
    shape = tuple(state["shape"])
    shape3 = (1,) + shape if len(shape) == 2 else shape
    out = {**state, "arrays": {k: np.array(v).reshape(shape3).copy() for k, v in state["arrays"].items()}}
    for _ in range(steps):
        step(out)
    out["arrays"] = {k: v.reshape(shape) for k, v in out["arrays"].items()}
    return out


__all__ = ["philox4x32_10", "draw", "o2_solve", "o2_solve_multigrid", "implicit_axis", "diffuse", "tumor_update", "step", "run",
           "FIELD_NAMES"]
