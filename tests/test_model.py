"""Vessels, growth factors, neutrophils and IFN-beta: behaviour the model must show."""
import numpy as np
import pytest

import tumorca
from tumorca import Cell, presets


def build(shape, params, setup, seed=0):
    """A Simulation on ``shape`` with no initial tumour or vessels, whose arrays ``setup(a)`` then fills."""
    params = params.replace(init_vessels="none", init_tumor_radius=0)
    state = tumorca.Simulation(shape, params, seed).get_state()
    setup(state["arrays"])
    return tumorca.Simulation.from_state(state)


def two_vessels_and_sprouts(a, gap_rows=(15,)):
    """Inlet vessels along rows 5 and 26 of a 32x40 lattice, and a sprout down column 20 from each, ending in
    tips that face each other across ``gap_rows``."""
    t = a["tissue"]
    for row in (5, 26):
        t[row, :] = Cell.EC_STALK
        a["inlet"][row, :] = 1
    top_tip, bottom_tip = min(gap_rows) - 1, max(gap_rows) + 1
    t[6:top_tip, 20] = Cell.EC_STALK
    t[bottom_tip + 1:26, 20] = Cell.EC_STALK
    t[top_tip, 20] = t[bottom_tip, 20] = Cell.EC_TIP
    a["clock"][top_tip, 20] = a["clock"][bottom_tip, 20] = 5
    a["vegf_free"][gap_rows[0], 20] = 100.0  # the tips are drawn into the gap


ANASTOMOSIS = tumorca.Params(sprout_rate=0.0, tip_move_min=1.0, tip_move_max=1.0, tip_chemotaxis=1e4,
                             vegf_diffusivity=0.0, vegf_decay=0.0, branch_max=0.0, o2_uptake_stroma=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tips_meeting_fuse_and_the_sprout_becomes_perfused_and_an_o2_source(seed):
    sim = build((32, 40), ANASTOMOSIS, two_vessels_and_sprouts, seed)
    sim.step(1)
    # during step 1 the sprouts were blind: not perfused, not O2 sources
    assert sim.perfused[10, 20] == 0 and sim.perfused[20, 20] == 0
    assert sim.field("o2")[10, 20] < 38.0
    # one tip took the gap: the column is now endothelium from vessel to vessel
    assert np.all(np.isin(sim.tissue[5:27, 20], (Cell.EC_STALK, Cell.EC_TIP)))
    sim.step(1)
    assert np.all(sim.perfused[5:27, 20] == 1)
    np.testing.assert_array_equal(sim.field("o2")[5:27, 20], np.float32(38.0))


def test_blind_sprout_is_connected_but_not_perfused_and_does_not_regress():
    def setup(a):
        a["tissue"][5, :] = Cell.EC_STALK
        a["inlet"][5, :] = 1
        a["tissue"][6:14, 20] = Cell.EC_STALK
        a["tissue"][14, 20] = Cell.EC_TIP

    sim = build((32, 40), ANASTOMOSIS.replace(tip_move_min=0.0, tip_move_max=0.0, vessel_regression_time=60.0),
                setup)
    sim.step(10)
    assert np.all(sim.tissue[6:14, 20] == Cell.EC_STALK) and sim.tissue[14, 20] == Cell.EC_TIP
    assert np.all(sim.perfused[8:15, 20] == 0) and np.all(sim.perfused[5, :] == 1)


def test_blind_sprout_with_turns_and_diagonal_steps_carries_no_flow():
    # Corners make Moore triangles; a degree-based 2-core would call this sprout a loop.
    path = [(6, 20), (7, 21), (8, 21), (8, 22), (8, 23), (9, 24), (10, 24), (11, 23), (12, 23), (12, 22)]

    def setup(a):
        a["tissue"][5, :] = Cell.EC_STALK
        a["inlet"][5, :] = 1
        for y, x in path:
            a["tissue"][y, x] = Cell.EC_STALK
        a["tissue"][13, 21] = Cell.EC_TIP

    sim = build((32, 40), ANASTOMOSIS.replace(tip_move_min=0.0, tip_move_max=0.0), setup)
    sim.step(1)
    assert all(sim.perfused[y, x] == 0 for y, x in path + [(13, 21)])
    assert np.all(sim.perfused[5, :] == 1)


def test_cut_off_sprout_regresses_after_the_configured_time():
    def setup(a):
        a["tissue"][5, :] = Cell.EC_STALK
        a["inlet"][5, :] = 1
        a["tissue"][12:20, 10] = Cell.EC_STALK   # not touching any inlet
        a["tissue"][20, 10] = Cell.EC_TIP

    params = ANASTOMOSIS.replace(tip_move_min=0.0, tip_move_max=0.0, vessel_regression_time=150.0)  # 5 steps
    sim = build((32, 40), params, setup)
    sim.step(4)
    assert np.all(np.isin(sim.tissue[12:21, 10], (Cell.EC_STALK,)))  # the tip stopped, everything is counting
    sim.step(1)
    assert np.all(sim.tissue[12:21, 10] == Cell.EMPTY)
    assert np.all(sim.tissue[5, :] == Cell.EC_STALK)  # the fed vessel stays


def test_sprouting_needs_vegf_and_respects_the_exclusion_distance():
    def setup(a, vegf):
        a["tissue"][16, :] = Cell.EC_STALK
        a["inlet"][16, :] = 1
        a["vegf_free"][...] = vegf

    params = tumorca.Params(sprout_rate=0.05, vegf_diffusivity=0.0, vegf_decay=0.0, tip_move_min=0.0,
                            tip_move_max=0.0)
    none = build((32, 200), params, lambda a: setup(a, 0.0))
    none.step(5)
    assert none.counts()[Cell.EC_TIP] == 0
    some = build((32, 200), params, lambda a: setup(a, 5.0))
    some.step(5)
    tips = np.flatnonzero(some.tissue[16] == Cell.EC_TIP)
    assert len(tips) >= 3
    assert np.all(np.diff(tips) > params.sprout_exclusion / params.dx_um)


def test_mmp9_release_conserves_free_plus_bound_vegf():
    rng = np.random.default_rng(3)

    def setup(a):
        for name in ("vegf_free", "vegf_bound", "mmp9"):
            a[name][...] = rng.random(a[name].shape, dtype=np.float32)

    params = tumorca.Params(vegf_decay=0.0, vegf_bound_decay=0.0, mmp9_decay=0.0, mmp9_diffusivity=0.0,
                            vegf_release_rate=0.05)
    sim = build((48, 40), params, setup)
    before = {k: np.array(sim.field(k), dtype=np.float64) for k in ("vegf_free", "vegf_bound", "mmp9")}
    sim.step(1)
    total0 = before["vegf_free"].sum() + before["vegf_bound"].sum()
    total1 = sim.field("vegf_free").sum(dtype=np.float64) + sim.field("vegf_bound").sum(dtype=np.float64)
    assert abs(total1 - total0) / total0 < 1e-6
    expected_bound = before["vegf_bound"] / (1 + 0.05 * 30 * before["mmp9"])
    np.testing.assert_allclose(sim.field("vegf_bound"), expected_bound, rtol=1e-6)
    assert sim.field("vegf_bound").sum() < 0.8 * before["vegf_bound"].sum()  # release did happen


def test_ifn_suppression_curve_and_preset_levels():
    p = tumorca.Params()
    assert p.suppression(0.0) == 1.0 and p.suppression(p.ifn_K) == 0.5  # half suppression at I = K_I
    wt, ko = p.ifn_rates(1.0), p.ifn_rates(0.0)
    for key in ("p_rec", "pstar", "chi", "v_neut", "m_neut", "lifespan"):
        assert ko[key] > wt[key], key
    sim = tumorca.Simulation((8, 8), presets.get("ifnb-therapy"))
    assert sim.ifn_level(0.0) == 1.0 and sim.ifn_level(3 * 1440.0) == 3.0
    with pytest.raises(tumorca.ParameterError, match="unknown preset 'wildtype' .*did you mean 'wild-type'"):
        presets.get("wildtype")


def _neutrophil_run(name, seed, days=8, shape=(96, 96)):
    sim = tumorca.Simulation(shape, presets.get(name, init_vessel_spacing=30), seed=seed)
    recruited, present, vegf_per_cell, lifetimes = 0, [], [], []
    for _ in range(days * 48):
        sim.step(1)
        s = sim.summary()
        recruited += s["neut_recruited"]
        if sim.time_min >= 4 * 1440:  # after therapy has started (day 3) and settled
            present.append(s["neutrophils"])
            if s["neutrophils"]:
                vegf_per_cell.append(s["neut_vegf_produced"] / s["neutrophils"])
    return {"recruited": recruited, "present": np.mean(present),
            "vegf_per_cell": np.mean(vegf_per_cell) if vegf_per_cell else 0.0}


@pytest.mark.slow
def test_knockout_recruits_more_and_more_angiogenic_neutrophils_than_wild_type_and_therapy_fewer():
    seeds = (1, 2, 3)
    runs = {name: [_neutrophil_run(name, s) for s in seeds]
            for name in ("ifnb-knockout", "wild-type", "ifnb-therapy", "neutrophil-depleted")}
    mean = {name: {k: np.mean([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()}
    ko, wt, th, dep = (mean[n] for n in ("ifnb-knockout", "wild-type", "ifnb-therapy", "neutrophil-depleted"))
    # every seed, not only the mean, orders KO above WT
    assert all(k["present"] > w["present"] for k, w in zip(runs["ifnb-knockout"], runs["wild-type"]))
    assert ko["recruited"] > wt["recruited"] > th["recruited"]
    assert ko["present"] > wt["present"] > th["present"]
    assert ko["vegf_per_cell"] > wt["vegf_per_cell"]
    assert dep["present"] <= 0.2 * wt["present"], (dep, wt)
