"""Golden outputs: fingerprints of whole runs that only a deliberate model change may alter.

``python tests/golden.py --write`` records them in ``tests/golden.json``; ``tests/test_golden.py`` recomputes them
and compares.  A commit that updates the file must say that it changes the model, and why.  Under MPI
(``mpiexec -n P python tests/golden.py --mpi``) every case runs on a :class:`DistributedSimulation` and rank 0
prints the fingerprints as JSON, so the distributed engine is held to the same file.

A fingerprint is the SHA-256 of every state array after the run (raw bytes, so float32 bits count) and of the
per-step ``summary()`` series (floats as their IEEE-754 hex), so an O2 sweep count that changes is seen too.
Cases use only the public API: every preset in 2D and 3D, plus a case where every rule fires within tens of steps.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.json"

#: Seed of every case (arbitrary, fixed).
SEED = 20261206
#: Parameters under which every rule fires within tens of steps on a small lattice (as conftest.hypoxic_params).
BUSY = dict(init_vessels="parallel", init_vessel_spacing=16, init_tumor_radius=7, o2_uptake_tumor=20.0,
            o2_uptake_stroma=0.3, quiescent_death_time=300.0, tumor_cycle_rate=0.004, vegf_tumor_max=0.5,
            sprout_rate=0.01, sprout_exclusion=60.0, tip_fusion_min_age=2, branch_max=0.3,
            vessel_regression_time=150.0, cxcl_tumor_live=0.05, neut_recruit_max=0.01, neut_recruit_min=0.002,
            neut_kill_rate=0.05, neut_substeps=3, neut_mmp9_max=0.5, neut_lifespan_max=600.0,
            coopt_regression_rate=0.002)


def cases() -> dict[str, tuple[tuple[int, ...], str, dict, int]]:
    """name -> (shape, preset, extra parameters, steps)."""
    import tumorca.presets as presets

    # push_range 2 (halo 8) instead of the default 5 (halo 20), so that these small lattices split across 2 and
    # 3 ranks; pushing still acts
    push = {"push_range": 2}
    out = {}
    for name in presets.names():
        out[f"2d-{name}"] = ((48, 62), name, {"init_vessel_spacing": 20, "init_tumor_radius": 8, **push}, 120)
        out[f"3d-{name}"] = ((14, 18, 26), name, {"init_vessel_spacing": 10, "init_tumor_radius": 4, **push}, 48)
    out["2d-busy"] = ((45, 53), "wild-type", {**BUSY, **push}, 80)
    out["3d-busy"] = ((15, 19, 24), "ifnb-knockout", {**BUSY, **push}, 40)
    return out


#: The cases the MPI test runs (every preset runs serially; under MPI the busy cases, where every rule fires at
#: block boundaries, and one preset per dimension keep ``mpiexec -n 3`` on 2 cores to about a minute).
MPI_CASES = ("2d-busy", "3d-busy", "2d-ifnb-knockout", "3d-wild-type")


def _digest_series(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for row in rows:
        for key in sorted(row):
            v = row[key]
            h.update(key.encode())
            h.update((float(v).hex() if isinstance(v, float) else repr(v)).encode())
    return h.hexdigest()


def fingerprint(state: dict, rows: list[dict]) -> dict[str, str]:
    out = {name: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
           for name, a in sorted(state["arrays"].items())}
    out["summary_series"] = _digest_series(rows)
    return out


def run_serial(name: str) -> dict[str, str]:
    import tumorca
    import tumorca.presets as presets

    shape, preset, extra, steps = cases()[name]
    sim = tumorca.Simulation(shape, presets.get(preset, **extra), seed=SEED, threads=1)
    rows = []
    for _ in range(steps):
        sim.step()
        rows.append(sim.summary())
    return fingerprint(sim.get_state(), rows)


def run_mpi(name: str, comm) -> dict[str, str] | None:
    import tumorca.presets as presets
    from tumorca.parallel import DistributedSimulation

    shape, preset, extra, steps = cases()[name]
    with DistributedSimulation(shape, presets.get(preset, **extra), seed=SEED, threads=1, comm=comm) as sim:
        rows = []
        for _ in range(steps):
            sim.step()
            rows.append(sim.summary())
        state = sim.gather_state()
    return None if state is None else fingerprint(state, rows)


def main(argv: list[str]) -> int:
    if "--mpi" in argv:
        from mpi4py import MPI

        names = [a for a in argv if not a.startswith("--")] or list(cases())
        out = {n: run_mpi(n, MPI.COMM_WORLD) for n in names}
        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(out, sort_keys=True))
        return 0
    out = {n: run_serial(n) for n in cases()}
    if "--write" in argv:
        GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(out)} cases to {GOLDEN}")
    else:
        print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
