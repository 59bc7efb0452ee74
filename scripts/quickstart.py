"""Run a real tumorca simulation on the default parameters and print how the tumour develops.

    python scripts/quickstart.py [--shape 256x256] [--days 10] [--seed 1]
"""
import argparse
import time

import tumorca
from tumorca import Cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="256x256", help="lattice shape, e.g. 256x256 or 64x64x64")
    ap.add_argument("--days", type=float, default=10.0, help="simulated days")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    sim = tumorca.Simulation(shape, seed=args.seed)
    steps_per_day = round(24 * 60 / sim.params.dt_min)
    print(f"tumorca {tumorca.__version__}: lattice {args.shape}, seed {args.seed}, {sim.threads} threads, "
          f"{args.days:g} days at {sim.params.dt_min:g} min/step")
    print(f"{'day':>5} {'cycling':>8} {'quiescent':>9} {'necrotic':>8} {'min pO2':>8} {'O2 sweeps':>9}")
    t0 = time.perf_counter()
    for day in range(1, int(round(args.days)) + 1):
        sim.step(steps_per_day)
        c = sim.counts()
        print(f"{day:5d} {c[Cell.TUMOR_P]:8d} {c[Cell.TUMOR_Q]:9d} {c[Cell.NECROTIC]:8d} "
              f"{float(sim.field('o2').min()):8.2f} {sim.o2_solver_stats['sweeps']:9d}")
    dt = time.perf_counter() - t0
    print(f"{sim.step_index} steps in {dt:.2f} s ({sim.step_index / dt:.1f} steps/s)")


if __name__ == "__main__":
    main()
