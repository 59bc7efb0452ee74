"""Compare scenarios over replicate runs: simulate each preset with several seeds, then tabulate final and
time-integrated measures (mean ± sd per preset), write them as CSV, and plot the time courses and final frames.

    python scripts/compare_presets.py --outdir cmp [--presets wild-type ifnb-knockout] [--replicates 3]
                                      [--shape 128x128] [--days 7] [--every 48] [--threads 1]

Writes OUTDIR/<preset>-s<seed>.h5 (reused if present: delete them or pass --overwrite to rerun), OUTDIR/compare.csv,
OUTDIR/runs.csv (one row per run), OUTDIR/curves.png and OUTDIR/<preset>-final.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tumorca import presets
from tumorca.analysis import compare, format_compare, save_table, summarize_runs
from tumorca.io import RunPlan
from tumorca.runner import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outdir", type=Path, required=True)
    ap.add_argument("--presets", nargs="+", default=["wild-type", "ifnb-knockout"])
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--shape", default="128x128", help="NYxNX or NZxNYxNX")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--every", type=int, default=48, help="a frame every this many steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--overwrite", action="store_true", help="rerun runs whose files exist")
    args = ap.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.lower().split("x"))
    args.outdir.mkdir(parents=True, exist_ok=True)

    paths = []
    for name in args.presets:
        params = presets.get(name)
        steps = max(1, round(args.days * 1440 / params.dt_min))
        for seed in range(1, args.replicates + 1):
            path = args.outdir / f"{name}-s{seed}.h5"
            paths.append(path)
            if path.exists() and not args.overwrite:
                continue
            plan = RunPlan(shape=shape, params=params, seed=seed, steps=steps, every=min(args.every, steps),
                           preset=name)
            run(plan, path, provenance={"command_line": " ".join(sys.argv)}, threads=args.threads,
                overwrite=args.overwrite)
            print(f"ran {path}", file=sys.stderr)

    table = compare(paths, by="preset")
    print(format_compare(table))
    save_table(table.reset_index().to_dict("records") if hasattr(table, "reset_index") else table,
               args.outdir / "compare.csv")
    per_run = summarize_runs(paths, as_frame=False)
    save_table(per_run, args.outdir / "runs.csv")

    try:
        from tumorca.analysis import plots
        plots.plot_curves(paths, by="preset", path=args.outdir / "curves.png", band="sd")
        for name in args.presets:
            plots.plot_frame(args.outdir / f"{name}-s1.h5", -1, "composite", path=args.outdir / f"{name}-final.png")
    except ImportError as exc:
        print(f"no figures: {exc}", file=sys.stderr)
    print(f"wrote {args.outdir / 'compare.csv'}, {args.outdir / 'runs.csv'} and the figures in {args.outdir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
