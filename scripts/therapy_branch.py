"""A day-7 therapy branch of wild-type and knockout tumours: grow each tumour once, then continue it with and
without IFN-beta therapy from the very same state.

    python scripts/therapy_branch.py [--out DIR] [--shape 192x192] [--branch-day 7] [--days 14] [--seed 1]
                                     [--threads 1]

For each of wild-type and Ifnb1-/- it writes, in DIR:

* ``<arm>.h5``: the parent, from day 0 to the branch day (its final state is where the branches start);
* ``<arm>-continued.h5`` and ``<arm>-therapy.h5``: the two branches to the end (``tumorca.runner.branch_start``;
  the same as ``tumorca run --from <arm>.h5 --at-day 7 [--preset ifnb-therapy]``), therapy starting at the branch;

and ``therapy_branch.png``: tumour volume against time (the parent's curve, then both branches from the same point)
and the four final frames.  The continued branch equals the parent's own continuation bit for bit; what separates
the two branches of an arm is the therapy alone (they share the tumour, the vessels and the random numbers).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from tumorca import presets
from tumorca._constants import MINUTES_PER_DAY
from tumorca.analysis.plots import composite_rgb, require_matplotlib
from tumorca.io import RunPlan, RunReader
from tumorca.runner import branch_start, run

ARMS = {"wild-type": "wild-type", "knockout": "ifnb-knockout"}


def grow(out: Path, shape: tuple[int, ...], seed: int, branch_step: int, end: int, every: int,
         threads: int) -> dict[str, Path]:
    """The parents and their two branches; returns the files by label (``wild-type``, ``wild-type-therapy``...)."""
    files: dict[str, Path] = {}
    for arm, preset in ARMS.items():
        params = presets.get(preset)
        parent = RunPlan(shape=shape, params=params, seed=seed, steps=branch_step, every=every, fields=("o2",),
                         preset=preset)
        files[arm + "-parent"] = out / f"{arm}.h5"
        run(parent, files[arm + "-parent"], provenance={"command_line": " ".join(sys.argv)}, threads=threads,
            overwrite=True)
        therapy = presets.changes("ifnb-therapy")
        therapy["ifn_therapy_start"] = branch_step * params.dt_min  # from the branch on
        for label, p in (("continued", params), ("therapy", params.replace(**therapy))):
            plan = dataclasses.replace(parent, params=p, start_step=branch_step, steps=end)
            files[f"{arm}-{label}"] = out / f"{arm}-{label}.h5"
            run(plan, files[f"{arm}-{label}"], provenance={"command_line": " ".join(sys.argv)}, threads=threads,
                overwrite=True, **branch_start(files[arm + "-parent"], plan, relative_to=out))
    return files


def volume_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with RunReader(path) as r:
        ts = r.timeseries()
    return ts["time_min"] / MINUTES_PER_DAY, ts["tumor_volume_mm3"]


def figure(files: dict[str, Path], branch_day: float, path: Path) -> None:
    require_matplotlib()
    from matplotlib.figure import Figure  # no pyplot: no display needed

    fig = Figure(figsize=(13, 5.2))
    grid = fig.add_gridspec(2, 4, width_ratios=[2.2, 0.05, 1, 1])
    ax = fig.add_subplot(grid[:, 0])
    colours = {"wild-type": "#0072B2", "knockout": "#D55E00"}
    for arm, c in colours.items():
        t, v = volume_curve(files[arm + "-parent"])
        ax.plot(t, v, color=c, lw=2.5, label=f"{arm}, shared parent")
        t, v = volume_curve(files[arm + "-continued"])
        ax.plot(t, v, color=c, lw=1.5, label=f"{arm}, continued")
        t, v = volume_curve(files[arm + "-therapy"])
        ax.plot(t, v, color=c, lw=1.5, ls="--", label=f"{arm}, IFN-β therapy from day {branch_day:g}")
    ax.axvline(branch_day, color="0.6", lw=0.8)
    ax.set_xlabel("day")
    ax.set_ylabel("tumour volume (mm³; 2-D: a slab one site deep)")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("one tumour per arm, branched at day %g" % branch_day, fontsize=10)
    for k, key in enumerate(["wild-type-continued", "wild-type-therapy", "knockout-continued", "knockout-therapy"]):
        with RunReader(files[key]) as r:
            frame = {name: r.frame(name, -1) for name in ("tissue", "vessel", "perfused")}
            dx, day = r.plan.params.dx_um, float(r.times[-1]) / MINUTES_PER_DAY
        sub = fig.add_subplot(grid[k // 2, 2 + k % 2])
        ny, nx = frame["tissue"].shape
        sub.imshow(composite_rgb(frame["tissue"], frame["vessel"], frame["perfused"]), origin="lower",
                   interpolation="nearest", extent=(0, nx * dx / 1000, 0, ny * dx / 1000))
        sub.set_title(f"{key.replace('-', ' ')}, day {day:g}", fontsize=9)
        sub.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("therapy_branch"))
    ap.add_argument("--shape", default="192x192")
    ap.add_argument("--branch-day", type=float, default=7.0)
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    shape = tuple(int(v) for v in a.shape.lower().split("x"))
    dt = presets.get("wild-type").dt_min
    branch_step, end = round(a.branch_day * MINUTES_PER_DAY / dt), round(a.days * MINUTES_PER_DAY / dt)
    a.out.mkdir(parents=True, exist_ok=True)
    files = grow(a.out, shape, a.seed, branch_step, end, max(1, round(MINUTES_PER_DAY / dt)), a.threads)
    for arm in ARMS:
        v = {label: volume_curve(files[f"{arm}-{label}"])[1][-1] for label in ("continued", "therapy")}
        print(f"{arm}: tumour volume at day {a.days:g}: continued {v['continued']:.4f} mm3, therapy "
              f"{v['therapy']:.4f} mm3 (ratio {v['continued'] / v['therapy']:.3f})")
    figure(files, a.branch_day, a.out / "therapy_branch.png")
    print(f"wrote {a.out / 'therapy_branch.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
