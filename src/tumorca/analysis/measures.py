"""Measures of one frame, each a plain function of NumPy arrays (a frame read from a run file, or a
``Simulation``'s views).  Lengths are in µm given the lattice spacing ``dx_um``; arrays are (ny, nx) or
(nz, ny, nx).  Nothing here needs the compiled engine.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._constants import MINUTES_PER_DAY, Cell, Vessel

_TUMOUR = (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC)
_LIVE = (Cell.TUMOR_P, Cell.TUMOR_Q)
#: Depth of the tumour rim whose perfusion :func:`rim_perfusion` measures: 100 µm, the lower end of the 100-200 µm
#: viable rim of tumour cords around a vessel (Thomlinson & Gray 1955), the O2 supply the proliferating rim lives on.
RIM_UM = 100.0


def tumour_mask(tissue: np.ndarray, include_necrotic: bool = True) -> np.ndarray:
    """Sites holding tumour (cycling, quiescent and, by default, necrotic)."""
    return np.isin(tissue, _TUMOUR if include_necrotic else _LIVE)


def tumour_size(tissue: np.ndarray, dx_um: float) -> dict[str, float]:
    """Tumour sites, their area (2D, µm²) or volume (3D, µm³), and the radius of the disk/ball of that size.

    Returns
    -------
    dict with ``sites``, ``size_um`` (area or volume), ``equivalent_radius_um``.
    """
    n = int(np.count_nonzero(tumour_mask(tissue)))
    if _is_2d(tissue):
        size = n * dx_um ** 2
        radius = math.sqrt(size / math.pi)
    else:
        size = n * dx_um ** 3
        radius = (3 * size / (4 * math.pi)) ** (1 / 3)
    return {"sites": n, "size_um": size, "equivalent_radius_um": radius}


def necrotic_fraction(tissue: np.ndarray) -> float:
    """Necrotic sites over all tumour sites (0 without tumour)."""
    n = np.count_nonzero(tumour_mask(tissue))
    return float(np.count_nonzero(tissue == Cell.NECROTIC) / n) if n else 0.0


def hypoxic_fraction(tissue: np.ndarray, o2: np.ndarray, threshold_mmhg: float = 10.0) -> float:
    """Live tumour sites below ``threshold_mmhg`` over all live tumour sites (0 without live tumour)."""
    live = tumour_mask(tissue, include_necrotic=False)
    n = np.count_nonzero(live)
    return float(np.count_nonzero(o2[live] < threshold_mmhg) / n) if n else 0.0


def tumour_aspect(tissue: np.ndarray) -> float:
    """How round the tumour is: the shortest over the longest principal axis of its sites (the square root of the
    smallest over the largest eigenvalue of their coordinates' covariance).  1 for a disk or a ball, b/a for an
    ellipse or ellipsoid of semi-axes a >= b; nan with fewer than two sites.  Axes one site deep (a 2D lattice
    stored as 1 x ny x nx) are left out.  A lattice artefact shows as a tumour shorter along one lattice axis."""
    mask = tumour_mask(tissue)
    mask = mask.reshape([n for n in mask.shape if n > 1] or [1])
    idx = np.nonzero(mask)
    if mask.ndim < 2 or idx[0].size < 2:
        return float("nan")
    coords = np.stack(idx).astype(np.float64)
    eig = np.linalg.eigvalsh(np.cov(coords))
    return float(math.sqrt(max(eig[0], 0.0) / eig[-1])) if eig[-1] > 0 else float("nan")


def centroid(tissue: np.ndarray) -> tuple[float, ...]:
    """Centre of mass of the tumour in site coordinates (same axis order as the array); the lattice centre if
    there is no tumour."""
    idx = np.nonzero(tumour_mask(tissue))
    if idx[0].size == 0:
        return tuple((n - 1) / 2 for n in tissue.shape)
    return tuple(float(i.mean()) for i in idx)


def _is_2d(a: np.ndarray) -> bool:
    return a.ndim == 2 or (a.ndim == 3 and a.shape[0] == 1)


def _distance(shape: tuple[int, ...], center: tuple[float, ...]) -> np.ndarray:
    grids = np.indices(shape, dtype=np.float64)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, center)))


def vessel_density(tissue: np.ndarray, vessel: np.ndarray, perfused: np.ndarray | None, dx_um: float,
                   margin_um: float = 200.0) -> dict[str, float]:
    """Vessel sites (of the ``vessel`` layer) per mm² (2D) or mm³ (3D) inside the tumour and in a shell
    ``margin_um`` thick around it (sites within the tumour's equivalent radius + margin of its centroid), and the
    perfused fraction of each.
    """
    ves = vessel != Vessel.NONE
    size = tumour_size(tissue, dx_um)
    d = _distance(tissue.shape, centroid(tissue)) * dx_um
    inside = d <= size["equivalent_radius_um"]
    around = (d > size["equivalent_radius_um"]) & (d <= size["equivalent_radius_um"] + margin_um)
    unit = (dx_um / 1000.0) ** (2 if _is_2d(tissue) else 3)  # mm² or mm³ per site
    out = {}
    for name, region in (("inside", inside), ("around", around)):
        n_region = np.count_nonzero(region)
        n_ves = np.count_nonzero(ves & region)
        out[f"vessel_density_{name}"] = n_ves / (n_region * unit) if n_region else 0.0
        if perfused is not None:
            n_perf = np.count_nonzero(ves & region & (perfused != 0))
            out[f"perfused_fraction_{name}"] = n_perf / n_ves if n_ves else 0.0
    return out


def rim_band(tissue: np.ndarray, width_sites: int) -> np.ndarray:
    """The tumour's outer shell: tumour sites (necrotic included) within ``width_sites`` Moore steps (chessboard
    distance) of a site that holds no tumour.  Outside the lattice counts as no tumour; an axis one site long
    (the z of a 2D lattice) is not a direction."""
    tum = tumour_mask(tissue)
    out = ~tum
    for axis, n in enumerate(tissue.shape):
        if n == 1:
            continue
        # dilate the non-tumour sites by width_sites along this axis (separable: a cube after every axis)
        pad = [(0, 0)] * tissue.ndim
        pad[axis] = (width_sites, width_sites)
        padded = np.pad(out, pad, constant_values=True)
        grown = np.zeros_like(out)
        for k in range(2 * width_sites + 1):
            grown |= padded.take(np.arange(k, k + n), axis=axis)
        out = grown
    return tum & out


def rim_perfusion(tissue: np.ndarray, vessel: np.ndarray, perfused: np.ndarray, dx_um: float,
                  rim_um: float = RIM_UM) -> dict[str, float]:
    """Perfused vessel coverage of the tumour's rim: the share of the sites of :func:`rim_band` (``rim_um`` deep,
    rounded to whole sites, at least one) that hold a vessel carrying flow.

    Returns
    -------
    dict with ``rim_sites`` and ``rim_perfused_coverage`` (0 without tumour).
    """
    band = rim_band(tissue, max(1, int(round(rim_um / dx_um))))
    n = int(np.count_nonzero(band))
    hit = int(np.count_nonzero(band & (vessel != Vessel.NONE) & (perfused != 0)))
    return {"rim_sites": n, "rim_perfused_coverage": hit / n if n else 0.0}


def vessel_network(vessel: np.ndarray, dx_um: float) -> dict[str, float]:
    """Vessel length and branch points from the skeleton of the vessel layer (scikit-image, 2D and 3D).

    Length is the number of skeleton sites times ``dx_um``; a branch point is a connected cluster of skeleton
    sites with three or more skeleton neighbours (Moore), an end point a skeleton site with exactly one.
    """
    try:
        from skimage.measure import label
        from skimage.morphology import skeletonize
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("vessel_network needs scikit-image: pip install 'tumorca[analysis]'") from exc
    ves = vessel != Vessel.NONE
    squeeze = vessel.ndim == 3 and vessel.shape[0] == 1
    mask = ves[0] if squeeze else ves
    skel = skeletonize(mask) if mask.any() else mask.copy()
    padded = np.pad(skel, 1).astype(np.int16)
    nb = np.zeros(skel.shape, dtype=np.int16)
    for off in np.ndindex(*(3,) * skel.ndim):
        if all(o == 1 for o in off):
            continue
        sl = tuple(slice(o, o + n) for o, n in zip(off, skel.shape))
        nb += padded[sl]
    junction = skel & (nb >= 3)
    branches = int(label(junction, connectivity=skel.ndim).max()) if junction.any() else 0
    return {"vessel_length_um": float(np.count_nonzero(skel) * dx_um), "branch_points": branches,
            "end_points": int(np.count_nonzero(skel & (nb == 1)))}


def neutrophil_stats(present: np.ndarray, polarization: np.ndarray) -> dict[str, float]:
    """Neutrophil count, N1 (p < 0.5) and N2 counts, and mean polarisation."""
    here = present != 0
    n = int(np.count_nonzero(here))
    p = polarization[here].astype(np.float64)
    n1 = int(np.count_nonzero(p < 0.5))
    return {"neutrophils": n, "neutrophils_n1": n1, "neutrophils_n2": n - n1,
            "mean_polarization": float(p.mean()) if n else 0.0}


def radial_profile(values: np.ndarray, center: tuple[float, ...], dx_um: float, bin_um: float = 40.0,
                   max_um: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` (any numeric or boolean array) in rings (shells) of width ``bin_um`` around ``center``.

    Returns
    -------
    radii_um, means : the ring centres and the mean per ring (NaN for an empty ring).
    """
    d = _distance(values.shape, center) * dx_um
    top = d.max() if max_um is None else max_um
    edges = np.arange(0.0, top + bin_um, bin_um)
    idx = np.digitize(d.ravel(), edges) - 1
    ok = idx < len(edges) - 1
    sums = np.bincount(idx[ok], weights=values.ravel()[ok].astype(np.float64), minlength=len(edges) - 1)
    cnts = np.bincount(idx[ok], minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / cnts
    return (edges[:-1] + edges[1:]) / 2, means


def front_roughness(tissue: np.ndarray, dx_um: float) -> float:
    """Width of the tumour front: standard deviation (µm) of the distances from the centroid of the tumour
    sites that touch a non-tumour site (von Neumann); 0 without tumour, NaN when the tumour fills the lattice (no
    front left to measure)."""
    tum = tumour_mask(tissue)
    if not tum.any():
        return 0.0
    boundary = np.zeros_like(tum)
    for axis in range(tum.ndim):
        if tum.shape[axis] == 1:
            continue
        for shift in (1, -1):
            boundary |= tum & ~np.roll(tum, shift, axis=axis)
    if not boundary.any():
        return float("nan")
    d = _distance(tissue.shape, centroid(tissue))[boundary] * dx_um
    return float(d.std())


def growth_rate(times_min: np.ndarray, radii_um: np.ndarray) -> dict[str, float]:
    """Least-squares line through radius against time: ``slope_um_per_day``, ``intercept_um`` and ``r2``."""
    t = np.asarray(times_min, dtype=np.float64) / MINUTES_PER_DAY
    r = np.asarray(radii_um, dtype=np.float64)
    if t.size < 2 or np.ptp(t) == 0:
        return {"slope_um_per_day": float("nan"), "intercept_um": float("nan"), "r2": float("nan")}
    slope, icpt = np.polyfit(t, r, 1)
    ss = np.sum((r - r.mean()) ** 2)
    r2 = 1 - np.sum((r - (slope * t + icpt)) ** 2) / ss if ss > 0 else 1.0
    return {"slope_um_per_day": float(slope), "intercept_um": float(icpt), "r2": float(r2)}


def frame_measures(frame: dict[str, Any], dx_um: float, hypoxia_mmhg: float = 10.0) -> dict[str, float]:
    """Every scalar measure of one frame given as a dict of layers (``tissue`` and ``vessel`` required; ``o2``,
    ``perfused``, ``neutrophils`` and ``neut_polarization`` used when present)."""
    t = frame["tissue"]
    out: dict[str, float] = {}
    size = tumour_size(t, dx_um)
    out.update({"tumour_sites": size["sites"], "tumour_size_um": size["size_um"],
                "equivalent_radius_um": size["equivalent_radius_um"], "necrotic_fraction": necrotic_fraction(t),
                "front_roughness_um": front_roughness(t, dx_um), "tumour_aspect": tumour_aspect(t)})
    if "o2" in frame:
        out["hypoxic_fraction"] = hypoxic_fraction(t, frame["o2"], hypoxia_mmhg)
    v = frame["vessel"]
    out.update(vessel_density(t, v, frame.get("perfused"), dx_um))
    ves = v != Vessel.NONE
    coopt = ves & tumour_mask(t)
    out["vessel_sites"] = int(np.count_nonzero(ves))
    out["coopted_vessels"] = int(np.count_nonzero(coopt))
    if "perfused" in frame:
        out["perfused_in_tumour"] = int(np.count_nonzero(coopt & (frame["perfused"] != 0)))
        out.update(rim_perfusion(t, v, frame["perfused"], dx_um))
    if "neutrophils" in frame:
        pol = frame.get("neut_polarization", np.zeros(t.shape, dtype=np.float32))
        out.update(neutrophil_stats(frame["neutrophils"], pol))
    return out
