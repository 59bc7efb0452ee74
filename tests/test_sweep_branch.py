"""Branched (paired) sweeps: ``[branch]`` grows one parent per replicate and continues it into every condition.

On a real Dask LocalCluster of 2 workers and real run files: the unchanged condition continues its parent bit for
bit (it equals a plain run with the parent's seed), every condition starts from the parent's state, lineage and
manifest record the parent, a resume regrows what is missing identically, and bad ``[branch]`` tables give one-line
errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from runfile_util import assert_same_run

from tumorca.cli import cli
from tumorca.io import RunReader
from tumorca.sweep import SweepError, parse_sweep

PAIRED = """\
name = "paired"
seed = 7
replicates = 2
shape = "32x32"
steps = 60
every = 20
checkpoint_every = 20
fields = ["o2"]

[params]
init_vessel_spacing = 16
init_tumor_radius = 5

[branch]
at_step = 30
preset = "wild-type"

[grid]
preset = ["wild-type", "ifnb-knockout"]
"""


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def paired_sweep(tmp_path_factory) -> Path:
    pytest.importorskip("distributed")
    d = tmp_path_factory.mktemp("paired")
    (d / "paired.toml").write_text(PAIRED)
    res = invoke("sweep", str(d / "paired.toml"), "-o", str(d / "out"), "--workers", "2", "-q")
    assert res.exit_code == 0, res.stderr
    return d / "out"


def test_spec_shares_parents_and_seeds_within_a_replicate():
    spec = parse_sweep(PAIRED, source="paired.toml")
    runs, parents = spec.runs(), spec.parents()
    assert [p.name for p in parents] == ["parent_0000", "parent_0001"]
    assert all(p.plan.steps == 30 and p.plan.start_step == 0 and p.plan.preset == "wild-type" for p in parents)
    for r in runs:
        assert r.parent is parents[r.replicate]
        assert r.seed == r.parent.seed and r.plan.start_step == 30 and r.plan.steps == 60
    assert parents[0].seed != parents[1].seed
    # the parent takes [params] too, under [branch]'s preset
    assert parents[0].plan.params.init_tumor_radius == 5
    assert "paired: 2 parents grown to step 30" in spec.describe()
    # branching changes what the runs compute, hence the sweep's id
    assert spec.sweep_id != parse_sweep(PAIRED.replace("[branch]\nat_step = 30\npreset = \"wild-type\"\n", ""),
                                        source="paired.toml").sweep_id


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_unchanged_condition_continues_its_parent_bit_for_bit(paired_sweep, tmp_path):
    """run_0000 (wild-type, replicate 0) equals a plain wild-type run with the parent's seed at every step both
    hold; run_0002 (knockout, replicate 0) starts from the same state and then differs."""
    doc = json.loads((paired_sweep / "manifest.json").read_text())
    assert doc["branch"]["at_step"] == 30 and doc["branch"]["parents"] == ["parents/parent_0000.h5",
                                                                           "parents/parent_0001.h5"]
    rows = {r["run"]: r for r in doc["runs"]}
    assert rows["run_0002"]["parent"] == "parents/parent_0000.h5" and rows["run_0002"]["start_step"] == 30
    assert "parent" in (paired_sweep / "manifest.csv").read_text().splitlines()[0].split(",")
    seed = rows["run_0000"]["seed"]
    assert rows["run_0002"]["seed"] == seed != rows["run_0001"]["seed"]

    plain = tmp_path / "plain.h5"
    res = invoke("run", "-o", str(plain), "--shape", "32x32", "--steps", "60", "--every", "20", "--fields", "o2",
                 "--set", "init_vessel_spacing=16", "--set", "init_tumor_radius=5", "--seed", str(seed),
                 "--threads", "1", "-q")
    assert res.exit_code == 0, res.stderr
    parent = paired_sweep / "parents" / "parent_0000.h5"
    wt, ko = paired_sweep / "runs" / "run_0000.h5", paired_sweep / "runs" / "run_0002.h5"
    with h5py.File(plain) as a, h5py.File(wt) as b, h5py.File(ko) as c, h5py.File(parent) as p:
        assert list(b["step"][:]) == [30, 40, 60] and list(p["step"][:]) == [0, 20, 30]
        for layer in ("tissue", "vessel", "perfused", "neutrophils", "o2"):
            assert np.array_equal(a[layer][2:], b[layer][1:]), layer      # steps 40 and 60
            assert np.array_equal(p[layer][-1], b[layer][0]), layer       # the branch starts at the parent's end
            assert np.array_equal(p[layer][-1], c[layer][0]), layer
        for key in b["timeseries"]:
            assert np.array_equal(a["timeseries"][key][30:], b["timeseries"][key][:]), key
        assert c["timeseries"]["neutrophils"][-1] != b["timeseries"]["neutrophils"][-1]
    with RunReader(ko) as r, RunReader(parent) as rp:
        lin = r.lineage
        assert lin["parent_run_id"] == rp.attrs["run_id"] and int(lin["parent_step"]) == 30
        assert lin["parent_path"] == "../parents/parent_0000.h5"
        assert json.loads(lin["parent_changes"]) == {"ifn_level": [1.0, 0.0]}
    res = invoke("inspect", str(ko))
    assert res.exit_code == 0 and "branch of:" in res.output and "ifn_level 1.0 -> 0.0" in res.output


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_resume_regrows_a_missing_parent_and_run_identically(paired_sweep, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(paired_sweep, out)
    (out / ".sweep.lock").unlink(missing_ok=True)
    (out / "runs" / "run_0003.h5").unlink()
    (out / "parents" / "parent_0001.h5").unlink()
    res = invoke("sweep", str(paired_sweep.parent / "paired.toml"), "-o", str(out), "--workers", "2", "--resume",
                 "-q")
    assert res.exit_code == 0, res.stderr
    assert assert_same_run(paired_sweep / "runs" / "run_0003.h5", out / "runs" / "run_0003.h5") > 10
    assert assert_same_run(paired_sweep / "parents" / "parent_0001.h5", out / "parents" / "parent_0001.h5") > 10
    assert not (out / ".partial").exists()
    # the regrown parent has the run id of the first (it follows from the plan): run_0001, branched from the
    # first, still finds its parent
    from tumorca.io.lineage import walk_lineage

    with RunReader(out / "runs" / "run_0001.h5") as r:
        assert walk_lineage(out / "runs" / "run_0001.h5", r.attrs)[0]["state"] == "present"
    # a run that only needs publishing (complete in .partial) needs no parent: none is grown
    (out / ".sweep.lock").unlink(missing_ok=True)
    (out / ".partial" / "run_0002").mkdir(parents=True)
    for suffix in ("", ".xdmf"):
        (out / "runs" / f"run_0002.h5{suffix}").rename(out / ".partial" / "run_0002" / f"run_0002.h5{suffix}")
    shutil.rmtree(out / "parents")
    res = invoke("sweep", str(paired_sweep.parent / "paired.toml"), "-o", str(out), "--workers", "2", "--resume",
                 "-q")
    assert res.exit_code == 0, res.stderr
    assert (out / "runs" / "run_0002.h5").exists() and not (out / "parents").exists()


BAD_BRANCH = [
    ("[branch]\nat_stp = 30\n", "[branch] unknown setting 'at_stp' (did you mean 'at_step'?)"),
    ("[branch]\nat_step = 30\nat_day = 1\n", "[branch] needs at_step or at_day (not both)"),
    ("[branch]\npreset = \"wild-type\"\n", "[branch] needs at_step or at_day"),
    ("[branch]\nat_step = 60\n", "the branch step 60 is not before the end of the runs (step 60)"),
    ("[branch]\nat_day = -1\n", "[branch] at_day must be a positive number"),
    ("[branch]\nat_step = 30\npreset = \"wild-typ\"\n", "[branch] unknown preset 'wild-typ'"),
    ("[branch]\nat_step = 30\n[branch.params]\npreset = \"wild-type\"\n", "the parent's preset goes in [branch]"),
    ("[branch]\nat_step = 30\n[branch.params]\nneut_kil_rate = 0.1\n", "unknown parameter 'neut_kil_rate'"),
    ("[branch]\nat_step = 30\n[branch.params]\ndt_min = 15.0\n", "the parent's dt_min (15) differs"),
    ("branch = 3\n", "branch must be a table"),
]


@pytest.mark.parametrize("extra, expect", BAD_BRANCH, ids=[f"bad{i}" for i in range(len(BAD_BRANCH))])
def test_bad_branch_tables(tmp_path, extra, expect):
    base = PAIRED.split("[branch]")[0].replace("[params]\ninit_vessel_spacing = 16\ninit_tumor_radius = 5\n", "")
    text = (extra + base) if extra.startswith("branch =") else base + "[params]\ninit_tumor_radius = 5\n" + extra
    f = tmp_path / "paired.toml"
    f.write_text(text)
    with pytest.raises(SweepError) as err:
        parse_sweep(text, source=str(f))
    assert "\n" not in str(err.value) and expect in str(err.value), str(err.value)
    res = invoke("sweep", str(f), "-o", str(tmp_path / "out"), "--dry-run")
    assert res.exit_code == 2 and expect in res.stderr and not (tmp_path / "out").exists()


def test_example_branched_sweep_file_is_valid():
    from tumorca.sweep import load_sweep

    spec = load_sweep(Path(__file__).parents[1] / "docs" / "examples" / "sweep-therapy-branch.toml")
    assert spec.n_runs == 20 and len(spec.parents()) == 10
    assert {r.plan.start_step for r in spec.runs()} == {336} and spec.parents()[0].plan.steps == 336
    assert spec.runs()[10].plan.params.ifn_therapy_level > 0 == spec.parents()[0].plan.params.ifn_therapy_level


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_compare_arms_pairs_the_branches_of_each_parent(paired_sweep):
    """compare_arms matches the conditions by replicate (= parent) and gives the signed-rank test of their
    differences beside the unpaired test."""
    from tumorca.analysis import compare_arms, open_sweep

    rows = open_sweep(paired_sweep, status="complete")
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    value = {(r["preset"], int(r["replicate"])): r["neutrophils"] for r in rows}
    e = compare_arms(paired_sweep, "neutrophils", "ifnb-knockout", "wild-type")
    assert e.n_high == e.n_low == 2
    assert e.difference == pytest.approx(np.mean([value["ifnb-knockout", k] - value["wild-type", k] for k in (0, 1)]))
    assert 0 < e.p_wilcoxon <= 1 and 0 < e.p_mannwhitney <= 1
    with pytest.raises(KeyError):
        compare_arms(paired_sweep, "neutrophils", "ifnb-therapy", "wild-type")



def test_compare_arms_needs_one_condition_per_side(tmp_path):
    """With two varied axes a preset names two conditions: compare_arms refuses to pool them (it would pair
    runs of different conditions), and ``where`` picks one."""
    from tumorca.analysis import compare_arms
    from tumorca.io.manifest import MANIFEST_FORMAT, MANIFEST_VERSION

    runs = []
    for c, (preset, kill) in enumerate([(p, k) for p in ("wild-type", "ifnb-knockout") for k in (0.001, 0.002)]):
        for r in range(4):
            runs.append({"run": f"run_{len(runs):04d}", "file": f"runs/run_{len(runs):04d}.h5", "status": "complete",
                         "condition": c, "replicate": r, "preset": preset, "neut_kill_rate": kill,
                         "measures": {"neutrophils": 100.0 * (c + 1) + r}})
    (tmp_path / "manifest.json").write_text(json.dumps({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                                                        "varied": ["preset", "neut_kill_rate"], "runs": runs}))
    with pytest.raises(KeyError, match="matches 2 conditions.*neut_kill_rate"):
        compare_arms(tmp_path, "neutrophils", "ifnb-knockout", "wild-type")
    e = compare_arms(tmp_path, "neutrophils", "ifnb-knockout", "wild-type", where={"neut_kill_rate": 0.002})
    assert e.n_high == e.n_low == 4 and e.mean_high == pytest.approx(401.5) and e.mean_low == pytest.approx(201.5)


def test_at_day_must_be_a_whole_step():
    with pytest.raises(SweepError, match="at_day = 0.51 is not a whole step"):
        parse_sweep(PAIRED.replace("at_step = 30", "at_day = 0.51"), source="paired.toml")
    spec = parse_sweep(PAIRED.replace("at_step = 30", "at_day = 0.5"), source="paired.toml")
    assert spec.parents()[0].plan.steps == 24 and "parent r" in spec.seed_rule
