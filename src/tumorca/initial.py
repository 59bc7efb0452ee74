"""Initial conditions: a tumour disk/ball at the lattice centre and an initial vessel layout.

Pure NumPy and deterministic (no random draws), shared by the engine and the reference so both start from the
same state.
"""
from __future__ import annotations

import numpy as np

from ._constants import FIELD_NAMES, Cell
from ._numerics import float32_exact
from .params import Params


def vessel_mask(shape: tuple[int, int, int], params: Params) -> np.ndarray:
    """Boolean mask of the initial vessel sites.

    ``parallel``: straight vessels along x, every ``init_vessel_spacing`` sites in y (and in z for 3D), placed
    half a spacing off the centre so that the initial tumour sits between vessels.  In 2D these are walls.

    ``grid``: straight vessels along z through every ``init_vessel_spacing``-th site in y and x, half a spacing
    off the centre.  A 2D lattice is then a cross-section of parallel vessels (isolated vessel sites that a
    tumour can grow around, as in a tissue section); a 3D lattice holds the vessels as lines along z.
    """
    nz, ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    if params.init_vessels == "none":
        return mask
    s = params.init_vessel_spacing
    ys = (np.arange(ny) - (ny // 2 + s // 2)) % s == 0
    if params.init_vessels == "grid":
        xs = (np.arange(nx) - (nx // 2 + s // 2)) % s == 0
        mask[:] = (ys[:, None] & xs[None, :])[None, :, :]
        return mask
    zs = np.ones(nz, dtype=bool) if nz == 1 else (np.arange(nz) - (nz // 2 + s // 2)) % s == 0
    mask[:] = (zs[:, None, None] & ys[None, :, None])
    return mask


def tumor_mask(shape: tuple[int, int, int], params: Params) -> np.ndarray:
    """Boolean mask of the sites within ``init_tumor_radius`` of the lattice centre (Euclidean, in sites); empty
    for radius 0."""
    nz, ny, nx = shape
    if params.init_tumor_radius <= 0:
        return np.zeros(shape, dtype=bool)
    z, y, x = np.ogrid[:nz, :ny, :nx]
    r2 = (y - ny // 2) ** 2 + (x - nx // 2) ** 2 + ((z - nz // 2) ** 2 if nz > 1 else 0)
    return r2 <= params.init_tumor_radius ** 2


def initial_state(shape: tuple[int, int, int], params: Params) -> dict[str, np.ndarray]:
    """Arrays of the initial lattice: tissue, clock, perfused, inlet, the neutrophil layer and every field (see Simulation.get_state)."""
    vessels = vessel_mask(shape, params)
    tissue = np.zeros(shape, dtype=np.uint8)
    tissue[vessels] = Cell.EC_STALK
    tissue[tumor_mask(shape, params) & ~vessels] = Cell.TUMOR_P
    arrays = {
        "tissue": tissue,
        "clock": np.zeros(shape, dtype=np.uint16),
        "perfused": vessels.astype(np.uint8),
        "inlet": vessels.astype(np.uint8),
        "neut": np.zeros(shape, dtype=np.uint8),
        "neut_p": np.zeros(shape, dtype=np.float32),
        "neut_age": np.zeros(shape, dtype=np.uint16),
    }
    for name in FIELD_NAMES:
        arrays[name] = np.zeros(shape, dtype=np.float32)
    arrays["o2"][:] = float32_exact(params.init_o2)
    return arrays
