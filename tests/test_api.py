"""Public API: parameters, bad input and invariants of the state."""
import numpy as np
import pytest

import tumorca
from tumorca import Cell, Params
from tumorca.errors import LatticeError, ParameterError, ResourceError, TumorcaError

from conftest import hypoxic_params


def test_params_defaults_units_and_sources_documented():
    p = Params()
    for spec in tumorca.PARAMETERS:
        assert getattr(p, spec.name) == spec.default
        assert spec.doc, spec.name
        assert spec.kind in (float, int, str, bool)
    assert p.o2_vessel == 38.0 and p.tumor_cycle_rate == 0.00072 and p.dt_min == 30.0


def test_params_replace_to_dict_and_toml(tmp_path):
    p = Params(o2_uptake_stroma=0.01)
    q = p.replace(o2_vessel=40)
    assert q.o2_vessel == 40.0 and isinstance(q.o2_vessel, float) and p.o2_vessel == 38.0
    assert Params.from_dict(q.to_dict()) == q
    f = tmp_path / "p.toml"
    f.write_text('o2_vessel = 30.0\n[params]\ninit_vessel_spacing = 12\n')
    r = Params.from_toml(f)
    assert r.o2_vessel == 30.0 and r.init_vessel_spacing == 12
    assert r.changed() == {"o2_vessel": 30.0, "init_vessel_spacing": 12}
    with pytest.raises(AttributeError):
        p.o2_vessel = 1.0


@pytest.mark.parametrize("kw,match", [
    ({"o2_vesel": 1.0}, r"unknown parameter 'o2_vesel' \(did you mean 'o2_vessel'\?\)"),
    ({"o2_vessel": -1.0}, r"'o2_vessel' = -1.0 is out of range \[0, 760\]"),
    ({"o2_vessel": "high"}, r"'o2_vessel' must be a number"),
    ({"o2_vessel": True}, r"'o2_vessel' must be a number"),
    ({"o2_vessel": float("nan")}, r"must be finite"),
    ({"init_vessel_spacing": 2.5}, r"'init_vessel_spacing' must be an integer"),
    ({"o2_boundary": "open"}, r"'o2_boundary' must be one of 'no-flux', 'dirichlet'"),
    ({"cycle_o2_low": 40.0}, r"cycle_o2_low < cycle_o2_high"),
])
def test_bad_parameters_name_the_problem(kw, match):
    with pytest.raises(ParameterError, match=match) as info:
        Params(**kw)
    assert "\n" not in str(info.value)


def test_malformed_toml_names_the_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("o2_vessel = 30.0\no2_tol = = 2\n")
    with pytest.raises(ParameterError, match=r"malformed TOML .*line 2"):
        Params.from_toml(f)
    with pytest.raises(ParameterError, match="cannot read parameter file"):
        Params.from_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("shape,match", [
    ((0, 10), "positive"), ((-3, 10), "positive"), ((10.5, 10), "integers"), ((2, 2, 2, 2), "2 or 3"),
    ((10,), "2 or 3"), (10, r"\(ny, nx\)"), ((True, 4), "integers"),
])
def test_bad_shapes(shape, match):
    with pytest.raises(LatticeError, match=match):
        tumorca.Simulation(shape)


@pytest.mark.parametrize("kw,match", [
    ({"seed": -1}, r"\[0, 2\*\*64\)"), ({"seed": 2**64}, r"\[0, 2\*\*64\)"), ({"seed": 1.5}, "integer"),
    ({"threads": 0}, "threads"), ({"threads": 1.0}, "threads"), ({"params": {"o2_vessel": 1}}, "tumorca.Params"),
])
def test_bad_seed_threads_params(kw, match):
    with pytest.raises(TumorcaError, match=match):
        tumorca.Simulation((8, 8), **kw)


def test_lattice_too_big_for_memory_is_refused_before_allocating():
    with pytest.raises(ResourceError, match=r"lattice 100000x100000x100000 needs .* B/site\) but only"):
        tumorca.Simulation((100_000, 100_000, 100_000))


def test_views_are_read_only_and_shaped_as_given():
    sim = tumorca.Simulation((12, 20))
    assert sim.tissue.shape == (12, 20) and sim.field("o2").shape == (12, 20) and sim.shape == (12, 20)
    with pytest.raises(ValueError):
        sim.tissue[0, 0] = 1
    with pytest.raises(ParameterError, match="unknown field 'o3'; fields are o2"):
        sim.field("o3")
    assert tumorca.Simulation((4, 12, 20)).tissue.shape == (4, 12, 20)


@pytest.mark.parametrize("shape", [(64, 64), (18, 18, 18)])
def test_invariants_hold_along_a_run(shape):
    p = hypoxic_params(init_vessel_spacing=14, init_tumor_radius=6)
    sim = tumorca.Simulation(shape, p, seed=2)
    valid = {int(c) for c in Cell}
    events = dict.fromkeys(("tumor_born", "tumor_killed", "neut_recruited", "neut_died"), 0)
    for _ in range(6):
        for _ in range(5):
            # The kernels count their own events (births, kills, recruits, deaths); the tissue and neutrophil
            # layers must balance with those counts, which are made apart from any count of the layers.
            before = sim.counts()
            n_before = int(np.count_nonzero(sim.neutrophils["present"]))
            sim.step(1)
            s, after = sim.summary(), sim.counts()
            live = [c[Cell.TUMOR_P] + c[Cell.TUMOR_Q] for c in (before, after)]
            # live tumour changes only by division, kills (-> stroma) and deaths (-> necrotic); tips never
            # enter live tumour, so deaths = the rest, and it is a count of cells that were alive
            deaths = live[0] + s["tumor_born"] - s["tumor_killed"] - live[1]
            assert 0 <= deaths <= live[0] and s["tumor_killed"] <= live[0], (s, before, after)
            assert s["tumor_born"] <= before[Cell.EMPTY]
            # necrotic sites come only from those deaths and leave only when a tip moves onto them
            assert after[Cell.NECROTIC] - before[Cell.NECROTIC] <= deaths
            assert np.count_nonzero(sim.neutrophils["present"]) == n_before + s["neut_recruited"] - s["neut_died"]
            for key in events:
                events[key] += s[key]
        assert set(np.unique(sim.tissue).tolist()) <= valid
        counts = sim.counts()
        assert sum(counts.values()) == sim.tissue.size
        for name in tumorca.FIELD_NAMES:
            assert np.all(sim.field(name) >= 0), name
        # maximum principle: no site exceeds the vessel pO2 when every source is at that value
        assert sim.field("o2").max() <= np.float32(p.o2_vessel)
        assert np.all(sim.field("o2")[sim.perfused == 1] == np.float32(p.o2_vessel))
        # a vessel carries flow or counts; inlets are vessels (a regressed inlet loses the flag); neutrophil data
        # only where a neutrophil is
        assert np.all(sim.vessel[sim.perfused == 1] != 0)
        assert np.all(sim.vessel[sim.get_state()["arrays"]["inlet"] != 0] != 0)
        n = sim.neutrophils
        assert set(np.unique(n["present"]).tolist()) <= {0, 1}
        assert np.all(n["polarization"][n["present"] == 0] == 0) and np.all(n["age"][n["present"] == 0] == 0)
        assert np.all((n["polarization"] >= 0) & (n["polarization"] <= 1))
    # every event the balances count happened (these vessels keep the tumour above the necrosis threshold, so
    # the necrotic count may only stay put: that is checked too)
    assert all(events.values()), events
