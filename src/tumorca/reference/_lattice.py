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
VN = ((0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0))


def choose(weights: list[np.ndarray], u: np.ndarray) -> np.ndarray:
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


def gather_winner(dirs: np.ndarray, keys: np.ndarray) -> np.ndarray:
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


def proposal_won(dirs: np.ndarray, winner: np.ndarray) -> np.ndarray:
    """True where a site's proposal (direction in ``dirs``) won the gather at its target."""
    sites = np.arange(dirs.size, dtype=np.int64).reshape(dirs.shape)
    won = np.zeros(dirs.shape, dtype=bool)
    for d, off in enumerate(MOORE):
        won |= (dirs == d + 1) & (shifted(winner, off, -2) == sites)
    return won


# ---------------------------------------------------------------------------------------------------------------
# Placement of a local array in the global lattice (the twin of ``Geom`` in ext/_moore.pxd): random draws and
# tie-breaks key on global site indices, lattice faces are the global faces, and counts cover the owned box.
# ``None`` everywhere is the whole lattice.
# ---------------------------------------------------------------------------------------------------------------
Origin = tuple[int, int, int] | None
Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None


def global_sites(shape: tuple[int, int, int], origin: Origin = None,
                 gshape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Global site index ``(z*gny + y)*gnx + x`` of every local site (uint64), for a local array of ``shape`` whose
    element [0, 0, 0] lies at ``origin`` of a lattice of ``gshape``."""
    oz, oy, ox = origin if origin is not None else (0, 0, 0)
    _, gny, gnx = gshape if gshape is not None else shape
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return (((z + oz) * gny + (y + oy)) * gnx + (x + ox)).astype(np.uint64)


def owned_mask(shape: tuple[int, int, int], box: Box = None) -> np.ndarray:
    """True on the owned box (((z0, z1), (y0, y1), (x0, x1)), local indices) of a local array; everywhere
    without one."""
    if box is None:
        return np.ones(shape, dtype=bool)
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(lo, hi) for lo, hi in box)] = True
    return m


def global_face_mask(shape: tuple[int, int, int], origin: Origin = None,
                     gshape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Local sites on a face of the global lattice, along axes longer than one site (a 2D lattice has no z
    faces)."""
    o = origin if origin is not None else (0, 0, 0)
    g = gshape if gshape is not None else shape
    m = np.zeros(shape, dtype=bool)
    for axis in range(3):
        if g[axis] > 1:
            idx = np.arange(shape[axis]) + o[axis]
            on = (idx == 0) | (idx == g[axis] - 1)
            m |= on.reshape([-1 if a == axis else 1 for a in range(3)])
    return m
