"""The analysis commands (plot, movie, curves, summary) on real tiny runs, their bad inputs, a live run, and the
example scripts."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tumorca import presets
from tumorca.analysis import open_run, measure_run
from tumorca.cli import cli
from tumorca.io import RunPlan
from tumorca.runner import run
from runfile_util import LONG_ARGS, start_cli, wait_for
from synthetic_run import write_run

pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean_error(res, code: int, *fragments: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("tumorca: error: ") and "Traceback" not in res.stderr and res.stdout == ""
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Wild-type and knockout, two seeds each, 32x32 with vessels 16 sites apart, 12 steps, a frame every 4."""
    d = tmp_path_factory.mktemp("runs")
    out = []
    for name in ("wild-type", "ifnb-knockout"):
        for seed in (1, 2):
            plan = RunPlan(shape=(32, 32), params=presets.get(name, init_vessel_spacing=16, init_tumor_radius=6),
                           seed=seed, steps=12, every=4, preset=name)
            path = d / f"{name}-{seed}.h5"
            run(plan, path, provenance={"command_line": "test"}, threads=1)
            out.append(path)
    return out


def test_plot_and_summary_commands(runs, tmp_path):
    iio = pytest.importorskip("imageio.v3")
    res = invoke("plot", runs[0], "-o", tmp_path / "c.png")
    assert res.exit_code == 0, res.stderr
    img = np.asarray(iio.imread(tmp_path / "c.png"))
    assert img.shape[:2] == (480, 680) and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 6
    res = invoke("plot", runs[0], "-o", tmp_path / "o2.svg", "--layer", "o2", "--frame", "1")
    assert res.exit_code == 0 and (tmp_path / "o2.svg").read_text().lstrip().startswith("<?xml")

    res = invoke("summary", *runs)
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "wild-type (n=2)" in lines[0] and "ifnb-knockout (n=2)" in lines[0]
    assert any(line.startswith("tumour_size_auc") and "±" in line for line in lines)
    res = invoke("summary", *runs, "--per-run")
    assert res.exit_code == 0 and "wild-type-1" in res.stdout.splitlines()[0]
    res = invoke("summary", *runs, "--csv", tmp_path / "s.csv", "--by", "ifn_level")
    assert res.exit_code == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [(r["group"], r["n"]) for r in rows] == [("1.0", "2"), ("0.0", "2")]
    with open_run(runs[0]) as r:
        ts = r.timeseries()
        final = (ts["tumor_live"][-1] + ts["necrotic"][-1]) * (r.dx / 1000) ** 2
    with open_run(runs[1]) as r:
        ts = r.timeseries()
        final2 = (ts["tumor_live"][-1] + ts["necrotic"][-1]) * (r.dx / 1000) ** 2
    assert float(rows[0]["final_tumour_size_mean"]) == pytest.approx((final + final2) / 2)


def test_movie_and_curves_commands(runs, tmp_path):
    iio = pytest.importorskip("imageio.v3")
    res = invoke("movie", runs[2], "-o", tmp_path / "m.gif", "--fps", "4", "--dpi", "40")
    assert res.exit_code == 0, res.stderr
    assert "tumorca: movie" in res.stderr and "wrote" in res.stderr  # the progress bar, then the result
    assert iio.imread(tmp_path / "m.gif", index=None).shape[0] == 4  # steps 0, 4, 8, 12
    res = invoke("curves", *runs, "-o", tmp_path / "cur.png", "--band", "sd", "--quantity", "tumour_size",
                 "--quantity", "neutrophils")
    assert res.exit_code == 0, res.stderr
    img = np.asarray(iio.imread(tmp_path / "cur.png"))
    assert img.shape[:2] == (440, round((2 * 4.4 + 0.6) * 100))


def test_bad_inputs_are_one_line_errors(runs, tmp_path):
    (tmp_path / "notes.h5").write_text("hello")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = np.arange(3)
    v2 = write_run(tmp_path / "v3.h5", iter([{}, {}]), 2, shape=(8, 8), format_version="3.0")
    png = tmp_path / "x.png"
    (tmp_path / "adir.png").mkdir()
    cases = [
        (("plot", tmp_path / "notes.h5", "-o", png), 2, ["is not an HDF5 file"]),
        (("plot", tmp_path / "foreign.h5", "-o", png), 2, ["not a tumorca run file"]),
        (("summary", v2), 2, ["format version 3.0", "reads 2.x"]),
        (("curves", runs[0], tmp_path / "missing.h5", "-o", png), 2, ["does not exist"]),
        (("plot", runs[0], "-o", png, "--layer", "vegf"), 2, ["no layer 'vegf'", "composite, tissue", "cxcl"]),
        (("plot", runs[0], "-o", png, "--frame", "4"), 2, ["frame 4 out of range: 4 frames"]),
        (("plot", runs[0], "-o", png, "--frame", "-5"), 2, ["out of range"]),
        (("plot", runs[0], "-o", tmp_path / "nodir" / "x.png"), 2, ["does not exist"]),
        (("plot", runs[0], "-o", tmp_path / "adir.png"), 2, ["is a directory"]),
        (("plot", runs[0], "-o", tmp_path / "x.doc"), 2, ["unknown file type '.doc'", ".png"]),
        (("plot", runs[0], "-o", png, "--slice", "z=3"), 2, ["2-D run"]),
        (("movie", runs[0], "-o", tmp_path / "m.txt"), 2, ["unknown file type"]),
        (("movie", runs[0], "-o", tmp_path / "m.gif", "--fps", "-1"), 2, ["--fps must be positive"]),
        (("movie", runs[0], "-o", tmp_path / "m.gif", "--layer", "nope"), 2, ["no layer 'nope'"]),
        (("curves", *runs, "-o", png, "--quantity", "size"), 2, ["unknown quantity 'size'", "tumour_size"]),
        (("summary", *runs, "--by", "colour"), 2, ["'colour' is neither a parameter"]),
        (("summary", *runs, "--csv", tmp_path / "nodir" / "s.csv"), 2, ["does not exist"]),
        (("summary", *runs, "--csv", tmp_path / "s.txt"), 2, ["unknown file type"]),
    ]
    for args, code, frags in cases:
        assert_clean_error(invoke(*args), code, *frags)
    assert not png.exists() and not (tmp_path / "m.gif").exists()


@pytest.mark.subprocess
@pytest.mark.timeout(180)  # measured 0.8 s
def test_without_matplotlib_a_hint(runs, tmp_path):
    code = ("import sys\nsys.modules['matplotlib'] = None\nfrom tumorca.cli import cli\n"
            f"cli.main(['plot', {str(runs[0])!r}, '-o', {str(tmp_path / 'x.png')!r}])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip() == "tumorca: error: plotting needs matplotlib: pip install 'tumorca[plot]'"
    code = code.replace("cli.main(['plot'", "cli.main(['summary'").replace(f", '-o', {str(tmp_path / 'x.png')!r}", "")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "final_tumour_size" in res.stdout  # tables need no matplotlib


def _frames_on_disk(path: Path) -> int:
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return f["time"].shape[0]
    except (OSError, KeyError):
        return 0


@pytest.mark.subprocess
@pytest.mark.timeout(240)  # measured 0.6 s
def test_analysis_of_a_live_run(tmp_path):
    out = tmp_path / "live.h5"
    proc = start_cli("run", "-o", str(out), *LONG_ARGS, "-q")
    try:
        wait_for(lambda: _frames_on_disk(out) >= 2, proc, "two frames")
        with open_run(out) as r:
            first = r.n_frames
            assert r.status.state == "running" and first >= 2
            t = measure_run(r)
            assert len(t["frame"]) == first and np.all(t["tumour_sites"] > 0)
            assert r.tissue[-1].shape == (40, 40)
            deadline = time.monotonic() + 60
            while r.n_frames == first and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
                r.refresh()
            assert r.n_frames > first
            assert r.tissue[r.n_frames - 1].shape == (40, 40)
            assert len(r.timeseries()["step"]) >= int(r.steps[-1]) + 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


@pytest.mark.subprocess
@pytest.mark.timeout(180)  # measured 0.5-3.3 s
@pytest.mark.parametrize("script", ["compare_presets", "make_movie", "export_measures"])
def test_example_scripts(script, runs, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    args = {
        "compare_presets": ["--outdir", tmp_path, "--replicates", "2", "--shape", "24x24", "--days", "0.25",
                            "--every", "3"],
        "make_movie": ["-o", tmp_path / "m.gif", "--shape", "24x24", "--days", "0.25", "--every", "4"],
        "export_measures": [*runs[:2], "-o", tmp_path / "m.csv"],
    }[script]
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *map(str, args)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    if script == "compare_presets":
        assert "wild-type (n=2)" in res.stdout and "ifnb-knockout (n=2)" in res.stdout
        for name in ("compare.csv", "runs.csv", "curves.png", "wild-type-final.png", "ifnb-knockout-final.png"):
            assert (tmp_path / name).stat().st_size > 100, name
        assert len(list(csv.DictReader(open(tmp_path / "runs.csv")))) == 4
    elif script == "make_movie":
        iio = pytest.importorskip("imageio.v3")
        assert iio.imread(tmp_path / "m.gif", index=None).shape[0] == 4  # steps 0, 4, 8, 12
    else:
        rows = list(csv.DictReader(open(tmp_path / "m.csv")))
        assert len(rows) == 8 and {r["preset"] for r in rows} == {"wild-type"}
        assert "um/day" in res.stdout
