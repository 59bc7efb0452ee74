"""Cost of writing a run file: the same run with frames every K steps, with only the first and last frame, and
the engine alone (stepping and summary() each step, no file).  Prints wall times, file sizes and overheads.

    python scripts/bench_io.py --shape 1024x1024 --steps 50 --every 10 --threads 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import tumorca
import tumorca.runner as runner_mod
from tumorca import Params
from tumorca.io import RunPlan, RunWriter
from tumorca.runner import run

#: Seconds spent in each instrumented function (benchmark-only wrappers; the library is not changed).
TIMERS: dict[str, float] = {}


def _timed(owner, name: str, label: str) -> None:
    fn = getattr(owner, name)

    def wrapper(*args, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            TIMERS[label] = TIMERS.get(label, 0.0) + time.perf_counter() - t0

    setattr(owner, name, wrapper)


_timed(runner_mod, "snapshot_layers", "main: copy layers")
_timed(RunWriter, "add_frame", "main: queue frame")
_timed(RunWriter, "_do_frame", "writer thread: compress+write+flush")
_timed(RunWriter, "_do_close", "writer thread: final state")


def engine_only(plan: RunPlan, threads: int) -> float:
    t0 = time.perf_counter()
    sim = tumorca.Simulation(plan.shape, plan.params, seed=plan.seed, threads=threads)
    sim.summary()
    for _ in range(plan.steps):
        sim.step(1)
        sim.summary()
    return time.perf_counter() - t0


def with_file(plan: RunPlan, threads: int, d: Path, name: str) -> tuple[float, int]:
    path = d / name
    TIMERS.clear()
    t0 = time.perf_counter()
    run(plan, path, provenance={"command_line": "bench_io"}, threads=threads, overwrite=True)
    wall = time.perf_counter() - t0
    print(f"    {name}: " + ", ".join(f"{k} {v:.2f} s" for k, v in TIMERS.items()))
    return wall, path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="1024x1024")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--compression", default="gzip")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split("x"))
    frames = RunPlan(shape=shape, params=Params(), seed=1, steps=a.steps, every=a.every,
                     compression=a.compression)
    ends = RunPlan(shape=shape, params=Params(), seed=1, steps=a.steps, every=a.steps, compression=a.compression)
    threads = a.threads or len(os.sched_getaffinity(0))
    print(f"tumorca {tumorca.__version__}: {a.shape}, {a.steps} steps, {threads} threads, "
          f"{frames.n_frames} frames of {frames.frame_bytes() / 2**20:.1f} MiB raw ({len(frames.layers)} layers), "
          f"{a.compression}")
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        d = Path(tmp)
        rows = []
        for r in range(a.repeat):
            e = engine_only(frames, threads)
            t2, s2 = with_file(ends, threads, d, "ends.h5")
            tk, sk = with_file(frames, threads, d, "frames.h5")
            rows.append((e, t2, s2, tk, sk))
            print(f"  run {r + 1}: engine alone {e:.2f} s | file, 2 frames {t2:.2f} s ({s2 / 2**20:.1f} MiB) | "
                  f"file, {frames.n_frames} frames {tk:.2f} s ({sk / 2**20:.1f} MiB)")
        e, t2, s2, tk, sk = (min(col) for col in zip(*rows))
        print(f"best of {a.repeat}: frames every {a.every} steps cost {100 * (tk - t2) / t2:+.1f} % over 2 frames, "
              f"{100 * (tk - e) / e:+.1f} % over the engine alone; file {sk / 2**20:.1f} MiB "
              f"({100 * sk / (frames.n_frames * frames.frame_bytes()):.1f} % of raw frames)")


if __name__ == "__main__":
    main()
