"""Is the tumour shorter along the host capillaries (x) than across them?  One run, then the tumour's extent along
each axis, its principal-axis aspect, and the perfused share of the vessel sites beyond the tumour along x and
along y (a band 21 sites wide through the tumour's centre, tumour sites left out).

    python scripts/bed_anisotropy.py 96x96x96 wild-type 9 0 init_bed_crosslink_spacing=40

Arguments: lattice, preset, days, seed, then any parameter overrides KEY=VALUE.  This is how the capillary bed's
link spacing was chosen (docs/validation.md, calibration of issue 14).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from tumorca import Simulation, presets
from tumorca.analysis.measures import tumour_aspect, tumour_mask


def main(argv: list[str]) -> None:
    shape = tuple(int(v) for v in argv[0].split("x"))
    preset, days, seed = argv[1], float(argv[2]), int(argv[3])
    base = presets.get(preset)
    sets = {k: type(base[k])(v) for k, v in (kv.split("=", 1) for kv in argv[4:])}
    params = presets.get(preset, **sets)
    sim = Simulation(shape, params, seed=seed, threads=1)
    t0 = time.perf_counter()
    sim.step(int(round(days * 1440 / params.dt_min)))
    state = sim.get_state()  # a copy of every array: take it once
    arrays = state["arrays"]
    tissue = arrays["tissue"].reshape(state["shape"] if len(shape) == 3 else (1, *shape))
    vessel = arrays["vessel"].reshape(tissue.shape) != 0
    perfused = arrays["perfused"].reshape(tissue.shape) != 0
    tum = tumour_mask(tissue)
    idx = np.nonzero(tum)
    extent = [int(a.max() - a.min() + 1) for a in idx]
    c = [int(round(a.mean())) for a in idx]
    print(f"{'x'.join(map(str, shape))} {preset} day {days:g} seed {seed} {sets}: tumour sites {int(tum.sum())}, "
          f"extent z, y, x {extent}, aspect {tumour_aspect(tissue):.3f} ({time.perf_counter() - t0:.0f} s)")
    r = 10
    zs = slice(max(c[0] - r, 0), c[0] + r + 1)
    for name, band in (("x", (zs, slice(max(c[1] - r, 0), c[1] + r + 1), slice(None))),
                       ("y", (zs, slice(None), slice(max(c[2] - r, 0), c[2] + r + 1)))):
        v = vessel[band] & ~tum[band]
        share = float((v & perfused[band]).sum() / max(int(v.sum()), 1))
        print(f"  beyond the tumour along {name}: {int(v.sum())} vessel sites, perfused share {share:.3f}")


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1:])
