"""Timing hook for the distributed engine: seconds per step and the part of it spent in halo exchanges.

Also one case of ``tumorca bench --mpi``, run as ``mpiexec -n P python -m tumorca.parallel.bench --shape ...``
(:func:`main`): times :func:`bench_step` and prints its result as one JSON line on rank 0's stdout.
"""
from __future__ import annotations

import argparse
import json
from time import perf_counter
from typing import Any

from ..params import Params


def bench_step(shape, steps: int = 5, ranks_shape: Any = None, params: Params | None = None, seed: int = 1,
               threads: int | None = 1, warmup: int = 1, comm=None) -> dict[str, Any]:
    """Run a :class:`DistributedSimulation` on ``shape`` and time ``steps`` steps after ``warmup`` untimed ones.

    Collective: every rank of ``comm`` (default COMM_WORLD) must call it; every rank gets the same dict.

    Returns
    -------
    dict
        ``ranks``, ``grid`` ("PzxPyxPx"), ``sites``, ``halo_width``, ``steps``;
        ``step_seconds``: wall seconds per step (the slowest rank, between barriers);
        ``halo_seconds``: seconds per step spent in halo exchanges (the slowest rank);
        ``phase_seconds``: per phase (and ``halo``), seconds per step on the slowest rank;
        ``halo_bytes``: bytes sent in halo exchanges per step, summed over ranks;
        ``o2_sweeps``: O2 solver iterations per step (mean over the timed steps); ``o2_mode``: how the O2 solve
        ran: ``"distributed"`` (mgcg on the blocks), ``"gathered"`` (mgcg on rank 0) or ``"sor"``.
    """
    from mpi4py import MPI

    from .simulation import DistributedSimulation
    comm = MPI.COMM_WORLD if comm is None else comm
    sim = DistributedSimulation(shape, params, seed=seed, threads=threads, comm=comm, ranks_shape=ranks_shape)
    sim.step(warmup)
    halo = sim._domain.exchanger
    b0 = halo.bytes_sent
    ph0 = sim.phase_times
    sw0 = sim.o2_solver_stats["sweeps_total"]
    comm.Barrier()
    t0 = perf_counter()
    sim.step(steps)
    comm.Barrier()
    wall = perf_counter() - t0
    ph1 = sim.phase_times
    n = max(1, steps)
    phases = {k: (ph1[k] - ph0[k]) / n for k in ph1}
    phases = {k: comm.allreduce(v, op=MPI.MAX) for k, v in phases.items()}
    nsites = 1
    for d in sim.decomposition.shape3:
        nsites *= d
    return {
        "ranks": comm.Get_size(), "grid": "x".join(map(str, sim.decomposition.dims)), "sites": nsites,
        "halo_width": sim.halo_width, "steps": steps,
        "step_seconds": comm.allreduce(wall / n, op=MPI.MAX),
        "halo_seconds": phases["halo"], "phase_seconds": phases,
        "halo_bytes": comm.allreduce(halo.bytes_sent - b0, op=MPI.SUM) / n,
        "o2_sweeps": (sim.o2_solver_stats["sweeps_total"] - sw0) / n,
        "o2_mode": sim._domain.o2.mode,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m tumorca.parallel.bench``: one case of ``tumorca bench --mpi`` (every rank runs it)."""
    ap = argparse.ArgumentParser(prog="python -m tumorca.parallel.bench")
    ap.add_argument("--shape", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="wild-type")
    ap.add_argument("--ranks-shape", default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="set one parameter (e.g. o2_solver=sor), as tumorca run --set")
    a = ap.parse_args(argv)
    from mpi4py import MPI

    from ..bench import case_params, parse_shape
    from ..params import tomllib

    shape = parse_shape(a.shape)
    overrides = {}
    for item in a.sets:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set takes KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value.strip()   # a bare word (sor, dirichlet)
    row = bench_step(shape, steps=a.steps, ranks_shape=a.ranks_shape,
                     params=case_params(shape, a.preset, overrides=overrides),
                     threads=a.threads, warmup=1)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
