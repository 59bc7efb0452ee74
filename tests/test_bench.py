"""The benchmark runs end to end on tiny cases and its JSON follows the documented schema (no timing asserted)."""
import json
import math

import pytest

from tumorca import bench


def test_bench_document_follows_schema(tmp_path):
    doc = bench.bench([(24, 24), (8, 8, 8)], [1, 2], steps=2, roofline_mb=8, isolated=False)
    doc = json.loads(json.dumps(doc))  # JSON-serialisable
    assert set(bench.SCHEMA["top"]) == set(doc)
    for roof in doc["roofline"]:
        assert set(bench.SCHEMA["roofline"]) == set(roof) and roof["triad_GBps"] > 0
    assert len(doc["cases"]) == 4
    for case in doc["cases"]:
        assert set(bench.SCHEMA["case"]) == set(case)
        assert case["steps_per_s"] > 0 and math.isclose(case["steps_per_s"] * case["seconds_per_step"], 1.0)
        assert set(case["phase_seconds_per_step"]) == set(case["phase_GBps"]) == set(bench.PHASES)
        assert set(case["phase_bytes_per_site"]) == set(bench.SCHEMA["phases"]) == set(bench.PHASES)
        assert set(case["o2_cold"]) == set(bench.SCHEMA["o2_cold"]) and case["o2_cold"]["iterations"] >= 1
        assert case["state_bytes_per_site"] <= 40
    first = [c for c in doc["cases"] if c["threads"] == 1]
    assert all(c["reference_seconds_per_step"] > 0 and c["ratio_vs_reference"] > 0 for c in first)
    assert doc["scaling"]["per_site"]["seconds_per_site"] is not None
    assert "lattice" in bench.format_table(doc)


@pytest.mark.subprocess
@pytest.mark.timeout(120)  # the case runs in its own process; measured 0.7 s
def test_isolated_case_and_growth_fit():
    row = bench.run_case_isolated(shape=(16, 16), threads=1, steps=2)
    assert row["shape"] == [16, 16] and row["peak_rss_bytes"] > 0
    fit = bench.growth_scaling((32, 32), 1, 5)
    assert fit["live_last"] >= 1 and set(fit) >= {"seconds_per_step_fixed", "seconds_per_live_cell"}


@pytest.mark.subprocess
@pytest.mark.timeout(120)  # each case runs in its own process; measured 0.8 s
def test_bench_command_writes_json_and_rejects_bad_input(tmp_path):
    from click.testing import CliRunner

    from tumorca.cli import cli

    out = tmp_path / "b.json"
    res = CliRunner().invoke(cli, ["bench", "--sizes", "16x16", "--threads", "1", "--steps", "2",
                                   "--roofline-mb", "4", "--json", str(out), "--streaming", "--set", "o2_solver=sor",
                                   "--set", "o2_tol=2e-4", "--tumour-fraction", "0.1"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    case = doc["cases"][0]
    assert case["shape"] == [16, 16] and case["streaming_overhead"] is not None
    assert case["set"] == {"o2_solver": "sor", "o2_tol": 2e-4} and case["o2_solver"] == "sor"
    assert case["tumour_fraction"] == 0.1
    assert "16x16" in res.stdout
    for args, msg in ((["--threads", "0"], "--threads"), (["--sizes", "4x"], "--shape"),
                      (["--preset", "wildtype"], "unknown preset"), (["--steps", "0"], "--steps"),
                      (["--json", str(tmp_path / "nope" / "b.json")], "does not exist"),
                      (["--set", "o2_solver=nope"], "o2_solver"), (["--tumour-fraction", "2"], "--tumour-fraction")):
        res = CliRunner().invoke(cli, ["bench", "--sizes", "8x8"] + args)
        assert res.exit_code == 2 and msg in res.output, (args, res.output)
