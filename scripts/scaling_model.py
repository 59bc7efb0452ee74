"""Projected time per step and parallel efficiency of an MPI run on P ranks (docs/scaling.md).

    T(P) = N/P * c_site                         compute (c_site: seconds per site-update of one rank)
         + beta * F(P) / B                      halo bytes of the busiest rank over the link bandwidth
         + X * (k(P) * L + o)                   halo messages: X exchanges per step, k(P) messages each,
                                                plus a software overhead o per exchange (--overhead)
         + R * 2 * log2(P) * L                  global reductions (Allreduce) per step

N sites in a cube split by a balanced Pz x Py x Px grid; F(P) the face sites of the busiest block (two faces per
split axis); beta the halo bytes per face site per step (all phases, all exchanges); X = 2 * S + X0 exchanges per
step (S O2 sweeps, each of two colours needing one exchange, X0 for perfusion rounds and the other phases); k =
2 messages per split axis; R = S + R0 reductions (the O2 stopping test, perfusion rounds, summaries).

The inputs default to figures measured on the development machine (docs/scaling.md says how); give your own,
or read c_site, S and beta from ``tumorca bench --mpi 1,2 --json FILE`` with ``--bench-json FILE``.  The table
is a projection from a model, not a measurement.

    python scripts/scaling_model.py
    python scripts/scaling_model.py --bandwidth 25e9 --latency 1e-6 --cores-per-rank 32
    python scripts/scaling_model.py --bench-json bench-mpi.json --markdown
"""
from __future__ import annotations

import argparse
import json
import math

#: Measured on the development machine (docs/scaling.md, tumorca bench --mpi 1,2 on 256^3): seconds per
#: site-update on one core (1 rank), O2 sweeps per step, halo bytes per face site per step (2 ranks).
DEFAULTS = {"c_site": 8.12e-7, "sweeps": 130.5, "beta": 1640.0}


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


def step_time(n_sites: float, p: int, c_site: float, sweeps: float, beta: float, bandwidth: float,
              latency: float, x0: float = 12.0, r0: float = 8.0, overhead: float = 0.0) -> dict[str, float]:
    """Seconds per step on ``p`` ranks, split into compute, halo bytes, halo messages and reductions."""
    n = n_sites ** (1.0 / 3.0)
    dims = balanced_dims(p)
    block = [n / d for d in dims]
    faces = 0.0
    split_axes = 0
    for a, d in enumerate(dims):
        if d > 1:
            split_axes += 1
            others = [block[b] for b in range(3) if b != a]
            faces += 2 * others[0] * others[1]
    compute = n_sites / p * c_site
    halo_bytes = beta * faces / bandwidth
    exchanges = 2 * sweeps + x0
    messages = exchanges * 2 * split_axes * latency + (exchanges * overhead if p > 1 else 0.0)
    reductions = (sweeps + r0) * 2 * math.log2(p) * latency if p > 1 else 0.0
    total = compute + halo_bytes + messages + reductions
    return {"dims": "x".join(map(str, dims)), "compute": compute, "halo_bytes": halo_bytes, "messages": messages,
            "reductions": reductions, "total": total}


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
    ap.add_argument("--c-site", type=float, default=DEFAULTS["c_site"],
                    help="seconds per site-update on one core (default: measured here)")
    ap.add_argument("--cores-per-rank", type=int, default=1,
                    help="OpenMP threads per rank (one rank per socket/NUMA domain)")
    ap.add_argument("--thread-efficiency", type=float, default=0.8,
                    help="parallel efficiency of those threads (memory-bound kernels: 0.6-0.9)")
    ap.add_argument("--sweeps", type=float, default=DEFAULTS["sweeps"], help="O2 sweeps per step")
    ap.add_argument("--beta", type=float, default=DEFAULTS["beta"], help="halo bytes per face site per step")
    ap.add_argument("--bandwidth", type=float, default=12.5e9, help="link bandwidth, bytes/s (HDR100: 12.5e9)")
    ap.add_argument("--latency", type=float, default=1.5e-6, help="message latency, s")
    ap.add_argument("--overhead", type=float, default=0.0,
                    help="software cost per halo exchange beyond the network (packing, calls, waiting), s")
    ap.add_argument("--x0", type=float, default=12.0, help="halo exchanges per step besides the O2 sweeps")
    ap.add_argument("--r0", type=float, default=8.0, help="Allreduces per step besides the O2 stopping tests")
    ap.add_argument("--sizes", default="1e8,1e9,1e10", help="comma list of lattice sites")
    ap.add_argument("--ranks", default="1,8,64,512,4096", help="comma list of rank counts")
    ap.add_argument("--bench-json", help="take c_site, sweeps and beta from 'tumorca bench --mpi ... --json'")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    a = ap.parse_args()
    c_site, sweeps, beta = a.c_site, a.sweeps, a.beta
    if a.bench_json:
        doc = json.load(open(a.bench_json))
        rows = doc["rows"]
        one = rows[0]
        c_site = one["seconds_per_site"] * doc["threads"]  # per core
        sweeps = one["o2_sweeps"]
        split = [r for r in rows if r["ranks"] > 1 and r["halo_bytes"] > 0]
        if split:
            r = split[0]
            shape = doc["shape"] if len(doc["shape"]) == 3 else [1] + doc["shape"]
            dims = [int(d) for d in r["grid"].split("x")]
            n = math.prod(shape)
            face_sites = sum(2 * (d - 1) * n / s for d, s in zip(dims, shape))
            beta = r["halo_bytes"] / face_sites
    c_rank = c_site / (a.cores_per_rank * (a.thread_efficiency if a.cores_per_rank > 1 else 1.0))
    sizes = [float(s) for s in a.sizes.split(",")]
    ranks = [int(p) for p in a.ranks.split(",")]
    rows = table(sizes, ranks, c_site=c_rank, sweeps=sweeps, beta=beta, bandwidth=a.bandwidth, latency=a.latency,
                 x0=a.x0, r0=a.r0, overhead=a.overhead)
    print(f"# projection: c_site {c_site:.3g} s/site/core, {a.cores_per_rank} core(s) per rank -> {c_rank:.3g} "
          f"s/site/rank; {sweeps:g} O2 sweeps/step; beta {beta:.0f} B/face site/step; B {a.bandwidth:.3g} B/s, "
          f"L {a.latency:.3g} s")
    if a.markdown:
        print("| sites | ranks | grid | s/step | compute | halo bytes | messages | reductions | efficiency |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sites']:.0e} | {r['ranks']} | {r['dims']} | {r['total']:.3g} | {r['compute']:.3g} | "
                  f"{r['halo_bytes']:.3g} | {r['messages']:.3g} | {r['reductions']:.3g} | {r['efficiency']:.2f} |")
    else:
        print(f"{'sites':>7} {'ranks':>5} {'grid':>10} {'s/step':>10} {'compute':>10} {'halo B':>10} "
              f"{'msgs':>10} {'reduce':>10} {'effic.':>6}")
        for r in rows:
            print(f"{r['sites']:7.0e} {r['ranks']:5d} {r['dims']:>10} {r['total']:10.3g} {r['compute']:10.3g} "
                  f"{r['halo_bytes']:10.3g} {r['messages']:10.3g} {r['reductions']:10.3g} {r['efficiency']:6.2f}")


if __name__ == "__main__":
    main()
