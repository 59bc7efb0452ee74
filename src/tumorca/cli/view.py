"""``tumorca plot``, ``movie``, ``curves`` and ``summary``: figures, movies and tables of run files
(docs/analysis.md), drawn by :mod:`tumorca.analysis`."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import TumorcaError
from ._common import CONTEXT, RunProblem, UsageProblem, check_figure_output


# -- analysis: plot, movie, curves, summary ----------------------------------------------------------------------
def _open_run(path: Path) -> Any:
    """A :class:`tumorca.analysis.Run`; UsageProblem (one line) if it is not a readable tumorca run file."""
    from ..analysis.run import open_run

    try:
        run = open_run(path)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    damage = run.reader.truncation()
    if damage:  # its end is gone: frames and measures near it would be garbage or unreadable
        run.close()
        raise UsageProblem(f"{str(path)!r} is damaged: {damage}")
    return run


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
    from ..analysis.plots import PlotDependencyError

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


def _image_kinds() -> tuple[str, ...]:
    from ..analysis.plots import require_matplotlib

    try:
        require_matplotlib()
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


@click.command(context_settings=CONTEXT)
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
    from ..analysis import plots

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


@click.command(context_settings=CONTEXT)
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
    from ..analysis import plots

    if not (fps > 0 and math.isfinite(fps)):
        raise UsageProblem(f"--fps must be positive, got {fps:g}")
    check_figure_output(output, ("mp4", "gif", "mkv", "mov", "avi", "webm"))
    try:
        plots.require_matplotlib()
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


@click.command(context_settings=CONTEXT)
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
    from ..analysis import plots

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


@click.command(context_settings=CONTEXT)
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
    from ..analysis import series

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

