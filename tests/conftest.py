import multiprocessing.process
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

import tumorca
from tumorca import Cell, Vessel


def assert_states_equal(a: dict, b: dict) -> None:
    """Every state array equal bit for bit (float32 compared as raw bytes, so -0.0 != 0.0 and NaNs count)."""
    assert a["step_index"] == b["step_index"]
    assert set(a["arrays"]) == set(b["arrays"])
    for name in a["arrays"]:
        x, y = np.ascontiguousarray(a["arrays"][name]), np.ascontiguousarray(b["arrays"][name])
        assert x.shape == y.shape, name
        if not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
            diff = np.flatnonzero(x.ravel() != y.ravel())
            raise AssertionError(f"array {name!r} differs at {diff.size} sites, first {diff[:5]}")


def hypoxic_params(**kw) -> tumorca.Params:
    """Parameters under which every tumour rule fires within tens of steps on a small lattice: a tumour between
    widely spaced vessels that turns hypoxic, quiescent and necrotic, with quick quiescent death."""
    base = dict(init_vessels="parallel", init_vessel_spacing=24, init_tumor_radius=9, o2_uptake_tumor=20.0, o2_uptake_stroma=0.3,
                quiescent_death_time=300.0, tumor_cycle_rate=0.004,
                # vessels and neutrophils busy enough that every rule fires within a few tens of steps
                vegf_tumor_max=0.5, sprout_rate=0.01, sprout_exclusion=60.0, tip_fusion_min_age=2,
                branch_max=0.3, vessel_regression_time=150.0, cxcl_tumor_live=0.05, neut_recruit_max=0.01,
                neut_recruit_min=0.002, neut_kill_rate=0.05, neut_substeps=3, neut_mmp9_max=0.5,
                neut_lifespan_max=600.0)
    base.update(kw)
    return tumorca.Params(**base)


def randomize_fields(state: dict, seed: int) -> dict:
    """Give the slow fields random non-negative values so their kernels do real work in comparisons."""
    rng = np.random.default_rng(seed)
    for name in ("vegf_free", "vegf_bound", "mmp9", "cxcl"):
        a = state["arrays"][name]
        a[...] = rng.random(a.shape, dtype=np.float32) * 2.0
    return state


def random_state(shape, params, seed, probs=(0.55, 0.2, 0.12, 0.13), vessel_probs=(0.72, 0.22, 0.06),
                 inlet_fraction=0.1, clock_high=4):
    """A state with every tissue type, vessels (over every tissue type), clocks, neutrophils and fields scattered
    at random: every rule acts at every block boundary in the first steps.  Clocks and neutrophil ages are below
    ``clock_high`` (4: tips of every age the fusion rule tells apart; more, to reach quiescent death and
    regression in one step)."""
    st = tumorca.Simulation(shape, params, seed=seed, threads=1).get_state()
    rng = np.random.default_rng(seed)
    a = st["arrays"]
    sh = a["tissue"].shape
    a["tissue"][...] = rng.choice(len(probs), size=sh, p=list(probs)).astype(np.uint8)
    a["clock"][...] = rng.integers(0, clock_high, size=sh)
    a["vessel"][...] = rng.choice(len(vessel_probs), size=sh, p=list(vessel_probs)).astype(np.uint8)
    a["vclock"][...] = rng.integers(0, clock_high, size=sh)
    a["inlet"][...] = (a["vessel"] == Vessel.STALK) & (rng.random(sh) < inlet_fraction)
    a["neut"][...] = rng.random(sh) < 0.15
    a["neut_p"][...] = np.where(a["neut"], rng.random(sh, dtype=np.float32), 0)
    a["neut_age"][...] = np.where(a["neut"], 3, 0)
    for n in ("vegf_free", "vegf_bound", "mmp9", "cxcl"):
        a[n][...] = rng.random(sh, dtype=np.float32) * 3
    a["o2"][...] = rng.random(sh, dtype=np.float32) * 40
    return st


@pytest.fixture
def assert_equal_states():
    return assert_states_equal


# ---- test tiers: a test that starts a Python process says so, and has a time limit of its own ------------------
# The fast tier (README: pytest -m "not slow and not mpi and not dask and not subprocess") relies on these markers;
# a new test that starts `tumorca`, mpiexec, a Python child or a Dask cluster without them would slip into it, so
# they are checked where the processes start rather than trusted.
PROCESS_MARKERS = ("subprocess", "mpi", "dask")
_running: list = []  # the test item whose setup, call or teardown is running, if any
_popen_init = subprocess.Popen.__init__
_process_start = multiprocessing.process.BaseProcess.start


def _starts_python(args) -> bool:
    """Whether a Popen command line runs Python, ``tumorca`` or an MPI launcher (other tools, such as ffmpeg or
    fc-list run by the plotting libraries, are not what the markers are about)."""
    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    name = os.path.basename(argv[0]) if argv else ""
    return argv[:1] == [sys.executable] or name.startswith("python") or name in ("tumorca", "mpiexec", "mpirun")


def _refuse_unmarked(what: str) -> None:
    item = _running[-1] if _running else None
    if item is not None and not any(item.get_closest_marker(m) for m in PROCESS_MARKERS):
        raise RuntimeError(f"{item.nodeid} starts {what} but has none of the markers {', '.join(PROCESS_MARKERS)}: "
                           "mark it (and give it @pytest.mark.timeout(N), N a few times its duration)")


def _guarded_popen_init(self, args, *a, **kw):
    if _starts_python(args):
        _refuse_unmarked(f"a process ({args if isinstance(args, str) else ' '.join(map(str, args))[:80]})")
    _popen_init(self, args, *a, **kw)


def _guarded_process_start(self):
    _refuse_unmarked("a multiprocessing process")
    _process_start(self)


subprocess.Popen.__init__ = _guarded_popen_init
multiprocessing.process.BaseProcess.start = _guarded_process_start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    try:
        yield
    finally:
        _running.pop()


def pytest_runtest_setup(item):
    """A test that starts processes needs a limit of its own: the global one is only a last resort."""
    if any(item.get_closest_marker(m) for m in PROCESS_MARKERS) and item.get_closest_marker("timeout") is None:
        pytest.fail(f"{item.nodeid} is marked as starting processes but has no @pytest.mark.timeout(N)", pytrace=False)
