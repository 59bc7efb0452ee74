"""Where the mgcg O2 solve gains, or does not gain, from more threads: one warm solve split into the coarse build,
the V-cycles and the rest (the conjugate-gradient passes over lattice vectors), beside a STREAM triad, per thread
count.

    python scripts/bench_o2_threads.py [--shape 2048x2048] [--threads 1,2] [--rounds 5] [--json out.json]

A wild-type benchmark case (`tumorca.bench.case_params`, tumour on a quarter of the lattice) is stepped 3 times;
then, in each round and for each thread count in turn, the same warm solve is repeated from the same start (the
field of step 3 scaled by 0.999, so every solve makes the same iterations), and the preconditioner's parts are timed
on their own through the kernels' twin-test entry points.  The minimum over rounds is reported: the machine's other
tenants only ever add time.  ``rest = solve - build - V-cycles x V-cycle`` is a difference of minima, an estimate.
"""
import argparse
import json
import time

import numpy as np

import tumorca
from tumorca import _o2
from tumorca._numerics import MgcgWorkspace
from tumorca.bench import case_params, roofline
from tumorca.o2 import uptake_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="2048x2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    threads = [int(t) for t in args.threads.split(",")]
    p = case_params(shape, "wild-type")
    sim = tumorca.Simulation(shape, p, seed=1, threads=max(threads))
    sim.step(3)
    a = sim._arrays
    solver = sim._domain.o2
    start = a["o2"] * np.float32(0.999)
    k, up, dirichlet = p.rates()["o2_k"], uptake_table(p), p.o2_boundary == "dirichlet"
    ws = MgcgWorkspace(a["tissue"].shape)
    r = np.random.default_rng(0).random(a["tissue"].shape, dtype=np.float32)
    best: dict[int, dict[str, float]] = {t: {} for t in threads}

    def keep(t: int, name: str, value: float) -> None:
        best[t][name] = min(best[t].get(name, np.inf), value)

    for _ in range(args.rounds):
        for t in threads:
            keep(t, "triad_GBps_inv", 1.0 / roofline(t, 128, 3)["triad_GBps"])
            a["o2"][...] = start
            t0 = time.perf_counter()
            its, _, work = solver.solve(a, t)
            keep(t, "solve", time.perf_counter() - t0)
            t0 = time.perf_counter()
            _o2.mgcg_levels(a["tissue"], a["perfused"], up, k, dirichlet, ws, t)
            keep(t, "build", time.perf_counter() - t0)
            t0 = time.perf_counter()  # the preconditioner entry point builds the levels again, then cycles once
            _o2.mgcg_precondition(r, a["tissue"], a["perfused"], up, k, dirichlet, p.o2_mgcg_smooth, ws, t)
            keep(t, "build+vcycle", time.perf_counter() - t0)
            best[t]["iterations"], best[t]["sweep_eq"] = its, work
    rows = {}
    for t in threads:
        b = best[t]
        vcycle = b["build+vcycle"] - b["build"]
        # one V-cycle before the first iteration and one after every iteration but the last
        rows[t] = {"triad_GBps": 1.0 / b["triad_GBps_inv"], "solve_s": b["solve"], "build_s": b["build"],
                   "vcycle_s": vcycle, "vcycles": b["iterations"],
                   "rest_s": b["solve"] - b["build"] - b["iterations"] * vcycle,
                   "iterations": b["iterations"], "sweep_eq": b["sweep_eq"]}
    t0 = threads[0]
    print(f"{args.shape}: {rows[t0]['iterations']} iterations, {rows[t0]['sweep_eq']:.1f} sweep-equivalents")
    print(f"{'threads':>7} {'triad GB/s':>10} {'solve s':>8} {'build s':>8} {'V-cycle s':>9} {'rest s':>7}")
    for t in threads:
        w = rows[t]
        print(f"{t:7d} {w['triad_GBps']:10.1f} {w['solve_s']:8.3f} {w['build_s']:8.4f} {w['vcycle_s']:9.4f} "
              f"{w['rest_s']:7.3f}")
    for t in threads[1:]:
        ratios = [("triad", rows[t]["triad_GBps"] / rows[t0]["triad_GBps"])]  # bandwidth: higher is faster
        ratios += [(name, rows[t0][key] / rows[t][key]) for name, key in
                   (("solve", "solve_s"), ("build", "build_s"), ("V-cycle", "vcycle_s"), ("rest", "rest_s"))]
        print(f"speed-up {t0} -> {t}: " + ", ".join(f"{name} {v:.2f}x" for name, v in ratios))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"shape": list(shape), "rows": {str(t): rows[t] for t in threads}}, f, indent=1)


if __name__ == "__main__":
    main()
