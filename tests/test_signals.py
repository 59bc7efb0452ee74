"""Real processes: SIGINT, SIGTERM and SIGKILL in the middle of a run, then --resume; a reader following a live
run in SWMR mode; a file-size limit hit during a run.  Each resumed file is compared dataset by dataset with an
uninterrupted run of the same plan."""
from __future__ import annotations

import resource
import subprocess
import signal
import sys
import time

import h5py
import numpy as np
import pytest

from tumorca.io import RunReader, sidecar_paths
from runfile_util import (LONG_ARGS, assert_same_run, checkpoint_step, datasets, run_cli, start_cli, wait_for)

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"), pytest.mark.subprocess,
              # each measured 6-8 s (the first also runs the reference run, 6 s) on a loaded machine
              pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (in a subprocess too, so it is the same code path)."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    res = run_cli("run", "-o", str(path), *LONG_ARGS, "-q")
    assert res.returncode == 0, res.stderr
    return path


def _frames_on_disk(path) -> int:
    try:
        with RunReader(path) as r:
            return r.n_frames
    except Exception:  # the file may not have its name yet
        return 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_equals_uninterrupted(tmp_path, reference, sig):
    out = tmp_path / "run.h5"
    proc = start_cli("run", "-o", str(out), *LONG_ARGS)
    ckpt = sidecar_paths(out)[1]
    wait_for(lambda: checkpoint_step(ckpt) >= 80, proc, "the first checkpoint")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"tumorca: {sig.name} at step ") and f"tumorca run --resume -o {out}" in last
    stopped_at = int(last.split(" at step ")[1].split()[0])
    assert 80 <= stopped_at < 800
    with RunReader(out) as r:
        st = r.status
        assert st.state == "interrupted" and st.resumable
        assert r.n_rows == stopped_at + 1  # every step up to the stop is on disk
        assert r.checkpoint_step() == stopped_at
    with h5py.File(out, "r") as f:  # closed properly: a plain open works
        assert f["run/status"][()] == b"interrupted"
    res = run_cli("run", "--resume", "--threads", "1", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"from checkpoint at step {stopped_at}" in res.stderr
    assert assert_same_run(reference, out) > 40
    assert not ckpt.exists()


def test_kill9_file_readable_and_resume_equals_uninterrupted(tmp_path, reference):
    out = tmp_path / "run.h5"
    proc = start_cli("run", "-o", str(out), *LONG_ARGS, "-q")
    ckpt = sidecar_paths(out)[1]
    wait_for(lambda: checkpoint_step(ckpt) >= 160 and _frames_on_disk(out) >= 10, proc,
             "the second checkpoint and 10 frames")
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with RunReader(out) as r:  # opens in SWMR read mode
        st = r.status
        assert st.state == "cut off" and st.resumable, st
        n, ck = r.n_frames, r.checkpoint_step()
        assert n >= 10 and ck >= 160 and r.n_rows - 1 >= ck
        last = r.frame("tissue", n - 1)
        step = int(r.steps[n - 1])
    # the last flushed frame is intact: it equals the reference at the same step
    ref = datasets(reference)
    i = list(ref["step"]).index(step)
    assert np.array_equal(last, ref["tissue"][i, 0])
    res = run_cli("inspect", str(out))
    assert res.returncode == 0 and "cut off" in res.stdout and "--resume" in res.stdout
    res = run_cli("run", "--resume", "--threads", "1", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert_same_run(reference, out)
    with RunReader(out) as r:
        assert r.status.state == "complete"


def test_reader_follows_a_live_run(tmp_path, reference):
    out = tmp_path / "live.h5"
    proc = start_cli("run", "-o", str(out), *LONG_ARGS, "-q")
    wait_for(lambda: _frames_on_disk(out) >= 1, proc, "the first frame")
    seen = []
    with RunReader(out) as r:
        assert r.file.swmr_mode
        assert r.status.state == "running"
        while proc.poll() is None and len(seen) < 200:
            r.refresh()
            n = r.n_frames
            if not seen or n > seen[-1][0]:
                # the newest frame is complete when it is counted: compare it with the reference afterwards
                seen.append((n, int(r.steps[n - 1]), r.frame("o2", n - 1).copy(), r.n_rows))
            time.sleep(0.01)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    counts = [s[0] for s in seen]
    assert len(set(counts)) >= 3, counts  # saw the file grow at least twice while it was written
    ref = datasets(reference)
    steps = list(ref["step"])
    for n, step, o2, rows in seen:
        assert o2.tobytes() == ref["o2"][steps.index(step), 0].tobytes()
        assert rows >= step + 1
    with RunReader(out) as r:
        assert r.status.state == "complete"


def _limit_file_size(limit: int):
    def pre() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return pre


def test_file_size_limit_stops_cleanly_then_resume(tmp_path, reference):
    """The writer sees that the next frame may not fit (here: ulimit -f) and stops with a closed, readable file."""
    out = tmp_path / "lim.h5"
    res = run_cli("run", "-o", str(out), *LONG_ARGS, "-q", preexec_fn=_limit_file_size(450_000))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: file size limit"), res.stderr
    assert "--resume" in lines[0] and "Traceback" not in res.stderr
    with h5py.File(out, "r") as f:  # closed properly
        assert f["run/status"][()] == b"failed"
        n = f["time"].shape[0]
        assert 0 < n < 41 and f["tissue"].shape[0] == n
    with RunReader(out) as r:
        assert r.status.state == "failed" and r.status.resumable
    res = run_cli("run", "--resume", "--threads", "1", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert_same_run(reference, out)


def test_write_failing_inside_hdf5_exits_cleanly_then_resume(tmp_path, reference):
    """Space that vanishes between the writer's check and HDF5's write (simulated: the check switched off, and a
    file-size limit): one line, exit 1, no traceback or crash, the file readable to its last flushed frame."""
    out = tmp_path / "hard.h5"
    code = ("import tumorca.io.writer as w\n"
            "w.RunWriter._check_space = lambda *a: None\n"
            "from tumorca.cli import main\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, "run", "-o", str(out), *LONG_ARGS, "-q"],
                         capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(600_000))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("tumorca: error: writing ") and "File too large" in lines[0]
    assert "--resume" in lines[0]
    with RunReader(out) as r:  # SWMR read of a file HDF5 could not finish writing
        assert r.status.state == "cut off"
        n = r.n_frames
        assert 0 < n < 41
        ref = datasets(reference)
        assert r.frame("tissue", n - 1).tobytes() == ref["tissue"][n - 1, 0].tobytes()
    res = run_cli("run", "--resume", "--threads", "1", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert_same_run(reference, out)
