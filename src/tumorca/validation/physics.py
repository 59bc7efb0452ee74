"""Analytic checks of the physics (docs/model.md §8 and issue 8), run directly on the engine.

Each function builds a small lattice, runs it and returns a dict of what it measured, the analytic value it is
compared with, the relative error, and the series a figure needs.  The formulas are stated in each docstring and
again in docs/validation.md.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .._constants import MINUTES_PER_DAY, Cell, Vessel
from ..params import Params
from ..simulation import Simulation



def _custom(shape: tuple[int, ...], params: Params, setup: Callable[[np.ndarray, np.ndarray], None],
            seed: int = 0) -> Simulation:
    """A Simulation whose tissue and vessels are set by ``setup(tissue, perfused)`` (arrays of the lattice's
    shape); the perfused sites set are vessel stalks and inlets."""
    # fixed sources: every vessel set here is an inlet that feeds itself (the topological rule)
    state = Simulation(shape, params.replace(init_vessels="none", init_tumor_radius=0, perfusion="loops"),
                       seed).get_state()
    a = state["arrays"]
    setup(a["tissue"], a["perfused"])
    a["inlet"][...] = a["perfused"]
    a["vessel"][...] = np.where(a["perfused"] != 0, Vessel.STALK, Vessel.NONE)
    return Simulation.from_state(state, threads=1)


def _unlimited(params: Params | None = None) -> Params:
    """Nutrient-unlimited growth: no O2 uptake anywhere, so every site stays at init_o2 = cycle_o2_high; no
    pushing (push_range 0), so cells divide only into stroma at the rim, the growth the front theories describe."""
    p = params or Params()
    return p.replace(o2_uptake_tumor=0.0, o2_uptake_stroma=0.0, push_range=0,
                     init_o2=p.cycle_o2_high, init_vessels="none")


def decay_length(params: Params | None = None, half_width: int = 60) -> dict[str, Any]:
    """O2 decay length in live tumour between two vessels.

    A slab of live tumour (uptake λ) between two vessel rows at ``o2_vessel`` has the steady profile
    c(y) = c_v·cosh((y − c)/ℓ)/cosh(c/ℓ), ℓ = √(D/λ), c the mid-plane.  ℓ is fitted (least squares on the whole
    profile) and compared with √(D/λ).
    """
    from scipy.optimize import curve_fit

    p = (params or Params()).replace(o2_tol=1e-5, tumor_cycle_rate=0.0)
    ny = 2 * half_width + 1

    def setup(t: np.ndarray, perf: np.ndarray) -> None:
        t[...] = Cell.TUMOR_Q
        for y in (0, ny - 1):
            t[y, :] = Cell.EMPTY  # vessels over stroma (not co-opted, so they cannot regress)
            perf[y, :] = 1

    sim = _custom((ny, 4), p, setup)
    sim.step(1)
    c = sim.field("o2")[:, 1].astype(np.float64)
    y = np.arange(ny, dtype=np.float64)
    mid = (ny - 1) / 2.0
    cv = float(p.o2_vessel)

    def model(yy: np.ndarray, ell: float) -> np.ndarray:
        return cv * np.cosh((yy - mid) / ell) / np.cosh(mid / ell)

    (ell_fit,), _ = curve_fit(model, y, c, p0=[5.0])
    ell_um = float(ell_fit) * p.dx_um
    expected = math.sqrt(p.o2_diffusivity / p.o2_uptake_tumor)
    return {"measured_um": ell_um, "expected_um": expected, "rel_error": abs(ell_um - expected) / expected,
            "y_um": y * p.dx_um, "o2": c, "fit": model(y, ell_fit), "lattice": f"{ny}x4",
            "lambda_per_min": p.o2_uptake_tumor, "D_um2_per_min": p.o2_diffusivity}


def critical_radius(params: Params | None = None, radii: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The radius at which an avascular disk's centre falls below the necrosis onset.

    A disk of live tumour (uptake λ, ℓ = √(D/λ)) with pO2 c_rim at its rim has c(0) = c_rim/I0(R/ℓ), so a
    necrotic core can appear once R > R_c = ℓ·I0⁻¹(c_rim/c_onset).  Disks of radius R (sites) are placed in a
    lattice whose edge is held at ``o2_boundary_value`` (Dirichlet) with no stroma uptake, two stroma sites
    outside the disk; the rim pO2 c_rim is measured (it is below the edge value: O2 flows through the gap); the
    measured R_c is where the simulated centre pO2 crosses ``necrosis_o2_onset`` (linear interpolation between
    the integer radii), compared with the analytic R_c for the measured rim pO2.
    """
    from scipy.optimize import brentq
    from scipy.special import i0

    p = (params or Params()).replace(o2_boundary="dirichlet", o2_uptake_stroma=0.0, tumor_cycle_rate=0.0,
                                     o2_tol=1e-5)
    ell = math.sqrt(p.o2_diffusivity / p.o2_uptake_tumor) / p.dx_um
    onset = p.necrosis_o2_onset
    rc_38 = ell * brentq(lambda u: i0(u) - p.o2_boundary_value / onset, 0.01, 50.0)
    radii = radii or tuple(range(int(rc_38) - 5, int(rc_38) + 6, 1))
    rows = []
    for radius in radii:
        n = 2 * radius + 5

        def setup(t: np.ndarray, perf: np.ndarray, radius: int = radius, n: int = n) -> None:
            yy, xx = np.indices((n, n)) - n // 2
            t[np.hypot(yy, xx) <= radius] = Cell.TUMOR_Q

        sim = _custom((n, n), p, setup)
        sim.step(1)
        c = sim.field("o2").astype(np.float64)
        yy, xx = np.indices(c.shape) - n // 2
        rr = np.hypot(yy, xx)
        rim = float(c[(rr > radius - 0.5) & (rr <= radius + 0.5)].mean())
        rows.append((radius, float(c[n // 2, n // 2]), rim))
    r = np.array([row[0] for row in rows], dtype=np.float64)
    centre = np.array([row[1] for row in rows])
    rim = np.array([row[2] for row in rows])
    below = np.nonzero(centre < onset)[0]
    if len(below) == 0 or below[0] == 0:
        measured = math.nan
        rim_at = float(rim.mean())
    else:
        i = below[0]
        f = (centre[i - 1] - onset) / (centre[i - 1] - centre[i])
        measured = float(r[i - 1] + f * (r[i] - r[i - 1]))
        rim_at = float(rim[i - 1] + f * (rim[i] - rim[i - 1]))
    expected = ell * brentq(lambda u: i0(u) - rim_at / onset, 0.01, 50.0)
    return {"measured_sites": measured, "expected_sites": expected, "expected_sites_38": rc_38,
            "rel_error": abs(measured - expected) / expected, "rim_o2": rim_at, "ell_sites": ell,
            "radii": r, "centre_o2": centre, "rim_o2_series": rim, "onset": onset, "edge_o2": p.o2_boundary_value,
            "bessel": rim / i0(r / ell)}


def necrosis_onset_in_growing_disk(params: Params | None = None, n: int = 97, days: float = 60.0,
                                   seed: int = 1) -> dict[str, Any]:
    """How a necrotic core first appears in a growing avascular colony (lattice edge held at ``o2_vessel``, no
    stroma uptake).

    The first necrosis in the model comes from quiescent death, not from the hypoxic hazard: a cell below
    ``quiescence_o2_enter`` (8.9 mmHg) stops cycling and dies after ``quiescent_death_time``.  So the core starts
    when the disk passes R_q = ℓ·I0⁻¹(c_rim/c_q) (c_q = ``quiescence_o2_enter``, c_rim the rim pO2 of that
    moment: mean pO2 of the live tumour sites that touch stroma), and the first necrotic site appears one
    ``quiescent_death_time`` later.  Measured: the equivalent radius when the lowest live-tumour pO2 first falls
    below c_q, against R_q; and the delay to the first necrotic site, against ``quiescent_death_time``.
    """
    from scipy.optimize import brentq
    from scipy.special import i0

    p = (params or Params()).replace(o2_boundary="dirichlet", o2_uptake_stroma=0.0, init_vessels="none",
                                     init_tumor_radius=10.0)
    ell = math.sqrt(p.o2_diffusivity / p.o2_uptake_tumor) / p.dx_um
    c_q = p.quiescence_o2_enter
    sim = Simulation((n, n), p, seed=seed, threads=1)
    steps = int(days * MINUTES_PER_DAY / p.dt_min)
    t, radius, low, rim, rq = [], [], [], [], []
    first_q = first_n = None
    for _ in range(steps):
        tis = sim.tissue
        live = (tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q)
        tumour = live | (tis == Cell.NECROTIC)
        sim.step(1)  # solves O2 for the tissue above, then applies the rules
        o2 = sim.field("o2")
        edge = live & ~(np.roll(tumour, 1, 0) & np.roll(tumour, -1, 0) & np.roll(tumour, 1, 1)
                        & np.roll(tumour, -1, 1))
        c_rim = float(o2[edge].mean())
        t.append((sim.time_min - p.dt_min) / MINUTES_PER_DAY)
        radius.append(math.sqrt(np.count_nonzero(tumour) / math.pi))
        low.append(float(o2[live].min()))
        rim.append(c_rim)
        rq.append(ell * brentq(lambda u: i0(u) - c_rim / c_q, 1e-9, 50.0) if c_rim > c_q else 0.0)
        if first_q is None and low[-1] < c_q:
            first_q = len(t) - 1
        if sim.summary()["necrotic"] > 0:
            first_n = len(t) - 1
            break
    out: dict[str, Any] = {"days": np.array(t), "radius_sites": np.array(radius), "min_o2": np.array(low),
                           "rim_o2": np.array(rim), "critical_radius_sites": np.array(rq), "lattice": f"{n}x{n}",
                           "threshold_o2": c_q, "ell_sites": ell}
    nan = math.nan
    out.update(radius_at_quiescent_core_sites=radius[first_q] if first_q is not None else nan,
               expected_sites=rq[first_q] if first_q is not None else nan,
               rim_o2_then=rim[first_q] if first_q is not None else nan,
               first_necrosis_day=t[first_n] if first_n is not None else nan,
               radius_at_first_necrosis_sites=radius[first_n] if first_n is not None else nan,
               delay_min=(first_n - first_q) * p.dt_min if None not in (first_q, first_n) else nan,
               expected_delay_min=p.quiescent_death_time)
    out["rel_error"] = abs(out["radius_at_quiescent_core_sites"] - out["expected_sites"]) / out["expected_sites"]
    return out


def fkpp_speed(rate_per_day: float, dx_um: float, diagonal: bool = False) -> float:
    """Linear spreading (Fisher–KPP) speed, µm/day, of cells that divide at ``rate_per_day`` and put the daughter
    on a uniformly chosen one of the 8 Moore neighbours: the linearised front u_t = r·Σ_j K(j)·u(x − j) spreads
    at v = min_λ r·M(λ)/λ, M(λ) = E[exp(λ·Δ)] the kernel's moment generating function along the direction of
    spread (an axis, or a diagonal)."""
    from scipy.optimize import minimize_scalar

    if diagonal:  # along (1, 1)/√2: projections ±√2 (1 each), ±1/√2 (2 each), 0 (2)
        s2 = math.sqrt(2.0)

        def m(lam: float) -> float:
            return (2 * math.cosh(lam * s2) + 4 * math.cosh(lam / s2) + 2) / 8
    else:  # along x: projections ±1 (3 each), 0 (2)
        def m(lam: float) -> float:
            return (6 * math.cosh(lam) + 2) / 8
    res = minimize_scalar(lambda lam: m(lam) / lam, bounds=(1e-3, 20.0), method="bounded")
    return float(rate_per_day * res.fun * dx_um)


def colony_growth(params: Params | None = None, n: int = 257, days: float = 40.0, seed: int = 1) -> dict[str, Any]:
    """Nutrient-unlimited colony: equivalent radius against time (linear fit; linear means the same slope over
    the first and the second half of the fit window), and its speed against the Fisher–KPP estimate
    :func:`fkpp_speed`.

    The lattice rule is not the linearised equation: a rim cell with k empty neighbours divides at the full rate r
    into one of them (the mean field would give r·k/8), so the front is pushed by the crowded interior and is
    expected to be faster than the linear spreading speed; the ratio is reported, not tuned.
    """
    p = _unlimited(params).replace(init_tumor_radius=10.0)
    sim = Simulation((n, n), p, seed=seed, threads=1)
    per_day = int(round(MINUTES_PER_DAY / p.dt_min))
    t, radius = [0.0], [math.sqrt(sim.summary()["tumor_live"] / math.pi)]
    for _ in range(int(days)):
        sim.step(per_day)
        s = sim.summary()
        t.append(sim.time_min / MINUTES_PER_DAY)
        radius.append(math.sqrt((s["tumor_live"] + s["necrotic"]) / math.pi))
    t_arr, r_arr = np.array(t), np.array(radius) * p.dx_um
    keep = t_arr >= 5.0  # past the initial transient from the smooth initial disk
    slope, icpt = np.polyfit(t_arr[keep], r_arr[keep], 1)
    fit = slope * t_arr[keep] + icpt
    r2 = 1.0 - np.sum((r_arr[keep] - fit) ** 2) / np.sum((r_arr[keep] - r_arr[keep].mean()) ** 2)
    tk, rk = t_arr[keep], r_arr[keep]
    half = len(tk) // 2
    s1 = float(np.polyfit(tk[:half + 1], rk[:half + 1], 1)[0])
    s2 = float(np.polyfit(tk[half:], rk[half:], 1)[0])
    rate = p.tumor_cycle_rate * MINUTES_PER_DAY  # divisions per day at full O2
    v_axis, v_diag = fkpp_speed(rate, p.dx_um), fkpp_speed(rate, p.dx_um, diagonal=True)
    return {"speed_um_per_day": float(slope), "r2": float(r2), "slope_first_half": s1, "slope_second_half": s2,
            "linearity_error": abs(s2 - s1) / float(slope), "fkpp_um_per_day": v_axis, "fkpp_diagonal": v_diag,
            "ratio_to_fkpp": float(slope) / v_axis, "days": t_arr, "radius_um": r_arr, "fit_days": tk,
            "fit_um": fit, "lattice": f"{n}x{n}", "rate_per_day": rate}


def front_roughness(params: Params | None = None, width: int = 512, height: int = 160, days: float = 70.0,
                    seeds: tuple[int, ...] = (1, 2, 3), margin: int = 8, skip_days: float = 10.0) -> dict[str, Any]:
    """Roughening of a flat front: a strip of tumour along the bottom edge grows upward with unlimited nutrient.

    h(x, t) is the height of the highest tumour site in column x; the width w(t) is the standard deviation of h
    over the columns (``margin`` columns at each side edge left out), with w² averaged over ``seeds``.  For an
    Eden/KPZ interface w ∝ t^β with β = 1/3 before saturation (L = ``width`` is far from saturating in this time).
    β is the slope of log w against log t after ``skip_days`` (the flat start crosses over from random
    deposition, β = 1/2, to KPZ).
    """
    p = _unlimited(params)

    def setup(t: np.ndarray, perf: np.ndarray) -> None:
        t[:2, :] = Cell.TUMOR_P

    per_day = int(round(MINUTES_PER_DAY / p.dt_min))
    rows = np.arange(height)[:, None]
    runs: list[list[tuple[float, float, float]]] = []  # per seed: (day, var h, mean h)
    for seed in seeds:
        sim = _custom((height, width), p, setup, seed=seed)
        rec = []
        for _ in range(int(days)):
            sim.step(per_day)
            tis = sim.tissue
            tum = (tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q) | (tis == Cell.NECROTIC)
            h = np.where(tum, rows, -1).max(axis=0)[margin:width - margin].astype(np.float64)
            if h.max() >= height - 4:  # stop before the front reaches the far edge
                break
            rec.append((sim.time_min / MINUTES_PER_DAY, float(h.var()), float(h.mean())))
        runs.append(rec)
    n = min(len(r) for r in runs)  # every seed contributes to every day averaged
    t_arr = np.array([d for d, _, _ in runs[0][:n]])
    w_arr = np.sqrt(np.mean([[v for _, v, _ in r[:n]] for r in runs], axis=0))
    mean_h = list(np.mean([[m for _, _, m in r[:n]] for r in runs], axis=0))
    late = t_arr >= skip_days
    beta, icpt = np.polyfit(np.log(t_arr[late]), np.log(w_arr[late]), 1)
    return {"beta": float(beta), "expected": 1.0 / 3.0, "rel_error": abs(beta - 1 / 3) / (1 / 3),
            "days": t_arr, "width_sites": w_arr, "mean_height_sites": np.array(mean_h[:n]),
            "fit_days": t_arr[late], "fit_width": np.exp(icpt) * t_arr[late] ** beta,
            "lattice": f"{height}x{width}", "seeds": len(seeds), "skip_days": skip_days}


def host_tissue(params: Params | None = None, shape: tuple[int, ...] = (60, 120)) -> dict[str, Any]:
    """Host tissue without a tumour: the pO2 the capillary bed holds (mean, 10th percentile and minimum over the
    sites without a vessel, after the first solve), and the O2 decay length in host tissue, measured as
    :func:`decay_length` measures the tumour's, with the slab's uptake set to ``o2_uptake_stroma``.  ``shape`` is
    2D or 3D: the bed differs between them (capillaries are lines in both, so they fill a larger share of a
    section than of a volume)."""
    p = (params or Params()).replace(init_tumor_radius=0)
    sim = Simulation(shape, p, seed=1, threads=1)
    sim.step(1)
    o2 = sim.field("o2").astype(np.float64)[sim.vessel == 0]
    d = decay_length(p.replace(o2_uptake_tumor=p.o2_uptake_stroma))
    return {"lattice": "x".join(map(str, shape)), "mean_o2": float(o2.mean()),
            "p10_o2": float(np.percentile(o2, 10)), "min_o2": float(o2.min()),
            "decay_measured_um": d["measured_um"], "decay_expected_um": d["expected_um"]}
