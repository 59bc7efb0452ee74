"""The benchmark runs end to end on tiny cases and its JSON follows the documented schema (no timing asserted)."""
import json
import math

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
        assert case["state_bytes_per_site"] <= 40
    first = [c for c in doc["cases"] if c["threads"] == 1]
    assert all(c["reference_seconds_per_step"] > 0 and c["ratio_vs_reference"] > 0 for c in first)
    assert doc["scaling"]["per_site"]["seconds_per_site"] is not None
    assert "lattice" in bench.format_table(doc)


def test_isolated_case_and_growth_fit():
    row = bench.run_case_isolated(shape=(16, 16), threads=1, steps=2)
    assert row["shape"] == [16, 16] and row["peak_rss_bytes"] > 0
    fit = bench.growth_scaling((32, 32), 1, 5)
    assert fit["live_last"] >= 1 and set(fit) >= {"seconds_per_step_fixed", "seconds_per_live_cell"}
