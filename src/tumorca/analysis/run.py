"""A run file for analysis: :func:`open_run` gives a :class:`Run` with the run's metadata, lazy per-layer frame
access and the per-step time series.

Built on :class:`tumorca.io.RunReader`, so it reads finished files, files still being written (call
:meth:`Run.refresh` to see new frames) and files cut off by a crash.  Pure Python over h5py and NumPy: nothing here
needs the compiled engine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .._constants import MINUTES_PER_DAY
from ..io.layout import RunFileError, layer_meta
from ..io.reader import RunReader, RunStatus
from . import measures as M


#: Layers :meth:`Run.measures` reads when present (``tissue`` is required).
MEASURE_LAYERS = ("tissue", "vessel", "perfused", "neutrophils", "neut_polarization", "o2")


class LayerView:
    """One layer of a run (``tissue``, ``o2``...), indexed by frame without reading the others.

    ``view[i]`` is frame ``i`` (negative counts from the last frame on disk) in the run's shape, ``(ny, nx)`` or
    ``(nz, ny, nx)``; ``view[a:b]`` stacks those frames on a first axis; ``view[i, ...]`` indexes further into one
    frame.  ``len(view)`` is the number of complete frames on disk.  Only the frames asked for are read.
    """

    def __init__(self, run: "Run", name: str) -> None:
        self._run = run
        self.name = name
        dtype, units, long_name = layer_meta(name) if _known(name) else (None, "", name)
        ds = run._ds[name]
        self._dsobj = ds
        self.dtype = ds.dtype
        self.units = str(ds.attrs.get("units", units))
        if isinstance(self.units, bytes):  # pragma: no cover - h5py returns str for str attributes
            self.units = self.units.decode()
        self.long_name = str(ds.attrs.get("long_name", long_name))

    def __repr__(self) -> str:
        return f"<LayerView {self.name!r}: {len(self)} frames of {self.shape}, {self.dtype}, {self.units}>"

    def __len__(self) -> int:
        return self._run.n_frames

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one frame (the run's shape)."""
        return self._run.shape

    def _index(self, i: Any) -> int:
        n = len(self)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an integer or a slice, got {i!r}")
        if not -n <= i < n:
            raise IndexError(f"frame {int(i)} out of range: {n} frames on disk")
        return int(i) % n

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        ds = self._dsobj
        if isinstance(key, slice):
            idx = range(*key.indices(len(self)))
            if not idx:
                out = np.empty((0,) + self.shape, dtype=self.dtype)
            elif idx.step == 1:
                out = ds[idx.start:idx.stop].reshape((len(idx),) + self.shape)
            else:
                out = np.stack([ds[j].reshape(self.shape) for j in idx])
            return out[(slice(None),) + rest] if rest else out
        out = ds[self._index(key)].reshape(self.shape)
        return out[rest] if rest else out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def chunks(self, size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """``(first frame index, frames)`` blocks of at most ``size`` frames, read one block at a time."""
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        n = len(self)
        for a in range(0, n, size):
            yield a, self[a:min(a + size, n)]

    def range(self, chunk: int = 8) -> tuple[float, float]:
        """``(min, max)`` over every frame on disk (NaN ignored), reading ``chunk`` frames at a time."""
        lo, hi = np.inf, -np.inf
        for _, block in self.chunks(chunk):
            if block.size:
                lo = min(lo, float(np.nanmin(block)))
                hi = max(hi, float(np.nanmax(block)))
        return (lo, hi) if lo <= hi else (0.0, 0.0)


def _known(name: str) -> bool:
    try:
        layer_meta(name)
        return True
    except KeyError:
        return False


class Run:
    """A tumorca run file opened for analysis (see :func:`open_run`).

    Attributes
    ----------
    path : Path
    reader : RunReader
        The underlying reader (status, checkpoints, raw file).
    params : dict
        Every model parameter as stored.
    preset : str
        The preset the parameters started from (``""``: none).
    seed : int
    shape : tuple of int
        ``(ny, nx)`` or ``(nz, ny, nx)``.
    dx : float
        Site spacing in µm (``dx_um``).
    dt : float
        Step in minutes.

    Examples
    --------
    >>> with open_run("wt.h5") as run:                                 # doctest: +SKIP
    ...     print(run.preset, run.shape, run.n_frames, run.times_days[-1])
    ...     last = run.frame(-1)                # dict of every layer of the last frame
    ...     t5 = run.tissue[5]                  # one layer of one frame
    ...     for i, fr in run.frames(["tissue", "o2"]):   # one frame in memory at a time
    ...         ...
    ...     ts = run.timeseries()               # per-step quantities, dict of arrays
    """

    def __init__(self, path: str | Path) -> None:
        try:
            self.reader = RunReader(path)
        except RunFileError:  # already says what is wrong with the file
            raise
        except (KeyError, ValueError, TypeError) as exc:  # a required dataset or attribute is missing
            msg = exc.args[0] if exc.args else exc
            raise RunFileError(f"{str(path)!r} is damaged or incomplete: {msg}") from None
        self.path = self.reader.path
        a = self.reader.attrs
        try:
            self.params: dict[str, Any] = json.loads(a["parameters"])
            self.preset = str(a.get("preset", ""))
            self.seed = int(a["seed"])
            self.shape = self.reader.shape
            self.dx = float(a["dx_um"])
            self.dt = float(a["dt_min"])
            self.steps_planned = int(a["steps"])
            self.frames_planned = int(a["frames_planned"])
            for name in ("time", "step", "timeseries", "run"):
                self.reader.file[name]
            # Layers are all created before a file gets its name, so the list is fixed: look it up once.
            self._layers = list(self.reader.layers)
            self._ds = {n: self.reader.file[n] for n in self._layers}
        except (KeyError, ValueError, TypeError) as exc:
            self.reader.close()
            raise RunFileError(f"{str(self.path)!r} is damaged or incomplete: missing or bad {exc}") from None

    # -- context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()

    def __repr__(self) -> str:
        return (f"<Run {self.path.name!r}: preset {self.preset or 'none'!r}, seed {self.seed}, shape "
                f"{'x'.join(map(str, self.shape))}, {self.n_frames} frames, {self.status.state}>")

    # -- metadata --------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The file name without its suffix (used as a label)."""
        return self.path.stem

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def shape3(self) -> tuple[int, int, int]:
        return self.reader.shape3

    @property
    def attrs(self) -> dict[str, Any]:
        """Every root attribute (plan and provenance)."""
        return self.reader.attrs

    @property
    def status(self) -> RunStatus:
        return self.reader.status

    @property
    def layers(self) -> list[str]:
        """Names of the frame datasets, in file order."""
        return list(self._layers)

    @property
    def n_frames(self) -> int:
        """Complete frames on disk (as of the last :meth:`refresh`)."""
        return self.reader.n_frames

    def __len__(self) -> int:
        return self.n_frames

    @property
    def times(self) -> np.ndarray:
        """Time of each frame on disk, minutes."""
        return self.reader.times

    @property
    def times_days(self) -> np.ndarray:
        return self.reader.times / MINUTES_PER_DAY

    @property
    def steps(self) -> np.ndarray:
        """Step index of each frame on disk."""
        return self.reader.steps

    def refresh(self) -> None:
        """See frames and rows a live writer has flushed since opening."""
        self.reader.refresh()
        if self.reader.file.swmr_mode:
            for ds in self._ds.values():
                ds.refresh()

    def value(self, key: str) -> Any:
        """A grouping value: ``preset``, ``seed``, ``name``, a parameter name or a root attribute."""
        if key == "preset":
            return self.preset or "none"
        if key == "name":
            return self.name
        if key == "seed":
            return self.seed
        if key in self.params:
            return self.params[key]
        if key in self.attrs:
            return self.attrs[key]
        raise KeyError(f"{key!r} is neither a parameter nor an attribute of {str(self.path)!r} (try preset, seed, "
                       "name or a parameter from 'tumorca params')")

    # -- frames ----------------------------------------------------------------------------------------------
    def layer(self, name: str) -> LayerView:
        """Lazy view of one layer; KeyError listing the layers present if there is no such layer."""
        if name not in self._ds:
            raise KeyError(f"no layer {name!r} in {str(self.path)!r}; layers present: {', '.join(self.layers)}")
        return LayerView(self, name)

    def __getitem__(self, name: str) -> LayerView:
        return self.layer(name)

    def __getattr__(self, name: str) -> LayerView:
        # run.tissue, run.o2 ...: only for layer names, and only once __init__ has set the reader up.
        if name.startswith("_") or "_layers" not in self.__dict__:
            raise AttributeError(name)
        if name in self.__dict__.get("_layers", ()):
            return LayerView(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} (layers: "
                             f"{', '.join(self.__dict__.get('_layers', ()))})")

    def _check_layers(self, layers: Iterable[str] | None) -> list[str]:
        if layers is None:
            return self.layers
        layers = list(layers)
        missing = [n for n in layers if n not in self._ds]
        if missing:
            raise KeyError(f"no layer {missing[0]!r} in {str(self.path)!r}; layers present: "
                           f"{', '.join(self.layers)}")
        return layers

    def frame_index(self, i: int) -> int:
        """``i`` as a non-negative frame index (negative counts from the last frame); IndexError if out of range."""
        n = self.n_frames
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an integer, got {i!r}")
        if not -n <= i < n:
            raise IndexError(f"frame {int(i)} out of range: {n} frames on disk" +
                             (f" (0..{n - 1}, or -1 for the last)" if n else ""))
        return int(i) % n

    def frame(self, i: int, layers: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Frame ``i`` as a dict layer name -> array in the run's shape (``layers``: a subset; default all)."""
        names = self._check_layers(layers)
        k = self.frame_index(i)
        return {n: self._ds[n][k].reshape(self.shape) for n in names}

    def frames(self, layers: Iterable[str] | None = None, start: int = 0, stop: int | None = None,
               step: int = 1) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(index, frame)`` for frames ``start:stop:step`` on disk, one frame in memory at a time."""
        names = self._check_layers(layers)
        for k in range(*slice(start, stop, step).indices(self.n_frames)):
            yield k, {n: self._ds[n][k].reshape(self.shape) for n in names}

    # -- time series -----------------------------------------------------------------------------------------
    @property
    def timeseries_keys(self) -> list[str]:
        return list(self.reader.file["timeseries"])

    def timeseries(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Per-step quantities (row i: after step ``first_step + i``; 0 unless the run is a branch) as arrays, plus
        ``time_days``; ``keys``: a subset."""
        file_ts = self.reader.file["timeseries"]
        n = self.reader.n_rows
        if keys is None:
            keys = list(file_ts)
        missing = [k for k in keys if k not in file_ts and k != "time_days"]
        if missing:
            raise KeyError(f"no time series {missing[0]!r} in {str(self.path)!r}; present: {', '.join(file_ts)}")
        out = {k: file_ts[k][:n] for k in keys if k != "time_days"}
        if "time_min" in file_ts:
            t = out["time_min"] if "time_min" in out else file_ts["time_min"][:n]
        else:  # pragma: no cover - every version so far writes time_min
            t = (self.reader.first_step + np.arange(n)) * self.dt
        out["time_days"] = np.asarray(t, dtype=np.float64) / MINUTES_PER_DAY
        return out

    def timeseries_frame(self, keys: Sequence[str] | None = None) -> Any:
        """The time series as a pandas DataFrame indexed by step (ImportError if pandas is missing)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("timeseries_frame needs pandas: pip install 'tumorca[analysis]'") from exc
        ts = self.timeseries(keys)
        step = ts.pop("step", None)
        df = pd.DataFrame(ts)
        if step is not None:
            df.index = pd.Index(step, name="step")
        return df

    # -- measures --------------------------------------------------------------------------------------------
    def measures(self, *, every: int = 1, network: bool = False, hypoxia_mmhg: float = 10.0,
                 margin_um: float = 200.0, progress: Callable[[int, int], None] | None = None
                 ) -> dict[str, np.ndarray]:
        """Measures of every ``every``-th frame on disk, as a table (see :func:`tumorca.analysis.measure_run`,
        which takes a path too, for the parameters and the columns)."""
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if "tissue" not in self.layers:
            raise KeyError(f"no layer 'tissue' in {str(self.path)!r}; layers present: {', '.join(self.layers)}")
        names = [n for n in MEASURE_LAYERS if n in self.layers]
        n = self.n_frames
        idx = list(range(0, n, every))
        if n and idx[-1] != n - 1:
            idx.append(n - 1)
        times, steps = self.times, self.steps
        rows: dict[str, list[float]] = {}
        for done, k in enumerate(idx, 1):
            fr = self.frame(k, names)
            m = M.frame_measures(fr, self.dx, hypoxia_mmhg)
            if margin_um != 200.0:
                m.update(M.vessel_density(fr["tissue"], fr["vessel"], fr.get("perfused"), self.dx, margin_um))
            if network:
                m.update(M.vessel_network(fr["vessel"], self.dx))
            del fr
            m = {"frame": k, "step": int(steps[k]), "time_min": float(times[k]),
                 "time_days": float(times[k]) / MINUTES_PER_DAY, **m}
            for key, v in m.items():
                rows.setdefault(key, []).append(v)
            if progress is not None:
                progress(done, len(idx))
        if not rows:
            return {"frame": np.zeros(0, np.int64), "step": np.zeros(0, np.int64), "time_min": np.zeros(0),
                    "time_days": np.zeros(0)}
        return {k: np.asarray(v) for k, v in rows.items()}


def open_run(path: str | Path) -> Run:
    """Open a run file for analysis.

    Raises
    ------
    RunFileError
        If the file is missing, not HDF5, not a tumorca run file, or of a format version this tumorca cannot read.
    """
    return Run(path)


def as_run(run: "Run | str | Path") -> tuple[Run, bool]:
    """``(Run, opened_here)`` for a Run or a path (the caller closes it if ``opened_here``)."""
    if isinstance(run, Run):
        return run, False
    return open_run(run), True


__all__ = ["Run", "LayerView", "open_run", "as_run", "MINUTES_PER_DAY"]
