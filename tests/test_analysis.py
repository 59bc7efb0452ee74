"""The analysis library: Run access, measures over runs with known answers, compare, bounded memory, and pictures
read back as images."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc

import h5py
import numpy as np
import pytest

from tumorca import Cell, Vessel
from tumorca.analysis import (Run, compare, format_compare, measure_run, open_run, run_growth_rate, save_table,
                              summarize_run)
from tumorca.io import RunFileError
from synthetic_run import disk, write_run

DX = 20.0  # µm, the default dx_um
DT = 30.0  # min, the default dt_min


def growing(n_frames: int, shape=(48, 48), r0=5.0, dr=2.0, core=0.0):
    """Frames of a disk of radius r0 + dr * i sites, a necrotic core of radius ``core`` * r, a vessel row at y=2
    (perfused on the left half), neutrophils on a diagonal (N2 on the right), O2 below 10 mmHg on the left half."""
    for i in range(n_frames):
        r = r0 + dr * i
        t = disk(shape, r)
        if core:
            t[disk(shape, core * r) != 0] = Cell.NECROTIC
        ves = np.zeros(shape, np.uint8)
        ves[2, :] = Vessel.STALK
        perf = np.zeros(shape, np.uint8)
        perf[2, : shape[1] // 2] = 1
        neut = np.zeros(shape, np.uint8)
        pol = np.zeros(shape, np.float32)
        for k in range(i + 1):
            neut[40 - k, 5 + 3 * k] = 1
            pol[40 - k, 5 + 3 * k] = 0.9 if 5 + 3 * k >= shape[1] // 2 else 0.1
        o2 = np.full(shape, 30.0, np.float32)
        o2[:, : shape[1] // 2] = 5.0
        yield {"tissue": t, "vessel": ves, "perfused": perf, "neutrophils": neut, "neut_polarization": pol, "o2": o2}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "grow.h5"
    return write_run(path, growing(6), 6, shape=(48, 48), every=4, preset="wild-type", seed=5)


# -- Run ---------------------------------------------------------------------------------------------------------
def test_run_metadata_and_lazy_access(synth):
    frames = list(growing(6))
    with open_run(synth) as run:
        assert isinstance(run, Run)
        assert run.preset == "wild-type" and run.seed == 5 and run.shape == (48, 48) and run.ndim == 2
        assert run.dx == DX and run.dt == DT and run.params["dx_um"] == DX
        assert run.n_frames == len(run) == 6 and run.status.state == "complete"
        assert list(run.steps) == [0, 4, 8, 12, 16, 20]
        assert run.times_days == pytest.approx(np.arange(6) * 4 * DT / 1440)
        assert run.layers[:6] == ["tissue", "vessel", "perfused", "neutrophils", "neut_polarization", "neut_age"]
        # one frame, all layers or a subset
        fr = run.frame(-1)
        assert set(fr) == set(run.layers)
        assert np.array_equal(fr["tissue"], frames[-1]["tissue"])
        assert set(run.frame(2, ["o2"])) == {"o2"}
        # per-layer views
        assert np.array_equal(run.tissue[3], frames[3]["tissue"])
        assert np.array_equal(run["o2"][0], frames[0]["o2"])
        assert run.tissue[1:4].shape == (3, 48, 48)
        assert np.array_equal(run.tissue[::2][1], frames[2]["tissue"])
        assert run.tissue[-1, 24, 24] == Cell.TUMOR_P
        assert run.o2.units == "mmHg" and len(run.o2) == 6 and run.o2.dtype == np.float32
        assert run.o2.range() == (5.0, 30.0)
        blocks = list(run.tissue.chunks(4))
        assert [(a, b.shape[0]) for a, b in blocks] == [(0, 4), (4, 2)]
        seen = [(i, sorted(f)) for i, f in run.frames(["tissue", "o2"], step=2)]
        assert seen == [(0, ["o2", "tissue"]), (2, ["o2", "tissue"]), (4, ["o2", "tissue"])]
        # errors name what exists
        with pytest.raises(IndexError, match="frame 6 out of range: 6 frames"):
            run.frame(6)
        with pytest.raises(IndexError):
            run.tissue[-7]
        with pytest.raises(KeyError, match="layers present: tissue, vessel, perfused"):
            run.frame(0, ["vegf_free"])
        with pytest.raises(AttributeError, match="layers: tissue"):
            run.vegf_free  # noqa: B018 - not stored in this run
        with pytest.raises(KeyError, match="neither a parameter"):
            run.value("nope")
        assert run.value("preset") == "wild-type" and run.value("ifn_level") == 1.0


def test_timeseries_arrays_and_dataframe(synth):
    with open_run(synth) as run:
        ts = run.timeseries()
        assert len(ts["step"]) == 21 and ts["time_days"][-1] == pytest.approx(20 * DT / 1440)
        assert set(run.timeseries(["neutrophils"])) == {"neutrophils", "time_days"}
        with pytest.raises(KeyError, match="no time series 'nope'"):
            run.timeseries(["nope"])
        pd = pytest.importorskip("pandas")
        df = run.timeseries_frame()
        assert isinstance(df, pd.DataFrame) and df.index.name == "step" and len(df) == 21
        assert "time_days" in df and "tumor_live" in df


def test_open_run_errors(tmp_path, synth):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="not an HDF5 file"):
        open_run(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(RunFileError, match="not a tumorca run file"):
        open_run(tmp_path / "other.h5")
    p = write_run(tmp_path / "v3.h5", growing(2), 2, shape=(48, 48), format_version="3.0")
    with pytest.raises(RunFileError, match="format version 3.0"):
        open_run(p)
    # a 1.x file (vessels in the tissue layer) is refused in one line, not misread
    p = write_run(tmp_path / "v1.h5", growing(2), 2, shape=(48, 48), format_version="1.0")
    with pytest.raises(RunFileError, match="format version 1.0") as err:
        open_run(p)
    assert "\n" not in str(err.value)
    with pytest.raises(RunFileError, match="does not exist"):
        open_run(tmp_path / "missing.h5")
    p = write_run(tmp_path / "damaged.h5", growing(2), 2, shape=(48, 48), drop=("timeseries",))
    with pytest.raises(RunFileError, match="damaged"):
        open_run(p)


@pytest.mark.subprocess
@pytest.mark.timeout(60)  # a Python process that only prints its pid
def test_cut_off_and_half_written_frame(tmp_path):
    """A file whose writer died (status running, pid gone) and whose last frame's layers were written but not its
    time: the analysis sees the complete frames only."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=50)
    p = write_run(tmp_path / "cut.h5", growing(4), 4, shape=(48, 48), status="running",
                  writer_pid=int(dead.stdout))
    with h5py.File(p, "a") as f:
        for name in ("tissue", "o2", "perfused", "neutrophils", "neut_polarization", "neut_age"):
            f[name].resize(5, axis=0)
        f["time"].resize(3, axis=0)
        f["step"].resize(3, axis=0)
    with open_run(p) as run:
        assert run.status.state == "cut off" and run.n_frames == 3
        t = measure_run(run)
        assert list(t["frame"]) == [0, 1, 2]
    row = summarize_run(p)
    assert row["status"] == "cut off" and row["final_tumour_sites"] == 0  # time series of zeros here


# -- measures over runs ------------------------------------------------------------------------------------------
def test_measure_run_known_answers(synth):
    frames = list(growing(6))
    t = measure_run(synth)
    assert list(t["frame"]) == list(range(6)) and list(t["step"]) == [0, 4, 8, 12, 16, 20]
    assert t["time_days"] == pytest.approx(np.arange(6) * 4 * DT / 1440)
    sites = [np.count_nonzero(np.isin(f["tissue"], (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC))) for f in frames]
    assert list(t["tumour_sites"]) == sites
    assert t["tumour_size_um"] == pytest.approx(np.array(sites) * DX ** 2)
    r = (5 + 2 * np.arange(6)) * DX
    assert np.all(np.abs(t["equivalent_radius_um"] - r) / r < 0.05)
    # left half hypoxic, so the hypoxic fraction is the share of the disk left of x = 24
    for i, f in enumerate(frames):
        live = f["tissue"] == Cell.TUMOR_P
        assert t["hypoxic_fraction"][i] == pytest.approx(live[:, :24].sum() / live.sum())
    assert list(t["neutrophils"]) == [1, 2, 3, 4, 5, 6]
    assert list(t["vessel_sites"]) == [48] * 6
    # growth: 2 sites (40 µm) per frame, a frame every 4 steps of 30 min -> 480 µm/day
    g = run_growth_rate(t)
    assert g["slope_um_per_day"] == pytest.approx(2 * DX / (4 * DT / 1440), rel=0.05) and g["r2"] > 0.99
    assert math.isnan(run_growth_rate({k: v[:1] for k, v in t.items()})["slope_um_per_day"])
    # subsampling keeps the last frame; the vessel network on demand
    t2 = measure_run(synth, every=4, network=True)
    assert list(t2["frame"]) == [0, 4, 5]
    assert t2["vessel_length_um"][0] == pytest.approx(48 * DX, rel=0.05)
    with pytest.raises(ValueError):
        measure_run(synth, every=0)


def test_save_table_round_trip(tmp_path, synth):
    pd = pytest.importorskip("pandas")
    t = measure_run(synth)
    save_table(t, tmp_path / "m.csv")
    back = pd.read_csv(tmp_path / "m.csv")
    assert list(back.columns) == list(t) and len(back) == 6
    assert back["equivalent_radius_um"].to_numpy() == pytest.approx(t["equivalent_radius_um"])


def _linear_run(path, preset, seed, slope, neut, n_frames=5, every=4, params=None):
    """A run whose time series has tumour sites = 100 + slope * step and ``neut`` neutrophils at every step."""
    steps = every * (n_frames - 1)
    s = np.arange(steps + 1)
    ts = {"time_min": s * DT, "tumor_p": 100 + slope * s, "tumor_q": np.zeros_like(s), "necrotic": np.zeros_like(s),
          "tumor_live": 100 + slope * s, "vessel_sites": np.full_like(s, 7), "neutrophils": np.full_like(s, neut),
          "perfused_fraction": np.full(s.shape, 0.5)}
    return write_run(path, growing(n_frames), n_frames, shape=(48, 48), every=every, preset=preset, seed=seed,
                     timeseries=ts, params=params)


def test_compare_means_sd_and_auc(tmp_path):
    runs = [_linear_run(tmp_path / "a1.h5", "wild-type", 1, 2, 3),
            _linear_run(tmp_path / "a2.h5", "wild-type", 2, 4, 5),
            _linear_run(tmp_path / "b1.h5", "ifnb-knockout", 1, 10, 9)]
    unit = (DX / 1000) ** 2
    T = 16 * DT / 1440  # days
    rows = compare(runs, as_frame=False)
    assert [r["group"] for r in rows] == ["wild-type", "ifnb-knockout"] and [r["n"] for r in rows] == [2, 1]
    a, b = rows
    finals = np.array([100 + 2 * 16, 100 + 4 * 16]) * unit
    assert a["final_tumour_size_mean"] == pytest.approx(finals.mean())
    assert a["final_tumour_size_sd"] == pytest.approx(finals.std(ddof=1))
    aucs = (np.array([100 + 2 * 8, 100 + 4 * 8]) * unit) * T  # a line: its mean value times the duration
    assert a["tumour_size_auc_mean"] == pytest.approx(aucs.mean())
    assert a["mean_neutrophils_mean"] == pytest.approx(4.0) and a["mean_neutrophils_sd"] == pytest.approx(math.sqrt(2))
    assert b["final_tumour_sites_mean"] == 260 and math.isnan(b["final_tumour_sites_sd"])
    assert a["final_perfused_fraction_mean"] == 0.5 and a["final_vessel_sites_mean"] == 48  # last frame: a row
    # the growth rate of a ball whose area grows linearly, from the time-series radius
    r = np.sqrt((100 + 10 * np.arange(17)) * unit / math.pi) * 1000
    slope = np.polyfit(np.arange(17) * DT / 1440, r, 1)[0]
    assert b["growth_rate_um_per_day_mean"] == pytest.approx(slope)
    # as a DataFrame, and grouped by a parameter
    pd = pytest.importorskip("pandas")
    df = compare(runs, measures=["final_tumour_size", "mean_neutrophils"])
    assert isinstance(df, pd.DataFrame) and list(df.index) == ["wild-type", "ifnb-knockout"]
    assert list(df.columns) == ["n", "final_tumour_size_mean", "final_tumour_size_sd", "mean_neutrophils_mean",
                                "mean_neutrophils_sd"]
    by_ifn = compare(runs, by="ifn_level", as_frame=False)
    assert [r["group"] for r in by_ifn] == [1.0]  # synthetic files all keep the default parameters
    text = format_compare(df)
    assert "wild-type (n=2)" in text and "±" in text.splitlines()[1]
    with pytest.raises(KeyError, match="unknown measure"):
        compare(runs, measures=["nope"])


# -- bounded memory ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """200 frames of 256x256 (about 140 MB of layers uncompressed)."""
    shape = (256, 256)
    yy, xx = np.indices(shape)
    o2 = (30.0 * np.exp(-((yy - 128.0) ** 2 + (xx - 128.0) ** 2) / 8000.0)).astype(np.float32)

    def frames():
        for i in range(200):
            t = disk(shape, 10 + i * 0.5)
            ves = np.zeros(shape, np.uint8)
            ves[5, :] = Vessel.STALK
            yield {"tissue": t, "vessel": ves, "o2": o2, "perfused": ves.copy()}

    path = tmp_path_factory.mktemp("long") / "long.h5"
    return write_run(path, frames(), 200, shape=shape, every=1)


@pytest.mark.slow  # 13 s on a loaded machine, writing the 200 frames included
def test_measuring_a_long_run_holds_a_few_frames(long_run):
    with open_run(long_run) as run:
        frame_bytes = sum(run.layer(n).dtype.itemsize for n in ("tissue", "perfused", "neutrophils",
                                                                "neut_polarization", "o2")) * 256 * 256
        whole = 200 * frame_bytes
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            t = measure_run(run)
            peak_measures = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            for _, block in run.tissue.chunks(8):
                pass
            del block
            peak_chunks = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            everything = run.tissue[:]  # what a careless reader would hold: the check below would catch it
            peak_all = tracemalloc.get_traced_memory()[1] - base
            del everything
        finally:
            tracemalloc.stop()
    assert len(t["frame"]) == 200 and t["tumour_sites"][-1] > t["tumour_sites"][0]
    assert peak_measures < 8 * frame_bytes, (peak_measures, frame_bytes, whole)
    assert peak_chunks < 20 * 256 * 256  # two blocks of 8 tissue frames (one being replaced)
    assert peak_all > 8 * frame_bytes  # the bound can fail


# -- the engine is not needed ------------------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.timeout(120)  # measured 1.2 s
def test_analysis_needs_no_compiled_engine(synth, tmp_path):
    code = ("import sys\n"
            "for m in ('tumorca._fields', 'tumorca._o2', 'tumorca._tissue', 'tumorca._rng', 'tumorca._vessels', "
            "'tumorca._neutrophils', 'tumorca._stream'): sys.modules[m] = None\n"
            "from tumorca.analysis import open_run, measure_run, compare\n"
            f"r = open_run({str(synth)!r}); print(len(measure_run(r)['frame']), r.tissue[-1].shape)\n"
            f"print(compare([{str(synth)!r}], as_frame=False)[0]['n'])\n"
            "from tumorca.analysis import plots\n"
            f"plots.plot_frame(r, path={str(tmp_path / 'x.png')!r})\n"
            "print('tumorca.simulation' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["6", "(48,", "48)", "1", "False"]
    assert os.path.getsize(tmp_path / "x.png") > 1000


# -- pictures ----------------------------------------------------------------------------------------------------
def _image(path):
    iio = pytest.importorskip("imageio.v3")
    return np.asarray(iio.imread(path))[..., :3]


def _pixels_of(img, hexcolor):
    rgb = np.array([int(hexcolor[k:k + 2], 16) for k in (1, 3, 5)], dtype=np.uint8)
    return int(np.count_nonzero(np.all(img == rgb, axis=-1)))


def _assert_picture(img, shape, min_colours=6, ink=0.2):
    assert img.shape[:2] == shape
    assert np.count_nonzero(np.any(img < 250, axis=-1)) > ink * shape[0] * shape[1]  # not blank
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= min_colours


def test_plot_composite_tissue_and_field(synth, tmp_path):
    pytest.importorskip("matplotlib")
    from tumorca.analysis import plots

    plots.plot_frame(synth, -1, "composite", path=tmp_path / "c.png", dpi=80)
    img = _image(tmp_path / "c.png")
    _assert_picture(img, (round(4.8 * 80), round((4.2 + 2.6) * 80)))
    # tumour, perfused and unperfused vessels in their colours, big patches of each
    assert _pixels_of(img, plots.TISSUE_STYLE[Cell.TUMOR_P][0]) > 2000
    assert _pixels_of(img, plots.PERFUSED[0]) > 100 and _pixels_of(img, plots.UNPERFUSED[0]) > 100
    assert _pixels_of(img, plots.TISSUE_STYLE[Cell.EMPTY][0]) > 2000

    plots.plot_frame(synth, 0, "tissue", path=tmp_path / "t.png", dpi=80)
    img = _image(tmp_path / "t.png")
    _assert_picture(img, (round(4.8 * 80), round((4.2 + 2.6) * 80)))
    assert _pixels_of(img, plots.TISSUE_STYLE[Cell.TUMOR_P][0]) > 2000  # the tissue layer alone
    plots.plot_frame(synth, 0, "vessel", path=tmp_path / "v.png", dpi=80)
    img = _image(tmp_path / "v.png")
    assert _pixels_of(img, plots.VESSEL_STYLE[Vessel.STALK][0]) > 100  # the vessel layer: stalks, perfused or not
    assert _pixels_of(img, plots.TISSUE_STYLE[Cell.TUMOR_P][0]) == 0

    fig = plots.plot_frame(synth, 2, "o2", path=tmp_path / "o2.png", dpi=80)
    img = _image(tmp_path / "o2.png")
    _assert_picture(img, (round(4.8 * 80), round((4.2 + 1.4) * 80)))
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "oxygen partial pressure (mmHg)" in labels  # the colour bar
    assert "day 0.17" in fig._suptitle.get_text()  # frame 2 = step 8 = 240 min
    with pytest.raises(KeyError, match="a layer present: tissue, vessel, perfused"):
        plots.plot_frame(synth, 0, "vegf_free")
    with pytest.raises(IndexError):
        plots.plot_frame(synth, 99)



def test_a_lattice_larger_than_its_picture_is_drawn_without_moire(tmp_path):
    """A capillary row every 10 sites on 1024x1024, drawn in about 340 pixels: nearest-neighbour sampling would
    keep some rows and drop others and show bands that are not in the data; the drawn image must spread the
    vessels evenly (every 20-pixel band of rows equally blue, within 25 %), while a small lattice stays crisp."""
    pytest.importorskip("matplotlib")
    from tumorca.analysis import plots

    n = 1024
    v = np.zeros((n, n), np.uint8)
    v[::10] = Vessel.STALK
    path = write_run(tmp_path / "bed.h5", [{"vessel": v, "perfused": (v != 0).astype(np.uint8)}] * 2, 2,
                     shape=(n, n))
    with open_run(path) as run:
        fig = plots.plot_frame(run, 0, "composite", dpi=80)
    ax = fig.axes[0]
    assert [im.get_interpolation() for im in ax.images] == ["antialiased"]
    fig.canvas.draw()
    box = ax.get_window_extent()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)
    h = img.shape[0]
    inner = img[int(h - box.y1) + 3:int(h - box.y0) - 3, int(box.x0) + 3:int(box.x1) - 3]
    blue = inner[..., 2] - inner[..., 0]  # perfused vessels are blue, stroma grey
    bands = blue[:blue.shape[0] // 20 * 20].reshape(-1, 20, blue.shape[1]).mean(axis=(1, 2))
    assert bands.min() > 0 and (bands.max() - bands.min()) / bands.mean() < 0.25, bands
    with open_run(write_run(tmp_path / "s.h5", [{"vessel": v[:48, :48]}] * 2, 2, shape=(48, 48))) as run:
        small = plots.plot_frame(run, 0, "composite", dpi=80)
    assert [im.get_interpolation() for im in small.axes[0].images] == ["nearest"]

def test_plot_3d_slices_and_projections(tmp_path):
    pytest.importorskip("matplotlib")
    from tumorca.analysis import plots

    def frames():
        for i in range(2):
            t = disk((12, 16, 20), 4 + i)
            ves = np.zeros(t.shape, np.uint8)
            ves[:, 2, :] = Vessel.STALK
            yield {"tissue": t, "vessel": ves, "o2": np.linspace(0, 30, 12 * 16 * 20, dtype=np.float32).reshape(12, 16, 20)}

    p = write_run(tmp_path / "b.h5", frames(), 2, shape=(12, 16, 20))
    fig = plots.plot_frame(p, -1, "composite", path=tmp_path / "ortho.png", dpi=60)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["slice z = 6 (130 µm)", "slice y = 8 (170 µm)", "slice x = 10 (210 µm)"]
    _assert_picture(_image(tmp_path / "ortho.png"), (round(4.8 * 60), round((3 * 4.2 + 2.6) * 60)))
    fig = plots.plot_frame(p, -1, "o2", project="max:z", path=tmp_path / "proj.png", dpi=60)
    assert fig.axes[0].get_title() == "max projection along z"
    assert fig.axes[0].images[0].get_array().max() == pytest.approx(30.0)
    fig = plots.plot_frame(p, 0, "tissue", slice_="x=3")
    assert fig.axes[0].get_xlabel() == "y" and fig.axes[0].get_ylabel() == "z"
    for bad in ({"slice_": "z=12"}, {"slice_": "w=1"}, {"project": "median"}, {"slice_": "z=1", "project": "max"}):
        with pytest.raises(ValueError):
            plots.plot_frame(p, 0, "tissue", **bad)
    with pytest.raises(ValueError, match="2-D"):
        plots.parse_view((16, 16), project="max")


@pytest.mark.timeout(120)  # the MP4 is written by an ffmpeg process; measured 1.5 s
def test_movie_gif_and_mp4_frame_counts(synth, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    iio2 = pytest.importorskip("imageio.v2")
    iio = pytest.importorskip("imageio.v3")
    from tumorca.analysis import plots

    done = []
    out = plots.write_movie(synth, tmp_path / "m.gif", fps=5, dpi=50, progress=lambda d, n: done.append((d, n)))
    assert out == tmp_path / "m.gif" and done[-1] == (6, 6)
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 6 and frames.shape[1:3] == (240, 340)  # 4.8 x 6.8 in at 50 dpi
    assert not np.array_equal(frames[0], frames[-1])
    out = plots.write_movie(synth, tmp_path / "e.gif", fps=5, dpi=50, every=4, layer="o2")
    assert iio.imread(out, index=None).shape[0] == 3  # frames 0, 4 and the last
    if plots.ffmpeg_available():
        out = plots.write_movie(synth, tmp_path / "m.mp4", fps=5, dpi=50)
        reader = iio2.get_reader(out, format="FFMPEG")
        assert reader.count_frames() == 6
        w, h = reader.get_meta_data()["size"]
        assert w % 16 == 0 and h % 16 == 0
        reader.close()
    monkeypatch.setattr(plots, "ffmpeg_available", lambda: False)
    out = plots.write_movie(synth, tmp_path / "n.mp4", fps=5, dpi=50)
    assert out == tmp_path / "n.gif" and iio.imread(out, index=None).shape[0] == 6


def test_curves_show_each_group(tmp_path):
    pytest.importorskip("matplotlib")
    from tumorca.analysis import plots

    runs = [_linear_run(tmp_path / "a1.h5", "wild-type", 1, 2, 3),
            _linear_run(tmp_path / "a2.h5", "wild-type", 2, 4, 5),
            _linear_run(tmp_path / "b1.h5", "ifnb-knockout", 1, 10, 9)]
    groups = plots.curve_groups(runs)
    assert list(groups) == ["wild-type", "ifnb-knockout"] and groups["wild-type"]["tumour_size"].shape == (2, 17)
    assert groups["wild-type"]["neutrophils"].mean(axis=0) == pytest.approx(np.full(17, 4.0))
    fig = plots.plot_curves(runs, path=tmp_path / "c.png", dpi=60, band="sd")
    img = _image(tmp_path / "c.png")
    _assert_picture(img, (round(4.4 * 60), round((3 * 4.4 + 0.6) * 60)), min_colours=8, ink=0.03)
    assert fig.axes[0].get_ylabel() == "tumour area (mm²)"
    # each group's mean line in its colour
    for colour in plots.GROUP_COLORS[:2]:
        assert _pixels_of(img, colour) > 50
    with pytest.raises(ValueError):
        plots.plot_curves(runs, band="iqr")
