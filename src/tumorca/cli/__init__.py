"""The ``tumorca`` command line (docs/cli.md, docs/analysis.md, docs/sweeps.md): one module per group of commands.

* :mod:`.run`: ``run`` (new runs, ``--resume``, and the same under MPI: ``mpiexec -n P tumorca run``)
* :mod:`.info`: ``presets``, ``params``, ``inspect``
* :mod:`.bench`: ``bench``
* :mod:`.view`: ``plot``, ``movie``, ``curves``, ``summary``
* :mod:`.sweep`: ``sweep``
* :mod:`.validate`: ``validate``
* :mod:`._common`: what they share (one-line errors, option parsers, output checks, progress, signals)

The commands only parse, validate and report; the work is done by :mod:`tumorca.runner`, :mod:`tumorca.parallel`,
:mod:`tumorca.sweep`, :mod:`tumorca.analysis` and :mod:`tumorca.io`.  Errors are one line on stderr,
``tumorca: error: ...``; exit status 2 for usage errors, 1 for run errors, 130 after SIGINT/SIGTERM.
"""
from __future__ import annotations

from typing import NoReturn

import click

from .. import __version__
from ._common import CONTEXT, Progress, RunProblem, TumorcaGroup, UsageProblem
from .bench import bench_cmd
from .info import inspect, params_cmd, presets_cmd
from .run import run
from .sweep import SweepProgress, sweep
from .validate import validate
from .view import curves, movie, plot, summary


@click.group(cls=TumorcaGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="tumorca", message="%(prog)s %(version)s")
def cli() -> None:
    """tumorca: a lattice cellular automaton of tumour growth, angiogenesis and the IFN-beta/neutrophil axis.

    Start with 'tumorca run -o out.h5', list scenarios with 'tumorca presets' and parameters with
    'tumorca params', look at a run file with 'tumorca inspect out.h5'.
    """


# In the order of the help text (Click lists them sorted by name anyway).
for _command in (run, sweep, presets_cmd, params_cmd, inspect, bench_cmd, plot, movie, curves, summary, validate):
    cli.add_command(_command)


def main() -> NoReturn:
    """Entry point of the ``tumorca`` console script."""
    cli.main(prog_name="tumorca")
    raise SystemExit(0)  # pragma: no cover - cli.main always exits


__all__ = ["cli", "main", "Progress", "SweepProgress", "UsageProblem", "RunProblem"]
