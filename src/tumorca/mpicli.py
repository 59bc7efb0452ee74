"""``mpiexec -n P tumorca run ...``: the run command under MPI (docs/cli.md, docs/scaling.md).

Every rank parses the same arguments and so finds the same usage errors by itself (only rank 0 prints them).
Everything that depends on the file system or on chance -- the output checks, the seed, the checks of a file to
resume -- is done by rank 0 and broadcast, so every rank takes the same decision before any file is touched.  An
error agreed on by the ranks is one line on rank 0's stderr and every rank exits with the same status; an
unexpected exception on one rank is reported by that rank and ends the whole job (``MPI_Abort``) rather than
leaving the others waiting.
"""
from __future__ import annotations

import os
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .errors import LatticeError, ParameterError, ResourceError, TumorcaError
from .io.layout import RunFileError, RunPlan, fmt_bytes, fmt_shape
from .runner import MINUTES_PER_DAY


def run_mpi(*, output: Path, params: Any, params_given: bool, preset: str | None, shape: tuple[int, ...] | None,
            steps: int | None, days: float | None, every: int | None, fields: tuple[str, ...] | None,
            compression: str | None, seed: int | None, threads: int | None, checkpoint_every: int | None,
            overwrite: bool, resume: bool, ranks_shape: str | None, quiet: bool, command: str) -> None:
    """``tumorca run`` under MPI; ``command`` is the command line as given (recorded in the run file)."""
    from . import cli, mpirun

    try:
        comm = mpirun.mpi_comm()
    except TumorcaError as exc:
        raise cli.RunProblem(str(exc)) from None
    rank = comm.Get_rank()
    try:
        if resume:
            _resume(comm, output, threads, quiet or rank != 0, ranks_shape, command,
                    given=dict(shape=shape, params=params if params_given else None, seed=seed, steps=steps,
                               days=days, every=every, fields=fields, compression=compression,
                               checkpoint_every=checkpoint_every))
            return
        # the seed is drawn once, on rank 0
        seed = comm.bcast(seed if seed is not None else secrets.randbits(63), root=0)
        plan = cli.make_plan(params, preset, shape, steps, days, every, fields, compression, seed, checkpoint_every)

        def checks() -> str:
            cli.check_output_path(output, overwrite=overwrite, resume=False)
            cli._refuse_live_target(output, overwrite)
            return _check_disk(plan, output, output.stat().st_size if overwrite and output.exists() else 0)

        described = mpirun.on_root(comm, checks)
        dt = plan.params.dt_min
        header = (f"tumorca: {fmt_shape(plan.shape)} lattice, {plan.steps} steps "
                  f"({plan.steps * dt / MINUTES_PER_DAY:g} days), {plan.n_frames} frames every {plan.every} steps, "
                  f"seed {plan.seed}, preset {plan.preset or 'none'}; {described} -> {output}")
        provenance = {"command_line": command}
        quiet = quiet or rank != 0
        _execute(comm, lambda stop, prog: mpirun.run(plan, output, provenance=provenance, threads=threads,
                                                     overwrite=overwrite, ranks_shape=ranks_shape, comm=comm,
                                                     progress=prog, stop=stop,
                                                     started=lambda sim: _say(quiet, header + _ranks_text(sim))),
                 output, quiet)
    except (click.ClickException, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - possibly on this rank alone: end the job, never hang
        sys.stderr.write(f"tumorca: error: rank {rank}: internal error: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())}\n")
        sys.stderr.flush()
        comm.Abort(1)


def _ranks_text(sim: Any) -> str:
    dims = "x".join(str(int(d)) for d in sim.decomposition.dims)
    block = "x".join(str(int(d)) for d in sim.decomposition.block_shape)
    return f"; {sim.size} MPI ranks as a {dims} grid of blocks (rank 0: {block} sites), {sim.threads} thread(s) each"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)


def _check_disk(plan: RunPlan, output: Path, existing: int) -> str:
    """The serial run's up-front disk check (the memory check is per rank, in the engine); a one-line
    description of the estimate."""
    from . import cli
    from .runner import estimate_resources

    try:
        est = estimate_resources(plan, output)
    except TumorcaError as exc:
        raise cli.RunProblem(str(exc)) from None
    if est.disk_free is not None and est.file > est.disk_free + existing:
        raise cli.RunProblem(f"the run files may grow to {fmt_bytes(est.file)} ({plan.n_frames} frames of "
                             f"{fmt_bytes(plan.frame_bytes())} before compression) but only "
                             f"{fmt_bytes(est.disk_free)} is free in {str(output.resolve().parent)!r}; write fewer "
                             "frames (--every, --fields) or a smaller lattice")
    return f"files up to {fmt_bytes(est.file)} uncompressed"


def _resume(comm: Any, output: Path, threads: int | None, quiet: bool, ranks_shape: str | None, command: str,
            given: dict[str, Any]) -> None:
    from . import cli, mpirun
    from .io.reader import RunReader
    from .runner import check_resume

    def checks() -> tuple[dict[str, Any], str]:
        cli.check_output_path(output, overwrite=False, resume=True)
        try:
            reader = RunReader(output)
        except TumorcaError as exc:
            raise cli.UsageProblem(f"--resume: {exc}") from None
        with reader:
            g = dict(given)
            days = g.pop("days")
            if days is not None:
                dt = (g["params"] or reader.plan.params).dt_min
                g["steps"] = max(1, round(days * MINUTES_PER_DAY / dt))
            g = {k: v for k, v in g.items() if v is not None}
            try:
                check_resume(reader, g)
                plan = reader.plan
            except TumorcaError as exc:
                raise cli.UsageProblem(f"--resume: {exc}") from None
            ck = reader.checkpoint_step()
            on_disk = reader.n_rows - 1
        described = _check_disk(plan, output, output.stat().st_size)
        start = f"checkpoint at step {ck}" if ck is not None else "the initial state (no checkpoint yet)"
        return g, (f"tumorca: resuming {output} from {start} (file had step {on_disk} of {plan.steps}); "
                   f"{described}")

    g, message = mpirun.on_root(comm, checks)
    provenance = {"command_line": command}
    _execute(comm, lambda stop, prog: mpirun.resume(output, provenance=provenance, threads=threads, given=g,
                                                    ranks_shape=ranks_shape, comm=comm, progress=prog, stop=stop,
                                                    started=lambda sim: _say(quiet, message + _ranks_text(sim))),
             output, quiet)


def _execute(comm: Any, call: Callable[[Callable[[], bool], Any], Any], output: Path, quiet: bool) -> None:
    """As the serial ``_execute``: signals, progress (rank 0), one line at the end; errors here were agreed by
    every rank, so every rank raises (and exits) alike."""
    from . import cli

    progress = cli.Progress()
    resume_hint = f"tumorca run --resume -o {shlex.quote(str(output))}"
    with cli._StopOnSignal() as stop:
        try:
            outcome = call(stop, None if quiet else progress)
        except RunFileError as exc:
            progress.finish()
            msg = str(exc)
            if getattr(exc, "resumable", False):
                msg += f"; after fixing the cause, continue with: mpiexec -n P {resume_hint}"
            if getattr(exc, "broken", False):
                if comm.Get_rank() == 0:
                    click.echo(f"tumorca: error: {msg}", err=True)
                sys.stderr.flush()
                sys.stdout.flush()
                os._exit(1)
            raise cli.RunProblem(msg) from None
        except (LatticeError, ParameterError) as exc:
            progress.finish()
            raise cli.UsageProblem(str(exc)) from None
        except (ResourceError, TumorcaError) as exc:
            progress.finish()
            raise cli.RunProblem(str(exc)) from None
    progress.finish()
    if outcome.status == "interrupted":
        if comm.Get_rank() == 0:
            name = signal.Signals(stop.signum).name if stop.signum else "signal"
            click.echo(f"tumorca: {name} at step {outcome.step} of {outcome.steps}: checkpoint written; continue "
                       f"with: mpiexec -n P {resume_hint}", err=True)
        sys.exit(130)
    if not quiet:
        size = output.stat().st_size + sum(p.stat().st_size for p in _rank_files(output))
        rate = (outcome.step - outcome.first_step) / max(outcome.wall_seconds, 1e-9)
        click.echo(f"tumorca: wrote {output} (+ {comm.Get_size()} rank files): {outcome.frames} frames, "
                   f"{outcome.steps} steps, {fmt_bytes(size)} in {outcome.wall_seconds:.1f} s ({rate:.1f} steps/s)",
                   err=True)


def _rank_files(output: Path) -> list[Path]:
    from .io.distributed import ranks_dir

    d = ranks_dir(output)
    return [p for p in d.rglob("*.h5")] if d.is_dir() else []
