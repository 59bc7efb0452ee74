"""The validation suite: its statistics, its physics checks, and the quick version of its biology, run end to end
through the real CLI (sweeps on Dask, run files, report and figures)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("scipy")

from tumorca.validation import QUICK_PAIRED, QUICK_SUITES, physics  # noqa: E402
from tumorca.validation.biology import collect  # noqa: E402
from tumorca.validation.report import wall_time  # noqa: E402
from tumorca.validation.stats import compare  # noqa: E402


def test_compare_orders_and_bounds_the_effect():
    rng = np.random.default_rng(1)
    high, low = rng.normal(12.0, 1.0, 10), rng.normal(10.0, 1.0, 10)
    e = compare(high, low)
    assert e.holds and e.p_mannwhitney < 0.01 and e.a12 > 0.8
    assert e.difference_ci[0] < e.difference < e.difference_ci[1]
    assert e.ratio_ci[0] < high.mean() / low.mean() < e.ratio_ci[1]
    back = compare(low, high)  # the same samples, the claim reversed
    assert not back.holds and back.verdict == "fails" and back.p_mannwhitney > 0.99
    assert abs(e.a12 + back.a12 - 1.0) < 1e-12
    same = compare(low, low)  # paired and identical: no Wilcoxon p, no effect
    assert np.isnan(same.p_wilcoxon) and same.difference == 0.0 and not same.holds


def test_a_claim_holds_only_below_p_0_01():
    """Issue 14 asks each ordering at p < 0.01: p = 0.029 is 'direction only', p = 0.007 holds."""
    base = np.arange(10.0)
    weak, strong = compare(base + 3, base), compare(base + 4, base)
    assert 0.01 < weak.p_mannwhitney < 0.05 and not weak.holds and weak.verdict.startswith("direction only")
    assert strong.p_mannwhitney < 0.01 and strong.holds


@pytest.mark.slow
def test_growing_colony_goes_quiescent_at_the_analytic_radius_then_necrotic_after_the_death_time():
    r = physics.necrosis_onset_in_growing_disk()
    # R_q = l * I0^-1(c_rim / 8.9 mmHg) for the rim pO2 of that moment; the colony is only roughly a disk.
    assert r["rel_error"] < 0.1, r["radius_at_quiescent_core_sites"]
    dt = 30.0
    assert r["expected_delay_min"] <= r["delay_min"] < r["expected_delay_min"] + 2 * dt


def test_decay_length_matches_sqrt_d_over_lambda():
    r = physics.decay_length()
    assert r["rel_error"] < 0.01, (r["measured_um"], r["expected_um"])


@pytest.mark.slow
@pytest.mark.dask
@pytest.mark.subprocess
@pytest.mark.timeout(600)  # measured 137 s on a loaded machine
def test_quick_validation_runs_end_to_end_and_orders_the_neutrophil_measures(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("matplotlib")
    out = tmp_path / "val"
    res = subprocess.run([sys.executable, "-m", "tumorca.cli", "validate", "--quick", "-o", str(out), "--workers", "2",
                          "-q"], capture_output=True, text=True, timeout=420)
    assert res.returncode == 0, res.stderr
    report = out / "validation-quick.md"
    text = report.read_text()
    for fig in ("quick-2d-curves.png", "quick-2d-measures.png", "quick-2d-frames.png", "physics.png"):
        png = out / "validation-quick" / fig
        assert png.stat().st_size > 5000 and f"validation-quick/{fig}" in text
    assert "| neutrophils: knockout > wild-type | 3, 3 |" in text
    # Directions the quick suite (3 replicates, 128^2, 12 days) has the power for: the neutrophil axis, whose
    # effects are several-fold.  Tumour burden needs the full suite.
    data = collect(QUICK_SUITES[0], out)
    mean = {arm: {k: np.nanmean([r[k] for r in runs]) for k in runs[0]} for arm, runs in data.items()}
    ko, wt, th = (mean[a] for a in ("ifnb-knockout", "wild-type", "ifnb-therapy"))
    assert all(len(runs) == 3 for runs in data.values())
    assert ko["neutrophils"] > wt["neutrophils"] > th["neutrophils"]
    assert ko["vessel_sites"] > wt["vessel_sites"]
    assert ko["vegf_per_neutrophil"] > wt["vegf_per_neutrophil"] > th["vegf_per_neutrophil"]
    assert ko["neutrophil_lifespan_h"] > wt["neutrophil_lifespan_h"]
    # The paired design (issue 17): one parent per replicate, both arms branched from it; the per-parent
    # differences vary far less than independent replicates do (common state and random numbers).
    assert len(list((out / QUICK_PAIRED.name / "paired" / "parents").glob("parent_*.h5"))) == 3
    row = [ln for ln in text.split("## Paired design")[1].splitlines() if ln.startswith("| 3 |")]
    assert len(row) == 1 and float(row[0].rstrip(" |").split("|")[-1]) > 1.0, row
    # Running it again keeps the complete runs (nothing is recomputed) and rewrites the same tables.
    again = subprocess.run([sys.executable, "-m", "tumorca.cli", "validate", "--quick", "-o", str(out), "-q"],
                           capture_output=True, text=True, timeout=150)
    assert again.returncode == 0, again.stderr
    table = [ln for ln in report.read_text().splitlines() if ln.startswith("| neutrophils: knockout")]
    assert table == [ln for ln in text.splitlines() if ln.startswith("| neutrophils: knockout")]


@pytest.mark.subprocess
@pytest.mark.timeout(120)  # measured 1.3 s
def test_validate_refuses_bad_input(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = subprocess.run([sys.executable, "-m", "tumorca.cli", "validate", "--quick", "-o", str(f)],
                         capture_output=True, text=True, timeout=50)
    assert res.returncode == 2 and "is not a directory" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = subprocess.run([sys.executable, "-m", "tumorca.cli", "validate", "--workers", "0"],
                         capture_output=True, text=True, timeout=50)
    assert res.returncode == 2 and "--workers must be a positive integer" in res.stderr


def test_design_gain_pairs_by_replicate_and_measures_the_variance_ratio():
    """design_gain against hand computation: the paired differences are the same shift, so their variance is
    tiny and the paired test rejects where the independent one cannot."""
    from tumorca.validation.stats import design_gain

    control = [10.0, 12.0, 14.0, 16.0, 18.0, 20.0]
    paired = [c - 1.0 - 0.01 * k for k, c in enumerate(control)]          # each parent loses about 1
    independent = [9.0, 19.0, 11.0, 17.0, 13.0, 15.0]                     # the same spread, other tumours
    g = design_gain(control, paired, independent, 6)
    d = np.array(control) - np.array(paired)
    want = (np.var(control, ddof=1) + np.var(independent, ddof=1)) / np.var(d, ddof=1)
    assert g.relative_efficiency == pytest.approx(want)
    assert g.paired.p_wilcoxon == pytest.approx(1 / 64)                 # all 6 differences positive: exact
    assert g.independent.p_mannwhitney > 0.2
    assert g.paired.ratio == pytest.approx(np.mean(control) / np.mean(paired))
    with pytest.raises(ValueError):
        design_gain(control, paired[:3], independent, 6)


def test_a_failed_n1_claim_is_read_with_the_killing_and_the_spread_it_competes_with():
    from tumorca.validation.biology import COMPARISONS
    from tumorca.validation.report import _reading, comparison_rows

    def arm(burden, **kw):
        base = {"neutrophils": 0.0, "killed_share": 0.0, "vegf_per_neutrophil": 0.1, "perfused_in_tumour": 100.0}
        return [{"replicate": i, "tumour_volume_mm3": b, **base, **kw} for i, b in enumerate(burden)]

    # Depletion does not speed growth: both arms draw from the same burdens, the N1 arm kills 2.5 % of births.
    data = {"wild-type": arm([1.0, 1.1, 0.9], neutrophils=100.0),
            "tgfb-block": arm([1.0, 0.9, 1.1], neutrophils=70.0, killed_share=0.025, perfused_in_tumour=120.0),
            "tgfb-block-depleted": arm([0.9, 1.1, 1.0])}
    rows = comparison_rows(data, [c for c in COMPARISONS if c.low == "tgfb-block"])
    assert rows and not rows[0][1].holds
    text = _reading(rows, data)[0]
    assert "killed 2.5 % of the tumour cells born" in text and "coefficient of variation 10.0 %" in text
    assert "70 present" in text and "100 in wild-type" in text and "1.2 times the perfused" in text


def test_run_time_skips_runs_found_complete_without_a_wall_time():
    # a sweep killed after a run's file was complete, but before the manifest took its wall time, resumes with the
    # run "found complete" and no time: None in the manifest, nan once read through pandas
    rows = [{"wall_seconds": 60.0}, {"wall_seconds": None}, {"wall_seconds": float("nan")}, {"wall_seconds": 30}]
    assert wall_time(rows) == (90.0, 2)
    assert wall_time([]) == (0.0, 0)
