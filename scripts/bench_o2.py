"""O2 solve cost, mgcg against red-black SOR (and the experimental multigrid): sweep-equivalents and wall time per
solve, warm and cold.

    python scripts/bench_o2.py [--cases 512x512,128x128x128] [--threads 1,2] [--steps 3-10] [--json out.json]
        [--solvers mgcg,sor]

For each case a default-parameter Simulation (seed 1) with the solver under test is stepped past the unmeasured
steps.  Each measured step then times the O2 solve it makes (warm: from the previous step's field) and, on a
copy of the same system, a cold solve (every free site 0, sources at o2_vessel).  Work is the solver's own count
in lattice-sweep equivalents (tumorca.o2.O2Solver.solve; docs/o2-solver.md).
"""
import argparse
import json
import time

import numpy as np

import tumorca


def run_case(shape, solver, threads, first, last, cold_solves):
    """Rows (iterations, sweep-eq, seconds) warm then cold, for the O2 solves of steps first..last (1-based)."""
    sim = tumorca.Simulation(shape, tumorca.Params(o2_solver=solver), seed=1, threads=threads)
    sim.step(first - 1)
    o2 = sim._domain.o2
    solve = o2.solve
    rows = []
    left = [cold_solves]

    def timed(arrays, nt):
        cold = dict(arrays, o2=np.zeros_like(arrays["o2"]))
        t0 = time.perf_counter()
        it_w, res, work_w = solve(arrays, nt)
        t_w = time.perf_counter() - t0
        it_c = work_c = t_c = np.nan
        if left[0] > 0:
            left[0] -= 1
            t0 = time.perf_counter()
            it_c, _, work_c = solve(cold, nt)
            t_c = time.perf_counter() - t0
        rows.append((it_w, work_w, t_w, it_c, work_c, t_c))
        return it_w, res, work_w

    o2.solve = timed
    try:
        sim.step(last - first + 1)
    finally:
        o2.solve = solve
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="512x512,128x128x128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", default="3-10")
    ap.add_argument("--cold-steps", type=int, default=100, help="cold solves only on the first N measured steps")
    ap.add_argument("--solvers", default="mgcg,sor")
    ap.add_argument("--json")
    args = ap.parse_args()
    first, last = (int(v) for v in args.steps.split("-"))
    out = []
    for case in args.cases.split(","):
        shape = tuple(int(v) for v in case.split("x"))
        for threads in (int(t) for t in args.threads.split(",")):
            for solver in args.solvers.split(","):
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
