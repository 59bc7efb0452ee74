"""Field kernels and growth rules against analytic solutions."""
import numpy as np
import pytest

import tumorca
from tumorca import Cell, Vessel


def custom(shape, tissue_fn, params, seed=0):
    """A Simulation whose tissue (and perfused vessels) is set by ``tissue_fn(tissue, perfused)``."""
    # fixed sources: every vessel set here is an inlet that feeds itself (the topological rule)
    state = tumorca.Simulation(shape, params.replace(init_vessels="none", init_tumor_radius=0, perfusion="loops"),
                               seed).get_state()
    tissue_fn(state["arrays"]["tissue"], state["arrays"]["perfused"])
    a = state["arrays"]
    a["inlet"][...] = a["perfused"]  # the vessels set here feed themselves
    a["vessel"][...] = np.where(a["perfused"] != 0, Vessel.STALK, Vessel.NONE)
    return tumorca.Simulation.from_state(state)


def test_o2_slab_between_two_vessels_matches_cosh():
    # A 1D slab of live tumour between vessels at x = 0 and x = L: c = c0 cosh((x - L/2)/l) / cosh(L/(2l)).
    L = 60
    p = tumorca.Params(o2_tol=1e-5, o2_omega=1.9, tumor_cycle_rate=0.0)

    def setup(t, perf):
        t[...] = Cell.TUMOR_P
        t[..., [0, L]] = Cell.EMPTY  # vessels over stroma: not co-opted, so they stay
        perf[..., [0, L]] = 1

    sim = custom((1, L + 1), setup, p)
    sim.step(1)
    c = sim.field("o2")[0].astype(np.float64)
    ell = np.sqrt(p.o2_diffusivity / p.o2_uptake_tumor) / p.dx_um  # sites
    x = np.arange(L + 1)
    exact = p.o2_vessel * np.cosh((x - L / 2) / ell) / np.cosh(L / (2 * ell))
    assert np.max(np.abs(c - exact) / exact) < 0.01
    # and the lattice decay length matches sqrt(D/lambda) (docs/model.md §8: 100-200 um)
    assert 100 < ell * p.dx_um < 200


def test_o2_around_one_vessel_matches_bessel_k0():
    special = pytest.importorskip("scipy.special")
    n = 161
    p = tumorca.Params(o2_uptake_stroma=2.5, o2_tol=1e-5, o2_omega=1.8)

    def setup(t, perf):
        perf[n // 2, n // 2] = 1

    sim = custom((n, n), setup, p)
    sim.step(1)
    c = sim.field("o2").astype(np.float64)
    ell = np.sqrt(p.o2_diffusivity / p.o2_uptake_stroma) / p.dx_um
    y, x = np.indices(c.shape) - n // 2
    r = np.hypot(y, x)
    ring = (r >= 2) & (r < 4 * ell)
    model = special.k0(r[ring] / ell)
    amp = np.mean(c[ring] / model)  # the amplitude depends on the unknown effective radius of a one-site source
    rel = np.abs(c[ring] - amp * model) / (amp * model)
    assert rel.max() < 0.02, rel.max()


def _vegf_sim(shape, **kw):
    # O2 without sinks stays at its initial value, so each step's O2 solve is one sweep.
    p = tumorca.Params(tumor_cycle_rate=0.0, o2_uptake_stroma=0.0, **kw)
    return custom(shape, lambda t, perf: None, p)


def test_implicit_diffusion_conserves_mass():
    sim = _vegf_sim((40, 36, 30), vegf_decay=0.0)
    state = sim.get_state()
    rng = np.random.default_rng(0)
    state["arrays"]["vegf_free"][...] = rng.random(state["arrays"]["vegf_free"].shape, dtype=np.float32)
    sim = tumorca.Simulation.from_state(state)
    m0 = sim.field("vegf_free").sum(dtype=np.float64)
    sim.step(10)
    m1 = sim.field("vegf_free").sum(dtype=np.float64)
    assert abs(m1 - m0) / m0 < 1e-6
    assert sim.field("vegf_free").std() < 0.01 * state["arrays"]["vegf_free"].std()  # and it did diffuse


def test_decay_matches_backward_euler():
    sim = _vegf_sim((8, 8), vegf_decay=0.01)
    state = sim.get_state()
    state["arrays"]["vegf_free"][...] = 1.0
    sim = tumorca.Simulation.from_state(state)
    sim.step(5)
    expected = (1.0 / (1.0 + 0.01 * 30.0)) ** 5
    np.testing.assert_allclose(sim.field("vegf_free"), expected, rtol=1e-6)


def test_point_source_spreads_as_gaussian_of_its_variance():
    # Backward Euler's one-step kernel has excess kurtosis 3 + 1/(2 alpha); after n steps it is n times smaller,
    # so with alpha = 2 and 100 steps the profile is within ~1 % of the Gaussian's peak.
    n, steps, alpha = 241, 100, 2.0
    sim = _vegf_sim((n, n), vegf_decay=0.0, vegf_diffusivity=alpha * 400 / 30)
    state = sim.get_state()
    state["arrays"]["vegf_free"][n // 2, n // 2] = 1.0
    sim = tumorca.Simulation.from_state(state)
    sim.step(steps)
    c = sim.field("vegf_free").astype(np.float64)
    var_expected = 2 * alpha * steps  # 2 D t / dx^2 per axis
    y, x = np.indices(c.shape) - n // 2
    mass = c.sum()
    assert abs(mass - 1.0) < 1e-5
    for coord in (x, y):
        assert abs((c * coord ** 2).sum() / mass - var_expected) / var_expected < 1e-3
    gauss = np.exp(-(x ** 2 + y ** 2) / (2 * var_expected)) / (2 * np.pi * var_expected)
    assert np.abs(c - gauss).max() < 0.02 * gauss.max()


def test_colony_with_unlimited_oxygen_grows_with_linear_radius():
    p = tumorca.Params(init_vessels="none", o2_boundary="dirichlet", o2_uptake_tumor=0.0, o2_uptake_stroma=0.0,
                       init_tumor_radius=3, tumor_cycle_rate=0.003)
    sim = tumorca.Simulation((160, 160), p, seed=4)
    times, radii = [], []
    for _ in range(16):
        sim.step(10)
        n_cells = sim.counts()[Cell.TUMOR_P]
        times.append(sim.time_min)
        radii.append(np.sqrt(n_cells / np.pi))
    assert sim.counts()[Cell.TUMOR_Q] == 0 and sim.counts()[Cell.NECROTIC] == 0
    t, r = np.array(times), np.array(radii)
    slope, icpt = np.polyfit(t, r, 1)
    r2 = 1 - np.sum((r - (slope * t + icpt)) ** 2) / np.sum((r - r.mean()) ** 2)
    assert slope > 0 and r2 > 0.98, (slope, r2)
    assert r[-1] < 75  # the colony stayed inside the lattice: edges did not cap it


def test_avascular_disk_centre_o2_follows_bessel_i0_and_the_critical_radius():
    # A disk of live tumour (uptake lambda) with pO2 c_rim at its rim has c(0) = c_rim / I0(R/l) (l = sqrt(D/lambda)).
    # A necrotic core can start once c(0) < necrosis_o2_onset, i.e. past R_c = l * I0^{-1}(c_rim / onset).
    special = pytest.importorskip("scipy.special")
    optimize = pytest.importorskip("scipy.optimize")
    p = tumorca.Params(o2_boundary="dirichlet", o2_uptake_stroma=0.0, tumor_cycle_rate=0.0, o2_tol=1e-5)
    ell = np.sqrt(p.o2_diffusivity / p.o2_uptake_tumor) / p.dx_um
    r_crit = ell * optimize.brentq(lambda u: special.i0(u) - p.o2_vessel / p.necrosis_o2_onset, 0.1, 20.0)
    assert 25 < r_crit < 36  # ~31 sites = 620 um at the defaults
    centre = {}
    for radius in (r_crit - 4, r_crit + 4):
        n = 2 * int(radius) + 5  # two stroma sites between the disk and the 38 mmHg edge

        def setup(t, perf, radius=radius, n=n):
            y, x = np.indices((n, n)) - n // 2
            t[np.hypot(y, x) <= radius] = Cell.TUMOR_P

        sim = custom((n, n), setup, p)
        sim.step(1)
        c = sim.field("o2").astype(np.float64)
        y, x = np.indices(c.shape) - n // 2
        rr = np.hypot(y, x)
        rim = c[(rr > radius - 0.5) & (rr <= radius + 0.5)].mean()
        expected = rim / special.i0(radius / ell)
        assert abs(c[n // 2, n // 2] - expected) < 0.05 * expected + 0.05, (radius, c[n // 2, n // 2], expected)
        centre[radius] = c[n // 2, n // 2]
    assert centre[r_crit - 4] > p.necrosis_o2_onset > centre[r_crit + 4]
