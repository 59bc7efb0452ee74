"""Kept states and branches (issue 17, part 2): ``tumorca run --keep-states`` and ``tumorca run --from RUN --at-step
N``, bit-identity with the parent, lineage, resume of a branch, bad input, and format 2.0 files."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tumorca import Params, Simulation
from tumorca.cli import cli
from tumorca.io import RunPlan, RunReader, sidecar_paths
from tumorca.io.layout import FORMAT_VERSION
from tumorca.runner import resume, run
from runfile_util import assert_same_run

#: The parent: 24x24, 30 steps of 30 min, a frame every 3 steps, states kept at steps 10 and 12 (day 0.25).
PARENT = ["--shape", "24x24", "--set", "init_vessel_spacing=12", "--steps", "30", "--every", "3",
          "--checkpoint-every", "6", "--seed", "3", "--threads", "1", "--keep-states", "10",
          "--keep-states-days", "0.25"]
PROV = {"command_line": "pytest"}


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: str):
    res = invoke(*args, "--quiet") if args[0] == "run" else invoke(*args)
    assert res.exit_code == 0, (res.stderr, res.exception)
    return res


def assert_clean_error(res, *fragments: str) -> None:
    assert res.exit_code != 0 and res.exception is not None, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: "), res.stderr
    assert "Traceback" not in res.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def rows(path) -> dict[int, dict[str, object]]:
    """Time-series rows by step."""
    with RunReader(path) as r:
        ts = r.timeseries()
    return {int(s): {k: v[i] for k, v in ts.items()} for i, s in enumerate(ts["step"])}


def frames(path) -> dict[int, dict[str, bytes]]:
    """Frames by step: every layer's bytes, and the time."""
    with RunReader(path) as r:
        return {int(s): {"time": float(r.times[i]), **{n: r.frame(n, i).tobytes() for n in r.layers}}
                for i, s in enumerate(r.steps)}


def assert_continues(parent, branch, first: int) -> None:
    """The branch's rows and frames equal the parent's at every step both hold, from ``first`` on."""
    pr, br = rows(parent), rows(branch)
    assert min(br) == first
    common = [s for s in br if s in pr]
    assert common == list(range(first, max(br) + 1))
    for s in common:
        for k in pr[s]:
            assert pr[s][k] == br[s][k], (s, k)
    pf, bf = frames(parent), frames(branch)
    shared = [s for s in bf if s in pf]
    assert len(shared) >= 2
    for s in shared:
        assert pf[s] == bf[s], s


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    d = tmp_path_factory.mktemp("parent")
    ok("run", "-o", d / "p.h5", *PARENT)
    return d / "p.h5"


def test_plan_of_a_branch():
    p = RunPlan(shape=(24, 24), params=Params(), seed=1, steps=30, every=4, start_step=10, keep_states=(20, 15))
    assert p.frame_steps == (10, 12, 16, 20, 24, 28, 30)  # multiples of every: the parent's frame steps
    assert p.n_frames == 7 and p.frames_until(10) == 1 and p.frames_until(12) == 2 and p.frames_until(30) == 7
    assert p.n_rows == 21 and p.keep_states == (15, 20)
    assert not p.is_checkpoint(10)
    assert RunPlan.from_attrs(p.to_attrs()) == p
    with pytest.raises(Exception, match="cannot keep the state at step 10"):
        RunPlan(shape=(24, 24), params=Params(), seed=1, steps=30, every=4, start_step=10, keep_states=(10,))
    with pytest.raises(Exception, match="starts at step 30"):
        RunPlan(shape=(24, 24), params=Params(), seed=1, steps=30, every=4, start_step=30)


def test_kept_states_equal_the_engine(parent):
    with RunReader(parent) as r:
        kept = r.kept_states()
        assert [k["step"] for k in kept] == [10, 12] and all(k["on_disk"] for k in kept)
        assert 0 < kept[0]["stored_bytes"] < kept[0]["bytes"]
        assert r.state_steps() == [0, 10, 12, 30] and r.plan.keep_states == (10, 12)
        sim = Simulation((24, 24), Params(init_vessel_spacing=12), seed=3, threads=1)
        for step in (10, 12):
            sim.step(step - sim.step_index)
            got = r.state_at(step)
            assert got["step_index"] == step
            for name, a in sim.get_state()["arrays"].items():
                assert np.array_equal(np.reshape(got["arrays"][name], a.shape), a), (step, name)
    res = ok("inspect", parent)
    assert "kept states: steps 10, 12 (2 of 2 on disk)" in res.stdout and "uncompressed" in res.stdout
    msg = invoke("run", "-o", parent.with_name("msg.h5"), *PARENT).stderr
    assert "2 kept states (steps 10,12; 19.7 KiB each, 39.4 KiB in all, uncompressed)" in msg


def test_branch_without_changes_is_the_parent_bit_for_bit(parent):
    d = parent.parent
    ok("run", "-o", d / "b.h5", "--from", parent, "--at-step", "10", "--threads", "1", "--keep-states", "20")
    assert_continues(parent, d / "b.h5", 10)
    with RunReader(d / "b.h5") as r:
        assert r.status.state == "complete" and r.first_step == 10 and r.plan.steps == 30
        assert r.plan.seed == 3 and r.plan.every == 3 and r.attrs["format_version"] == FORMAT_VERSION
        assert r.has_start_state() and r.start_state()["step_index"] == 10
    # a branch of the branch, at a day
    ok("run", "-o", d / "bb.h5", "--from", d / "b.h5", "--at-step", "20", "--threads", "1")
    assert_continues(parent, d / "bb.h5", 20)


def test_branch_at_a_day_and_at_the_initial_state(parent):
    d = parent.parent
    ok("run", "-o", d / "day.h5", "--from", parent, "--at-day", "0.25", "--threads", "1", "--steps", "6")
    assert_continues(parent, d / "day.h5", 12)
    # from the built-in initial state: the whole parent again (its frames included)
    ok("run", "-o", d / "zero.h5", "--from", parent, "--at-step", "0", "--threads", "1")
    assert_continues(parent, d / "zero.h5", 0)


def test_branch_from_the_final_state_continues_the_run(parent):
    d = parent.parent
    ok("run", "-o", d / "end.h5", "--from", parent, "--at-step", "30", "--steps", "4", "--threads", "1")
    longer = PARENT[:PARENT.index("--steps")] + ["--steps", "34"] + PARENT[PARENT.index("--steps") + 2:]
    ok("run", "-o", d / "long.h5", *longer)
    assert_continues(d / "long.h5", d / "end.h5", 30)


def test_therapy_branch_differs_after_the_branch_step(parent):
    d = parent.parent
    ok("run", "-o", d / "nochange.h5", "--from", parent, "--at-step", "12", "--threads", "1")
    ok("run", "-o", d / "ifn.h5", "--from", parent, "--at-step", "12", "--preset", "ifnb-therapy", "--set",
       "ifn_therapy_start=0", "--threads", "1")
    a, b = rows(d / "nochange.h5"), rows(d / "ifn.h5")
    assert a[12] == b[12]  # the same state at the branch step
    assert frames(d / "nochange.h5")[12] == frames(d / "ifn.h5")[12]
    assert any(a[s][k] != b[s][k] for s in range(13, 31) for k in a[s])
    assert all(b[s]["ifn_level"] > a[s]["ifn_level"] for s in range(13, 31))
    with RunReader(d / "ifn.h5") as r:
        assert json.loads(r.attrs["parent_changes"]) == {"ifn_therapy_level": [0.0, 3.0]}
        assert r.plan.preset == "ifnb-therapy"
    # --preset applies only the preset's changes: wild-type changes nothing in a knockout, and the branch says
    # what it is (a knockout, continued), not "wild-type"
    ok("run", "-o", d / "ko.h5", *PARENT[:-4], "--preset", "ifnb-knockout")
    ok("run", "-o", d / "ko-wt.h5", "--from", d / "ko.h5", "--at-step", "30", "--steps", "2", "--preset",
       "wild-type", "--threads", "1")
    with RunReader(d / "ko-wt.h5") as r:
        assert r.plan.preset == "ifnb-knockout+wild-type" and r.plan.params.ifn_level == 0.0
        assert json.loads(r.attrs["parent_changes"]) == {}


def test_lineage_recorded_and_shown(parent, tmp_path):
    p = tmp_path / "p.h5"
    shutil.copy(parent, p)
    ok("run", "-o", tmp_path / "b.h5", "--from", p, "--at-step", "10", "--set", "neut_kill_rate=0.002",
       "--seed", "9", "--threads", "1", "--keep-states", "12", "--steps", "4")
    ok("run", "-o", tmp_path / "c.h5", "--from", tmp_path / "b.h5", "--at-step", "12", "--steps", "2",
       "--threads", "1")
    with RunReader(tmp_path / "b.h5") as r, RunReader(p) as pr:
        a = r.attrs
        assert a["parent_path"] == str(p) and a["parent_realpath"] == os.path.realpath(p)
        assert a["parent_run_id"] == pr.attrs["run_id"] and a["parent_step"] == 10
        assert a["parent_sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        changes = json.loads(a["parent_changes"])
        assert changes["seed"] == [3, 9] and changes["neut_kill_rate"][1] == 0.002
    out = ok("inspect", tmp_path / "c.h5").stdout
    assert f"branch of:   {tmp_path / 'b.h5'} (run" in out and "at step 12" in out
    assert f"which is a branch of: {p} (run" in out and "neut_kill_rate" in out and "seed 3 -> 9" in out
    info = json.loads(ok("inspect", "--json", tmp_path / "c.h5").stdout)
    assert [x["state"] for x in info["lineage"]] == ["present", "present"] and info["start_step"] == 12
    p.unlink()
    out = ok("inspect", tmp_path / "c.h5").stdout
    assert f"{p} [missing]" in out


@pytest.mark.parametrize("drop_checkpoint", [False, True], ids=["from-checkpoint", "from-start"])
def test_resume_of_an_interrupted_branch_equals_the_uninterrupted_one(parent, tmp_path, drop_checkpoint):
    with RunReader(parent) as r:
        state = r.state_at(10)
        row = {k: v[10] for k, v in r.timeseries().items()}
        plan = RunPlan(shape=r.plan.shape, params=r.plan.params, seed=3, steps=24, every=3, checkpoint_every=4,
                       start_step=10, keep_states=(13, 20))
    whole, cut = tmp_path / "whole.h5", tmp_path / "cut.h5"
    lineage = {"parent_run_id": "x", "parent_step": 10}
    run(plan, whole, provenance=PROV, threads=1, start_state=state, start_summary=row, lineage=lineage)
    calls = iter(range(100))
    out = run(plan, cut, provenance=PROV, threads=1, start_state=state, start_summary=row, lineage=lineage,
              stop=lambda: next(calls) >= (5 if drop_checkpoint else 7))
    assert out.status == "interrupted"
    with RunReader(cut) as r:
        assert [k["on_disk"] for k in r.kept_states()] == [True, False]
    if drop_checkpoint:  # as if cut off before its first checkpoint: resume starts from /start, and the kept
        sidecar_paths(cut)[1].unlink()  # state of step 13 is dropped and computed again
    assert resume(cut, provenance=PROV, threads=1).status == "complete"
    assert_same_run(whole, cut)
    with RunReader(cut) as r:
        assert r.lineage == {"parent_run_id": "x", "parent_step": 10}
    assert_continues(parent, cut, 10)


def test_resume_through_the_cli(parent, tmp_path):
    out = tmp_path / "b.h5"
    ok("run", "-o", out, "--from", parent, "--at-step", "10", "--threads", "1")
    with h5py.File(out, "r+") as f:  # make it look cut off at its start (status running, one row)
        f["run/status"][()] = b"running"
        f.attrs["writer_pid"] = np.int64(2 ** 22 + 7)
    # --steps counts from the branch's start, as it did with --from (20 steps from step 10, to step 30)
    res = invoke("run", "--resume", "-o", out, "--threads", "1", "--steps", "21")
    assert res.exit_code == 2 and "steps 30, not 31" in res.stderr, res.stderr
    res = invoke("run", "--resume", "-o", out, "--threads", "1", "--steps", "20")
    assert res.exit_code == 0, res.stderr
    assert "complete" in ok("inspect", out).stdout
    assert_continues(parent, out, 10)


@pytest.mark.parametrize("args, fragments", [
    (["--from", "{d}/nope.h5", "--at-step", "10"], ["--from", "does not exist"]),
    (["--from", "{d}/p.h5.xdmf", "--at-step", "10"], ["is not an HDF5 file"]),
    (["--from", "{p}", "--at-step", "11"], ["keeps no state at step 11", "10 (day", "12 (day"]),
    (["--from", "{p}", "--at-day", "0.3"], ["not a whole step"]),
    (["--from", "{p}", "--at-day", "0.5"], ["keeps no state at step 24"]),
    (["--from", "{p}"], ["--at-step N or --at-day D"]),
    (["--from", "{p}", "--at-step", "10", "--at-day", "0.25"], ["--at-step N or --at-day D"]),
    (["--at-step", "10"], ["go with --from"]),
    (["--from", "{p}", "--at-step", "10", "--resume"], ["--resume"]),
    (["--from", "{p}", "--at-step", "10", "--shape", "24x24"], ["parent's lattice"]),
    (["--from", "{p}", "--at-step", "10", "--set", "bogus_key=1"], ["unknown parameter 'bogus_key'"]),
    (["--from", "{p}", "--at-step", "10", "--set", "dt_min=10"], ["dt_min"]),
    (["--from", "{p}", "--at-step", "10", "--keep-states", "5"], ["--keep-states: step 5", "11..30"]),
    (["--from", "{p}", "--at-step", "30"], ["where", "ends", "--steps"]),
])
def test_bad_branch_input(parent, tmp_path, args, fragments):
    before = {p.name: p.read_bytes() for p in parent.parent.iterdir() if p.is_file()}
    args = [a.format(d=parent.parent, p=parent) for a in args]
    res = invoke("run", "-o", tmp_path / "out.h5", *args)
    assert_clean_error(res, *fragments)
    assert not (tmp_path / "out.h5").exists()
    assert {p.name: p.read_bytes() for p in parent.parent.iterdir() if p.is_file()} == before


def test_branch_refuses_an_incomplete_parent_and_itself(parent, tmp_path):
    cut = tmp_path / "cut.h5"
    shutil.copy(parent, cut)
    with h5py.File(cut, "r+") as f:  # the kept state of step 12 not reached yet
        f["states/filled"][1] = 0
        f["run/status"][()] = b"running"
        f.attrs["writer_pid"] = np.int64(2 ** 22 + 7)
    assert_clean_error(invoke("run", "-o", tmp_path / "b.h5", "--from", cut, "--at-step", "12"),
                       "has not reached step 12", "cut off")
    assert_clean_error(invoke("run", "-o", tmp_path / "b.h5", "--from", cut, "--at-step", "30"),
                       "keeps no state at step 30")
    before = parent.read_bytes()
    assert_clean_error(invoke("run", "-o", parent, "--from", parent, "--at-step", "10", "--overwrite"),
                       "is the parent run itself")
    assert parent.read_bytes() == before


@pytest.mark.parametrize("args, fragments", [
    (["--keep-states", "0"], ["--keep-states: 0 is not positive"]),
    (["--keep-states", "9"], ["--keep-states: step 9 is outside", "1..8"]),
    (["--keep-states", "a"], ["'a' is not a step"]),
    (["--keep-states-days", "0.01"], ["not a whole step"]),
])
def test_bad_keep_states(tmp_path, args, fragments):
    res = invoke("run", "-o", tmp_path / "k.h5", "--shape", "24x24", "--steps", "8", *args)
    assert_clean_error(res, *fragments)
    assert not (tmp_path / "k.h5").exists()


def test_format_2_0_file_reads(parent, tmp_path):
    """A file as tumorca wrote it before 2.1 (no start_step, keep_states, /states, /start) reads as a run from
    step 0 that keeps no state."""
    old = tmp_path / "old.h5"
    ok("run", "-o", old, "--shape", "24x24", "--steps", "6", "--every", "3", "--threads", "1", "--seed", "1")
    with h5py.File(old, "r+") as f:
        del f.attrs["start_step"], f.attrs["keep_states"]
        f.attrs["format_version"] = "2.0"
    with RunReader(old) as r:
        assert r.plan.start_step == 0 and r.plan.keep_states == () and r.first_step == 0
        assert r.status.state == "complete" and r.kept_states() == [] and r.lineage == {}
        assert r.state_steps() == [0, 6] and r.state_at(0) is None and r.state_at(6)["step_index"] == 6
    out = ok("inspect", old).stdout
    assert "format 2.0" in out and "kept states" not in out and "branch of" not in out
    ok("run", "-o", tmp_path / "b.h5", "--from", old, "--at-step", "6", "--steps", "3", "--threads", "1")
