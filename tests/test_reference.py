"""The compiled kernels agree with the NumPy reference bit for bit, step after step."""
import numpy as np
import pytest

import tumorca
from tumorca import Cell, reference

from conftest import assert_states_equal, hypoxic_params, randomize_fields

CASES = [
    ((64, 64), {}),
    ((64, 64), {"o2_boundary": "dirichlet", "field_boundary": "dirichlet",
                "init_vessels": "none", "init_tumor_radius": 14, "o2_uptake_stroma": 0.02, "o2_uptake_tumor": 6.0}),
    ((16, 16, 16), {"init_vessel_spacing": 12, "init_tumor_radius": 6}),
    ((16, 16, 16), {"o2_boundary": "dirichlet", "field_boundary": "dirichlet", "init_vessels": "none",
                    "init_tumor_radius": 6, "o2_uptake_tumor": 40.0}),
]


@pytest.mark.parametrize("shape,kw", CASES)
@pytest.mark.parametrize("seed", [3, 2**63 + 11])
def test_kernels_match_reference(shape, kw, seed):
    params = hypoxic_params(**kw)
    sim = tumorca.Simulation(shape, params, seed=seed, threads=2)
    start = randomize_fields(sim.get_state(), seed % 1000)
    sim = tumorca.Simulation.from_state(start, threads=2)
    ref = reference.run(start, 0)
    seen = set(np.unique(start["arrays"]["tissue"]).tolist())
    for chunk in range(5):  # compare every 10 steps, 50 in all
        sim.step(10)
        ref = reference.run(ref, 10)
        assert_states_equal(sim.get_state(), ref)
        seen |= set(np.unique(sim.tissue).tolist())
    # The comparison is only worth something if the rules fired: growth, quiescence and necrosis all happened.
    assert {Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC} <= seen
    assert sim.counts()[Cell.TUMOR_P] + sim.counts()[Cell.TUMOR_Q] + sim.counts()[Cell.NECROTIC] > \
        np.count_nonzero(np.asarray(start["arrays"]["tissue"]) == Cell.TUMOR_P)
