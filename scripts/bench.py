"""Full benchmark (the same code as `tumorca bench`): roofline, per-case and per-phase throughput, the NumPy
reference ratio, memory per site and scaling fits.

    python scripts/bench.py [--sizes 512x512,1024x1024,2048x2048,128x128x128] [--threads 1,2] [--steps 10]
                            [--preset wild-type] [--json bench.json] [--no-reference]
"""
import argparse
import json

from tumorca import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512x512,1024x1024,2048x2048,128x128x128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--preset", default="wild-type")
    ap.add_argument("--json")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--growth", default="1024x1024", help="lattice for the time-vs-live-cells fit ('' to skip)")
    args = ap.parse_args()
    sizes = [bench.parse_shape(s) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    doc = bench.bench(sizes, threads, steps=args.steps, preset=args.preset, reference=not args.no_reference,
                      progress=lambda row: print(f"  done {row['shape']} x{row['threads']}", flush=True))
    if args.growth:
        doc["scaling"]["growth"] = bench.growth_scaling(bench.parse_shape(args.growth), threads[0], 60,
                                                         args.preset)
    print(bench.format_table(doc))
    print("scaling:", json.dumps(doc["scaling"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)


if __name__ == "__main__":
    main()
