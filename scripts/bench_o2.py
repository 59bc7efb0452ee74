"""O2 solve cost, multigrid against red-black SOR: sweep-equivalents and wall time per solve, warm and cold.

    python scripts/bench_o2.py [--cases 512x512,128x128x128] [--threads 1,2] [--steps 3-10] [--json out.json]

For each case a default-parameter Simulation (seed 1) with the solver under test is stepped past the unmeasured
steps.  Each measured step then times the O2 solve it makes (warm: from the previous step's field) and, on a
copy of the same system, a cold solve (every free site 0, vessels at o2_vessel).  Work is counted in lattice sweeps
as the prototype study of docs/o2-solver.md does: SOR sweeps, or V-cycles x MultigridPlan.cycle_work.
"""
import argparse
import json
import time

import numpy as np

import tumorca
from tumorca import _o2


class _Timed:
    """Stands in for a solver of tumorca._o2 inside the engine's step: times the step's own (warm) call,
    then a cold solve of the same system on a copy whose free sites start at 0."""

    def __init__(self, fn, work_per_iter, cold_solves):
        self.fn, self.work_per_iter, self.cold_left, self.rows = fn, work_per_iter, cold_solves, []

    def __call__(self, c, *args):
        cold = np.zeros_like(c)
        t0 = time.perf_counter()
        it_w, res = self.fn(c, *args)
        t_w = time.perf_counter() - t0
        it_c = t_c = np.nan
        if self.cold_left > 0:
            self.cold_left -= 1
            t0 = time.perf_counter()
            it_c, _ = self.fn(cold, *args)
            t_c = time.perf_counter() - t0
        self.rows.append((it_w, it_w * self.work_per_iter, t_w, it_c, it_c * self.work_per_iter, t_c))
        return it_w, res


def run_case(shape, solver, threads, first, last, cold_solves):
    """Rows (iterations, sweep-eq, seconds) warm then cold, for the O2 solves of steps first..last (1-based)."""
    sim = tumorca.Simulation(shape, tumorca.Params(o2_solver=solver), seed=1, threads=threads)
    sim.step(first - 1)
    name = "o2_solve_multigrid" if solver == "multigrid" else "o2_solve"
    timed = _Timed(getattr(_o2, name), sim._domain.o2.cycle_work,
                   cold_solves)
    setattr(_o2, name, timed)
    try:
        sim.step(last - first + 1)
    finally:
        setattr(_o2, name, timed.fn)
    return timed.rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="512x512,128x128x128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", default="3-10")
    ap.add_argument("--cold-steps", type=int, default=100, help="cold solves only on the first N measured steps")
    ap.add_argument("--json")
    args = ap.parse_args()
    first, last = (int(v) for v in args.steps.split("-"))
    out = []
    for case in args.cases.split(","):
        shape = tuple(int(v) for v in case.split("x"))
        for threads in (int(t) for t in args.threads.split(",")):
            for solver in ("multigrid", "sor"):
                rows = run_case(shape, solver, threads, first, last, args.cold_steps)
                r = np.array(rows)
                rec = {"case": case, "solver": solver, "threads": threads,
                       "warm_iters": r[:, 0].mean(), "warm_sweep_eq": r[:, 1].mean(), "warm_ms": 1e3 * r[:, 2].mean(),
                       "warm_ms_median": 1e3 * float(np.median(r[:, 2])),
                       "cold_iters": np.nanmean(r[:, 3]), "cold_sweep_eq": np.nanmean(r[:, 4]),
                       "cold_ms": 1e3 * np.nanmean(r[:, 5]), "cold_ms_median": 1e3 * float(np.nanmedian(r[:, 5])),
                       "warm_sweep_eq_max": r[:, 1].max(), "cold_sweep_eq_max": np.nanmax(r[:, 4])}
                out.append(rec)
                print(f"{case:>12} {solver:>9} t={threads}  warm {rec['warm_iters']:6.1f} it "
                      f"{rec['warm_sweep_eq']:7.1f} sw-eq {rec['warm_ms']:8.1f} ms (median {rec['warm_ms_median']:.1f})"
                      f" | cold {rec['cold_iters']:6.1f} it {rec['cold_sweep_eq']:7.1f} sw-eq {rec['cold_ms']:8.1f} ms"
                      f" (median {rec['cold_ms_median']:.1f})", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
