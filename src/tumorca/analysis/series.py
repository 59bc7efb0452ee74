"""Measures over whole runs: frame measures of every frame (:func:`measure_run`), the growth rate, a per-run
summary of final and time-integrated measures (:func:`summarize_run`) and a comparison of groups of replicates
(:func:`compare`).

Runs are read one frame at a time (memory bounded by a few frames, whatever the run's length); the per-step time
series is read whole (a few numbers per step).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import measures as M
from .._constants import MINUTES_PER_DAY
from .run import MEASURE_LAYERS, Run, as_run  # noqa: F401 (MEASURE_LAYERS re-exported)



def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if y.size < 2:
        return 0.0
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def measure_run(run: Run | str | Path, *, every: int = 1, network: bool = False, hypoxia_mmhg: float = 10.0,
                margin_um: float = 200.0, progress: Callable[[int, int], None] | None = None
                ) -> dict[str, np.ndarray]:
    """:func:`~tumorca.analysis.measures.frame_measures` of every ``every``-th frame on disk, as a table.

    Frames are read one at a time, and only the layers the measures use, so memory stays at a few frames however
    long the run.

    Parameters
    ----------
    run : Run or path
    every : int
        Measure every this many frames (the last frame on disk is always included).
    network : bool
        Add vessel length, branch and end points (:func:`~tumorca.analysis.measures.vessel_network`; needs
        scikit-image and costs a skeletonisation per frame).
    hypoxia_mmhg, margin_um : float
        Hypoxia threshold and the width of the shell around the tumour for the vessel density.
    progress : callable, optional
        ``progress(done, total)`` after each frame.

    Returns
    -------
    dict of 1-D arrays, one entry per frame: ``frame``, ``step``, ``time_min``, ``time_days`` and every measure
    (``tumour_sites``, ``tumour_size_um``, ``equivalent_radius_um``, ``necrotic_fraction``, ``hypoxic_fraction``
    (if the run stored ``o2``), ``vessel_density_inside``/``_around``, ``perfused_fraction_inside``/``_around``,
    ``vessel_sites``, ``neutrophils``...).
    """
    r, mine = as_run(run)
    try:
        return r.measures(every=every, network=network, hypoxia_mmhg=hypoxia_mmhg, margin_um=margin_um,
                          progress=progress)
    finally:
        if mine:
            r.close()


def run_growth_rate(table: Mapping[str, np.ndarray], skip_days: float = 0.0) -> dict[str, float]:
    """Radial growth rate: least-squares line of ``equivalent_radius_um`` against time in a table from
    :func:`measure_run` (or any mapping with ``time_min`` and ``equivalent_radius_um``), from ``skip_days`` on.

    Returns ``slope_um_per_day``, ``intercept_um``, ``r2`` (NaN with fewer than two times)."""
    t = np.asarray(table["time_min"], dtype=np.float64)
    keep = t >= skip_days * MINUTES_PER_DAY
    return M.growth_rate(t[keep], np.asarray(table["equivalent_radius_um"], dtype=np.float64)[keep])


def save_table(table: Mapping[str, np.ndarray] | Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write a table (dict of equal-length arrays, or a list of row dicts) as CSV with a header."""
    import csv

    if isinstance(table, Mapping):
        keys = list(table)
        n = len(next(iter(table.values()))) if keys else 0
        rows = [{k: table[k][i] for k in keys} for i in range(n)]
    else:
        rows = list(table)
        keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: _csv_value(row.get(k, "")) for k in keys})


def _csv_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    return v


# -- per-run summaries -------------------------------------------------------------------------------------------
#: Columns of :func:`summarize_run` and their units (the order of the tables).
SUMMARY_COLUMNS: dict[str, str] = {
    "final_day": "day",
    "final_tumour_sites": "sites",
    "final_tumour_size": "mm^2 (2D) or mm^3 (3D)",
    "tumour_size_auc": "mm^2 day (2D) or mm^3 day (3D)",
    "final_radius_um": "um",
    "growth_rate_um_per_day": "um/day",
    "final_necrotic_fraction": "1",
    "final_hypoxic_fraction": "1",
    "final_vessel_sites": "sites",
    "final_vessel_density_inside": "1/mm^2 (2D) or 1/mm^3 (3D)",
    "final_vessel_density_around": "1/mm^2 (2D) or 1/mm^3 (3D)",
    "final_perfused_fraction": "1",
    "mean_neutrophils": "cells",
    "final_neutrophils": "cells",
    "final_mean_polarization": "1",
}


def tumour_sites_series(ts: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Tumour sites (live and necrotic) per step of a time series; None if the series lacks either count."""
    if "tumor_live" in ts and "necrotic" in ts:
        return np.asarray(ts["tumor_live"], np.float64) + np.asarray(ts["necrotic"], np.float64)
    if {"tumor_p", "tumor_q", "necrotic"} <= set(ts):
        return (np.asarray(ts["tumor_p"], np.float64) + np.asarray(ts["tumor_q"], np.float64)
                + np.asarray(ts["necrotic"], np.float64))
    return None


def summarize_run(run: Run | str | Path, by: str | None = "preset", growth_skip_days: float = 0.0
                  ) -> dict[str, Any]:
    """Final and time-integrated measures of one run, one row (see :data:`SUMMARY_COLUMNS`).

    Tumour size, its area under the curve (trapezoid over every step, in mm²·day or mm³·day), the growth rate (line
    through the equivalent radius of every step from ``growth_skip_days`` on) and the mean neutrophil count (over
    every step) come from the per-step time series; vessel densities and the perfused fraction from the last frame
    on disk.  ``by`` adds a ``group`` column (see :meth:`Run.value`).
    """
    r, mine = as_run(run)
    try:
        row: dict[str, Any] = {"run": str(r.path), "name": r.name}
        if by is not None:
            row["group"] = r.value(by)
        row.update({"preset": r.preset or "none", "seed": r.seed, "status": r.status.state})
        ts = r.timeseries()
        t_days = ts["time_days"]
        unit = (r.dx / 1000.0) ** r.ndim  # mm² or mm³ per site
        sites = tumour_sites_series(ts)
        out: dict[str, Any] = {k: float("nan") for k in SUMMARY_COLUMNS}
        out["final_day"] = float(t_days[-1]) if t_days.size else float("nan")
        if sites is not None and sites.size:
            size = sites * unit
            out["final_tumour_sites"] = int(sites[-1])
            out["final_tumour_size"] = float(size[-1])
            out["tumour_size_auc"] = _trapezoid(size, t_days)
            if r.ndim == 2:
                radius = np.sqrt(size / math.pi) * 1000.0
            else:
                radius = np.cbrt(3 * size / (4 * math.pi)) * 1000.0
            out["final_radius_um"] = float(radius[-1])
            out["growth_rate_um_per_day"] = run_growth_rate(
                {"time_min": t_days * MINUTES_PER_DAY, "equivalent_radius_um": radius},
                growth_skip_days)["slope_um_per_day"]
        if "neutrophils" in ts and ts["neutrophils"].size:
            out["mean_neutrophils"] = float(np.mean(ts["neutrophils"]))
            out["final_neutrophils"] = int(ts["neutrophils"][-1])
        if r.n_frames and "tissue" in r.layers:
            fr = r.frame(-1, [n for n in MEASURE_LAYERS if n in r.layers])
            m = M.frame_measures(fr, r.dx)
            if sites is None:
                out["final_tumour_sites"] = m["tumour_sites"]
                out["final_tumour_size"] = m["tumour_size_um"] * 1e-3 ** r.ndim  # um^d -> mm^d
                out["final_radius_um"] = m["equivalent_radius_um"]
            out["final_necrotic_fraction"] = m["necrotic_fraction"]
            out["final_hypoxic_fraction"] = m.get("hypoxic_fraction", float("nan"))
            out["final_vessel_sites"] = m["vessel_sites"]
            out["final_vessel_density_inside"] = m["vessel_density_inside"]
            out["final_vessel_density_around"] = m["vessel_density_around"]
            if "neutrophils" in m:
                out["final_mean_polarization"] = m["mean_polarization"]
                if math.isnan(out["final_neutrophils"]):
                    out["final_neutrophils"] = m["neutrophils"]
        if "perfused_fraction" in ts and ts["perfused_fraction"].size:
            out["final_perfused_fraction"] = float(ts["perfused_fraction"][-1])
        if math.isnan(out["final_hypoxic_fraction"]) and "hypoxic_fraction" in ts and ts["hypoxic_fraction"].size:
            out["final_hypoxic_fraction"] = float(ts["hypoxic_fraction"][-1])
        row.update(out)
        return row
    finally:
        if mine:
            r.close()


def summarize_runs(runs: Iterable[Run | str | Path], by: str | None = "preset", as_frame: bool | None = None,
                   growth_skip_days: float = 0.0) -> Any:
    """:func:`summarize_run` of each run: a pandas DataFrame (if pandas is installed and ``as_frame`` is not
    False) or a list of dicts."""
    rows = [summarize_run(r, by, growth_skip_days) for r in runs]
    return _maybe_frame(rows, as_frame, index=None)


def _maybe_frame(rows: list[dict[str, Any]], as_frame: bool | None, index: str | None) -> Any:
    if as_frame is False:
        return rows
    try:
        import pandas as pd
    except ImportError:
        if as_frame:
            raise ImportError("a DataFrame needs pandas: pip install 'tumorca[analysis]'") from None
        return rows
    df = pd.DataFrame(rows)
    if index is not None and index in df:
        df = df.set_index(index)
    return df


def _group_key(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def compare(runs: Iterable[Run | str | Path], by: str = "preset", measures: Sequence[str] | None = None,
            as_frame: bool | None = None, growth_skip_days: float = 0.0) -> Any:
    """Compare groups of replicate runs: mean and sample standard deviation of each run's final and
    time-integrated measures (:func:`summarize_run`) per group.

    Parameters
    ----------
    runs : iterable of Run or path
    by : str
        What makes a group: ``preset`` (default), ``seed``, ``name``, or a parameter name (e.g. ``ifn_level``).
    measures : sequence of str, optional
        Columns of :data:`SUMMARY_COLUMNS` to compare (default: all).
    as_frame : bool, optional
        True: a pandas DataFrame (ImportError without pandas); False: a list of dicts; None (default): a DataFrame
        if pandas is installed.

    Returns
    -------
    One row per group, in order of first appearance: ``group``, ``n`` (runs), then ``<measure>_mean`` and
    ``<measure>_sd`` for each measure (sd with n - 1 degrees of freedom: NaN for a single run).  A DataFrame is
    indexed by ``group``.
    """
    keys = list(SUMMARY_COLUMNS) if measures is None else list(measures)
    bad = [k for k in keys if k not in SUMMARY_COLUMNS]
    if bad:
        raise KeyError(f"unknown measure {bad[0]!r}; measures are {', '.join(SUMMARY_COLUMNS)}")
    per_run = [summarize_run(r, by, growth_skip_days) for r in runs]
    return _maybe_frame(aggregate(per_run, keys), as_frame, index="group")


def aggregate(per_run: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Group rows of :func:`summarize_run` by their ``group`` and give ``n``, mean and sd of ``keys``."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in per_run:
        groups.setdefault(_group_key(row.get("group")), []).append(row)
    out = []
    for g, rows in groups.items():
        rec: dict[str, Any] = {"group": g, "n": len(rows)}
        for k in keys:
            v = np.array([float(r.get(k, float("nan"))) for r in rows], dtype=np.float64)
            ok = v[~np.isnan(v)]
            rec[f"{k}_mean"] = float(ok.mean()) if ok.size else float("nan")
            rec[f"{k}_sd"] = float(ok.std(ddof=1)) if ok.size > 1 else float("nan")
        out.append(rec)
    return out


def format_compare(table: Any, measures: Sequence[str] | None = None) -> str:
    """A compare table (DataFrame or list of dicts) as text: one line per measure, one column per group, cells
    ``mean ± sd``."""
    rows = table.reset_index().to_dict("records") if hasattr(table, "reset_index") else list(table)
    keys = [k for k in (measures or SUMMARY_COLUMNS) if rows and f"{k}_mean" in rows[0]]
    head = ["measure"] + [f"{r['group']} (n={r['n']})" for r in rows]
    body = []
    for k in keys:
        line = [k]
        for r in rows:
            m, s = r[f"{k}_mean"], r[f"{k}_sd"]
            line.append("-" if math.isnan(m) else (_num(m) if math.isnan(s) else f"{_num(m)} ± {_num(s)}"))
        body.append(line)
    widths = [max(len(str(x[c])) for x in [head] + body) for c in range(len(head))]
    fmt = lambda row: "  ".join(str(x).ljust(w) if c == 0 else str(x).rjust(w)  # noqa: E731
                                for c, (x, w) in enumerate(zip(row, widths)))
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


def format_runs(rows: Sequence[Mapping[str, Any]], measures: Sequence[str] | None = None) -> str:
    """Rows of :func:`summarize_run` as text: one line per measure, one column per run."""
    keys = list(measures or SUMMARY_COLUMNS)
    head = ["measure"] + [str(r["name"]) for r in rows]
    body = [["group"] + [str(r.get("group", "")) for r in rows], ["seed"] + [str(r["seed"]) for r in rows],
            ["status"] + [str(r["status"]) for r in rows]]
    for k in keys:
        body.append([k] + [_num(float(r.get(k, float("nan")))) for r in rows])
    widths = [max(len(x[c]) for x in [head] + body) for c in range(len(head))]
    return "\n".join("  ".join(x.ljust(w) if c == 0 else x.rjust(w) for c, (x, w) in enumerate(zip(row, widths)))
                     for row in [head] + body)


def _num(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    a = abs(x)
    if a >= 1e5 or a < 1e-3:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


__all__ = ["measure_run", "run_growth_rate", "summarize_run", "summarize_runs", "compare", "aggregate",
           "format_compare", "format_runs", "save_table", "SUMMARY_COLUMNS", "MEASURE_LAYERS"]
