"""Initial conditions from files: HDF5, ``.npz``, PNG and TIFF to the arrays of ``Simulation.from_arrays``.

The formats, the colour and label map, the resampling rule and the checks are in docs/initial-conditions.md.
This is the I/O layer: the engine (tumorca.initial, tumorca.simulation) knows no file format.  imageio and
tifffile (the ``images`` extra) are imported only when an image is read, so the core install stays lean.
"""
from __future__ import annotations

import hashlib
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._constants import FIELD_NAMES, Cell, Vessel
from .._lattice import available_memory, fmt_bytes
from ..errors import InitialDataError, TumorcaError
from ..initial import check_arrays
from ..params import PARAMETERS

__all__ = ["InitialData", "load_initial", "IMAGE_CLASSES", "resample", "InitialDataError"]

#: Suffixes of each format (case-insensitive).
HDF5_SUFFIXES = (".h5", ".hdf5")
NPZ_SUFFIXES = (".npz",)
PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")
#: Arrays a data file may hold besides the fields (FIELD_NAMES), and the optional pixel size.
LAYER_NAMES = ("tissue", "vessel", "inlet")
PIXEL_SIZE_NAME = "pixel_size_um"
#: The lattice spacing assumed when none is given: the parameter's default.
DEFAULT_DX_UM = next(s.default for s in PARAMETERS if s.name == "dx_um")
INSTALL_HINT = "pip install 'tumorca[images]'"


class ImageClass(NamedTuple):
    """One entry of the image map: a label code, the tissue and vessel states it stands for, its colour in an RGB
    drawing (None: label images only) and what it means."""

    label: int
    tissue: Cell
    vessel: Vessel
    rgb: tuple[int, int, int] | None
    meaning: str


#: The one map of images (docs/initial-conditions.md prints it): a label image holds ``label`` = tissue + 4 *
#: vessel (every combination), an RGB(A) drawing holds the exact colours.  Colours are pure and far apart, so a
#: drawing made in any paint program with anti-aliasing off maps exactly; anything else is an error, not a guess.
IMAGE_CLASSES: tuple[ImageClass, ...] = (
    ImageClass(0, Cell.EMPTY, Vessel.NONE, (255, 255, 255), "host tissue (white)"),
    ImageClass(1, Cell.TUMOR_P, Vessel.NONE, (255, 0, 0), "proliferating tumour (red)"),
    ImageClass(2, Cell.TUMOR_Q, Vessel.NONE, (128, 0, 0), "quiescent tumour (dark red)"),
    ImageClass(3, Cell.NECROTIC, Vessel.NONE, (0, 0, 0), "necrotic tumour (black)"),
    ImageClass(4, Cell.EMPTY, Vessel.STALK, (0, 0, 255), "vessel in host tissue (blue)"),
    ImageClass(5, Cell.TUMOR_P, Vessel.STALK, (255, 0, 255), "vessel inside proliferating tumour (magenta)"),
    ImageClass(6, Cell.TUMOR_Q, Vessel.STALK, (128, 0, 128), "vessel inside quiescent tumour (purple)"),
    ImageClass(7, Cell.NECROTIC, Vessel.STALK, None, "vessel inside necrotic tumour"),
    ImageClass(8, Cell.EMPTY, Vessel.TIP, (0, 255, 255), "sprout tip in host tissue (cyan)"),
    ImageClass(9, Cell.TUMOR_P, Vessel.TIP, None, "sprout tip inside proliferating tumour"),
    ImageClass(10, Cell.TUMOR_Q, Vessel.TIP, None, "sprout tip inside quiescent tumour"),
    ImageClass(11, Cell.NECROTIC, Vessel.TIP, None, "sprout tip inside necrotic tumour"),
)


@dataclass(frozen=True, eq=False)
class InitialData:
    """Arrays of an initial condition read from a file, on the lattice spacing, with where they came from.

    Attributes
    ----------
    tissue, vessel : numpy.ndarray
        uint8 :class:`tumorca.Cell` and :class:`tumorca.Vessel` codes, ``(ny, nx)`` or ``(nz, ny, nx)``.
    inlet : numpy.ndarray or None
        uint8 inlet codes (0, 1 arterial, 2 venous) if the file gave them; None lets the engine derive them.
    fields : dict of str to numpy.ndarray
        float32 starting fields the file gave (names from :data:`tumorca.FIELD_NAMES`).
    source : str
        The file name as given.
    sha256 : str
        Hex SHA-256 of the file's bytes (a run file records it with ``source``).
    pixel_size_um : float or None
        The source's pixel size (from the file or the caller); None if unknown (then one pixel is one site).
    resampled_from : tuple of int or None
        The source's shape if it was resampled to the lattice spacing, else None.
    """

    tissue: np.ndarray
    vessel: np.ndarray
    inlet: np.ndarray | None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    sha256: str = ""
    pixel_size_um: float | None = None
    resampled_from: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The lattice shape: ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(self.tissue.shape)

    def arrays(self) -> dict[str, Any]:
        """Keyword arguments of ``Simulation.from_arrays`` (and ``tumorca.initial.state_from_arrays``):
        ``tissue``, ``vessel``, ``inlet`` and ``fields``."""
        return {"tissue": self.tissue, "vessel": self.vessel, "inlet": self.inlet, "fields": dict(self.fields)}


# -- the reader ---------------------------------------------------------------------------------------------------

def load_initial(path: str | Path, *, pixel_size_um: float | None = None, dx_um: float | None = None,
                 ndim: int | None = None) -> InitialData:
    """Read an initial condition (docs/initial-conditions.md) and resample it to the lattice spacing.

    Parameters
    ----------
    path : str or Path
        ``.h5``/``.hdf5`` or ``.npz`` (arrays ``tissue``, optional ``vessel``, ``inlet`` and fields), ``.png``
        (an RGB(A) drawing in the colours of :data:`IMAGE_CLASSES`, or a single-channel label image) or
        ``.tif``/``.tiff`` (the same; several pages are a 3D stack, page = z).
    pixel_size_um : float, optional
        Edge of one source pixel in micrometres.  An HDF5/npz file may hold it as ``pixel_size_um``; giving a
        different value here is an error.  Unknown (neither given): one pixel is one lattice site.
    dx_um : float, optional
        The lattice spacing (``params.dx_um``; default the parameter's default, 20 um).  A source whose pixel
        size differs is resampled to it (:func:`resample`).
    ndim : int, optional
        2 or 3: require a 2D or 3D source.

    Returns
    -------
    InitialData

    Raises
    ------
    tumorca.errors.InitialDataError
        One line naming the file and the problem: missing or unreadable file, unknown format, missing
        ``tissue``, unknown array name, wrong dtype or dimensions, shapes that differ, unknown label or colour,
        inlet off the vessels, NaN or negative field, bad pixel size, or a missing imaging package.
    """
    source = str(path)
    p = Path(path)

    def fail(msg: str) -> InitialDataError:
        return InitialDataError(f"{source}: {msg}")

    if ndim is not None and ndim not in (2, 3):
        raise fail(f"ndim must be 2 or 3, got {ndim!r}")
    dx = _positive(DEFAULT_DX_UM if dx_um is None else dx_um, "dx_um", fail)
    if pixel_size_um is not None:
        pixel_size_um = _positive(pixel_size_um, "pixel_size_um", fail)
    if not p.is_file():
        raise fail("no such file" if not p.exists() else "not a file")
    suffix = p.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        arrays, stored = _read_hdf5(p, fail)
    elif suffix in NPZ_SUFFIXES:
        arrays, stored = _read_npz(p, fail)
    elif suffix in PNG_SUFFIXES + TIFF_SUFFIXES:
        arrays, stored = _read_image(p, suffix in TIFF_SUFFIXES, fail), None
    else:
        raise fail(f"unknown format {p.suffix!r}: use .h5, .hdf5, .npz, .png, .tif or .tiff")

    if stored is not None:
        stored = _positive(stored, PIXEL_SIZE_NAME, fail)
        if pixel_size_um is not None and not math.isclose(stored, pixel_size_um, rel_tol=1e-9):
            raise fail(f"the file's pixel_size_um = {stored:g} differs from the pixel size given, {pixel_size_um:g}")
        pixel_size_um = stored
    tissue = arrays.pop("tissue")
    if ndim is not None and np.ndim(tissue) != ndim:
        raise fail(f"holds a {np.ndim(tissue)}D lattice, {ndim}D asked")
    fields = {k: arrays.pop(k) for k in list(arrays) if k in FIELD_NAMES}
    try:
        tissue, vessel, inlet, fields = check_arrays(tissue, arrays.get("vessel"), arrays.get("inlet"), fields)
    except TumorcaError as e:
        raise fail(str(e)) from None

    resampled_from = None
    if pixel_size_um is not None and not math.isclose(pixel_size_um, dx, rel_tol=1e-9):
        shape = tissue.shape
        ratio = pixel_size_um / dx
        out = tuple(_site_of_pixel(n, ratio)[0] for n in shape)
        # Sizes are checked before anything is allocated: a pixel size in the wrong unit (nm for um) would
        # otherwise allocate gigabytes, or shrink the drawing to a point.
        where = (f"pixel size {pixel_size_um:g} um on a {dx:g} um lattice resamples {_fmt(shape)} pixels to "
                 f"{_fmt(out)} sites")
        if any(n >= 2 and m < 2 for n, m in zip(shape, out)):
            raise fail(f"{where}: nothing would be left; is the pixel size in micrometres?")
        need = math.prod(out) * LATTICE_BYTES_PER_SITE
        avail = available_memory()
        if avail is not None and need > avail:
            raise fail(f"{where}, which would need about {fmt_bytes(need)} of memory but {fmt_bytes(avail)} is "
                       "available; is the pixel size in micrometres?")
        tissue, vessel, inlet, fields = resample(tissue, vessel, inlet, fields, ratio)
        resampled_from = tuple(shape)
    return InitialData(tissue=tissue, vessel=vessel, inlet=inlet, fields=fields, source=source,
                       sha256=_sha256(p), pixel_size_um=pixel_size_um, resampled_from=resampled_from)


def _positive(value: Any, name: str, fail) -> float:
    try:
        v = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise fail(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise fail(f"{name} must be a positive number, got {v:g}")
    return v


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_names(names: list[str], fail) -> None:
    unknown = sorted(n for n in names if n not in LAYER_NAMES + FIELD_NAMES + (PIXEL_SIZE_NAME,))
    if unknown:
        raise fail(f"unknown array{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; a file holds "
                   f"{', '.join(LAYER_NAMES)}, the fields {', '.join(FIELD_NAMES)} and {PIXEL_SIZE_NAME}")
    if "tissue" not in names:
        raise fail("no 'tissue' array (Cell codes) in the file")


def _read_hdf5(p: Path, fail) -> tuple[dict[str, np.ndarray], Any]:
    import h5py

    try:
        fh = h5py.File(p, "r")
    except OSError:
        raise fail("cannot read it as HDF5 (not an HDF5 file, or damaged)") from None
    with fh:
        names = list(fh.keys())
        _check_names(names, fail)
        arrays = {}
        for name in names:
            obj = fh[name]
            if not isinstance(obj, h5py.Dataset):
                raise fail(f"{name!r} is a group, not an array")
            arrays[name] = obj[()]
        stored = fh.attrs.get(PIXEL_SIZE_NAME)
    if PIXEL_SIZE_NAME in arrays:
        stored = arrays.pop(PIXEL_SIZE_NAME)
    return arrays, stored


def _read_npz(p: Path, fail) -> tuple[dict[str, np.ndarray], Any]:
    if not zipfile.is_zipfile(p):  # np.load would take it for a pickle and say so, which misleads
        raise fail("cannot read it as .npz (not a zip archive)")
    try:
        with np.load(p, allow_pickle=False) as npz:
            names = list(npz.files)
            _check_names(names, fail)
            arrays = {name: npz[name] for name in names}
    except InitialDataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise fail(f"cannot read it as .npz ({_first_line(e)})") from None
    return arrays, arrays.pop(PIXEL_SIZE_NAME, None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _read_image(p: Path, tiff: bool, fail) -> dict[str, np.ndarray]:
    """A PNG or TIFF as ``{"tissue", "vessel"}``: RGB(A) pixels by colour, single-channel pixels by label."""
    if tiff:
        try:
            import tifffile
        except ImportError:
            raise fail(f"reading TIFF needs tifffile: {INSTALL_HINT}") from None
        quiet = logging.getLogger("tifffile")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # tifffile logs what it skips in a damaged file; the error below says it
        try:
            with tifffile.TiffFile(p) as tf:
                if not tf.series:
                    raise fail("cannot read it as TIFF (no image in it)")
                series = tf.series[0]
                img, axes = series.asarray(), series.axes
        except InitialDataError:
            raise
        except Exception as e:  # tifffile raises many types for a bad file; the user needs one line
            raise fail(f"cannot read it as TIFF ({_first_line(e)})") from None
        finally:
            quiet.setLevel(level)
        if "S" in axes:  # colour samples (also stored planar) go last
            img = np.moveaxis(img, axes.index("S"), -1)
            colour = True
        else:
            colour = False
        spatial = img.ndim - (1 if colour else 0)
        if spatial not in (2, 3):
            raise fail(f"image has {spatial} spatial dimensions (axes {axes!r}); use 2 (y, x) or 3 (z, y, x)")
    else:
        try:
            import imageio.v3 as iio
        except ImportError:
            raise fail(f"reading PNG needs imageio: {INSTALL_HINT}") from None
        try:
            img = iio.imread(p, plugin="pillow")  # PNG only: do not let imageio try every other format
        except Exception as e:  # imageio raises many types for a bad file; the user needs one line
            raise fail(f"cannot read it as PNG ({_first_line(e)})") from None
        colour = img.ndim == 3
        if img.ndim not in (2, 3):
            raise fail(f"image has {img.ndim} dimensions; a PNG is (y, x) or (y, x, channels)")
    if colour:
        return _decode_colours(img, fail)
    return _decode_labels(img, fail)


def _count(mask: np.ndarray) -> str:
    n = int(np.count_nonzero(mask))
    return f"{n} pixel{'s' if n != 1 else ''}"


def _first(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), bad.shape))


def _decode_labels(img: np.ndarray, fail) -> dict[str, np.ndarray]:
    if img.dtype.kind not in "iu":
        raise fail(f"a single-channel image must hold integer labels, got dtype {img.dtype}")
    bad = (img < 0) | (img >= len(IMAGE_CLASSES))
    if bad.any():
        value = img.ravel()[int(np.flatnonzero(bad.ravel())[0])]
        raise fail(f"label {value} is not a code 0..{len(IMAGE_CLASSES) - 1} "
                   f"({_count(bad)}, first at {_first(bad)})")
    lab = img.astype(np.int64)
    tissue = np.array([c.tissue for c in IMAGE_CLASSES], dtype=np.uint8)[lab]
    vessel = np.array([c.vessel for c in IMAGE_CLASSES], dtype=np.uint8)[lab]
    return {"tissue": tissue, "vessel": vessel}


def _decode_colours(img: np.ndarray, fail) -> dict[str, np.ndarray]:
    channels = img.shape[-1]
    if channels not in (3, 4):
        raise fail(f"a colour image must be RGB or RGBA, got {channels} channels")
    if img.dtype != np.uint8:
        raise fail(f"a colour image must have 8 bits per channel, got dtype {img.dtype}")
    if channels == 4:
        bad = img[..., 3] != 255
        if bad.any():
            raise fail(f"{_count(bad)} not opaque (alpha < 255), first at {_first(bad)}; a drawing must be opaque")
    rgb = img[..., :3].astype(np.int32)
    key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: c for c in IMAGE_CLASSES if c.rgb is not None for r, g, b in [c.rgb]}
    tissue = np.zeros(key.shape, dtype=np.uint8)
    vessel = np.zeros(key.shape, dtype=np.uint8)
    for k in np.unique(key):
        here = key == k
        c = table.get(int(k))
        if c is None:
            r, g, b = (int(k) >> 16) & 255, (int(k) >> 8) & 255, int(k) & 255
            raise fail(f"colour #{r:02x}{g:02x}{b:02x} (rgb {r}, {g}, {b}) is not in the colour map "
                       f"({_count(here)}, first at {_first(here)}); see docs/initial-conditions.md")
        tissue[here] = c.tissue
        vessel[here] = c.vessel
    return {"tissue": tissue, "vessel": vessel}


# -- resampling -----------------------------------------------------------------------------------------------------

#: A lower bound of the memory a lattice site costs a run (engine state and O2 workspace, about 70 B), for the
#: check of a resampled size before it is allocated (the engine checks its own need exactly afterwards).
LATTICE_BYTES_PER_SITE = 64


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _site_of_pixel(n_in: int, ratio: float) -> tuple[int, np.ndarray]:
    """Number of sites along an axis of ``n_in`` pixels, pixel / site size ``ratio``, and the site each pixel
    belongs to: the one holding the pixel's centre (downsampling) or, upsampling, the pixel each site takes."""
    n_out = max(1, int(round(n_in * ratio)))
    if ratio < 1:
        return n_out, np.minimum(((np.arange(n_in) + 0.5) * ratio).astype(np.int64), n_out - 1)
    return n_out, np.minimum(((np.arange(n_out) + 0.5) / ratio).astype(np.int64), n_in - 1)


def resample(tissue: np.ndarray, vessel: np.ndarray, inlet: np.ndarray | None, fields: dict[str, np.ndarray],
             ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Resample checked arrays (2D or 3D) by ``ratio`` = source pixel size / lattice spacing, the same along
    every axis.  An axis of n pixels becomes round(n * ratio) sites (at least 1).

    Downsampling (ratio < 1): each pixel belongs to the site that holds its centre.
      * vessel: a site is a vessel if any of its pixels is (stalk before tip), so vessels stay connected: pixels
        that touch (Moore) fall in the same or touching sites;
      * tissue: the state most of its pixels hold, a tie going to the higher code (necrotic > quiescent >
        proliferating > host), so that a thin tumour rim is not lost to host tissue at a tie;
      * inlet: arterial if any of its pixels is, else venous if any is;
      * fields: the mean over its pixels (area mean: amounts are kept).
    Upsampling (ratio > 1): every site takes the pixel that holds its centre (nearest).
    """
    shape = tissue.shape
    maps = [_site_of_pixel(n, ratio) for n in shape]
    out = tuple(n for n, _ in maps)
    if ratio > 1:
        grid = np.ix_(*[m for _, m in maps])
        return (tissue[grid], vessel[grid], None if inlet is None else inlet[grid],
                {k: f[grid] for k, f in fields.items()})
    # flat index of the site each pixel falls in
    site = np.zeros(shape, dtype=np.int64)
    for axis, (n, m) in enumerate(maps):
        view = [1] * len(shape)
        view[axis] = len(m)
        site = site * n + m.reshape(view)
    site = site.ravel()
    size = int(np.prod(out))

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(site, weights=mask.ravel().astype(np.float64), minlength=size)

    counts = np.stack([count(tissue == c) for c in Cell])  # (codes, sites)
    # argmax takes the first maximum: search from the highest code so ties go to it
    new_tissue = (len(Cell) - 1 - np.argmax(counts[::-1], axis=0)).astype(np.uint8).reshape(out)
    stalk, tip = count(vessel == Vessel.STALK) > 0, count(vessel == Vessel.TIP) > 0
    new_vessel = np.where(stalk, np.uint8(Vessel.STALK),
                          np.where(tip, np.uint8(Vessel.TIP), np.uint8(Vessel.NONE))).reshape(out)
    new_inlet = None
    if inlet is not None:
        art, ven = count(inlet == 1) > 0, count(inlet == 2) > 0
        new_inlet = np.where(art, np.uint8(1), np.where(ven, np.uint8(2), np.uint8(0))).reshape(out)
    pixels = np.maximum(np.bincount(site, minlength=size), 1).astype(np.float64)  # every site holds a pixel
    new_fields = {k: (np.bincount(site, weights=f.ravel().astype(np.float64), minlength=size) / pixels)
                  .astype(np.float32).reshape(out) for k, f in fields.items()}
    return new_tissue, new_vessel, new_inlet, new_fields
