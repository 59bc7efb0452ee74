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
