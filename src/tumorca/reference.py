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

from ._constants import FIELD_NAMES, MOORE, PROP_DIR_MASK, PROP_STATE_SHIFT, PURPOSE_TUMOR, Cell
from ._numerics import float32_exact, tridiagonal_factors
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
def o2_solve(c: np.ndarray, tissue: np.ndarray, source: np.ndarray, uptake: np.ndarray, k: float,
             source_value: float, dirichlet: bool, edge_value: float, omega: float, tol: float,
             max_sweeps: int) -> tuple[int, float]:
    """Quasi-steady O2, ``k*lap(c) - uptake[tissue]*c = 0``, by red-black SOR; ``c`` is updated in place.

    Source sites are held at ``source_value``.  At a lattice face a missing neighbour is dropped from stencil
    and diagonal (no-flux) or, with ``dirichlet`` on an axis longer than one site, counts with ``edge_value``.
    A sweep updates the sites with (x+y+z) even, then odd; it stops once the largest Jacobi correction
    ``|gs - c|`` seen in a full sweep is <= tol.  Returns (sweeps, that correction).
    """
    src = source != 0
    c[src] = np.float32(source_value)
    parity = np.indices(c.shape).sum(axis=0) % 2
    nn = np.zeros(c.shape, dtype=np.int64)
    ghosts = []
    for off in _VN:
        axis = int(np.flatnonzero(off)[0])
        edge_counts = dirichlet and c.shape[axis] > 1
        inside = shifted(np.ones(c.shape, dtype=bool), off, False)
        nn += inside | edge_counts
        ghosts.append(np.float64(edge_value) if edge_counts else np.float64(0.0))
    diag = k * nn + uptake[tissue]
    sweeps, rmax = 0, 0.0
    while sweeps < max_sweeps:
        rmax = 0.0
        for color in (0, 1):
            s = np.zeros(c.shape, dtype=np.float64)
            for off, ghost in zip(_VN, ghosts):
                s = s + shifted(c.astype(np.float64), off, ghost)
            gs = (k * s) / diag
            old = c.astype(np.float64)
            corr = gs - old
            upd = (parity == color) & ~src
            c[upd] = (old + omega * corr)[upd].astype(np.float32)
            if upd.any():
                rmax = max(rmax, float(np.abs(corr[upd]).max()))
        sweeps += 1
        if rmax <= tol:
            break
    return sweeps, rmax


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
                 rates: dict[str, float], params: Params) -> None:
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
    tie) and becomes a cycling cell; every live cell takes its decided state.
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
    clock[stays_q & (t == Cell.TUMOR_Q)] = qt[stays_q & (t == Cell.TUMOR_Q)].astype(np.uint16)
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


def step(state: dict[str, Any]) -> dict[str, Any]:
    """Advance a state (as from ``Simulation.get_state()``, 3D arrays) by one step, in place; returns it.

    Order (MODEL.md §4): O2 to quasi-steady state; the slow fields by one implicit step; the tumour cells.
    """
    p = state["params"] if isinstance(state["params"], Params) else Params.from_dict(state["params"])
    r = p.rates()
    a = state["arrays"]
    n = state["step_index"]
    o2_solve(a["o2"], a["tissue"], a["perfused"], uptake_table(p), r["o2_k"], float32_exact(p.o2_vessel),
             p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value), p.o2_omega, p.o2_tol,
             p.o2_max_sweeps)
    dirichlet = p.field_boundary == "dirichlet"
    for name, prefix in (("vegf_free", "vegf"), ("mmp9", "mmp9"), ("cxcl", "cxcl")):
        diffuse(a[name], r[prefix + "_alpha"], r[prefix + "_gain"], dirichlet)
    implicit_axis(a["vegf_bound"], 2, 0.0, r["vegf_bound_gain"], False)
    tumor_update(a["tissue"], a["clock"], a["o2"], state["seed"], n, r, p)
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


__all__ = ["philox4x32_10", "draw", "o2_solve", "implicit_axis", "diffuse", "tumor_update", "step", "run",
           "FIELD_NAMES"]
