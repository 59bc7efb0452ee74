"""Vessel rules in NumPy: the twin of ``ext/_vessels.pyx`` (perfusion, remodelling, sprouting, tips), on the
vessel layer (``vessel``, ``vclock``) beside the tissue."""
from __future__ import annotations


import numpy as np

from .._constants import (CLOCK_MAX, MOORE, NEIGHBOUR_ADJACENCY, PERFUSION_CONNECTED, PERFUSION_REMOVED,
                          PURPOSE_SPROUT, PURPOSE_TIP, PURPOSE_VESSEL, Cell, Vessel)
from .._numerics import flow_inlet_codes
from ..rules import EndotheliumRules, PerfusionRules
from .flow import flow_solve_nodes
from ._lattice import (Box, Origin, choose, gather_winner, global_face_mask, global_sites, owned_mask, proposal_won,
                       shifted)
from ._rng import draw, u01


def _moore_any(mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for off in MOORE:
        out |= shifted(mask, off, False)
    return out


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


def _ec_mask(shape: tuple[int, int, int], ec: np.ndarray) -> np.ndarray:
    """The sites listed (flat indices) in ``ec`` as a mask."""
    m = np.zeros(shape, dtype=bool)
    m.ravel()[np.asarray(ec, dtype=np.int64)] = True
    return m


def _inlets(inlet: np.ndarray, rules: PerfusionRules, origin: Origin, gshape: tuple[int, int, int] | None
            ) -> np.ndarray:
    return (inlet != 0) | (rules.edge_inlets & global_face_mask(inlet.shape, origin, gshape))


def perfusion_connect(vessel: np.ndarray, inlet: np.ndarray, perfused: np.ndarray, ec: np.ndarray,
                      rules: PerfusionRules, origin: Origin = None, gshape: tuple[int, int, int] | None = None,
                      box: Box = None, search: Box = None) -> int:
    """Mark (``PERFUSION_CONNECTED`` in ``perfused``) every vessel site joined through vessel sites inside
    ``search`` to an inlet (``inlet`` sites, plus vessels on a lattice face with ``rules.edge_inlets``) or to
    a site of ``ec`` already marked; returns the number of marked sites of ``ec`` in ``box`` (the twin of
    ``tumorca._vessels.perfusion_connect``, same arguments).

    *Connected* is a property of the set: the marks grow by Moore dilation until they stop.
    """
    shape = vessel.shape
    if search is None:
        search = tuple((0, n) for n in shape)
    listed = _ec_mask(shape, ec)
    reach = np.zeros(shape, dtype=bool)
    reach[tuple(slice(lo, hi) for lo, hi in search)] = True
    reach &= vessel != Vessel.NONE
    conn = listed & (_inlets(inlet, rules, origin, gshape) | ((perfused & PERFUSION_CONNECTED) != 0))
    while True:
        grown = conn | (_moore_any(conn) & reach)
        if np.array_equal(grown, conn):
            break
        conn = grown
    perfused[conn] |= PERFUSION_CONNECTED
    return int((listed & ((perfused & PERFUSION_CONNECTED) != 0) & owned_mask(shape, box)).sum())


def perfusion_prune_round(vessel: np.ndarray, inlet: np.ndarray, perfused: np.ndarray, scratch: np.ndarray,
                          ec: np.ndarray, rules: PerfusionRules, origin: Origin = None,
                          gshape: tuple[int, int, int] | None = None, box: Box = None) -> int:
    """One synchronous pruning round: every site of ``ec`` that is neither an inlet nor removed, and whose
    vessel neighbours not removed form at most one touching cluster (a dead end), gets
    ``PERFUSION_REMOVED`` in ``perfused``; returns the number pruned in ``box`` (the twin of
    ``tumorca._vessels.perfusion_prune_round``, same arguments; ``scratch`` is not used)."""
    shape = vessel.shape
    removed = (perfused & PERFUSION_REMOVED) != 0
    core = (vessel != Vessel.NONE) & ~removed
    mask = np.zeros(shape, dtype=np.uint32)
    for d, off in enumerate(MOORE):
        mask |= shifted(core, off, False).astype(np.uint32) << np.uint32(d)
    prune = _ec_mask(shape, ec) & ~removed & ~_inlets(inlet, rules, origin, gshape) & one_cluster(mask)
    perfused[prune] |= PERFUSION_REMOVED
    return int((prune & owned_mask(shape, box)).sum())


def perfusion_finish(vessel: np.ndarray, vclock: np.ndarray, inlet: np.ndarray, perfused: np.ndarray,
                     tissue: np.ndarray, vegf: np.ndarray, ec: np.ndarray, seed: int, step: int,
                     rules: PerfusionRules, origin: Origin = None, gshape: tuple[int, int, int] | None = None,
                     box: Box = None) -> tuple[int, int]:
    """Perfused vessel sites (connected and not pruned) and remodelling, in place, for the sites of ``ec`` (the
    twin of ``tumorca._vessels.perfusion_finish``, same arguments).

    Perfused stalks reset ``vclock``; stalks without flow count it up and regress when it reaches
    ``rules.regress_steps``; a tip cut off becomes a stalk counting from 1; a stalk under tumour tissue regresses
    with probability ``p_coopt_regress*h/(h + V)``.  Returns the regressions ``(without flow, co-opted)`` in
    ``box``.
    """
    shape = vessel.shape
    listed = _ec_mask(shape, ec)
    conn = listed & ((perfused & PERFUSION_CONNECTED) != 0)
    perf = conn & ((perfused & PERFUSION_REMOVED) == 0)
    tip = vessel == Vessel.TIP
    c = vclock.astype(np.int64)
    c = np.where(tip, np.where(conn, c, 1), np.where(perf, 0, c + 1))
    v = np.where(tip & ~conn, Vessel.STALK, vessel)
    stalk = listed & (v == Vessel.STALK)
    gone_flow = stalk & (c >= rules.regress_steps)
    coopt = (stalk & ~gone_flow & ((tissue == Cell.TUMOR_P) | (tissue == Cell.TUMOR_Q) | (tissue == Cell.NECROTIC))
             & (rules.p_coopt_regress > 0.0))
    gone_coopt = np.zeros(shape, dtype=bool)
    if coopt.any():
        w = draw(seed, step, global_sites(shape, origin, gshape)[coopt], PURPOSE_VESSEL)
        vg = vegf[coopt].astype(np.float64)
        p = rules.p_coopt_regress * (rules.coopt_vegf_half / (rules.coopt_vegf_half + vg))
        gone_coopt[coopt] = u01(w[..., 0]) < p
    gone = gone_flow | gone_coopt
    perfused[listed] = np.where(perf & ~gone, 1, 0)[listed]
    vessel[listed] = np.where(gone, Vessel.NONE, v)[listed]
    vclock[listed] = np.where(gone, 0, np.minimum(c, CLOCK_MAX))[listed].astype(np.uint16)
    inlet[gone] = 0
    own = owned_mask(shape, box)
    return int((gone_flow & own).sum()), int((gone_coopt & own).sum())


def perfusion(vessel: np.ndarray, vclock: np.ndarray, inlet: np.ndarray, perfused: np.ndarray, tissue: np.ndarray,
              vegf: np.ndarray, seed: int, step: int, rules: PerfusionRules) -> tuple[int, int]:
    """Perfusion and remodelling of the whole lattice, in place, composed from the three phases as
    ``tumorca.engine.WholeLattice.perfusion_rounds`` composes the kernels: connectivity, pruning rounds until one
    prunes nothing (what survives lies on a loop or between inlets: blind sprouts carry no flow) or, with
    ``rules.flow``, the flow solve (:func:`tumorca.reference.flow.flow_solve_nodes`; on steps that are multiples of
    its interval, in between the sites that carried flow and are still connected), then ``perfusion_finish``."""
    ec = np.flatnonzero(vessel != Vessel.NONE)
    scratch = np.zeros(vessel.shape, dtype=np.uint8)
    kept = perfused.ravel()[ec] != 0
    perfused.fill(0)
    perfusion_connect(vessel, inlet, perfused, ec, rules)
    if rules.flow is not None:
        if step % rules.flow.interval == 0:
            # what carries flow in the pressure solve (cold start), as tumorca.flow.flowing
            codes = flow_inlet_codes(ec, inlet.ravel()[ec], vessel.shape, rules.edge_inlets)
            _, q, _ = flow_solve_nodes(ec, codes, vessel.shape, rules.flow)
            kept = q >= rules.flow.threshold
        perfused.ravel()[ec[~kept]] |= PERFUSION_REMOVED
    else:
        while perfusion_prune_round(vessel, inlet, perfused, scratch, ec, rules):
            pass
    return perfusion_finish(vessel, vclock, inlet, perfused, tissue, vegf, ec, seed, step, rules)


def _ball(radius: float, nz: int) -> list[tuple[int, int, int]]:
    e = int(radius)
    r2 = int(radius * radius)
    zs = range(-e, e + 1) if nz > 1 else (0,)
    return [(dz, dy, dx) for dz in zs for dy in range(-e, e + 1) for dx in range(-e, e + 1)
            if dz * dz + dy * dy + dx * dx <= r2]


def endothelium_update(vessel: np.ndarray, vclock: np.ndarray, tissue: np.ndarray, perfused: np.ndarray,
                       vegf: np.ndarray,
                       mmp9: np.ndarray, prop: np.ndarray, rowflags: np.ndarray, seed: int, step: int,
                       rules: EndotheliumRules, num_threads: int, origin: Origin = None,
                       gshape: tuple[int, int, int] | None = None, box: Box = None) -> None:
    """Sprouting and tip migration, in place (the twin of ``tumorca._vessels.endothelium_update``, same arguments
    and rules; ``prop``, ``rowflags`` and ``num_threads`` are not used)."""
    p = rules
    shape = vessel.shape
    sites = global_sites(shape, origin, gshape)
    t0 = vessel.copy()
    clock = vclock
    v = vegf.astype(np.float64)
    m = mmp9.astype(np.float64)
    age = clock.astype(np.int64)
    is_tip = t0 == Vessel.TIP
    live = (tissue == Cell.TUMOR_P) | (tissue == Cell.TUMOR_Q)

    # pass A: sprout candidates
    ws = draw(seed, step, sites, PURPOSE_SPROUT)
    ball = _ball(p.exclusion_sites, shape[0])
    tip_near = np.zeros(shape, dtype=bool)
    for off in ball:
        tip_near |= shifted(is_tip, off, False)
    cand = ((t0 == Vessel.STALK) & (perfused != 0)
            & (u01(ws[..., 0]) < p.p_sprout_max * (v / (v + p.sprout_vegf_half))) & ~tip_near)

    # pass A: tip moves
    wt = draw(seed, step, sites, PURPOSE_TIP)
    moving = is_tip & (u01(wt[..., 1]) < p.tip_move_min + (p.tip_move_max - p.tip_move_min)
                       * (m / (m + p.tip_mmp9_half)))
    fusion_ok = age >= p.tip_fusion_min_age
    perf = perfused != 0
    weights, target_ec = [], []
    for off in MOORE:
        tn = shifted(t0, off, 255)
        ec_target = (tn == Vessel.TIP) | ((tn == Vessel.STALK) & shifted(perf, off, False))
        free = tn == Vessel.NONE
        ok = free | (fusion_ok & ec_target)
        g = np.maximum(shifted(v, off, 0.0) - v, 0.0)
        wgt = 1.0 + p.tip_chemotaxis * g
        # into live tumour tissue only where MMP9 has degraded the matrix
        mj = shifted(m, off, 0.0)
        wgt = np.where(free & shifted(live, off, False), wgt * (mj / (mj + p.tip_mmp9_half)), wgt)
        weights.append(np.where(moving & ok, wgt, 0.0))
        target_ec.append(ec_target)
    pick = choose(weights, u01(wt[..., 2]))
    fuse = np.zeros(shape, dtype=bool)
    for d in range(len(MOORE)):
        fuse |= (pick == d) & target_ec[d]
    dirs = np.where((pick >= 0) & ~fuse, pick + 1, 0)
    branch = (dirs > 0) & (u01(wt[..., 3]) < p.branch_max * (v / (v + p.branch_vegf_half)))

    # pass B: resolve
    winner = gather_winner(dirs, wt[..., 0].astype(np.int64))
    target_free = (t0 == Vessel.NONE) & (winner >= 0)
    won = proposal_won(dirs, winner)
    new_clock = clock.astype(np.int64)
    win_age = age.ravel()[np.maximum(winner, 0)].reshape(shape) + 1
    new_clock[target_free] = np.minimum(win_age[target_free], CLOCK_MAX)
    vessel[target_free] = Vessel.TIP
    vessel[won] = np.where(branch[won], Vessel.TIP, Vessel.STALK)
    vessel[fuse] = Vessel.STALK
    new_clock[fuse] = 0
    idle = is_tip & ~fuse & (dirs == 0)
    new_clock[idle] = np.minimum(age[idle] + 1, CLOCK_MAX)
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
    vessel[sprout] = Vessel.TIP
    new_clock[sprout] = 0
    # pass C: clocks of the tips that proposed a move
    proposed = dirs > 0
    new_clock[proposed & won] = 0
    new_clock[proposed & ~won] = np.minimum(age[proposed & ~won] + 1, CLOCK_MAX)
    clock[...] = new_clock.astype(np.uint16)
