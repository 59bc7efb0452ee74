"""``mpiexec -n P tumorca run``: real MPI jobs (oversubscribed on small machines) against the serial run, dataset by
dataset; resume with another rank count; bad input ends every rank with one line on stderr (docs/FORMAT.md "Runs
under MPI", docs/scaling.md)."""
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

from runfile_util import assert_same_run, checkpoint_step, mpi_cmd, mpi_job_marks, run_cli

# each test measured 2-27 s (the first also runs the serial fixture's three runs) on a loaded machine
pytestmark = mpi_job_marks(240)

#: Pushing off (push_range 0): its halo (4 sites per site of range: 20 at the default) would not fit the blocks of
#: these small lattices split across ranks; the MPI push cases of tests/mpi_driver.py run it.
#: Whole model on (vessels, tumour, neutrophils, all fields), small and short.
ARGS_2D = ["--shape", "24x24", "--set", "push_range=0", "--set", "init_vessel_spacing=12", "--set", "init_tumor_radius=4", "--steps", "12",
           "--every", "5", "--checkpoint-every", "4", "--seed", "5", "--threads", "1", "-q"]
ARGS_3D = ["--shape", "16x16x16", "--set", "push_range=0", "--set", "init_vessel_spacing=8", "--set", "init_tumor_radius=3", "--steps", "6",
           "--every", "3", "--checkpoint-every", "3", "--seed", "9", "--threads", "1", "-q"]
#: Long enough (a few seconds) to stop in the middle.
LONG_ARGS = ["--shape", "32x32", "--set", "push_range=0", "--set", "init_vessel_spacing=16", "--steps", "200", "--every", "20",
             "--checkpoint-every", "40", "--seed", "11", "--threads", "1"]
TIMEOUT = 120



def run_mpi(n: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(mpi_cmd(n, *args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial runs every MPI run is compared with."""
    d = tmp_path_factory.mktemp("serial")
    out = {}
    for name, args in (("2d", ARGS_2D), ("3d", ARGS_3D), ("long", LONG_ARGS + ["-q"])):
        r = run_cli("run", "-o", str(d / f"{name}.h5"), *args)
        assert r.returncode == 0, r.stderr
        out[name] = d / f"{name}.h5"
    return out


@pytest.mark.parametrize("n, ranks_shape, case", [
    (1, "1x1", "2d"),      # the MPI path with one rank
    (2, None, "2d"),       # automatic rank grid
    (4, "2x2", "2d"),
    (3, "3x1", "2d"),      # blocks of unequal size (24 = 8 + 8 + 8 rows, 24 columns)
    (2, "2x1x1", "3d"),
    (4, "1x2x2", "3d"),
])
def test_mpi_run_equals_serial(serial, tmp_path, n, ranks_shape, case):
    out = tmp_path / "m.h5"
    args = ARGS_2D if case == "2d" else ARGS_3D
    extra = ["--ranks-shape", ranks_shape] if ranks_shape else []
    r = run_mpi(n, "run", "-o", str(out), *args, *extra)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # -q: nothing from any rank
    assert assert_same_run(serial[case], out) > 40
    with h5py.File(out, "r") as f:
        assert f["tissue"].is_virtual and f["checkpoint/arrays/tissue"].is_virtual
        assert int(f.attrs["ranks"]) == n
        assert f["run/status"][()].rstrip(b"\0 ") == b"complete"
    # the rank files of this run only, and no checkpoint left once complete
    ranks = out.with_name("m.h5.ranks")
    assert len(list(ranks.glob("frames-*/rank-*.h5"))) == n and not list(ranks.glob("ckpt-*"))
    assert not out.with_name("m.h5.ckpt.h5").exists()


def test_readers_and_moving_the_directory(serial, tmp_path):
    """The main file reads like a serial one (RunReader, inspect, xarray), also after the output directory moved:
    the virtual datasets name their rank files relative to the main file."""
    d = tmp_path / "a"
    d.mkdir()
    r = run_mpi(2, "run", "-o", str(d / "m.h5"), *ARGS_2D, "--ranks-shape", "1x2")
    assert r.returncode == 0, r.stderr
    moved = tmp_path / "b"
    d.rename(moved)
    from tumorca.io import RunReader

    with RunReader(moved / "m.h5") as run, RunReader(serial["2d"]) as ref:
        assert run.status.state == "complete" and run.n_frames == ref.n_frames
        assert np.array_equal(run.frame("o2", -1), ref.frame("o2", -1))
        assert np.array_equal(run.final_state()["arrays"]["tissue"], ref.final_state()["arrays"]["tissue"])
    r = run_cli("inspect", str(moved / "m.h5"))
    assert r.returncode == 0 and "complete" in r.stdout, r.stderr
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with xr.open_dataset(moved / "m.h5", engine="h5netcdf") as ds, \
            xr.open_dataset(serial["2d"], engine="h5netcdf") as ref:
        assert ds["tissue"].dims == ("time", "z", "y", "x")
        assert np.array_equal(ds["neut_age"].values, ref["neut_age"].values)


def _stop_midway(out: Path, n: int, sig: int) -> None:
    """Start an MPI run of LONG_ARGS and stop it with ``sig`` once a checkpoint past step 80 is on disk."""
    proc = subprocess.Popen(mpi_cmd(n, "run", "-o", str(out), "-q", *LONG_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=dict(os.environ))
    deadline = time.monotonic() + 60
    try:
        while checkpoint_step(out.with_name(out.name + ".ckpt.h5")) < 80:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, proc.stderr.read()


@pytest.mark.parametrize("sig, n1, n2", [(signal.SIGTERM, 2, 3), (signal.SIGKILL, 3, 2)])
def test_resume_with_another_rank_count(serial, tmp_path, sig, n1, n2):
    out = tmp_path / "m.h5"
    _stop_midway(out, n1, sig)
    from tumorca.io import RunReader

    with RunReader(out) as run:
        assert run.status.resumable and run.n_frames < 11
    r = run_mpi(n2, "run", "--resume", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert assert_same_run(serial["long"], out) > 40
    ranks = out.with_name("m.h5.ranks")
    assert len(list(ranks.glob("frames-*/rank-*.h5"))) == n2  # the killed run's rank files are gone


def test_serial_resume_of_an_mpi_run_and_back(serial, tmp_path):
    """A run stopped under MPI continues serially, and a serial run continues under MPI."""
    out = tmp_path / "m.h5"
    _stop_midway(out, 2, signal.SIGTERM)
    r = run_cli("run", "--resume", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert assert_same_run(serial["long"], out) > 40
    assert not out.with_name("m.h5.ranks").exists()  # the serial file refers to no rank file

    out2 = tmp_path / "s.h5"
    proc = subprocess.Popen([sys.executable, "-m", "tumorca.cli", "run", "-o", str(out2), "-q", *LONG_ARGS],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while checkpoint_step(tmp_path / "s.h5.ckpt.h5") < 80:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    r = run_mpi(2, "run", "--resume", "-o", str(out2), "-q", "--ranks-shape", "2x1")
    assert r.returncode == 0, r.stderr
    assert assert_same_run(serial["long"], out2) > 40


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: "), r.stderr
    return lines[0]


def test_bad_input_every_rank_exits_with_one_line(serial, tmp_path):
    out = tmp_path / "bad.h5"
    cases = [
        (2, ["--shape", "24x24", "--ranks-shape", "1x3"], "3"),               # grid of 3 blocks, 2 ranks
        (2, ["--shape", "1x16", "--ranks-shape", "2x1"], "more ranks"),       # 2 ranks along 1 site
        (2, ["--shape", "24x24", "--ranks-shape", "2x1x1"], ""),              # z split on a 2-D lattice
        (2, ["--shape", "24x24", "--ranks-shape", "two"], ""),                # not a grid
    ]
    for n, args, expect in cases:
        r = run_mpi(n, "run", "-o", str(out), "--steps", "2", "--threads", "1", *args, timeout=60)
        assert r.returncode != 0, (args, r.stderr)
        line = _one_error_line(r)
        assert expect in line, line
        assert not out.exists() and not out.with_name(out.name + ".ranks").exists(), args
    # an existing output, an output directory that does not exist
    r = run_mpi(2, "run", "-o", str(serial["2d"]), *ARGS_2D, timeout=60)
    assert r.returncode == 2 and "exists" in _one_error_line(r)
    r = run_mpi(2, "run", "-o", str(tmp_path / "no" / "such" / "dir.h5"), *ARGS_2D, timeout=60)
    assert r.returncode == 2 and "does not exist" in _one_error_line(r)
    # --resume of a run file with another lattice, and of a finished run
    done = tmp_path / "done.h5"
    shutil.copy(serial["2d"], done)
    r = run_mpi(2, "run", "--resume", "-o", str(done), timeout=60)
    assert r.returncode == 2 and "finished" in _one_error_line(r)
    with h5py.File(done, "r+") as f:  # make it resumable: as if stopped by a signal
        f["run/status"][()] = b"interrupted"
    before = done.read_bytes()
    r = run_mpi(2, "run", "--resume", "-o", str(done), "--shape", "32x32", timeout=60)
    assert r.returncode == 2 and "has shape 24x24, not 32x32" in _one_error_line(r)
    assert done.read_bytes() == before and not tmp_path.joinpath("done.h5.ranks").exists()


def test_bench_mpi_case(tmp_path):
    """tumorca bench --mpi: one tiny strong-scaling case end to end (no timing asserted)."""
    import json

    import tumorca.parallel as par

    if not hasattr(par, "bench_step"):
        pytest.skip("tumorca.parallel has no bench_step")
    out = tmp_path / "b.json"
    r = run_cli("bench", "--mpi", "1,2", "--mpi-shape", "40x16x16", "--mpi-steps", "1", "--threads", "1",
                "--json", str(out), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [row["ranks"] for row in doc["rows"]] == [1, 2]
    two = doc["rows"][1]
    assert two["halo_bytes"] > 0 and two["halo_seconds"] >= 0 and two["efficiency"] > 0
    assert "halo s/step" in r.stdout


def test_resume_refuses_a_checkpoint_whose_rank_file_is_missing(tmp_path):
    """HDF5 reads the blocks of a missing VDS source file as zeros; resuming from them would silently continue a
    half-empty lattice.  The checkpoint's rank files are checked first."""
    out = tmp_path / "m.h5"
    _stop_midway(out, 2, signal.SIGTERM)
    ckpt_blocks = sorted(out.with_name("m.h5.ranks").glob("ckpt-*/rank-*.h5"))
    assert ckpt_blocks, "the stopped run left a checkpoint over rank blocks"
    ckpt_blocks[-1].unlink()
    r = run_mpi(2, "run", "--resume", "-o", str(out), "-q")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "which is missing" in lines[0] and "Traceback" not in r.stderr, r.stderr


#: Run by every rank of ``mpiexec -n 2``: the CLI, with rank 0 listing the output directory just before and just
#: after the main file gets its name (MainFileWriter.publish), and once the run has ended.
_PUBLISH_PROBE = """
import json, os, sys
from tumorca.io.distributed import MainFileWriter
from tumorca.cli import cli
seen = {}
publish = MainFileWriter.publish
def probe(self):
    d = os.path.dirname(self._unpublished[1])
    seen["before"] = sorted(os.listdir(d))
    publish(self)
    seen["after"] = sorted(os.listdir(d))
MainFileWriter.publish = probe
try:
    cli.main(args=sys.argv[1:], prog_name="tumorca", standalone_mode=False)
finally:
    if seen:
        seen["end"] = sorted(os.listdir(os.path.dirname(sys.argv[3])))
        print("SEEN", json.dumps(seen))
"""


def test_nothing_visible_names_the_main_file_before_it_exists(tmp_path):
    """Under MPI the main file gets its name last (after every rank file exists): until then a run killed with
    SIGKILL must leave only hidden temporaries and the rank directory -- no XDMF index of a missing file."""
    out = tmp_path / "m.h5"
    cmd = mpi_cmd(2, "run", "-o", out, *ARGS_2D)
    cmd[cmd.index("-m"):cmd.index("tumorca.cli") + 1] = ["-c", _PUBLISH_PROBE]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    seen = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("SEEN "))[5:])
    assert all(n.startswith(".") or n == "m.h5.ranks" for n in seen["before"]), seen
    assert "m.h5" in seen["after"] and "m.h5.xdmf" in seen["end"], seen
