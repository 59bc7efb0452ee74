"""The ``tumorca`` command line: ``run``, ``sweep``, ``presets``, ``params``, ``inspect``, ``bench``, and the analysis
commands ``plot``, ``movie``, ``curves`` and ``summary`` (docs/cli.md, docs/analysis.md, docs/sweeps.md).

This module only parses, validates and reports; :mod:`tumorca.runner` runs and :mod:`tumorca.io` writes and reads.
Errors are one line on stderr, ``tumorca: error: ...``; exit status 2 for usage errors (bad options, names,
values, paths, or a file that cannot be resumed), 1 for run errors (not enough memory or disk, a failed write),
130 after SIGINT/SIGTERM.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import secrets
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from . import __version__, presets
from ._constants import FIELD_NAMES
from .errors import ResourceError, TumorcaError
from .io.layout import COMPRESSIONS, RunFileError, RunPlan, fmt_bytes, fmt_shape
from .params import PARAMETERS, Params, tomllib
from .runner import CHECKPOINT_FRAMES, DEFAULT_DAYS, DEFAULT_SHAPE, MINUTES_PER_DAY

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UsageProblem(click.UsageError):
    """A usage error raised by tumorca's own checks (exit 2)."""


class RunProblem(click.ClickException):
    """A run error (exit 1)."""

    exit_code = 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


_ARGS: list[str] = []

#: Environment variables in which MPI launchers (MPICH/Intel MPI hydra and PMI-2 srun, Open MPI, MVAPICH) give the
#: world size and this process's rank: read without importing mpi4py, so a serial run never initialises MPI.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def launcher_size() -> int:
    """Number of processes the MPI launcher started (1 when not started by one)."""
    for name in _SIZE_VARS:
        try:
            return max(1, int(os.environ[name]))
        except (KeyError, ValueError):
            continue
    return 1


def launcher_rank() -> int:
    """This process's rank as the MPI launcher numbered it (0 when not started by one)."""
    for name in _RANK_VARS:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return 0


def _speaks() -> bool:
    """Whether this process reports errors: always, except ranks other than 0 of an MPI job."""
    return launcher_size() <= 1 or launcher_rank() == 0


def command_line() -> str:
    """The ``tumorca ...`` command being run, shell-quoted (recorded as provenance)."""
    return shlex.join(["tumorca"] + _ARGS)


class TumorcaGroup(click.Group):
    """A Click group whose errors are one line on stderr (Click's default prints the usage block too)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        # Remember the arguments as given (sys.argv is the host's when called from Python, e.g. by CliRunner),
        # for the command line recorded in run files.
        global _ARGS
        _ARGS = list(args) if args is not None else sys.argv[1:]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name or "tumorca", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            if _speaks():
                click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "tumorca"
            if _speaks():  # under MPI every rank finds the same error; rank 0 says it
                click.echo(f"tumorca: error: {_one_line(exc.format_message())} (see '{where} -h')", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            if _speaks():
                click.echo(f"tumorca: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if _speaks():
                click.echo("tumorca: aborted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=TumorcaGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="tumorca", message="%(prog)s %(version)s")
def cli() -> None:
    """tumorca: a lattice cellular automaton of tumour growth, angiogenesis and the IFN-beta/neutrophil axis.

    Start with 'tumorca run -o out.h5', list scenarios with 'tumorca presets' and parameters with
    'tumorca params', look at a run file with 'tumorca inspect out.h5'.
    """


# -- parsing helpers ---------------------------------------------------------------------------------------------
def parse_shape(text: str) -> tuple[int, ...]:
    """``"512x512"`` or ``"128x128x128"`` -> tuple; UsageProblem unless 2 or 3 positive integers."""
    parts = text.lower().replace("\u00d7", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageProblem(f"--shape must be 2 or 3 positive integers like 512x512 or 64x64x64, got {text!r}") \
            from None
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise UsageProblem(f"--shape must be 2 or 3 positive integers like 512x512 or 64x64x64, got {text!r}")
    return dims


def parse_ranks_shape(text: str) -> str:
    """``"2x1x2"``, ``"2x2"`` (2-D: Py x Px) or ``"auto"``, normalised; UsageProblem otherwise.  (Whether the grid
    fits the lattice and the number of ranks is the engine's check.)"""
    t = text.strip().lower().replace("\u00d7", "x")
    if t == "auto":
        return t
    parts = t.split("x")
    if len(parts) not in (2, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageProblem(f"--ranks-shape must be PzxPyxPx, PyxPx (positive integers) or auto, got {text!r}")
    return "x".join(str(int(p)) for p in parts)


def parse_set(item: str) -> tuple[str, Any]:
    """``key=value`` with the value read as TOML (``1``, ``1.5``, ``true``, ``"x"``); a bare word that is not
    TOML (``dirichlet``) is taken as a string, so choices need no shell quoting."""
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key:
        raise UsageProblem(f"--set expects KEY=VALUE, got {item!r}")
    if not raw:
        raise UsageProblem(f"--set {key}= has no value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if not raw.replace("-", "").replace("_", "").isalnum():
            raise UsageProblem(f"--set {key}: {raw!r} is not a TOML value (number, true/false or \"string\")") \
                from None
        value = raw
    return key, value


def parse_fields(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma list of field names (unknown names: UsageProblem with the closest one)."""
    t = text.strip()
    if t == "all":
        return FIELD_NAMES
    if t in ("none", ""):
        return ()
    out = []
    for name in (n.strip() for n in t.split(",")):
        if name not in FIELD_NAMES:
            close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageProblem(f"unknown field {name!r}{hint}; fields are {', '.join(FIELD_NAMES)}, all or none")
        out.append(name)
    return tuple(out)


def build_params(preset: str | None, config: Path | None, sets: tuple[str, ...]) -> Params:
    """Parameters by precedence: defaults < preset < config file < ``--set``."""
    try:
        params = presets.get(preset) if preset else Params()
        if config is not None:
            params = Params.from_toml(config, base=params)
        if sets:
            params = params.replace(**dict(parse_set(s) for s in sets))
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    return params


def check_output_path(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Usage errors for an output path that cannot be used; writes nothing the user can see."""
    if path.suffix == ".xdmf" or path.name.endswith(".ckpt.h5"):
        raise UsageProblem(f"output {str(path)!r} would collide with a sidecar file name (.xdmf, .ckpt.h5)")
    parent = _check_output_place(path)
    try:  # the only reliable test (os.access says yes to root on a read-only mount)
        fd, probe = tempfile.mkstemp(prefix=".tumorca-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageProblem(f"cannot write in output directory {str(parent)!r}: {exc.strerror or exc}") from None
    if resume:
        if not path.exists():
            raise UsageProblem(f"--resume: {str(path)!r} does not exist")
    elif path.exists() and not overwrite:
        raise UsageProblem(f"{str(path)!r} exists; use --overwrite to replace it or --resume to continue it")


# -- progress ----------------------------------------------------------------------------------------------------
def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, a plain line every 5 % otherwise."""

    def __init__(self, stream=None, tty: bool | None = None, every_percent: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every_percent
        self._t0 = time.perf_counter()  # created just before the run: the rate includes setting it up
        self._next: float | None = None
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, step: int, total: int, first: int) -> None:
        now = time.perf_counter()
        if self._next is None:
            self._next = self.every
        rate = (step - first) / max(now - self._t0, 1e-9)
        eta = (total - step) / rate if rate > 0 else float("inf")
        pct = 100.0 * step / total
        if self.tty:
            if now - self._last_draw < 0.1 and step < total:
                return
            width = 30
            fill = int(width * step / total)
            self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% {step}/{total} steps "
                              f"{rate:7.1f} steps/s ETA {_fmt_seconds(eta)} ")
            self.stream.flush()
            self._last_draw = now
            self._drawn = True
        else:
            done = 100.0 * (step - first) / max(1, total - first)
            if done + 1e-9 >= self._next or step == total:
                self.stream.write(f"tumorca: step {step}/{total} ({pct:.0f}%), {rate:.1f} steps/s, "
                                  f"ETA {_fmt_seconds(eta)}\n")
                self.stream.flush()
                while self._next <= done + 1e-9:
                    self._next += self.every

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class _StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current step (a second one exits at once: the file stays
    readable to its last flushed frame, like after kill -9)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopOnSignal":
        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os.write(2, b"tumorca: second interrupt, exiting without a checkpoint\n")
            os._exit(130)
        self.signum = signum

    def __call__(self) -> bool:
        return self.signum is not None

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _echo(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)


# -- commands ----------------------------------------------------------------------------------------------------
@cli.command(context_settings=CONTEXT)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Run file to write (HDF5).")
@click.option("--preset", help="Scenario to start from (see 'tumorca presets').")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file of parameters (key = value, at the top or under [params]).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set one parameter (value read as TOML); repeatable.  Overrides --config and --preset.")
@click.option("--shape", metavar="NYxNX|NZxNYxNX", help="Lattice size  [default: 256x256].")
@click.option("--steps", type=int, help="Steps to run (of dt_min each).")
@click.option("--days", type=float, help=f"Simulated days to run instead of --steps  [default: {DEFAULT_DAYS:g}].")
@click.option("--every", type=int, help="A frame every this many steps  [default: one simulated day].")
@click.option("--fields", help="Fields in each frame: comma list of " + ", ".join(FIELD_NAMES) +
              ", or all or none  [default: all].")
@click.option("--compression", type=click.Choice(COMPRESSIONS), help="Frame compression  [default: gzip].")
@click.option("--seed", type=int, help="Random seed in [0, 2**64)  [default: drawn at random and recorded].")
@click.option("--threads", type=int, help="Engine threads  [default: the CPUs available].")
@click.option("--checkpoint-every", type=int,
              help=f"A checkpoint every this many steps (0: only at the end)  [default: {CHECKPOINT_FRAMES} "
                   "frames' worth].")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--resume", is_flag=True, help="Continue the cut-off or interrupted run in OUTPUT.")
@click.option("--ranks-shape", metavar="PzxPyxPx|PyxPx|auto",
              help="Under MPI (mpiexec -n P tumorca run ...): the grid of blocks, one per rank  [default: auto].")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def run(output: Path, preset: str | None, config: Path | None, sets: tuple[str, ...], shape: str | None,
        steps: int | None, days: float | None, every: int | None, fields: str | None, compression: str | None,
        seed: int | None, threads: int | None, checkpoint_every: int | None, overwrite: bool, resume: bool,
        ranks_shape: str | None, quiet: bool) -> None:
    """Run a simulation into an HDF5 run file (plus OUT.xdmf for ParaView).

    \b
    Examples:
      tumorca run -o wt.h5 --preset wild-type --days 14
      tumorca run -o ko.h5 --preset ifnb-knockout --shape 512x512 --seed 7 --fields o2,vegf_free
      tumorca run -o t.h5 --config my.toml --set neut_kill_rate=0.002 --steps 200 --every 10
      tumorca run --resume -o ko.h5
      mpiexec -n 4 tumorca run -o big.h5 --shape 256x256x256 --ranks-shape 1x2x2 --threads 8
    """
    if overwrite and resume:
        raise UsageProblem("--overwrite and --resume exclude each other")
    if steps is not None and days is not None:
        raise UsageProblem("give --steps or --days, not both")
    if steps is not None and steps <= 0:
        raise UsageProblem(f"--steps must be a positive integer, got {steps}")
    if days is not None and not (days > 0 and math.isfinite(days)):
        raise UsageProblem(f"--days must be positive, got {days:g}")
    if every is not None and every <= 0:
        raise UsageProblem(f"--every must be a positive integer, got {every}")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise UsageProblem(f"--checkpoint-every must be 0 or a positive integer, got {checkpoint_every}")
    if seed is not None and not 0 <= seed < 2 ** 64:
        raise UsageProblem(f"--seed must be in [0, 2**64), got {seed}")
    if threads is not None and threads < 1:
        raise UsageProblem(f"--threads must be a positive integer, got {threads}")
    if preset is not None and preset not in presets.PRESETS:
        try:
            presets.changes(preset)
        except TumorcaError as exc:
            raise UsageProblem(str(exc)) from None
    shape_t = parse_shape(shape) if shape is not None else None
    fields_t = parse_fields(fields) if fields is not None else None
    if ranks_shape is not None:
        ranks_shape = parse_ranks_shape(ranks_shape)
    params_given = preset is not None or config is not None or bool(sets)
    params = build_params(preset, config, sets)
    if ranks_shape is not None or launcher_size() > 1:
        from . import mpicli  # the MPI path: every check below, agreed between the ranks

        mpicli.run_mpi(output=output, params=params, params_given=params_given, preset=preset, shape=shape_t,
                       steps=steps, days=days, every=every, fields=fields_t, compression=compression, seed=seed,
                       threads=threads, checkpoint_every=checkpoint_every, overwrite=overwrite, resume=resume,
                       ranks_shape=ranks_shape, quiet=quiet, command=command_line())
        return
    check_output_path(output, overwrite=overwrite, resume=resume)
    cmd = command_line()
    provenance = {"command_line": cmd}

    from . import runner  # the engine loads here, after the arguments are known to be good

    if resume:
        _resume(output, runner, provenance, threads, quiet, shape=shape_t, params=params if params_given else None,
                seed=seed, steps=steps, days=days, every=every, fields=fields_t, compression=compression,
                checkpoint_every=checkpoint_every)
        return

    plan = make_plan(params, preset, shape_t, steps, days, every, fields_t, compression,
                     seed if seed is not None else secrets.randbits(63), checkpoint_every)
    dt = params.dt_min
    _refuse_live_target(output, overwrite)
    est = _check_resources(runner, plan, output, output.stat().st_size if overwrite and output.exists() else 0)
    _echo(quiet, f"tumorca: {fmt_shape(plan.shape)} lattice, {plan.steps} steps "
                 f"({plan.steps * dt / MINUTES_PER_DAY:g} days), {plan.n_frames} frames every "
                 f"{plan.every} steps, seed {plan.seed}, preset {plan.preset or 'none'}; {est.describe()} "
                 f"-> {output}")
    _execute(lambda stop, prog: runner.run(plan, output, provenance=provenance, threads=threads,
                                           overwrite=overwrite, progress=prog, stop=stop), output, quiet)


def make_plan(params: Params, preset: str | None, shape: tuple[int, ...] | None, steps: int | None,
              days: float | None, every: int | None, fields: tuple[str, ...] | None, compression: str | None,
              seed: int, checkpoint_every: int | None) -> RunPlan:
    """The plan of a new run from the options given (defaults for the rest); UsageProblem if it is invalid."""
    dt = params.dt_min
    if steps is None:
        steps = max(1, round((days if days is not None else DEFAULT_DAYS) * MINUTES_PER_DAY / dt))
    if every is None:
        every = min(steps, max(1, round(MINUTES_PER_DAY / dt)))
    elif every > steps:
        raise UsageProblem(f"--every {every} is larger than the run ({steps} steps)")
    if checkpoint_every is None:
        checkpoint_every = CHECKPOINT_FRAMES * every
    try:
        return RunPlan(shape=shape or DEFAULT_SHAPE, params=params, seed=seed, steps=steps, every=every,
                       fields=FIELD_NAMES if fields is None else fields, compression=compression or "gzip",
                       checkpoint_every=checkpoint_every, preset=preset or "")
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None


def _refuse_live_target(output: Path, overwrite: bool) -> None:
    """--overwrite never replaces a run file that a live process is still writing."""
    if not (overwrite and output.exists()):
        return
    from .io.reader import RunReader

    try:
        with RunReader(output) as r:
            st = r.status
    except TumorcaError:
        return  # not a tumorca run file: --overwrite may replace it
    if st.state == "running" and not st.resumable:
        raise UsageProblem(f"{str(output)!r} is {st.detail}; refusing to overwrite it")


def _check_resources(runner: Any, plan: RunPlan, output: Path, existing: int):
    try:
        return runner.check_resources(plan, output, existing)
    except ResourceError as exc:
        raise RunProblem(str(exc)) from None


def _resume(output: Path, runner: Any, provenance: dict, threads: int | None, quiet: bool, **given: Any) -> None:
    from .io.reader import RunReader

    try:
        reader = RunReader(output)
    except TumorcaError as exc:
        raise UsageProblem(f"--resume: {exc}") from None
    with reader:
        days = given.pop("days")
        if days is not None:
            dt = (given["params"] or reader.plan.params).dt_min
            given["steps"] = max(1, round(days * MINUTES_PER_DAY / dt))
        given = {k: v for k, v in given.items() if v is not None}
        try:
            runner.check_resume(reader, given)
            plan = reader.plan
        except TumorcaError as exc:
            raise UsageProblem(f"--resume: {exc}") from None
        ck = reader.checkpoint_step()
        on_disk = reader.n_rows - 1
    est = _check_resources(runner, plan, output, output.stat().st_size)
    start = f"checkpoint at step {ck}" if ck is not None else "the initial state (no checkpoint yet)"
    _echo(quiet, f"tumorca: resuming {output} from {start} (file had step {on_disk} of {plan.steps}); "
                 f"{est.describe()}")
    _execute(lambda stop, prog: runner.resume(output, provenance=provenance, threads=threads, given=given,
                                              progress=prog, stop=stop), output, quiet)


def _execute(call: Callable[[Callable[[], bool], Any], Any], output: Path, quiet: bool) -> None:
    """Run with signal handling and progress; report the end in one line."""
    progress = Progress()
    with _StopOnSignal() as stop:
        try:
            outcome = call(stop, None if quiet else progress)
        except RunFileError as exc:
            progress.finish()
            msg = str(exc)
            if getattr(exc, "resumable", False):
                msg += f"; after fixing the cause, continue with: tumorca run --resume -o {shlex.quote(str(output))}"
            if getattr(exc, "broken", False):
                # HDF5 holds writes it cannot complete; a normal exit would retry them while tearing down (noise,
                # and crashes seen with HDF5 2.0).  The file on disk is as of its last flush, so leave now.
                click.echo(f"tumorca: error: {msg}", err=True)
                sys.stderr.flush()
                sys.stdout.flush()
                os._exit(1)
            raise RunProblem(msg) from None
        except TumorcaError as exc:
            progress.finish()
            raise RunProblem(str(exc)) from None
    progress.finish()
    if outcome.status == "interrupted":
        name = signal.Signals(stop.signum).name if stop.signum else "signal"
        click.echo(f"tumorca: {name} at step {outcome.step} of {outcome.steps}: checkpoint written; continue with: "
                   f"tumorca run --resume -o {shlex.quote(str(output))}", err=True)
        sys.exit(130)
    size = output.stat().st_size
    rate = (outcome.step - outcome.first_step) / max(outcome.wall_seconds, 1e-9)
    _echo(quiet, f"tumorca: wrote {output}: {outcome.frames} frames, {outcome.steps} steps, {fmt_bytes(size)} in "
                 f"{outcome.wall_seconds:.1f} s ({rate:.1f} steps/s)")


@cli.command("presets", context_settings=CONTEXT)
def presets_cmd() -> None:
    """List the scenario presets and the parameters each one changes."""
    for name in presets.names():
        desc, changes = presets.PRESETS[name]
        click.echo(f"{name:<22} {desc}")
        text = ", ".join(f"{k} = {v!r}" for k, v in changes.items()) or "(nothing: the defaults)"
        click.echo(f"{'':<22} changes: {text}")


@cli.command("params", context_settings=CONTEXT)
@click.option("--toml", "as_toml", is_flag=True, help="Print a TOML config file with every default, to edit.")
def params_cmd(as_toml: bool) -> None:
    """List every model parameter with its default, unit and allowed range."""
    group = None
    for s in PARAMETERS:
        if s.group != group:
            sep = "\n" if group is not None else ""
            group = s.group
            click.echo(f"{sep}# {group}" if as_toml else f"{sep}[{group}]")
        if as_toml:
            value = json.dumps(s.default) if s.kind is not bool else str(s.default).lower()
            click.echo(f"# {s.doc} ({s.unit or 'dimensionless'}; {s.describe_range()})")
            click.echo(f"{s.name} = {value}")
        else:
            click.echo(f"  {s.name:<26} {s.default!s:<12} {s.unit or '-':<11} {s.describe_range():<24} {s.doc}")


@cli.command("bench", context_settings=CONTEXT)
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
    from . import bench

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
        _check_output_place(json_path)


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


def _check_output_place(path: Path) -> Path:
    """UsageProblem unless ``path`` could be created: its directory exists and is one, and ``path`` is not a
    directory.  Returns the directory."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise UsageProblem(f"output directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise UsageProblem(f"output directory {str(parent)!r} is not a directory")
    if path.is_dir():
        raise UsageProblem(f"output {str(path)!r} is a directory")
    return parent


@cli.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def inspect(path: Path, as_json: bool) -> None:
    """Describe a run file: size, frames, time span, parameters, and whether it is complete, still being
    written, interrupted or cut off."""
    from .io.reader import RunReader

    try:
        reader = RunReader(path)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    with reader:
        a = reader.attrs
        st = reader.status
        times = reader.times
        ck = reader.checkpoint_step()
        changed = reader.changed_parameters()
        info = {
            "file": str(path), "status": st.state, "detail": st.detail, "format_version": a.get("format_version"),
            "tumorca_version": a.get("tumorca_version"), "shape": list(reader.shape),
            "dx_um": a.get("dx_um"), "dt_min": a.get("dt_min"), "steps_planned": int(a["steps"]),
            "steps_on_disk": reader.n_rows - 1, "frames": reader.n_frames, "frames_planned": int(a["frames_planned"]),
            "every": int(a["every"]), "time_min": [float(times[0]), float(times[-1])] if len(times) else [],
            "layers": reader.layers, "compression": a.get("compression"), "preset": a.get("preset"),
            "seed": int(a["seed"]), "threads": a.get("threads"), "host": a.get("host"),
            "start_time": a.get("start_time"), "end_time": reader.run_info().get("end_time") or None,
            "command_line": a.get("command_line"), "checkpoint_step": ck,
            "resumed": len(json.loads(a.get("resume_history", "[]"))),
            "changed_parameters": {k: v for k, (v, _) in changed.items()}, "file_bytes": path.stat().st_size,
            "ranks": a.get("ranks"), "ranks_shape": a.get("ranks_shape"),
        }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    span = (f"{info['time_min'][0]:g}-{info['time_min'][1]:g} min "
            f"({info['time_min'][1] / MINUTES_PER_DAY:.2f} days)") if times.size else "none yet"
    lines = [
        f"file:        {path} ({fmt_bytes(info['file_bytes'])})",
        f"status:      {st.detail}" + (f"; continue with: tumorca run --resume -o {shlex.quote(str(path))}"
                                       if st.resumable and st.state != "running" else ""),
        f"shape:       {fmt_shape(reader.shape)} ({len(reader.shape)}D), dx {info['dx_um']:g} um, "
        f"dt {info['dt_min']:g} min",
        f"steps:       {max(info['steps_on_disk'], 0)} of {info['steps_planned']} on disk",
        f"frames:      {info['frames']} of {info['frames_planned']} (every {info['every']} steps), time {span}",
        f"layers:      {', '.join(info['layers'])} ({info['compression']})",
        f"preset:      {info['preset'] or 'none (defaults)'}",
        f"seed:        {info['seed']}",
        f"version:     tumorca {info['tumorca_version']}, format {info['format_version']}",
        f"written:     {info['start_time']} .. {info['end_time'] or '(not finished)'} on {info['host']}, "
        f"{info['threads']} threads" + (f", resumed {info['resumed']}x" if info["resumed"] else ""),
        f"command:     {info['command_line']}",
    ]
    if info["ranks"]:
        from .io.distributed import ranks_dir

        lines.insert(-1, f"mpi:         {info['ranks']} ranks ({info['ranks_shape']}); frames and final state in "
                         f"{ranks_dir(path).name}/ (virtual datasets)")
    if ck is not None:
        lines.append(f"checkpoint:  step {ck} ({reader.checkpoint_path.name})")
    if changed:
        lines.append("parameters that differ from the defaults:")
        for k, (v, d) in changed.items():
            lines.append(f"  {k} = {v!r}" + (f" (default {d!r})" if d is not None else " (unknown to this version)"))
    else:
        lines.append("parameters:  all defaults")
    click.echo("\n".join(lines))


# -- analysis: plot, movie, curves, summary ----------------------------------------------------------------------
def _open_run(path: Path) -> Any:
    """A :class:`tumorca.analysis.Run`; UsageProblem (one line) if it is not a readable tumorca run file."""
    from .analysis.run import open_run

    try:
        return open_run(path)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None


def _open_runs(paths: tuple[Path, ...]) -> list[Any]:
    runs = []
    try:
        for p in paths:
            runs.append(_open_run(p))
    except BaseException:
        for r in runs:
            r.close()
        raise
    return runs


def _problem(exc: BaseException) -> click.ClickException:
    """The one-line CLI error for an exception raised while analysing or drawing."""
    from .analysis.plots import PlotDependencyError

    if isinstance(exc, PlotDependencyError):
        return RunProblem(str(exc))
    if isinstance(exc, (KeyError, IndexError, ValueError)):
        return UsageProblem(str(exc.args[0]) if exc.args else repr(exc))
    if isinstance(exc, TumorcaError):
        return UsageProblem(str(exc))
    if isinstance(exc, OSError):
        what = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return RunProblem(f"{what}{exc.strerror or exc}")
    raise exc


def check_figure_output(path: Path, kinds: tuple[str, ...] | None = None) -> None:
    """Usage errors for a figure/movie/CSV path that cannot be written (an existing file is replaced)."""
    if kinds is not None and path.suffix.lower().lstrip(".") not in kinds:
        raise UsageProblem(f"output {str(path)!r}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
                           + ", ".join("." + k for k in kinds))
    parent = _check_output_place(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageProblem(f"cannot write {str(path)!r}: permission denied")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tumorca-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageProblem(f"cannot write in output directory {str(parent)!r}: {exc.strerror or exc}") from None


def _image_kinds() -> tuple[str, ...]:
    from .analysis.plots import _mpl

    try:
        _mpl()
    except ImportError as exc:
        raise RunProblem(str(exc)) from None
    from matplotlib.backend_bases import FigureCanvasBase
    return tuple(FigureCanvasBase.get_supported_filetypes())


def _frame_progress(quiet: bool, label: str) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A frame progress bar on stderr (None with --quiet) and a function that ends it."""
    if quiet:
        return None, lambda: None
    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
                                             show_eta=True, width=30)
            state["bar"].__enter__()
        state["bar"].update(1)

    def finish() -> None:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)

    return progress, finish


_VIEW_OPTIONS = [
    click.option("--layer", default="composite", show_default=True, metavar="NAME",
                 help="composite (tissue, vessels by perfusion, neutrophils by polarisation), or a layer: tissue, "
                      "perfused, neutrophils, neut_polarization, neut_age, o2, vegf_free, vegf_bound, mmp9, cxcl."),
    click.option("--slice", "slice_", metavar="z=K|y=K|x=K|ortho",
                 help="3-D runs: one slice, or three orthogonal slices through the tumour centre (the default)."),
    click.option("--project", metavar="max|mean[:z|:y|:x]",
                 help="3-D runs: projections along all three axes, or along one (max of the state codes for tissue: "
                      "vessels over necrosis over tumour over stroma)."),
]


def _view_options(f: Callable) -> Callable:
    for opt in reversed(_VIEW_OPTIONS):
        f = opt(f)
    return f


@cli.command(context_settings=CONTEXT)
@click.argument("run_path", metavar="RUN.h5", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Figure to write (.png, .pdf, .svg...).")
@click.option("--frame", type=int, default=-1, show_default=True, help="Frame index (negative: from the last).")
@_view_options
@click.option("--dpi", type=click.IntRange(20, 1200), default=100, show_default=True, help="Resolution.")
def plot(run_path: Path, output: Path, frame: int, layer: str, slice_: str | None, project: str | None,
         dpi: int) -> None:
    """Draw one frame of a run: a composite view, the tissue states, or a layer with its colour bar.

    \b
    Examples:
      tumorca plot wt.h5 -o wt.png
      tumorca plot wt.h5 --layer o2 --frame 3 -o o2.png
      tumorca plot wt3d.h5 --layer tissue --slice z=32 -o z32.png
      tumorca plot wt3d.h5 --project max -o proj.png
    """
    from .analysis import plots

    check_figure_output(output, _image_kinds())
    run_ = _open_run(run_path)
    try:
        with run_:
            if layer not in plots.available_views(run_):
                raise UsageProblem(f"no layer {layer!r} in {str(run_path)!r}; choose one of "
                                   f"{', '.join(plots.available_views(run_))}")
            plots.plot_frame(run_, frame, layer, slice_, project, path=output, dpi=dpi)
    except click.ClickException:
        raise
    except (ImportError, KeyError, IndexError, ValueError, TumorcaError, OSError) as exc:
        raise _problem(exc) from None
    click.echo(f"tumorca: wrote {output}", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("run_path", metavar="RUN.h5", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Movie to write: .mp4 (needs imageio-ffmpeg; a .gif is written instead without it) or .gif.")
@click.option("--fps", type=float, default=10.0, show_default=True, help="Frames per second.")
@click.option("--every", type=click.IntRange(1), default=1, show_default=True, help="Use every K-th frame.")
@_view_options
@click.option("--dpi", type=click.IntRange(20, 600), default=100, show_default=True, help="Resolution.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def movie(run_path: Path, output: Path, fps: float, every: int, layer: str, slice_: str | None,
          project: str | None, dpi: int, quiet: bool) -> None:
    """Make a movie of a run's frames (MP4, or GIF).

    \b
    Examples:
      tumorca movie wt.h5 -o wt.mp4
      tumorca movie wt.h5 -o o2.gif --layer o2 --fps 5
    """
    from .analysis import plots

    if not (fps > 0 and math.isfinite(fps)):
        raise UsageProblem(f"--fps must be positive, got {fps:g}")
    check_figure_output(output, ("mp4", "gif", "mkv", "mov", "avi", "webm"))
    try:
        plots._mpl()
    except ImportError as exc:
        raise RunProblem(str(exc)) from None
    run_ = _open_run(run_path)
    progress, finish = _frame_progress(quiet, "tumorca: movie")
    try:
        with run_:
            if layer not in plots.available_views(run_):
                raise UsageProblem(f"no layer {layer!r} in {str(run_path)!r}; choose one of "
                                   f"{', '.join(plots.available_views(run_))}")
            written = plots.write_movie(run_, output, fps, layer, slice_, project, every=every, dpi=dpi,
                                        progress=progress)
    except click.ClickException:
        raise
    except (ImportError, KeyError, IndexError, ValueError, TumorcaError, OSError) as exc:
        raise _problem(exc) from None
    finally:
        finish()
    if written != output:
        click.echo(f"tumorca: ffmpeg is not available (pip install imageio-ffmpeg): wrote {written} instead of "
                   f"{output}", err=True)
    elif not quiet:
        click.echo(f"tumorca: wrote {written}", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("run_paths", metavar="RUN.h5...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Figure to write.")
@click.option("--by", default="preset", show_default=True,
              help="What makes a group of replicates: preset, seed, name or a parameter name.")
@click.option("--band", type=click.Choice(["minmax", "sd"]), default="minmax", show_default=True,
              help="Band around each group's mean: range of the replicates, or mean ± sd.")
@click.option("--quantity", "quantities", multiple=True, metavar="NAME",
              help="Quantity to plot (repeatable)  [default: tumour_size, vessel_sites, neutrophils]; also "
                   "perfused_sites, necrotic, hypoxic_fraction, mean_polarization.")
@click.option("--dpi", type=click.IntRange(20, 1200), default=100, show_default=True, help="Resolution.")
def curves(run_paths: tuple[Path, ...], output: Path, by: str, band: str, quantities: tuple[str, ...],
           dpi: int) -> None:
    """Plot tumour size, vessels and neutrophils over time, mean and band per group of replicates.

    \b
    Example:
      tumorca curves wt-*.h5 ko-*.h5 -o curves.png --by preset --band sd
    """
    from .analysis import plots

    check_figure_output(output, _image_kinds())
    runs = _open_runs(run_paths)
    try:
        plots.plot_curves(runs, by=by, path=output, band=band, quantities=quantities or plots.DEFAULT_CURVES,
                          dpi=dpi)
    except click.ClickException:
        raise
    except (ImportError, KeyError, IndexError, ValueError, TumorcaError, OSError) as exc:
        raise _problem(exc) from None
    finally:
        for r in runs:
            r.close()
    click.echo(f"tumorca: wrote {output}", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("run_paths", metavar="RUN.h5...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--by", default="preset", show_default=True,
              help="What makes a group of replicates: preset, seed, name or a parameter name.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write the table as CSV instead.")
@click.option("--per-run", is_flag=True, help="One row per run instead of mean ± sd per group.")
def summary(run_paths: tuple[Path, ...], by: str, csv_path: Path | None, per_run: bool) -> None:
    """Compare runs: final and time-integrated measures (tumour size and its AUC, growth rate, vessel density,
    neutrophils...), mean ± sd over the replicates of each group.

    \b
    Examples:
      tumorca summary wt-*.h5 ko-*.h5
      tumorca summary runs/*.h5 --by ifn_level --csv compare.csv
    """
    from .analysis import series

    if csv_path is not None:
        check_figure_output(csv_path, ("csv",))
    runs = _open_runs(run_paths)
    try:
        rows = [series.summarize_run(r, by) for r in runs]
        table = rows if per_run else series.aggregate(rows, list(series.SUMMARY_COLUMNS))
        if csv_path is not None:
            series.save_table(table, csv_path)
        else:
            click.echo(series.format_runs(rows) if per_run else series.format_compare(table))
    except click.ClickException:
        raise
    except (KeyError, IndexError, ValueError, TumorcaError, OSError) as exc:
        raise _problem(exc) from None
    finally:
        for r in runs:
            r.close()
    if csv_path is not None:
        click.echo(f"tumorca: wrote {csv_path}", err=True)


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
                + f", elapsed {_fmt_seconds(ev.elapsed)}, ETA {_fmt_seconds(eta) if left else '0:00'}")
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


@cli.command(context_settings=CONTEXT)
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
    from . import sweep as sw

    if workers is not None and workers < 1:
        raise UsageProblem(f"--workers must be a positive integer, got {workers}")
    if threads_per_run < 1:
        raise UsageProblem(f"--threads-per-run must be a positive integer, got {threads_per_run}")
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
    est = sw.estimate_sweep(runs, output)
    if scheduler is None and est.memory_available is not None and \
            est.run_memory * min(n_workers, max(1, len(todo))) > est.memory_available:
        raise RunProblem(f"{n_workers} workers need about {fmt_bytes(est.run_memory * n_workers)} of memory "
                         f"({fmt_bytes(est.run_memory)} a run) but {fmt_bytes(est.memory_available)} is available; "
                         "use fewer --workers")
    if est.disk_free is not None and est.run_file > est.disk_free:
        raise RunProblem(f"one run file may grow to {fmt_bytes(est.run_file)} before compression but only "
                         f"{fmt_bytes(est.disk_free)} is free for {str(output)!r}")
    _echo(quiet, f"tumorca: {spec.describe()}; {len(runs) - len(todo)} complete, {len(todo)} to run; "
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
        started = True
        driver.close()
        _echo(quiet, f"tumorca: nothing to do: all {len(runs)} runs are complete in {output / sw.RUNS_DIR}")
        return

    import logging

    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    closers: list[Any] = []
    progress = SweepProgress()
    interrupted = started = False
    old_handlers: dict[int, Any] = {}
    try:
        try:
            if scheduler is not None:
                client = sw.connect(scheduler, timeout=connect_timeout)
                closers.append(client)
            else:
                cluster = sw.local_cluster(n_workers)
                closers.append(cluster)
                client = Client(cluster, set_as_default=False)
                closers.insert(0, client)
        except TumorcaError as exc:
            raise RunProblem(str(exc)) from None
        try:
            driver.start()
        except TumorcaError as exc:
            raise UsageProblem(str(exc)) from None
        started = True

        def _term(signum, frame):
            raise KeyboardInterrupt

        try:
            for s_ in (signal.SIGINT, signal.SIGTERM):
                old_handlers[s_] = signal.signal(s_, _term)
        except ValueError:  # not the main thread
            pass
        try:
            driver.execute(client, todo, None if quiet else progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.finish()
    finally:
        for s_, h in old_handlers.items():
            signal.signal(s_, h)
        for obj in closers:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing after an interrupt may race the workers' exit
                pass
        if started:  # with the local workers gone, nothing else can land on disk: record what did, then unlock
            driver.adopt_finished()
            driver.close()
    counts = driver.counts()
    done, failed = counts.get("complete", 0), counts.get("failed", 0)
    again = f"tumorca sweep {shlex.quote(str(sweep_file))} -o {shlex.quote(str(output))} --resume"
    if interrupted:
        click.echo(f"tumorca: interrupted: {done} of {len(runs)} runs complete; continue with: {again}", err=True)
        sys.exit(130)
    if failed:
        raise RunProblem(f"{failed} of {len(runs)} runs failed (errors in {output / sw.MANIFEST_CSV}); "
                         f"{done} complete; rerun the failed ones with: {again}")
    _echo(quiet, f"tumorca: sweep complete: {done} runs in {output / sw.RUNS_DIR}, manifest "
                 f"{output / sw.MANIFEST_CSV}")


@cli.command(context_settings=CONTEXT)
@click.option("--quick", is_flag=True,
              help="Small lattices and 3 replicates (a few minutes); the full suite takes hours on 2 cores.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("validation-runs"), show_default=True,
              help="Directory of the validation sweeps (complete runs found there are kept).")
@click.option("--report", type=click.Path(path_type=Path),
              help="Markdown report to write  [default: docs/validation.md; with --quick OUTPUT/validation-quick.md].")
@click.option("--workers", type=int, help="Worker processes of the local Dask cluster  [default: CPUs].")
@click.option("--fresh", is_flag=True,
              help="Delete this suite's earlier runs in OUTPUT first: regenerate from scratch.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr (errors still show).")
def validate(quick: bool, output: Path, report: Path | None, workers: int | None, fresh: bool, quiet: bool) -> None:
    """Run the validation suite (docs/validation.md): the IFN-beta/neutrophil orderings of MODEL.md §8 with
    replicates and statistics, the analytic physics checks and a one-at-a-time sensitivity table, and write the
    report with its figures.

    \b
    Examples:
      tumorca validate --quick
      tumorca validate --workers 2            # the full suite -> docs/validation.md
    """
    if workers is not None and workers < 1:
        raise UsageProblem(f"--workers must be a positive integer, got {workers}")
    try:
        import distributed  # noqa: F401
        import matplotlib  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise RunProblem(f"tumorca validate needs {exc.name}: pip install 'tumorca[validate]'") from None
    if output.exists() and not output.is_dir():
        raise UsageProblem(f"--output {str(output)!r} exists and is not a directory")
    target = report if report is not None else (output / "validation-quick.md" if quick else Path("docs/validation.md"))
    if report is not None:  # the default report's folder is created by the run
        _check_output_place(target)
    from .validation import run_validation

    try:
        run_validation(output, report, quick=quick, workers=workers, fresh=fresh, command=command_line(),
                       progress=None if quiet else (lambda m: click.echo(f"tumorca: {m}", err=True)))
    except KeyboardInterrupt:
        click.echo("tumorca: interrupted; run the same command again to continue (complete runs are kept)",
                   err=True)
        sys.exit(130)
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    except OSError as exc:
        raise RunProblem(f"cannot write the validation output: {exc}") from None
    except Exception as exc:  # a numerical failure in a check (a fit that does not converge, ...): one line
        raise RunProblem(f"validation failed: {type(exc).__name__}: {exc}") from None
    _echo(quiet, f"tumorca: report written to {target}")


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
    est = sw.estimate_sweep(runs, output)
    todo_runs = [runs[i] for i in todo]
    left = sw.estimate_sweep(todo_runs, output).total_files if todo_runs else 0
    p = runs[0].plan
    click.echo(f"each run: {p.n_frames} frames of {fmt_shape(p.shape)}, memory ~{fmt_bytes(est.run_memory)}, file up "
               f"to {fmt_bytes(est.run_file)} uncompressed")
    free = f"; {fmt_bytes(est.disk_free)} free" if est.disk_free is not None else ""
    click.echo(f"disk: up to {fmt_bytes(left)} before compression for the {len(todo)} runs to do (an upper "
               f"bound){free}")
    if workers is not None:
        avail = f"; {fmt_bytes(est.memory_available)} available" if est.memory_available is not None else ""
        click.echo(f"memory: ~{fmt_bytes(est.run_memory * workers)} with {workers} workers running at once{avail}")
    else:
        click.echo(f"memory: ~{fmt_bytes(est.run_memory)} per run on each worker of the cluster")


def main() -> NoReturn:
    """Entry point of the ``tumorca`` console script."""
    cli.main(prog_name="tumorca")
    raise SystemExit(0)  # pragma: no cover - cli.main always exits


if __name__ == "__main__":
    main()
