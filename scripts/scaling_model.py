"""Projected time per step and parallel efficiency of an MPI run on P ranks (docs/scaling.md).

    T(P) = N/P * c_site                          compute (c_site: seconds per site-update of one rank)
         + redundant(P)                          halo sites the engine also updates (O2 batches, other passes)
                                                 and the O2 batch redone when the solve stops inside it
         + beta * F(P) / B                       halo bytes of the busiest rank over the link bandwidth
         + X * (k(P) * L + o)                    halo messages: X exchanges per step, k(P) messages each,
                                                 plus a software overhead o per exchange (--overhead)
         + R * 2 * log2(P) * L                   global reductions (Allreduce) per step

for the communication-avoiding engine of docs/parallel.md ("Global pieces", "Cost and memory"): with halo width H
(8 at the defaults) and b = H/2, the O2 solve exchanges H layers and runs b red-black SOR sweeps per exchange, with
one Allreduce(MAX) per batch of b sweeps; perfusion pruning runs H rounds per exchange.  So for S sweeps per step

    X = ceil(S/b) + X0        X0 = 12: perfusion 2, endothelium 1, tumour 1, neutrophils ceil(substeps/floor(H/3)) = 8
    R = ceil(S/b) + R0        R0 = 5: perfusion about 3, the polarisation gather 1, the event counts 1
    beta = beta_O2 + beta_perfusion + beta_other   (bytes per face site per step, one direction)
    beta_O2 = 6 H + 4 H (ceil(S/b) - 1)            (tissue + perfused + o2 once, then o2: 8 B per sweep as before)
    beta_perfusion = 1 H per exchange (2: the tissue, then the marks)

beta_other (endothelium, tumour, neutrophils) is the measured beta minus the O2 and perfusion bytes of the engine
that was measured.  Redundant compute: half-sweep j of a batch also updates H - 1 - j halo layers (on average
(H - 1)/2), the other passes compute the whole local array (block + H halo layers), and a batch that overshoots
the serial stopping sweep is redone from a copy (on average b - 1 extra sweeps per step).  F(P) counts the faces
of the busiest block (one per split axis of 2 blocks, two where there are more), each slab spanning the H halo
layers of the other split axes.  T(1) is the serial engine (no halo, no batches).

The inputs default to figures measured on the development machine with the batched engine (docs/scaling.md says
how; docs/examples/bench-mpi-256.json); give your own, or read c_site, S, the O2 share of compute, H and beta from
``tumorca bench --mpi 1,2 --json FILE`` with ``--bench-json FILE`` (``--bench-engine per-colour`` for a file
written by the earlier engine that exchanged 1 layer after each colour of each sweep).  The table is a projection
from a model, not a measurement.

    python scripts/scaling_model.py
    python scripts/scaling_model.py --bandwidth 25e9 --latency 1e-6 --cores-per-rank 32
    python scripts/scaling_model.py --bench-json bench-mpi.json --markdown
    python scripts/scaling_model.py --bench-json docs/examples/bench-mpi-256.json
    python scripts/scaling_model.py --bench-json old-bench-mpi.json --bench-engine per-colour
"""
from __future__ import annotations

import argparse
import json
import math

#: Measured on the development machine (docs/scaling.md, docs/examples/bench-mpi-256.json: tumorca bench --mpi
#: 1,2 --mpi-shape 256x256x256 --mpi-steps 2 --threads 1, 2026-11-30, the batched (communication-avoiding)
#: engine at the current defaults, machine otherwise idle): seconds per site-update on one core (1 rank:
#: 11.495 s / 256^3), O2 sweeps per step, the O2 share of the 1-rank step (10.585 s of 11.495 s), halo bytes per
#: face site per step (2 ranks: 220.2 MB / (2 * 256^2)), the allocated halo width, and perfusion exchanges per
#: step.
MEASURED = {"c_site": 6.8513e-7, "sweeps": 131.0, "o2_fraction": 0.92086, "beta": 1680.0, "halo": 8,
            "perfusion_exchanges": 2}
#: The engine that wrote MEASURED.
MEASURED_ENGINE = "batched"
ENGINES = ("batched", "per-colour")


def balanced_dims(p: int) -> tuple[int, int, int]:
    """Three factors of ``p``, as equal as possible, largest first (what MPI_Dims_create does)."""
    best = (p, 1, 1)
    for a in range(1, p + 1):
        if p % a:
            continue
        for b in range(1, p // a + 1):
            if (p // a) % b:
                continue
            c = p // a // b
            dims = tuple(sorted((a, b, c), reverse=True))
            if max(dims) - min(dims) < max(best) - min(best):
                best = dims
    return best


def o2_batches(sweeps: float, halo: int) -> int:
    """Exchanges (and Allreduces) of the batched O2 solve: one per H/2 sweeps."""
    return math.ceil(sweeps / max(1, halo // 2))


def o2_bytes(sweeps: float, halo: int, engine: str = "batched") -> float:
    """O2 halo bytes per face site per step.  batched (docs/parallel.md, "Cost and memory"): tissue, perfused and
    o2 (6 B) over H layers once, then o2 (4 B) over H layers per further batch.  per-colour (the earlier
    engine, before commit d5eb947): the same 6 B over 1 layer, then 4 B over 1 layer after each colour but the
    last."""
    if engine == "per-colour":
        return 6.0 + 4.0 * (2.0 * sweeps - 1.0)
    return 6.0 * halo + 4.0 * halo * (o2_batches(sweeps, halo) - 1)


def perfusion_bytes(exchanges: float, halo: int, engine: str = "batched") -> float:
    """Perfusion halo bytes per face site per step: 1 B (tissue, then the marks / pruning flags) per exchange,
    over H layers (batched) or 1 layer (per-colour)."""
    return exchanges * (halo if engine == "batched" else 1)


def beta_other_from(beta: float, sweeps: float, halo: int, perfusion_exchanges: float, engine: str) -> float:
    """The halo bytes of the phases other than O2 and perfusion (endothelium, tumour, neutrophils: the same in
    both engines), from a measured beta of ``engine``."""
    return beta - o2_bytes(sweeps, halo, engine) - perfusion_bytes(perfusion_exchanges, halo, engine)


def step_time(n_sites: float, p: int, c_site: float, sweeps: float, beta_other: float, bandwidth: float,
              latency: float, halo: int = 8, o2_fraction: float = MEASURED["o2_fraction"], x0: float = 12.0,
              r0: float = 5.0, overhead: float = 0.0, perfusion_exchanges: float = 2.0, engine: str = "batched",
              beta: float | None = None) -> dict[str, float]:
    """Seconds per step on ``p`` ranks, split into compute, redundant compute, halo bytes, halo messages and
    reductions; with the exchange and reduction counts per step.  ``engine`` "per-colour" projects the earlier
    engine (1 layer after each SOR colour, one Allreduce per sweep, one per pruning round: no O2 halo compute);
    ``beta`` replaces the O2 + perfusion + other sum (all at width H)."""
    n = n_sites ** (1.0 / 3.0)
    dims = balanced_dims(p)
    block = [n / d for d in dims]
    # halo sides of the busiest block per axis: none unsplit, one with 2 blocks, two (an inner block) with more
    sides = [0 if d == 1 else 1 if d == 2 else 2 for d in dims]
    compute = n_sites / p * c_site
    if p == 1:
        return {"dims": "x".join(map(str, dims)), "compute": compute, "redundant": 0.0, "halo_bytes": 0.0,
                "messages": 0.0, "reductions": 0.0, "exchanges": 0, "allreduces": 0, "total": compute}

    def volume(margin: float) -> float:
        return math.prod(b + s * margin for b, s in zip(block, sides))

    def faces(width: int) -> float:
        # face sites of the busiest block; a slab spans the halo of the other split axes (docs/parallel.md)
        return sum(sides[a] * math.prod(block[c] + sides[c] * width for c in range(3) if c != a)
                   for a in range(3) if sides[a])

    own = volume(0)
    batched = engine == "batched"
    # the passes besides O2 compute the whole local array (block + H halo layers)
    redundant = (1.0 - o2_fraction) * (volume(halo) - own)
    if batched:
        # half-sweep j of a batch updates H - 1 - j halo layers; a batch that overshoots the serial stopping
        # sweep is redone from a copy (b - 1 extra sweeps per step on average)
        o2_sites = sum(volume(m) for m in range(halo)) / halo
        redo = (max(1, halo // 2) - 1) / sweeps
        redundant += o2_fraction * (o2_sites * (1.0 + redo) - own)
    redundant *= c_site
    w = halo if batched else 1
    if beta is None:
        halo_bytes = (o2_bytes(sweeps, halo, engine) * faces(w) + perfusion_bytes(perfusion_exchanges, halo, engine)
                      * faces(w) + beta_other * faces(halo)) / bandwidth
    else:
        halo_bytes = beta * faces(halo) / bandwidth
    if batched:
        o2_exchanges = o2_reductions = o2_batches(sweeps, halo)
    else:
        o2_exchanges, o2_reductions = 2 * sweeps, sweeps
    exchanges = o2_exchanges + x0
    allreduces = o2_reductions + r0
    # two Sendrecv calls per split axis (up, then down), each a message latency, also on a block at the edge
    messages = exchanges * (2 * sum(1 for d in dims if d > 1) * latency + overhead)
    reductions = allreduces * 2 * math.log2(p) * latency
    total = compute + redundant + halo_bytes + messages + reductions
    return {"dims": "x".join(map(str, dims)), "compute": compute, "redundant": redundant, "halo_bytes": halo_bytes,
            "messages": messages, "reductions": reductions, "exchanges": exchanges, "allreduces": allreduces,
            "total": total}


def table(sizes: list[float], ranks: list[int], **kw) -> list[dict]:
    rows = []
    for n in sizes:
        t1 = step_time(n, 1, **kw)["total"]
        for p in ranks:
            if n / p < 8 ** 3:  # blocks smaller than 8^3 sites: not a sensible split
                continue
            t = step_time(n, p, **kw)
            rows.append({"sites": n, "ranks": p, **t, "efficiency": t1 / (p * t["total"])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--c-site", type=float, default=MEASURED["c_site"],
                    help="seconds per site-update on one core (default: measured here)")
    ap.add_argument("--cores-per-rank", type=int, default=1,
                    help="OpenMP threads per rank (one rank per socket/NUMA domain)")
    ap.add_argument("--thread-efficiency", type=float, default=0.8,
                    help="parallel efficiency of those threads (memory-bound kernels: 0.6-0.9)")
    ap.add_argument("--sweeps", type=float, default=MEASURED["sweeps"], help="O2 sweeps per step")
    ap.add_argument("--o2-fraction", type=float, default=MEASURED["o2_fraction"],
                    help="share of the serial step spent in the O2 solve (default: measured here)")
    ap.add_argument("--halo", type=int, default=MEASURED["halo"],
                    help="halo width H (tumorca.parallel.halo_widths: 8 at the defaults)")
    ap.add_argument("--beta-other", type=float, default=None,
                    help="halo bytes per face site per step besides O2 and perfusion (default: from the "
                         "measured beta)")
    ap.add_argument("--beta", type=float, default=None,
                    help="total halo bytes per face site per step (overrides the O2 + perfusion + other sum)")
    ap.add_argument("--bandwidth", type=float, default=12.5e9, help="link bandwidth, bytes/s (HDR100: 12.5e9)")
    ap.add_argument("--latency", type=float, default=1.5e-6, help="message latency, s")
    ap.add_argument("--overhead", type=float, default=0.0,
                    help="software cost per halo exchange beyond the network (packing, calls, waiting), s")
    ap.add_argument("--x0", type=float, default=12.0, help="halo exchanges per step besides the O2 batches")
    ap.add_argument("--r0", type=float, default=5.0, help="Allreduces per step besides the O2 stopping tests")
    ap.add_argument("--perfusion-exchanges", type=float, default=MEASURED["perfusion_exchanges"],
                    help="perfusion halo exchanges per step (tissue, marks, pruning batches)")
    ap.add_argument("--sizes", default="1e8,1e9,1e10", help="comma list of lattice sites")
    ap.add_argument("--ranks", default="1,8,64,512,4096", help="comma list of rank counts")
    ap.add_argument("--bench-json", help="take c_site, sweeps, the O2 share, H and beta from "
                                         "'tumorca bench --mpi ... --json'")
    ap.add_argument("--bench-engine", choices=ENGINES, default="batched",
                    help="the engine that wrote --bench-json: batched (the current one, default; "
                         "docs/examples/bench-mpi-256.json) or per-colour (1 layer after each SOR colour, before "
                         "commit d5eb947: files from older versions)")
    ap.add_argument("--engine", choices=ENGINES, default="batched",
                    help="the engine to project: batched (the current one, default) or per-colour (for comparison)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    a = ap.parse_args()
    c_site, sweeps, o2_fraction, halo = a.c_site, a.sweeps, a.o2_fraction, a.halo
    measured_beta, engine = MEASURED["beta"], MEASURED_ENGINE
    if a.bench_json:
        doc = json.load(open(a.bench_json))
        rows = doc["rows"]
        one = rows[0]
        c_site = one["seconds_per_site"] * doc["threads"]  # per core
        sweeps = one["o2_sweeps"]
        o2_fraction = one["phase_seconds"]["o2"] / one["step_seconds"]
        halo = int(one.get("halo_width", halo))
        engine = a.bench_engine
        split = [r for r in rows if r["ranks"] > 1 and r["halo_bytes"] > 0]
        if split:
            r = split[0]
            shape = doc["shape"] if len(doc["shape"]) == 3 else [1] + doc["shape"]
            dims = [int(d) for d in r["grid"].split("x")]
            n = math.prod(shape)
            face_sites = sum(2 * (d - 1) * n / s for d, s in zip(dims, shape))
            measured_beta = r["halo_bytes"] / face_sites
            sweeps_split = r["o2_sweeps"]
        else:
            sweeps_split = sweeps
    else:
        sweeps_split = MEASURED["sweeps"]  # the defaults: the batched measurement
    beta_other = a.beta_other
    if beta_other is None:
        beta_other = beta_other_from(measured_beta, sweeps_split, halo, a.perfusion_exchanges, engine)
    beta = a.beta
    if beta is None:
        beta = o2_bytes(sweeps, halo, a.engine) + perfusion_bytes(a.perfusion_exchanges, halo, a.engine) + beta_other
    c_rank = c_site / (a.cores_per_rank * (a.thread_efficiency if a.cores_per_rank > 1 else 1.0))
    sizes = [float(s) for s in a.sizes.split(",")]
    ranks = [int(p) for p in a.ranks.split(",")]
    rows = table(sizes, ranks, c_site=c_rank, sweeps=sweeps, beta_other=beta_other, bandwidth=a.bandwidth,
                 latency=a.latency, halo=halo, o2_fraction=o2_fraction, x0=a.x0, r0=a.r0, overhead=a.overhead,
                 perfusion_exchanges=a.perfusion_exchanges, engine=a.engine, beta=a.beta)
    split = next((r for r in rows if r["ranks"] > 1), None)
    print(f"# projection: c_site {c_site:.3g} s/site/core, {a.cores_per_rank} core(s) per rank -> {c_rank:.3g} "
          f"s/site/rank; {sweeps:g} O2 sweeps/step ({o2_fraction:.3f} of compute); {a.engine} engine, H {halo}: "
          f"X {split['exchanges'] if split else 0:g} exchanges, R {split['allreduces'] if split else 0:g} "
          f"Allreduces per step; beta {beta:.0f} B/face "
          f"site/step (other phases {beta_other:.0f}, from {measured_beta:.0f} measured on the {engine} engine); "
          f"B {a.bandwidth:.3g} B/s, L {a.latency:.3g} s, o {a.overhead:.3g} s")
    if a.markdown:
        print("| sites | ranks | grid | s/step | compute | redundant | halo bytes | messages | reductions "
              "| efficiency |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sites']:.0e} | {r['ranks']} | {r['dims']} | {r['total']:.3g} | {r['compute']:.3g} | "
                  f"{r['redundant']:.3g} | {r['halo_bytes']:.3g} | {r['messages']:.3g} | {r['reductions']:.3g} | "
                  f"{r['efficiency']:.2f} |")
    else:
        print(f"{'sites':>7} {'ranks':>5} {'grid':>10} {'s/step':>10} {'compute':>10} {'redund.':>10} "
              f"{'halo B':>10} {'msgs':>10} {'reduce':>10} {'effic.':>6}")
        for r in rows:
            print(f"{r['sites']:7.0e} {r['ranks']:5d} {r['dims']:>10} {r['total']:10.3g} {r['compute']:10.3g} "
                  f"{r['redundant']:10.3g} {r['halo_bytes']:10.3g} {r['messages']:10.3g} "
                  f"{r['reductions']:10.3g} {r['efficiency']:6.2f}")


if __name__ == "__main__":
    main()
