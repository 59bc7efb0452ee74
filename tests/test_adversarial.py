"""The adversarial suite (issue 16): bad inputs of every kind, as a hostile or unlucky user gives them.

Each one must give one line on stderr (``tumorca: error: ...``), a non-zero exit within 10 s, no traceback, and
leave every file it was given as it was.  Command-line cases run in this process through Click's runner (they
only parse and check); cases on damaged and hand-edited files run in one real ``tumorca`` process
(``tests/cli_batch.py``), where a hang inside HDF5 would show as the batch's timeout.  Add a case for every new
way found to break the tools: the suite grows with the project.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tumorca.cli import cli

#: A small run for the cases that need a valid one to start from.
SMALL = ["--shape", "16x16", "--steps", "3", "--threads", "1", "-q"]

# -- command-line cases: (id, argv); "{d}" is the workspace ------------------------------------------------------
RUN = ["run", "-o", "{d}/new.h5", *SMALL]
CLI_CASES: list[tuple[str, list[str]]] = []


def _case(name: str, argv: list[str]) -> None:
    CLI_CASES.append((name, argv))


for i, shape in enumerate(["0x5", "5", "5x5x5x5", "ax5", "-3x5", "5x", "x", "1e3x5", "5x5x0", "5.5x5", "5,5",
                           "99999999999999999999x2", "100000x100000x100000"]):
    _case(f"run-shape-{i}", [*RUN, "--shape", shape])
for i, v in enumerate(["0", "-1", "abc", "1.5", "99999999999999999999", ""]):
    _case(f"run-steps-{i}", [*RUN, "--steps", v])
for i, v in enumerate(["0", "-1", "nan", "inf", "abc", "1e300", "-inf"]):
    _case(f"run-days-{i}", ["run", "-o", "{d}/new.h5", "--shape", "16x16", "-q", "--days", v])
_case("run-steps-and-days", [*RUN, "--days", "1"])
for i, v in enumerate(["0", "-5", "abc", "999999", "99999999999999999999"]):
    _case(f"run-every-{i}", [*RUN, "--every", v])
for i, v in enumerate(["-1", "abc", "1e20", "99999999999999999999"]):
    _case(f"run-checkpoint-every-{i}", [*RUN, "--checkpoint-every", v])
for i, v in enumerate(["-1", str(2 ** 64), "abc", "1.5", str(10 ** 30)]):
    _case(f"run-seed-{i}", [*RUN, "--seed", v])
for i, v in enumerate(["0", "-1", "5000", "99999999999999999999", "abc"]):
    _case(f"run-threads-{i}", [*RUN, "--threads", v])
for i, v in enumerate(["nope", "", "wild type", "ifnb_knockout "]):
    _case(f"run-preset-{i}", [*RUN, "--preset", v])
for i, v in enumerate(["noequals", "=1", "sprout_rate=", "nope=1", "sprout_rate=abc!", "sprout_rate=-1",
                       "sprout_rate=1e999", "dt_min=0", "init_vessel_spacing=1.5", "sprout_rate=[",
                       "o2_solver=nope", "sprout_rate=" + "[" * 3000 + "]" * 3000, "sprout_rate=true",
                       "sprout_rate=nan", "seed=3", "dx_um=-20", "init_vessels=spiral"]):
    _case(f"run-set-{i}", [*RUN, "--set", v])
for i, v in enumerate(["nope", "o2,nope", "O2", "o2,,vegf_free"]):
    _case(f"run-fields-{i}", [*RUN, "--fields", v])
_case("run-compression", [*RUN, "--compression", "zip"])
for i, v in enumerate(["2x", "0x1x1", "a", "1x1x1x1", "-1x2"]):
    _case(f"run-ranks-shape-{i}", [*RUN, "--ranks-shape", v])
_case("run-overwrite-and-resume", [*RUN, "--overwrite", "--resume"])
for i, out in enumerate(["{d}", "{d}/missing/x.h5", "{d}/good.h5/x.h5", "{d}/x.xdmf", "{d}/x.ckpt.h5",
                         "{d}/good.h5", "/proc/x.h5", "{d}/x.h5.ranks", ""]):
    _case(f"run-output-{i}", ["run", "-o", out, *SMALL])
for i, target in enumerate(["{d}/missing.h5", "{d}/text.txt", "{d}/plain.h5", "{d}/good.h5", "{d}/empty.h5",
                            "{d}/sub", "{d}/zeros.h5"]):
    _case(f"run-resume-{i}", ["run", "--resume", "-o", target, "-q"])
_case("run-resume-changed-seed", ["run", "--resume", "-o", "{d}/cut.h5", "--seed", "9"])
_case("run-resume-changed-shape", ["run", "--resume", "-o", "{d}/cut.h5", "--shape", "20x20"])
_case("run-resume-changed-param", ["run", "--resume", "-o", "{d}/cut.h5", "--set", "sprout_rate=0.5"])
_case("run-resume-changed-steps", ["run", "--resume", "-o", "{d}/cut.h5", "--steps", "7"])
for i, cfg in enumerate(["{d}/missing.toml", "{d}/sub", "/dev/zero", "{d}/latin1.toml", "{d}/malformed.toml",
                         "{d}/tables.toml", "{d}/five.toml", "{d}/unknown-key.toml", "{d}/bad-value.toml",
                         "{d}/deep.toml", "{d}/unknown-table.toml", "{d}/big.toml", "{d}/binary.toml"]):
    _case(f"run-config-{i}", [*RUN, "--config", cfg])
_case("run-unknown-option", [*RUN, "--nope"])
_case("run-extra-argument", [*RUN, "extra"])
_case("unknown-command", ["nope"])
_case("run-no-output", ["run", *SMALL])

for i, p in enumerate(["{d}/missing.h5", "{d}/sub", "{d}/empty.h5", "{d}/text.txt", "{d}/plain.h5",
                       "{d}/zeros.h5"]):
    _case(f"inspect-{i}", ["inspect", p])
_case("inspect-two-files", ["inspect", "{d}/good.h5", "{d}/good.h5"])
VIEW_OUT = "{d}/fig.png"
for i, argv in enumerate([
        ["plot", "{d}/missing.h5", "-o", VIEW_OUT], ["plot", "{d}/good.h5", "-o", VIEW_OUT, "--frame", "99"],
        ["plot", "{d}/good.h5", "-o", VIEW_OUT, "--layer", "nope"], ["plot", "{d}/good.h5", "-o", "{d}/fig.nope"],
        ["plot", "{d}/good.h5", "-o", VIEW_OUT, "--dpi", "0"], ["plot", "{d}/good.h5", "-o", "{d}/missing/f.png"],
        ["plot", "{d}/good.h5", "-o", VIEW_OUT, "--slice", "q=3"], ["plot", "{d}/good.h5", "-o", VIEW_OUT,
                                                                       "--project", "median"],
        ["plot", "{d}/text.txt", "-o", VIEW_OUT], ["plot", "{d}/good.h5", "-o", "{d}"],
        ["movie", "{d}/good.h5", "-o", "{d}/m.gif", "--fps", "0"], ["movie", "{d}/good.h5", "-o", "{d}/m.gif",
                                                                     "--fps", "nan"],
        ["movie", "{d}/good.h5", "-o", "{d}/m.gif", "--every", "0"], ["movie", "{d}/good.h5", "-o", "{d}/m.txt"],
        ["movie", "{d}/plain.h5", "-o", "{d}/m.gif"],
        ["curves", "{d}/good.h5", "-o", VIEW_OUT, "--quantity", "nope"], ["curves", "-o", VIEW_OUT],
        ["curves", "{d}/good.h5", "{d}/missing.h5", "-o", VIEW_OUT], ["curves", "{d}/good.h5", "-o", VIEW_OUT,
                                                                      "--band", "iqr"],
        ["summary", "{d}/missing.h5"], ["summary", "{d}/good.h5", "--csv", "{d}/t.txt"],
        ["summary", "{d}/good.h5", "--csv", "{d}/missing/t.csv"], ["summary"], ["summary", "{d}/zeros.h5"],
        ["summary", "{d}/good.h5", "--by", "nope_param"]]):
    _case(f"view-{i}", argv)
for i, argv in enumerate([
        ["bench", "--sizes", "0x0"], ["bench", "--sizes", "abc"], ["bench", "--threads", "0"],
        ["bench", "--threads", "a,b"], ["bench", "--threads", "5000"], ["bench", "--steps", "0"],
        ["bench", "--preset", "nope"], ["bench", "--roofline-mb", "0"], ["bench", "--json", "{d}/missing/x.json"],
        ["bench", "--json", "{d}"], ["bench", "--mpi", "0"], ["bench", "--mpi", "abc"],
        ["bench", "--mpi", "2", "--mpi-steps", "0"], ["bench", "--mpi", "2", "--mpi-shape", "0x1"]]):
    _case(f"bench-{i}", argv)
for i, argv in enumerate([
        ["sweep", "{d}/missing.toml", "-o", "{d}/out"], ["sweep", "{d}/sub", "-o", "{d}/out"],
        ["sweep", "/dev/zero", "-o", "{d}/out"], ["sweep", "{d}/malformed.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-no-seed.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-unknown.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-param-top.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-empty-grid.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-zip.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-bad-value.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-reps0.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-reps-huge.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-grid-huge.toml", "-o", "{d}/out"], ["sweep", "{d}/deep.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-twice.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-shape.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw-every.toml", "-o", "{d}/out"], ["sweep", "{d}/sw-preset.toml", "-o", "{d}/out"],
        ["sweep", "{d}/latin1.toml", "-o", "{d}/out"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--workers", "0"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--workers", "100000"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--threads-per-run", "0"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--retries", "-1"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--connect-timeout", "0"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/out", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/good.h5"], ["sweep", "{d}/sw.toml", "-o", "{d}/good.h5/x"],
        ["sweep", "{d}/sw.toml", "-o", "{d}/other-sweep"], ["sweep", "{d}/sw.toml", "-o", "{d}/other-sweep",
                                                            "--resume"],
        ["sweep", "{d}/sw.toml"]]):
    _case(f"sweep-{i}", argv)
for i, argv in enumerate([["validate", "--workers", "0"], ["validate", "-o", "{d}/good.h5"],
                          ["validate", "--report", "{d}/missing/r.md"], ["params", "--nope"],
                          ["presets", "extra"]]):
    _case(f"other-{i}", argv)


def _write_workspace(d: Path) -> None:
    from tumorca import Params, runner
    from tumorca.io.layout import RunPlan

    plan = RunPlan(shape=(16, 16), params=Params(init_tumor_radius=3.0, init_vessel_spacing=8), seed=2, steps=20,
                   every=5, fields=("o2",), compression="gzip", checkpoint_every=5, preset="")
    runner.run(plan, d / "good.h5", provenance={"command_line": "test"}, threads=1)
    polls = iter(range(10 ** 9))
    runner.run(plan, d / "cut.h5", provenance={"command_line": "test"}, threads=1, stop=lambda: next(polls) >= 12)
    (d / "sub").mkdir()
    (d / "empty.h5").write_bytes(b"")
    (d / "text.txt").write_text("not a run\n")
    (d / "zeros.h5").write_bytes(bytes(4096))
    with h5py.File(d / "plain.h5", "w") as f:
        f["x"] = np.arange(3)
    texts = {
        "latin1.toml": "sprout_rate = 0.1 # caf\xe9\n".encode("latin-1"),
        "binary.toml": bytes(range(256)),
        "malformed.toml": "sprout_rate = = 1\n", "tables.toml": "[[params]]\nx = 1\n", "five.toml": "params = 5\n",
        "unknown-key.toml": "nope = 1\n", "bad-value.toml": "sprout_rate = -3\n",
        "deep.toml": "seed = 1\na = " + "[" * 3000 + "]" * 3000 + "\n", "unknown-table.toml": "[nope]\nx = 1\n",
        "big.toml": "# " + "x" * (2 << 20) + "\n",
        "sw.toml": "seed = 1\nsteps = 3\nshape = \"16x16\"\n",
        "sw-no-seed.toml": "steps = 3\n", "sw-unknown.toml": "seed = 1\nnope = 2\n",
        "sw-param-top.toml": "seed = 1\nsprout_rate = 0.1\n", "sw-empty-grid.toml": "seed = 1\n[grid]\n",
        "sw-zip.toml": "seed = 1\n[zip]\nsprout_rate = [0.1, 0.2]\nifn_K = [1.0]\n",
        "sw-bad-value.toml": "seed = 1\n[grid]\nsprout_rate = [0.1, -1]\n",
        "sw-reps0.toml": "seed = 1\nreplicates = 0\n", "sw-reps-huge.toml": "seed = 1\nreplicates = 100000000000\n",
        "sw-grid-huge.toml": "seed = 1\n[grid]\n" + "\n".join(
            f"{k} = [{', '.join(str(0.001 * (i + 1)) for i in range(150))}]"
            for k in ("neut_kill_rate", "sprout_rate", "ifn_K")) + "\n",
        "sw-twice.toml": "seed = 1\n[params]\nsprout_rate = 0.1\n[grid]\nsprout_rate = [0.1, 0.2]\n",
        "sw-shape.toml": "seed = 1\nshape = \"0x5\"\n", "sw-every.toml": "seed = 1\nsteps = 3\nevery = 9\n",
        "sw-preset.toml": "seed = 1\npreset = \"nope\"\n",
    }
    for name, text in texts.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (d / "other-sweep").mkdir()
    (d / "other-sweep" / "manifest.json").write_text(json.dumps({"format": "tumorca-sweep", "sweep_id": "x",
                                                                  "name": "other", "n_runs": 1, "runs": []}))


def _snapshot(d: Path) -> dict[str, str]:
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root, name)
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("adversarial")
    _write_workspace(d)
    return d


def _check_one_line(code: int, stderr: str, seconds: float, what) -> None:
    assert code not in (0, None), (what, stderr)
    assert "Traceback" not in stderr, (what, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorca: error: "), (what, stderr)
    assert seconds < 10, (what, seconds)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name,argv", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(workspace, name, argv):
    before = _snapshot(workspace)
    args = [a.replace("{d}", str(workspace)) for a in argv]
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, args)
    seconds = time.perf_counter() - t0
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exc_info)
    _check_one_line(res.exit_code, res.stderr, seconds, args)
    assert _snapshot(workspace) == before, args


# -- damaged and hand-edited files, in one real process ------------------------------------------------------------
def _edit(kind: str):
    """A hand edit of a run file (``r.h5``) or of its checkpoint."""
    def attr(name, value, where="run"):
        def edit(f_run, f_ck):
            (f_run if where == "run" else f_ck).attrs[name] = value
        return edit

    def delete(path, where="run"):
        def edit(f_run, f_ck):
            del (f_run if where == "run" else f_ck)[path]
        return edit

    def reshape(path, shape, where="run"):
        def edit(f_run, f_ck):
            f = f_run if where == "run" else f_ck
            dtype = f[path].dtype
            del f[path]
            f.create_dataset(path, data=np.zeros(shape, dtype))
        return edit

    edits = {
        "attr-parameters-json": attr("parameters", "{"), "attr-parameters-type": attr("parameters", "[1, 2]"),
        "attr-parameters-unknown": attr("parameters", '{"nope": 1}'),
        "attr-parameters-bad-value": attr("parameters", '{"sprout_rate": -5}'),
        "attr-seed-string": attr("seed", "three"), "attr-seed-negative": attr("seed", -4),
        "attr-shape-string": attr("shape", "16x16"), "attr-shape-zero": attr("shape", np.array([0, 16])),
        "attr-steps-negative": attr("steps", -5), "attr-steps-string": attr("steps", "many"),
        "attr-every-zero": attr("every", 0), "attr-format": attr("format", "other"),
        "attr-format-version": attr("format_version", "9.0"), "attr-fields": attr("fields", "nope"),
        "attr-frames-planned": attr("frames_planned", "x"), "attr-compression": attr("compression", "zip"),
        "attr-lattice-shape": attr("lattice_shape", np.array([1, 2])),
        "no-run": delete("run"), "no-time": delete("time"), "no-timeseries": delete("timeseries"),
        "no-o2": delete("o2"), "no-run-status": delete("run/status"), "no-checkpoint-group": delete("checkpoint"),
        "frames-reshaped": reshape("o2", (2, 1, 4, 4)), "time-2d": reshape("time", (2, 2)),
        "ck-attr-seed": attr("seed", np.uint64(5), "ck"), "ck-attr-parameters": attr("parameters", "{", "ck"),
        "ck-attr-version": attr("tumorca_version", "9.9.9", "ck"),
        "ck-attr-shape": attr("shape", np.array([8, 8]), "ck"),
        "ck-attr-step-huge": attr("step_index", np.int64(10 ** 9), "ck"),
        "ck-attr-step-negative": attr("step_index", np.int64(-3), "ck"),
        "ck-attr-format": attr("format", "nope", "ck"), "ck-attr-run-id": attr("run_id", "other", "ck"),
        "ck-no-arrays": delete("arrays", "ck"), "ck-array-reshaped": reshape("arrays/tissue", (3, 3), "ck"),
        "ck-params-kill-rate": attr("parameters", json.dumps({"neut_kill_rate": 0.9}), "ck"),
    }
    return edits[kind]


EDIT_KINDS = sorted([
    "attr-parameters-json", "attr-parameters-type", "attr-parameters-unknown", "attr-parameters-bad-value",
    "attr-seed-string", "attr-seed-negative", "attr-shape-string", "attr-shape-zero", "attr-steps-negative",
    "attr-steps-string", "attr-every-zero", "attr-format", "attr-format-version", "attr-fields",
    "attr-frames-planned", "attr-compression", "no-run", "no-time", "no-timeseries", "no-o2", "no-run-status",
    "frames-reshaped", "time-2d", "ck-attr-seed", "ck-attr-parameters", "ck-attr-version", "ck-attr-shape",
    "ck-attr-step-huge", "ck-attr-step-negative", "ck-attr-format", "ck-attr-run-id", "ck-no-arrays",
    "ck-array-reshaped", "ck-params-kill-rate"])
TRUNCATIONS = [0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 0.999]
#: (id, command): what is run on every damaged file ("{f}": the file).
FILE_COMMANDS = [("inspect", ["inspect", "{f}"]),
                 ("resume", ["run", "--resume", "-o", "{f}", "-q", "--threads", "1"])]
TRUNC_COMMANDS = [("inspect", ["inspect", "{f}"]), ("summary", ["summary", "{f}"]),
                  ("resume", ["run", "--resume", "-o", "{f}", "-q", "--threads", "1"])]


@pytest.fixture(scope="module")
def file_results(tmp_path_factory, workspace):
    """Every damaged-file case through tests/cli_batch.py in one process: {case id: result}."""
    from test_hardening import run_batch

    from tumorca.io.layout import sidecar_paths

    d = tmp_path_factory.mktemp("damaged")
    cases, ids, files = [], [], {}
    for kind in EDIT_KINDS:
        sub = d / kind
        sub.mkdir()
        run = sub / "r.h5"
        shutil.copy2(workspace / "cut.h5", run)
        shutil.copy2(sidecar_paths(workspace / "cut.h5")[1], sidecar_paths(run)[1])
        with h5py.File(run, "r+") as f_run, h5py.File(sidecar_paths(run)[1], "r+") as f_ck:
            _edit(kind)(f_run, f_ck)
        files[kind] = [run, sidecar_paths(run)[1]]
        for cid, argv in FILE_COMMANDS:
            cases.append(([a.replace("{f}", str(run)) for a in argv], str(sub)))
            ids.append(f"{kind}/{cid}")
    data = (workspace / "good.h5").read_bytes()
    for frac in TRUNCATIONS:
        p = d / f"trunc-{frac}.h5"
        p.write_bytes(data[:int(len(data) * frac)])
        files[f"trunc-{frac}"] = [p]
        for cid, argv in TRUNC_COMMANDS:
            cases.append(([a.replace("{f}", str(p)) for a in argv], str(d)))
            ids.append(f"trunc-{frac}/{cid}")
    before = {k: [hashlib.sha256(p.read_bytes()).hexdigest() for p in ps] for k, ps in files.items()}
    results = run_batch(cases, timeout=240)
    after = {k: [hashlib.sha256(p.read_bytes()).hexdigest() for p in ps] for k, ps in files.items()}
    return {i: (r, before[i.split("/")[0]] == after[i.split("/")[0]]) for i, r in zip(ids, results)}


FILE_CASE_IDS = ([f"{k}/{c}" for k in EDIT_KINDS for c, _ in FILE_COMMANDS]
                 + [f"trunc-{t}/{c}" for t in TRUNCATIONS for c, _ in TRUNC_COMMANDS])


@pytest.mark.subprocess
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", FILE_CASE_IDS)
def test_damaged_or_edited_file(file_results, case):
    r, unchanged = file_results[case]
    assert r["traceback"] == "", (case, r["traceback"])
    _check_one_line(r["code"], r["stderr"], r["seconds"], case)
    assert unchanged, case


def test_the_suite_is_large_enough():
    assert len({c[0] for c in CLI_CASES}) + len(FILE_CASE_IDS) >= 150
