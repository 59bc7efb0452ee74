"""Initial conditions from data (issue 17): Simulation.from_arrays, tumorca.initial.state_from_arrays and the
file reader tumorca.io.initial.load_initial (HDF5, npz, PNG, TIFF; colour/label map; resampling; checks)."""
from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from tumorca import Cell, Params, Simulation, Vessel
from tumorca.errors import InitialDataError, LatticeError, ParameterError
from tumorca.initial import initial_state, state_from_arrays
from tumorca.io.initial import IMAGE_CLASSES, load_initial, resample

from conftest import assert_states_equal

imageio = pytest.importorskip("imageio.v3")
tifffile = pytest.importorskip("tifffile")

#: The drawing colours of the map, by meaning (tests spell them out so a change to the map is seen here).
WHITE, RED, DARK_RED, BLACK, BLUE, MAGENTA = (255, 255, 255), (255, 0, 0), (128, 0, 0), (0, 0, 0), (0, 0, 255), \
    (255, 0, 255)


def small_layers(ny: int = 24, nx: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A tumour of radius 2 at (ny/3, nx/3) ((8, 10) on the default 24x32) and one vessel along row 2ny/3 (16)
    from the left face to the right face."""
    tissue = np.zeros((ny, nx), np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    tissue[(yy - ny // 3) ** 2 + (xx - nx // 3) ** 2 <= 4] = Cell.TUMOR_P
    vessel = np.zeros((ny, nx), np.uint8)
    vessel[2 * ny // 3, :] = Vessel.STALK
    return tissue, vessel


def drawing(tissue: np.ndarray, vessel: np.ndarray) -> np.ndarray:
    """RGB drawing of 2D layers in the documented colours."""
    img = np.empty(tissue.shape + (3,), np.uint8)
    img[...] = WHITE
    img[tissue == Cell.TUMOR_P] = RED
    img[tissue == Cell.TUMOR_Q] = DARK_RED
    img[tissue == Cell.NECROTIC] = BLACK
    img[(vessel == Vessel.STALK) & (tissue == Cell.EMPTY)] = BLUE
    img[(vessel == Vessel.STALK) & (tissue == Cell.TUMOR_P)] = MAGENTA
    return img


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


# -- the engine entry point ----------------------------------------------------------------------------------------

def test_tumour_and_vessel_start_where_given_and_the_vessel_joining_inlets_is_perfused():
    tissue, vessel = small_layers()
    sim = Simulation.from_arrays(tissue, vessel, params=Params(), seed=1, threads=1)
    assert sim.step_index == 0 and sim.shape == (24, 32)
    np.testing.assert_array_equal(sim.tissue, tissue)
    np.testing.assert_array_equal(sim.vessel, vessel)
    state = sim.get_state()["arrays"]
    # inlets derived as for the built-in vessels: arterial at x = 0, venous at x = nx - 1
    assert state["inlet"][16, 0] == 1 and state["inlet"][16, -1] == 2 and state["inlet"].sum() == 3
    np.testing.assert_array_equal(state["o2"], np.float32(Params().init_o2))
    for name in ("clock", "vclock", "neut", "neut_age", "vegf_free", "mmp9", "cxcl"):
        assert not state[name].any(), name
    sim.step(3)
    assert sim.perfused[16].all() and sim.perfused.sum() == 32  # the whole vessel carries flow
    assert sim.counts()[Cell.TUMOR_P] >= 13 and sim.tissue[8, 10] != Cell.EMPTY
    # O2 is highest along the perfused vessel
    o2 = sim.field("o2")
    assert o2[16].mean() > o2[2].mean()


@pytest.mark.parametrize("with_inlet", [True, False])
def test_a_run_from_the_builtin_arrays_equals_the_builtin_run_bit_for_bit(with_inlet):
    p = Params()
    a = initial_state((1, 48, 64), p)
    ref = Simulation((48, 64), p, seed=7, threads=1)
    sim = Simulation.from_arrays(a["tissue"][0], a["vessel"][0], inlet=a["inlet"][0] if with_inlet else None,
                                 fields={"o2": a["o2"][0]} if with_inlet else None, params=p, seed=7, threads=1)
    assert_states_equal(ref.get_state(), sim.get_state())
    ref.step(8)
    sim.step(8)
    assert_states_equal(ref.get_state(), sim.get_state())


def test_three_dimensional_arrays_and_given_fields():
    nz, ny, nx = 6, 10, 12
    tissue = np.zeros((nz, ny, nx), np.uint8)
    tissue[3, 5, 6] = Cell.TUMOR_P
    vessel = np.zeros_like(tissue)
    vessel[2, 2, :] = Vessel.STALK
    vegf = np.full(tissue.shape, 0.25, np.float64)
    sim = Simulation.from_arrays(tissue, vessel, fields={"vegf_free": vegf}, seed=2, threads=1)
    assert sim.shape == (nz, ny, nx) and sim.ndim == 3
    assert sim.tissue[3, 5, 6] == Cell.TUMOR_P and sim.vessel[2, 2].all()
    assert sim.field("vegf_free").dtype == np.float32 and np.all(sim.field("vegf_free") == np.float32(0.25))
    inlet = sim.get_state()["arrays"]["inlet"]
    assert inlet[2, 2, 0] == 1 and inlet[2, 2, -1] == 2
    sim.step(1)
    assert sim.perfused[2, 2].all()


def test_an_avascular_start_is_allowed():
    tissue, _ = small_layers()
    sim = Simulation.from_arrays(tissue, seed=1, threads=1)
    assert not sim.vessel.any() and sim.summary()["vessel_sites"] == 0
    sim.step(2)
    assert not sim.perfused.any()


def test_vessels_without_an_arterial_venous_path_cannot_carry_flow():
    tissue, vessel = small_layers()
    vessel[16, 20:] = Vessel.NONE  # touches the left face only
    with pytest.raises(LatticeError, match="no vessel path joins an arterial inlet to a venous inlet") as e:
        Simulation.from_arrays(tissue, vessel)
    assert "1 arterial, 0 venous" in one_line(e)
    # a piece with no path beside one that has it is allowed (it regresses as the model says)
    vessel[16, :] = Vessel.STALK
    vessel[4, 20:25] = Vessel.STALK
    sim = Simulation.from_arrays(tissue, vessel, threads=1)
    sim.step(1)
    assert sim.perfused[16].all() and not sim.perfused[4].any()
    # explicit inlets that are both arterial: no path either
    inlet = np.zeros_like(vessel)
    inlet[16, 0] = inlet[16, -1] = 1
    with pytest.raises(LatticeError, match="cannot carry flow"):
        Simulation.from_arrays(tissue, vessel, inlet=inlet)
    # a diagonal joint counts (the flow solve joins Moore neighbours), and loops mode needs no path
    v2 = np.zeros_like(vessel)
    v2[10, :16] = v2[11, 16:] = Vessel.STALK
    Simulation.from_arrays(tissue, v2)
    sim = Simulation.from_arrays(tissue, vessel * 0 + (np.arange(32) < 5)[None, :] * (np.arange(24) == 3)[:, None],
                                 params=Params(perfusion="loops"))
    assert sim.get_state()["arrays"]["inlet"][3, :5].all()  # loops: every stalk site an inlet, as built in


@pytest.mark.parametrize("kw,error,match", [
    (dict(tissue=np.zeros((4, 4, 4, 4), np.uint8)), LatticeError, "2D .* or 3D"),
    (dict(tissue=np.zeros((0, 4), np.uint8)), LatticeError, "positive"),
    (dict(tissue=np.zeros((4, 4), np.float32)), LatticeError, "tissue must hold integer codes, got dtype float32"),
    (dict(tissue=np.full((4, 4), 4, np.uint8)), LatticeError, r"tissue holds 4, not one of 0, 1, 2, 3 \(16 sites, "
                                                              r"first at \(0, 0\)\)"),
    (dict(vessel=np.zeros((4, 5), np.uint8)), LatticeError, r"vessel has shape \(4, 5\), tissue has \(4, 4\)"),
    (dict(vessel=np.full((4, 4), 3, np.int64)), LatticeError, "vessel holds 3"),
    (dict(inlet=np.ones((4, 4), np.uint8)), LatticeError, r"inlet is set where there is no vessel .*first at \(0, 0\)"),
    (dict(vessel=np.ones((4, 4), np.uint8), inlet=np.full((4, 4), 3, np.uint8)), LatticeError, "inlet holds 3"),
    (dict(fields={"oxygen": np.zeros((4, 4))}), ParameterError, "unknown field 'oxygen'"),
    (dict(fields=[np.zeros((4, 4))]), ParameterError, "fields must be a dict"),
    (dict(fields={"o2": np.zeros((3, 4))}), LatticeError, "field 'o2' has shape"),
    (dict(fields={"o2": np.where(np.eye(4), np.nan, 1.0)}), LatticeError, r"field 'o2' is not finite .*first at "
                                                                          r"\(0, 0\)"),
    (dict(fields={"mmp9": -np.ones((4, 4))}), LatticeError, "field 'mmp9' is negative"),
])
def test_bad_arrays_give_one_line_errors_naming_the_problem(kw, error, match):
    args = {"tissue": np.zeros((4, 4), np.uint8), **kw}
    with pytest.raises(error, match=match) as e:
        Simulation.from_arrays(args.pop("tissue"), args.pop("vessel", None), **args)
    one_line(e)


def test_state_from_arrays_needs_no_simulation():
    tissue, vessel = small_layers()
    p = Params()
    arrays = state_from_arrays((1,) + tissue.shape, p, tissue, vessel)
    assert set(arrays) == set(initial_state((1, 4, 4), p))
    assert all(a.shape == (1, 24, 32) for a in arrays.values())
    assert arrays["perfused"].sum() == 32 and arrays["tissue"][0, 8, 10] == Cell.TUMOR_P
    with pytest.raises(LatticeError, match="the lattice is"):
        state_from_arrays((1, 10, 10), p, tissue, vessel)


# -- files ----------------------------------------------------------------------------------------------------------

def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def write_h5(path, attrs=None, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
        f.attrs.update(attrs or {})
    return path


@pytest.mark.parametrize("fmt", ["npz", "h5"])
def test_npz_and_hdf5_round_trip(tmp_path, fmt):
    tissue, vessel = small_layers()
    inlet = np.zeros_like(vessel)
    inlet[16, 0], inlet[16, 31] = 1, 2
    o2 = np.full(tissue.shape, 30.0, np.float32)
    path = tmp_path / f"start.{fmt}"
    (write_npz if fmt == "npz" else write_h5)(path, tissue=tissue, vessel=vessel, inlet=inlet, o2=o2)
    d = load_initial(path)
    np.testing.assert_array_equal(d.tissue, tissue)
    np.testing.assert_array_equal(d.vessel, vessel)
    np.testing.assert_array_equal(d.inlet, inlet)
    assert set(d.fields) == {"o2"} and np.all(d.fields["o2"] == 30.0)
    assert d.source == str(path) and d.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert d.pixel_size_um is None and d.resampled_from is None and d.shape == (24, 32)
    sim = Simulation.from_arrays(**d.arrays(), threads=1)
    assert sim.tissue[8, 10] == Cell.TUMOR_P and np.all(sim.field("o2") == 30.0)


def test_tissue_alone_and_pixel_size_attribute(tmp_path):
    tissue, _ = small_layers(24, 32)
    d = load_initial(write_h5(tmp_path / "a.h5", {"pixel_size_um": 10.0}, tissue=tissue), dx_um=20.0)
    assert d.inlet is None and not d.vessel.any() and d.fields == {}
    assert d.pixel_size_um == 10.0 and d.resampled_from == (24, 32) and d.shape == (12, 16)
    d = load_initial(write_npz(tmp_path / "b.npz", tissue=tissue, pixel_size_um=np.array(20.0)))
    assert d.shape == (24, 32) and d.resampled_from is None and d.pixel_size_um == 20.0


def test_png_drawing_round_trip_and_run(tmp_path):
    tissue, vessel = small_layers()
    tissue[16, 9:12] = Cell.TUMOR_P  # a vessel inside tumour: magenta
    tissue[0, 0], tissue[0, 1] = Cell.TUMOR_Q, Cell.NECROTIC
    path = tmp_path / "drawing.png"
    imageio.imwrite(path, drawing(tissue, vessel))
    d = load_initial(path)
    np.testing.assert_array_equal(d.tissue, tissue)
    np.testing.assert_array_equal(d.vessel, vessel)
    assert d.inlet is None and d.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # RGBA, fully opaque, reads the same
    rgba = np.concatenate([drawing(tissue, vessel), np.full(tissue.shape + (1,), 255, np.uint8)], axis=-1)
    imageio.imwrite(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(load_initial(tmp_path / "rgba.png").tissue, tissue)
    sim = Simulation.from_arrays(d.tissue, d.vessel, threads=1)
    sim.step(1)
    assert sim.perfused[16].all()


def test_label_png_and_tiff_stacks(tmp_path):
    labels = np.zeros((2, 8, 9), np.uint8)
    labels[:, 4, :] = 4        # vessel in host tissue
    labels[1, 4, 3:5] = 5      # vessel inside proliferating tumour
    labels[0, 1, 1] = 2
    labels[1, 6, 6] = 8        # a tip
    table_t = np.array([c.tissue for c in IMAGE_CLASSES])
    table_v = np.array([c.vessel for c in IMAGE_CLASSES])
    imageio.imwrite(tmp_path / "labels.png", labels[1])
    d = load_initial(tmp_path / "labels.png")
    np.testing.assert_array_equal(d.tissue, table_t[labels[1]])
    np.testing.assert_array_equal(d.vessel, table_v[labels[1]])
    tifffile.imwrite(tmp_path / "stack.tif", labels)
    d = load_initial(tmp_path / "stack.tif", ndim=3)
    assert d.shape == (2, 8, 9) and d.vessel[1, 6, 6] == Vessel.TIP and d.tissue[1, 4, 3] == Cell.TUMOR_P
    np.testing.assert_array_equal(d.tissue, table_t[labels])
    # an RGB stack of drawings
    t2, v2 = small_layers(8, 9)
    rgb = np.stack([drawing(t2, v2)] * 3)
    tifffile.imwrite(tmp_path / "rgb.tiff", rgb, photometric="rgb")
    d = load_initial(tmp_path / "rgb.tiff")
    assert d.shape == (3, 8, 9)
    np.testing.assert_array_equal(d.tissue, np.stack([t2] * 3))
    sim = Simulation.from_arrays(d.tissue, d.vessel, threads=1)
    assert sim.shape == (3, 8, 9)


def test_every_labelled_class_has_a_unique_code_and_colour():
    assert [c.label for c in IMAGE_CLASSES] == list(range(len(IMAGE_CLASSES)))
    assert all(c.label == c.tissue + 4 * c.vessel for c in IMAGE_CLASSES)
    colours = [c.rgb for c in IMAGE_CLASSES if c.rgb is not None]
    assert len(colours) == len(set(colours)) == 8
    assert {c.rgb for c in IMAGE_CLASSES} >= {WHITE, RED, DARK_RED, BLACK, BLUE, MAGENTA}


def _bad_files(tmp_path):
    """(file, match) pairs: every kind of malformed input."""
    t, v = small_layers(6, 8)
    out = []
    out.append((tmp_path / "missing.h5", "no such file"))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    out.append((tmp_path / "junk.h5", "cannot read it as HDF5"))
    (tmp_path / "junk.npz").write_bytes(b"PK no zip")
    out.append((tmp_path / "junk.npz", "cannot read it as .npz \\(not a zip archive\\)"))
    (tmp_path / "junk.png").write_bytes(b"\x89PNG broken")
    out.append((tmp_path / "junk.png", "cannot read it as PNG"))
    (tmp_path / "junk.tif").write_bytes(b"II*\x00 broken")
    out.append((tmp_path / "junk.tif", "cannot read it as TIFF"))
    (tmp_path / "start.txt").write_text("tissue")
    out.append((tmp_path / "start.txt", "unknown format '.txt'"))
    out.append((write_npz(tmp_path / "notissue.npz", vessel=v), "no 'tissue' array"))
    out.append((write_h5(tmp_path / "unknown.h5", tissue=t, cells=t, oxygen=t), "unknown arrays 'cells', 'oxygen'"))
    out.append((write_npz(tmp_path / "float.npz", tissue=t.astype(float)), "tissue must hold integer codes"))
    out.append((write_npz(tmp_path / "dims.npz", tissue=np.zeros(5, np.uint8)), "2D .* or 3D"))
    out.append((write_npz(tmp_path / "shapes.npz", tissue=t, vessel=v[:, :5]), "vessel has shape"))
    out.append((write_h5(tmp_path / "label.h5", tissue=t + 5), r"tissue holds 5"))
    out.append((write_npz(tmp_path / "nan.npz", tissue=t, o2=np.full(t.shape, np.nan)), "field 'o2' is not finite"))
    out.append((write_npz(tmp_path / "neg.npz", tissue=t, cxcl=-np.ones(t.shape)), "field 'cxcl' is negative"))
    out.append((write_npz(tmp_path / "inlet.npz", tissue=t, inlet=np.ones_like(t)), "inlet is set where there is no"))
    out.append((write_h5(tmp_path / "px.h5", {"pixel_size_um": -2.0}, tissue=t), "pixel_size_um must be a positive"))
    out.append((write_npz(tmp_path / "px0.npz", tissue=t, pixel_size_um=np.array(0.0)), "pixel_size_um must be a pos"))
    with h5py.File(tmp_path / "group.h5", "w") as f:
        f["tissue"] = t
        f.create_group("o2")
    out.append((tmp_path / "group.h5", "'o2' is a group"))
    img = drawing(t, v)
    img[2, 3] = img[4, 5] = (0, 200, 0)
    imageio.imwrite(tmp_path / "green.png", img)
    out.append((tmp_path / "green.png", r"colour #00c800 \(rgb 0, 200, 0\) is not in the colour map \(2 pixels, "
                                        r"first at \(2, 3\)\)"))
    rgba = np.concatenate([drawing(t, v), np.full(t.shape + (1,), 255, np.uint8)], axis=-1)
    rgba[1, 1, 3] = 0
    imageio.imwrite(tmp_path / "alpha.png", rgba)
    out.append((tmp_path / "alpha.png", r"1 pixel not opaque .*first at \(1, 1\)"))
    imageio.imwrite(tmp_path / "grey.png", np.where(t > 0, 255, 0).astype(np.uint8))
    out.append((tmp_path / "grey.png", "label 255 is not a code 0..11"))
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((4, 4), np.float32))
    out.append((tmp_path / "float.tif", "must hold integer labels, got dtype float32"))
    tifffile.imwrite(tmp_path / "rgb16.tif", np.zeros((4, 4, 3), np.uint16), photometric="rgb")
    out.append((tmp_path / "rgb16.tif", "8 bits per channel"))
    tifffile.imwrite(tmp_path / "4d.tif", np.zeros((2, 3, 4, 5), np.uint8), photometric="minisblack")
    out.append((tmp_path / "4d.tif", "spatial dimensions"))
    return out


def test_every_malformed_file_gives_a_one_line_error_naming_the_file(tmp_path):
    cases = _bad_files(tmp_path)
    assert len(cases) >= 20
    for path, match in cases:
        with pytest.raises(InitialDataError, match=match) as e:
            load_initial(path)
        assert one_line(e).startswith(f"{path}: "), str(e.value)


def test_pixel_size_arguments_are_checked(tmp_path):
    t, _ = small_layers(6, 8)
    f = write_h5(tmp_path / "a.h5", {"pixel_size_um": 10.0}, tissue=t)
    with pytest.raises(InitialDataError, match="differs from the pixel size given, 5"):
        load_initial(f, pixel_size_um=5.0)
    for bad in (0.0, -1.0, float("nan"), "ten"):
        with pytest.raises(InitialDataError, match="pixel_size_um must be a"):
            load_initial(f, pixel_size_um=bad)
    with pytest.raises(InitialDataError, match="dx_um must be a positive"):
        load_initial(f, dx_um=0)
    with pytest.raises(InitialDataError, match="holds a 2D lattice, 3D asked"):
        load_initial(f, ndim=3)
    assert load_initial(f, pixel_size_um=10.0, dx_um=10.0).shape == (6, 8)


def test_a_missing_imaging_package_names_the_extra(tmp_path, monkeypatch):
    import sys

    t, v = small_layers(6, 8)
    imageio.imwrite(tmp_path / "d.png", drawing(t, v))
    monkeypatch.setitem(sys.modules, "imageio.v3", None)  # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(InitialDataError, match=r"needs imageio: pip install 'tumorca\[images\]'"):
        load_initial(tmp_path / "d.png")
    (tmp_path / "d.tif").write_bytes(b"")
    with pytest.raises(InitialDataError, match=r"needs tifffile: pip install 'tumorca\[images\]'"):
        load_initial(tmp_path / "d.tif")


# -- resampling ----------------------------------------------------------------------------------------------------

def test_downsampling_by_two_hand_computed():
    # 4x4 pixels of 10 um onto 20 um sites: each site is a 2x2 block
    t = np.array([[0, 1, 1, 0],
                  [0, 1, 0, 0],
                  [3, 3, 2, 2],
                  [0, 3, 2, 0]], np.uint8)
    v = np.array([[1, 0, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 0],
                  [0, 0, 0, 2]], np.uint8)
    inlet = np.zeros_like(v)
    inlet[0, 0] = 2
    o2 = np.arange(16, dtype=np.float32).reshape(4, 4)
    t2, v2, i2, f2 = resample(t, v, inlet, {"o2": o2}, 0.5)
    # blocks: {0,1,0,1} tie -> higher code 1; {1,0,0,0} -> 0; {3,3,0,3} -> 3; {2,2,2,0} -> 2
    np.testing.assert_array_equal(t2, [[1, 0], [3, 2]])
    np.testing.assert_array_equal(v2, [[1, 0], [0, 2]])  # any vessel pixel makes a vessel site
    np.testing.assert_array_equal(i2, [[2, 0], [0, 0]])
    np.testing.assert_array_equal(f2["o2"], [[2.5, 4.5], [10.5, 12.5]])  # area means
    assert f2["o2"].dtype == np.float32


def test_upsampling_takes_the_nearest_pixel():
    t = np.array([[0, 1], [2, 3]], np.uint8)
    v = np.array([[1, 0], [0, 0]], np.uint8)
    o2 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    t2, v2, i2, f2 = resample(t, v, None, {"o2": o2}, 2.0)
    np.testing.assert_array_equal(t2, np.kron(t, np.ones((2, 2), np.uint8)))
    np.testing.assert_array_equal(v2, np.kron(v, np.ones((2, 2), np.uint8)))
    np.testing.assert_array_equal(f2["o2"], np.kron(o2, np.ones((2, 2))))
    assert i2 is None


def _moore_connected(mask: np.ndarray) -> bool:
    from scipy import ndimage

    _, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    return n == 1


@pytest.mark.parametrize("factor", [2, 3])
def test_downsampling_keeps_a_thin_winding_vessel_connected(tmp_path, factor):
    """A one-pixel-wide vessel that winds diagonally stays one Moore-connected piece from face to face after
    downsampling by 2 and 3 (majority alone would lose it), and it still carries flow."""
    ny, nx = 30, 60
    v = np.zeros((ny, nx), np.uint8)
    y = 15
    for x in range(nx):
        v[y, x] = Vessel.STALK
        y += (1 if (x // 7) % 2 else -1) if x % 2 else 0  # a zigzag of diagonal steps
    assert _moore_connected(v)
    t = np.zeros_like(v)
    path = write_npz(tmp_path / "v.npz", tissue=t, vessel=v, pixel_size_um=np.array(20.0 / factor))
    d = load_initial(path, dx_um=20.0)
    assert d.shape == (ny // factor, nx // factor) and d.resampled_from == (ny, nx)
    assert _moore_connected(d.vessel != 0)
    assert d.vessel[:, 0].any() and d.vessel[:, -1].any()  # still reaches both faces
    sim = Simulation.from_arrays(d.tissue, d.vessel, threads=1)
    sim.step(1)
    assert sim.perfused[:, 0].any() and sim.perfused[:, -1].any()


def test_resampling_three_dimensional_and_odd_sizes():
    t = np.zeros((3, 5, 7), np.uint8)
    t[1, 2, 3] = Cell.TUMOR_P
    v = np.zeros_like(t)
    v[0, 0, :] = Vessel.STALK
    t2, v2, _, _ = resample(t, v, None, {}, 1 / 3)
    assert t2.shape == (1, 2, 2)  # round(3/3), round(5/3), round(7/3)
    assert v2[0, 0].all() and not t2.any()  # one tumour pixel in 9+ host pixels is outvoted
    for ratio in (0.4, 0.7, 1.5):
        t3, _, _, _ = resample(t, v, None, {}, ratio)
        assert t3.shape == tuple(max(1, round(n * ratio)) for n in t.shape)



def test_the_documented_map_is_the_map_in_code():
    """docs/initial-conditions.md prints IMAGE_CLASSES: every row's label, codes and colour match."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "initial-conditions.md").read_text(encoding="utf-8")
    for c in IMAGE_CLASSES:
        rows = [ln for ln in doc.splitlines() if ln.startswith(f"| {c.label} | ")]
        assert len(rows) == 1, c
        cells = [x.strip() for x in rows[0].strip("|").split("|")]
        assert ("stalk" if c.vessel == Vessel.STALK else "tip" if c.vessel == Vessel.TIP else "none") == cells[2]
        assert (c.tissue == Cell.EMPTY) == cells[1].startswith("host") and (c.tissue == Cell.EMPTY or
                                                                           c.tissue.name in cells[1])
        if c.rgb is None:
            assert cells[3] == "–"
        else:
            assert "#%02x%02x%02x" % c.rgb in cells[3] and "(%d, %d, %d)" % c.rgb in cells[3]


# -- tumorca run --initial -----------------------------------------------------------------------------------------
def _invoke(*args: str):
    from click.testing import CliRunner

    from tumorca.cli import cli

    return CliRunner().invoke(cli, list(args))


RUN_ARGS = ("--steps", "24", "--every", "8", "--checkpoint-every", "8", "--fields", "o2", "--seed", "5",
            "--threads", "1", "-q", "--set", "init_vessel_spacing=8")


def test_run_initial_from_the_builtin_layers_equals_the_builtin_run_and_records_its_source(tmp_path):
    """``tumorca run --initial`` with an npz of the built-in tissue, vessel and inlet layers writes the same frames
    and time series as the built-in run, records the file's name and hash, and ``inspect`` shows them."""
    from runfile_util import datasets

    from tumorca.io import RunReader

    sim = Simulation((24, 32), Params(init_vessel_spacing=8), seed=5)
    st = sim.get_state()["arrays"]
    src = tmp_path / "layers.npz"
    np.savez(src, tissue=st["tissue"], vessel=st["vessel"], inlet=st["inlet"])
    ref, out = tmp_path / "ref.h5", tmp_path / "data.h5"
    assert _invoke("run", "-o", str(ref), "--shape", "24x32", *RUN_ARGS).exit_code == 0
    res = _invoke("run", "-o", str(out), "--initial", str(src), *RUN_ARGS)
    assert res.exit_code == 0, res.stderr
    a, b = datasets(ref), datasets(out)
    compared = 0
    for name in a:
        if name.startswith(("tissue", "vessel", "perfused", "neut", "o2", "timeseries/", "step", "time")):
            assert np.array_equal(a[name], b[name]), name
            compared += 1
    assert compared > 10 and any(k.startswith("start/") for k in b)
    with RunReader(out) as r:
        assert r.lineage["initial_source"] == str(src)
        assert r.lineage["initial_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert r.has_start_state() and r.first_step == 0
    res = _invoke("inspect", str(out))
    assert f"from data:   {src}" in res.output and hashlib.sha256(src.read_bytes()).hexdigest() in res.output


def test_an_interrupted_run_from_data_resumes_to_the_uninterrupted_run(tmp_path):
    """The start state from data is stored in the file, so a resume before and after the first checkpoint gives
    the uninterrupted run bit for bit."""
    from runfile_util import assert_same_run

    from tumorca import runner
    from tumorca.io import RunPlan

    tissue, vessel = small_layers()
    state = Simulation.from_arrays(tissue, vessel, params=Params(), seed=3).get_state()
    plan = RunPlan(shape=(24, 32), params=Params(), seed=3, steps=24, every=8, fields=("o2",), checkpoint_every=8)
    lineage = {"initial_source": "layers.npz", "initial_sha256": "0" * 64}
    ref = tmp_path / "ref.h5"
    runner.run(plan, ref, provenance={}, threads=1, start_state=state, lineage=lineage)
    for stop_at in (4, 13):  # stopped before the first periodic checkpoint and after it
        out = tmp_path / f"cut{stop_at}.h5"
        calls = iter(range(10 ** 6))
        outcome = runner.run(plan, out, provenance={}, threads=1, start_state=state, lineage=lineage,
                             stop=lambda: next(calls) >= stop_at)
        assert outcome.status == "interrupted"
        assert runner.resume(out, provenance={}, threads=1).status == "complete"
        assert assert_same_run(ref, out) > 10


@pytest.mark.parametrize("args, fragment", [
    (("--initial", "MISSING.npz"), "--initial: MISSING.npz"),
    (("--initial", "layers.npz", "--shape", "10x10"), "gives a 24x32 lattice but --shape is 10x10"),
    (("--initial", "layers.npz", "--resume"), "--initial makes a new run from a file; it excludes --resume"),
    (("--initial", "layers.npz", "--from", "x.h5", "--at-step", "1"), "it excludes --from"),
    (("--pixel-size", "10"), "--pixel-size goes with --initial FILE"),
    (("--initial", "layers.npz", "--pixel-size", "-1"), "--pixel-size must be positive"),
    (("--initial", "stranded.npz"), "cannot carry flow"),
    (("--initial", "layers.npz", "--pixel-size", "1e5"), "which would need about"),
    (("--initial", "layers.npz", "--pixel-size", "1e-9"), "nothing would be left; is the pixel size in micrometres?"),
    (("--initial", "layers.npz", "--pixel-size", "20000"), "is the pixel size in micrometres?"),
], ids=["missing", "shape", "resume", "from", "pixel-alone", "pixel-negative", "no-flow", "pixel-huge", "pixel-tiny",
        "pixel-nm"])
def test_run_initial_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    tissue, vessel = small_layers()
    np.savez("layers.npz", tissue=tissue, vessel=vessel)
    cut = vessel.copy()
    cut[:, 10:12] = 0  # the vessel no longer joins the left face to the right one
    np.savez("stranded.npz", tissue=tissue, vessel=cut)
    res = _invoke("run", "-o", "out.h5", "--steps", "4", *args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: ") and fragment in lines[0], lines
    assert not (tmp_path / "out.h5").exists()


def test_run_initial_never_overwrites_its_own_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tissue, vessel = small_layers()
    np.savez("layers.npz", tissue=tissue, vessel=vessel)
    before = hashlib.sha256((tmp_path / "layers.npz").read_bytes()).hexdigest()
    for out in ("layers.npz", str(tmp_path / "." / "layers.npz")):
        res = _invoke("run", "-o", out, "--initial", "layers.npz", "--overwrite", "--steps", "2")
        assert res.exit_code == 2 and "is the --initial file itself" in res.stderr
    assert hashlib.sha256((tmp_path / "layers.npz").read_bytes()).hexdigest() == before
