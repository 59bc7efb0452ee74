"""The run-file layout (docs/FORMAT.md) as code: names, units, chunking, the frame plan and size estimates.

Pure Python on NumPy: nothing here imports the compiled engine, so the reader and ``tumorca inspect`` work where
the kernels are not built.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .._constants import FIELD_NAMES, Cell
from .._lattice import normalize_shape
from ..errors import LatticeError, ParameterError, TumorcaError
from ..params import PARAMETERS, Params

class RunFileError(TumorcaError):
    """A run or checkpoint file cannot be used: missing, not a tumorca file, damaged, of another run, or a write
    to it failed.  The message is one line and names the file."""


#: Value of the root attribute ``format`` of a run file, and of a checkpoint file.
FORMAT_NAME = "tumorca-run"
CHECKPOINT_FORMAT_NAME = "tumorca-checkpoint"
#: ``major.minor``: readers accept files of their own major version; a minor bump only adds things.
#: 2.0: vessels moved from the tissue layer into a layer of their own (``vessel``); the tissue no longer holds
#: endothelial states.  A 1.x file is refused with a one-line error.
#: 2.1: runs that start from a given state (a branch of another run): ``start_step``, the stored start state
#: ``/start`` and the lineage attributes ``parent_*``; full engine states kept at chosen steps (``keep_states``,
#: ``/states``).  A 2.0 file reads as a run from step 0 that keeps no state.
FORMAT_VERSION = "2.1"

#: HDF5 format bounds of a run file.  SWMR needs at least the 1.10 format; capping it at 1.10 keeps files
#: readable by HDF5 1.10-1.14 readers (ParaView 5.x bundles 1.14, which cannot decode the dataset-layout message
#: that HDF5 2.0 writes under libver="latest").
LIBVER = ("v110", "v110")

#: Compression choices of ``tumorca run --compression``.
COMPRESSIONS = ("gzip", "lzf", "none")
#: Largest chunk, in bytes, of one frame of one layer.  Frames up to this size are one chunk; larger ones are cut
#: into tiles (docs/FORMAT.md: 10 KiB - 1 MiB chunks read well both whole and in parts, and fit h5py's 1 MiB
#: default chunk cache).
CHUNK_BYTES = 1 << 20
#: Rows per chunk of the per-step time series.
TIMESERIES_CHUNK = 512

#: Site layers written in every frame, besides the chosen fields: name -> (engine source, dtype, units, long name).
#: The engine source is ``tissue``, ``perfused`` or ``neutrophils:<key>``.
BASE_LAYERS: dict[str, tuple[str, np.dtype, str, str]] = {
    "tissue": ("tissue", np.dtype(np.uint8), "1", "tissue state of each site (see flag_meanings)"),
    "vessel": ("vessel", np.dtype(np.uint8), "1", "vessel layer of each site (see flag_meanings)"),
    "perfused": ("perfused", np.dtype(np.uint8), "1", "1 where a vessel at the site carries flow (an O2 source)"),
    "neutrophils": ("neutrophils:present", np.dtype(np.uint8), "1", "1 where a neutrophil occupies the site"),
    "neut_polarization": ("neutrophils:polarization", np.dtype(np.float32), "1",
                          "neutrophil polarisation, 0 = N1 .. 1 = N2 (meaningful where neutrophils = 1)"),
    "neut_age": ("neutrophils:age", np.dtype(np.uint16), "steps", "steps since the neutrophil was recruited"),
}
#: Units and long names of the fields (``tumorca.FIELD_NAMES``).
FIELD_META: dict[str, tuple[str, str]] = {
    "o2": ("mmHg", "oxygen partial pressure"),
    "vegf_free": ("nM", "free (diffusible) VEGF"),
    "vegf_bound": ("nM", "matrix-bound VEGF"),
    "mmp9": ("nM", "MMP9"),
    "cxcl": ("nM", "CXCL1/2 chemokine"),
}
#: Units of the per-step quantities of ``Simulation.summary()``; keys not listed here get ``""``.
SUMMARY_UNITS: dict[str, str] = {
    "step": "1", "time_min": "min", "ifn_level": "1", "tumor_p": "sites", "tumor_q": "sites",
    "necrotic": "sites", "tumor_live": "sites", "hypoxic_fraction": "1", "tumor_volume_mm3": "mm3",
    "vessel_sites": "sites", "tips": "sites", "perfused_sites": "sites", "perfused_fraction": "1",
    "coopted_vessels": "sites", "perfused_in_tumor": "sites", "neutrophils": "cells", "neutrophils_n1": "cells",
    "neutrophils_n2": "cells", "mean_polarization": "1", "neut_vegf_produced": "nM", "neut_mmp9_produced": "nM",
    "o2_sweeps": "1", "o2_residual": "mmHg", "flow_iterations": "1", "flow_inflow": "mmHg",
    "vessels_regressed": "sites", "coopted_regressed": "sites",
}
#: Root attributes that record where, when and how a file was written rather than what was simulated: two runs of
#: the same plan differ only in these (and in ``resume_history``).
PROVENANCE_ATTRS = ("command_line", "start_time", "host", "threads", "writer_pid", "writer_start",
                    "python_version", "numpy_version", "h5py_version", "hdf5_version", "resume_history", "run_id",
                    "ranks", "ranks_shape")
#: Root attributes whose names begin so record where a run's start state came from (the parent of a branch:
#: ``parent_path``, ``parent_run_id``...; the source of an initial state read from data: ``initial_*``).  They are
#: written once at creation and carried over unchanged when the run is resumed.
LINEAGE_PREFIXES = ("parent_", "initial_")
#: Datasets that record when the run ended and how long it took (provenance too: they differ between runs).
PROVENANCE_DATASETS = ("run/end_time", "run/wall_seconds")


def layer_names(fields: Iterable[str]) -> list[str]:
    """Names of the 4-D frame datasets for a choice of fields, in file order."""
    return list(BASE_LAYERS) + [f for f in FIELD_NAMES if f in set(fields)]


def layer_meta(name: str) -> tuple[np.dtype, str, str]:
    """``(dtype, units, long_name)`` of one frame dataset."""
    if name in BASE_LAYERS:
        _, dt, units, long_name = BASE_LAYERS[name]
        return dt, units, long_name
    units, long_name = FIELD_META[name]
    return np.dtype(np.float32), units, long_name


def cell_state_attrs(enum: type = Cell) -> dict[str, Any]:
    """Attributes that describe the tissue enum, or the vessel enum (CF ``flag_values``/``flag_meanings`` plus a
    JSON mapping)."""
    return {"flag_values": np.array([c.value for c in enum], dtype=np.uint8),
            "flag_meanings": " ".join(c.name for c in enum),
            "cell_states": json.dumps({c.name: int(c.value) for c in enum})}


def shape3_of(shape: Any) -> tuple[int, int, int]:
    """``(ny, nx)`` or ``(nz, ny, nx)`` as ``(nz, ny, nx)`` (2-D is one site deep); LatticeError otherwise (the
    engine's own rule, :func:`tumorca._lattice.normalize_shape`)."""
    return normalize_shape(shape)


def frame_chunks(shape3: tuple[int, int, int], itemsize: int, limit: int = CHUNK_BYTES) -> tuple[int, ...]:
    """Chunk shape ``(1, cz, cy, cx)`` of a frame dataset: the whole frame if it fits in ``limit`` bytes, else
    tiles made by halving the longest axis until one does (so a 1024x1024 float32 frame is cut in 512x512)."""
    c = list(shape3)
    while c[0] * c[1] * c[2] * itemsize > limit:
        i = max(range(3), key=lambda k: c[k])
        if c[i] == 1:
            break
        c[i] = (c[i] + 1) // 2
    return (1, *c)


def compression_kwargs(compression: str, dtype: np.dtype) -> dict[str, Any]:
    """h5py ``create_dataset`` keywords for a compression choice: gzip level 1 (portable, fast; docs/FORMAT.md),
    with the byte shuffle for multi-byte types, where it roughly halves float fields."""
    if compression == "none":
        return {}
    shuffle = np.dtype(dtype).itemsize > 1
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": shuffle}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": shuffle}
    raise ParameterError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")


#: Longest file name (bytes) on the usual file systems: temporary names beside a long output name must fit too.
NAME_MAX = 255
_TMP_TAIL = 32  # ".PID.RANDOM8.tmp" with room to spare


def temporary_prefix(path: str | Path) -> str:
    """How the hidden temporary files beside ``path`` begin: ``.NAME.``, or for a name too long to take a suffix,
    ``.SHORTENED~DIGEST.`` (a 240-byte output name is valid; its temporaries must be too)."""
    name = Path(path).name
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) + 2 + _TMP_TAIL <= NAME_MAX:
        return f".{name}."
    import hashlib

    digest = hashlib.sha1(raw).hexdigest()[:12]
    keep = raw[:NAME_MAX - _TMP_TAIL - 16].decode("utf-8", "ignore")
    return f".{keep}~{digest}."


def temporary_path(path: str | Path, unique: bool = False) -> Path:
    """A hidden temporary name beside ``path`` for this process (``unique``: and this call), which
    :func:`tumorca.io.writer.remove_stale_temporaries` recognises once the process is gone."""
    import os
    import uuid

    p = Path(path)
    tail = f"{os.getpid()}" + (f".{uuid.uuid4().hex[:8]}" if unique else "") + ".tmp"
    return p.with_name(temporary_prefix(p) + tail)


def sidecar_paths(path: str | Path) -> tuple[Path, Path]:
    """``(xdmf, checkpoint)`` paths beside a run file ``OUT.h5``: ``OUT.h5.xdmf`` and ``OUT.h5.ckpt.h5``.

    Named from the whole file name (as the rank directory ``OUT.h5.ranks/`` is), so that ``m.h5`` and
    ``m.hdf5`` never share a checkpoint or an XDMF index."""
    p = Path(path)
    return p.with_name(p.name + ".xdmf"), p.with_name(p.name + ".ckpt.h5")


def legacy_checkpoint_path(path: str | Path) -> Path:
    """Where tumorca before 16 (issue 16) put the checkpoint of ``OUT.h5``: ``OUT.ckpt.h5``, from the stem (read
    only, to resume runs begun by it, and only if its run id matches)."""
    p = Path(path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".ckpt.h5")


@dataclass(frozen=True)
class RunPlan:
    """What a run computes and stores: everything that must agree between a run and its resumption.

    Parameters
    ----------
    shape : tuple of int
        Lattice shape as given, ``(ny, nx)`` or ``(nz, ny, nx)``.
    params : Params
        Model parameters.
    seed : int
        Seed of the engine's random numbers, in [0, 2**64).
    steps : int
        Steps to run (the last frame is at step ``steps``).
    every : int
        A frame at step 0, every ``every`` steps, and at the last step.
    fields : tuple of str
        Fields stored in each frame (a subset of ``tumorca.FIELD_NAMES``).
    compression : str
        ``gzip``, ``lzf`` or ``none``.
    checkpoint_every : int
        A checkpoint every this many steps (0: only at the end and on interruption).
    preset : str
        Name of the preset the parameters started from (``""`` for none); recorded, never interpreted.
    start_step : int
        Step of the state the run starts from (0: the built-in initial condition or a state at step 0; > 0: a
        given state, e.g. a branch of another run).  Steps, frames and time-series rows keep the global step
        count: the run computes steps ``start_step + 1 .. steps``.
    keep_states : tuple of int
        Steps, within ``start_step + 1 .. steps``, at which the full engine state is kept in the file
        (``/states/step_<N>``), so that other runs can branch from them.
    """

    shape: tuple[int, ...]
    params: Params
    seed: int
    steps: int
    every: int
    fields: tuple[str, ...] = FIELD_NAMES
    compression: str = "gzip"
    checkpoint_every: int = 0
    preset: str = ""
    start_step: int = 0
    keep_states: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        shape3_of(self.shape)
        for name, v, lo in (("steps", self.steps, 1), ("every", self.every, 1),
                            ("checkpoint_every", self.checkpoint_every, 0), ("start_step", self.start_step, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise LatticeError(f"{name} must be an integer >= {lo}, got {v!r}")
        if self.start_step >= self.steps:
            raise LatticeError(f"the run starts at step {self.start_step} but ends at step {self.steps}")
        if self.every > self.steps:
            raise LatticeError(f"every ({self.every}) is larger than the run ({self.steps} steps)")
        keep = []
        for v in self.keep_states:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise LatticeError(f"kept-state steps must be integers, got {v!r}")
            if not self.start_step < v <= self.steps:
                raise LatticeError(f"cannot keep the state at step {v}: the run computes steps "
                                   f"{self.start_step + 1}..{self.steps}")
            keep.append(int(v))
        object.__setattr__(self, "keep_states", tuple(sorted(set(keep))))
        object.__setattr__(self, "start_step", int(self.start_step))
        bad = [f for f in self.fields if f not in FIELD_NAMES]
        if bad:
            raise ParameterError(f"unknown field {bad[0]!r}; fields are {', '.join(FIELD_NAMES)}")
        compression_kwargs(self.compression, np.dtype(np.uint8))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "fields", tuple(f for f in FIELD_NAMES if f in set(self.fields)))

    @property
    def shape3(self) -> tuple[int, int, int]:
        return shape3_of(self.shape)

    @property
    def frame_steps(self) -> tuple[int, ...]:
        """Steps at which a frame is written: the start step, every multiple of ``every`` after it, and the last
        step (the end state is always on disk).  Multiples of the global step, so a branch's frames fall on its
        parent's frame steps."""
        s0 = self.start_step
        frames = [s0] + list(range((s0 // self.every + 1) * self.every, self.steps + 1, self.every))
        if frames[-1] != self.steps:
            frames.append(self.steps)
        return tuple(frames)

    @property
    def n_rows(self) -> int:
        """Rows of the finished run's time series: the start state and one per step computed."""
        return self.steps - self.start_step + 1

    @property
    def n_frames(self) -> int:
        """Number of frames of the finished run (without listing them: runs can be long)."""
        return self.frames_until(self.steps)

    def frames_until(self, step: int) -> int:
        """Number of frames at steps <= ``step`` (``step`` >= ``start_step``)."""
        return (step // self.every - self.start_step // self.every + 1
                + (1 if step == self.steps and step % self.every else 0))

    @property
    def layers(self) -> list[str]:
        return layer_names(self.fields)

    def is_frame(self, step: int) -> bool:
        return step == self.start_step or step % self.every == 0 or step == self.steps

    def is_checkpoint(self, step: int) -> bool:
        """A periodic checkpoint falls on this step (never the start step: the start state follows from the plan
        or is stored in the file)."""
        return (self.checkpoint_every > 0 and step > self.start_step and step % self.checkpoint_every == 0)

    # -- attributes ------------------------------------------------------------------------------------------
    def to_attrs(self) -> dict[str, Any]:
        """Root attributes that define the plan (see docs/FORMAT.md)."""
        p = self.params
        attrs: dict[str, Any] = {
            "shape": np.array(self.shape, dtype=np.int64), "ndim": len(self.shape),
            "lattice_shape": np.array(self.shape3, dtype=np.int64),
            "dx_um": float(p.dx_um), "dt_min": float(p.dt_min),
            "seed": np.uint64(self.seed), "preset": self.preset, "steps": self.steps, "every": self.every,
            "frames_planned": self.n_frames, "checkpoint_every": self.checkpoint_every,
            "fields": ",".join(self.fields), "compression": self.compression,
            "parameters": json.dumps(p.to_dict()),
            "parameter_units": json.dumps({s.name: s.unit for s in PARAMETERS}),
            "start_step": self.start_step, "keep_states": np.array(self.keep_states, dtype=np.int64),
        }
        for name, value in p.to_dict().items():
            # One typed attribute per parameter for browsing (h5dump, ncdump, xarray attrs); the JSON above is the
            # exact record the reader uses.
            attrs["param_" + name] = np.int8(value) if isinstance(value, bool) else value
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> "RunPlan":
        """Rebuild the plan from a run file's root attributes (ParameterError if a parameter is unknown here)."""
        fields = str(attrs["fields"])
        return cls(shape=tuple(int(d) for d in np.asarray(attrs["shape"]).ravel()),
                   params=Params.from_dict(json.loads(str(attrs["parameters"]))), seed=int(attrs["seed"]),
                   steps=int(attrs["steps"]), every=int(attrs["every"]),
                   fields=tuple(f for f in fields.split(",") if f), compression=str(attrs["compression"]),
                   checkpoint_every=int(attrs["checkpoint_every"]), preset=str(attrs["preset"]),
                   # absent from format 2.0 files: a run from step 0 that keeps no state
                   start_step=int(attrs.get("start_step", 0)),
                   keep_states=tuple(int(v) for v in np.asarray(attrs.get("keep_states", ()), dtype=np.int64).ravel()))

    # -- sizes -----------------------------------------------------------------------------------------------
    def frame_bytes(self) -> int:
        """Uncompressed bytes of one frame (all layers)."""
        nz, ny, nx = self.shape3
        return nz * ny * nx * sum(layer_meta(n)[0].itemsize for n in self.layers)

    def n_states(self) -> int:
        """Full engine states the finished file holds: the final one, the kept ones and, for a run that starts
        past step 0, the start state."""
        return 1 + len(self.keep_states) + (1 if self.start_step else 0)

    def projected_file_bytes(self, n_summary: int = 24, state_bytes_per_site: int = 33) -> int:
        """Uncompressed size of the finished file: frames, time series, final checkpoint, kept and start states.
        An upper bound: gzip typically shrinks lattices that are mostly stroma to a few percent of this."""
        nz, ny, nx = self.shape3
        return (self.n_frames * (self.frame_bytes() + 16) + self.n_rows * n_summary * 8
                + self.n_states() * nz * ny * nx * state_bytes_per_site + 64 * 1024)


def fmt_bytes(n: float) -> str:
    """Bytes in binary units with one decimal, e.g. ``12.3 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def fmt_shape(shape: Iterable[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def coordinates(n: int, dx: float) -> np.ndarray:
    """Cell-centre coordinates in um of ``n`` sites spaced ``dx``: (i + 1/2) dx, matching the XDMF mesh whose
    nodes sit at i dx."""
    return (np.arange(n, dtype=np.float64) + 0.5) * dx


def summary_dtype(value: Any) -> np.dtype:
    """Storage type of one per-step quantity: int64 for integers (and bools), float64 otherwise."""
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return np.dtype(np.int64)
    if isinstance(value, numbers.Real):
        return np.dtype(np.float64)
    raise TypeError(f"summary value {value!r} is not a number")

