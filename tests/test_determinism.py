"""Same seed, same result: whatever the thread count, and across a get_state/from_state continuation."""
import numpy as np
import pytest

import tumorca
from tumorca import _rng

from conftest import assert_states_equal, hypoxic_params, randomize_fields


@pytest.mark.parametrize("shape", [(96, 80), (20, 18, 22)])
def test_thread_count_does_not_change_result(shape):
    if not _rng.openmp_enabled():
        pytest.skip("built without OpenMP: one thread only")
    params = hypoxic_params(init_vessel_spacing=16)
    start = randomize_fields(tumorca.Simulation(shape, params, seed=42).get_state(), 1)
    states = []
    for threads in (1, 2, 3):
        sim = tumorca.Simulation.from_state(start, threads=threads)
        sim.step(40)
        states.append(sim.get_state())
    assert_states_equal(states[0], states[1])
    assert_states_equal(states[0], states[2])


FLOW = dict(perfusion="flow", init_vessels="bed", init_bed_crosslink_spacing=10, flow_interval=6)


@pytest.mark.parametrize("shape,kw", [((64, 64), {}), ((16, 16, 16), {}), ((64, 64), FLOW), ((16, 16, 16), FLOW)])
def test_continuation_equals_uninterrupted_run(shape, kw):
    # with flow, the break at step 13 falls between two flow solves (every 6 steps): the flow kept in between
    # must come back from the state
    params = hypoxic_params(init_vessel_spacing=12, init_tumor_radius=6, **kw)
    whole = tumorca.Simulation(shape, params, seed=9, threads=2)
    whole.step(30)
    first = tumorca.Simulation(shape, params, seed=9, threads=1)
    first.step(13)
    state = first.get_state()
    second = tumorca.Simulation.from_state(state, threads=2)
    assert second.step_index == 13 and second.time_min == 13 * params.dt_min
    second.step(17)
    assert_states_equal(whole.get_state(), second.get_state())
    # get_state returns copies: stepping the source must not change a state already taken
    before = state["arrays"]["tissue"].copy()
    first.step(5)
    np.testing.assert_array_equal(state["arrays"]["tissue"], before)


def test_seeds_differ_and_repeat():
    p = hypoxic_params()
    runs = {}
    for seed in (1, 2, 1):
        sim = tumorca.Simulation((48, 48), p, seed=seed)
        sim.step(25)
        runs.setdefault(seed, []).append(sim.tissue.copy())
    np.testing.assert_array_equal(runs[1][0], runs[1][1])
    assert not np.array_equal(runs[1][0], runs[2][0])


def test_state_round_trips_through_plain_objects():
    import pickle
    sim = tumorca.Simulation((24, 24), hypoxic_params(init_vessel_spacing=8, init_tumor_radius=4), seed=5)
    sim.step(3)
    state = pickle.loads(pickle.dumps(sim.get_state()))
    assert isinstance(state["params"], dict) and isinstance(state["seed"], int)
    clone = tumorca.Simulation.from_state(state)
    clone.step(4)
    sim.step(4)
    assert_states_equal(sim.get_state(), clone.get_state())
