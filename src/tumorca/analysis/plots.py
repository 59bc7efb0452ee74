"""Figures and movies of tumorca runs: a frame of one layer or a composite (:func:`plot_frame`), a movie
(:func:`write_movie`) and time courses of groups of replicates (:func:`plot_curves`).

Needs matplotlib (``pip install 'tumorca[plot]'``), imported on first use; movies need imageio, and MP4 needs
imageio-ffmpeg (without it, a GIF is written instead).  Figures are drawn on their own Agg canvas, never through
pyplot, so nothing here changes the user's matplotlib backend or opens windows.

Colours: tissue states and overlays use the Okabe-Ito palette (distinguishable with every common colour-vision
deficiency); fields use viridis-family colour maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .._constants import Cell, Vessel
from . import measures as M
from .._constants import MINUTES_PER_DAY
from .run import Run, as_run

PLOT_HINT = "pip install 'tumorca[plot]'"


class PlotDependencyError(ImportError):
    """matplotlib (or imageio for movies) is not installed."""


def require_matplotlib() -> Any:
    """The matplotlib module; PlotDependencyError (one line, with the install hint) if it is missing."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise PlotDependencyError(f"plotting needs matplotlib: {PLOT_HINT}") from None
    return matplotlib


# -- colours -----------------------------------------------------------------------------------------------------
#: Tissue state -> (colour, label).  Okabe-Ito colours; stroma a light grey so overlays stand out.
TISSUE_STYLE: dict[int, tuple[str, str]] = {
    Cell.EMPTY: ("#EEEEEE", "stroma (empty)"),
    Cell.TUMOR_P: ("#D55E00", "tumour, cycling"),
    Cell.TUMOR_Q: ("#E69F00", "tumour, quiescent"),
    Cell.NECROTIC: ("#3B3B3B", "necrotic"),
}
#: Vessel-layer state -> (colour, label).
VESSEL_STYLE: dict[int, tuple[str, str]] = {
    Vessel.NONE: ("#EEEEEE", "no vessel"),
    Vessel.STALK: ("#0072B2", "vessel (stalk)"),
    Vessel.TIP: ("#CC79A7", "vessel tip"),
}
#: Composite view: the vessel layer drawn over the tissue, split by perfusion; neutrophils by polarisation.
UNPERFUSED = ("#56B4E9", "vessel, not perfused")
PERFUSED = ("#0072B2", "vessel, perfused")
NEUTROPHIL_N1 = ("#009E73", "neutrophil N1 (p < 0.5)")
NEUTROPHIL_N2 = ("#F0E442", "neutrophil N2 (p >= 0.5)")
#: Group colours of curve plots (Okabe-Ito, black last).
GROUP_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: Colour maps of continuous layers (perceptually uniform, colour-blind safe).
FIELD_CMAPS = {"o2": "viridis", "vegf_free": "magma", "vegf_bound": "magma", "mmp9": "cividis", "cxcl": "plasma",
               "neut_polarization": "cividis", "neut_age": "cividis"}
#: Layers drawn as two-state maps with a legend.
BINARY_STYLE = {"perfused": (("#EEEEEE", "not perfused"), ("#0072B2", "perfused vessel")),
                "neutrophils": (("#EEEEEE", "no neutrophil"), ("#009E73", "neutrophil"))}
#: Views besides the layers.
COMPOSITE = "composite"


def _rgb(hexcolor: str) -> tuple[float, float, float]:
    h = hexcolor.lstrip("#")
    return tuple(int(h[k:k + 2], 16) / 255.0 for k in (0, 2, 4))


def tissue_rgb(tissue: np.ndarray, style: dict[int, tuple[str, str]] = TISSUE_STYLE) -> np.ndarray:
    """RGB image (float, ``tissue.shape + (3,)``) of a tissue (or, with ``style=VESSEL_STYLE``, vessel) array in
    the colours of ``style``."""
    lut = np.ones((256, 3))
    for v, (c, _) in style.items():
        lut[int(v)] = _rgb(c)
    return lut[tissue.astype(np.uint8)]


def composite_rgb(tissue: np.ndarray, vessel: np.ndarray | None = None, perfused: np.ndarray | None = None
                  ) -> np.ndarray:
    """RGB image of a 2-D tissue picture with the vessel layer over it (a vessel over tumour is co-opted): stalks
    by perfusion (all in the perfused colour if ``perfused`` is None), tips in their own colour."""
    rgb = tissue_rgb(tissue)
    if vessel is not None:
        ves = vessel == Vessel.STALK
        rgb[ves] = _rgb(VESSEL_STYLE[Vessel.STALK][0])
        if perfused is not None:
            perf = perfused != 0
            rgb[ves & ~perf] = _rgb(UNPERFUSED[0])
            rgb[ves & perf] = _rgb(PERFUSED[0])
        rgb[vessel == Vessel.TIP] = _rgb(VESSEL_STYLE[Vessel.TIP][0])
    return rgb


# -- views of 3-D lattices ---------------------------------------------------------------------------------------
_AXES = ("z", "y", "x")


@dataclass(frozen=True)
class Panel:
    """One 2-D picture of a lattice: a slice (``kind="slice"``, ``index``) or a projection (``kind`` ``max`` or
    ``mean``) along ``axis`` (0 = z, 1 = y, 2 = x)."""

    kind: str
    axis: int
    index: int = 0

    def title(self, dx: float) -> str:
        a = _AXES[self.axis]
        if self.kind == "slice":
            return f"slice {a} = {self.index} ({(self.index + 0.5) * dx:.0f} µm)"
        return f"{self.kind} projection along {a}"

    def axes_names(self) -> tuple[str, str]:
        """Names of the (vertical, horizontal) image axes."""
        rest = [a for k, a in enumerate(_AXES) if k != self.axis]
        return rest[0], rest[1]

    def take(self, a: np.ndarray, how: str = "max") -> np.ndarray:
        """The 2-D picture of a 3-D array (``how``: what a projection does for this layer)."""
        if self.kind == "slice":
            return np.take(a, self.index, axis=self.axis)
        if self.kind == "mean" and how != "max":
            return a.mean(axis=self.axis)
        return a.max(axis=self.axis)


def parse_view(shape: Sequence[int], slice_: str | None = None, project: str | None = None,
               center: Sequence[float] | None = None) -> list[Panel]:
    """Panels for a lattice of ``shape`` given ``--slice`` and ``--project`` texts.

    ``slice_``: ``z=K``, ``y=K``, ``x=K`` or ``ortho`` (three orthogonal slices through ``center``, by default the
    lattice centre); ``project``: ``max`` or ``mean`` (three orthogonal projections) or ``max:z`` etc. (one).  A 2-D
    run has one panel (and accepts ``z=0``); a 3-D run without either option gets ``ortho``.  ValueError for bad
    text or an index outside the lattice.
    """
    shape3 = tuple(shape) if len(shape) == 3 else (1, *shape)
    if slice_ is not None and project is not None:
        raise ValueError("give --slice or --project, not both")
    if len(shape) == 2:
        if project is not None:
            raise ValueError("--project needs a 3-D run (this run is 2-D)")
        if slice_ not in (None, "ortho", "z=0"):
            raise ValueError(f"--slice {slice_}: a 2-D run has only the slice z=0")
        return [Panel("slice", 0, 0)]
    if project is not None:
        how, _, ax = project.partition(":")
        if how not in ("max", "mean"):
            raise ValueError(f"--project must be max or mean (optionally :z, :y or :x), got {project!r}")
        if ax and ax not in _AXES:
            raise ValueError(f"--project {project}: the axis must be z, y or x")
        return [Panel(how, _AXES.index(ax))] if ax else [Panel(how, k) for k in range(3)]
    c = [(n - 1) / 2 for n in shape3] if center is None else list(center)
    if slice_ in (None, "ortho"):
        return [Panel("slice", k, int(round(min(max(c[k], 0), shape3[k] - 1)))) for k in range(3)]
    ax, eq, val = slice_.partition("=")
    ax = ax.strip()
    if not eq or ax not in _AXES:
        raise ValueError(f"--slice must be z=K, y=K, x=K or ortho, got {slice_!r}")
    try:
        k = int(val)
    except ValueError:
        raise ValueError(f"--slice {slice_}: {val!r} is not an integer") from None
    n = shape3[_AXES.index(ax)]
    if not -n <= k < n:
        raise ValueError(f"--slice {slice_} is outside the lattice ({ax} = 0..{n - 1})")
    return [Panel("slice", _AXES.index(ax), k % n)]


# -- drawing -----------------------------------------------------------------------------------------------------
def nice_length(span_um: float) -> float:
    """A round scale-bar length (1, 2 or 5 times a power of ten) of about a fifth of ``span_um``."""
    target = max(span_um / 5.0, 1e-9)
    p = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * p <= target:
            return m * p
    return p


def _length_label(um: float) -> str:
    return f"{um / 1000:g} mm" if um >= 1000 else f"{um:g} µm"


def _scale_bar(ax: Any, width_um: float) -> None:
    from matplotlib.offsetbox import AnchoredOffsetbox, AuxTransformBox, TextArea, VPacker
    from matplotlib.patches import Rectangle

    length = nice_length(width_um)
    box = AuxTransformBox(ax.transData)
    box.add_artist(Rectangle((0, 0), length, 0, linewidth=3, edgecolor="black", facecolor="black"))
    text = TextArea(_length_label(length), textprops={"color": "black", "fontsize": 9})
    pack = VPacker(children=[box, text], align="center", pad=0, sep=3)
    anchored = AnchoredOffsetbox(loc="lower right", child=pack, pad=0.3, borderpad=0.5, frameon=True)
    anchored.patch.set_alpha(0.75)
    anchored.patch.set_edgecolor("none")
    ax.add_artist(anchored)


def _read(run: Run, i: int, layer: str) -> dict[str, np.ndarray]:
    """The layers a view of ``layer`` needs, of frame ``i``, as 3-D arrays (nz, ny, nx)."""
    if layer == COMPOSITE:
        names = [n for n in ("tissue", "vessel", "perfused", "neutrophils", "neut_polarization") if n in run.layers]
        if "tissue" not in names:
            raise KeyError(f"no layer 'tissue' in {str(run.path)!r}; layers present: {', '.join(run.layers)}")
    else:
        names = [layer]
    fr = run.frame(i, names)
    return {k: v.reshape(run.shape3) for k, v in fr.items()}


def available_views(run: Run) -> list[str]:
    """What ``--layer`` accepts for this run: ``composite`` and the layers present."""
    return [COMPOSITE] + run.layers


def _unit_label(units: str) -> str:
    return {"um": "µm", "1": "", "": ""}.get(units, units)


def _layer_label(run: Run, layer: str) -> str:
    view = run.layer(layer)
    u = _unit_label(view.units)
    return f"{view.long_name} ({u})" if u else view.long_name


def lattice_interpolation(ax: Any, shape: Sequence[int]) -> str:
    """How to draw a lattice image of ``shape`` (rows, columns) in ``ax``: nearest neighbour where every site gets
    at least one display pixel (crisp sites), an antialiasing filter where sites outnumber pixels.  Nearest
    sampling of a large lattice keeps one site in several and draws regular structure, such as the capillary
    bed's rows, as moire bands that are not in the data."""
    box = ax.get_window_extent()
    return "nearest" if shape[0] <= box.height and shape[1] <= box.width else "antialiased"


def draw_frame(fig: Any, run: Run, i: int, layer: str = COMPOSITE, panels: Sequence[Panel] | None = None,
               vrange: tuple[float, float] | None = None, title: str | None = None) -> None:
    """Draw frame ``i`` of ``layer`` (or the composite) into the matplotlib Figure ``fig`` (cleared first).

    ``panels``: from :func:`parse_view` (default: one panel for 2-D, orthogonal slices through the tumour centre
    for 3-D).  ``vrange``: fixed colour range of a field (a movie keeps one range for every frame).
    """
    from matplotlib.patches import Patch

    k = run.frame_index(i)
    data = _read(run, k, layer)
    if panels is None:
        center = M.centroid(data["tissue"]) if "tissue" in data else None
        panels = parse_view(run.shape, center=center)
    fig.clear()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    dx = run.dx
    handles: list[Any] = []
    im = None
    for ax, p in zip(axes, panels):
        if layer == COMPOSITE:
            tissue = p.take(data["tissue"])
            rgb = composite_rgb(tissue, p.take(data["vessel"]) if "vessel" in data else None,
                                p.take(data["perfused"]) if "vessel" in data and "perfused" in data else None)
            ax.imshow(rgb, origin="lower", interpolation=lattice_interpolation(ax, rgb.shape),
                      extent=(0, rgb.shape[1] * dx, 0, rgb.shape[0] * dx))
            if "neutrophils" in data:
                pres = data["neutrophils"] != 0
                pol = np.where(pres, data.get("neut_polarization", np.zeros(pres.shape, np.float32)), -1.0)
                here = p.take(pres.astype(np.uint8)) != 0
                polv = p.take(pol.astype(np.float32), "max")
                yy, xx = np.nonzero(here)
                n1 = polv[yy, xx] < 0.5
                size = max(4.0, min(40.0, (fig.get_figwidth() * 72 / len(panels) / max(tissue.shape)) ** 2))
                for sel, (c, _) in ((n1, NEUTROPHIL_N1), (~n1, NEUTROPHIL_N2)):
                    ax.scatter((xx[sel] + 0.5) * dx, (yy[sel] + 0.5) * dx, s=size, c=c, edgecolors="black",
                               linewidths=0.4, marker="o", zorder=3)
        elif layer in BINARY_STYLE or layer in ("tissue", "vessel"):
            a = p.take(data[layer])
            if layer in ("tissue", "vessel"):
                rgb = tissue_rgb(a, TISSUE_STYLE if layer == "tissue" else VESSEL_STYLE)
            else:
                (c0, _), (c1, _) = BINARY_STYLE[layer]
                rgb = np.where((a != 0)[..., None], np.array(_rgb(c1)), np.array(_rgb(c0)))
            ax.imshow(rgb, origin="lower", interpolation=lattice_interpolation(ax, a.shape),
                      extent=(0, a.shape[1] * dx, 0, a.shape[0] * dx))
        else:
            how = "max" if layer in ("neut_polarization", "neut_age") else "mean"
            a = p.take(data[layer], how).astype(np.float64)
            if layer == "neut_polarization" and "neutrophils" in run.layers:
                pres = p.take(run.frame(k, ["neutrophils"])["neutrophils"].reshape(run.shape3))
                a = np.ma.masked_where(pres == 0, a)
            vmin, vmax = vrange if vrange is not None else (float(np.nanmin(a)), float(np.nanmax(a)))
            if layer == "neut_polarization":
                vmin, vmax = 0.0, 1.0
            if vmax <= vmin:
                vmax = vmin + 1.0
            im = ax.imshow(a, origin="lower", interpolation=lattice_interpolation(ax, a.shape),
                           cmap=FIELD_CMAPS.get(layer, "viridis"),
                           vmin=vmin, vmax=vmax, extent=(0, a.shape[1] * dx, 0, a.shape[0] * dx))
            ax.set_facecolor(TISSUE_STYLE[Cell.EMPTY][0])
        vert, horiz = p.axes_names()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(horiz)
        ax.set_ylabel(vert)
        if run.ndim == 3:
            ax.set_title(p.title(dx), fontsize=9)
        _scale_bar(ax, ax.get_xlim()[1] - ax.get_xlim()[0])
    if layer == COMPOSITE:
        handles = [Patch(facecolor=TISSUE_STYLE[c][0], edgecolor="0.5", label=TISSUE_STYLE[c][1])
                   for c in (Cell.EMPTY, Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC)]
        if "perfused" in data:
            handles += [Patch(facecolor=PERFUSED[0], label=PERFUSED[1]),
                        Patch(facecolor=UNPERFUSED[0], label=UNPERFUSED[1])]
        else:
            handles.append(Patch(facecolor=VESSEL_STYLE[Vessel.STALK][0], label=VESSEL_STYLE[Vessel.STALK][1]))
        handles.append(Patch(facecolor=VESSEL_STYLE[Vessel.TIP][0], label=VESSEL_STYLE[Vessel.TIP][1]))
        if "neutrophils" in data:
            from matplotlib.lines import Line2D
            handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor=c, markeredgecolor="black",
                               label=lab) for c, lab in (NEUTROPHIL_N1, NEUTROPHIL_N2)]
    elif layer in ("tissue", "vessel"):
        style = TISSUE_STYLE if layer == "tissue" else VESSEL_STYLE
        handles = [Patch(facecolor=c, edgecolor="0.5", label=lab) for c, lab in style.values()]
    elif layer in BINARY_STYLE:
        handles = [Patch(facecolor=c, edgecolor="0.5", label=lab) for c, lab in BINARY_STYLE[layer]]
    if handles:
        axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                        borderaxespad=0.0)
    elif im is not None:
        cb = fig.colorbar(im, ax=list(axes), shrink=0.85, pad=0.02)
        cb.set_label(_layer_label(run, layer))
    day = float(run.times[k]) / MINUTES_PER_DAY
    what = "composite: tissue, vessels, neutrophils" if layer == COMPOSITE else layer
    head = title if title is not None else (
        f"{run.name} ({run.preset or 'no preset'}, seed {run.seed}): {what}\n"
        f"day {day:.2f} (step {int(run.steps[k])}, frame {k + 1}/{run.n_frames})")
    fig.suptitle(head, fontsize=10)


def _figure(n_panels: int, legend: bool, width_in: float | None = None, dpi: int = 100) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w = width_in if width_in is not None else 4.2 * n_panels + (2.6 if legend else 1.4)
    fig = Figure(figsize=(w, 4.8), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_layer(run: Run, layer: str) -> None:
    if layer != COMPOSITE and layer not in run.layers:
        raise KeyError(f"no layer {layer!r} in {str(run.path)!r}; choose composite or a layer present: "
                       f"{', '.join(run.layers)}")


def _panels_for(run: Run, i: int, slice_: str | None, project: str | None) -> list[Panel]:
    center = None
    if run.ndim == 3 and slice_ in (None, "ortho") and project is None and "tissue" in run.layers:
        center = M.centroid(run.frame(i, ["tissue"])["tissue"])
    return parse_view(run.shape, slice_, project, center)


def plot_frame(run: Run | str | Path, frame: int = -1, layer: str = COMPOSITE, slice_: str | None = None,
               project: str | None = None, path: str | Path | None = None, dpi: int = 100) -> Any:
    """A figure of one frame: the composite (tissue, vessels by perfusion, neutrophils by polarisation), the
    tissue states, a two-state layer, or a field with its colour bar; scale bar in µm, time in days in the title.

    3-D runs: ``slice_`` (``z=K``/``y=K``/``x=K``/``ortho``) or ``project`` (``max``, ``mean``, ``max:z``...); by
    default three orthogonal slices through the tumour centroid.  Saves to ``path`` if given (format from its
    suffix) and returns the matplotlib Figure.
    """
    r, mine = as_run(run)
    try:
        _check_layer(r, layer)
        k = r.frame_index(frame)
        panels = _panels_for(r, k, slice_, project)
        legend = layer in (COMPOSITE, "tissue") or layer in BINARY_STYLE
        fig = _figure(len(panels), legend, dpi=dpi)
        draw_frame(fig, r, k, layer, panels)
        if path is not None:
            fig.savefig(path, dpi=dpi)
        return fig
    finally:
        if mine:
            r.close()


# -- movies ------------------------------------------------------------------------------------------------------
def ffmpeg_available() -> bool:
    """Whether imageio can write MP4 (imageio-ffmpeg and its ffmpeg binary are there)."""
    try:
        import imageio_ffmpeg
        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except Exception:  # noqa: BLE001 - ImportError, RuntimeError (no binary)...
        return False


def _canvas_rgb(fig: Any, block: int) -> np.ndarray:
    fig.canvas.draw()
    a = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    h, w = a.shape[:2]
    ph, pw = (-h) % block, (-w) % block
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw), (0, 0)), constant_values=255)
    return np.ascontiguousarray(a)


def write_movie(run: Run | str | Path, path: str | Path, fps: float = 10.0, layer: str = COMPOSITE,
                slice_: str | None = None, project: str | None = None, every: int = 1, dpi: int = 100,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """A movie of every ``every``-th frame on disk: MP4 (H.264) through imageio-ffmpeg, or a GIF if ``path`` ends
    in ``.gif`` or ffmpeg is not available (then written beside ``path`` with the suffix ``.gif``).

    Frames are drawn and written one at a time (a GIF is kept until the end by its encoder); fields keep one colour
    range over the whole movie.  ``progress(done, total)`` after each frame.  Returns the path written.
    """
    require_matplotlib()
    try:
        import imageio.v2 as iio
    except ImportError:
        raise PlotDependencyError(f"movies need imageio: {PLOT_HINT}") from None
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be positive, got {fps:g}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    out = Path(path)
    gif = out.suffix.lower() == ".gif" or not ffmpeg_available()
    if gif and out.suffix.lower() != ".gif":
        out = out.with_suffix(".gif")
    r, mine = as_run(run)
    try:
        _check_layer(r, layer)
        n = r.n_frames
        if n == 0:
            raise IndexError(f"{str(r.path)!r} has no frame on disk yet")
        idx = list(range(0, n, every))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        panels = _panels_for(r, n - 1, slice_, project)
        vrange = None
        if layer != COMPOSITE and layer not in BINARY_STYLE and layer != "tissue":
            vrange = r.layer(layer).range()
        legend = layer in (COMPOSITE, "tissue") or layer in BINARY_STYLE
        fig = _figure(len(panels), legend, dpi=dpi)
        if gif:
            writer = iio.get_writer(out, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = iio.get_writer(out, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=7,
                                    pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error")
        try:
            for done, k in enumerate(idx, 1):
                draw_frame(fig, r, k, layer, panels, vrange)
                writer.append_data(_canvas_rgb(fig, 2 if gif else 16))
                if progress is not None:
                    progress(done, len(idx))
        finally:
            writer.close()
        return out
    finally:
        if mine:
            r.close()


# -- curves ------------------------------------------------------------------------------------------------------
#: Quantities of :func:`plot_curves`: name -> (label, function of (time series, run) -> array or None).
def _size_series(ts: dict[str, np.ndarray], run: Run) -> np.ndarray | None:
    from .series import tumour_sites_series
    s = tumour_sites_series(ts)
    return None if s is None else s * (run.dx / 1000.0) ** run.ndim


CURVES: dict[str, tuple[str, Callable[[dict[str, np.ndarray], Run], np.ndarray | None]]] = {
    "tumour_size": ("tumour size (mm², 3-D: mm³)", _size_series),
    "vessel_sites": ("vessel sites", lambda ts, r: ts.get("vessel_sites")),
    "perfused_sites": ("perfused vessel sites", lambda ts, r: ts.get("perfused_sites")),
    "neutrophils": ("neutrophils (cells)", lambda ts, r: ts.get("neutrophils")),
    "necrotic": ("necrotic sites", lambda ts, r: ts.get("necrotic")),
    "hypoxic_fraction": ("hypoxic fraction of live tumour", lambda ts, r: ts.get("hypoxic_fraction")),
    "mean_polarization": ("mean neutrophil polarisation (0 N1 .. 1 N2)", lambda ts, r: ts.get("mean_polarization")),
}
DEFAULT_CURVES = ("tumour_size", "vessel_sites", "neutrophils")


def curve_groups(runs: Iterable[Run | str | Path], by: str = "preset",
                 quantities: Sequence[str] = DEFAULT_CURVES) -> dict[Any, dict[str, Any]]:
    """Time courses of ``quantities`` per group of runs (from the per-step time series).

    Returns ``{group: {"n": runs, "time_days": grid, q: (n, len(grid)) array for each quantity}}``; each group's
    replicates are interpolated onto the time grid of its longest run, cut at the end of its shortest.
    """
    bad = [q for q in quantities if q not in CURVES]
    if bad:
        raise KeyError(f"unknown quantity {bad[0]!r}; quantities are {', '.join(CURVES)}")
    raw: dict[Any, list[tuple[np.ndarray, dict[str, np.ndarray | None]]]] = {}
    ndims: dict[Any, set[int]] = {}
    for item in runs:
        r, mine = as_run(item)
        try:
            g = r.value(by)
            ts = r.timeseries()
            vals = {q: (None if (v := CURVES[q][1](ts, r)) is None else np.asarray(v, np.float64))
                    for q in quantities}
            g = g if isinstance(g, (str, int, float)) else str(g)
            raw.setdefault(g, []).append((ts["time_days"], vals))
            ndims.setdefault(g, set()).add(r.ndim)
        finally:
            if mine:
                r.close()
    out: dict[Any, dict[str, Any]] = {}
    for g, reps in raw.items():
        # The span every replicate covers: a branch starts where its parent's state was taken, not at day 0, and
        # np.interp would extend its first value back to day 0.
        t_end = min(t[-1] if t.size else 0.0 for t, _ in reps)
        t_start = max(t[0] if t.size else 0.0 for t, _ in reps)
        longest = max(reps, key=lambda tv: tv[0].size)[0]
        grid = longest[(longest >= t_start - 1e-12) & (longest <= t_end + 1e-12)] if longest.size else longest
        rec: dict[str, Any] = {"n": len(reps), "time_days": grid, "ndim": sorted(ndims[g])}
        for q in quantities:
            rows = [np.interp(grid, t, v) for t, vs in reps if (v := vs[q]) is not None and t.size]
            rec[q] = np.vstack(rows) if rows else np.full((0, grid.size), np.nan)
        out[g] = rec
    return out


def plot_curves(runs: Iterable[Run | str | Path], by: str = "preset", path: str | Path | None = None,
                band: str = "minmax", quantities: Sequence[str] = DEFAULT_CURVES, dpi: int = 100,
                show_replicates: bool = True) -> Any:
    """Time courses per group of replicates: the mean as a line and a band (``minmax``: range of the replicates,
    ``sd``: mean ± sample standard deviation), thin lines for each replicate, one panel per quantity (default:
    tumour size, vessel sites, neutrophils).  Saves to ``path`` if given; returns the Figure."""
    if band not in ("minmax", "sd"):
        raise ValueError(f"band must be minmax or sd, got {band!r}")
    groups = curve_groups(runs, by, quantities)
    fig = _figure(len(quantities), False, width_in=4.4 * len(quantities) + 0.6, dpi=dpi)
    fig.set_figheight(4.4)
    axes = fig.subplots(1, len(quantities), squeeze=False)[0]
    for gi, (g, rec) in enumerate(groups.items()):
        color = GROUP_COLORS[gi % len(GROUP_COLORS)]
        t = rec["time_days"]
        for ax, q in zip(axes, quantities):
            y = rec[q]
            if y.shape[0] == 0:
                continue
            mean = y.mean(axis=0)
            if band == "minmax":
                lo, hi = y.min(axis=0), y.max(axis=0)
            else:
                sd = y.std(axis=0, ddof=1) if y.shape[0] > 1 else np.zeros_like(mean)
                lo, hi = mean - sd, mean + sd
            if show_replicates and y.shape[0] > 1:
                for row in y:
                    ax.plot(t, row, color=color, linewidth=0.5, alpha=0.5)
            ax.fill_between(t, lo, hi, color=color, alpha=0.25, linewidth=0)
            ax.plot(t, mean, color=color, linewidth=2, label=f"{g} (n={rec['n']})")
    band_text = "band: min-max of replicates" if band == "minmax" else "band: mean ± sd"
    dims = {d for rec in groups.values() for d in rec["ndim"]}
    for ax, q in zip(axes, quantities):
        ax.set_xlabel("time (days)")
        label = CURVES[q][0]
        if q == "tumour_size" and len(dims) == 1:
            label = "tumour area (mm²)" if dims == {2} else "tumour volume (mm³)"
        ax.set_ylabel(label)
        ax.set_title(q.replace("_", " "), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title=f"{by}; line: mean, {band_text}", title_fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


__all__ = ["plot_frame", "draw_frame", "write_movie", "plot_curves", "curve_groups", "parse_view", "Panel",
           "tissue_rgb", "ffmpeg_available", "available_views", "PlotDependencyError", "TISSUE_STYLE", "VESSEL_STYLE", "CURVES",
           "DEFAULT_CURVES", "COMPOSITE", "lattice_interpolation"]
