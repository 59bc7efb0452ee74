"""Tumour-cell rules in NumPy: the twin of ``ext/_tissue.pyx``."""
from __future__ import annotations


import numpy as np

from .._constants import CLOCK_MAX, MOORE, PROP_DIR_MASK, PROP_STATE_SHIFT, PURPOSE_TUMOR, Cell
from ..rules import TumourRules
from ._lattice import Box, Origin, global_sites, owned_mask, shifted
from ._rng import below, draw, u01


def tumor_update(tissue: np.ndarray, clock: np.ndarray, o2: np.ndarray, prop: np.ndarray, rowflags: np.ndarray,
                 seed: int, step: int, rules: TumourRules, num_threads: int, origin: Origin = None,
                 gshape: tuple[int, int, int] | None = None, box: Box = None) -> int:
    """One step of every tumour cell, in place (the twin of ``tumorca._tissue.tumor_update``, same arguments;
    ``prop``, ``rowflags`` and ``num_threads`` are not used).

    With the fields of ``rules``, pass 1, each live tumour cell (words w0..w3 of its Philox draw):
      * necrosis with probability ``p_nec_max * ramp`` where ramp falls from 1 at ``necrosis_o2_full`` to 0 at
        ``necrosis_o2_onset`` (w0);
      * else a cycling cell below ``quiescence_o2_enter`` becomes quiescent;
      * else it divides with probability ``p_div_max * ramp(cycle_o2_low -> cycle_o2_high)`` (w1) into the
        ``below(w2, k)``-th of its k empty Moore neighbours (MOORE order); none empty: contact-inhibited;
      * a quiescent cell counts its steps quiescent, dies when they reach ``q_death_steps``, and cycles again
        above ``quiescence_o2_exit``.
    Pass 2: each empty site takes the proposal aimed at it with the largest key w3 (first in MOORE order on a
    tie) and becomes a cycling cell; every live cell takes its decided state.  Returns the number of births in
    ``box`` (``origin``, ``gshape`` and ``box`` place a block of a decomposed lattice, as for the kernel).

    Pushing (``push_range`` R >= 2): a dividing cell with no empty neighbour takes, among the Moore rays whose
    first empty site lies within R steps behind only tumour or necrotic cells, those of least L**2 * (nonzero
    components) and picks the ``below(w2, count)``-th in MOORE order.  Every event (a division: source and
    target; a push: its ray from source to the empty end) executes only if its key (w3, then the larger global
    site) is the largest of every event claiming one of its sites; a winning push moves the cells of its ray one
    site outward with their clocks and puts the daughter on the first site.
    """
    shape = tissue.shape
    t = tissue.copy()
    o = o2.astype(np.float64)
    sites = global_sites(shape, origin, gshape)
    w = draw(seed, step, sites, PURPOSE_TUMOR)
    live = (t == Cell.TUMOR_P) | (t == Cell.TUMOR_Q)

    r = rules
    p_nec = r.p_nec_max * np.clip((r.necrosis_o2_onset - o) / (r.necrosis_o2_onset - r.necrosis_o2_full), 0.0, 1.0)
    necrotic = live & (u01(w[..., 0]) < p_nec)
    cycling = (t == Cell.TUMOR_P) & ~necrotic
    to_q = cycling & (o < r.quiescence_o2_enter)
    p_div = r.p_div_max * np.clip((o - r.cycle_o2_low) / (r.cycle_o2_high - r.cycle_o2_low), 0.0, 1.0)
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
    R = int(r.push_range)
    pushing = np.zeros(shape, dtype=bool)
    if R >= 2:
        lens = [_ray_lengths(t, off, R) for off in MOORE]
        pushing = divides & (k == 0)
        metric = [np.where(ln > 0, ln * ln * sum(abs(c) for c in off), np.iinfo(np.int64).max)
                  for ln, off in zip(lens, MOORE)]
        best = np.minimum.reduce(metric)
        ties = [(m == best) & (ln > 0) for m, ln in zip(metric, lens)]
        count = np.sum(ties, axis=0)
        pushing &= count > 0
        jp = below(w[..., 2], count).astype(np.int64)
        seen = np.zeros(shape, dtype=np.int64)
        for d, tie in enumerate(ties):
            pick = pushing & tie & (seen == jp) & (direction == 0)
            direction[pick] = d + 1
            seen += tie

    quiescent = (t == Cell.TUMOR_Q) & ~necrotic
    qt = clock.astype(np.int64) + 1
    dies = quiescent & (qt >= r.q_death_steps)
    to_p = quiescent & ~dies & (o > r.quiescence_o2_exit)

    new = t.copy()
    new[necrotic | dies] = Cell.NECROTIC
    new[to_q] = Cell.TUMOR_Q
    new[to_p] = Cell.TUMOR_P
    stays_q = live & (new == Cell.TUMOR_Q)
    clock[live] = 0
    keep = stays_q & (t == Cell.TUMOR_Q)
    clock[keep] = np.minimum(qt[keep], CLOCK_MAX).astype(np.uint16)
    proposal = np.where(live, direction | (new.astype(np.int64) << PROP_STATE_SHIFT), 0)

    if pushing.any():
        return _with_pushes(tissue, clock, t, new, live, direction, w[..., 3], sites, R, box)

    # pass 2: gather
    best = np.full(shape, -1, dtype=np.int64)
    key = w[..., 3].astype(np.int64)
    for d, off in enumerate(MOORE):
        back = tuple(-o_ for o_ in off)
        aimed = shifted((proposal & PROP_DIR_MASK) == d + 1, back, False)
        kk = shifted(key, back, -1)
        best = np.where(aimed & (kk > best), kk, best)
    born = empty & (best >= 0)
    tissue[live] = new[live]
    tissue[born] = Cell.TUMOR_P
    clock[born] = 0
    return int((born & owned_mask(shape, box)).sum())


_PUSHABLE = (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC)


def _ray_lengths(t: np.ndarray, off: tuple[int, int, int], R: int) -> np.ndarray:
    """Steps along ``off`` to the first empty site if within ``R`` steps behind only pushable cells, else 0."""
    length = np.zeros(t.shape, dtype=np.int64)
    going = np.ones(t.shape, dtype=bool)
    for step in range(1, R + 1):
        s = shifted(t, tuple(step * o for o in off), 255)
        hit = going & (s == Cell.EMPTY)
        length[hit] = step
        going &= np.isin(s, _PUSHABLE)
    return length


def _with_pushes(tissue, clock, t, new, live, direction, w3, sites, R, box) -> int:
    """Resolve the events (divisions and pushes) by the largest key over the sites they claim, then apply."""
    shape = t.shape
    if int(sites.max(initial=0)) >= 2 ** 32:
        raise ValueError("the reference keys need global site indices below 2**32")
    src = np.flatnonzero(direction)
    dirs = direction.ravel()[src] - 1
    zyx = np.stack(np.unravel_index(src, shape), axis=1)
    off = np.array(MOORE, dtype=np.int64)[dirs]
    lengths = np.array([_ray_length_at(t, p, o, R) for p, o in zip(zyx, off)], dtype=np.int64)
    key = (w3.ravel()[src].astype(np.uint64) << np.uint64(32)) | sites.ravel()[src].astype(np.uint64)
    # every claimed site, per event
    ev = np.repeat(np.arange(src.size), lengths + 1)
    kk = np.concatenate([np.arange(n + 1) for n in lengths]) if src.size else np.zeros(0, dtype=np.int64)
    claim = zyx[ev] + kk[:, None] * off[ev]
    cflat = np.ravel_multi_index(tuple(claim.T), shape)
    top = np.zeros(t.size, dtype=np.uint64)
    np.maximum.at(top, cflat, key[ev])
    wins = np.ones(src.size, dtype=bool)
    np.logical_and.at(wins, ev, top[cflat] == key[ev])

    owned = owned_mask(shape, box)
    tissue[live] = new[live]
    snap_t, snap_c = tissue.copy(), clock.copy()
    born = 0
    for i in np.flatnonzero(wins):
        p, o, n = zyx[i], off[i], int(lengths[i])
        for step in range(n, 1, -1):
            a, b = tuple(p + step * o), tuple(p + (step - 1) * o)
            tissue[a] = snap_t[b]
            clock[a] = 0 if snap_t[b] == Cell.TUMOR_P else snap_c[b]
        first = tuple(p + o)
        tissue[first] = Cell.TUMOR_P
        clock[first] = 0
        born += int(owned[first])
    return born


def _ray_length_at(t: np.ndarray, p: np.ndarray, o: np.ndarray, R: int) -> int:
    """The ray length of one event (1 for a division into an empty neighbour)."""
    for step in range(1, max(R, 1) + 1):
        q = p + step * o
        if np.any(q < 0) or np.any(q >= t.shape):
            return 0
        if t[tuple(q)] == Cell.EMPTY:
            return step
        if t[tuple(q)] not in _PUSHABLE:
            return 0
    return 0
