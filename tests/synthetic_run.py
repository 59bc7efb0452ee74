"""Write run files with chosen contents directly with h5py, following docs/FORMAT.md (no engine): frames with known
answers for the analysis tests, long runs for the memory test, and damaged or foreign files for the error tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping

import h5py
import numpy as np

from tumorca import Cell, Params
from tumorca.io.layout import FORMAT_VERSION, LIBVER, RunPlan, layer_meta
from tumorca.io.writer import _create_layout

#: Per-step keys written when a test gives none (a subset of what Simulation.summary() returns).
DEFAULT_KEYS = ("time_min", "tumor_p", "tumor_q", "necrotic", "tumor_live", "vessel_sites", "perfused_sites",
                "perfused_fraction", "neutrophils", "hypoxic_fraction", "mean_polarization")


def disk(shape: tuple[int, ...], r: float, center: tuple[float, ...] | None = None,
         value: int = Cell.TUMOR_P) -> np.ndarray:
    """A tissue array (2-D or 3-D) holding a disk/ball of ``value`` of radius ``r`` sites."""
    c = [(n - 1) / 2 for n in shape] if center is None else center
    grids = np.indices(shape)
    d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
    t = np.zeros(shape, dtype=np.uint8)
    t[d2 <= r * r] = value
    return t


def write_run(path: str | Path, frames: Iterable[Mapping[str, np.ndarray]], n_frames: int, *,
              shape: tuple[int, ...], every: int = 1, fields: tuple[str, ...] = ("o2",), preset: str = "",
              seed: int = 0, params: Params | None = None, status: str = "complete",
              timeseries: Mapping[str, np.ndarray] | Callable[[int], Mapping[str, float]] | None = None,
              format_version: str | None = None, drop: tuple[str, ...] = (), compression: str = "gzip",
              writer_pid: int = 0) -> Path:
    """Write a run file of ``n_frames`` frames taken from ``frames`` (dicts of layers in ``shape``; missing layers
    are zeros), one every ``every`` steps.

    ``timeseries``: arrays of ``steps + 1`` rows by key, or a function step -> row (default: zeros for
    :data:`DEFAULT_KEYS`, ``time_min`` = step * dt).  ``drop``: datasets to delete afterwards (a damaged file).
    """
    params = params or Params()
    steps = every * (n_frames - 1)
    plan = RunPlan(shape=shape, params=params, seed=seed, steps=steps, every=every, fields=fields,
                   compression=compression, preset=preset)
    rows = steps + 1
    if timeseries is None:
        ts = {k: np.zeros(rows) for k in DEFAULT_KEYS}
        ts["time_min"] = np.arange(rows) * params.dt_min
    elif callable(timeseries):
        recs = [timeseries(s) for s in range(rows)]
        ts = {k: np.array([r[k] for r in recs]) for k in recs[0]}
    else:
        ts = {k: np.asarray(v) for k, v in timeseries.items()}
    keys = list(ts)
    dtypes = [np.dtype(np.int64) if np.issubdtype(v.dtype, np.integer) else np.dtype(np.float64)
              for v in ts.values()]
    path = Path(path)
    with h5py.File(path, "w", libver=LIBVER) as f:
        attrs = plan.to_attrs()
        attrs.update({"format": "tumorca-run", "format_version": format_version or FORMAT_VERSION,
                      "tumorca_version": "test", "command_line": "synthetic", "host": os.uname().nodename,
                      "writer_pid": writer_pid, "writer_start": 0, "run_id": "synthetic", "threads": 1})
        f.attrs.update(attrs)
        _create_layout(f, plan, keys, dtypes)
        nz, ny, nx = plan.shape3
        f["timeseries/step"].resize(rows, axis=0)
        f["timeseries/step"][:] = np.arange(rows)
        for k, v in ts.items():
            f["timeseries"][k].resize(rows, axis=0)
            f["timeseries"][k][:] = v
        for name in plan.layers:
            f[name].resize(n_frames, axis=0)
        f["time"].resize(n_frames, axis=0)
        f["step"].resize(n_frames, axis=0)
        it = iter(frames)
        for i in range(n_frames):
            fr = next(it)
            for name in plan.layers:
                dtype = layer_meta(name)[0]
                a = fr.get(name)
                f[name][i] = (np.zeros((nz, ny, nx), dtype) if a is None
                              else np.asarray(a, dtype).reshape(nz, ny, nx))
            f["step"][i] = i * every
            f["time"][i] = i * every * params.dt_min
        f["run/status"][()] = status.encode()
        f["run/steps_done"][()] = steps
        for name in drop:
            del f[name]
    return path
