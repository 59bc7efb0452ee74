"""Analytic checks of the physics (MODEL.md §8 and issue 8), run directly on the engine.

Each function builds a small lattice, runs it and returns a dict of what it measured, the analytic value it is
compared with, the relative error, and the series a figure needs.  The formulas are stated in each docstring and
again in docs/validation.md.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .._constants import Cell
from ..params import Params
from ..simulation import Simulation

MINUTES_PER_DAY = 1440.0


def _custom(shape: tuple[int, ...], params: Params, setup: Callable[[np.ndarray, np.ndarray], None],
            seed: int = 0) -> Simulation:
    """A Simulation whose tissue and vessels are set by ``setup(tissue, perfused)`` (arrays of the lattice's
    shape); the vessels set are inlets."""
    state = Simulation(shape, params.replace(init_vessels="none", init_tumor_radius=0), seed).get_state()
    setup(state["arrays"]["tissue"], state["arrays"]["perfused"])
    state["arrays"]["inlet"][...] = state["arrays"]["perfused"]
    return Simulation.from_state(state, threads=1)


def _unlimited(params: Params | None = None) -> Params:
    """Nutrient-unlimited growth: no O2 uptake anywhere, so every site stays at init_o2 = cycle_o2_high."""
    p = params or Params()
    return p.replace(o2_uptake_tumor=0.0, o2_uptake_stroma=0.0, o2_uptake_endothelium=0.0,
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
            t[y, :] = Cell.EC_STALK
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
    lattice whose edge is held at ``o2_vessel`` (Dirichlet) with no stroma uptake, so c_rim ≈ ``o2_vessel``; the
    measured R_c is where the simulated centre pO2 crosses ``necrosis_o2_onset`` (linear interpolation between
    the integer radii), compared with the analytic R_c for the measured rim pO2.
    """
    from scipy.optimize import brentq
    from scipy.special import i0

    p = (params or Params()).replace(o2_boundary="dirichlet", o2_uptake_stroma=0.0, tumor_cycle_rate=0.0,
                                     o2_tol=1e-5)
    ell = math.sqrt(p.o2_diffusivity / p.o2_uptake_tumor) / p.dx_um
    onset = p.necrosis_o2_onset
    rc_38 = ell * brentq(lambda u: i0(u) - p.o2_vessel / onset, 0.01, 50.0)
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
            "radii": r, "centre_o2": centre, "rim_o2_series": rim, "onset": onset,
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


def colony_growth(params: Params | None = None, n: int = 257, days: float = 40.0, seed: int = 1) -> dict[str, Any]:
    """Nutrient-unlimited colony: equivalent radius against time (linear fit, R²), and its speed against the
    Fisher–KPP estimate.

    Fisher–KPP estimate: a cell that divides at rate r and puts its daughter on a uniformly chosen Moore neighbour
    spreads like a diffusion of coefficient D_eff = r⟨Δ²⟩/(2d), with ⟨Δ²⟩ = 1.5 Δx² for the 2D Moore
    neighbourhood and d = 2, so v_FKPP = 2√(r·D_eff) = 2√0.375·r·Δx ≈ 1.22·r·Δx.  The
    lattice front is not a pulled Fisher front (only cells with an empty neighbour divide, and a division fills one
    site), so the measured speed is expected below the estimate; the ratio is reported, not forced.
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
    rate = p.tumor_cycle_rate * MINUTES_PER_DAY  # divisions per day at full O2
    d_eff = rate * 1.5 * p.dx_um ** 2 / 4.0  # r <Δ²>/(2d), Moore 2D: <Δ²> = (4·1 + 4·2)/8 = 1.5 Δx²
    v_fkpp = 2.0 * math.sqrt(rate * d_eff)
    return {"speed_um_per_day": float(slope), "r2": float(r2), "fkpp_um_per_day": v_fkpp,
            "ratio_to_fkpp": float(slope) / v_fkpp, "days": t_arr, "radius_um": r_arr,
            "fit_days": t_arr[keep], "fit_um": fit, "lattice": f"{n}x{n}", "rate_per_day": rate}


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
    w2, mean_h, t = [], [], []
    for k, seed in enumerate(seeds):
        sim = _custom((height, width), p, setup, seed=seed)
        for d in range(int(days)):
            sim.step(per_day)
            tis = sim.tissue
            tum = (tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q) | (tis == Cell.NECROTIC)
            h = np.where(tum, rows, -1).max(axis=0)[margin:width - margin].astype(np.float64)
            if h.max() >= height - 4:  # stop before the front reaches the far edge
                break
            if k == 0:
                t.append(sim.time_min / MINUTES_PER_DAY)
                w2.append(0.0)
                mean_h.append(0.0)
            if d < len(t):
                w2[d] += float(h.var()) / len(seeds)
                mean_h[d] += float(h.mean()) / len(seeds)
    n = min(len(t), len(w2))
    t_arr, w_arr = np.array(t[:n]), np.sqrt(np.array(w2[:n]))
    late = t_arr >= skip_days
    beta, icpt = np.polyfit(np.log(t_arr[late]), np.log(w_arr[late]), 1)
    return {"beta": float(beta), "expected": 1.0 / 3.0, "rel_error": abs(beta - 1 / 3) / (1 / 3),
            "days": t_arr, "width_sites": w_arr, "mean_height_sites": np.array(mean_h[:n]),
            "fit_days": t_arr[late], "fit_width": np.exp(icpt) * t_arr[late] ** beta,
            "lattice": f"{height}x{width}", "seeds": len(seeds), "skip_days": skip_days}
