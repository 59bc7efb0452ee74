"""``tumorca sweep``: a parameter sweep on Dask (docs/sweeps.md).  The sweep itself -- the file, the runs, the
cluster -- is :mod:`tumorca.sweep`; this module parses the options, reports progress and ends in one line."""
from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import TumorcaError
from ..io.layout import fmt_bytes, fmt_shape
from ._common import (THREADS_PER_CPU, CONTEXT, RunProblem, UsageProblem, check_threads, command_line, cpus_available,
                      echo, fmt_seconds)


# -- sweep -------------------------------------------------------------------------------------------------------
class SweepProgress:
    """Progress of a sweep on stderr: runs done/total with an ETA; redrawn in place on a terminal, otherwise a line
    per finished run (every 5 % beyond 100 runs).  Failures always get a line."""

    def __init__(self, stream=None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._next = 0.0
        self._drawn = False

    def __call__(self, ev: Any) -> None:
        rate = ev.done_here / ev.elapsed if ev.elapsed > 0 else 0.0
        left = ev.total - ev.done - ev.failed
        eta = left / rate if rate > 0 else float("inf")
        row = ev.row
        head = (f"{ev.done}/{ev.total} runs done" + (f", {ev.failed} failed" if ev.failed else "")
                + f", elapsed {fmt_seconds(ev.elapsed)}, ETA {fmt_seconds(eta) if left else '0:00'}")
        if row["status"] != "complete":
            what = "retrying" if ev.retrying else "failed for good"
            self._clear()
            self.stream.write(f"tumorca: {row['run']} failed (attempt {ev.attempt}; {what}): {row['error']}\n")
        if self.tty:
            self.stream.write(f"\rtumorca: {head}   ")
            self._drawn = True
        else:
            pct = 100.0 * ev.done_here / max(1, ev.todo_here)
            if row["status"] == "complete" and (ev.todo_here <= 100 or pct + 1e-9 >= self._next
                                                or ev.done_here == ev.todo_here):
                wall = row.get("wall_seconds")
                self.stream.write(f"tumorca: {head} ({row['run']} {row.get('started') or 'complete'}"
                                  + (f", {wall:.1f} s" if isinstance(wall, float) else "") + ")\n")
                while self._next <= pct + 1e-9:
                    self._next += 5.0
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self._drawn = False

    def finish(self) -> None:
        self._clear()
        self.stream.flush()


@click.command(context_settings=CONTEXT)
@click.argument("sweep_file", metavar="SWEEP.toml", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output directory: manifest.json, manifest.csv and runs/NAME.h5.")
@click.option("--workers", type=int, help="Worker processes of the local cluster  [default: CPUs / threads-per-run].")
@click.option("--threads-per-run", type=int, default=1, show_default=True, help="Engine threads of each run.")
@click.option("--scheduler", metavar="ADDRESS|FILE",
              help="Use a running Dask cluster: scheduler address (tcp://host:8786) or scheduler file.")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for --scheduler.")
@click.option("--dry-run", is_flag=True, help="List the runs and the projected disk and memory use; run nothing.")
@click.option("--resume", is_flag=True, help="Finish the sweep in OUTDIR: keep complete runs, run the rest.")
@click.option("--retries", type=int, default=1, show_default=True,
              help="Times a failed run (an error, or its worker died) is tried again.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr (errors still show).")
def sweep(sweep_file: Path, output: Path, workers: int | None, threads_per_run: int, scheduler: str | None,
          connect_timeout: float, dry_run: bool, resume: bool, retries: int, quiet: bool) -> None:
    """Run a parameter sweep (a TOML sweep file, see docs/sweeps.md) on Dask: one run file per run in OUTDIR/runs
    and a manifest (OUTDIR/manifest.csv, manifest.json) of every run's parameters, seed, status and final measures.

    \b
    Examples:
      tumorca sweep ifn.toml -o sweeps/ifn --dry-run
      tumorca sweep ifn.toml -o sweeps/ifn --workers 2
      tumorca sweep ifn.toml -o sweeps/ifn --resume
      tumorca sweep ifn.toml -o sweeps/ifn --scheduler scheduler.json --threads-per-run 4
    """
    from .. import sweep as sw

    if workers is not None and workers < 1:
        raise UsageProblem(f"--workers must be a positive integer, got {workers}")
    check_threads(threads_per_run, "--threads-per-run")
    if workers is not None and workers > THREADS_PER_CPU * cpus_available():
        raise UsageProblem(f"--workers must be at most {THREADS_PER_CPU * cpus_available()} ({THREADS_PER_CPU} per "
                           f"CPU available), got {workers}")
    if retries > 100:
        raise UsageProblem(f"--retries must be at most 100, got {retries}")
    if retries < 0:
        raise UsageProblem(f"--retries must be 0 or a positive integer, got {retries}")
    if not (connect_timeout > 0 and math.isfinite(connect_timeout)):
        raise UsageProblem(f"--connect-timeout must be positive, got {connect_timeout:g}")
    if scheduler is not None and workers is not None:
        raise UsageProblem("--workers sets up a local cluster; with --scheduler the cluster has its own workers")
    cmd = command_line()
    try:
        spec = sw.load_sweep(sweep_file)
        driver = sw.SweepDriver(spec, output, resume=resume, threads_per_run=threads_per_run, retries=retries,
                                command_line=cmd)
        todo = driver.prepare()
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    n_workers = workers or sw.default_workers(threads_per_run)
    runs = driver.runs
    if dry_run:
        _sweep_dry_run(sw, spec, driver, todo, output, n_workers if scheduler is None else None)
        return
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise RunProblem("tumorca sweep needs Dask distributed, an optional extra: pip install 'tumorca[sweep]' "
                         "(or pip install 'dask[distributed]')") from None
    est = sw.estimate_sweep(runs + spec.parents(), output)
    try:
        sw.check_sweep_resources(est, output, n_workers if scheduler is None else None, len(todo))
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    echo(quiet, f"tumorca: {spec.describe()}; {len(runs) - len(todo)} complete, {len(todo)} to run; "
                f"{'scheduler ' + scheduler if scheduler else f'{n_workers} local workers'}, "
                f"{threads_per_run} thread{'s' if threads_per_run > 1 else ''} per run -> {output}")
    if est.disk_free is not None and est.total_files > est.disk_free:
        click.echo(f"tumorca: note: the run files may take up to {fmt_bytes(est.total_files)} before compression; "
                   f"{fmt_bytes(est.disk_free)} is free", err=True)

    if not todo:  # --resume of a finished sweep: no cluster needed
        try:
            driver.start()
        except TumorcaError as exc:
            raise UsageProblem(str(exc)) from None
        driver.close()
        echo(quiet, f"tumorca: nothing to do: all {len(runs)} runs are complete in {output / sw.RUNS_DIR}")
        return

    progress = SweepProgress()
    try:
        interrupted = sw.run_on_cluster(driver, todo, scheduler=scheduler, workers=n_workers,
                                        connect_timeout=connect_timeout, progress=None if quiet else progress)
    except sw.SweepRunError as exc:
        raise RunProblem(str(exc)) from None
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    finally:
        progress.finish()
    counts = driver.counts()
    done, failed = counts.get("complete", 0), counts.get("failed", 0)
    again = f"tumorca sweep {shlex.quote(str(sweep_file))} -o {shlex.quote(str(output))} --resume"
    if interrupted:
        # a worker may publish a finished run into runs/ after the driver stopped listening (the manifest learns of
        # it on --resume): count what is complete on disk, where a file appears only once complete
        done = max(done, sum(1 for r in runs if (output / sw.RUNS_DIR / f"{r.name}.h5").exists()))
        click.echo(f"tumorca: interrupted: {done} of {len(runs)} runs complete; continue with: {again}", err=True)
        sys.exit(130)
    if failed:
        raise RunProblem(f"{failed} of {len(runs)} runs failed (errors in {output / sw.MANIFEST_CSV}); "
                         f"{done} complete; rerun the failed ones with: {again}")
    echo(quiet, f"tumorca: sweep complete: {done} runs in {output / sw.RUNS_DIR}, manifest "
                 f"{output / sw.MANIFEST_CSV}")


def _sweep_dry_run(sw: Any, spec: Any, driver: Any, todo: list[int], output: Path, workers: int | None) -> None:
    runs = driver.runs
    todo_set = set(todo)
    varied = [k for k in spec.varied if k != "preset"]
    cols = ["run", "condition", "replicate", "preset"] + varied + ["seed", "steps", "state"]
    table = []
    for r in runs:
        state = "to run" if r.index in todo_set else "complete (kept)"
        table.append([r.name, str(r.condition), str(r.replicate), r.plan.preset or "-"]
                     + [repr(r.varied[k]) for k in varied] + [str(r.seed), str(r.plan.steps), state])
    widths = [max(len(c), *(len(row[j]) for row in table)) for j, c in enumerate(cols)]
    click.echo(f"{spec.describe()} -> {output}")
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    est = sw.estimate_sweep(runs + spec.parents(), output)
    todo_runs = [runs[i] for i in todo]
    # the parents the runs to do may still need (those not complete on disk)
    parents = [q for q in spec.parents()
               if not sw.is_complete_run(sw.run_paths(output, q.name, sw.PARENTS_DIR)[0], q.plan)] if todo else []
    left = sw.estimate_sweep(todo_runs + parents, output).total_files if todo_runs else 0
    p = runs[0].plan
    click.echo(f"each run: {p.n_frames} frames of {fmt_shape(p.shape)}, memory ~{fmt_bytes(est.run_memory)}, file up "
               f"to {fmt_bytes(est.run_file)} uncompressed")
    free = f"; {fmt_bytes(est.disk_free)} free" if est.disk_free is not None else ""
    also = f" and {len(parents)} parents" if parents else ""
    click.echo(f"disk: up to {fmt_bytes(left)} before compression for the {len(todo)} runs to do{also} (an upper "
               f"bound){free}")
    if workers is not None:
        avail = f"; {fmt_bytes(est.memory_available)} available" if est.memory_available is not None else ""
        click.echo(f"memory: ~{fmt_bytes(est.run_memory * workers)} with {workers} workers running at once{avail}")
    else:
        click.echo(f"memory: ~{fmt_bytes(est.run_memory)} per run on each worker of the cluster")
