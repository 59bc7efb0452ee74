"""Paired (branched) against independent designs for a treatment effect: how much a shared parent buys.

Each replicate grows one untreated parent to the branch day and continues it twice from the very same state --
untreated and treated (the paired design: the arms share the tumour, the vessels and, since a branch keeps its
parent's seed, the random numbers).  The independent design runs the treatment from the same branch day in tumours
grown from other seeds.  Both designs answer "does the treatment shrink the burden at the end?"; the paired one with
the Wilcoxon signed-rank test of the per-replicate differences, the independent one with the Mann-Whitney U test.

    python scripts/paired_design.py [--shape 256x256] [--days 14] [--branch-day 7] [--n 10] [--workers 2]
                                    [--control wild-type] [--treatment ifnb-therapy] [--json out.json]

Prints, for the first 5 and the first n replicates, both p-values, the mean ratio and the relative efficiency
var(independent difference) / var(paired difference): how many times more replicates per arm the independent design
needs for the same standard error.  Uses the Python API only (no files).  Defaults: the validation lattice
(256^2, 14 days; docs/validation.md), IFN-beta therapy from day 7.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tumorca import Params, Simulation, presets
from tumorca._constants import MINUTES_PER_DAY
from tumorca.sweep import derive_seeds
from tumorca.validation.stats import design_gain

#: The root seed of the replicates (parents and independent treated runs draw from disjoint spawn keys).
ROOT_SEED = 20261207


def arm_params(name: str, branch_min: float) -> Params:
    """The preset's parameters; a therapy starts at the branch time (so both designs treat from the same day)."""
    changes = presets.changes(name)
    if changes.get("ifn_therapy_level", 0) > 0:
        changes["ifn_therapy_start"] = branch_min
    return Params(**changes)


def burden(sim: Simulation) -> float:
    return float(sim.summary()["tumor_volume_mm3"])


def paired_replicate(args: tuple) -> dict[str, Any]:
    """One parent to the branch step, then the control and the treatment continued from its state."""
    shape, seed, branch_step, steps, control, treatment, branch_min = args
    parent = Simulation(shape, arm_params(control, branch_min), seed=seed, threads=1)
    parent.step(branch_step)
    state = parent.get_state()
    out = {"seed": seed, "at_branch": burden(parent)}
    for role, name in (("control", control), ("treated", treatment)):
        s = dict(state, params=arm_params(name, branch_min).to_dict())
        sim = Simulation.from_state(s, threads=1)
        sim.step(steps - branch_step)
        out[role] = burden(sim)
    return out


def independent_replicate(args: tuple) -> dict[str, Any]:
    """A treated run grown from its own seed (treatment from the branch day on)."""
    shape, seed, steps, treatment, branch_min = args
    sim = Simulation(shape, arm_params(treatment, branch_min), seed=seed, threads=1)
    sim.step(steps)
    return {"seed": seed, "treated": burden(sim)}


def analyse(paired: list[dict], independent: list[dict], n: int) -> dict[str, Any]:
    g = design_gain([r["control"] for r in paired], [r["treated"] for r in paired],
                    [r["treated"] for r in independent], n)
    return {"n": n, "ratio_paired": g.paired.ratio, "ratio_independent": g.independent.ratio,
            "p_wilcoxon_paired": g.paired.p_wilcoxon, "p_mannwhitney_independent": g.independent.p_mannwhitney,
            "p_mannwhitney_paired_arms_unpaired": g.paired.p_mannwhitney,
            "relative_efficiency": g.relative_efficiency}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="256x256")
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--branch-day", type=float, default=7.0)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--control", default="wild-type")
    ap.add_argument("--treatment", default="ifnb-therapy")
    ap.add_argument("--json", help="write the replicates and the table here")
    a = ap.parse_args(argv)
    shape = tuple(int(v) for v in a.shape.lower().split("x"))
    dt = Params().dt_min
    steps, branch_step = round(a.days * MINUTES_PER_DAY / dt), round(a.branch_day * MINUTES_PER_DAY / dt)
    branch_min = branch_step * dt
    seeds = derive_seeds(ROOT_SEED, 2 * a.n)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as ex:
        paired = list(ex.map(paired_replicate, [(shape, s, branch_step, steps, a.control, a.treatment, branch_min)
                                                for s in seeds[:a.n]]))
        independent = list(ex.map(independent_replicate, [(shape, s, steps, a.treatment, branch_min)
                                                          for s in seeds[a.n:]]))
    table = [analyse(paired, independent, n) for n in sorted({min(5, a.n), a.n})]
    print(f"{a.control} vs {a.treatment} from day {a.branch_day:g} to day {a.days:g}, {a.shape}, "
          f"{time.perf_counter() - t0:.0f} s")
    print("| n | burden ratio, paired | burden ratio, independent | p paired (Wilcoxon) | "
          "p independent (Mann-Whitney) | relative efficiency |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['n']} | {r['ratio_paired']:.3f} | {r['ratio_independent']:.3f} | {r['p_wilcoxon_paired']:.2g} | "
              f"{r['p_mannwhitney_independent']:.2g} | {r['relative_efficiency']:.1f} |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "paired": paired, "independent": independent, "table": table}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
