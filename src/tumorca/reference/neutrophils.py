"""Neutrophil rules in NumPy: the twin of ``ext/_neutrophils.pyx``."""
from __future__ import annotations


import numpy as np

from .._constants import (KILL_OWN_SITE, MOORE, PURPOSE_NEUT, PURPOSE_NEUT_MOVE, Cell)
from ..params import Params
from ._lattice import _choose, _gather_winner, _won, shifted
from ._rng import below, draw, u01


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
