"""Initial conditions: a tumour disk/ball at the lattice centre and an initial vessel layout, or a state built
from arrays a user gives (:func:`state_from_arrays`, behind ``Simulation.from_arrays``; docs/initial-conditions.md).

Pure NumPy and deterministic (no random draws), shared by the engine and the reference so both start from the
same state.  No file formats here: tumorca.io.initial reads files into arrays.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._constants import FIELD_NAMES, Cell, Vessel
from ._lattice import normalize_shape
from ._numerics import float32_exact, flow_inlet_codes
from .errors import LatticeError, ParameterError
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


# -- initial conditions from data -------------------------------------------------------------------------------
# Checks and state building for arrays a user gives (Simulation.from_arrays, tumorca.io.initial.load_initial).
# Pure NumPy and format-free: files are read by tumorca.io.initial.

def _where(bad: np.ndarray) -> str:
    """``"at (i, j, ...)"``: the first True index of ``bad`` in C order, and how many there are."""
    n = int(np.count_nonzero(bad))
    first = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), bad.shape))
    return f"{n} site{'s' if n != 1 else ''}, first at {first}"


def _labels(name: str, a, codes: tuple[int, ...], shape: tuple[int, ...] | None) -> np.ndarray:
    """``a`` as a uint8 array of ``codes``; LatticeError naming the problem and the first bad site otherwise."""
    a = np.asarray(a)
    if shape is not None and a.shape != shape:
        raise LatticeError(f"{name} has shape {a.shape}, tissue has {shape}")
    if a.dtype.kind not in "iub":
        raise LatticeError(f"{name} must hold integer codes, got dtype {a.dtype}")
    bad = ~np.isin(a, codes)
    if bad.any():
        value = a.ravel()[int(np.flatnonzero(bad.ravel())[0])]
        raise LatticeError(f"{name} holds {value}, not one of {', '.join(map(str, codes))} "
                           f"({_where(bad)})")
    return a.astype(np.uint8)


def check_arrays(tissue, vessel=None, inlet=None, fields=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Check arrays of an initial condition that do not depend on the parameters; return them as
    (tissue uint8, vessel uint8, inlet uint8 or None, fields float32), in the shape given.

    ``tissue``: 2D ``(ny, nx)`` or 3D ``(nz, ny, nx)`` integer :class:`Cell` codes.  ``vessel`` (default all
    ``Vessel.NONE``): :class:`Vessel` codes of that shape.  ``inlet``: 0 none, 1 arterial, 2 venous, nonzero only on
    vessel sites.  ``fields``: ``{name: array}`` of :data:`FIELD_NAMES` fields, finite and >= 0.

    Raises
    ------
    LatticeError
        For a bad shape, dtype or label (the message names the array, the value and the first bad index).
    ParameterError
        For an unknown field name.
    """
    tissue_a = np.asarray(tissue)
    if tissue_a.ndim not in (2, 3):
        raise LatticeError(f"tissue must be a 2D (ny, nx) or 3D (nz, ny, nx) array, got {tissue_a.ndim} dimensions")
    normalize_shape(tissue_a.shape)  # every axis at least one site
    shape = tissue_a.shape
    tissue_a = _labels("tissue", tissue_a, tuple(int(c) for c in Cell), None)
    if vessel is None:
        vessel_a = np.zeros(shape, dtype=np.uint8)
    else:
        vessel_a = _labels("vessel", vessel, tuple(int(v) for v in Vessel), shape)
    inlet_a = None
    if inlet is not None:
        inlet_a = _labels("inlet", inlet, (0, 1, 2), shape)
        off = (inlet_a != 0) & (vessel_a == Vessel.NONE)
        if off.any():
            raise LatticeError(f"inlet is set where there is no vessel ({_where(off)})")
    out_fields: dict[str, np.ndarray] = {}
    if fields is not None and not isinstance(fields, Mapping):
        raise ParameterError(f"fields must be a dict of field name to array, got {type(fields).__name__}")
    for name, value in (fields or {}).items():
        if name not in FIELD_NAMES:
            raise ParameterError(f"unknown field {name!r}; fields are {', '.join(FIELD_NAMES)}")
        f = np.asarray(value)
        if f.shape != shape:
            raise LatticeError(f"field {name!r} has shape {f.shape}, tissue has {shape}")
        if f.dtype.kind not in "iuf":
            raise LatticeError(f"field {name!r} must hold numbers, got dtype {f.dtype}")
        f = f.astype(np.float32)  # the state's dtype; the check below sees what the run will hold
        bad = ~np.isfinite(f)
        if bad.any():
            raise LatticeError(f"field {name!r} is not finite ({_where(bad)})")
        bad = f < 0
        if bad.any():
            raise LatticeError(f"field {name!r} is negative ({_where(bad)})")
        out_fields[name] = f
    return tissue_a, vessel_a, inlet_a, out_fields


def _moore_components(nodes: np.ndarray, shape3: tuple[int, int, int]) -> np.ndarray:
    """A component label per node (sorted flat indices of a ``shape3`` lattice): nodes joined by a path of Moore
    neighbours share a label.  The flow solve joins Moore neighbours (tumorca.flow), so these are the pieces of
    network blood can cross.  Union by hooking roots and pointer jumping, vectorised: memory O(nodes), not
    O(sites), and a few rounds for a long vessel (a BFS in Python would take seconds on a large network)."""
    nz, ny, nx = shape3
    z, y, x = nodes // (nx * ny), (nodes // nx) % ny, nodes % nx
    us, vs = [], []
    for dz, dy, dx in ((dz, dy, dx) for dz in (0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                       if (dz, dy, dx) > (0, 0, 0)):  # 13 forward offsets: each neighbour pair once
        zz, yy, xx = z + dz, y + dy, x + dx
        ok = (zz < nz) & (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        target = (zz * ny + yy) * nx + xx
        pos = np.searchsorted(nodes, target)
        pos = np.minimum(pos, nodes.size - 1)
        ok &= nodes[pos] == target
        us.append(np.flatnonzero(ok))
        vs.append(pos[ok])
    u = np.concatenate(us) if us else np.zeros(0, np.int64)
    v = np.concatenate(vs) if vs else np.zeros(0, np.int64)
    parent = np.arange(nodes.size)
    while True:
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            return parent
        # hook the larger root under the smaller one, then compress every path to its root
        np.minimum.at(parent, np.maximum(pu, pv)[differ], np.minimum(pu, pv)[differ])
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up


def derive_inlets(vessel: np.ndarray, params: Params) -> np.ndarray:
    """Inlet codes for vessels given without them, by the rule of the built-in vessels
    (:func:`initial_vessels`): with ``perfusion = "loops"`` every stalk site is an inlet (1); with ``"flow"`` a
    stalk site on a low face of an axis longer than one site is arterial (1) and on a high face venous (2), low
    winning at a corner (:func:`tumorca._numerics.flow_inlet_codes`, the engine's rule for ``vessel_inlets =
    "edge"``).  Tips are sprout ends, never inlets.  ``vessel`` is (nz, ny, nx)."""
    stalk = vessel == Vessel.STALK
    if params.perfusion != "flow":
        return stalk.astype(np.uint8)
    nodes = np.flatnonzero(stalk.ravel()).astype(np.int64)
    inlet = np.zeros(vessel.shape, dtype=np.uint8)
    inlet.ravel()[nodes] = flow_inlet_codes(nodes, np.zeros(nodes.size, np.uint8), vessel.shape, True)
    return inlet


def check_flow(vessel: np.ndarray, inlet: np.ndarray, params: Params) -> None:
    """With ``perfusion = "flow"``, LatticeError unless some piece of the vessel network (Moore-connected) holds an
    arterial and a venous inlet (the inlets the engine's flow solve sees: ``inlet``, plus the lattice faces with
    ``vessel_inlets = "edge"``).  A lattice without vessels passes (an avascular start); so do pieces without a
    path, beside one that has it (they regress as the model says).  Arrays are (nz, ny, nx)."""
    if params.perfusion != "flow":
        return
    nodes = np.flatnonzero(vessel.ravel() != Vessel.NONE).astype(np.int64)
    if nodes.size == 0:
        return
    codes = flow_inlet_codes(nodes, inlet.ravel()[nodes], vessel.shape, params.vessel_inlets == "edge")
    comp = _moore_components(nodes, vessel.shape)
    arterial = np.zeros(nodes.size, dtype=bool)
    venous = np.zeros(nodes.size, dtype=bool)
    arterial[comp[codes == 1]] = True
    venous[comp[codes == 2]] = True
    if not (arterial & venous).any():
        raise LatticeError("no vessel path joins an arterial inlet to a venous inlet: the vessels cannot carry flow "
                           f"({int((codes == 1).sum())} arterial, {int((codes == 2).sum())} venous inlet sites; "
                           "vessels must reach the lattice faces, or give inlets)")


def state_from_arrays(shape3: tuple[int, int, int], params: Params, tissue, vessel=None, inlet=None,
                      fields=None) -> dict[str, np.ndarray]:
    """The full initial state (the arrays of :func:`initial_state`) from given tissue and vessel layers.

    What is not given starts as in :func:`initial_state`: clocks 0, every vessel site perfused (the first step's
    perfusion phase decides which carry flow), no neutrophils, ``o2`` at ``init_o2`` and the other fields 0.
    ``inlet`` None derives inlets (:func:`derive_inlets`); ``fields`` may set any of :data:`FIELD_NAMES`.  Arrays
    are ``shape3`` = (nz, ny, nx), or (ny, nx) for nz = 1.  Checks as :func:`check_arrays` and :func:`check_flow`.

    Raises
    ------
    LatticeError, ParameterError
        One line naming the problem and the first bad index.
    """
    shape3 = normalize_shape(shape3)
    tissue, vessel, inlet, fields = check_arrays(tissue, vessel, inlet, fields)
    if tissue.shape not in (shape3, shape3[1:] if shape3[0] == 1 else shape3):
        raise LatticeError(f"tissue has shape {tissue.shape}, the lattice is {shape3}")
    tissue, vessel = tissue.reshape(shape3), vessel.reshape(shape3)
    inlet = derive_inlets(vessel, params) if inlet is None else inlet.reshape(shape3)
    check_flow(vessel, inlet, params)
    # everything else exactly as the built-in start (one source of truth for clocks, neutrophils and fields)
    arrays = initial_state(shape3, params.replace(init_vessels="none", init_tumor_radius=0.0))
    arrays["tissue"] = tissue
    arrays["vessel"] = vessel
    arrays["perfused"] = (vessel != Vessel.NONE).astype(np.uint8)
    arrays["inlet"] = inlet
    for name, f in fields.items():
        arrays[name] = f.reshape(shape3)
    return arrays
