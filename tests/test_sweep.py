"""Batch sweeps (tumorca.sweep, ``tumorca sweep``) on a real Dask LocalCluster of 2 worker processes: a tiny sweep
(2 presets x 3 replicates on 32x32), failures recorded and retried, resume after a failure and after SIGKILL of the
sweep, seeds, the dry run and every bad input."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed")

from runfile_util import assert_same_run, cli_cmd  # noqa: E402

from tumorca.analysis import iter_runs, open_sweep  # noqa: E402
from tumorca.cli import cli  # noqa: E402
from tumorca.io import RunReader  # noqa: E402
from tumorca.sweep import SweepError, derive_seeds, load_sweep, parse_sweep, read_manifest  # noqa: E402

from sweep_faults import injected, subprocess_env  # noqa: E402

TINY = """\
name = "tiny"
seed = 7
replicates = 3
shape = "32x32"
steps = 60
every = 20
checkpoint_every = 20
fields = ["o2"]

[params]
init_vessel_spacing = 16
init_tumor_radius = 5

[grid]
preset = ["wild-type", "ifnb-knockout"]
"""
N = 6


def invoke(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env=env or None)


def listing(d: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``d`` with its inode and modification time (hidden files too)."""
    out = {}
    for root, _, files in os.walk(d):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), d)] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("sweepfile") / "tiny.toml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="module")
def reference(sweep_file, tmp_path_factory) -> Path:
    """The tiny sweep, uninterrupted, on a LocalCluster of 2 workers."""
    out = tmp_path_factory.mktemp("ref") / "out"
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--workers", "2")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.mark.dask
@pytest.mark.timeout(180)  # measured 14 s, the reference sweep included
def test_reference_sweep_manifest_and_files(reference, sweep_file):
    doc = read_manifest(reference)
    assert doc["n_runs"] == N and doc["counts"] == {"complete": N} and doc["varied"] == ["preset"]
    runs = doc["runs"]
    assert [r["preset"] for r in runs] == ["wild-type"] * 3 + ["ifnb-knockout"] * 3
    assert [r["replicate"] for r in runs] == [0, 1, 2] * 2
    seeds = [r["seed"] for r in runs]
    assert seeds == derive_seeds(7, N) and len(set(seeds)) == N
    for r in runs:
        assert r["status"] == "complete" and r["attempts"] == 1 and r["error"] == "" and r["wall_seconds"] > 0
        assert r["measures"]["time_days"] == pytest.approx(60 * 30 / 1440)
        assert r["measures"]["tumour_sites"] > 0
        with RunReader(reference / r["file"]) as rr:
            assert rr.status.state == "complete" and rr.plan.seed == r["seed"] and rr.plan.preset == r["preset"]
            assert rr.attrs["sweep_run"] == r["run"] and rr.attrs["sweep_root_seed"] == "7"
            assert rr.attrs["threads"] == 1
        assert (reference / (r["file"] + ".xdmf")).exists()
    # only the runs, their sidecars, the manifests and the lock: no partial files left
    assert sorted(os.listdir(reference)) == [".sweep.lock", "manifest.csv", "manifest.json", "runs"]
    assert len(os.listdir(reference / "runs")) == 2 * N
    csv_lines = (reference / "manifest.csv").read_text().splitlines()
    assert len(csv_lines) == N + 1
    assert csv_lines[0].startswith("run,file,status,condition,replicate,preset,seed,attempts,wall_seconds")
    assert csv_lines[0].endswith(",error") and "tumour_sites" in csv_lines[0]
    # the analysis side: the manifest as a table, runs opened lazily
    table = open_sweep(reference)
    assert len(table) == N and table.attrs["sweep"]["root_seed"] == 7
    assert table.groupby("preset")["tumour_sites"].count().to_dict() == {"ifnb-knockout": 3, "wild-type": 3}
    seen = [(row["run"], r.n_frames) for row, r in iter_runs(table)]
    assert seen == [(f"run_{i:04d}", 4) for i in range(N)]


def test_seeds_distinct_reproducible_and_documented():
    spec = parse_sweep(TINY)
    again = parse_sweep(TINY)
    seeds = [r.seed for r in spec.runs()]
    assert seeds == [r.seed for r in again.runs()] and spec.sweep_id == again.sweep_id
    assert len(set(seeds)) == N and all(0 <= s < 2 ** 64 for s in seeds)
    # the documented rule: SeedSequence(root, spawn_key=(i,)), one 64-bit word
    for i, s in enumerate(seeds):
        assert s == int(np.random.SeedSequence(7, spawn_key=(i,)).generate_state(1, np.uint64)[0])
    other = parse_sweep(TINY.replace("seed = 7", "seed = 8"))
    assert not set(seeds) & {r.seed for r in other.runs()} and other.sweep_id != spec.sweep_id


def test_grid_zip_expansion_and_days():
    text = TINY.replace("steps = 60\n", "days = 1\n").replace("\nevery = 20\n", "\n") + """
neut_kill_rate = [0.001, 0.002]

[[zip]]
neut_vegf_max = [0.05, 0.1, 0.2]
neut_mmp9_max = [0.05, 0.1, 0.2]
"""
    spec = parse_sweep(text)
    runs = spec.runs()
    assert spec.n_conditions == 2 * 2 * 3 and len(runs) == 36
    assert spec.varied == ["preset", "neut_kill_rate", "neut_vegf_max", "neut_mmp9_max"]
    r = runs[5 * 3 + 1]  # condition 5, replicate 1: preset 0, kill 1, zip 2
    assert r.condition == 5 and r.replicate == 1
    assert r.varied == {"preset": "wild-type", "neut_kill_rate": 0.002, "neut_vegf_max": 0.2, "neut_mmp9_max": 0.2}
    p = r.plan
    assert p.params.neut_kill_rate == 0.002 and p.params.neut_mmp9_max == 0.2 and p.params.init_vessel_spacing == 16
    assert p.steps == 48 and p.every == 48  # one day of 30-min steps; a frame a day by default
    ko = runs[-1].plan.params
    assert ko.ifn_level == 0.0  # the preset applies under [params] and the varied values


def test_zip_may_repeat_a_value_but_not_a_row_and_grid_may_not_repeat():
    # One-at-a-time designs repeat the default in every column of a [zip]; the rows stay distinct.
    oat = TINY + """
[zip]
ifn_K = [1.0, 0.5, 1.0]
ifn_hill = [2.0, 2.0, 3.0]
"""
    spec = parse_sweep(oat)
    assert spec.n_conditions == 2 * 3
    assert [r.varied for r in spec.runs()[:9:3]] == [
        {"preset": "wild-type", "ifn_K": 1.0, "ifn_hill": 2.0}, {"preset": "wild-type", "ifn_K": 0.5, "ifn_hill": 2.0},
        {"preset": "wild-type", "ifn_K": 1.0, "ifn_hill": 3.0}]
    with pytest.raises(SweepError, match=r"line 1[0-9]: \[zip\] lists the same combination twice: ifn_K, ifn_hill"):
        parse_sweep(oat.replace("ifn_hill = [2.0, 2.0, 3.0]", "ifn_hill = [2.0, 3.0, 2.0]"))
    with pytest.raises(SweepError, match=r"\[grid\] ifn_K lists a value twice"):
        parse_sweep(TINY + "ifn_K = [1.0, 1.0]\n")


def test_dry_run_lists_runs_and_projections_and_writes_nothing(sweep_file, tmp_path):
    out = tmp_path / "dry"
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--dry-run", "--workers", "2")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sweep 'tiny': 6 runs = 2 conditions")
    assert lines[1].split() == ["run", "condition", "replicate", "preset", "seed", "steps", "state"]
    assert lines[2].split()[:4] == ["run_0000", "0", "0", "wild-type"]
    assert str(derive_seeds(7, N)[5]) in lines[7]
    assert any(line.startswith("disk: up to ") for line in lines)
    assert any(line.startswith("memory: ~") and "with 2 workers" in line for line in lines)
    assert not out.exists()


@pytest.mark.dask
@pytest.mark.timeout(180)  # measured 19 s
def test_failures_recorded_and_retried_then_resume(reference, sweep_file, tmp_path):
    out = tmp_path / "faulty"
    # run 1 fails once, run 2 on every attempt, run 4's worker is SIGKILLed once
    with injected("1@0=raise,2=raise,4@0=kill"):
        res = invoke("sweep", str(sweep_file), "-o", str(out), "--workers", "2", "--retries", "1")
    assert res.exit_code == 1, res.stderr
    assert "1 of 6 runs failed" in res.stderr.splitlines()[-1], res.stderr and "--resume" in res.stderr.splitlines()[-1]
    assert "run_0002 failed (attempt 2; failed for good): RuntimeError: fault injected" in res.stderr
    assert "run_0004 failed (attempt 1; retrying): worker process died" in res.stderr
    rows = {r["run"]: r for r in read_manifest(out)["runs"]}
    assert rows["run_0002"]["status"] == "failed" and rows["run_0002"]["attempts"] == 2
    assert "fault injected" in rows["run_0002"]["error"] and len(rows["run_0002"]["errors"]) == 2
    for name in ("run_0001", "run_0004"):
        assert rows[name]["status"] == "complete" and rows[name]["attempts"] == 2
        assert len(rows[name]["errors"]) == 1 and rows[name]["error"] == ""
    assert "KilledWorker" in rows["run_0004"]["errors"][0]
    # the faults strike at step 30, after the checkpoint at step 20: the retries continue from it
    assert rows["run_0001"]["started"] == rows["run_0004"]["started"] == "resumed from step 20"
    for name in ("run_0000", "run_0003", "run_0005"):
        assert rows[name]["status"] == "complete" and rows[name]["attempts"] == 1
    assert not (out / "runs" / "run_0002.h5").exists()
    csv_text = (out / "manifest.csv").read_text()
    assert "run_0002,runs/run_0002.h5,failed," in csv_text and "fault injected" in csv_text

    # without --resume the directory is refused; with it, only the failed run is run again
    before = {k: v for k, v in listing(out).items() if k.startswith("runs/")}
    res = invoke("sweep", str(sweep_file), "-o", str(out))
    assert res.exit_code == 2 and "already holds this sweep (5 of 6 runs complete)" in res.stderr
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--workers", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    assert "5 complete, 1 to run" in res.stderr
    after = listing(out)
    assert all(after[k] == v for k, v in before.items())  # complete runs untouched
    rows = {r["run"]: r for r in read_manifest(out)["runs"]}
    assert rows["run_0002"]["status"] == "complete" and rows["run_0002"]["attempts"] == 3
    for i in range(N):
        assert assert_same_run(reference / f"runs/run_{i:04d}.h5", out / f"runs/run_{i:04d}.h5") > 20


@pytest.mark.dask
@pytest.mark.timeout(120)
def test_resume_drops_what_a_publish_cut_short_left_of_a_complete_run(reference, sweep_file, tmp_path):
    """A kill between moving a run into runs/ and removing its .partial/NAME/ directory leaves the directory (its
    checkpoint, its lock file); --resume removes it, and .partial/ with it."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    left = out / ".partial" / "run_0000"
    left.mkdir(parents=True)
    (left / "run_0000.h5.ckpt.h5").write_bytes(b"left by a publish cut short")
    (left / ".run_0000.h5.lock").write_bytes(b"")
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--workers", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    assert sorted(os.listdir(out)) == [".sweep.lock", "manifest.csv", "manifest.json", "runs"]


@pytest.mark.dask
@pytest.mark.subprocess
@pytest.mark.timeout(180)  # measured 20-24 s
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_killing_the_sweep_runs_only_the_missing_runs(reference, sweep_file, tmp_path, sig):
    """SIGKILL to the process group (the sweep, its scheduler and workers die at once, as with a lost node), or
    SIGINT to it (Ctrl-C on a terminal: the sweep cancels, writes its manifest and exits 130)."""
    out = tmp_path / "killed"
    env = subprocess_env("3=slow,4=slow,5=slow")  # the last runs take ~1.2 s each
    proc = subprocess.Popen(cli_cmd("sweep", str(sweep_file), "-o", str(out), "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    runs = out / "runs"
    deadline = time.monotonic() + 60
    try:
        while not (runs.is_dir() and len(list(runs.glob("*.h5"))) >= 2):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "timed out waiting for 2 runs"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    done = sorted(p.name for p in runs.glob("*.h5"))
    assert 2 <= len(done) < N, done
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        last = err.strip().splitlines()[-1]
        assert last == (f"tumorca: interrupted: {len(done)} of {N} runs complete; continue with: "
                        f"tumorca sweep {sweep_file} -o {out} --resume"), err
        assert "Traceback" not in err
        doc = read_manifest(out)
        assert doc["counts"] == {"complete": len(done), "pending": N - len(done)}
    else:
        assert proc.returncode == -signal.SIGKILL
    before = {k: v for k, v in listing(out).items() if k.startswith("runs/")}
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--workers", "2", "--resume")
    assert res.exit_code == 0, res.stderr
    assert f"{len(done)} complete, {N - len(done)} to run" in res.stderr
    after = listing(out)
    assert all(after[k] == v for k, v in before.items())
    assert sorted(os.listdir(out)) == [".sweep.lock", "manifest.csv", "manifest.json", "runs"]
    doc = read_manifest(out)
    assert doc["counts"] == {"complete": N}
    for i in range(N):
        assert assert_same_run(reference / f"runs/run_{i:04d}.h5", out / f"runs/run_{i:04d}.h5") > 20
        with h5py.File(out / f"runs/run_{i:04d}.h5", "r") as f:
            assert f["run/status"][()] == b"complete"


@pytest.mark.dask
@pytest.mark.timeout(180)  # needs the reference sweep (14 s)
def test_settle_adopts_a_run_whose_result_an_interrupt_cut_off(reference, sweep_file, tmp_path):
    """The race of an interrupt that lands while the driver takes in a finished run's result (its future already
    off the pending list, its row still "submitted"): settling puts the row back to pending and adopts it as
    complete, because its file is complete on disk; a run with no file stays pending."""
    from tumorca.sweep import SweepDriver

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / ".sweep.lock").unlink(missing_ok=True)
    (out / "runs" / "run_0005.h5").unlink()
    driver = SweepDriver(load_sweep(sweep_file), out, resume=True)
    todo = list(range(N))
    for i in todo:
        driver.rows[i]["status"] = "submitted" if i in (0, 5) else "retrying" if i == 1 else "complete"
    driver.start()
    try:
        driver.settle(todo)
    finally:
        driver.close()
    status = [r["status"] for r in driver.rows]
    assert status == ["complete"] * 5 + ["pending"]
    assert read_manifest(out)["counts"] == {"complete": 5, "pending": 1}


# -- bad input: one line, non-zero exit, nothing written ---------------------------------------------------------
BAD = [
    ("seed = 1\nreplicates = 2\n[grid]\npreset = [\"wild-type\"\n", "tiny.toml: not valid TOML:"),
    (TINY + "neut_kil_rate = [0.1, 0.2]\n", "tiny.toml line 16: [grid] unknown parameter 'neut_kil_rate' "
                                            "(did you mean 'neut_kill_rate'?)"),
    (TINY.replace('preset = ["wild-type", "ifnb-knockout"]', "preset = []"),
     "tiny.toml line 15: empty grid: [grid] preset has no values"),
    (TINY.replace('preset = ["wild-type", "ifnb-knockout"]', ""), "tiny.toml: empty grid: [grid] lists nothing"),
    (TINY.replace("replicates = 3", "replicates = 0"),
     "tiny.toml line 3: replicates must be a positive integer, got 0"),
    (TINY.replace("seed = 7\n", ""), "tiny.toml: no seed: add a root seed"),
    (TINY.replace('"ifnb-knockout"', '"ifnb-knockot"'),
     "tiny.toml line 15: [grid] unknown preset 'ifnb-knockot' (did you mean 'ifnb-knockout'?)"),
    (TINY + "neut_kill_rate = [0.1, 7.0]\n", "tiny.toml line 16: [grid] parameter 'neut_kill_rate' = 7.0 is out of "
                                             "range [0, 1]"),
    (TINY + "cycle_o2_low = [1.0, 40.0]\n", "condition 1 (preset = 'wild-type', cycle_o2_low = 40.0): parameters "
                                            "must satisfy cycle_o2_low < cycle_o2_high"),
    (TINY + "[zip]\nneut_vegf_max = [0.1, 0.2]\nneut_mmp9_max = [0.1]\n",
     "[zip] lists must have equal lengths: neut_vegf_max has 2, neut_mmp9_max has 1"),
    (TINY.replace("steps = 60", "stepz = 60"), "tiny.toml line 5: unknown setting 'stepz' (did you mean 'steps'?)"),
    (TINY.replace("fields = [\"o2\"]", "fields = [\"vegf_fre\"]"),
     "tiny.toml line 8: fields: unknown field 'vegf_fre' (did you mean 'vegf_free'?)"),
]


@pytest.mark.parametrize("text, expect", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_sweep_files(tmp_path, text, expect):
    f = tmp_path / "tiny.toml"
    f.write_text(text)
    out = tmp_path / "out"
    res = invoke("sweep", str(f), "-o", str(out), "--workers", "2")
    assert res.exit_code == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: ")
    assert expect in lines[0], lines[0]
    assert not out.exists()
    with pytest.raises(SweepError):
        load_sweep(f)


@pytest.mark.dask
@pytest.mark.timeout(180)  # needs the reference sweep (14 s)
def test_directory_holding_another_sweep_is_refused_and_untouched(reference, sweep_file, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("replicates = 3", "replicates = 2"))
    before = listing(reference)
    for extra in ([], ["--resume"]):
        res = invoke("sweep", str(other), "-o", str(reference), *extra)
        assert res.exit_code == 2
        assert "holds another sweep ('tiny', 6 runs" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = invoke("sweep", str(sweep_file), "-o", str(reference))
    assert res.exit_code == 2 and "already holds this sweep (6 of 6 runs complete); use --resume" in res.stderr
    assert listing(reference) == before


def test_bad_options_and_environment(sweep_file, tmp_path, monkeypatch):
    out = tmp_path / "out"
    res = invoke("sweep", str(tmp_path / "missing.toml"), "-o", str(out))
    assert res.exit_code == 2 and "does not exist" in res.stderr
    for args, msg in ((["--workers", "0"], "--workers must be a positive integer"),
                      (["--retries", "-1"], "--retries must be 0 or a positive integer"),
                      (["--threads-per-run", "0"], "--threads-per-run must be a positive integer"),
                      (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "with --scheduler the cluster")):
        res = invoke("sweep", str(sweep_file), "-o", str(out), *args)
        assert res.exit_code == 2 and msg in res.stderr, res.stderr
    (tmp_path / "afile").write_text("x")
    res = invoke("sweep", str(sweep_file), "-o", str(tmp_path / "afile"))
    assert res.exit_code == 2 and "is not a directory" in res.stderr
    # an unreachable scheduler: a short timeout, one line, nothing written
    t0 = time.monotonic()
    res = invoke("sweep", str(sweep_file), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9",
                 "--connect-timeout", "1")
    assert res.exit_code == 1 and time.monotonic() - t0 < 20
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("tumorca: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s")
    assert not out.exists()
    # without dask: one line saying how to install it (the dry run still works)
    monkeypatch.setitem(sys.modules, "distributed", None)
    res = invoke("sweep", str(sweep_file), "-o", str(out))
    assert res.exit_code == 1
    assert res.stderr.strip() == ("tumorca: error: tumorca sweep needs Dask distributed, an optional extra: "
                                  "pip install 'tumorca[sweep]' (or pip install 'dask[distributed]')")
    assert invoke("sweep", str(sweep_file), "-o", str(out), "--dry-run").exit_code == 0
    assert not out.exists()


def test_example_sweep_file_is_valid():
    spec = load_sweep(Path(__file__).parents[1] / "docs" / "examples" / "sweep-ifn.toml")
    assert spec.n_runs == 20 and spec.runs()[0].plan.shape == (256, 256)
    assert json.loads(json.dumps(spec.runs()[0].identity()))["steps"] == 300
