"""``tumorca bench``: the benchmarks of :mod:`tumorca.bench` (docs/performance.md, docs/scaling.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import presets
from ..errors import TumorcaError
from ..io.layout import fmt_shape
from ._common import CONTEXT, RunProblem, UsageProblem, check_output_place, check_threads, parse_set, parse_shape


@click.command("bench", context_settings=CONTEXT)
@click.option("--sizes", default="512x512,1024x1024,2048x2048,128x128x128", show_default=True,
              help="Comma list of lattice shapes.")
@click.option("--threads", "threads_text", default="1,2", show_default=True, help="Comma list of thread counts.")
@click.option("--steps", type=int, default=10, show_default=True, help="Timed steps per case (after 3 warm-up).")
@click.option("--preset", default="wild-type", show_default=True, help="Scenario preset of every case.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the results as JSON.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Time the NumPy reference on the same state (lattices up to 1024x1024).")
@click.option("--streaming/--no-streaming", default=False, show_default=True,
              help="Also measure the cost of HDF5 frames every 10 steps (runs each case twice more).")
@click.option("--roofline-mb", type=int, default=256, show_default=True, help="Array size of the STREAM kernels.")
@click.option("--mpi", "mpi_ranks", metavar="P1,P2,...",
              help="Instead of the cases above: MPI strong scaling of one lattice (--mpi-shape) over these rank "
                   "counts, with halo-exchange time and bytes per step (docs/scaling.md; needs mpi4py/mpiexec).")
@click.option("--mpi-shape", default="256x256x256", show_default=True, help="Lattice of the --mpi case.")
@click.option("--mpi-steps", type=int, default=3, show_default=True, help="Timed steps of the --mpi case.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set one parameter of every case (as for "
              "run: value read as TOML); repeatable.")
@click.option("--tumour-fraction", type=click.FloatRange(0.0, 1.0), default=0.25, show_default=True,
              help="Share of the lattice's area (2D) or volume (3D) the initial tumour fills.")
def bench_cmd(sizes: str, threads_text: str, steps: int, preset: str, json_path: Path | None, reference: bool,
              streaming: bool, roofline_mb: int, mpi_ranks: str | None, mpi_shape: str, mpi_steps: int,
              sets: tuple[str, ...], tumour_fraction: float) -> None:
    """Measure steps/s, site-updates/s, time and bandwidth per phase, memory per site and thread speed-up,
    beside a memory-bandwidth roofline and the NumPy reference measured in the same run (docs/performance.md).
    With --mpi: strong scaling over MPI ranks and the cost of halo exchange (docs/scaling.md)."""
    from .. import bench

    if mpi_ranks is not None:
        _bench_mpi(bench, mpi_ranks, mpi_shape, mpi_steps, threads_text, preset, json_path)
        return

    shapes = [parse_shape(s.strip()) for s in sizes.split(",") if s.strip()]
    try:
        threads = [int(t) for t in threads_text.split(",")]
    except ValueError:
        raise UsageProblem(f"--threads must be a comma list of positive integers, got {threads_text!r}") from None
    if not shapes or not threads or min(threads) < 1:
        raise UsageProblem(f"--threads must be a comma list of positive integers, got {threads_text!r}")
    for t in threads:
        check_threads(t)
    if steps < 1:
        raise UsageProblem(f"--steps must be >= 1, got {steps}")
    if roofline_mb < 1:
        raise UsageProblem(f"--roofline-mb must be >= 1, got {roofline_mb}")
    _check_bench_outputs(preset, json_path)
    overrides = dict(parse_set(item) for item in sets)
    try:
        bench.case_params((8, 8), preset, tumour_fraction, overrides)  # a bad --set fails before any timing
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        doc = bench.bench(shapes, threads, steps=steps, preset=preset, reference=reference, overrides=overrides,
                          tumour_fraction=tumour_fraction, roofline_mb=roofline_mb,
                          streaming=bench.streaming_overhead if streaming else None,
                          progress=lambda row: click.echo(f"  measured {fmt_shape(tuple(row['shape']))} on "
                                                          f"{row['threads']} thread(s)", err=True))
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    click.echo(bench.format_table(doc))
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=2))
        click.echo(f"tumorca: wrote {json_path}", err=True)


def _check_bench_outputs(preset: str, json_path: Path | None) -> None:
    """UsageProblem for an unknown preset or a JSON path that cannot be written (before anything is measured)."""
    try:
        presets.changes(preset)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    if json_path is not None:
        check_output_place(json_path)


def _bench_mpi(bench: Any, ranks_text: str, shape_text: str, steps: int, threads_text: str, preset: str,
               json_path: Path | None) -> None:
    try:
        ranks = [int(t) for t in ranks_text.split(",") if t.strip()]
    except ValueError:
        ranks = []
    if not ranks or min(ranks) < 1:
        raise UsageProblem(f"--mpi must be a comma list of positive rank counts, got {ranks_text!r}")
    try:
        threads = int(threads_text.split(",")[0])
    except ValueError:
        threads = 0
    if threads < 1:
        raise UsageProblem(f"--threads must be a positive integer, got {threads_text!r}")
    check_threads(threads)
    if steps < 1:
        raise UsageProblem(f"--mpi-steps must be >= 1, got {steps}")
    shape = parse_shape(shape_text)
    _check_bench_outputs(preset, json_path)
    try:
        doc = bench.mpi_scaling(shape, ranks, steps=steps, threads=threads, preset=preset,
                                progress=lambda row: click.echo(f"  measured {fmt_shape(shape)} on {row['ranks']} "
                                                                f"rank(s) ({row['grid']})", err=True))
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    click.echo(bench.format_mpi_table(doc))
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=2))
        click.echo(f"tumorca: wrote {json_path}", err=True)
