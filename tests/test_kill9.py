"""Issue 16: ``kill -9`` at random moments of a sweep and of an MPI run, each resumed bit-identically, and a disk
that fills up under one MPI rank.  The serial run's kill test is in tests/test_hardening.py.

The moments are drawn from a seeded generator (a failure repeats): half uniformly over the time an uninterrupted
run of the same command took, half over the part of it in which run files were being written.  Every killed output
is then finished the documented way (``tumorca sweep ... --resume``, ``mpiexec -n 2 tumorca run --resume -o OUT``,
or a fresh start when nothing was written yet) and compared with the uninterrupted run dataset by dataset.  The
default tests kill a few times; the ``slow`` ones 20 times each."""
from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runfile_util import assert_same_run, cli_cmd

# -- sweeps -----------------------------------------------------------------------------------------------------------
#: Two runs of 120 steps on one worker, so a kill finds the second run's file in .partial/ as often as the first's.
SWEEP = """\
name = "kill"
seed = 16
replicates = 1
shape = "32x32"
steps = 120
every = 20
checkpoint_every = 20
fields = ["o2"]

[params]
init_vessel_spacing = 16
init_tumor_radius = 5

[grid]
preset = ["wild-type", "ifnb-knockout"]
"""
N_SWEEP = 2


def _hidden_files(d: Path) -> list[str]:
    """Hidden files anywhere under ``d`` but the sweep's lock."""
    out = []
    for root, dirs, files in os.walk(d):
        for name in files + dirs:
            rel = os.path.relpath(os.path.join(root, name), d)
            if name.startswith(".") and rel != ".sweep.lock" and not rel.startswith(".partial"):
                out.append(rel)
    return sorted(out)


def _sweep(toml: Path, out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd("sweep", str(toml), "-o", str(out), "--workers", "1", "-q", *extra),
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
                          start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc), whatever its process group or session."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher's process group and every process under it at once: MPICH's hydra proxy and each
    rank run in sessions of their own, which a signal to the launcher's group alone would reach only later (the
    proxy kills the ranks once it loses the launcher).  Waits until every one of them is gone."""
    pids = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if _alive(p)]
        time.sleep(0.02)


def _wait_group_gone(pgid: int, timeout: float = 30) -> None:
    """Wait until no process of the group ``pgid`` is left (orphaned Dask workers die with their nanny)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def _sweep_kills(tmp_path: Path, moments: int, seed: int) -> None:
    pytest.importorskip("distributed")
    toml = tmp_path / "kill.toml"
    toml.write_text(SWEEP)
    ref = tmp_path / "ref"
    # the uninterrupted sweep, timed: its whole span, and when its first run started writing (most of a small
    # sweep's time is the cluster starting; half the kills strike while runs are being written)
    t0 = time.monotonic()
    proc = subprocess.Popen(cli_cmd("sweep", str(toml), "-o", str(ref), "--workers", "1", "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            start_new_session=True)
    t_run = None
    while proc.poll() is None:
        if t_run is None and (ref / ".partial").is_dir():
            t_run = time.monotonic() - t0
        time.sleep(0.005)
    span = time.monotonic() - t0
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    t_run = span / 2 if t_run is None else t_run
    rng = random.Random(seed)
    outcomes = []
    for i in range(moments):
        out = tmp_path / f"k{i}"
        whole_group = rng.random() < 0.5  # the lost node (everything dies) or only the sweep process
        proc = subprocess.Popen(cli_cmd("sweep", str(toml), "-o", str(out), "--workers", "1", "-q"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                                start_new_session=True)
        time.sleep(rng.uniform(0.05, span) if i % 2 else rng.uniform(t_run, span))
        if whole_group:
            _kill_group(proc)
        else:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            _wait_group_gone(proc.pid)
        runs = out / "runs"
        done = len(list(runs.glob("*.h5"))) if runs.is_dir() else 0
        partial = sorted(p.name for p in (out / ".partial").iterdir()) if (out / ".partial").is_dir() else []
        outcomes.append((done, len(partial), whole_group))
        res = _sweep(toml, out, "--resume")
        assert res.returncode == 0, (i, whole_group, res.stderr)
        assert "Traceback" not in res.stderr, (i, res.stderr)
        for k in range(N_SWEEP):
            name = f"runs/run_{k:04d}.h5"
            assert assert_same_run(ref / name, out / name) > 10, (i, name)
        assert sorted(os.listdir(out)) == [".sweep.lock", "manifest.csv", "manifest.json", "runs"], (i, whole_group)
        assert len(os.listdir(out / "runs")) == 2 * N_SWEEP, i
        assert _hidden_files(out) == [], i
        shutil.rmtree(out)
    print("outcomes (runs complete, runs in .partial, whole group killed):", outcomes)


@pytest.mark.slow
@pytest.mark.dask
@pytest.mark.subprocess
@pytest.mark.timeout(1200)
def test_kill_9_of_a_sweep_at_8_random_moments_then_resume_is_bit_identical(tmp_path):
    """8 SIGKILLs (to the whole process group, or to the sweep process alone) at random moments of a sweep,
    each followed by ``tumorca sweep --resume``: every run file equals the uninterrupted sweep's."""
    _sweep_kills(tmp_path, moments=8, seed=1616)


# -- MPI runs ---------------------------------------------------------------------------------------------------------
#: Small and short: a few seconds under mpiexec -n 2 on a loaded machine, checkpoints every 20 of 120 steps.
MPI_ARGS = ["--shape", "32x32", "--set", "push_range=0", "--set", "init_vessel_spacing=16", "--steps", "120", "--every", "20",
            "--checkpoint-every", "20", "--seed", "11", "--threads", "1", "-q"]


def _mpiexec() -> str:
    import sysconfig

    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=sysconfig.get_path("scripts"))
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'tumorca[mpi]')")
    if importlib.util.find_spec("tumorca.parallel") is None:
        pytest.skip("tumorca.parallel (the MPI engine) is not available")
    return exe


def mpi_cmd(n: int, *args: str) -> list[str]:
    return [_mpiexec(), "-n", str(n), sys.executable, "-m", "tumorca.cli", *args]


def run_mpi(n: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(mpi_cmd(n, *args), capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
                          start_new_session=True)


def _check_rank_dir(out: Path, n: int) -> None:
    """One generation of frames, one rank file per rank, no checkpoint blocks once complete, nothing hidden."""
    ranks = out.with_name(out.name + ".ranks")
    assert sorted(p.name for p in ranks.iterdir() if p.name.startswith("ckpt-")) == []
    frames = [p for p in ranks.iterdir() if p.name.startswith("frames-")]
    assert len(frames) == 1 and len(list(frames[0].glob("rank-*.h5"))) == n, sorted(map(str, ranks.rglob("*")))
    hidden = [str(p) for p in (*out.parent.rglob(".*"),)]
    assert hidden == [], hidden
    assert not out.with_name(out.name + ".ckpt.h5").exists()


def _mpi_kills(tmp_path: Path, moments: int, seed: int) -> None:
    ref = tmp_path / "ref" / "m.h5"
    ref.parent.mkdir()
    # the uninterrupted run, timed: its whole span, and the window in which its main file is being written (from
    # its appearance to the removal of the checkpoint at the end); half the kills strike in that window
    ck = ref.with_name("m.h5.ckpt.h5")
    t0 = time.monotonic()
    proc = subprocess.Popen(mpi_cmd(2, "run", "-o", str(ref), *MPI_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True)
    t_file = t_done = None
    while proc.poll() is None:
        now = time.monotonic() - t0
        if t_file is None and ref.exists():
            t_file = now
        if t_done is None and t_file is not None and ck.exists():
            t_done = -1.0  # a checkpoint was written: its removal marks the end
        if t_done == -1.0 and not ck.exists():
            t_done = now
        time.sleep(0.002)
    span = time.monotonic() - t0
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    t_file = t_file if t_file is not None else 0.05
    t_done = t_done if t_done and t_done > t_file else span
    rng = random.Random(seed)
    outcomes = []
    for i in range(moments):
        d = tmp_path / f"k{i}"
        d.mkdir()
        out = d / "m.h5"
        proc = subprocess.Popen(mpi_cmd(2, "run", "-o", str(out), *MPI_ARGS), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True)
        time.sleep(rng.uniform(0.05, span) if i % 2 else rng.uniform(t_file, t_done))
        _kill_tree(proc)
        if out.exists():
            res = run_mpi(2, "run", "--resume", "-o", str(out))
            if res.returncode == 2 and "finished run" in res.stderr:  # it completed before the kill
                outcomes.append("complete")
            else:
                assert res.returncode == 0, (i, res.stderr)
                outcomes.append("resumed")
        else:
            leftovers = sorted(p.name for p in d.iterdir())
            assert all(p.startswith(".") or p == "m.h5.ranks" for p in leftovers), (i, leftovers)
            res = run_mpi(2, "run", "-o", str(out), *MPI_ARGS)
            assert res.returncode == 0, (i, res.stderr)
            outcomes.append("restarted")
        assert "Traceback" not in res.stderr, (i, res.stderr)
        assert assert_same_run(ref, out) > 20, i
        _check_rank_dir(out, 2)
        shutil.rmtree(d)
    print("outcomes:", outcomes)


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(1200)
def test_kill_9_of_an_mpi_run_at_8_random_moments_then_resume_is_bit_identical(tmp_path):
    """SIGKILL to the process group of ``mpiexec -n 2 tumorca run`` (launcher and ranks at once) at 8 random moments,
    each followed by ``mpiexec -n 2 tumorca run --resume``: the result equals the uninterrupted MPI run."""
    _mpi_kills(tmp_path, moments=8, seed=1616)


def test_temporaries_of_a_zombie_writer_are_stale(tmp_path):
    """Before: a killed MPI rank not yet reaped (a zombie: its parent, the hydra proxy, was killed with it) counted
    as a live writer, so the next run left its hidden temporary file behind for good."""
    from tumorca.io.writer import remove_stale_temporaries

    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    child = subprocess.Popen(["true"])  # exits at once and stays a zombie until waited for
    other = subprocess.Popen(["sleep", "60"])  # a live writer
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        stale = tmp_path / f".r.h5.{child.pid}.0123abcd.tmp"
        live = tmp_path / f".r.h5.{other.pid}.89abcdef.tmp"
        for p in (stale, live):
            p.write_bytes(b"x")
        assert remove_stale_temporaries(tmp_path / "r.h5") == [stale] and live.exists()
    finally:
        child.wait()
        other.kill()
        other.wait()


# -- a disk that fills up under an MPI run -----------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root; skipped elsewhere): a disk that fills up for real."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> int:
    """Write ``path`` until the disk is full; returns the bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9):
            block = b"\0" * size
            try:
                while True:
                    n += f.write(block)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    return n


DISK_ARGS = ["--shape", "32x32", "--set", "push_range=0", "--set", "init_vessel_spacing=16", "--steps", "400", "--every", "20",
             "--checkpoint-every", "40", "--seed", "12", "--threads", "1", "-q"]


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(240)
def test_mpi_run_on_a_disk_that_fills_up_stops_cleanly_and_resumes(small_disk, tmp_path):
    """Issue 16 item 10e: the disk fills up (another process takes the space) while ``mpiexec -n 2 tumorca run``
    writes; the rank whose write hits ENOSPC first makes every rank stop at the next step.  The run ends with one
    line on stderr and exit status 1; the file reads, says why it stopped, and ``--resume`` (once there is space)
    finishes it equal to the uninterrupted run."""
    from runfile_util import checkpoint_step

    from tumorca.io import RunReader

    ref = tmp_path / "ref.h5"
    res = run_mpi(2, "run", "-o", str(ref), *DISK_ARGS)
    assert res.returncode == 0, res.stderr

    out = small_disk / "m.h5"
    filler = small_disk / "filler"
    proc = subprocess.Popen(mpi_cmd(2, "run", "-o", str(out), *DISK_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while checkpoint_step(out.with_name("m.h5.ckpt.h5")) < 40:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.005)
        _fill(filler)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: ") and "Traceback" not in err, err
    # the rank that sees the disk full before a frame refuses it (the file intact); one whose write fails inside
    # HDF5 says "disk full" and leaves its file as of its last flush: either way every rank stops
    assert "disk nearly full" in lines[0] or "disk full" in lines[0], err
    assert "--resume" in lines[0], err
    with RunReader(out) as r:
        assert r.status.resumable, r.status
        assert r.n_frames < 21
        n_frames = r.n_frames
    res = run_cli_inspect(out)
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    # a resume while the disk is still full fails the same way, and the file stays readable
    res = run_mpi(2, "run", "--resume", "-o", str(out))
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    with RunReader(out) as r:
        assert r.status.resumable and r.n_frames >= min(n_frames, 1), r.status
    filler.unlink()
    res = run_mpi(2, "run", "--resume", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert assert_same_run(ref, out) > 20
    _check_rank_dir(out, 2)


def run_cli_inspect(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd("inspect", str(path)), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))


def _rank_pids(proc: subprocess.Popen) -> dict[int, int]:
    """MPI rank -> pid of the ranks under the launcher ``proc`` (from PMI_RANK in their environment)."""
    out = {}
    for pid in _descendants(proc.pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"PMI_RANK="):
                out[int(item.split(b"=", 1)[1])] = pid
    return out


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(240)
def test_mpi_write_failing_inside_hdf5_on_one_rank_stops_every_rank_and_resumes(tmp_path):
    """A write that fails inside HDF5 on rank 1 alone (its file-size limit lowered under it with prlimit: the
    frame is refused by the kernel in the middle of HDF5's write, as on a disk filled by another process between
    the space check and the write).  Every rank stops with status 1 and one line, rank 1 without closing its
    broken file; the run file reads and ``--resume`` finishes it equal to the uninterrupted run."""
    import resource

    from runfile_util import checkpoint_step

    from tumorca.io import RunReader

    ref = tmp_path / "ref.h5"
    res = run_mpi(2, "run", "-o", str(ref), *DISK_ARGS)
    assert res.returncode == 0, res.stderr
    d = tmp_path / "run"
    d.mkdir()
    out = d / "m.h5"
    proc = subprocess.Popen(mpi_cmd(2, "run", "-o", str(out), *DISK_ARGS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while checkpoint_step(out.with_name("m.h5.ckpt.h5")) < 40:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.005)
        pid = _rank_pids(proc)[1]
        rank1 = next(out.with_name("m.h5.ranks").glob("frames-*/rank-00001.h5"))
        limit = rank1.stat().st_size + 1024
        try:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, limit))
        except (PermissionError, OSError) as exc:
            pytest.skip(f"cannot lower another process's file-size limit here: {exc}")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: ") and "Traceback" not in err, err
    assert "rank-00001.h5" in lines[0] and "file size limit" in lines[0] and "--resume" in lines[0], err
    with RunReader(out) as r:  # before: mpiexec killed rank 0 as rank 1 left, so the file was only "cut off"
        assert r.status.resumable and r.status.state == "failed" and "file size limit" in r.status.detail, r.status
        assert 0 < r.n_frames < 21
    res = run_mpi(2, "run", "--resume", "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    assert assert_same_run(ref, out) > 20
    _check_rank_dir(out, 2)


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_stale_lock_beside_a_finished_run_is_removed(tmp_path):
    """Before: a writer killed between finishing its file and removing its lock left ``.NAME.lock`` beside the
    complete run, and ``--resume`` (refused: a finished run) never took that lock again, so it stayed for good (the
    serial kill test found it once under load).  A lock a live process holds is kept."""
    import fcntl

    from runfile_util import run_cli

    out = tmp_path / "c.h5"
    res = run_cli("run", "-o", str(out), "--shape", "16x16", "--steps", "10", "--threads", "1", "-q")
    assert res.returncode == 0, res.stderr
    lock = tmp_path / ".c.h5.lock"
    lock.write_text("process 999999 on elsewhere")
    res = run_cli("run", "--resume", "-o", str(out), "-q")
    assert res.returncode == 2 and "finished run" in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h5", "c.h5.xdmf"]
    # a lock held by a live process stays
    lock.write_text("process 1 on here")
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = run_cli("run", "--resume", "-o", str(out), "-q")
        assert res.returncode == 2, res.stderr
        assert lock.exists()
