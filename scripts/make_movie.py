"""Make a movie of a run (MP4, or GIF without ffmpeg); simulate a small wild-type run first if none is given.

    python scripts/make_movie.py [RUN.h5] -o movie.mp4 [--layer composite|tissue|o2|...] [--fps 10]
                                 [--shape 96x96 --days 5 --threads 1]   (only without RUN.h5)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tumorca import presets
from tumorca.analysis import plots
from tumorca.io import RunPlan
from tumorca.runner import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path, help="run file (default: simulate one beside the movie)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--layer", default="composite")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--shape", default="96x96")
    ap.add_argument("--days", type=float, default=5.0)
    ap.add_argument("--every", type=int, default=12, help="a frame every this many steps (simulated run)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    path = args.run
    if path is None:
        path = args.output.with_name(args.output.stem + "-run.h5")
        params = presets.get("wild-type")
        steps = max(1, round(args.days * 1440 / params.dt_min))
        plan = RunPlan(shape=tuple(int(v) for v in args.shape.split("x")), params=params, seed=1, steps=steps,
                       every=min(args.every, steps), preset="wild-type")
        run(plan, path, provenance={"command_line": " ".join(sys.argv)}, threads=args.threads, overwrite=True)
        print(f"simulated {path}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        print(f"\rframe {done}/{total}", end="", file=sys.stderr, flush=True)

    out = plots.write_movie(path, args.output, fps=args.fps, layer=args.layer, progress=progress)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
