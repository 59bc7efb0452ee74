"""``tumorca validate``: the validation suite (docs/validation.md), run by :mod:`tumorca.validation`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import TumorcaError
from ._common import CONTEXT, RunProblem, UsageProblem, check_output_place, command_line, echo


@click.command(context_settings=CONTEXT)
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
    """Run the validation suite (docs/validation.md): the IFN-beta/neutrophil orderings of docs/model.md §8 with
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
        check_output_place(target)
    from ..validation import run_validation

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
    echo(quiet, f"tumorca: report written to {target}")
