"""Issue 16, hardening: one test per defect, each reproducing it (and failing before its fix)."""
from __future__ import annotations

import asyncio
import os

import pytest


# -- 1. the local sweep cluster is authenticated -------------------------------------------------------------------
async def _refused(address: str, **connection_args) -> bool:
    """Whether a Dask comm to ``address`` is refused before it can send an operation."""
    from distributed.comm import connect

    try:
        comm = await connect(address, timeout=5, **connection_args)
        await comm.write({"op": "identity"})
        await asyncio.wait_for(comm.read(), 5)
    except (OSError, asyncio.TimeoutError):
        return True
    await comm.close()
    return False


@pytest.mark.dask
@pytest.mark.timeout(120)
def test_local_sweep_cluster_refuses_connections_without_its_credentials():
    """Another local user connected to the scheduler port and ran os.getuid on a worker: now every endpoint of the
    cluster is TLS with credentials only the sweep holds."""
    pytest.importorskip("distributed")
    from distributed import Client
    from distributed.security import Security

    from tumorca.sweep import local_cluster

    cluster = local_cluster(1)
    try:
        with Client(cluster, set_as_default=False) as client:  # the owner's client: the credentials come along
            assert client.submit(os.getpid, pure=False).result(timeout=60) != os.getpid()
            endpoints = [cluster.scheduler_address, *client.scheduler_info()["workers"]]
        assert all(a.startswith("tls://127.0.0.1:") for a in endpoints), endpoints
        stranger = Security.temporary().get_connection_args("client")  # TLS, but not this cluster's certificates
        for address in endpoints:
            assert asyncio.run(_refused(address.replace("tls://", "tcp://"))), address
            assert asyncio.run(_refused(address, **stranger)), address
    finally:
        cluster.close()


# -- shared: a small interrupted run with a checkpoint -------------------------------------------------------------
def _interrupted_run(path, steps: int = 40, stop_after: int = 25, shape=(24, 24)) -> None:
    """A run of ``steps`` steps, checkpoint every 10, stopped (as by SIGINT) after ``stop_after`` steps: the file is
    ``interrupted``, with a checkpoint at that step beside it."""
    from tumorca import Params, runner
    from tumorca.io.layout import RunPlan

    plan = RunPlan(shape=shape, params=Params(init_tumor_radius=3.0, init_vessel_spacing=8, push_range=0), seed=3, steps=steps,
                   every=10, fields=("o2",), compression="gzip", checkpoint_every=10, preset="")
    polls = iter(range(10 ** 9))
    out = runner.run(plan, path, provenance={"command_line": "test"}, threads=1,
                     stop=lambda: next(polls) >= stop_after)
    assert out.status == "interrupted"


def _digest(*paths) -> list[str]:
    import hashlib

    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "" for p in paths]


def _invoke(*args: str):
    from click.testing import CliRunner

    from tumorca.cli import cli

    return CliRunner().invoke(cli, list(args))


def _one_line_error(res, code=None) -> str:
    err = res.stderr
    assert res.exit_code != 0 and (code is None or res.exit_code == code), (res.exit_code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("tumorca: error: "), err
    return err


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupted")
    _interrupted_run(d / "r.h5")
    return d / "r.h5"


def _copy_run(src, dst_dir):
    import shutil

    from tumorca.io.layout import sidecar_paths

    dst = dst_dir / src.name
    for a, b in zip((src, *sidecar_paths(src)), (dst, *sidecar_paths(dst))):
        if a.exists():
            shutil.copy2(a, b)
    return dst


# -- 2. --resume checks the checkpoint -------------------------------------------------------------------------------
def _edit_attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


def _edit_params(f):
    import json

    p = json.loads(f.attrs["parameters"])
    p["neut_kill_rate"] = 0.002
    f.attrs["parameters"] = json.dumps(p)


def _replace_array(shape_change=0, dtype=None, drop=False):
    def edit(f):
        import numpy as np

        name = sorted(f["arrays"])[0]
        a = f["arrays"][name][()]
        del f["arrays"][name]
        if drop:
            return
        if shape_change:
            a = np.resize(a, (a.shape[0] + shape_change, *a.shape[1:]))
        f["arrays"].create_dataset(name, data=a.astype(dtype) if dtype else a)
    return edit


CHECKPOINT_EDITS = {
    "kill-rate": (_edit_params, "other parameters than the run: neut_kill_rate = 0.002"),
    "seed": (_edit_attr("seed", __import__("numpy").uint64(4)), "holds seed 4, the run 3"),
    "version": (_edit_attr("tumorca_version", "9.9.9"), "written by tumorca 9.9.9"),
    "lattice": (_edit_attr("shape", __import__("numpy").array([48, 48])), "holds a 48x48 lattice, the run 24x24"),
    "step": (_edit_attr("step_index", __import__("numpy").int64(10 ** 6)), "outside the run's 0..40"),
    "run-id": (_edit_attr("run_id", "someone-else"), "belongs to another run"),
    "array-shape": (_replace_array(shape_change=1), "the run's"),
    "array-type": (_replace_array(dtype="float64"), "the run's"),
    "array-missing": (_replace_array(drop=True), "holds arrays"),
    "bad-params": (_edit_attr("parameters", '{"dt_min": -1}'), "invalid parameters"),
    "not-json": (_edit_attr("parameters", "{"), "damaged"),
}


@pytest.mark.parametrize("edit", sorted(CHECKPOINT_EDITS))
def test_resume_refuses_a_checkpoint_that_does_not_match_the_run(interrupted, tmp_path, edit):
    """Before: an edited checkpoint was resumed from, and the frames after it computed with its values."""
    import h5py

    from tumorca.io.layout import sidecar_paths

    run = _copy_run(interrupted, tmp_path)
    ck = sidecar_paths(run)[1]
    change, expected = CHECKPOINT_EDITS[edit]
    with h5py.File(ck, "r+") as f:
        change(f)
    before = _digest(run, ck)
    err = _one_line_error(_invoke("run", "--resume", "-o", str(run), "-q", "--threads", "1"), 2)
    assert "checkpoint" in err and expected in err, err
    assert _digest(run, ck) == before


def test_resume_refuses_a_checkpoint_whose_data_fail_their_checksum(interrupted, tmp_path):
    """Fletcher32 on the checkpoint arrays: a flipped byte in the data is found, not resumed from."""
    import h5py

    from tumorca.io.layout import sidecar_paths

    run = _copy_run(interrupted, tmp_path)
    ck = sidecar_paths(run)[1]
    with h5py.File(ck, "r") as f:
        names = [n for n, ds in f["arrays"].items() if ds.chunks and ds.size > 16]
        assert names and all(f["arrays"][n].fletcher32 for n in names)
        info = f["arrays"][names[0]].id.get_chunk_info(0)
    raw = bytearray(ck.read_bytes())
    for i in range(info.byte_offset + info.size // 2, info.byte_offset + info.size // 2 + 4):
        raw[i] ^= 0xFF
    ck.write_bytes(bytes(raw))
    before = _digest(run, ck)
    err = _one_line_error(_invoke("run", "--resume", "-o", str(run), "-q", "--threads", "1"))
    assert "checkpoint" in err and "damaged" in err, err
    assert _digest(run, ck) == before


def test_resume_of_an_unedited_checkpoint_still_works(interrupted, tmp_path):
    run = _copy_run(interrupted, tmp_path)
    res = _invoke("run", "--resume", "-o", str(run), "-q", "--threads", "1")
    assert res.exit_code == 0, res.stderr
    from tumorca.io import RunReader

    with RunReader(run) as r:
        assert r.status.state == "complete"


# -- 3. resume on a disk that holds the file but not a copy of it -----------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root; skipped elsewhere): a disk that fills up for real."""
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _hidden(d) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_resume_refused_when_the_copy_does_not_fit_and_no_temporary_is_left(small_disk):
    """Before: the space check counted the file itself as free; the resume's full-size copy filled the disk,
    crashed (exit 139) and left a hidden temporary that made the next resume fail too."""
    import shutil

    from runfile_util import run_cli

    from tumorca import FIELD_NAMES, Params, runner
    from tumorca.io.layout import RunPlan

    run = small_disk / "r.h5"

    plan = RunPlan(shape=(48, 48), params=Params(), seed=4, steps=1500, every=50, fields=FIELD_NAMES,
                   compression="none", checkpoint_every=100, preset="")
    polls = iter(range(10 ** 9))
    runner.run(plan, run, provenance={"command_line": "test"}, threads=1, stop=lambda: next(polls) >= 1400)
    free, size = shutil.disk_usage(small_disk).free, run.stat().st_size
    assert free < size, (free, size)  # the copy cannot fit: the point of the test
    before = _digest(run)
    res = run_cli("run", "--resume", "-o", str(run), "-q", "--threads", "1", timeout=60)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "resuming rewrites" in lines[0] and "free" in lines[0], res.stderr
    assert _digest(run) == before and _hidden(small_disk) == []


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_stale_temporaries_of_dead_writers_are_removed(interrupted, tmp_path):
    """Before: hidden temporaries of killed writers stayed forever (as large as the run)."""
    import subprocess
    import sys

    from runfile_util import run_cli

    run = _copy_run(interrupted, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    from tumorca.io.layout import sidecar_paths

    stale = [tmp_path / f".r.h5.{dead.pid}.0123abcd.tmp", tmp_path / f".{sidecar_paths(run)[1].name}.{dead.pid}.tmp"]
    live = tmp_path / f".r.h5.{os.getpid()}.89abcdef.tmp"  # a live writer's: kept
    for p in (*stale, live):
        p.write_bytes(b"x" * 1000)
    res = run_cli("run", "--resume", "-o", str(run), "-q", "--threads", "1", timeout=60)
    assert res.returncode == 0, res.stderr
    assert [p.exists() for p in stale] == [False, False] and live.exists()


# -- 4. damaged files: never a hang, never "complete" ------------------------------------------------------------------
def run_batch(cases: list[tuple[list[str], str | None]], timeout: float = 300) -> list[dict]:
    """``tests/cli_batch.py`` in a subprocess: every case's exit status, stderr and seconds."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("cli_batch.py"))],
                          input=json.dumps([[list(a), c] for a, c in cases]), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    from tumorca import Params, runner
    from tumorca.io.layout import RunPlan

    path = tmp_path_factory.mktemp("complete") / "c.h5"
    plan = RunPlan(shape=(32, 32), params=Params(init_tumor_radius=4.0, init_vessel_spacing=10), seed=1, steps=60,
                   every=10, fields=("o2", "vegf_free"), compression="gzip", checkpoint_every=20, preset="")
    assert runner.run(plan, path, provenance={"command_line": "test"}, threads=1).status == "complete"
    return path


def _damaged_copies(src, d) -> dict[str, object]:
    data = src.read_bytes()
    n = len(data)
    out = {}
    for frac in (0.02, 0.3, 0.6, 0.9, 0.999):
        p = d / f"trunc{frac}.h5"
        p.write_bytes(data[:int(n * frac)])
        out[p.name] = p
    for frac in (0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.97):
        b = bytearray(data)
        for k in range(int(n * frac), int(n * frac) + 64):
            b[k] ^= 0x5A
        p = d / f"corrupt{frac}.h5"
        p.write_bytes(bytes(b))
        out[p.name] = p
    return out


@pytest.mark.subprocess
@pytest.mark.timeout(300)
def test_damaged_files_give_one_line_quickly_and_truncated_ones_are_never_complete(complete_run, tmp_path):
    """Before: 19 of 72 damaged-file commands hung (HDF5's SWMR retry loop), 6 gave tracebacks, and a truncated
    run was 'complete' to inspect."""
    files = _damaged_copies(complete_run, tmp_path)
    before = {k: _digest(p) for k, p in files.items()}
    commands = [["inspect"], ["inspect", "--json"], ["inspect", "--verify"], ["summary"],
                ["run", "--resume", "-q", "--threads", "1", "-o"]]
    cases = [([*cmd, str(p)], str(tmp_path)) for p in files.values() for cmd in commands]
    results = run_batch(cases)
    for (argv, _), r in zip(cases, results):
        name = argv[-1].rsplit("/", 1)[-1]
        assert r["traceback"] == "" and "Traceback" not in r["stderr"], (argv, r["traceback"] or r["stderr"])
        assert r["seconds"] < 10, (argv, r["seconds"])
        err = r["stderr"].strip().splitlines()
        if r["code"] != 0:
            assert len(err) == 1 and err[0].startswith("tumorca: error: "), (argv, r["stderr"])
        if name.startswith("trunc"):
            assert r["code"] != 0, (argv, r["stdout"])
            if argv[0] == "inspect" and r["code"] == 1:
                assert "damaged" in err[0] and ("damaged" in r["stdout"] or "--json" not in argv), (argv, r)
        if argv[0] == "run":  # a complete run, damaged or not, is never resumed
            assert r["code"] != 0, (argv, r["stderr"])
    assert {k: _digest(p) for k, p in files.items()} == before


# -- 5. sidecars named from the whole file name ---------------------------------------------------------------------
def test_outputs_with_the_same_stem_keep_their_own_sidecars(tmp_path):
    """Before: m.h5 and m.hdf5 both used m.ckpt.h5 and m.xdmf: starting one replaced the other's checkpoint."""
    from tumorca.io import RunReader
    from tumorca.io.layout import sidecar_paths

    a, b = tmp_path / "m.h5", tmp_path / "m.hdf5"
    _interrupted_run(a)
    ck_a = sidecar_paths(a)[1]
    kept = _digest(ck_a)
    _interrupted_run(b, stop_after=15)
    assert sidecar_paths(a) != sidecar_paths(b) and _digest(ck_a) == kept
    for p in (a, b):
        xdmf, ck = sidecar_paths(p)
        assert xdmf.read_text().count(f"{p.name}:/") > 0 and ck.exists()
        with RunReader(p) as r:
            assert r.checkpoint_path == ck and r.checkpoint()["step_index"] in (15, 25)
    res = _invoke("run", "--resume", "-o", str(a), "--threads", "1")
    assert res.exit_code == 0 and "from checkpoint at step 25" in res.stderr, res.stderr


def test_a_checkpoint_under_the_old_stem_name_is_still_resumed_from(tmp_path):
    """Runs begun by an earlier version have OUT.ckpt.h5: it is used when its run id is this run's."""
    from tumorca.io.layout import legacy_checkpoint_path, sidecar_paths

    run = tmp_path / "old.h5"
    _interrupted_run(run)
    sidecar_paths(run)[1].rename(legacy_checkpoint_path(run))
    res = _invoke("run", "--resume", "-o", str(run), "--threads", "1")
    assert res.exit_code == 0 and "from checkpoint at step 25" in res.stderr, res.stderr


# -- 6. resume through a symlink ---------------------------------------------------------------------------------------
def test_resume_through_a_symlink_continues_the_target(interrupted, tmp_path):
    """Before: the link's name hid the checkpoint, the run restarted from step 0, the link was replaced by a
    regular file and the real file stayed cut off."""
    from tumorca.io import RunReader

    (tmp_path / "data").mkdir()
    real = _copy_run(interrupted, tmp_path / "data")
    link = tmp_path / "link.h5"
    link.symlink_to(real)
    res = _invoke("run", "--resume", "-o", str(link), "--threads", "1")
    assert res.exit_code == 0 and "from checkpoint at step 25" in res.stderr, res.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    with RunReader(real) as r:
        assert r.status.state == "complete"
    assert not (tmp_path / "link.h5.ckpt.h5").exists()


# -- 7. the cost of a frame does not grow with the frames before it ---------------------------------------------------
def _bytes_written_per_frame(path, frames: int) -> float:
    """Bytes this process wrote (``wchar``) per frame of a run of one-step frames on a tiny lattice."""
    from tumorca import Params, runner
    from tumorca.io.layout import RunPlan

    def wchar() -> int:
        with open("/proc/self/io") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("wchar"))

    plan = RunPlan(shape=(8, 8), params=Params(init_tumor_radius=2.0, init_vessel_spacing=4), seed=1, steps=frames,
                   every=1, fields=(), compression="none", checkpoint_every=0, preset="")
    before = wchar()
    assert runner.run(plan, path, provenance={"command_line": "test"}, threads=1).status == "complete"
    return (wchar() - before) / frames


@pytest.mark.timeout(120)
def test_frames_cost_constant_bytes_and_the_index_names_all_of_them(tmp_path):
    """Before: the XDMF index was rewritten whole after every frame: O(n^2) bytes, 343 s for 8000 frames."""
    import xml.etree.ElementTree as ET

    from tumorca.io.layout import sidecar_paths

    if not os.path.exists("/proc/self/io"):
        pytest.skip("needs /proc/self/io")
    small = _bytes_written_per_frame(tmp_path / "small.h5", 60)
    large = _bytes_written_per_frame(tmp_path / "large.h5", 360)
    assert large < 1.5 * small, (small, large)  # before: about 3.5x
    grids = ET.parse(sidecar_paths(tmp_path / "large.h5")[0]).getroot().findall("./Domain/Grid/Grid")
    assert len(grids) == 361  # at the end the index names every frame


# -- 8. one writer per output ------------------------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_a_second_writer_of_the_same_output_is_refused(tmp_path, mode):
    """Before: two --overwrite (or two --resume) runs started together both exited 0, one result silently
    replacing the other."""
    import time

    from runfile_util import LONG_ARGS, run_cli, start_cli

    from tumorca.io import RunReader

    out = tmp_path / "x.h5"
    if mode == "--resume":  # a run of 1500 steps stopped (as by Ctrl-C) after 100
        from tumorca import Params, runner
        from tumorca.io.layout import RunPlan

        plan = RunPlan(shape=(40, 40), params=Params(init_vessel_spacing=20), seed=11, steps=1500, every=20,
                       fields=("o2",), compression="gzip", checkpoint_every=80, preset="")
        polls = iter(range(10 ** 9))
        runner.run(plan, out, provenance={"command_line": "test"}, threads=1, stop=lambda: next(polls) >= 100)
        args = ["run", "--resume", "-o", str(out), "-q", "--threads", "1"]
    else:
        res = run_cli("run", "-o", str(out), *LONG_ARGS, "--steps", "100", "-q")
        assert res.returncode == 0, res.stderr
        args = ["run", "-o", str(out), *LONG_ARGS, "--steps", "1500", "--overwrite", "-q"]
    lock = tmp_path / ".x.h5.lock"
    first = start_cli(*args)
    try:
        deadline = time.monotonic() + 60
        while not lock.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = run_cli(*args, timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode != 0 and len(lines) == 1, second.stderr
        assert "being written" in lines[0] and "Traceback" not in second.stderr, second.stderr
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    with RunReader(out) as r:
        assert r.status.state == "complete"
    assert not lock.exists()


# -- 9. tracebacks and runaway resources -------------------------------------------------------------------------------
def _bad_layout(kind):
    def edit(f):
        import numpy as np

        if kind == "frame-shape":
            del f["o2"]
            f.create_dataset("o2", data=np.zeros((3, 1, 5, 5), np.float32), maxshape=(None, 1, 5, 5))
        elif kind == "timeseries-2d":
            name = sorted(f["timeseries"])[1]
            del f["timeseries"][name]
            f["timeseries"].create_dataset(name, data=np.zeros((3, 2)))
        elif kind == "no-run":
            del f["run"]
        elif kind == "parameters":
            f.attrs["parameters"] = "{not json"
        elif kind == "seed-string":
            f.attrs["seed"] = "three"
        elif kind == "no-parameters":
            del f.attrs["parameters"]
    return edit


@pytest.mark.parametrize("kind", ["frame-shape", "timeseries-2d", "no-run", "parameters", "seed-string",
                                  "no-parameters"])
def test_hand_edited_run_files_give_one_line_to_inspect_and_resume(interrupted, tmp_path, kind):
    """Before: tracebacks from inspect (missing or malformed parameters, a string seed, no /run) and from
    --resume (dataset shapes that do not match)."""
    import h5py

    run = _copy_run(interrupted, tmp_path)
    with h5py.File(run, "r+") as f:
        _bad_layout(kind)(f)
    before = _digest(run)
    for args in (["inspect", str(run)], ["inspect", "--json", str(run)],
                 ["run", "--resume", "-o", str(run), "-q", "--threads", "1"]):
        _one_line_error(_invoke(*args))
    assert _digest(run) == before


def test_limits_that_stop_runaway_resources(tmp_path):
    """Before: --config /dev/zero grew to 24 GB, replicates = 10**11 to 1.5 GB in a dry run, a 3-million-run grid
    ran past 120 s, --threads 5000 was accepted and 10**20 threads gave a traceback."""
    import time

    big_grid = "seed = 1\nsteps = 5\n[grid]\n" + "\n".join(
        f"{k} = [{', '.join(str(0.001 * (i + 1)) for i in range(150))}]"
        for k in ("neut_kill_rate", "sprout_rate", "ifn_K"))
    files = {"reps.toml": "seed = 1\nsteps = 5\nreplicates = 100000000000\n", "grid.toml": big_grid,
             "deep.toml": "seed = 1\nx = " + "[" * 3000 + "]" * 3000 + "\n",
             "deep-params.toml": "a = " + "[" * 3000 + "]" * 3000 + "\n", "tables.toml": "[[params]]\nx = 1\n",
             "five.toml": "params = 5\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    small = ["--shape", "16x16", "--steps", "3", "-q"]
    cases = [
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--config", "/dev/zero"],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--config", str(tmp_path / "deep-params.toml")],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--config", str(tmp_path / "tables.toml")],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--config", str(tmp_path / "five.toml")],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--threads", "5000"],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--threads", "99999999999999999999"],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--checkpoint-every", "99999999999999999999"],
        ["run", "-o", str(tmp_path / "a.h5"), *small[:2], "--days", "1e300", "-q"],
        ["run", "-o", str(tmp_path / "a.h5"), *small, "--set", "sprout_rate=" + "[" * 3000 + "]" * 3000],
        ["sweep", str(tmp_path / "reps.toml"), "-o", str(tmp_path / "o"), "--dry-run"],
        ["sweep", str(tmp_path / "grid.toml"), "-o", str(tmp_path / "o"), "--dry-run"],
        ["sweep", str(tmp_path / "deep.toml"), "-o", str(tmp_path / "o"), "--dry-run"],
        ["sweep", "/dev/zero", "-o", str(tmp_path / "o"), "--dry-run"],
    ]
    for args in cases:
        t0 = time.perf_counter()
        _one_line_error(_invoke(*args))
        assert time.perf_counter() - t0 < 10, args
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)


@pytest.mark.subprocess
@pytest.mark.timeout(120)
def test_long_and_non_utf8_file_names(tmp_path):
    """Before: a valid 240-byte name failed (its temporary name passed 255 bytes); a non-UTF-8 name gave a
    traceback."""
    from runfile_util import run_cli

    for name in ("n" * 237 + ".h5", os.fsdecode(b"\xff\xfe.h5")):
        out = tmp_path / name
        res = run_cli("run", "-o", str(out), "--shape", "16x16", "--steps", "20", "--every", "10",
                      "--checkpoint-every", "10", "--threads", "1", "-q", timeout=60)
        assert res.returncode == 0 and res.stderr == "", res.stderr
        res = run_cli("inspect", "--json", str(out), timeout=60)  # JSON: the name's bytes as escapes
        assert res.returncode == 0 and '"detail": "complete: 20 steps' in res.stdout, res.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


# -- 10. MPI holes -----------------------------------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.timeout(60)
def test_a_signal_ends_a_run_whose_step_hangs():
    """Before: SIGTERM only set a flag, which a hung step (an MPI rank waiting for a dead partner) never read."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import time, sys\n"
            "from tumorca.cli._common import StopOnSignal\n"
            "StopOnSignal.GRACE_MIN = 2.0\n"
            "with StopOnSignal() as stop:\n"
            "    for _ in range(3):\n"
            "        stop(); time.sleep(0.01)\n"
            "    print('hung', flush=True)\n"
            "    time.sleep(600)  # a step that never ends\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "hung"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - t0 < 15, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "did not stop within 2 s" in lines[0], err


def _mpiexec():
    import shutil
    import sysconfig

    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=sysconfig.get_path("scripts"))
    if exe is None:
        pytest.skip("no mpiexec")
    pytest.importorskip("mpi4py")
    return exe


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(180)
def test_mpi_failed_overwrite_keeps_the_old_checkpoint(interrupted, tmp_path):
    """Before: an MPI --overwrite that failed setting up its files had already removed the old run's checkpoint."""
    import subprocess
    import sys

    from tumorca.io.layout import sidecar_paths

    run = _copy_run(interrupted, tmp_path)
    (tmp_path / "r.h5.ranks").write_text("in the way")  # the rank directory cannot be made
    before = _digest(run, sidecar_paths(run)[1])
    res = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "tumorca.cli", "run", "-o", str(run),
                          "--overwrite", "--shape", "24x24", "--set", "push_range=0", "--steps", "20", "--threads",
                          "1", "-q"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert _digest(run, sidecar_paths(run)[1]) == before


@pytest.mark.mpi
@pytest.mark.subprocess
@pytest.mark.timeout(240)
def test_mpi_resume_keeps_the_run_id_in_its_rank_files(interrupted, tmp_path):
    """Before: the frame rank files of a resumed run carried a new run id, not the run's."""
    import subprocess
    import sys

    import h5py

    run = _copy_run(interrupted, tmp_path)
    res = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "tumorca.cli", "run", "--resume", "-o",
                          str(run), "--threads", "1", "-q"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    with h5py.File(run, "r") as f:
        run_id = f.attrs["run_id"]
    files = sorted((tmp_path / "r.h5.ranks").glob("*/rank-*.h5"))
    assert files
    for p in files:
        with h5py.File(p, "r") as f:
            assert f.attrs["run_id"] == run_id, p


# -- kill -9 at random moments, resumed bit for bit ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.timeout(600)
def test_kill_9_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """8 SIGKILLs at random moments of a run (seeded, so a failure repeats), each followed by --resume (or a
    fresh start if the file was not there yet): every result equals the uninterrupted run, and nothing hidden is
    left behind."""
    import random
    import signal
    import time

    from runfile_util import LONG_ARGS, assert_same_run, run_cli, start_cli

    ref = tmp_path / "ref.h5"
    t0 = time.monotonic()
    res = run_cli("run", "-o", str(ref), *LONG_ARGS, "-q")
    assert res.returncode == 0, res.stderr
    span = time.monotonic() - t0
    rng = random.Random(16)
    for i in range(8):
        d = tmp_path / f"k{i}"
        d.mkdir()
        out = d / "x.h5"
        proc = start_cli("run", "-o", str(out), *LONG_ARGS, "-q")
        time.sleep(rng.uniform(0.05, span))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if out.exists():
            res = run_cli("run", "--resume", "-o", str(out), "-q", timeout=120)
            if res.returncode == 2 and "finished run" in res.stderr:  # it completed before the kill
                pass
            else:
                assert res.returncode == 0, (i, res.stderr)
        else:
            res = run_cli("run", "-o", str(out), *LONG_ARGS, "-q", timeout=120)
            assert res.returncode == 0, (i, res.stderr)
        assert assert_same_run(ref, out) > 10, i
        assert [p.name for p in d.iterdir() if p.name.startswith(".")] == [], i
