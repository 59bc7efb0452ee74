"""Start a simulation from a PNG drawing of a vessel network and a tumour seed (docs/initial-conditions.md).

    python scripts/from_drawing.py [--out DIR] [--days 6] [--seed 1] [--threads 1]

Draws ``DIR/drawing.png`` (numpy + imageio, in the documented colours, 10 um pixels), reads it with
:func:`tumorca.io.initial.load_initial` (resampled to the 20 um lattice), runs a few simulated days with the Python
API and saves ``DIR/from_drawing.png``: the drawing, the lattice at day 0 and at the end.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tumorca import Cell, Params, Simulation
from tumorca.analysis.plots import composite_rgb, require_matplotlib
from tumorca.io.initial import load_initial

#: Colours of the drawing (the map of tumorca.io.initial.IMAGE_CLASSES).
WHITE, RED, BLUE, MAGENTA = (255, 255, 255), (255, 0, 0), (0, 0, 255), (255, 0, 255)
PIXEL_UM = 10.0


def draw(ny: int = 240, nx: int = 400) -> np.ndarray:
    """An RGB drawing: three vessels enter at the left edge and leave at the right, two of them branch and one
    branch crosses to the next vessel (a loop), with a tumour seed between them and a smaller second focus
    on a vessel.  Vessels are 2 pixels wide (one 20 um site after resampling)."""
    img = np.empty((ny, nx, 3), np.uint8)
    img[...] = WHITE
    yy, xx = np.mgrid[:ny, :nx]
    tumour = ((yy - 120) ** 2 + (xx - 200) ** 2 <= 22 ** 2) | ((yy - 62) ** 2 + (xx - 300) ** 2 <= 9 ** 2)
    img[tumour] = RED
    vessel = np.zeros((ny, nx), bool)

    def line(y0: float, x0: float, y1: float, x1: float) -> None:
        n = int(2 * max(abs(y1 - y0), abs(x1 - x0))) + 1
        for y, x in zip(np.linspace(y0, y1, n), np.linspace(x0, x1, n)):
            vessel[int(round(y)):int(round(y)) + 2, int(round(x)):int(round(x)) + 2] = True

    line(60, 0, 60, 398)          # upper vessel, through the small focus
    line(60, 120, 100, 170)       # its branch towards the seed ...
    line(100, 170, 100, 398)      # ... along the seed's upper edge to the right edge
    line(180, 0, 170, 150)        # lower vessel
    line(170, 150, 150, 250)      # rising past the seed
    line(150, 250, 190, 398)
    line(170, 150, 215, 260)      # its lower branch
    line(215, 260, 215, 398)
    line(215, 300, 190, 340)      # a cross-link between the lower branches
    img[vessel & ~tumour] = BLUE
    img[vessel & tumour] = MAGENTA
    return img


def panel(ax, sim_tissue: np.ndarray, sim_vessel: np.ndarray, perfused: np.ndarray | None, title: str,
          dx: float) -> None:
    """The tissue with the vessel layer over it in the colours of ``tumorca plot``, but row 0 at the top as in
    the drawing (``tumorca plot`` draws y upward)."""
    # day 0: which vessels carry flow is decided by the first step (drawn as perfused)
    rgb = composite_rgb(sim_tissue, sim_vessel, perfused)
    ny, nx = sim_tissue.shape
    ax.imshow(rgb, interpolation="nearest", extent=(0, nx * dx / 1000, ny * dx / 1000, 0))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (mm)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("from_drawing"), help="output folder")
    ap.add_argument("--days", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import imageio.v3 as iio

    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "drawing.png"
    img = draw()
    iio.imwrite(png, img)
    params = Params()
    data = load_initial(png, pixel_size_um=PIXEL_UM, dx_um=params.dx_um)
    print(f"read {data.source} (sha256 {data.sha256[:12]}...): {data.resampled_from} pixels of {PIXEL_UM:g} um "
          f"-> lattice {data.shape} of {params.dx_um:g} um")
    sim = Simulation.from_arrays(**data.arrays(), params=params, seed=args.seed, threads=args.threads)
    start = (sim.tissue.copy(), sim.vessel.copy())
    steps = round(args.days * 24 * 60 / params.dt_min)
    t0 = time.perf_counter()
    sim.step(steps)
    s = sim.summary()
    print(f"{steps} steps ({args.days:g} days) in {time.perf_counter() - t0:.1f} s: "
          f"{s['tumor_live']} live tumour sites ({s['tumor_p']} cycling), {s['necrotic']} necrotic, "
          f"{s['vessel_sites']} vessel sites ({s['perfused_fraction']:.0%} perfused), {s['neutrophils']} neutrophils")

    require_matplotlib()  # one line with the install hint if it is missing
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(img, interpolation="nearest", extent=(0, img.shape[1] * PIXEL_UM / 1000,
                                                         img.shape[0] * PIXEL_UM / 1000, 0))
    axes[0].set_title(f"drawing ({img.shape[0]}x{img.shape[1]} px of {PIXEL_UM:g} um)", fontsize=9)
    axes[0].set_xlabel("x (mm)")
    axes[0].set_ylabel("y (mm)")
    panel(axes[1], *start, None, f"lattice at day 0 ({data.shape[0]}x{data.shape[1]} sites)", params.dx_um)
    panel(axes[2], sim.tissue, sim.vessel, sim.perfused, f"day {args.days:g} (dark blue: perfused, light: not)",
          params.dx_um)
    out = args.out / "from_drawing.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    n0 = int(np.isin(start[0], (Cell.TUMOR_P, Cell.TUMOR_Q)).sum())
    return 0 if s["tumor_live"] > 0 and n0 > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
