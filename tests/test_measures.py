"""Frame measures against synthetic frames with known answers."""
import math
import warnings

import numpy as np
import pytest

from tumorca import Cell, Vessel
from tumorca.analysis import measures as M


def disk(n, r, center=None, value=Cell.TUMOR_P):
    c = (n // 2, n // 2) if center is None else center
    y, x = np.indices((n, n))
    t = np.zeros((n, n), dtype=np.uint8)
    t[(y - c[0]) ** 2 + (x - c[1]) ** 2 <= r * r] = value
    return t


@pytest.mark.parametrize("r", [5, 20, 40])
def test_disk_size_radius_and_centroid(r):
    t = disk(128, r, center=(60, 70))
    s = M.tumour_size(t, 20.0)
    assert abs(s["equivalent_radius_um"] - 20.0 * r) / (20.0 * r) < 0.03
    assert M.centroid(t) == pytest.approx((60, 70), abs=1e-9)


def test_ball_volume_radius():
    z, y, x = np.indices((40, 40, 40)) - 20
    t = np.where(z * z + y * y + x * x <= 12 ** 2, Cell.TUMOR_Q, Cell.EMPTY).astype(np.uint8)
    assert abs(M.tumour_size(t, 10.0)["equivalent_radius_um"] - 120.0) / 120.0 < 0.02


def test_necrotic_and_hypoxic_fractions():
    t = disk(64, 20)
    core = disk(64, 10) == Cell.TUMOR_P
    t[core] = Cell.NECROTIC
    assert M.necrotic_fraction(t) == pytest.approx(np.count_nonzero(core) / np.count_nonzero(disk(64, 20)))
    o2 = np.full(t.shape, 30.0, dtype=np.float32)
    o2[:, :32] = 5.0
    live = np.isin(t, (Cell.TUMOR_P, Cell.TUMOR_Q))
    assert M.hypoxic_fraction(t, o2, 10.0) == pytest.approx(np.count_nonzero(live[:, :32]) / live.sum())
    assert M.necrotic_fraction(np.zeros((4, 4), np.uint8)) == 0.0


def test_straight_vessel_length_and_branches():
    pytest.importorskip("skimage")
    t = np.zeros((64, 64), dtype=np.uint8)
    t[30, 10:50] = Vessel.STALK
    net = M.vessel_network(t, 20.0)
    assert net["vessel_length_um"] == pytest.approx(40 * 20.0, rel=0.03)
    assert net["branch_points"] == 0 and net["end_points"] == 2
    t[31:50, 30] = Vessel.STALK  # a T junction
    net = M.vessel_network(t, 20.0)
    assert net["branch_points"] == 1 and net["end_points"] == 3
    t3 = np.zeros((20, 20, 20), dtype=np.uint8)
    t3[10, 10, 2:18] = Vessel.STALK
    assert M.vessel_network(t3, 10.0)["vessel_length_um"] == pytest.approx(160.0, rel=0.07)


def test_ring_of_neutrophils_counts_profile_and_polarisation():
    n, R = 101, 30
    y, x = np.indices((n, n)) - n // 2
    ring = np.abs(np.hypot(y, x) - R) < 0.5
    present = ring.astype(np.uint8)
    pol = np.where(ring & (x > 0), 0.9, np.where(ring, 0.2, 0.0)).astype(np.float32)
    st = M.neutrophil_stats(present, pol)
    assert st["neutrophils"] == ring.sum()
    assert st["neutrophils_n1"] + st["neutrophils_n2"] == ring.sum() and st["neutrophils_n1"] > 0
    r, prof = M.radial_profile(present, (n // 2, n // 2), 1.0, bin_um=2.0)
    assert abs(r[np.nanargmax(prof)] - R) <= 2.0


def test_vessel_density_inside_and_around():
    t = disk(100, 20)
    v = np.zeros_like(t)
    v[50, :] = Vessel.STALK  # a vessel straight through the tumour (co-opted) and beyond
    perf = (v == Vessel.STALK).astype(np.uint8)
    d = M.vessel_density(t, v, perf, 20.0, margin_um=200.0)
    assert d["vessel_density_inside"] > 0 and d["perfused_fraction_inside"] == 1.0
    # inside: about 2R vessel sites over pi R^2 sites
    per_site = (20.0 / 1000) ** 2
    expected = (2 * 20) / (math.pi * 20 ** 2 * per_site)
    assert d["vessel_density_inside"] == pytest.approx(expected, rel=0.15)


def test_front_roughness_smooth_vs_rough_and_growth_rate():
    smooth = disk(128, 30)
    rough = smooth.copy()
    rng = np.random.default_rng(0)
    y, x = np.indices(rough.shape) - 64
    rr = np.hypot(y, x)
    rough[(rr > 30) & (rr < 38) & (rng.random(rough.shape) < 0.5)] = Cell.TUMOR_P
    assert M.front_roughness(smooth, 1.0) < M.front_roughness(rough, 1.0)
    # a tumour that fills the lattice has no front: NaN, without a NumPy warning
    full = np.full((16, 16), Cell.TUMOR_P, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(M.front_roughness(full, 1.0))
    assert M.front_roughness(np.zeros((16, 16), np.uint8), 1.0) == 0.0
    t = np.arange(10) * 1440.0
    g = M.growth_rate(t, 100.0 + 25.0 * np.arange(10))
    assert g["slope_um_per_day"] == pytest.approx(25.0) and g["r2"] == pytest.approx(1.0)


def _ball(shape, r, value):
    """A disk/ball of radius r sites a little off the lattice centre (its rim is not symmetric)."""
    d2 = sum((g - (n - 1) / 2 - 0.3) ** 2 for g, n in zip(np.indices(shape), shape))
    return np.where(d2 <= r * r, value, Cell.EMPTY).astype(np.uint8)


def _rim_brute_force(tissue: np.ndarray, w: int) -> np.ndarray:
    """Tumour sites within Chebyshev distance w of a non-tumour site or of the outside (axes longer than one
    site), site by site: an independent reference for rim_band."""
    tum = np.isin(tissue, (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC))
    axes = [a for a, n in enumerate(tissue.shape) if n > 1]
    others = np.argwhere(~tum)
    out = np.zeros_like(tum)
    for idx in np.argwhere(tum):
        near_edge = any(idx[a] < w or idx[a] > tissue.shape[a] - 1 - w for a in axes)
        near = others.size and np.any(np.max(np.abs(others[:, axes] - idx[axes]), axis=1) <= w)
        out[tuple(idx)] = near_edge or near
    return out


@pytest.mark.parametrize("shape", [(1, 23, 31), (17, 19, 15), (40, 40)])
@pytest.mark.parametrize("w", [1, 3])
def test_rim_band_against_a_site_by_site_distance(shape, w):
    rng = np.random.default_rng(w)
    t = _ball(shape, min(shape[-2:]) * 0.4, Cell.TUMOR_Q)
    t[(rng.random(shape) < 0.05) & (t != 0)] = Cell.NECROTIC
    t[(rng.random(shape) < 0.02)] = Cell.EMPTY    # holes inside the tumour have their own rim
    got = M.rim_band(t, w)
    assert np.array_equal(got, _rim_brute_force(t, w))
    assert got.any() and not got.all()


def test_rim_perfusion_known_answers():
    # a 20x20 square of tumour: the 100 µm (5-site) rim is 20² - 10² = 300 sites; a perfused vessel row along its
    # outer edge (20 sites), an unperfused one along the next row in, and a perfused one in the core
    t = np.zeros((1, 40, 40), np.uint8)
    t[0, 10:30, 10:30] = Cell.TUMOR_P
    v = np.zeros_like(t)
    p = np.zeros_like(t)
    v[0, 10, 10:30] = p[0, 10, 10:30] = Vessel.STALK
    v[0, 11, 10:30] = Vessel.STALK
    v[0, 20, 15:25] = p[0, 20, 15:25] = Vessel.STALK
    got = M.rim_perfusion(t, v, p, dx_um=20.0)
    assert got == {"rim_sites": 300, "rim_perfused_coverage": 20 / 300}
    assert M.rim_perfusion(t, v, p, dx_um=20.0, rim_um=20.0)["rim_sites"] == 20 * 20 - 18 * 18
    assert M.rim_perfusion(np.zeros_like(t), v, p, 20.0) == {"rim_sites": 0, "rim_perfused_coverage": 0.0}


def test_tumour_aspect_of_disks_balls_and_ellipses():
    yy, xx = np.mgrid[:201, :201] - 100.0
    round_ = np.where(yy ** 2 + xx ** 2 <= 60 ** 2, Cell.TUMOR_P, Cell.EMPTY).astype(np.uint8)
    assert abs(M.tumour_aspect(round_) - 1.0) < 0.01
    assert M.tumour_aspect(round_[None]) == M.tumour_aspect(round_)          # a 2D lattice stored as 1 x ny x nx
    # an ellipse of semi-axes 80 (y) and 40 (x), with a necrotic core (counted as tumour)
    ell = np.where((yy / 80) ** 2 + (xx / 40) ** 2 <= 1, Cell.TUMOR_Q, Cell.EMPTY).astype(np.uint8)
    ell[(yy ** 2 + xx ** 2) <= 20 ** 2] = Cell.NECROTIC
    assert abs(M.tumour_aspect(ell) - 0.5) < 0.01
    zz, yy, xx = np.mgrid[:61, :61, :61] - 30.0
    ball = np.where(zz ** 2 + yy ** 2 + (xx / 0.6) ** 2 <= 25 ** 2, Cell.TUMOR_P, Cell.EMPTY).astype(np.uint8)
    assert abs(M.tumour_aspect(ball) - 0.6) < 0.02                     # shorter along x, as the old bed made it
    assert math.isnan(M.tumour_aspect(np.zeros((5, 5), np.uint8)))
