"""Neutrophil rules in NumPy: the twin of ``ext/_neutrophils.pyx``, kernel for kernel (same names, same
arguments; the scratch arrays ``prop``/``rowflags`` and ``num_threads`` are accepted and not used).

A step is ``neutrophil_life_kill``, then ``neutrophil_submove`` for each sub-move, then ``neutrophil_clear``
(:func:`tumorca.reference.step`).  Between sub-moves, a site a neutrophil has just left keeps its polarisation
and age until the next sub-move (or ``neutrophil_clear``) clears it, as in the kernels.
"""
from __future__ import annotations


import numpy as np

from .._constants import CLOCK_MAX, KILL_OWN_SITE, MOORE, PURPOSE_NEUT, PURPOSE_NEUT_MOVE, Cell
from ..rules import NeutrophilRules
from ._lattice import Box, Origin, choose, gather_winner, proposal_won, global_sites, owned_mask, shifted
from ._rng import below, draw, u01


def neutrophil_life_kill(tissue: np.ndarray, clock: np.ndarray, perfused: np.ndarray, cxcl: np.ndarray,
                         neut: np.ndarray, neut_p: np.ndarray, neut_age: np.ndarray, prop: np.ndarray,
                         rowflags: np.ndarray, seed: int, step: int, rules: NeutrophilRules, num_threads: int,
                         origin: Origin = None, gshape: tuple[int, int, int] | None = None,
                         box: Box = None) -> tuple[int, int, int]:
    """Recruitment, death, polarisation and N1 killing, in place (rules in ``tumorca._neutrophils``).  Returns
    (recruited, died, killed) in ``box``."""
    r = rules
    shape = tissue.shape
    w = draw(seed, step, global_sites(shape, origin, gshape), PURPOSE_NEUT)
    present = neut != 0
    live = (tissue == Cell.TUMOR_P) | (tissue == Cell.TUMOR_Q)

    # life: death, kill decision, polarisation, ageing; recruitment
    dies = present & (u01(w[..., 0]) < r.p_death)
    alive = present & ~dies
    pold = neut_p.astype(np.float64)
    wants = alive & (u01(w[..., 1]) < r.p_kill_max * (1.0 - pold))
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
    c = cxcl.astype(np.float64)
    recruit = (~present & (perfused != 0) & (r.p_recruit > 0)
               & (u01(w[..., 0]) < r.p_recruit * (c / (c + r.cxcl_half))))
    neut_p[alive] = (r.p_star + (pold - r.p_star) * r.g_pol)[alive].astype(np.float32)
    neut_age[alive] = np.minimum(neut_age[alive].astype(np.int64) + 1, CLOCK_MAX).astype(np.uint16)
    neut[dies] = 0
    neut_p[dies] = 0
    neut_age[dies] = 0
    neut[recruit] = 1
    neut_p[recruit] = np.float32(r.p_star)
    neut_age[recruit] = 0

    # kills: a live tumour cell aimed at by any neutrophil is cleared
    hit = live & (kill == KILL_OWN_SITE)
    for d, off in enumerate(MOORE):
        hit |= live & shifted(kill == d + 1, tuple(-o for o in off), False)
    tissue[hit] = Cell.EMPTY
    clock[hit] = 0
    owned = owned_mask(shape, box)
    return int((recruit & owned).sum()), int((dies & owned).sum()), int((hit & owned).sum())


def neutrophil_submove(neut: np.ndarray, neut_p: np.ndarray, neut_age: np.ndarray, cxcl: np.ndarray,
                       prop: np.ndarray, rowflags: np.ndarray, seed: int, step: int, substep: int,
                       rules: NeutrophilRules, num_threads: int, origin: Origin = None,
                       gshape: tuple[int, int, int] | None = None, box: Box = None) -> None:
    """Chemotactic sub-move ``substep``, in place: each neutrophil proposes a free Moore neighbour, each free site
    takes the proposal with the largest key, and the winner moves there with its polarisation and age."""
    shape = neut.shape
    purpose = PURPOSE_NEUT_MOVE | (substep << 8)
    present = neut != 0
    neut_p[~present] = 0
    neut_age[~present] = 0
    c = cxcl.astype(np.float64)
    wm = draw(seed, step, global_sites(shape, origin, gshape), purpose)
    weights = []
    for off in MOORE:
        free = shifted(~present, off, False)
        g = np.maximum(shifted(c, off, 0.0) - c, 0.0)
        weights.append(np.where(present & free, 1.0 + rules.chemotaxis * g, 0.0))
    dirs = choose(weights, u01(wm[..., 1])) + 1
    winner = gather_winner(dirs, wm[..., 0].astype(np.int64))
    arrive = ~present & (winner >= 0)
    won = proposal_won(dirs, winner)
    src = np.maximum(winner, 0)
    new_p = neut_p.ravel()[src].reshape(shape)
    new_age = neut_age.ravel()[src].reshape(shape)
    neut[arrive] = 1
    neut_p[arrive] = new_p[arrive]
    neut_age[arrive] = new_age[arrive]
    neut[won] = 0


def neutrophil_clear(neut: np.ndarray, neut_p: np.ndarray, neut_age: np.ndarray, prop: np.ndarray,
                     num_threads: int) -> None:
    """After the last sub-move: zero polarisation and age where no neutrophil is."""
    gone = neut == 0
    neut_p[gone] = 0
    neut_age[gone] = 0
