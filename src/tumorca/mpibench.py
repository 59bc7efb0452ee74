"""One case of ``tumorca bench --mpi``, run as ``mpiexec -n P python -m tumorca.mpibench --shape ...``: times
:func:`tumorca.parallel.bench_step` and prints its result as one JSON line on rank 0's stdout."""
from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tumorca.mpibench")
    ap.add_argument("--shape", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="wild-type")
    ap.add_argument("--ranks-shape", default=None)
    a = ap.parse_args(argv)
    from mpi4py import MPI

    from .bench import case_params, parse_shape
    from .parallel import bench_step

    shape = parse_shape(a.shape)
    row = bench_step(shape, steps=a.steps, ranks_shape=a.ranks_shape, params=case_params(shape, a.preset),
                     threads=a.threads, warmup=1)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
