"""Initial conditions: a tumour disk/ball at the lattice centre and an initial vessel layout.

Pure NumPy and deterministic (no random draws), shared by the engine and the reference so both start from the
same state.
"""
from __future__ import annotations

import numpy as np

from ._constants import FIELD_NAMES, Cell, Vessel
from ._numerics import float32_exact
from .params import Params


Region = tuple[slice, slice, slice]


def _coords(shape: tuple[int, int, int], region: Region | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global z, y, x indices of ``region`` (the whole lattice if None), shaped to broadcast."""
    region = region or tuple(slice(0, n) for n in shape)
    z, y, x = (np.arange(r.start, r.stop) for r in region)
    return z[:, None, None], y[None, :, None], x[None, None, :]


def vessel_mask(shape: tuple[int, int, int], params: Params, region: Region | None = None) -> np.ndarray:
    """Boolean mask of the initial vessel sites (of ``region``, global slices, if given).

    ``parallel``: straight vessels along x, every ``init_vessel_spacing`` sites in y (and in z for 3D), placed
    half a spacing off the centre so that the initial tumour sits between vessels.  In 2D these are walls.

    ``grid``: straight vessels along z through every ``init_vessel_spacing``-th site in y and x, half a spacing
    off the centre.  A 2D lattice is then a cross-section of parallel vessels (isolated vessel sites that a
    tumour can grow around, as in a tissue section); a 3D lattice holds the vessels as lines along z.
    """
    nz, ny, nx = shape
    z, y, x = _coords(shape, region)
    out = (z.shape[0], y.shape[1], x.shape[2])
    if params.init_vessels == "none":
        return np.zeros(out, dtype=bool)
    s = params.init_vessel_spacing
    ys = (y - (ny // 2 + s // 2)) % s == 0
    if params.init_vessels == "grid":
        mask = ys & ((x - (nx // 2 + s // 2)) % s == 0)
    else:
        mask = ys & (np.ones_like(z, dtype=bool) if nz == 1 else (z - (nz // 2 + s // 2)) % s == 0)
    return np.broadcast_to(mask, out).copy()


def capillary_bed(shape: tuple[int, int, int], params: Params, region: Region | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A host capillary bed for the blood-flow solve (tumorca.flow): (vessel mask, inlet codes) of ``region``
    (global slices; the whole lattice if None), computed from global coordinates without building the whole lattice.

    Capillaries run along x on the rows of the ``parallel`` layout (every ``init_vessel_spacing`` = s sites in y,
    and in z for 3D, half a spacing off the centre); each has an arterial inlet (code 1) at x = 0 and a venous
    inlet (code 2) at x = nx - 1.  Neighbouring capillaries are joined by oblique cross-links that leave capillary
    k at x0 (every ``init_bed_crosslink_spacing`` sites, x0 + s <= nx - 1) and reach capillary k + 1 (in y, and in
    3D also in z) at x0 + s, one diagonal step per site.  An oblique link joins an upstream point to a downstream
    one, so every link carries flow; links straight across would join points of equal pressure and carry none
    (an idealised bed, an assumption: real beds join arterioles and venules through a mesh of capillaries).
    """
    nz, ny, nx = shape
    z, y, x = _coords(shape, region)
    out = (z.shape[0], y.shape[1], x.shape[2])
    s = params.init_vessel_spacing
    k = params.init_bed_crosslink_spacing
    y0 = (ny // 2 + s // 2) % s
    z0 = (nz // 2 + s // 2) % s
    on_y = (y - y0) % s == 0
    on_z = np.ones_like(z, dtype=bool) if nz == 1 else (z - z0) % s == 0

    def links(c, c0, n):
        t = (c - c0) % s
        base = c - t
        ok = (t >= 1) & (base >= 0) & (base + s < n)
        x0 = x - t
        return ok & (x0 >= 0) & (x0 % k == 0) & (x0 + s <= nx - 1)

    capillary = on_y & on_z & np.ones_like(x, dtype=bool)
    mask = capillary | (on_z & links(y, y0, ny))
    if nz > 1:
        mask = mask | (on_y & links(z, z0, nz))
    mask = np.broadcast_to(mask, out).copy()
    inlet = np.zeros(out, dtype=np.uint8)
    cap = np.broadcast_to(capillary, out)
    inlet[cap & np.broadcast_to(x == 0, out)] = 1
    inlet[cap & np.broadcast_to(x == nx - 1, out)] = 2
    return mask, inlet


def initial_vessels(shape: tuple[int, int, int], params: Params, region: Region | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The initial vessel mask and ``inlet`` array (of ``region``, global slices, if given).

    ``bed``: :func:`capillary_bed` (codes 1 arterial, 2 venous).  Otherwise :func:`vessel_mask`, and with
    ``perfusion = "loops"`` every initial vessel site is an inlet (1); with ``perfusion = "flow"`` the straight
    vessels are fed from their ends: arterial (1) where they meet the low face of their axis (x for
    ``parallel``, z for ``grid``) and venous (2) at the high face (the isolated cross-sections of ``grid`` in
    2D carry no flow).
    """
    if params.init_vessels == "bed":
        return capillary_bed(shape, params, region)
    mask = vessel_mask(shape, params, region)
    if params.perfusion != "flow":
        return mask, mask.astype(np.uint8)
    z, y, x = _coords(shape, region)
    axis, c = (2, x) if params.init_vessels == "parallel" else (0, z)
    n = shape[axis]
    inlet = np.zeros(mask.shape, dtype=np.uint8)
    if n > 1:
        inlet[mask & np.broadcast_to(c == 0, mask.shape)] = 1
        inlet[mask & np.broadcast_to(c == n - 1, mask.shape)] = 2
    return mask, inlet


def tumor_mask(shape: tuple[int, int, int], params: Params, region: Region | None = None) -> np.ndarray:
    """Boolean mask of the sites within ``init_tumor_radius`` of the lattice centre (Euclidean, in sites); empty
    for radius 0.  Of ``region`` (global slices) if given."""
    nz, ny, nx = shape
    z, y, x = _coords(shape, region)
    out = (z.shape[0], y.shape[1], x.shape[2])
    if params.init_tumor_radius <= 0:
        return np.zeros(out, dtype=bool)
    r2 = (y - ny // 2) ** 2 + (x - nx // 2) ** 2 + ((z - nz // 2) ** 2 if nz > 1 else 0)
    return np.broadcast_to(r2 <= params.init_tumor_radius ** 2, out).copy()


def initial_state(shape: tuple[int, int, int], params: Params, region: Region | None = None) -> dict[str, np.ndarray]:
    """Arrays of the initial lattice: tissue, clock, vessel, vclock, perfused, inlet, the neutrophil layer and every field (see
    Simulation.get_state).  With ``region`` (global slices), only that block, computed without building the whole
    lattice (a rank of a distributed run builds its own block this way)."""
    vessels, inlet = initial_vessels(shape, params, region)
    tissue = np.zeros(vessels.shape, dtype=np.uint8)
    # the tumour is placed over the vessel layer: vessels inside it start co-opted
    tissue[tumor_mask(shape, params, region)] = Cell.TUMOR_P
    arrays = {
        "tissue": tissue,
        "clock": np.zeros(tissue.shape, dtype=np.uint16),
        "vessel": np.where(vessels, np.uint8(Vessel.STALK), np.uint8(Vessel.NONE)),
        "vclock": np.zeros(tissue.shape, dtype=np.uint16),
        "perfused": vessels.astype(np.uint8),
        "inlet": inlet,
        "neut": np.zeros(tissue.shape, dtype=np.uint8),
        "neut_p": np.zeros(tissue.shape, dtype=np.float32),
        "neut_age": np.zeros(tissue.shape, dtype=np.uint16),
    }
    for name in FIELD_NAMES:
        arrays[name] = np.zeros(tissue.shape, dtype=np.float32)
    arrays["o2"][:] = float32_exact(params.init_o2)
    return arrays
