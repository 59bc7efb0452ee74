"""The flow solve of the perfusion phase on its own: time and peak memory of one cold solve on the default host
bed, per lattice.

    python scripts/bench_flow.py [--shapes 2048x2048,128x128x128] [--rounds 3] [--threads 1] [--json out.json]

A lattice is built at the default parameters (the host capillary bed with its inlets, and the initial tumour),
and the perfusion phase's flow solve (:func:`tumorca.flow.flowing`, the call the engine makes every
``flow_interval`` steps) is repeated on its vessel sites.  Reported: vessel nodes, the time of a solve (the minimum
over rounds: the machine's other tenants only ever add time) and the peak of the memory it allocates, from
``tracemalloc`` (NumPy reports every array it allocates to it, and the kernel allocates only NumPy arrays), per vessel
node and per lattice site.  The peak does not depend on the machine's load, so it can be compared across sessions.
"""
import argparse
import json
import time
import tracemalloc

import numpy as np

import tumorca
from tumorca import flow
from tumorca.rules import FlowRules


def measure(shape: tuple[int, ...], rounds: int, threads: int) -> dict:
    sim = tumorca.Simulation(shape, seed=1, threads=threads)
    params = sim.params
    state = sim.get_state()
    vessel = state["arrays"]["vessel"].ravel()
    inlet = state["arrays"]["inlet"].ravel()
    del state, sim
    shape3 = (1,) * (3 - len(shape)) + tuple(shape)
    rules = FlowRules.from_params(params)
    nodes = np.flatnonzero(vessel).astype(np.int64)
    codes = inlet[nodes]
    edge = params.vessel_inlets == "edge"
    times, peak, info = [], 0, {}
    for _ in range(rounds):
        tracemalloc.start()
        t0 = time.perf_counter()
        kept, info = flow.flowing(nodes, codes, shape3, rules, edge, threads)
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        del kept
    sites = int(np.prod(shape))
    return {"shape": "x".join(map(str, shape)), "sites": sites, "vessel_nodes": int(nodes.size),
            "threads": threads, "iterations": info["iterations"], "solve_s": min(times), "peak_bytes": peak,
            "peak_bytes_per_node": peak / max(nodes.size, 1), "peak_bytes_per_site": peak / sites}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="2048x2048,128x128x128")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = [measure(tuple(int(v) for v in s.split("x")), args.rounds, args.threads) for s in args.shapes.split(",")]
    print(f"{'lattice':>12} {'vessel nodes':>12} {'CG its':>6} {'solve s':>8} {'peak MB':>8} {'B/node':>7} "
          f"{'B/site':>7}")
    for r in rows:
        print(f"{r['shape']:>12} {r['vessel_nodes']:>12} {r['iterations']:>6} {r['solve_s']:>8.3f} "
              f"{r['peak_bytes'] / 1e6:>8.1f} {r['peak_bytes_per_node']:>7.1f} {r['peak_bytes_per_site']:>7.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tumorca": tumorca.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
