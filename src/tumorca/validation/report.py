"""Write docs/validation.md and its figures from the validation run files and the physics results.

Reads run files only (through :mod:`tumorca.io` and :mod:`tumorca.analysis`); everything in the report is computed
here from what the runs wrote, nothing is typed in by hand except the calibration history and the prose.
"""
from __future__ import annotations

import datetime as _dt
import math
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import __version__
from .._constants import MINUTES_PER_DAY
from ..io.reader import RunReader
from ..params import Params
from .biology import (COMPARISONS, DIAGNOSTICS, FALSIFICATION, FALSIFICATION_BAND, MEASURES, BiologySuite,
                      PairedSuite, SensitivitySuite, collect, collect_paired, collect_sensitivity, complete_rows)
from .stats import BOOTSTRAP_RESAMPLES, CLAIM_ALPHA, Effect, compare, design_gain, holm

#: The calibration of issue 8: parameter, value before, reason.  The value after is read from :class:`Params`.
CALIBRATION: tuple[tuple[str, Any, str], ...] = (
    ("init_vessels", "parallel",
     "In 2D the parallel vessels are walls across the lattice: the tumour could not grow past the two vessels "
     "beside it, so its size was set by the vessel spacing in every arm. `grid` places vessels along z through "
     "a square grid of (y, x) sites: a 2D lattice is a cross-section of parallel vessels that the tumour grows "
     "around (vessel co-option), and 3D keeps straight vessels."),
    ("vegf_tumor_min", 0.002, "With the old secretion free VEGF stayed below 0.05 nM, a tenth of the sprouting "
     "half-maximum (0.5 nM, Owen 2011): no arm sprouted."),
    ("vegf_tumor_max", 0.02, "as vegf_tumor_min"),
    ("cxcl_tumor_live", 0.002, "CXCL at the vessels stayed near 0.01 nM against K_C = 0.1 nM: even the "
     "knockout recruited only a handful of neutrophils."),
    ("cxcl_tumor_hypoxic", 0.01, "as cxcl_tumor_live"),
    ("neut_recruit_min", 1.0e-4, "as cxcl_tumor_live; the ratio max/min (10) is kept"),
    ("neut_recruit_max", 1.0e-3, "as cxcl_tumor_live"),
    ("neut_vegf_min", 0.005, "Tumour-associated neutrophils are the main source of angiogenic VEGF/MMP9 in these "
     "tumours (Jablonska 2010; Nozawa 2006): with the old output a neutrophil added less VEGF than a hypoxic "
     "tumour cell, so neutrophils could not change vessel growth. The ratio max/min (10) is kept."),
    ("neut_vegf_max", 0.05, "as neut_vegf_min"),
    ("neut_mmp9_min", 0.005, "as neut_vegf_min"),
    ("neut_mmp9_max", 0.05, "as neut_vegf_min"),
    ("ifn_K", 0.5, "With K_I = 0.5 the wild-type level I = 1 suppressed neutrophils to S = 0.2, close to "
     "therapy (S(3) = 0.03), so wild-type and therapy could not differ. K_I = 1 puts the constitutive level at "
     "half suppression (S(1) = 0.5, S(3) = 0.1)."),
    ("neut_kill_rate", 0.001, "Halved so that in wild-type (p* = 0.725) killing by the N1 share does not cancel "
     "the pro-angiogenic effect; still 1/134 of the PhysiCell T-cell upper bound."),
)


#: The calibration of issue 14 (the vessel layer, flow, the host capillary bed, pushing): parameter, value before,
#: reason.  The value after is read from :class:`Params`.
CALIBRATION_14: tuple[tuple[str, Any, str], ...] = (
    ("init_vessels", "grid", "A host capillary bed (parallel capillaries joined by oblique cross-links, arterial "
     "and venous inlets) so that flow can be solved and host tissue is perfused everywhere, not from points 800 "
     "µm apart."),
    ("init_vessel_spacing", 40, "Capillaries 200 µm apart: with the host uptake below, host pO2 stays within "
     "26–52 mmHg (McKeown 2014)."),
    ("init_bed_crosslink_spacing", 40, "Links every 400 µm instead of 800 µm (measured 2026-12-07). Where a "
     "tumour cut a capillary, flow stopped along it up to the next link on either side, so the host tissue "
     "beyond the tumour along the capillaries lost supply: 3D tumours grew to 0.64 of their width along x (96³, "
     "day 9, 2 seeds per arm; 0.80 (wild-type) and 0.88 (knockout) in 2D on 512², day 21, one seed); over the "
     "10 replicates of the previous suites the aspect (`tumour_aspect`) was 0.59 and 0.62 in 3D (day 10) and "
     "0.79 and 0.93 in 2D (wild-type and knockout). With links every 400 µm the width ratio is 0.96–0.98 in 3D "
     "and 0.94–0.96 in 2D, and host pO2 stays within 26–52 mmHg. The denser bed also feeds the wild-type "
     "better: the knockout/wild-type size ratio of the same runs went from 1.07 to 1.12 in 3D (day 9) and from "
     "1.48 to 1.19 in 2D (day 21, one seed); links every 200 µm gave 1.13 and 1.06. The sensitivity table below "
     "varies the spacing with replicates."),
    ("o2_uptake_stroma", 0.1, "The host O2 decay length √(D/λ) was 1000 µm; 2.5/min gives 200 µm, within "
     "100–200 µm."),
    ("perfusion", "loops", "Perfusion from a pressure solve between arterial and venous inlets."),
    ("push_range", 0, "Dividing cells push: a proliferating rim 100 µm thick (spheroids: 100–200 µm, Sutherland "
     "1988) instead of growth only into stroma at the surface."),
    ("vessel_regression_time", MINUTES_PER_DAY, "Blind sprouts regress after about 2 days without flow (Welter 2010, Owen "
     "2011); before, only vessels cut off from every inlet regressed."),
    ("neut_recruit_min", 5.0e-4, "The bed holds about 100 times the perfused sites of the vessel grid: recruitment "
     "per perfused site scaled down to keep about 1 neutrophil per 100 tumour cells in the wild-type and several "
     "per 100 in the knockout, as the issue-8 calibration had (measured on 256², 14 days, 3 seeds)."),
    ("neut_recruit_max", 5.0e-3, "as neut_recruit_min"),
)

#: Realism (issue 14): cited ranges for what the runs measure.  (quantity, cited range, source)
REALISM_SOURCES = {
    "diffusion": ("100–200 µm", "Thomlinson & Gray 1955 (viable rim of tumour cords around a vessel)"),
    "normal_po2": ("26–52 mmHg (3.4–6.8 % O2)", "McKeown 2014, Br J Radiol 87:20130676 (physioxia of most tissues)"),
    "doubling": ("2.8 days", "B16 melanoma in C57BL/6J mice, from the mitotic rate (colchicine method; 'Rate of "
                 "cell division of malignant mouse melanoma B16')"),
    "hypoxic_fraction": ("4.5 % (B16) to 14 % (EMT6/KU) of cells radiobiologically hypoxic in 10-mm subcutaneous "
                         "tumours; rising with size (EMT6/KU 5.9 % at 6 mm, 22 % at 16 mm)",
                         "Jpn J Cancer Res 1986;77:908–15, PMID 3095287 (RIF1, B16, EMT6/KU, SCCVII in syngeneic "
                         "mice; paired survival curves)"),
    "necrotic_fraction": ("1–51 %, rising with volume from 80 to 800 mm³",
                          "Khalil, Horsman & Overgaard, Acta Oncol 1995;34:297–300 (C3H mammary carcinoma, "
                          "histology); B16 tumours 'contained large necrotic areas' (PMID 3095287)"),
    "vessel_fraction_tumour": ("2.1–6.6 % blood volume (vascular volume fraction)",
                               "Radiology 2003;226:214–20, PMID 12511693 (MRI with iron oxide; 9L, DU4475, HT1080, "
                               "EOMA tumours in nude mice)"),
    "vessel_fraction_host": ("7 % capillary volume fraction (healthy rat soleus muscle)",
                             "J R Soc Interface review of muscle oxygenation, PMC5332585, Table 1"),
    "perfused_fraction": ("no direct measure in hand; 8.9 ± 2.4 % of vessels perfused only intermittently over "
                          "20 min (subcutaneous SCCVII)",
                          "Int J Radiat Oncol Biol Phys 1989;16:931–4, PMID 2703399 (two perfusion dyes given "
                          "20 min apart)"),
}


def _realism(phys: Mapping[str, Mapping[str, Any]], data: Mapping[str, list[dict[str, float]]],
             suite: BiologySuite) -> list[str]:
    """The model's values against cited ranges (wild-type and knockout arms of one suite)."""
    def arm(name: str, key: str) -> str:
        v = np.array([r.get(key, math.nan) for r in data.get(name, [])], dtype=np.float64)
        v = v[~np.isnan(v)]
        return f"{_fmt(float(v.mean()))} ± {_fmt(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 2)}" if len(v) else "–"

    # the bed's pO2 is measured on a lattice of the suite's dimension; the decay length does not depend on it
    h, d = phys.get("host_tissue"), phys.get("decay_length")
    h_bed = phys.get("host_tissue_3d" if len(suite.shape) == 3 else "host_tissue") or h
    rows = ["| quantity | model | cited | source |", "|---|---|---|---|"]
    if h:
        rows.append(f"| O2 diffusion length, host tissue | {h['decay_measured_um']:.0f} µm (√(D/λ) = "
                    f"{h['decay_expected_um']:.0f} µm) | {REALISM_SOURCES['diffusion'][0]} | "
                    f"{REALISM_SOURCES['diffusion'][1]} |")
    if d:
        rows.append(f"| O2 diffusion length, live tumour | {d['measured_um']:.0f} µm (√(D/λ) = {d['expected_um']:.0f} "
                    f"µm) | {REALISM_SOURCES['diffusion'][0]} | {REALISM_SOURCES['diffusion'][1]} |")
    if h_bed:
        rows.append(f"| normal-tissue pO2 (host bed, no tumour; {h_bed['lattice']}) | mean {h_bed['mean_o2']:.1f} "
                    f"mmHg, 10th percentile {h_bed['p10_o2']:.1f}, min {h_bed['min_o2']:.1f} | "
                    f"{REALISM_SOURCES['normal_po2'][0]} | "
                    f"{REALISM_SOURCES['normal_po2'][1]} |")
    for label, key in (("tumour hypoxic fraction (live tumour < hypoxia_o2)", "hypoxic_fraction"),
                       ("tumour necrotic fraction", "necrotic_fraction"),
                       ("vessel share of tumour sites", "vessel_fraction_tumour"),
                       ("vessel share of host sites within 200 µm of the tumour", "vessel_fraction_host"),
                       ("perfused share of all vessel sites", "perfused_fraction")):
        cited, source = REALISM_SOURCES.get(key, ("no cited range in hand", "–"))
        rows.append(f"| {label}: wild-type / knockout | {arm('wild-type', key)} / {arm('ifnb-knockout', key)} | "
                    f"{cited} | {source} |")
    rows.append(f"| tumour volume doubling time, second half of the run (days): wild-type / knockout | "
                f"{arm('wild-type', 'doubling_time_days')} / {arm('ifnb-knockout', 'doubling_time_days')} | "
                f"{REALISM_SOURCES['doubling'][0]} | {REALISM_SOURCES['doubling'][1]} |")
    dim = "2D lattice: a vessel is a line of sites, a sheet in 3D, so vessel shares are those of a section" \
        if len(suite.shape) == 2 else "3D lattice"
    return [f"Realism ({suite.name}; {dim}). Every model value is computed from the runs or the physics checks; a "
            "range is given only where a source was in hand in the session that built this table. Where the "
            "measures differ the row says so: a radiobiological hypoxic fraction counts cells below about 1–3 "
            "mmHg, the model's hypoxic fraction those below `hypoxia_o2`; a share of 20-µm sites that hold a "
            "vessel bounds a vascular volume fraction from above (a capillary fills only part of its site).",
            "", *rows, ""]


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    ax = abs(x)
    if ax != 0 and (ax < 1e-3 or ax >= 1e5):
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def comparison_rows(data: Mapping[str, list[dict[str, float]]], comparisons=COMPARISONS) -> list[tuple[Any, Effect]]:
    """Every comparison of ``comparisons`` whose two arms are in ``data``."""
    rows = []
    for c in comparisons:
        if c.high in data and c.low in data and data[c.high] and data[c.low]:
            hi = {int(r["replicate"]): float(r[c.measure]) for r in data[c.high]}
            lo = {int(r["replicate"]): float(r[c.measure]) for r in data[c.low]}
            rows.append((c, compare(hi, lo)))
    return list(zip([c for c, _ in rows], holm([e for _, e in rows])))


def _arm_mean(data: Mapping[str, list[dict[str, float]]], arm: str, k: str) -> float:
    """Mean of measure ``k`` over the runs of ``arm`` (nan where missing)."""
    runs = data.get(arm)
    return float(np.nanmean(np.array([r[k] for r in runs], dtype=np.float64))) if runs else math.nan


def _reading(rows: list[tuple[Any, Effect]], data: Mapping[str, list[dict[str, float]]]) -> list[str]:
    """One paragraph that reads the table: what holds, and, when knockout > wild-type in burden does not, the
    numbers that say where the chain from neutrophils to burden weakens."""
    held = [c.claim for c, e in rows if e.holds]
    weak = [c.claim for c, e in rows if not e.holds]
    text = f"**Reading.** {len(held)} of {len(rows)} claims hold (Holm-adjusted p < {CLAIM_ALPHA})."
    if weak:
        text += " Not supported here: " + "; ".join(weak) + "."
    burden_weak = any(c.measure == "tumour_volume_mm3" and c.high == "ifnb-knockout" and c.low == "wild-type"
                      and e.computed and not e.holds for c, e in rows)
    if burden_weak and "ifnb-knockout" in data and "wild-type" in data:
        def ratio(k: str) -> float:  # a measure that is 0 in the wild-type (an overrun box) has no ratio
            wt = _arm_mean(data, "wild-type", k)
            return _arm_mean(data, "ifnb-knockout", k) / wt if wt else math.nan

        ratios = {k: ratio(k) for k in ("vessel_sites", "perfused_sites", "perfused_in_tumour", "tumour_volume_mm3")}
        text += (" Knockout against wild-type: " + ", ".join(f"{_fmt(v)} times the {k.replace('_', ' ')}"
                                                             for k, v in ratios.items()) + ".")
    n1_weak = any(c.high == "tgfb-block-depleted" and c.low == "tgfb-block" and e.computed and not e.holds
                  for c, e in rows)
    if n1_weak and data.get("tgfb-block") and data.get("tgfb-block-depleted"):
        text += " " + _n1_reading(data)
    return [text]


def _n1_reading(data: Mapping[str, list[dict[str, float]]]) -> str:
    """Why depleting N1-biased neutrophils does not speed growth, in the runs' numbers: how much of the tumour's
    growth the N1 cells kill, against the spread of burden between replicates, and what else they still do."""
    def mean(arm: str, k: str) -> float:
        return _arm_mean(data, arm, k)

    burden = np.array([r["tumour_volume_mm3"] for r in data["tgfb-block-depleted"]], dtype=np.float64)
    cv = float(burden.std(ddof=1) / burden.mean()) if len(burden) > 1 and burden.mean() else math.nan
    cover = mean("tgfb-block", "perfused_in_tumour") / mean("tgfb-block-depleted", "perfused_in_tumour")
    killed = mean("tgfb-block", "killed_share")
    than = "less than" if killed < cv else "not less than"
    return (f"With TGF-β blocked the N1-biased neutrophils ({_fmt(mean('tgfb-block', 'neutrophils'))} present on "
            f"average, against {_fmt(mean('wild-type', 'neutrophils'))} in wild-type) killed "
            f"{100 * killed:.1f} % of the tumour cells born over the run, {than} the "
            f"spread of burden between replicates of the depleted arm (coefficient of variation "
            f"{100 * cv:.1f} %); they still secrete {_fmt(mean('tgfb-block', 'vegf_per_neutrophil'))} nM/min of "
            f"VEGF each, and their tumours held {_fmt(cover)} times the perfused vessel sites under tumour of the "
            "depleted arm.")


def _falsification(data: Mapping[str, list[dict[str, float]]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The knockout / wild-type burden ratio with the whole chain and with one link cut (:data:`FALSIFICATION`),
    beside the ratios of perfused vessel coverage of the tumour's rim and of perfused vessel sites under tumour."""
    lo_band, hi_band = FALSIFICATION_BAND
    out = ["| condition | arms (knockout / wild-type) | n | burden ratio [95 % CI] | in "
           f"{lo_band}–{hi_band} | rim coverage ratio [95 % CI] | perfused sites under tumour, ratio [95 % CI] |",
           "|---|---|---|---|---|---|---|"]
    found = []
    for label, ko, wt in FALSIFICATION:
        if not (data.get(ko) and data.get(wt)):
            continue
        e, rim, c = (compare({int(r["replicate"]): float(r[k]) for r in data[ko]},
                             {int(r["replicate"]): float(r[k]) for r in data[wt]})
                     for k in ("tumour_volume_mm3", "rim_coverage", "perfused_in_tumour"))
        inside = lo_band <= e.ratio <= hi_band
        found.append({"condition": label, "ratio": e.ratio, "ratio_ci": e.ratio_ci, "inside": inside,
                      "rim_coverage_ratio": rim.ratio, "coverage_ratio": c.ratio})
        out.append(f"| {label} | {ko} / {wt} | {e.n_high}, {e.n_low} | {_fmt(e.ratio)} [{_fmt(e.ratio_ci[0])}, "
                   f"{_fmt(e.ratio_ci[1])}] | {'yes' if inside else 'no'} | "
                   + " | ".join(f"{_fmt(x.ratio)} [{_fmt(x.ratio_ci[0])}, {_fmt(x.ratio_ci[1])}]" for x in (rim, c))
                   + " |")
    return out, found


def _comparison_table(rows: list[tuple[Any, Effect]]) -> list[str]:
    out = ["| claim | n (high, low) | mean high | mean low | ratio [95 % CI] | A12 | p (Mann–Whitney) | "
           "p (Holm) | p (Wilcoxon, paired) | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c, e in rows:
        out.append(f"| {c.claim} | {e.n_high}, {e.n_low} | {_fmt(e.mean_high)} | {_fmt(e.mean_low)} | "
                   f"{_fmt(e.ratio)} [{_fmt(e.ratio_ci[0])}, {_fmt(e.ratio_ci[1])}] | {_fmt(e.a12, 2)} | "
                   f"{_p(e.p_mannwhitney)} | {_p(e.p_holm)} | {_p(e.p_wilcoxon)} | {e.verdict} |")
    return out


def _arm_table(data: Mapping[str, list[dict[str, float]]]) -> list[str]:
    keys = ["tumour_volume_mm3", "tumour_sites", "necrotic_fraction", "vessel_sites", "perfused_sites",
            "perfused_in_tumour", "rim_coverage", "neutrophils",
            "vegf_per_neutrophil", "mmp9_per_neutrophil", "neutrophil_lifespan_h", "killed_share", "tumour_aspect",
            "at_edge"]
    out = ["| arm | n | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for arm, runs in data.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in runs], dtype=np.float64)
            v = v[~np.isnan(v)]
            cells.append(f"{_fmt(float(v.mean()))} ± {_fmt(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 2)}"
                         if len(v) else "–")
        out.append(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    return out


def _curves(suite: BiologySuite, root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per arm: time (days) and the tumour sites, vessel sites and neutrophils of every replicate."""
    out = {}
    for arm in suite.arms:
        rows = complete_rows(suite.outdir(root, arm))
        series: dict[str, list[np.ndarray]] = {"tumour": [], "vessels": [], "neutrophils": []}
        t = None
        for r in rows:
            with RunReader(r["path"]) as rr:
                ts = rr.timeseries()
            t = ts["time_min"] / MINUTES_PER_DAY
            series["tumour"].append(ts["tumor_live"] + ts["necrotic"])
            series["vessels"].append(ts["vessel_sites"])
            series["neutrophils"].append(ts["neutrophils"])
        if t is not None:
            out[arm] = {"t": t, **{k: np.array(v, dtype=np.float64) for k, v in series.items()}}
    return out


def _max_o2_residual(suite: BiologySuite, root: Path) -> tuple[float, float]:
    """The largest O2 solver correction (mmHg) over every step of every run, and the tolerance."""
    worst = 0.0
    tol = Params().o2_tol
    for arm in suite.arms:
        rows = complete_rows(suite.outdir(root, arm))
        for r in rows:
            with RunReader(r["path"]) as rr:
                ts = rr.timeseries()
                tol = rr.plan.params.o2_tol
            worst = max(worst, float(np.max(ts["o2_residual"])))
    return worst, tol


def _plot_curves(curves: Mapping[str, Mapping[str, np.ndarray]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    import matplotlib

    fig = Figure(figsize=(14, 4.2))
    axes = fig.subplots(1, 3)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, rec) in enumerate(curves.items()):
        col = colors[i % len(colors)]
        for ax, key, label in zip(axes, ("tumour", "vessels", "neutrophils"),
                                  ("tumour sites (live + necrotic)", "vessel sites", "neutrophils")):
            y = rec[key]
            m = y.mean(axis=0)
            sd = y.std(axis=0, ddof=1) if len(y) > 1 else np.zeros_like(m)
            ax.fill_between(rec["t"], m - sd, m + sd, color=col, alpha=0.2, linewidth=0)
            ax.plot(rec["t"], m, color=col, linewidth=1.8, label=f"{arm} (n={len(y)})")
            ax.set_xlabel("time (days)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="mean ± sd", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_boxes(data: Mapping[str, list[dict[str, float]]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    keys = ("tumour_sites", "vessel_sites", "neutrophils", "vegf_per_neutrophil", "neutrophil_lifespan_h")
    fig = Figure(figsize=(3.2 * len(keys), 4.2))
    axes = fig.subplots(1, len(keys))
    arms = list(data)
    rng = np.random.default_rng(0)
    for ax, k in zip(axes, keys):
        vals = [np.array([r[k] for r in data[a]], dtype=np.float64) for a in arms]
        vals = [v[~np.isnan(v)] for v in vals]
        ax.boxplot([v if len(v) else [np.nan] for v in vals], showfliers=False)
        for i, v in enumerate(vals):
            ax.plot(i + 1 + rng.uniform(-0.15, 0.15, len(v)), v, ".", color="k", alpha=0.6, markersize=4)
        ax.set_xticks(range(1, len(arms) + 1), arms, rotation=60, ha="right", fontsize=7)
        ax.set_title(k.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_final_frames(suite: BiologySuite, root: Path, path: Path, replicate: int = 0) -> None:
    """The last frame of one replicate per arm (2D, or the mid-z slice in 3D), cropped around the centre to the
    middle half of the lattice (at least 128 sites), where the tumour is."""
    from matplotlib.figure import Figure

    from ..analysis.plots import PERFUSED, UNPERFUSED, lattice_interpolation, tissue_rgb

    def _hex(c: str) -> tuple[float, float, float]:
        return tuple(int(c.lstrip("#")[k:k + 2], 16) / 255.0 for k in (0, 2, 4))

    arms = list(suite.arms)
    half = max(64, min(suite.shape[-2:]) // 4)
    fig = Figure(figsize=(2.6 * len(arms), 2.9))
    axes = fig.subplots(1, len(arms))
    axes = np.atleast_1d(axes)
    crop = None
    for ax, arm in zip(axes, arms):
        rows = [r for r in complete_rows(suite.outdir(root, arm)) if int(r["replicate"]) == replicate]
        ax.axis("off")
        if not rows:
            continue
        with RunReader(rows[0]["path"]) as rr:
            tis = rr.frame("tissue", -1)
            ves = rr.frame("vessel", -1)
            perf = rr.frame("perfused", -1)
            day = float(rr.times[-1]) / MINUTES_PER_DAY
        if tis.ndim == 3:
            tis, ves, perf = (a[a.shape[0] // 2] for a in (tis, ves, perf))
        cy, cx = tis.shape[0] // 2, tis.shape[1] // 2
        box = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
        rgb = tissue_rgb(tis[box])
        crop = rgb.shape[:2]
        # the vessel layer over the tissue: perfused and not perfused
        rgb[(ves[box] != 0) & (perf[box] == 0)] = _hex(UNPERFUSED[0])
        rgb[(ves[box] != 0) & (perf[box] != 0)] = _hex(PERFUSED[0])
        ax.imshow(rgb, interpolation=lattice_interpolation(ax, rgb.shape))
        ax.set_title(f"{arm}\nday {day:g}", fontsize=8)
    # the crop is the whole lattice (or slice) when it is smaller than the middle-half box
    where = f"centre {crop[0]}x{crop[1]} sites" if crop is not None else "no complete run"
    fig.suptitle(f"{suite.name}: last frame, replicate {replicate}, {where}; vessels dark blue "
                 "(perfused) and light blue (not)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _plot_physics(phys: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(21, 4))
    axes = fig.subplots(1, 5)
    d = phys["decay_length"]
    axes[0].plot(d["y_um"], d["o2"], ".", markersize=3, label="simulated")
    axes[0].plot(d["y_um"], d["fit"], "-", label=f"cosh fit, ℓ = {d['measured_um']:.1f} µm")
    axes[0].set(xlabel="distance across the slab (µm)", ylabel="pO2 (mmHg)",
                title=f"O2 between two vessels; √(D/λ) = {d['expected_um']:.1f} µm")
    c = phys["critical_radius"]
    axes[1].plot(c["radii"], c["centre_o2"], "o", label="simulated centre pO2")
    axes[1].plot(c["radii"], c["bessel"], "-", label="c_rim / I0(R/ℓ)")
    axes[1].axhline(c["onset"], color="r", linestyle=":", label="necrosis onset")
    axes[1].axvline(c["expected_sites"], color="k", linestyle="--", label=f"analytic R_c = {c['expected_sites']:.1f}")
    g = phys.get("necrosis_onset_in_growing_disk")
    axes[1].set(xlabel="disk radius (sites)", ylabel="pO2 (mmHg)", title="avascular disk: centre pO2")
    if g is not None:
        ax = axes[4]
        ax.plot(g["days"], g["radius_sites"], "-", label="colony equivalent radius R(t)")
        ok = g["critical_radius_sites"] > 0
        ax.plot(g["days"][ok], g["critical_radius_sites"][ok], "--",
                label=f"R_q(t) = ℓ·I0⁻¹(c_rim(t)/{g['threshold_o2']:g})")
        if not math.isnan(g["radius_at_quiescent_core_sites"]):
            i = int(np.argmin(np.abs(g["radius_sites"] - g["radius_at_quiescent_core_sites"])))
            ax.plot(g["days"][i], g["radius_sites"][i], "o", label="core first below 8.9 mmHg")
            ax.plot(g["days"][-1], g["radius_sites"][-1], "s", label="first necrotic site")
        ax.set(xlabel="time (days)", ylabel="radius (sites)", title=f"growing avascular colony, {g['lattice']}")
    k = phys["colony_growth"]
    axes[2].plot(k["days"], k["radius_um"], ".", label="simulated")
    axes[2].plot(k["fit_days"], k["fit_um"], "-", label=f"linear fit {k['speed_um_per_day']:.1f} µm/day, "
                 f"R² = {k['r2']:.4f}")
    axes[2].plot(k["days"], k["radius_um"][0] + k["fkpp_um_per_day"] * k["days"], "--",
                 label=f"Fisher–KPP estimate {k['fkpp_um_per_day']:.1f} µm/day")
    axes[2].set(xlabel="time (days)", ylabel="equivalent radius (µm)", title="nutrient-unlimited colony")
    r = phys["front_roughness"]
    axes[3].loglog(r["days"], r["width_sites"], ".", label="simulated w(t)")
    axes[3].loglog(r["fit_days"], r["fit_width"], "-", label=f"fit β = {r['beta']:.3f}")
    axes[3].loglog(r["fit_days"], r["fit_width"][0] * (r["fit_days"] / r["fit_days"][0]) ** (1 / 3), "--",
                   label="slope 1/3 (KPZ)")
    axes[3].set(xlabel="time (days)", ylabel="front width (sites)", title=f"flat front, {r['lattice']}")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _physics_table(phys: Mapping[str, Mapping[str, Any]]) -> list[str]:
    d, c, k, r = (phys[n] for n in ("decay_length", "critical_radius", "colony_growth", "front_roughness"))
    g = phys.get("necrosis_onset_in_growing_disk")
    out = ["| check | measured | analytic / expected | error | lattice |", "|---|---|---|---|---|",
           f"| O2 decay length in live tumour, ℓ = √(D/λ) | {d['measured_um']:.2f} µm | {d['expected_um']:.2f} µm "
           f"| {100 * d['rel_error']:.2f} % | {d['lattice']} |",
           f"| critical radius of an avascular disk (static disks), R_c = ℓ·I0⁻¹(c_rim/c_onset) | "
           f"{c['measured_sites']:.2f} sites | {c['expected_sites']:.2f} sites (c_rim = {c['rim_o2']:.1f} mmHg; "
           f"{c['expected_sites_38']:.1f} sites for c_rim = 38) | {100 * c['rel_error']:.2f} % | up to "
           f"{2 * int(c['radii'][-1]) + 5}² |"]
    if g is not None:
        out.append(f"| growing avascular colony: radius when its core first goes quiescent, R_q = "
                   f"ℓ·I0⁻¹(c_rim/c_q), c_q = {g['threshold_o2']:g} mmHg | {g['radius_at_quiescent_core_sites']:.2f} "
                   f"sites | {g['expected_sites']:.2f} sites (c_rim = {g['rim_o2_then']:.1f} mmHg then) | "
                   f"{100 * g['rel_error']:.1f} % | {g['lattice']} |")
        out.append(f"| … first necrotic site (quiescent death) after the core went quiescent | "
                   f"{g['delay_min']:.0f} min, at R = {g['radius_at_first_necrosis_sites']:.2f} sites | "
                   f"quiescent_death_time = {g['expected_delay_min']:.0f} min (rounded up to whole steps) | "
                   f"{abs(g['delay_min'] - g['expected_delay_min']):.0f} min | {g['lattice']} |")
    out += [f"| nutrient-unlimited colony: radius linear in time (slope over the first and the second half of "
            f"the fit; R² = {k['r2']:.5f}) | {k['slope_first_half']:.2f} and {k['slope_second_half']:.2f} µm/day | "
            f"equal slopes | {100 * k['linearity_error']:.1f} % | {k['lattice']} |",
            f"| front speed vs the Fisher–KPP linear spreading speed min_λ r·M(λ)/λ (along an axis; "
            f"{k['fkpp_diagonal']:.1f} µm/day along a diagonal) | {k['speed_um_per_day']:.2f} µm/day | "
            f"{k['fkpp_um_per_day']:.2f} µm/day | ratio {k['ratio_to_fkpp']:.2f} | {k['lattice']} |",
            f"| flat-front roughness exponent β{' (quick: too small to measure β)' if r['seeds'] < 2 else ''} | "
            f"{r['beta']:.3f} | 1/3 (KPZ) | {100 * r['rel_error']:.0f} % | {r['lattice']}, {r['seeds']} seeds, fit "
            f"after day {r['skip_days']:g} |"]
    return out


def _sensitivity_table(sens: Mapping[str, Mapping[str, list[dict[str, float]]]]) -> list[str]:
    keys = (("tumour_sites", "burden"), ("vessel_sites", "vessels"), ("neutrophils", "neutrophils"),
            ("vegf_per_neutrophil", "VEGF/neutrophil"), ("neutrophil_lifespan_h", "lifespan"))
    out = ["| variant | n per arm | " + " | ".join(f"{lab} KO/WT (p)" for _, lab in keys) + " |",
           "|---|---|" + "---|" * len(keys)]
    for label, arms in sens.items():
        if "ifnb-knockout" not in arms or "wild-type" not in arms:
            continue
        cells = []
        for k, _ in keys:
            e = compare({r["replicate"]: r[k] for r in arms["ifnb-knockout"]},
                        {r["replicate"]: r[k] for r in arms["wild-type"]})
            cells.append(f"{_fmt(e.ratio)} ({_p(e.p_mannwhitney)})")
        out.append(f"| {label} | {min(len(v) for v in arms.values())} | " + " | ".join(cells) + " |")
    return out


def _paired_section(suite: PairedSuite, root: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The branched (paired) design against independent replicates, at n = 5 and n = all replicates."""
    data = collect_paired(suite, root)
    n_all = min(len(v) for v in data.values())
    if n_all < 2:
        return [], []
    shape = "x".join(map(str, suite.shape))
    lines = [f"## Paired design: branching against independent replicates ({shape}, {suite.control} against "
             f"{suite.treatment} from day {suite.branch_day:g} to day {suite.days:g})", "",
             f"Each replicate grows one {suite.control} parent to day {suite.branch_day:g} and continues it twice "
             f"from the very same state: untreated and treated (`[branch]` in a sweep file; the arms share the "
             "tumour, the vessels and, from the branch on, the random numbers). The independent design runs the "
             "treatment from the same day in tumours grown from other seeds and compares them with the same "
             "controls. The claim is burden (tumour volume) control > treated; the paired design tests it with the "
             "Wilcoxon signed-rank test of the per-parent differences, the independent one with the Mann–Whitney U "
             "test. The relative efficiency is (var(control) + var(treated)) / var(paired differences): how many "
             "times more replicates per arm the independent design needs for the paired design's standard error.",
             "", "| n per arm | burden ratio, paired [95 % CI] | burden ratio, independent [95 % CI] | "
             "p paired (Wilcoxon) | p independent (Mann–Whitney) | relative efficiency |",
             "|---|---|---|---|---|---|"]
    out = []
    for n in sorted({min(5, n_all), n_all}):
        g = design_gain(data["control"], data["treated_paired"], data["treated_independent"], n)
        lines.append(f"| {n} | {_fmt(g.paired.ratio)} [{_fmt(g.paired.ratio_ci[0])}, {_fmt(g.paired.ratio_ci[1])}] "
                     f"| {_fmt(g.independent.ratio)} [{_fmt(g.independent.ratio_ci[0])}, "
                     f"{_fmt(g.independent.ratio_ci[1])}] | {_p(g.paired.p_wilcoxon)} | "
                     f"{_p(g.independent.p_mannwhitney)} | {_fmt(g.relative_efficiency)} |")
        out.append({"n": n, "ratio_paired": g.paired.ratio, "ratio_independent": g.independent.ratio,
                    "p_paired": g.paired.p_wilcoxon, "p_independent": g.independent.p_mannwhitney,
                    "relative_efficiency": g.relative_efficiency})
    lines += ["", "The ratio's interval resamples the arms independently, so it is as wide for both designs; the "
              "pairing shows in the p-value and the efficiency.", ""]
    return lines, out


def wall_time(rows: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """The summed ``wall_seconds`` of manifest rows, and how many rows have none recorded (None or nan)."""
    walls = [math.nan if r.get("wall_seconds") is None else float(r["wall_seconds"]) for r in rows]
    return sum(w for w in walls if math.isfinite(w)), sum(1 for w in walls if not math.isfinite(w))


def write_report(path: Path, root: Path, suites: Sequence[BiologySuite], sensitivity: SensitivitySuite | None,
                 phys: Mapping[str, Mapping[str, Any]], command: str, wall_s: float,
                 paired: PairedSuite | None = None) -> dict[str, Any]:
    """Write the Markdown report (and figures beside it in ``<stem>/``); return the numbers it quotes."""
    path = Path(path)
    fig_dir = path.parent / path.stem
    fig_dir.mkdir(parents=True, exist_ok=True)
    rel = fig_dir.name
    p = Params()
    # the runs' own wall times, from the sweep manifests (they may predate this command); a run whose file was
    # found complete after its sweep was killed has none recorded
    n_runs, run_s, untimed = 0, 0.0, 0
    for sweep in [*suites, *([sensitivity] if sensitivity is not None else []), *([paired] if paired else [])]:
        for arm in sweep.arms:
            if (sweep.outdir(root, arm) / "manifest.json").exists():
                rows = complete_rows(sweep.outdir(root, arm))
                n_runs += len(rows)
                seconds, missing = wall_time(rows)
                run_s += seconds
                untimed += missing
    untimed_note = f"; {untimed} found complete without a recorded wall time" if untimed else ""
    lines = [
        "# Validation: does tumorca reproduce what it claims?", "",
        f"Generated by `{command}` on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(tumorca {__version__}, Python {platform.python_version()}): {n_runs} simulation runs, "
        f"{run_s / 3600:.1f} h of run time in all (the sum of their wall times, one thread each{untimed_note}; the "
        f"sweeps ran two at a time), and {wall_s / 60:.0f} min for this command (physics checks, statistics, "
        "figures; runs found complete were kept). Every number and figure below is computed from the run files under the "
        "validation output directory by `tumorca.validation.report`; rerunning the command regenerates this page.",
        "",
        "## How to read it", "",
        "- Each **arm** is a preset (docs/model.md §4) run as one sweep (`tumorca.sweep`) of replicates. "
        "Replicate *i* of every arm shares a seed (common random numbers), so arms differ only by their parameters.",
        f"- Each **claim** `high > low` is tested one-sided with the Mann–Whitney U test (unpaired; it ignores the "
        "shared seeds and is conservative) and, beside it, the paired Wilcoxon signed-rank test. The effect size "
        f"is the ratio of means with a percentile-bootstrap 95 % CI ({BOOTSTRAP_RESAMPLES} resamples, arms "
        "resampled independently) and A12 = P(X_high > X_low) + ½·P(X_high = X_low). Mann–Whitney p-values are "
        "exact without ties and a seeded permutation estimate with ties; the claims of one table are one family, "
        f"adjusted by Holm's method. A claim **holds** when the direction is right and the Holm-adjusted p < {CLAIM_ALPHA}; "
        "*direction only* when the means are ordered as claimed but the test does not reject; *fails* otherwise.",
        "- VEGF and MMP9 output per neutrophil are the same number at the defaults (`neut_vegf_*` = `neut_mmp9_*`), "
        "so only VEGF is a claim; MMP9 is in the per-arm tables.",
        "- Measures: " + "; ".join(f"`{k}`: {v}" for k, v in MEASURES.items()) + ".",
        "- Nothing is special-cased: a preset only sets parameters (`tumorca presets`), and every measure is "
        "computed the same way for every run.", "",
    ]
    results: dict[str, Any] = {"suites": {}}
    for suite in suites:
        data = collect(suite, root)
        if not any(data.values()):
            continue
        shape = "x".join(map(str, suite.shape))
        rows = comparison_rows(data)
        worst, tol = _max_o2_residual(suite, root)
        results["suites"][suite.name] = {"rows": rows, "data": data}
        counts = [len(v) for v in data.values()]
        n_text = (f"{counts[0]} replicates per arm" if len(set(counts)) == 1 else
                  f"{min(counts)}–{max(counts)} complete replicates per arm of {suite.replicates}")
        ok = worst <= tol * (1 + 1e-6)
        edge = sum(int(r.get("at_edge", 0.0)) for runs in data.values() for r in runs)
        overrun = ([f"**Lattice overrun:** in {edge} of {sum(counts)} runs the tumour reached the lattice faces by "
                    "the end, so its burden, vessels and O2 are set by the box, not by the model: the comparisons "
                    "below are not informative where that happened (per-arm counts in the `at_edge` column).", ""]
                   if edge else [])
        lines += [f"## Biology: {suite.name} ({shape}, {suite.days:g} days, {n_text})",
                  "", *overrun, *_comparison_table(rows), "", *_reading(rows, data), "",
                  "Mechanism checks (not claims of the paper; they show where the chain from neutrophils to burden "
                  "holds or breaks):", "", *_comparison_table(comparison_rows(data, DIAGNOSTICS)), "",
                  "Per arm (mean ± sd over replicates):", "", *_arm_table(data),
                  "", f"O2 solver: `{suite.o2_solver}`; the largest O2 solver measure (the error estimate with mgcg, "
                  f"the last correction otherwise) at the end of any step of any run was {worst:.2g} mmHg: "
                  f"{'within' if ok else 'ABOVE'} the tolerance `o2_tol` = {tol:g}.", ""]
        fals, found = _falsification(data)
        if found:
            lines += ["The mechanism, falsifiable: the knockout / wild-type burden ratio (tumour volume) with the whole "
                      "chain from IFN-β to neutrophils to vessels, and with one link cut. Where a link is cut the "
                      f"ratio should fall into {FALSIFICATION_BAND[0]}–{FALSIFICATION_BAND[1]}; beside it the ratios it "
                      "should track: of perfused vessel coverage of the rim (`rim_coverage`) and of perfused vessel "
                      "sites under tumour. The band is "
                      "checked on the point estimate; the CI says how sure that is.", "", *fals, ""]
            results["suites"][suite.name]["falsification"] = found
        lines += _realism(phys, data, suite)
        curves = _curves(suite, root)
        _plot_curves(curves, fig_dir / f"{suite.name}-curves.png", f"{suite.name}: {shape}")
        _plot_boxes(data, fig_dir / f"{suite.name}-measures.png", f"{suite.name}: per-run measures")
        _plot_final_frames(suite, root, fig_dir / f"{suite.name}-frames.png")
        lines += [f"![growth curves]({rel}/{suite.name}-curves.png)", "",
                  f"![per-run measures]({rel}/{suite.name}-measures.png)", "",
                  f"![last frames]({rel}/{suite.name}-frames.png)", "",
                  "Last frames: replicate 0 of every arm (the same seed in every arm), the centre of the lattice "
                  "(3D: the middle z slice); dark orange cycling tumour, light orange quiescent, dark grey necrotic, "
                  "light grey stroma, and the vessel layer over them: dark blue where it carries flow, light blue "
                  "where it does not.", ""]
    if phys:
        _plot_physics(phys, fig_dir / "physics.png")
        lines += ["## Physics", "", *_physics_table(phys), "", f"![physics checks]({rel}/physics.png)", "",
                  "- **Decay length**: a slab of live tumour between two vessel rows; ℓ fitted to the whole profile "
                  "c_v·cosh((y − c)/ℓ)/cosh(c/ℓ). In stroma (λ = `o2_uptake_stroma`) the same length is "
                  f"{math.sqrt(p.o2_diffusivity / p.o2_uptake_stroma):.0f} µm." if p.o2_uptake_stroma > 0 else "",
                  "- **Critical radius**: a disk of live tumour (uptake λ, ℓ = √(D/λ)) with rim pO2 c_rim has centre "
                  f"pO2 c_rim/I0(R/ℓ). Static disks, two stroma sites inside a lattice edge held at "
                  f"`o2_boundary_value` = {p.o2_boundary_value:g} mmHg (the rim is lower: O2 flows through the gap): "
                  f"the centre crosses the hypoxic-necrosis onset (`necrosis_o2_onset` = {p.necrosis_o2_onset:g} "
                  f"mmHg) at R_c = ℓ·I0⁻¹(c_rim/{p.necrosis_o2_onset:g}). In a growing colony the core dies first by "
                  f"the other route of the model: below `quiescence_o2_enter` ({p.quiescence_o2_enter:g} mmHg) cells "
                  "stop cycling and die after `quiescent_death_time`, so the necrotic core starts when the colony "
                  f"passes R_q = ℓ·I0⁻¹(c_rim/{p.quiescence_o2_enter:g}), evaluated with the rim pO2 of that moment "
                  "(it falls as the colony grows), and the first necrotic site follows one `quiescent_death_time` "
                  "later. The colony is not a perfect disk (its radius is the equivalent radius of its area), which "
                  "is most of the error.",
                  "- **Linear growth**: no O2 uptake anywhere, so every site stays at `init_o2` = `cycle_o2_high` "
                  "(full division rate); the equivalent radius is fitted after day 5, and linear means the slopes of "
                  "the two halves of that window agree.",
                  "- **Fisher–KPP**: cells dividing at r into a uniformly chosen Moore neighbour spread, linearised, "
                  "at v = min_λ r·M(λ)/λ with M the kernel's moment generating function (1.33·r·Δx along an axis, "
                  "1.37 along a diagonal; the diffusion approximation 2√(r·D_eff) would give 1.22). The lattice rule "
                  "is faster: a rim cell with k empty neighbours divides at the full rate r into one of them (the "
                  "mean field would give r·k/8), so the crowded interior pushes the front. The ratio is reported, "
                  "not tuned.",
                  "- **Roughness**: a flat strip of tumour grows upward with unlimited O2; w(t) is the standard "
                  "deviation of the column heights (w² averaged over seeds), β the slope of log w against log t "
                  "after the early random-deposition regime. The Eden width grows slowly with a small prefactor, "
                  "so β over this range carries the crossover; the page states what was measured, not a fitted "
                  "target.", ""]
        results["physics"] = {k: {kk: vv for kk, vv in v.items() if np.ndim(vv) == 0} for k, v in phys.items()}
    if sensitivity is not None:
        sens = collect_sensitivity(sensitivity, root)
        if any(sens.values()):
            runs = [r for arms in sens.values() for rs in arms.values() for r in rs]
            edge = sum(int(r.get("at_edge", 0.0)) for r in runs)
            overrun = ([f"**Lattice overrun:** in {edge} of {len(runs)} runs the tumour reached the lattice faces by "
                        "the end; where it did, the ratios below are set by the box, not by the parameter.", ""]
                       if edge else [])
            lines += [f"## Sensitivity of the knockout / wild-type contrast ({'x'.join(map(str, sensitivity.shape))}, "
                      f"{sensitivity.days:g} days, {sensitivity.replicates} replicates per variant and arm)", "",
                      *overrun,
                      "One parameter (or one pair) changed at a time from the calibrated defaults; each cell is the "
                      "ratio of knockout to wild-type means and the one-sided Mann–Whitney p-value (unadjusted). "
                      "With 3 replicates the smallest attainable p is 0.05, so this table shows how effect sizes "
                      "move, not significance. Variants name the value they set (K_I and h are absolute).", "", *_sensitivity_table(sens), ""]
            results["sensitivity"] = sens
    if paired is not None:
        section, results["paired_design"] = _paired_section(paired, root)
        lines += section
    lines += ["## Calibration", "",
              "Issue 14 (vessel layer, flow, host capillary bed, pushing) changed these defaults; every change and "
              "its reason (each parameter's source is in `tumorca params`):", "",
              "| parameter | before | now | reason |", "|---|---|---|---|"]
    for name, before, why in CALIBRATION_14:
        lines.append(f"| `{name}` | {before} | {p[name]} | {why} |")
    lines += ["", "Issue 8 had calibrated the earlier defaults within their cited ranges; its changes, with the value "
              "each parameter has now:", "",
              "| parameter | before | now | reason |", "|---|---|---|---|"]
    for name, before, why in CALIBRATION:
        lines.append(f"| `{name}` | {before} | {p[name]} | {why} |")
    lines += ["", "No preset was changed to produce an ordering: the presets are the same data as before "
              "(`tumorca.presets`).", ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return results
