"""Run files written by many MPI ranks (docs/FORMAT.md, "Runs under MPI").

Every rank writes the block of the lattice it owns to a file of its own, ``OUT.h5.ranks/frames-<gen>/rank-NNNNN.h5``
(frames and, at the end, its block of the final state), from a background thread as the serial writer does.  Rank
0 also writes the main run file ``OUT``, laid out exactly like a serial run file, except that each frame dataset
and each final-state array is an HDF5 *virtual dataset* (VDS) that maps every rank's block into the
whole-lattice dataset.  Readers (``RunReader``, xarray, ParaView, ``--resume``) see whole-lattice datasets and need
no knowledge of ranks.

Why VDS and not parallel HDF5: the h5py wheel on PyPI is built without the MPI-IO driver (parallel HDF5 needs
h5py and HDF5 compiled against the cluster's MPI), whereas VDS is part of every HDF5 >= 1.10; and with one file per
rank every rank streams and compresses its frames independently, with no collective I/O call in the step loop.

Paths inside the VDS mappings are relative (``OUT.h5.ranks/...``), which HDF5 resolves against the directory of the
main file: the output directory can be moved or copied as a whole.

Checkpoints: every rank writes its block to ``OUT.h5.ranks/ckpt-<step>-<gen>/rank-NNNNN.h5``; rank 0 then writes
``OUT.ckpt.h5`` (the serial checkpoint layout, its arrays virtual datasets over those blocks) under a temporary
name and renames it into place -- the rename commits the checkpoint.  A resuming run reads any block, with halo,
of the whole-lattice arrays through it, so the rank count and block shape may differ from the writer's.

Generations: each run and each resumption writes its rank files into a fresh ``frames-<gen>`` directory, so the
files a published main file refers to are never rewritten; directories no main file refers to any more are
removed by rank 0 after the main file (or checkpoint) that replaced them is in place.
"""
from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import h5py
import numpy as np

from .. import __version__
from .._constants import FIELD_NAMES
from .checkpoint import fsync_dir
from .hdf5 import open_file
from .layout import (CHECKPOINT_FORMAT_NAME, FORMAT_VERSION, LIBVER, RunFileError, RunPlan, compression_kwargs,
                     fmt_bytes, frame_chunks, layer_meta, temporary_path)
from .writer import QUEUE_DEPTH, FileLayout, RunWriter, describe_os_error

#: Value of the root attribute ``format`` of a rank file.
RANK_FORMAT_NAME = "tumorca-rank-block"
#: Engine state array behind each frame dataset (``Simulation.get_state()["arrays"]`` names).
LAYER_SOURCES: dict[str, str] = {"tissue": "tissue", "vessel": "vessel", "perfused": "perfused", "neutrophils": "neut",
                                 "neut_polarization": "neut_p", "neut_age": "neut_age",
                                 **{name: name for name in FIELD_NAMES}}
#: Fill value of the virtual frame datasets: what a reader sees of a block whose rank file is missing.
_UNLIMITED = h5py.h5s.UNLIMITED

Slices3 = tuple[slice, slice, slice]


# -- names ----------------------------------------------------------------------------------------------------------
def ranks_dir(path: str | Path) -> Path:
    """``OUT.h5.ranks`` beside the run file ``OUT.h5`` (the directory of the rank files).  Named from the whole
    file name, so that ``m.h5`` and ``m.hdf5`` never share (and a run to one never removes the other's) blocks."""
    p = Path(path)
    return p.with_name(p.name + ".ranks")


def new_generation() -> str:
    """A fresh generation id (8 hex digits) for the rank files of one run or resumption."""
    return uuid.uuid4().hex[:8]


def frames_dir(path: str | Path, gen: str) -> Path:
    return ranks_dir(path) / f"frames-{gen}"


def checkpoint_dir(path: str | Path, step: int, gen: str) -> Path:
    return ranks_dir(path) / f"ckpt-{step:010d}-{gen}"


def rank_file(directory: Path, rank: int) -> Path:
    return directory / f"rank-{rank:05d}.h5"


def _rel(target: Path, main: Path) -> str:
    """``target`` relative to the directory of ``main``, as a VDS mapping names its source file: HDF5 reads
    that name as a printf-like pattern (``%b`` is a block number), so a literal ``%`` is written ``%%``."""
    return os.path.relpath(target, main.parent).replace("%", "%%")


def _run_slices(owned: Slices3, ndim: int) -> tuple[slice, ...]:
    """A block's slices in the run's shape: the 3-D slices, or their last two for a 2-D run."""
    return tuple(owned) if ndim == 3 else tuple(owned[1:])


def _slice_shape(owned: Sequence[slice]) -> tuple[int, ...]:
    return tuple(int(s.stop) - int(s.start) for s in owned)


# -- the main file's virtual datasets ----------------------------------------------------------------------------
class VirtualRunLayout(FileLayout):
    """Frame datasets and final-state arrays of the main run file as virtual datasets over the rank files.

    Parameters
    ----------
    main : Path
        The main run file (the mappings name the rank files relative to its directory).
    blocks : sequence of (slice, slice, slice)
        Global 3-D index ranges owned by each rank, in rank order.
    files : sequence of Path
        Each rank's file, in rank order.
    state_dtypes : mapping
        Name -> dtype of each engine state array (``Simulation.get_state()["arrays"]``).
    """

    stores_frames = False

    def __init__(self, main: Path, blocks: Sequence[Slices3], files: Sequence[Path],
                 state_dtypes: Mapping[str, np.dtype]) -> None:
        self.main = Path(main)
        self.blocks = [tuple(b) for b in blocks]
        self.files = [Path(p) for p in files]
        self.state_dtypes = {k: np.dtype(v) for k, v in state_dtypes.items()}

    def frame_dataset(self, f: h5py.File, name: str, plan: RunPlan, dtype: np.dtype) -> h5py.Dataset:
        nz, ny, nx = plan.shape3
        lay = h5py.VirtualLayout(shape=(1, nz, ny, nx), maxshape=(None, nz, ny, nx), dtype=dtype)
        for owned, path in zip(self.blocks, self.files):
            b = _slice_shape(owned)
            src = h5py.VirtualSource(_rel(path, self.main), name, shape=(1, *b), maxshape=(None, *b))
            lay[(slice(0, _UNLIMITED), *owned)] = src[0:_UNLIMITED, :, :, :]
        return f.create_virtual_dataset(name, lay, fillvalue=0)

    def state_group(self, group: h5py.Group, state: dict[str, Any], run_id: str, step_index: int,
                    source: str = "checkpoint") -> None:
        """A state group whose arrays are virtual datasets over the group ``source`` (``checkpoint``: the final
        state; ``states/step_<N>``: a kept state) of every rank file."""
        write_state_attrs(group, state, run_id, step_index)
        arrays = group.create_group("arrays")
        shape = tuple(int(d) for d in state["shape"])
        for name in sorted(self.state_dtypes):
            virtual_array(arrays, name, shape, self.state_dtypes[name], self.blocks,
                          [(_rel(p, self.main), f"{source}/arrays/{name}") for p in self.files])


def write_state_attrs(group: h5py.Group, meta: Mapping[str, Any], run_id: str, step_index: int) -> None:
    """The attributes of a state group (as :func:`tumorca.io.checkpoint.create_state_group` writes them)."""
    import json

    group.attrs["step_index"] = np.int64(step_index)
    group.attrs["seed"] = np.uint64(meta["seed"])
    group.attrs["shape"] = np.array(tuple(int(d) for d in meta["shape"]), dtype=np.int64)
    params = meta["params"]
    group.attrs["parameters"] = json.dumps(dict(params.to_dict() if hasattr(params, "to_dict") else params))
    group.attrs["tumorca_version"] = str(meta.get("version", __version__))
    group.attrs["run_id"] = run_id


def virtual_array(group: h5py.Group, name: str, shape: tuple[int, ...], dtype: np.dtype,
                  blocks: Sequence[Slices3], sources: Sequence[tuple[str, str]]) -> h5py.Dataset:
    """A fixed-shape virtual dataset ``name`` in the run's ``shape`` stitched from one block per rank;
    ``sources`` are (file, dataset) pairs in rank order."""
    ndim = len(shape)
    lay = h5py.VirtualLayout(shape=shape, dtype=dtype)
    for owned, (fname, dset) in zip(blocks, sources):
        sl = _run_slices(owned, ndim)
        lay[sl] = h5py.VirtualSource(fname, dset, shape=_slice_shape(sl))
    return group.create_virtual_dataset(name, lay, fillvalue=0)


def virtual_files(f: h5py.File) -> set[str]:
    """Source file names (as stored: relative) of every virtual dataset in an open HDF5 file."""
    out: set[str] = set()

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            dcpl = obj.id.get_create_plist()
            for j in range(dcpl.get_virtual_count()):
                out.add(dcpl.get_virtual_filename(j).replace("%%", "%"))

    f.visititems(visit)
    return out


def check_sources(f: h5py.File, path: Path) -> None:
    """RunFileError naming the first missing source file of the virtual datasets of ``f`` (opened from
    ``path``): HDF5 would read the blocks of a missing file as zeros, silently."""
    for name in sorted(virtual_files(f)):
        if not (Path(path).parent / name).is_file():
            raise RunFileError(f"{str(path)!r} refers to the rank file {name!r}, which is missing; the run cannot "
                               "be read or resumed from it")


# -- a rank's file ----------------------------------------------------------------------------------------------
def create_rank_file(path: Path, plan: RunPlan, owned: Slices3, rank: int, size: int, run_id: str,
                     state_dtypes: Mapping[str, np.dtype]) -> h5py.File:
    """Create a rank file at ``path`` (a temporary name: the caller renames it): one frame dataset per layer
    ``(T, bz, by, bx)`` growing along time, ``/step``, the empty final-state block ``/checkpoint/arrays`` and,
    for each kept state of the plan, its empty block ``/states/step_<N>/arrays`` (SWMR allows nothing new later).
    Returned open, not yet in SWMR mode."""
    b = _slice_shape(owned)
    try:
        f = h5py.File(path, "w", libver=LIBVER)
    except OSError as exc:
        raise RunFileError(f"cannot create {str(path)!r}: {describe_os_error(exc)}") from None
    try:
        f.attrs.update({"format": RANK_FORMAT_NAME, "format_version": FORMAT_VERSION, "tumorca_version": __version__,
                        "run_id": run_id, "rank": np.int64(rank), "ranks": np.int64(size),
                        "lattice_shape": np.array(plan.shape3, dtype=np.int64),
                        "block_start": np.array([s.start for s in owned], dtype=np.int64),
                        "block_shape": np.array(b, dtype=np.int64)})
        f.create_dataset("step", shape=(0,), maxshape=(None,), chunks=(512,), dtype=np.int64)
        for name in plan.layers:
            dtype, units, long_name = layer_meta(name)
            ds = f.create_dataset(name, shape=(0, *b), maxshape=(None, *b), dtype=dtype,
                                  chunks=frame_chunks(b, dtype.itemsize), fletcher32=True,
                                  **compression_kwargs(plan.compression, dtype))
            ds.attrs.update({"units": units, "long_name": long_name})
        rb = _slice_shape(_run_slices(owned, len(plan.shape)))
        for group in ["checkpoint"] + [f"states/step_{k}" for k in plan.keep_states]:
            arrays = f.require_group(group).create_group("arrays")
            for name, dt in sorted(state_dtypes.items()):
                chunks = frame_chunks(b, np.dtype(dt).itemsize)[1:][-len(rb):]
                arrays.create_dataset(name, shape=rb, dtype=dt, chunks=chunks, fletcher32=True,
                                      **compression_kwargs("gzip", np.dtype(dt)))
    except BaseException as exc:
        f.close()
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunFileError(f"cannot create {str(path)!r}: {describe_os_error(exc)}") from None
        raise
    return f


class BlockWriter:
    """Streams one rank's block of every frame, of every kept state and of the final state into its rank file
    from a background thread.

    Unlike :class:`RunWriter`, errors never raise in the caller's thread: they are recorded (:attr:`error`,
    :attr:`broken`) and the caller agrees with the other ranks on what to do (an exception on one rank alone
    would leave the others waiting in a collective call).
    """

    def __init__(self, path: Path, f: h5py.File, plan: RunPlan, n_frames: int = 0, n_states: int = 0) -> None:
        self.path = path
        self.plan = plan
        self._f = f
        self._ds = {name: f[name] for name in ["step"] + plan.layers}
        self._n = n_frames
        self.frames_flushed = n_frames
        #: Kept states whose block is flushed (they are written in step order: the first ``states_flushed`` of
        #: ``plan.keep_states``; a resumed run starts with those it copied).
        self.states_flushed = n_states
        self.error = ""
        self.broken = False
        self._keepalive: BaseException | None = None
        self._closed = False
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._work, name="tumorca-rank-writer", daemon=True)
        self._thread.start()

    @property
    def level(self) -> int:
        """0: fine; 1: a write was refused before it started (the file is intact); 2: a write failed inside HDF5
        (the file is as of its last flush; the process must not close it, see ``RunWriter._fail``)."""
        return 2 if self.broken else (1 if self.error else 0)

    def add_frame(self, step: int, blocks: Mapping[str, np.ndarray]) -> None:
        """Queue a frame: ``blocks`` maps every layer to a copy of this rank's 3-D block."""
        if not self._closed and not self.error:
            self._queue.put(("frame", int(step), dict(blocks)))

    def add_state(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Queue this rank's block of the kept state of ``step`` (copies of the owned block of every state array,
        as :meth:`DistributedSimulation.local_state` gives them)."""
        if not self._closed and not self.error:
            self._queue.put(("state", int(step), dict(arrays)))

    def sync(self) -> None:
        """Wait until everything queued is written and flushed (or has failed)."""
        if not self._closed:
            self._queue.put(("flush",))
            self._queue.join()

    def close(self, final_state: Mapping[str, np.ndarray] | None = None) -> None:
        """Write what is queued, the final-state block if given, flush and close."""
        if self._closed:
            return
        self._queue.put(("close", final_state))
        self._thread.join()
        self._closed = True

    def abort(self) -> None:
        """Flush and close what can be (never raises; a broken file is left alone)."""
        if self._closed:
            return
        self._queue.put(("close", None))
        self._thread.join()
        self._closed = True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            kind = item[0]
            try:
                if not self.error:
                    getattr(self, "_do_" + kind)(*item[1:])
                elif kind == "close" and not self.broken:
                    self._f.close()
            except _Refused as exc:
                self.error = str(exc)
                try:
                    self._f.flush()
                except BaseException:  # noqa: BLE001
                    pass
            except BaseException as exc:  # noqa: BLE001 - reported through self.error
                what = {"frame": f"the frame of step {item[1]}", "state": f"the kept state of step {item[1]}"}
                self.error = (f"writing {what.get(kind, 'the end')} to {str(self.path)!r} failed: "
                              f"{describe_os_error(exc)}")
                self.broken = True
                self._keepalive = exc  # keep the handles alive, untouched (see RunWriter._fail)
            finally:
                self._queue.task_done()
            if kind == "close":
                return

    def _check_disk(self, arrays: dict[str, np.ndarray], what: str) -> None:
        """_Refused if the disk may not hold ``arrays`` (and a margin) more."""
        need = sum(np.asarray(a).nbytes for a in arrays.values()) + 256 * 1024
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = None
        if free is not None and free < need:
            raise _Refused(f"disk nearly full: {fmt_bytes(free)} free in {str(self.path.parent)!r}, {what} may need "
                           f"{fmt_bytes(need)}")

    def _do_frame(self, step: int, blocks: dict[str, np.ndarray]) -> None:
        self._check_disk(blocks, f"the frame of step {step}")
        n = self._n
        for name in self.plan.layers:
            ds = self._ds[name]
            ds.resize(n + 1, axis=0)
            ds[n] = blocks[name]
        ds = self._ds["step"]
        ds.resize(n + 1, axis=0)
        ds[n] = step
        self._f.flush()
        self._n = n + 1
        self.frames_flushed = n + 1

    def _do_state(self, step: int, arrays: dict[str, np.ndarray]) -> None:
        self._check_disk(arrays, f"the kept state of step {step}")
        group = self._f[f"states/step_{step}/arrays"]
        for name, a in arrays.items():
            group[name][...] = np.reshape(a, group[name].shape)
        self._f.flush()
        self.states_flushed += 1

    def _do_flush(self) -> None:
        self._f.flush()

    def _do_close(self, final_state: Mapping[str, np.ndarray] | None) -> None:
        if final_state is not None:
            arrays = self._f["checkpoint"]["arrays"]
            for name, a in final_state.items():
                arrays[name][...] = np.reshape(a, arrays[name].shape)
        self._f.flush()
        self._f.close()


class _Refused(Exception):
    pass


# -- the main file (rank 0) --------------------------------------------------------------------------------------
class MainFileWriter(RunWriter):
    """The serial writer, for the main file of a run under MPI: frames are in the rank files, so a frame here
    only appends its time and step (once every rank has flushed its block: the length of ``/time`` still counts
    complete frames); the final state is in the rank files too."""

    #: (temporary path, path, replace) of the file :meth:`create`/:meth:`resume` just built, kept for
    #: :meth:`publish`: the main file gets its name only once every rank file exists (so that a published file
    #: never refers to missing rank files, and HDF5 never has to open a rank file that another process holds in
    #: SWMR write mode while the virtual datasets are being made).
    _built: tuple[Path, Path, bool] | None = None
    PUBLISHED_AT_CREATE = False
    #: whether :meth:`publish` has given the main file its name (the XDMF index waits for it)
    _published = False

    @staticmethod
    def _publish(tmp: Path, path: Path, replace: bool) -> None:
        MainFileWriter._built = (tmp, path, replace)

    def take_built(self) -> None:
        """Remember the file just built (call right after :meth:`create` or :meth:`resume`)."""
        self._unpublished, MainFileWriter._built = MainFileWriter._built, None

    def publish(self) -> None:
        """Give the main file its name (RunFileError if it exists and may not be replaced)."""
        tmp, path, replace = self._unpublished
        RunWriter._publish(tmp, path, replace)
        self._unpublished = None
        self._published = True

    def _write_xdmf_now(self, force: bool = True) -> None:
        # The XDMF index names the main file, so it is written only once that file has its name (the next frame
        # or the close writes it): a run killed before leaves hidden temporaries only, never an index of a file
        # that does not exist.
        if not self._published:
            self._xdmf_stale = True
            return
        super()._write_xdmf_now(force)

    def discard(self) -> None:
        """Close and delete a main file that was never published (never raises)."""
        self.abort()
        built = getattr(self, "_unpublished", None)
        if built is not None:
            built[0].unlink(missing_ok=True)

    def commit_frame(self, step: int, time_min: float) -> None:
        """Queue the time and step of a frame every rank has flushed."""
        self._send_rows()
        self._put(("frame", int(step), float(time_min), {}))

    def commit_state(self, step: int) -> None:
        """Queue the flag of the kept state of ``step`` in ``/states/filled``: every rank has flushed its block of
        it (the arrays are virtual datasets over those blocks, so the flag is all this file writes)."""
        self._send_rows()
        self._put(("state_flag", int(step)))
        self._kept.add(int(step))

    def _do_state_flag(self, step: int) -> None:
        self._states["filled"][self.plan.keep_states.index(step)] = 1
        self._f.flush()

    def fail(self, message: str) -> None:
        """End the run file with status ``failed`` and ``message`` (another rank could not write); never raises.
        """
        if self._closed:
            return
        try:
            self._send_rows()
            self._queue.put(("fail", message))
            self._thread.join()
        except BaseException:  # noqa: BLE001 - best effort on the way out
            pass
        self._closed = True

    def _do_frame(self, step: int, time_min: float, layers: dict[str, np.ndarray]) -> None:
        n = self._n_frames
        for name, value in (("time", time_min), ("step", step)):
            ds = self._ds[name]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        self._f.flush()
        self._n_frames = n + 1
        self._times.append(time_min)
        self._flushed_step = self._last_step
        self._frame_step = step
        self._write_xdmf_now(force=False)

    def _do_fail(self, message: str) -> None:
        self._xdmf_if_stale()
        self._do_flush()
        self._set_status("failed", message)
        self._f.flush()
        self._f.close()

    def _work(self) -> None:  # "fail" ends the thread like "close"
        while True:
            item = self._queue.get()
            kind = item[0]
            try:
                if self._error is None:
                    getattr(self, "_do_" + kind)(*item[1:])
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                self._fail(exc, kind, item)
            finally:
                self._queue.task_done()
            if kind in ("close", "abort", "fail"):
                return


# -- checkpoints ----------------------------------------------------------------------------------------------
def write_block_checkpoint(path: Path, arrays: Mapping[str, np.ndarray], ndim: int, owned: Slices3,
                           run_id: str, step: int) -> None:
    """One rank's block of a checkpoint (arrays in the run's dimensionality), written and synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    rb = _slice_shape(_run_slices(owned, ndim))
    try:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            f.attrs.update({"format": RANK_FORMAT_NAME, "run_id": run_id, "step_index": np.int64(step),
                            "block_start": np.array([s.start for s in owned], dtype=np.int64)})
            g = f.create_group("arrays")
            for name, a in sorted(arrays.items()):
                a = np.reshape(a, rb)
                g.create_dataset(name, data=a, chunks=frame_chunks(tuple([1] * (3 - len(rb))) + rb,
                                                                   a.dtype.itemsize)[1:][-len(rb):],
                                 fletcher32=True, **compression_kwargs("gzip", a.dtype))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        # The block's name in its directory, and the directory's in OUT.h5.ranks/, must be on disk before rank 0
        # renames the checkpoint that refers to them into place.
        fsync_dir(path.parent)
        fsync_dir(path.parent.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_main_checkpoint(path: Path, meta: Mapping[str, Any], run_id: str, blocks: Sequence[Slices3],
                          files: Sequence[Path], state_dtypes: Mapping[str, np.dtype]) -> None:
    """``OUT.ckpt.h5``: the serial checkpoint layout, its arrays virtual datasets over the block files; written
    under a temporary name, synced and renamed over the previous one (the rename commits the checkpoint)."""
    from .layout import FORMAT_VERSION as _V

    path = Path(path)
    tmp = temporary_path(path)
    shape = tuple(int(d) for d in meta["shape"])
    try:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            f.attrs["format"] = CHECKPOINT_FORMAT_NAME
            f.attrs["format_version"] = _V
            write_state_attrs(f, meta, run_id, int(meta["step_index"]))
            g = f.create_group("arrays")
            for name in sorted(state_dtypes):
                virtual_array(g, name, shape, state_dtypes[name], blocks,
                              [(_rel(p, path), f"arrays/{name}") for p in files])
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def block_reader(path: Path, group: str | None = None
                 ) -> tuple[dict[str, Any], Callable[[str, Slices3], np.ndarray], Callable[[], None]]:
    """Open a checkpoint file (serial, or virtual over rank blocks) for reading blocks: returns ``(meta,
    read_block, close)`` where ``meta`` is the state without arrays and ``read_block(name, slices3)`` reads a
    3-D block of the whole-lattice array ``name``.  With ``group``, the state group of that name in the run file
    ``path`` instead (``start``: the state a run started from), opened as an SWMR reader (a file cut off while
    written opens only so)."""
    import json

    try:
        # a run file opens as RunReader opens it (rank 0 holds one open: HDF5 reopens only alike)
        f = h5py.File(path, "r") if group is None else open_file(path, swmr=True)
    except OSError as exc:
        what = "checkpoint" if group is None else f"/{group} of"
        raise RunFileError(f"cannot read {what} {str(path)!r}: {describe_os_error(exc)}") from None
    try:
        if group is None and f.attrs.get("format") != CHECKPOINT_FORMAT_NAME:
            raise RunFileError(f"{str(path)!r} is not a tumorca checkpoint file")
        g = f if group is None else f[group]
        a = g.attrs
        meta = {"version": str(a.get("tumorca_version", "")),
                "shape": tuple(int(d) for d in np.asarray(a["shape"]).ravel()),
                "params": json.loads(str(a["parameters"])), "seed": int(a["seed"]),
                "step_index": int(a["step_index"])}
        arrays = g["arrays"]
        check_sources(f, Path(path))
    except (KeyError, ValueError, OSError) as exc:
        f.close()
        raise RunFileError(f"checkpoint {str(path)!r} is incomplete or damaged: {exc}") from None
    except BaseException:
        f.close()
        raise
    ndim = len(meta["shape"])

    def read_block(name: str, slices: Slices3) -> np.ndarray:
        sl = tuple(slices)
        try:
            ds = arrays[name]
            block = ds[_run_slices(sl, ndim)]
        except (KeyError, ValueError, OSError) as exc:
            raise RunFileError(f"checkpoint {str(path)!r}: cannot read {name!r}: {exc}") from None
        return np.reshape(block, _slice_shape(sl))

    return meta, read_block, f.close


# -- housekeeping -------------------------------------------------------------------------------------------------
def referenced_dirs(path: Path) -> set[Path]:
    """Directories of the source files of the virtual datasets in the file ``path`` (resolved; empty if it
    cannot be read).  Do not call on a file this process has open for writing."""
    try:
        with h5py.File(path, "r") as f:
            return {(path.parent / name).resolve().parent for name in virtual_files(f)}
    except OSError:
        return set()


def remove_unreferenced(path: Path, keep: set[Path]) -> None:
    """Remove the generation directories in ``OUT.h5.ranks`` other than ``keep`` (those the main file and its
    checkpoint refer to), and the directory itself once empty.  Best effort: never raises."""
    d = ranks_dir(path)
    if not d.is_dir():
        return
    try:
        keep = {Path(k).resolve() for k in keep}
        for sub in d.iterdir():
            if sub.is_dir() and sub.resolve() not in keep and (sub.name.startswith(("frames-", "ckpt-"))):
                shutil.rmtree(sub, ignore_errors=True)
        if not any(d.iterdir()):
            d.rmdir()
    except OSError:
        pass
