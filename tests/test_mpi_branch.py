"""Kept states, branches (``--from``) and runs from data (``--initial``) under MPI (issue 17): real MPI jobs
(oversubscribed on small machines) against the serial run of the same command, dataset by dataset; resume of an
interrupted MPI branch, from its checkpoint and from its stored start state, with another rank count."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from runfile_util import assert_same_run, checkpoint_step, mpi_cmd, mpi_job_marks, run_cli

pytestmark = mpi_job_marks(240)

#: The parent: 32x32, 40 steps, states kept at steps 12 and 20 (push_range 0: its halo would not fit the blocks).
PARENT = ["--shape", "32x32", "--set", "push_range=0", "--set", "init_vessel_spacing=16", "--steps", "40",
          "--every", "5", "--checkpoint-every", "10", "--seed", "7", "--threads", "1", "-q", "--keep-states", "12,20"]
#: A branch at step 12 with a parameter changed, keeping a state of its own.
BRANCH = ["--at-step", "12", "--set", "neut_kill_rate=0.002", "--steps", "20", "--every", "4", "--checkpoint-every",
          "8", "--threads", "1", "-q", "--keep-states", "20"]
#: A branch long enough (a few seconds) to stop in the middle.
LONG_BRANCH = ["--at-step", "12", "--steps", "200", "--every", "20", "--checkpoint-every", "40", "--threads", "1",
               "-q", "--keep-states", "50,130"]
INITIAL = ["--set", "push_range=0", "--steps", "40", "--every", "5", "--checkpoint-every", "10", "--seed", "4",
           "--threads", "1", "-q", "--keep-states", "25"]
TIMEOUT = 120



def run_mpi(n: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(mpi_cmd(n, *args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def serial_run(*args) -> None:
    r = run_cli("run", *map(str, args))
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The serial runs every MPI run is compared with: the parent, a branch of it, a long branch, a run from
    data."""
    d = tmp_path_factory.mktemp("serial")
    from tumorca import Cell, Vessel

    t = np.zeros((32, 32), np.uint8)
    yy, xx = np.mgrid[:32, :32]
    t[(yy - 10) ** 2 + (xx - 12) ** 2 <= 6] = Cell.TUMOR_P
    v = np.zeros((32, 32), np.uint8)
    v[21, :] = Vessel.STALK  # from the left face to the right one: it carries flow
    np.savez(d / "layers.npz", tissue=t, vessel=v)
    serial_run("-o", d / "parent.h5", *PARENT)
    serial_run("-o", d / "branch.h5", "--from", d / "parent.h5", *BRANCH)
    serial_run("-o", d / "long.h5", "--from", d / "parent.h5", *LONG_BRANCH)
    serial_run("-o", d / "initial.h5", "--initial", d / "layers.npz", *INITIAL)
    return d


@pytest.mark.parametrize("n, ranks_shape", [(2, None), (3, "3x1")])
def test_kept_states_equal_serial(runs, tmp_path, n, ranks_shape):
    out = tmp_path / "m.h5"
    r = run_mpi(n, "run", "-o", out, *PARENT, *(["--ranks-shape", ranks_shape] if ranks_shape else []))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert assert_same_run(runs / "parent.h5", out) > 40
    from tumorca.io import RunReader

    with RunReader(out) as run, RunReader(runs / "parent.h5") as ref:
        kept = run.kept_states()
        assert [k["step"] for k in kept] == [12, 20] and all(k["on_disk"] for k in kept)
        assert 0 < kept[0]["stored_bytes"] < kept[0]["bytes"]  # counted in the rank files
        assert run.state_steps() == [0, 12, 20, 40]
        for name, a in ref.state_at(20)["arrays"].items():
            assert np.array_equal(run.state_at(20)["arrays"][name], a), name
    with h5py.File(out, "r") as f:
        assert f["states/step_12/arrays/tissue"].is_virtual  # the blocks live in the rank files
    res = run_cli("inspect", out)
    assert res.returncode == 0 and "kept states: steps 12, 20 (2 of 2 on disk)" in res.stdout, res.stderr


@pytest.mark.parametrize("n, ranks_shape, parent", [(2, None, "parent.h5"), (4, "2x2", "parent.h5"),
                                                    (3, "1x3", "mpi")])
def test_branch_equals_serial(runs, tmp_path, n, ranks_shape, parent):
    if parent == "mpi":  # a branch of a parent written under MPI (kept states in its rank files)
        src = tmp_path / "p.h5"
        r = run_mpi(2, "run", "-o", src, *PARENT)
        assert r.returncode == 0, r.stderr
    else:
        src = runs / parent
    out = tmp_path / "b.h5"
    r = run_mpi(n, "run", "-o", out, "--from", src, *BRANCH, *(["--ranks-shape", ranks_shape] if ranks_shape else []))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert assert_same_run(runs / "branch.h5", out) > 40
    from tumorca.io import RunReader

    with RunReader(out) as b:
        assert b.first_step == 12 and b.has_start_state() and b.attrs["parent_step"] == 12
        assert b.attrs["parent_run_id"] == RunReader(src).attrs["run_id"]
        assert int(b.attrs["ranks"]) == n
    res = run_cli("inspect", out)
    assert res.returncode == 0 and f"branch of:   {src}" in res.stdout, res.stdout


@pytest.mark.parametrize("n, ranks_shape", [(2, None), (3, "3x1")])
def test_initial_equals_serial(runs, tmp_path, n, ranks_shape):
    out = tmp_path / "i.h5"
    r = run_mpi(n, "run", "-o", out, "--initial", runs / "layers.npz", *INITIAL,
                *(["--ranks-shape", ranks_shape] if ranks_shape else []))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert assert_same_run(runs / "initial.h5", out) > 40
    from tumorca.io import RunReader

    with RunReader(out) as run:
        assert run.lineage["initial_source"] == str(runs / "layers.npz") and run.has_start_state()


def _stop_branch_midway(runs: Path, out: Path, n: int) -> None:
    """Start the long MPI branch and stop it with SIGTERM once a checkpoint past step 80 is on disk."""
    proc = subprocess.Popen(mpi_cmd(n, "run", "-o", out, "--from", runs / "parent.h5", *LONG_BRANCH),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ))
    deadline = time.monotonic() + 60
    try:
        while checkpoint_step(out.with_name(out.name + ".ckpt.h5")) < 80:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, proc.stderr.read()


@pytest.mark.parametrize("drop_checkpoint, n1, n2", [(False, 2, 3), (True, 3, 2)],
                         ids=["from-checkpoint", "from-start"])
def test_resume_of_an_interrupted_branch(runs, tmp_path, drop_checkpoint, n1, n2):
    out = tmp_path / "b.h5"
    _stop_branch_midway(runs, out, n1)
    from tumorca.io import RunReader

    with RunReader(out) as run:
        assert run.status.resumable and run.n_frames < 11 and run.kept_states()[0]["on_disk"]
    if drop_checkpoint:  # as if cut off before its first checkpoint: resume starts from /start
        out.with_name(out.name + ".ckpt.h5").unlink()
    r = run_mpi(n2, "run", "--resume", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert assert_same_run(runs / "long.h5", out) > 40
    assert len(list(out.with_name("b.h5.ranks").glob("frames-*/rank-*.h5"))) == n2


def test_bad_branch_input_under_mpi_every_rank_exits_with_one_line(runs, tmp_path):
    out = tmp_path / "bad.h5"
    for args, expect in [(["--from", runs / "parent.h5", "--at-step", "13"], "keeps no state at step 13"),
                         (["--from", runs / "nope.h5", "--at-step", "12"], "does not exist"),
                         (["--initial", runs / "nope.npz"], "--initial"),
                         (["--from", runs / "parent.h5", "--at-step", "12", "--keep-states", "5"], "step 5")]:
        r = run_mpi(2, "run", "-o", out, "--threads", "1", *args, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("tumorca: error: ") and expect in lines[0], r.stderr
        assert not out.exists() and not out.with_name("bad.h5.ranks").exists(), args
