"""Vessel rules in NumPy: the twin of ``ext/_vessels.pyx`` (perfusion, sprouting, tips)."""
from __future__ import annotations


import numpy as np

from .._constants import (MOORE, NEIGHBOUR_ADJACENCY, PURPOSE_SPROUT, PURPOSE_TIP, Cell)
from ..params import Params
from ._lattice import _choose, _gather_winner, _won, shifted
from ._rng import draw, u01


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
