"""Neighbourhood helpers shared by the reference rules (the twin of ``ext/_moore.pxd``)."""
from __future__ import annotations


import numpy as np

from .._constants import MOORE


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
