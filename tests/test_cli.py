"""The tumorca command line, in process (click.testing.CliRunner): every command and every bad input."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys

import h5py
import pytest
from click.testing import CliRunner

import tumorca
from tumorca import FIELD_NAMES, PARAMETERS, Params, presets
from tumorca.cli import Progress, cli
from tumorca.io import RunReader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SMALL = ["--shape", "24x24", "--steps", "8", "--every", "4", "--threads", "1", "--seed", "3"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def listing(d) -> dict[str, str]:
    """Names and content hashes of every file under ``d`` (hidden ones too)."""
    out = {}
    for root, _, files in os.walk(d):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def assert_clean_error(res, code: int, *fragments: str) -> None:
    """Exit status ``code``, one line on stderr naming the problem, no traceback."""
    assert res.exit_code == code, (res.exit_code, res.stderr, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("tumorca: error: ")
    assert "Traceback" not in res.stderr and res.stdout == ""
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("fin")
    res = invoke("run", "-o", str(d / "fin.h5"), *SMALL, "--quiet")
    assert res.exit_code == 0, res.stderr
    return d / "fin.h5"


# -- the commands ------------------------------------------------------------------------------------------------
def test_version_and_help():
    res = invoke("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"tumorca {tumorca.__version__}"
    for args in (["-h"], ["--help"], ["run", "-h"], ["inspect", "-h"]):
        res = invoke(*args)
        assert res.exit_code == 0 and "Usage:" in res.stdout
    assert "--checkpoint-every" in invoke("run", "-h").stdout


def test_presets_lists_every_preset_and_its_changes():
    out = invoke("presets").stdout
    for name in presets.names():
        assert name in out
    assert "ifn_level = 0.0" in out and "vegf_decay = 0.1" in out


def test_params_lists_every_parameter():
    out = invoke("params").stdout
    for s in PARAMETERS:
        line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == s.name)
        assert str(s.default) in line and s.describe_range() in line
        if s.unit:
            assert s.unit in line


def test_params_toml_is_a_config_of_the_defaults(tmp_path):
    text = invoke("params", "--toml").stdout
    assert Params(**tomllib.loads(text)) == Params()
    cfg = tmp_path / "all.toml"
    cfg.write_text(text)
    assert Params.from_toml(cfg) == Params()


def test_run_writes_a_complete_file(tmp_path):
    out = tmp_path / "a.h5"
    res = invoke("run", "-o", str(out), *SMALL)
    assert res.exit_code == 0, res.stderr
    assert "24x24 lattice, 8 steps" in res.stderr and "wrote" in res.stderr
    assert "tumorca: step 8/8 (100%)" in res.stderr  # not a TTY: plain progress lines
    with RunReader(out) as r:
        assert r.status.state == "complete" and r.n_frames == 3 and list(r.steps) == [0, 4, 8]
        assert r.shape == (24, 24) and int(r.attrs["seed"]) == 3
        assert r.attrs["command_line"].startswith("tumorca ")
    assert (tmp_path / "a.h5.xdmf").exists() and not (tmp_path / "a.h5.ckpt.h5").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "a.h5.xdmf"]  # no temporary files left


def test_quiet_is_silent(tmp_path):
    res = invoke("run", "-o", str(tmp_path / "q.h5"), *SMALL, "-q")
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""


def test_precedence_cli_over_config_over_preset(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("ifn_level = 0.5\nneut_kill_rate = 0.002\n[params]\nvegf_decay = 0.05\n")
    out = tmp_path / "p.h5"
    res = invoke("run", "-o", str(out), *SMALL, "-q", "--preset", "anti-vegf", "--config", str(cfg),
                 "--set", "neut_kill_rate=0.003", "--set", "o2_boundary=dirichlet", "--set", 'field_boundary="dirichlet"')
    assert res.exit_code == 0, res.stderr
    with RunReader(out) as r:
        p = r.plan.params
        assert r.attrs["preset"] == "anti-vegf"
    assert p.ifn_level == 0.5 and p.vegf_decay == 0.05  # config over preset (anti-vegf sets vegf_decay 0.1)
    assert p.neut_kill_rate == 0.003  # --set over config
    assert p.o2_boundary == "dirichlet" and p.field_boundary == "dirichlet"
    res = invoke("inspect", str(out))
    assert "neut_kill_rate = 0.003 (default 0.0005)" in res.stdout and "preset:      anti-vegf" in res.stdout


def test_seed_is_drawn_and_recorded(tmp_path):
    seeds = []
    for name in ("s1.h5", "s2.h5"):
        res = invoke("run", "-o", str(tmp_path / name), "--shape", "8x8", "--steps", "2", "--threads", "1", "-q")
        assert res.exit_code == 0
        with RunReader(tmp_path / name) as r:
            seeds.append(int(r.attrs["seed"]))
    assert seeds[0] != seeds[1] and all(0 <= s < 2 ** 64 for s in seeds)


def test_days_fields_compression_defaults(tmp_path):
    out = tmp_path / "d.h5"
    res = invoke("run", "-o", str(out), "--shape", "8x8", "--days", "1.5", "--fields", "o2,cxcl",
                 "--compression", "none", "--threads", "1", "-q")
    assert res.exit_code == 0, res.stderr
    with RunReader(out) as r:
        plan = r.plan
        assert plan.steps == 72 and plan.every == 48 and plan.frame_steps == (0, 48, 72)
        assert plan.checkpoint_every == 480 and plan.fields == ("o2", "cxcl")
        assert "vegf_free" not in r.layers and r.file["o2"].compression is None
    res = invoke("run", "-o", str(tmp_path / "n.h5"), "--shape", "4x4x4", "--steps", "1", "--fields", "none",
                 "--threads", "1", "-q")
    assert res.exit_code == 0
    with RunReader(tmp_path / "n.h5") as r:
        assert not set(FIELD_NAMES) & set(r.layers) and r.shape == (4, 4, 4)


def test_overwrite_replaces(tmp_path, finished):
    out = tmp_path / "o.h5"
    out.write_bytes(finished.read_bytes())
    res = invoke("run", "-o", str(out), "--shape", "8x8", "--steps", "2", "--threads", "1", "-q", "--overwrite")
    assert res.exit_code == 0
    with RunReader(out) as r:
        assert r.shape == (8, 8)


def test_inspect_finished(finished):
    res = invoke("inspect", str(finished))
    assert res.exit_code == 0
    out = res.stdout
    assert "status:      complete: 8 steps, 3 frames" in out
    assert "shape:       24x24 (2D)" in out and "frames:      3 of 3" in out
    assert "time 0-240 min" in out and "seed:        3" in out and "preset:      none" in out
    assert f"tumorca {tumorca.__version__}, format 2.1" in out and "parameters:  all defaults" in out
    info = json.loads(invoke("inspect", "--json", str(finished)).stdout)
    assert info["status"] == "complete" and info["frames"] == 3 and info["steps_on_disk"] == 8


def test_progress_bar_on_a_tty():
    buf = io.StringIO()
    p = Progress(stream=buf, tty=True)
    for s in range(1, 11):
        p(s, 10, 0)
    p.finish()
    text = buf.getvalue()
    assert text.count("\r") >= 1 and "10/10 steps" in text and "steps/s" in text and "ETA" in text
    buf = io.StringIO()
    p = Progress(stream=buf, tty=False)
    for s in range(1, 101):
        p(s, 100, 0)
    lines = buf.getvalue().splitlines()
    assert 19 <= len(lines) <= 21 and lines[-1].startswith("tumorca: step 100/100 (100%)")


# -- bad input: one line, the right exit status, nothing created or changed ---------------------------------------
BAD_USAGE = [
    (["--preset", "wildtype"], ["unknown preset 'wildtype'", "did you mean 'wild-type'"]),
    (["--set", "dx_mu=3"], ["unknown parameter 'dx_mu'", "did you mean 'dx_um'"]),
    (["--fields", "o2,vegf"], ["unknown field 'vegf'", "did you mean"]),
    (["--set", "dx_um=true"], ["'dx_um' must be a number"]),
    (["--set", "o2_boundary=3"], ["'o2_boundary' must be one of"]),
    (["--set", "vegf_hill_n=2.5"], ["'vegf_hill_n' must be an integer"]),
    (["--set", "dx_um=0.5"], ["'dx_um' = 0.5 is out of range [1, 1000]"]),
    (["--set", "dx_um"], ["--set expects KEY=VALUE"]),
    (["--set", "cycle_o2_low=40"], ["cycle_o2_low < cycle_o2_high"]),
    (["--shape", "0x5"], ["--shape must be 2 or 3 positive integers", "'0x5'"]),
    (["--shape", "64"], ["--shape must be 2 or 3 positive integers"]),
    (["--shape", "2x2x2x2"], ["--shape must be 2 or 3"]),
    (["--shape", "axb"], ["--shape must be 2 or 3"]),
    (["--steps", "0"], ["--steps must be a positive integer, got 0"]),
    (["--steps", "-4"], ["--steps must be a positive integer"]),
    (["--steps", "abc"], ["'--steps'", "not a valid integer"]),
    (["--days", "0"], ["--days must be positive"]),
    (["--steps", "5", "--days", "1"], ["--steps or --days"]),
    (["--every", "0"], ["--every must be a positive integer"]),
    (["--steps", "5", "--every", "6"], ["--every 6 is larger than the run (5 steps)"]),
    (["--seed", "-1"], ["--seed must be in [0, 2**64)"]),
    (["--threads", "0"], ["--threads must be a positive integer"]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every must be"]),
    (["--compression", "zstd"], ["'zstd' is not one of"]),
    (["--overwrite", "--resume"], ["exclude each other"]),
    (["--no-such-option"], ["No such option"]),
]


@pytest.mark.parametrize("args,fragments", BAD_USAGE, ids=[" ".join(a) for a, _ in BAD_USAGE])
def test_bad_usage(tmp_path, args, fragments):
    before = listing(tmp_path)
    res = invoke("run", "-o", str(tmp_path / "x.h5"), *args)
    assert_clean_error(res, 2, *fragments)
    assert listing(tmp_path) == before


def test_malformed_toml_names_the_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("ifn_level = 0.5\nneut_kill_rate = = 2\n")
    res = invoke("run", "-o", str(tmp_path / "x.h5"), "--config", str(cfg))
    assert_clean_error(res, 2, "malformed TOML", "line 2")
    cfg.write_text("ifn_levl = 0.5\n")
    assert_clean_error(invoke("run", "-o", str(tmp_path / "x.h5"), "--config", str(cfg)), 2,
                       "unknown parameter 'ifn_levl'", "did you mean 'ifn_level'")
    assert_clean_error(invoke("run", "-o", str(tmp_path / "x.h5"), "--config", str(tmp_path / "none.toml")), 2,
                       "none.toml", "does not exist")
    assert not (tmp_path / "x.h5").exists()


def test_bad_output_paths(tmp_path):
    assert_clean_error(invoke("run", "-o", str(tmp_path / "missing" / "x.h5"), *SMALL), 2,
                       "output directory", "does not exist")
    (tmp_path / "afile").write_text("x")
    assert_clean_error(invoke("run", "-o", str(tmp_path / "afile" / "x.h5"), *SMALL), 2, "is not a directory")
    (tmp_path / "adir").mkdir()
    assert_clean_error(invoke("run", "-o", str(tmp_path / "adir"), *SMALL), 2, "is a directory")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        target = ro if not os.access(ro, os.W_OK) else None
        if target is None:  # root writes anywhere on a normal mount: use a filesystem that refuses writes
            target = "/proc"
        res = invoke("run", "-o", os.path.join(str(target), "x.h5"), *SMALL)
        assert_clean_error(res, 2, "cannot write in output directory")
    finally:
        ro.chmod(0o700)
    assert sorted(os.listdir(tmp_path)) == ["adir", "afile", "ro"] and os.listdir(ro) == []


def test_existing_output_is_never_touched(tmp_path, finished):
    out = tmp_path / "keep.h5"
    out.write_bytes(finished.read_bytes())
    before = listing(tmp_path)
    assert_clean_error(invoke("run", "-o", str(out), *SMALL), 2, "exists", "--overwrite", "--resume")
    # a bad option with --overwrite still leaves the old file alone
    assert_clean_error(invoke("run", "-o", str(out), *SMALL, "--overwrite", "--set", "nope=1"), 2,
                       "unknown parameter")
    assert listing(tmp_path) == before


def test_resume_bad_files(tmp_path, finished):
    assert_clean_error(invoke("run", "--resume", "-o", str(tmp_path / "none.h5")), 2, "does not exist")
    (tmp_path / "text.h5").write_text("hello")
    assert_clean_error(invoke("run", "--resume", "-o", str(tmp_path / "text.h5")), 2, "not an HDF5 file")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1]
    assert_clean_error(invoke("run", "--resume", "-o", str(tmp_path / "other.h5")), 2, "not a tumorca run file")
    fin = tmp_path / "fin.h5"
    fin.write_bytes(finished.read_bytes())
    before = listing(tmp_path)
    assert_clean_error(invoke("run", "--resume", "-o", str(fin)), 2, "finished run")
    # an interrupted run, resumed with another shape / parameters / seed / steps
    part = tmp_path / "part.h5"
    from tumorca.runner import run as run_plan
    from tumorca.io import RunPlan
    run_plan(RunPlan(shape=(24, 24), params=Params(), seed=3, steps=8, every=4), part,
             provenance={"command_line": "t"}, threads=1, stop=lambda: True)
    before = listing(tmp_path)
    assert_clean_error(invoke("run", "--resume", "-o", str(part), "--shape", "32x32"), 2,
                       "has shape 24x24, not 32x32")
    assert_clean_error(invoke("run", "--resume", "-o", str(part), "--set", "ifn_level=0"), 2,
                       "other parameters", "ifn_level = 0.0 (file: 1.0)")
    assert_clean_error(invoke("run", "--resume", "-o", str(part), "--preset", "ifnb-knockout"), 2,
                       "other parameters")
    assert_clean_error(invoke("run", "--resume", "-o", str(part), "--seed", "4"), 2, "seed 3, not 4")
    assert_clean_error(invoke("run", "--resume", "-o", str(part), "--steps", "9"), 2, "steps 8, not 9")
    assert listing(tmp_path) == before
    # matching options are fine
    res = invoke("run", "--resume", "-o", str(part), "--shape", "24x24", "--seed", "3", "--preset", "wild-type",
                 "--threads", "1", "-q")
    assert res.exit_code == 0, res.stderr
    with RunReader(part) as r:
        assert r.status.state == "complete"


def test_inspect_bad_files(tmp_path):
    assert_clean_error(invoke("inspect", str(tmp_path / "no.h5")), 2, "does not exist")
    (tmp_path / "t.h5").write_text("x")
    assert_clean_error(invoke("inspect", str(tmp_path / "t.h5")), 2, "not an HDF5 file")


def test_resources_too_large(tmp_path):
    before = listing(tmp_path)
    res = invoke("run", "-o", str(tmp_path / "big.h5"), "--shape", "200000x200000", "--steps", "1")
    assert_clean_error(res, 1, "200000x200000 lattice needs about", "of memory", "is available",
                       "its file would take up to")
    res = invoke("run", "-o", str(tmp_path / "big.h5"), "--shape", "512x512", "--steps", "100000000",
                 "--every", "1")
    assert_clean_error(res, 1, "the run file may grow to", "TiB", "is free in", "memory needed: about")
    assert listing(tmp_path) == before
