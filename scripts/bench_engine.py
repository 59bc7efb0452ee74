"""Engine throughput: steps/s and site-updates/s of the compiled kernels, beside the NumPy reference.

    python scripts/bench_engine.py [--sizes 512x512,1024x1024,2048x2048,128x128x128] [--threads 1,2]
                                   [--seconds 2] [--reference-steps 1] [--json out.json]

Each case starts from the default parameters with a tumour of radius n/8 at the centre, takes a few warm-up steps
(the first O2 solve is cold), then times whole steps.  The reference is timed on the same warm state in the same
run, so the ratio is meaningful even though absolute times drift on a shared machine.
"""
import argparse
import json
import platform
import time

import numpy as np

import tumorca
from tumorca import _rng, reference

WARMUP = 3


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.lower().split("x"))


def make_sim(shape, threads: int, seed: int = 1) -> tumorca.Simulation:
    radius = min(shape[-2:]) / 8
    sim = tumorca.Simulation(shape, tumorca.Params(init_tumor_radius=radius), seed=seed, threads=threads)
    sim.step(WARMUP)
    return sim


def time_engine(sim: tumorca.Simulation, seconds: float) -> tuple[float, int, float]:
    steps, sweeps, t0 = 0, 0, time.perf_counter()
    while True:
        sim.step(1)
        steps += 1
        sweeps += sim.o2_solver_stats["work"]
        dt = time.perf_counter() - t0
        if dt >= seconds and steps >= 3:
            return dt / steps, steps, sweeps / steps


def time_reference(state: dict, steps: int) -> float:
    shape3 = state["arrays"]["tissue"].reshape((1,) + state["arrays"]["tissue"].shape).shape \
        if len(state["shape"]) == 2 else state["shape"]
    st = {**state, "arrays": {k: v.reshape(shape3).copy() for k, v in state["arrays"].items()}}
    t0 = time.perf_counter()
    for _ in range(steps):
        reference.step(st)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512x512,1024x1024,2048x2048,128x128x128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=2.0, help="time each engine case at least this long")
    ap.add_argument("--reference-steps", type=int, default=1, help="reference steps per case (0: skip)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    print(f"tumorca {tumorca.__version__}, numpy {np.__version__}, OpenMP {_rng.openmp_enabled()}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'lattice':>12} {'thr':>3} {'steps/s':>9} {'site-upd/s':>11} {'O2 swp-eq':>9} {'speed-up':>8} "
          f"{'ref s/step':>10} {'x ref':>7}")
    for size in args.sizes.split(","):
        shape = parse_shape(size)
        n_sites = int(np.prod(shape))
        base = None
        ref_dt = None
        for t in threads:
            sim = make_sim(shape, t)
            if ref_dt is None and args.reference_steps > 0:
                ref_dt = time_reference(sim.get_state(), args.reference_steps)
            dt, steps, sweeps = time_engine(sim, args.seconds)
            base = base or dt
            row = {"shape": list(shape), "threads": t, "seconds_per_step": dt, "steps_per_s": 1 / dt,
                   "site_updates_per_s": n_sites / dt, "o2_sweep_equivalents_per_step": sweeps, "speedup_vs_first": base / dt,
                   "reference_seconds_per_step": ref_dt, "ratio_vs_reference": (ref_dt / dt) if ref_dt else None,
                   "steps_timed": steps}
            rows.append(row)
            ratio = f"{ref_dt / dt:7.1f}" if ref_dt else f"{'-':>7}"
            ref = f"{ref_dt:10.3f}" if ref_dt else f"{'-':>10}"
            print(f"{size:>12} {t:3d} {1 / dt:9.2f} {n_sites / dt:11.3e} {sweeps:9.1f} {base / dt:8.2f} {ref} {ratio}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"tumorca": tumorca.__version__, "numpy": np.__version__, "cases": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
