"""What the ``tumorca`` commands share: the one-line errors and the group that prints them, the option parsers,
the output-path checks, progress on stderr and the signal handling of a run.

Errors are one line on stderr, ``tumorca: error: ...``; exit status 2 for usage errors (bad options, names,
values, paths, or a file that cannot be resumed), 1 for run errors (not enough memory or disk, a failed write),
130 after SIGINT/SIGTERM.
"""
from __future__ import annotations

import difflib
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from .. import presets
from .._constants import FIELD_NAMES
from ..errors import TumorcaError
from ..params import Params, tomllib

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UsageProblem(click.UsageError):
    """A usage error raised by tumorca's own checks (exit 2)."""


class RunProblem(click.ClickException):
    """A run error (exit 1)."""

    exit_code = 1


def one_line(text: str) -> str:
    return " ".join(str(text).split())


_ARGS: list[str] = []

#: Environment variables in which MPI launchers (MPICH/Intel MPI hydra and PMI-2 srun, Open MPI, MVAPICH) give the
#: world size and this process's rank: read without importing mpi4py, so a serial run never initialises MPI.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


#: The largest step count, interval or seed-like integer an option takes (run files store them as int64).
MAX_COUNT = 2 ** 63 - 1
#: Engine threads per process, at most this many times the CPUs available: more only slows a run down (OpenMP teams
#: of thousands of threads on a few cores made a 3-step run take minutes).
THREADS_PER_CPU = 4


def cpus_available() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None, option: str = "--threads") -> None:
    """UsageProblem unless ``threads`` is None or between 1 and :data:`THREADS_PER_CPU` times the CPUs."""
    if threads is None:
        return
    if threads < 1:
        raise UsageProblem(f"{option} must be a positive integer, got {threads}")
    most = THREADS_PER_CPU * cpus_available()
    if threads > most:
        raise UsageProblem(f"{option} must be at most {most} ({THREADS_PER_CPU} per CPU available), got {threads}")


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


def speaks() -> bool:
    """Whether this process reports errors: always, except ranks other than 0 of an MPI job."""
    return launcher_size() <= 1 or launcher_rank() == 0


def command_line() -> str:
    """The ``tumorca ...`` command being run, shell-quoted (recorded as provenance)."""
    # A file name that is not UTF-8 reaches Python as lone surrogates, which HDF5 strings cannot hold: its bytes
    # are recorded as \xNN escapes.
    text = shlex.join(["tumorca"] + _ARGS)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
            if speaks():
                click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "tumorca"
            if speaks():  # under MPI every rank finds the same error; rank 0 says it
                click.echo(f"tumorca: error: {one_line(exc.format_message())} (see '{where} -h')", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            if speaks():
                click.echo(f"tumorca: error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if speaks():
                click.echo("tumorca: aborted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


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
    except RecursionError:
        raise UsageProblem(f"--set {key}: the value is nested too deeply") from None
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


def build_params(preset: str | None, config: Path | None, sets: tuple[str, ...], base: Params | None = None
                 ) -> Params:
    """Parameters by precedence: ``base`` (default: the defaults) < the preset's changes < config file < ``--set``
    (a branch's base is its parent's parameters)."""
    try:
        params = base if base is not None else Params()
        if preset:
            params = params.replace(**presets.changes(preset))
        if config is not None:
            params = Params.from_toml(config, base=params)
        if sets:
            params = params.replace(**dict(parse_set(s) for s in sets))
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    return params


def check_output_path(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Usage errors for an output path that cannot be used; writes nothing the user can see."""
    if path.suffix == ".xdmf" or path.name.endswith(".ckpt.h5") or path.name.endswith(".ranks"):
        raise UsageProblem(f"output {str(path)!r} would collide with a sidecar file name (.xdmf, .ckpt.h5, .ranks)")
    parent = check_output_place(path)
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
def fmt_seconds(s: float) -> str:
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
                              f"{rate:7.1f} steps/s ETA {fmt_seconds(eta)} ")
            self.stream.flush()
            self._last_draw = now
            self._drawn = True
        else:
            done = 100.0 * (step - first) / max(1, total - first)
            if done + 1e-9 >= self._next or step == total:
                self.stream.write(f"tumorca: step {step}/{total} ({pct:.0f}%), {rate:.1f} steps/s, "
                                  f"ETA {fmt_seconds(eta)}\n")
                self.stream.flush()
                while self._next <= done + 1e-9:
                    self._next += self.every

    def finish(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current step (a second one exits at once: the file stays
    readable to its last flushed frame, like after kill -9).

    A run that does not get there -- a step that hangs, e.g. an MPI rank waiting for a partner that died -- would
    otherwise ignore the signal for ever: if it has not stopped ``grace`` seconds after the signal (at least
    :attr:`GRACE_MIN`, and 20 times the longest gap between two polls seen), the process exits with status 130.
    """

    #: Seconds a signalled run has to stop (see the class docstring).
    GRACE_MIN = 120.0

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._last_poll: float | None = None
        self._max_gap = 0.0

    def __enter__(self) -> "StopOnSignal":
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
        import threading

        grace = max(self.GRACE_MIN, 20.0 * self._max_gap)
        threading.Thread(target=self._watchdog, args=(time.monotonic() + grace, grace), daemon=True).start()

    @staticmethod
    def _watchdog(deadline: float, grace: float) -> None:
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        os.write(2, f"tumorca: error: the run did not stop within {grace:g} s of the signal (a step hangs); "
                    "exiting without a checkpoint\n".encode())
        os._exit(130)

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._last_poll is not None:
            self._max_gap = max(self._max_gap, now - self._last_poll)
        self._last_poll = now
        return self.signum is not None

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def echo(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text, err=True)




def check_output_place(path: Path) -> Path:
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



def check_figure_output(path: Path, kinds: tuple[str, ...] | None = None) -> None:
    """Usage errors for a figure/movie/CSV path that cannot be written (an existing file is replaced)."""
    if kinds is not None and path.suffix.lower().lstrip(".") not in kinds:
        raise UsageProblem(f"output {str(path)!r}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
                           + ", ".join("." + k for k in kinds))
    parent = check_output_place(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageProblem(f"cannot write {str(path)!r}: permission denied")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tumorca-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageProblem(f"cannot write in output directory {str(parent)!r}: {exc.strerror or exc}") from None

