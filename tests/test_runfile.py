"""The run file (docs/FORMAT.md): layout, contents against the engine, resume, xarray, XDMF, reading without the
compiled engine."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

import tumorca
from tumorca import Cell, Params
from tumorca.io import RunFileError, RunPlan, RunReader, sidecar_paths
from tumorca.io.layout import FORMAT_NAME, FORMAT_VERSION, frame_chunks
from tumorca.runner import run, resume
from runfile_util import assert_same_run

PROV = {"command_line": "pytest"}


def small_plan(**kw) -> RunPlan:
    base = dict(shape=(24, 24), params=Params(init_vessel_spacing=12, init_tumor_radius=4), seed=5, steps=12,
                every=5, checkpoint_every=4)
    base.update(kw)
    return RunPlan(**base)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One finished 2-D run and the plan it ran."""
    plan = small_plan()
    path = tmp_path_factory.mktemp("run") / "out.h5"
    outcome = run(plan, path, provenance=PROV, threads=1)
    assert outcome.status == "complete"
    return plan, path


def test_frame_chunks():
    assert frame_chunks((1, 24, 24), 4) == (1, 1, 24, 24)
    assert frame_chunks((1, 1024, 1024), 4) == (1, 1, 512, 512)  # 1 MiB tiles of a 4 MiB frame
    assert frame_chunks((1, 1024, 1024), 1) == (1, 1, 1024, 1024)
    c = frame_chunks((128, 128, 128), 4)
    assert np.prod(c) * 4 <= 1 << 20 and c[0] == 1


def test_plan_frames_and_validation():
    p = small_plan(steps=12, every=5)
    assert p.frame_steps == (0, 5, 10, 12)  # the last step always has a frame
    assert p.n_frames == 4 and [p.frames_until(s) for s in (0, 4, 5, 11, 12)] == [1, 1, 2, 3, 4]
    assert small_plan(steps=10, every=5).n_frames == 3
    assert [s for s in range(13) if p.is_checkpoint(s)] == [4, 8, 12]
    with pytest.raises(tumorca.TumorcaError, match="every"):
        small_plan(every=13)
    with pytest.raises(tumorca.TumorcaError, match="unknown field 'o3'"):
        small_plan(fields=("o3",))


def test_layout_and_attributes(done):
    plan, path = done
    with h5py.File(path, "r") as f:  # a finished file opens without SWMR
        a = f.attrs
        assert a["format"] == FORMAT_NAME and a["format_version"] == FORMAT_VERSION
        assert a["tumorca_version"] == tumorca.__version__
        assert list(a["shape"]) == [24, 24] and list(a["lattice_shape"]) == [1, 24, 24]
        assert int(a["seed"]) == 5 and a["dx_um"] == 20.0 and a["dt_min"] == 30.0
        assert json.loads(a["parameters"]) == plan.params.to_dict()
        assert a["param_init_vessel_spacing"] == 12
        for key in ("command_line", "start_time", "host", "threads", "writer_pid", "run_id"):
            assert key in a
        assert a["threads"] == 1
        n = len(plan.frame_steps)
        for name in plan.layers:
            ds = f[name]
            assert ds.shape == (n, 1, 24, 24) and ds.maxshape == (None, 1, 24, 24)
            assert ds.chunks == (1, 1, 24, 24)
            assert ds.compression == "gzip" and ds.compression_opts == 1
            assert ds.shuffle == (ds.dtype.itemsize > 1)
            assert ds.attrs["units"]
            assert ds.dims[0][0].name == "/time" and ds.dims[3][0].name == "/x"
        assert list(f["tissue"].attrs["flag_values"]) == [c.value for c in Cell]
        assert f["tissue"].attrs["flag_meanings"].split() == [c.name for c in Cell]
        assert f["o2"].attrs["units"] == "mmHg" and f["time"].attrs["units"] == "min"
        assert list(f["step"][:]) == list(plan.frame_steps)
        assert np.array_equal(f["time"][:], np.array(plan.frame_steps) * 30.0)
        assert np.allclose(f["x"][:], (np.arange(24) + 0.5) * 20.0)
        assert f["run/status"][()] == b"complete"
        assert f["timeseries/step"].shape == (plan.steps + 1,)


def test_contents_match_the_engine(done):
    """Every frame and every time-series row equals what the engine gives when stepped directly."""
    plan, path = done
    sim = tumorca.Simulation(plan.shape, plan.params, seed=plan.seed, threads=1)
    rows = [sim.summary()]
    frames = {0: (sim.tissue.copy(), sim.field("o2").copy(), sim.neutrophils["polarization"].copy())}
    for _ in range(plan.steps):
        sim.step(1)
        rows.append(sim.summary())
        if plan.is_frame(sim.step_index):
            frames[sim.step_index] = (sim.tissue.copy(), sim.field("o2").copy(),
                                      sim.neutrophils["polarization"].copy())
    with RunReader(path) as r:
        assert r.status.state == "complete" and r.n_frames == len(frames)
        for i, step in enumerate(r.steps):
            tissue, o2, pol = frames[int(step)]
            assert np.array_equal(r.frame("tissue", i), tissue)
            assert r.frame("o2", i).tobytes() == o2.tobytes()
            assert r.frame("neut_polarization", i).tobytes() == pol.tobytes()
        ts = r.timeseries()
        assert set(ts) == set(rows[0])  # every summary() quantity
        for key in rows[0]:
            assert np.array_equal(ts[key], np.array([row[key] for row in rows], dtype=ts[key].dtype)), key
        # The final state continues the run exactly as the engine itself would.
        cont = tumorca.Simulation.from_state(r.final_state(), threads=1)
    cont.step(3)
    sim.step(3)
    assert cont.get_state()["arrays"]["tissue"].tobytes() == sim.get_state()["arrays"]["tissue"].tobytes()
    assert cont.field("o2").tobytes() == sim.field("o2").tobytes()
    assert not sidecar_paths(path)[1].exists()  # a finished run leaves no sibling checkpoint


def test_3d_fields_choice_and_compression(tmp_path):
    plan = RunPlan(shape=(8, 8, 8), params=Params(init_tumor_radius=2, init_vessel_spacing=4), seed=2, steps=4,
                   every=2, fields=("o2",), compression="lzf")
    run(plan, tmp_path / "c.h5", provenance=PROV, threads=1)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["tissue"].shape == (3, 8, 8, 8) and f["o2"].shape == (3, 8, 8, 8)
        assert "vegf_free" not in f and f["o2"].compression == "lzf"
    with RunReader(tmp_path / "c.h5") as r:
        assert r.layers == ["tissue", "vessel", "perfused", "neutrophils", "neut_polarization", "neut_age", "o2"]
        assert r.frame("tissue", -1).shape == (8, 8, 8)
        assert np.count_nonzero(r.frame("tissue", 0) == Cell.TUMOR_P) > 0
    plan = RunPlan(shape=(6, 6), params=Params(), seed=2, steps=2, every=1, fields=(), compression="none")
    run(plan, tmp_path / "n.h5", provenance=PROV, threads=1)
    with h5py.File(tmp_path / "n.h5", "r") as f:
        assert f["tissue"].compression is None and "o2" not in f


def test_resume_after_stop_equals_uninterrupted(tmp_path, done):
    plan, ref = done
    path = tmp_path / "int.h5"
    calls = []
    out = run(plan, path, provenance=PROV, threads=1, stop=lambda: len(calls) > 6,
              progress=lambda s, n, first: calls.append(s))
    assert out.status == "interrupted" and out.step == 7
    with RunReader(path) as r:
        assert r.status.state == "interrupted" and r.status.resumable
        assert r.checkpoint_step() == 7 and r.n_rows == 8
    out = resume(path, provenance=PROV, threads=1)
    assert out.status == "complete" and out.first_step == 7
    assert assert_same_run(ref, path) > 20
    with RunReader(path) as r:
        hist = json.loads(r.attrs["resume_history"])
        assert [h["from_step"] for h in hist] == [7]


def test_resume_without_checkpoint_restarts(tmp_path, done):
    """A run cut off before its first checkpoint starts again from the initial state, dropping what was
    written; the result is still the uninterrupted run."""
    plan, ref = done
    path = tmp_path / "early.h5"
    run(plan, path, provenance=PROV, threads=1, stop=lambda: True)  # stop before step 1: checkpoint at 0
    sidecar_paths(path)[1].unlink()
    with RunReader(path) as r:
        assert r.checkpoint() is None and r.n_frames == 1
    resume(path, provenance=PROV, threads=1)
    assert_same_run(ref, path)


def test_resume_refuses_other_runs_checkpoint(tmp_path, done):
    plan, _ = done
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    run(plan, a, provenance=PROV, threads=1, stop=lambda: True)
    run(plan, b, provenance=PROV, threads=1, stop=lambda: True)
    sidecar_paths(a)[1].replace(sidecar_paths(b)[1])  # b's checkpoint replaced by a's
    with pytest.raises(RunFileError, match="belongs to another run"):
        resume(b, provenance=PROV, threads=1)


def test_reader_errors(tmp_path):
    with pytest.raises(RunFileError, match="does not exist"):
        RunReader(tmp_path / "nope.h5")
    (tmp_path / "t.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="not an HDF5 file"):
        RunReader(tmp_path / "t.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(RunFileError, match="not a tumorca run file"):
        RunReader(tmp_path / "other.h5")


def test_xarray_round_trip(done):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    plan, path = done
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["o2"].dims == ("time", "z", "y", "x")
        assert ds.sizes == {"time": len(plan.frame_steps), "z": 1, "y": 24, "x": 24}
        assert np.array_equal(ds["time"].values, np.array(plan.frame_steps) * 30.0)
        assert np.allclose(ds["x"].values, (np.arange(24) + 0.5) * 20.0)
        assert ds["o2"].attrs["units"] == "mmHg"
        with h5py.File(path, "r") as f:
            assert np.array_equal(ds["tissue"].values, f["tissue"][()])
            assert ds["o2"].sel(time=300.0).values.tobytes() == f["o2"][2].tobytes()
        assert int(ds.attrs["seed"]) == 5
    with xr.open_dataset(path, engine="h5netcdf", group="timeseries") as ts:
        assert ts.sizes["step"] == plan.steps + 1 and "tumor_live" in ts


def _xdmf_check(xdmf_path, h5_path, n_expected):
    root = ET.parse(xdmf_path).getroot()
    grids = root.findall("./Domain/Grid/Grid")
    assert len(grids) == n_expected
    with h5py.File(h5_path, "r", swmr=True) as f:
        nz, ny, nx = (int(d) for d in f.attrs["lattice_shape"])
        times = f["time"][:n_expected]
        for i, g in enumerate(grids):
            assert float(g.find("Time").get("Value")) == times[i]
            assert g.find("Topology").get("Dimensions") == f"{nz + 1} {ny + 1} {nx + 1}"
            attrs = g.findall("Attribute")
            assert attrs
            for at in attrs:
                slab = at.find("DataItem")
                assert slab.get("ItemType") == "HyperSlab" and slab.get("Dimensions") == f"{nz} {ny} {nx}"
                sel, data = slab.findall("DataItem")
                assert sel.text.split()[:4] == [str(i), "0", "0", "0"]
                fname, dname = data.text.split(":")
                assert fname == h5_path.name
                ds = f[dname]
                assert tuple(int(d) for d in data.get("Dimensions").split()) == (n_expected,) + ds.shape[1:]
                assert ds.shape[0] >= n_expected  # never names a frame that is not on disk
                assert int(data.get("Precision")) == ds.dtype.itemsize
                if ds.dtype == np.uint8:
                    assert data.get("NumberType") == "UChar"
    return len(grids)


def test_xdmf_matches_datasets(done):
    plan, path = done
    assert _xdmf_check(sidecar_paths(path)[0], path, len(plan.frame_steps)) == 4


def test_xdmf_read_by_vtk(done):
    """ParaView's XDMF reader (VTK) gives every frame's values as stored."""
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    plan, path = done
    r = vtk.vtkXdmfReader()
    r.SetFileName(str(sidecar_paths(path)[0]))
    r.UpdateInformation()
    times = r.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    assert list(times) == [s * 30.0 for s in plan.frame_steps]
    with h5py.File(path, "r") as f:
        for i, t in enumerate(times):
            r.UpdateTimeStep(t)
            out = r.GetOutputDataObject(0)
            assert out.GetDimensions() == (25, 25, 2)
            for name in ("tissue", "o2", "neut_age"):
                assert np.array_equal(vtk_to_numpy(out.GetCellData().GetArray(name)), f[name][i].ravel())


@pytest.mark.subprocess
@pytest.mark.timeout(120)  # measured 0.9 s
def test_reading_needs_no_compiled_engine(done):
    """The reader and 'tumorca inspect' work with the compiled kernels made unimportable."""
    _, path = done
    code = ("import sys\n"
            "for m in ('tumorca._fields', 'tumorca._o2', 'tumorca._tissue', 'tumorca._rng'): sys.modules[m] = None\n"
            "from tumorca.io import RunReader\n"
            f"r = RunReader({str(path)!r}); print(r.status.state, r.n_frames, r.frame('o2', -1).shape)\n"
            "from tumorca.cli import cli\n"
            f"cli.main(['inspect', {str(path)!r}])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("complete 4 (24, 24)")
    assert "status:      complete" in res.stdout
    assert "tumorca.simulation" not in res.stderr


def test_reader_names_a_missing_group_and_closes_the_file(tmp_path):
    import h5py

    from tumorca.io import RunReader
    from tumorca.io.layout import FORMAT_NAME, FORMAT_VERSION, RunFileError

    path = tmp_path / "damaged.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.create_dataset("time", data=[0.0])
        f.create_dataset("step", data=[0])
    with pytest.raises(RunFileError, match="damaged: it has no /timeseries"):
        RunReader(path)
    with h5py.File(path, "a"):  # the reader let go of the file
        pass
