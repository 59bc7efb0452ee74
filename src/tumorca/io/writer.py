"""RunWriter: streams a simulation into one HDF5 run file (docs/FORMAT.md) from a background thread.

Design, and why:

* The file is built under a temporary name, every dataset and attribute is created, SWMR mode is switched on, and
  only then is it given the user's name (by a hard link that fails if the name exists, or by an atomic rename
  for ``--overwrite``/``--resume``): bad input or a failure while setting up never creates, truncates or replaces
  a user file.
* SWMR (single writer, multiple readers): a reader can follow the run, and after ``kill -9`` the file opens in
  SWMR read mode with every flushed frame.  SWMR forbids creating objects or attributes once on, so everything
  the end of the run writes -- the ``/run`` status datasets and the final state in ``/checkpoint`` -- is laid
  out before SWMR starts and only filled at the end.  The file is therefore never open in any other write mode
  under the user's name: there is no moment at which a kill leaves it unreadable.
* Each frame is written in two flushed phases, the layers first and ``time``/``step`` second, and the XDMF sidecar
  is rewritten after that: the length of ``time`` therefore never counts a frame whose data is not on disk.
* Compression runs on a writer thread (HDF5 releases the GIL while it writes), fed through a bounded queue, so the
  engine does not wait on gzip unless the writer falls a whole queue behind.
* Periodic checkpoints go to a sibling file ``OUT.ckpt.h5`` replaced atomically, after the frames and time-series
  rows up to that step have been flushed: a checkpoint on disk always has its frames on disk.
* Kept states (``/states/step_<N>``) are laid out at creation like the final state and filled when their step is
  reached; their flag in ``/states/filled`` is set only after the arrays are flushed, so a set flag always vouches
  for a whole state.  A run's given start state (``/start``) is written whole before the file gets its name.
"""
from __future__ import annotations

import datetime as _dt
import errno
import glob
import json
import os
import platform
import queue
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

import h5py
import numpy as np

from .. import __version__
from .._constants import Cell, Vessel
from .checkpoint import create_state_group, fill_state_group, read_state, save_checkpoint_file, write_state
from .layout import (FORMAT_NAME, LIBVER, FORMAT_VERSION, LINEAGE_PREFIXES, SUMMARY_UNITS, TIMESERIES_CHUNK,
                     RunFileError, RunPlan, cell_state_attrs, compression_kwargs, coordinates, fmt_bytes,
                     frame_chunks, layer_meta, sidecar_paths, summary_dtype, temporary_path, temporary_prefix)
from .xdmf import write_xdmf, xdmf_document, xdmf_frame

#: Bytes kept for the error message in /run/error.
ERROR_BYTES = 1024
#: Items the writer thread may hold queued: bounds the memory held in frame copies (about this many frames).
QUEUE_DEPTH = 3
#: The XDMF index is rewritten after a frame at most this often (seconds), and at most once per this many times
#: the last rewrite took: a rewrite names every frame, so rewriting after each of n frames cost O(n^2) in all.
#: It is always rewritten at a checkpoint and at the end.
XDMF_INTERVAL = 1.0
XDMF_COST_FACTOR = 20.0


def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def process_start_ticks(pid: int | None = None) -> int:
    """Start time of a process in clock ticks since boot (Linux ``/proc/PID/stat`` field 22), or 0 if unknown.

    Stored with the writer's pid so ``inspect`` can tell a live writer from a reused pid.
    """
    try:
        with open(f"/proc/{pid or os.getpid()}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs.  A zombie (killed, not yet reaped: an MPI rank whose launcher was killed
    with it waits for init to reap it) has stopped writing for good and counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return not os.path.isdir("/proc/self")  # gone since, or no /proc here: trust the signal


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the hidden temporary files (``.NAME.PID....tmp``) that a tumorca process killed while writing
    ``path`` or its sidecars left beside them, sparing those of processes still alive; returns what it removed.

    A resume or a checkpoint writes under such a name and renames it into place; a process killed in between
    (or by a full disk) leaves a file that may be as large as the run and that nothing else would ever remove."""
    path = Path(path)
    removed = []
    for name in [path.name, *(p.name for p in sidecar_paths(path))]:
        prefix = temporary_prefix(path.with_name(name))
        try:
            candidates = list(path.parent.glob(glob.escape(prefix) + "*.tmp"))
        except OSError:
            return removed
        for p in candidates:
            pid = p.name[len(prefix):].split(".")[0]
            if not pid.isdigit() or (int(pid) != os.getpid() and _pid_alive(int(pid))):
                continue
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def remove_stale_lock(path: str | Path) -> bool:
    """Remove the lock file of ``path`` (see :class:`OutputLock`) if no process holds it -- one killed after it
    finished writing leaves it beside a complete run, which nothing would lock again.  Returns whether it did.
    Safe against a process taking the lock meanwhile: the file is unlinked while locked, as on release."""
    import fcntl

    path = Path(path)
    lock_path = path.with_name(temporary_prefix(path) + "lock")
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(lock_path).st_ino:
            return False
        os.unlink(lock_path)
        return True
    except OSError:  # held by a live process (this one included), or gone meanwhile
        return False
    finally:
        os.close(fd)


class OutputLock:
    """An exclusive lock on a run file for as long as a process writes it: ``flock`` on a hidden ``.NAME.lock``
    beside it (removed on release).  A second tumorca writing the same file -- two ``--overwrite`` or two
    ``--resume`` started together -- is refused with one line instead of racing the first.

    The lock file is unlinked while locked; a process that opened it just before, and so locks a file no longer
    there, sees that (the inode at the path differs) and tries again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(temporary_prefix(self.path) + "lock")
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        """Take the lock; RunFileError (one line) if another process holds it or it cannot be made."""
        import fcntl

        for _ in range(5):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunFileError(f"cannot lock {str(self.path)!r}: {describe_os_error(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    other = os.read(fd, 100).decode(errors="replace").strip()
                finally:
                    os.close(fd)
                raise RunFileError(f"{str(self.path)!r} is being written by another tumorca process"
                                   + (f" ({other})" if other else "") + "; wait for it to end, or stop it first") \
                    from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except OSError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
                self._fd = fd
                return self
            os.close(fd)
        raise RunFileError(f"cannot lock {str(self.path)!r}: its lock file keeps changing")

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def describe_os_error(exc: BaseException) -> str:
    """One line for an I/O failure, naming disk-full and file-size-limit cases plainly."""
    text = str(exc)
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left" in text or "errno = 28" in text:
        return "disk full (No space left on device)"
    if code == errno.EDQUOT or "Disk quota exceeded" in text:
        return "disk quota exceeded"
    if code == errno.EFBIG or "File too large" in text or "errno = 27" in text:
        return "file size limit reached (File too large)"
    return " ".join(text.split()) or type(exc).__name__


class RunWriter:
    """Writes one run: frames, the per-step time series, checkpoints and the final state.

    Use :meth:`create` for a new run or :meth:`resume` to continue a cut-off one; then call :meth:`add_row` after
    every step (and for step 0), :meth:`add_frame` on the plan's frame steps, :meth:`add_checkpoint` when a
    checkpoint is due and :meth:`close` at the end.  Calls return as soon as the work is queued; a failure of the
    writer thread is raised as :class:`RunFileError` by the next call.

    Parameters are not meant to be passed to the constructor directly; see :meth:`create`.
    """

    #: Whether :meth:`create` gives the file its name (False for a writer whose caller publishes it later).
    PUBLISHED_AT_CREATE = True

    def __init__(self, path: Path, plan: RunPlan, keys: list[str], dtypes: list[np.dtype], run_id: str,
                 f: h5py.File, n_frames: int, n_rows: int, last_step: int,
                 kept: frozenset[int] = frozenset()) -> None:
        self.path = path
        self.plan = plan
        self.run_id = run_id
        self.xdmf_path, self.checkpoint_path = sidecar_paths(path)
        self._keys = keys
        self._dtypes = dtypes
        self._f = f
        # Every handle the writer uses, opened once and kept: releasing a dataset handle makes HDF5 write its
        # cached chunks, and a failure there (disk full) could only be printed, never raised (see _fail).
        self._ds = {name: f[name] for name in ["time", "step"] + plan.layers}
        self._ts = {name: f["timeseries"][name] for name in ["step"] + keys}
        self._run = {name: f["run"][name] for name in f["run"]}
        self._states = ({name: f["states"][name] for name in f["states"]} if plan.keep_states else {})
        self._kept = set(kept)  # kept states handed over (filled, or queued to be)
        self._times: list[float] = [float(t) for t in self._ds["time"][:n_frames]]
        self._n_frames = n_frames    # frames on disk (length of /time)
        self._n_rows = n_rows        # time-series rows on disk
        self._rows: list[list[Any]] = []
        self._last_step = last_step  # step of the last row handed over (thread-side bookkeeping for messages)
        self._flushed_step = last_step  # step of the last row flushed to disk
        self._frame_step = last_step if n_frames else -1  # step of the last frame on disk
        self._reserve = 256 * 1024  # slack for HDF5 metadata and the end-of-run attributes
        self._xdmf_frames: list[str] = []
        self._xdmf_due = 0.0  # time.monotonic() from which the next frame rewrites the XDMF index
        self._xdmf_stale = False  # frames on disk that the XDMF index does not name yet
        self.broken = False  # True after a failed HDF5 write: see _fail
        self._keepalive: BaseException | None = None
        self._error: BaseException | None = None
        self._error_msg = ""
        self._closed = False
        self._t0 = time.perf_counter()
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._work, name="tumorca-writer", daemon=True)
        self._thread.start()

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, plan: RunPlan, summary: Mapping[str, Any], state: dict[str, Any],
               provenance: Mapping[str, Any], overwrite: bool = False,
               layout: "FileLayout | None" = None, run_id: str | None = None,
               start_state: dict[str, Any] | None = None,
               lineage: Mapping[str, Any] | None = None) -> "RunWriter":
        """Create a new run file at ``path`` and return its writer.

        Parameters
        ----------
        path : path-like
            Output file.  Must not exist unless ``overwrite``; an existing file is replaced only once the new one
            has been set up.
        plan : RunPlan
            What the run computes and stores.
        summary : mapping
            One ``Simulation.summary()``: its keys become the time series (in this order) and its values set each
            series' type.
        state : dict
            One ``Simulation.get_state()``: the final state's datasets are laid out from it.
        provenance : mapping
            ``command_line`` and ``threads`` (further keys are stored as root attributes too).
        overwrite : bool
            Replace an existing file.
        layout : FileLayout, optional
            How the frame datasets and the final state are made (default: chunked datasets in the file; a run
            under MPI passes virtual datasets over the rank files, :mod:`tumorca.io.distributed`).
        run_id : str, optional
            Identifier of the run (default: a fresh random one).
        start_state : dict, optional
            The state the run starts from, when it is not the built-in initial condition of the plan (a branch):
            stored whole in ``/start``, so that a resume before the first checkpoint starts from it.
        lineage : mapping, optional
            Root attributes recording where the start state came from; every name begins with one of
            :data:`~tumorca.io.layout.LINEAGE_PREFIXES` (kept as they are when the run is resumed).

        Raises
        ------
        RunFileError
            If the file cannot be created, or ``path`` exists and ``overwrite`` is false.
        """
        path = Path(path)
        remove_stale_temporaries(path)
        keys = [k for k in summary if k != "step"]
        dtypes = [summary_dtype(summary[k]) for k in keys]
        run_id = run_id or uuid.uuid4().hex
        lineage = dict(lineage or {})
        bad = [k for k in lineage if not k.startswith(LINEAGE_PREFIXES)]
        if bad:
            raise RunFileError(f"lineage attribute {bad[0]!r} does not begin with {' or '.join(LINEAGE_PREFIXES)}")
        attrs = {"start_time": utc_now(), "run_id": run_id, "resume_history": "[]", **provenance, **lineage}
        tmp, f = cls._build(path, plan, keys, dtypes, attrs, state, run_id, layout=layout, start_state=start_state,
                            start_summary=summary)
        try:
            cls._publish(tmp, path, replace=overwrite)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        xdmf, ckpt = sidecar_paths(path)
        if cls.PUBLISHED_AT_CREATE:
            # A stale checkpoint of an earlier run must never meet this file.  (A writer that publishes later
            # leaves this to its caller: until then the earlier run, checkpoint included, is intact.)
            ckpt.unlink(missing_ok=True)
        w = cls(path, plan, keys, dtypes, run_id, f, 0, 0, plan.start_step - 1)
        w._write_xdmf_now()
        return w

    @classmethod
    def resume(cls, path: str | Path, reader: "Any", checkpoint_step: int, state: dict[str, Any],
               provenance: Mapping[str, Any], layout: "FileLayout | None" = None) -> "RunWriter":
        """Rewrite a cut-off run file up to ``checkpoint_step`` and return a writer that continues it.

        The frames with step <= ``checkpoint_step`` and the time-series rows 0..``checkpoint_step`` are copied
        (compressed chunks byte for byte) into a new file, which then replaces ``path`` atomically; everything the
        old file held after the checkpoint is dropped.  Works on a file left open by a killed writer, which only an
        SWMR reader can open.

        Parameters
        ----------
        path : path-like
            The run file.
        reader : RunReader
            The file opened for reading (closed by this call).
        checkpoint_step : int
            Step of the checkpoint the run continues from (0: from the initial state).
        state : dict
            The engine state the run continues from (lays out the final state, as for :meth:`create`).
        provenance : mapping
            As for :meth:`create`; appended to ``resume_history``.
        layout : FileLayout, optional
            As for :meth:`create`.  Frames are copied only into a layout that stores them in this file.
        """
        path = Path(path)
        remove_stale_temporaries(path)
        plan = reader.plan
        old = reader.file
        ts = old["timeseries"]
        keys = [k for k in ts if k != "step"]
        dtypes = [ts[k].dtype for k in keys]
        s0 = plan.start_step  # row i holds step s0 + i
        keep_rows = min(reader.n_rows, checkpoint_step - s0 + 1)
        if keep_rows < checkpoint_step - s0 + 1 and checkpoint_step > s0:
            raise RunFileError(f"{str(path)!r} holds rows up to step {s0 + reader.n_rows - 1} only, but its "
                               f"checkpoint is at step {checkpoint_step}")
        # The given start state, and the kept states up to the checkpoint (later ones are computed again).
        start_state = read_state(old["start"]) if "start" in old else None
        start_summary = json.loads(str(old["start"].attrs.get("summary", "{}"))) if "start" in old else None
        kept = [(i, k) for i, k in enumerate(plan.keep_states) if k <= checkpoint_step
                and "states" in old and bool(old["states"]["filled"][i])]
        steps_on_disk = reader.steps
        keep_frames = int(np.count_nonzero(steps_on_disk <= checkpoint_step))
        history = json.loads(str(reader.attrs.get("resume_history", "[]")))
        history.append({"time": utc_now(), "from_step": checkpoint_step, "tumorca_version": __version__,
                        "command_line": str(provenance.get("command_line", "")), "host": socket.gethostname()})
        attrs = {k: v for k, v in reader.attrs.items()
                 if k in ("start_time", "run_id", "command_line") or k.startswith(LINEAGE_PREFIXES)}
        attrs.update({k: v for k, v in provenance.items() if k != "command_line"})
        attrs["resume_history"] = json.dumps(history)
        layout = layout or FileLayout()
        tmp, f = cls._build(path, plan, keys, dtypes, attrs, state, str(attrs["run_id"]), swmr=False,
                            layout=layout, start_state=start_state, start_summary=start_summary)
        try:
            for i, k in kept:
                if layout.stores_frames:  # else the caller copies them into the new rank files, as the frames
                    fill_state_group(f[f"states/step_{k}"], read_state(old[f"states/step_{k}"]))
                f["states/filled"][i] = 1
            for name in plan.layers if layout.stores_frames else ():
                _copy_frames(old[name], f[name], keep_frames)
            for name in ("time", "step"):
                f[name].resize(keep_frames, axis=0)
                f[name][:] = old[name][:keep_frames]
            for name in ["step"] + keys:
                f["timeseries"][name].resize(keep_rows, axis=0)
                f["timeseries"][name][:] = ts[name][:keep_rows]
            f.swmr_mode = True
            f.flush()
            reader.close()
            cls._publish(tmp, path, replace=True)
        except BaseException as exc:
            _close_quietly(f)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise RunFileError(f"cannot rewrite {str(path)!r} for resuming: {describe_os_error(exc)}") \
                    from None
            raise
        w = cls(path, plan, keys, dtypes, str(attrs["run_id"]), f, keep_frames, keep_rows, s0 + keep_rows - 1,
                kept=frozenset(k for _, k in kept))
        w._frame_step = int(steps_on_disk[keep_frames - 1]) if keep_frames else -1
        w._write_xdmf_now()
        return w

    @staticmethod
    def _build(path: Path, plan: RunPlan, keys: list[str], dtypes: list[np.dtype], extra_attrs: Mapping[str, Any],
               state: dict[str, Any], run_id: str, swmr: bool = True,
               layout: "FileLayout | None" = None,
               start_state: dict[str, Any] | None = None,
               start_summary: Mapping[str, Any] | None = None) -> tuple[Path, h5py.File]:
        """Create the file layout under a temporary name beside ``path``; returns (temporary path, open file)."""
        layout = layout or FileLayout()
        tmp = temporary_path(path, unique=True)
        try:
            f = h5py.File(tmp, "w", libver=LIBVER)
        except OSError as exc:
            raise RunFileError(f"cannot create {str(path)!r}: {describe_os_error(exc)}") from None
        try:
            _create_layout(f, plan, keys, dtypes, layout)
            layout.state_group(f.create_group("checkpoint"), state, run_id, plan.steps)
            if start_state is not None:
                g = f.create_group("start")
                write_state(g, start_state, run_id)
                g.attrs["long_name"] = "the state the run started from (not the built-in initial condition)"
                # its time-series row (row 0), which a resume that finds no row on disk writes again
                g.attrs["summary"] = json.dumps({k: plain_value(v) for k, v in (start_summary or {}).items()})
            if plan.keep_states:
                _create_kept_states(f, plan, state, run_id, layout)
            attrs = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "tumorca_version": __version__,
                     **plan.to_attrs(),
                     "host": socket.gethostname(), "writer_pid": np.int64(os.getpid()),
                     "writer_start": np.int64(process_start_ticks()), "python_version": platform.python_version(),
                     "numpy_version": np.__version__, "h5py_version": h5py.version.version,
                     "hdf5_version": h5py.version.hdf5_version}
            for k, v in {**attrs, **extra_attrs}.items():
                f.attrs[k] = v
            if swmr:
                f.swmr_mode = True
                f.flush()
        except BaseException as exc:
            _close_quietly(f)
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise RunFileError(f"cannot create {str(path)!r}: {describe_os_error(exc)}") from None
            raise
        return tmp, f

    @staticmethod
    def _publish(tmp: Path, path: Path, replace: bool) -> None:
        """Give the temporary file the user's name: a hard link (fails if the name exists) or, with ``replace``,
        an atomic rename over the old file."""
        try:
            if replace:
                os.replace(tmp, path)
                return
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise RunFileError(f"{str(path)!r} already exists (use --overwrite to replace it or --resume to "
                                   "continue it)") from None
            except OSError:
                # Filesystems without hard links: check, then rename (a small race window instead of none).
                if path.exists():
                    raise RunFileError(f"{str(path)!r} already exists (use --overwrite to replace it or --resume "
                                       "to continue it)") from None
                os.replace(tmp, path)
                return
            tmp.unlink()
        except OSError as exc:
            raise RunFileError(f"cannot create {str(path)!r}: {describe_os_error(exc)}") from None

    # -- the caller's side ----------------------------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        """Frames on disk when the writer was created (resume: the frames kept); not updated as it writes."""
        return self._n_frames

    @property
    def rows_written(self) -> int:
        return self._n_rows

    def add_row(self, summary: Mapping[str, Any]) -> None:
        """Record the per-step quantities of one step (``Simulation.summary()``), in step order from 0."""
        self._check()
        try:
            self._rows.append([summary["step"]] + [summary[k] for k in self._keys])
        except KeyError as exc:
            raise RunFileError(f"summary() lacks the quantity {exc.args[0]!r} this file records") from None

    def add_frame(self, step: int, time_min: float, layers: Mapping[str, np.ndarray]) -> None:
        """Queue one frame: ``layers`` maps every name of ``plan.layers`` to an array of the lattice shape.  The
        arrays are kept until written: pass copies, not views of engine state."""
        self._send_rows()
        self._put(("frame", int(step), float(time_min), dict(layers)))

    def is_kept(self, step: int) -> bool:
        """Whether the state of ``step`` is kept and already on disk (or queued to be)."""
        return step in self._kept

    def add_state(self, state: dict[str, Any]) -> None:
        """Queue a kept state (``Simulation.get_state()`` at one of ``plan.keep_states``): it fills
        ``/states/step_<N>``, then its flag in ``/states/filled``."""
        step = int(state["step_index"])
        if step not in self.plan.keep_states:
            raise RunFileError(f"step {step} is not one of the kept states of {str(self.path)!r}")
        self._send_rows()
        self._put(("state", state))
        self._kept.add(step)

    def add_checkpoint(self, state: dict[str, Any]) -> None:
        """Queue a checkpoint (``Simulation.get_state()``); it replaces ``OUT.ckpt.h5`` once the frames and rows
        before it are flushed."""
        self._send_rows()
        self._put(("checkpoint", state))

    def sync(self) -> None:
        """Wait until everything queued is written and flushed."""
        self._send_rows()
        self._put(("flush",))
        self._queue.join()
        self._check()

    def close(self, status: str = "complete", final_state: dict[str, Any] | None = None) -> None:
        """Write everything queued, end the SWMR session and record ``status`` (``complete``, ``interrupted`` or
        ``failed``) with the end time; with ``final_state``, store it as the file's ``/checkpoint`` group.  A
        complete run's sibling checkpoint is then deleted.  Raises RunFileError if any write failed."""
        if self._closed:
            return
        self._send_rows()
        self._put(("close", status, final_state))
        self._thread.join()
        self._closed = True
        self._check()

    def abort(self) -> None:
        """Stop after an error in the caller: flush what is queued and close, leaving status ``running`` (so the
        file reads as cut off and ``--resume`` applies).  Never raises."""
        if self._closed:
            return
        try:
            self._rows.clear()
            self._queue.put(("abort",))
            self._thread.join()
        except BaseException:  # pragma: no cover - best effort on the way out
            pass
        self._closed = True

    @property
    def failure(self) -> str:
        """The writer thread's error message, or ``""``."""
        return self._error_msg

    def _send_rows(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self._put(("rows", rows))

    def _put(self, item: tuple) -> None:
        self._check()
        if self._closed:
            raise RunFileError(f"{str(self.path)!r} is closed")
        self._queue.put(item)

    def _check(self) -> None:
        if self._error is not None:
            err = RunFileError(self._error_msg)
            err.broken = self.broken  # the caller should end the process without closing HDF5 (see _fail)
            err.resumable = True  # the file is a run cut short: --resume continues it
            raise err from None

    # -- the writer thread ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            kind = item[0]
            try:
                if self._error is None:
                    getattr(self, "_do_" + kind)(*item[1:])
            except _CleanStop as stop:
                self._stop_cleanly(stop.message)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                self._fail(exc, kind, item)
            finally:
                self._queue.task_done()
            if kind in ("close", "abort"):
                return

    def _on_disk(self) -> str:
        if self._frame_step < 0:
            return "it holds no frame yet"
        return (f"it is readable up to step {self._flushed_step} (last frame: step {self._frame_step})")

    def _fail(self, exc: BaseException, kind: str, item: tuple) -> None:
        """A write failed inside HDF5 (e.g. the disk filled up between the space check and the write).

        The library then holds dirty metadata it cannot write; closing the file, or even releasing a dataset
        handle, makes it retry and fail again (and has crashed the interpreter at exit).  So the handles are kept
        alive, untouched: the file on disk stays as it was at the last flush, which an SWMR reader opens and
        --resume continues.  Callers that can should end the process with ``os._exit`` (the CLI does).
        """
        what = {"frame": f"the frame of step {item[1]}" if kind == "frame" else "",
                "checkpoint": "a checkpoint", "rows": "the time series",
                "close": "the end of the run"}.get(kind, kind)
        self._error_msg = (f"writing {what} to {str(self.path)!r} failed: {describe_os_error(exc)}; "
                           f"{self._on_disk()}")
        self._error = exc
        self.broken = True
        self._keepalive = exc  # its traceback holds the frames that hold the dataset handles

    def _stop_cleanly(self, message: str) -> None:
        """Not enough space for the next write: close the file properly, marked ``failed``, before anything is
        lost (the file then opens like a finished one, and --resume continues it)."""
        self._error_msg = f"{message}; {self._on_disk()}"
        self._error = RunFileError(self._error_msg)
        self._xdmf_if_stale()
        try:
            self._do_flush()
            self._set_status("failed", message)  # the /run datasets have their space already: this always fits
            self._f.flush()
            self._f.close()
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc, "close", ("close",))
            self._error_msg = f"{message}; {self._on_disk()}"

    def _check_space(self, what: str, need: int) -> None:
        """Raise _CleanStop if the disk (or the process's file-size limit) may not hold ``need`` more bytes."""
        reserve = need + self._reserve
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = None
        if free is not None and free < reserve:
            raise _CleanStop(f"disk nearly full: {fmt_bytes(free)} free in {str(self.path.parent)!r}, writing "
                             f"{what} may need {fmt_bytes(reserve)}; stopped and closed {str(self.path)!r}")
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
        if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)):
            try:
                size = os.stat(self.path).st_size
            except OSError:
                size = 0
            if size + reserve > limit:
                raise _CleanStop(f"file size limit ({fmt_bytes(limit)}, ulimit -f) nearly reached: writing {what} "
                                 f"may need {fmt_bytes(reserve)} more; stopped and closed {str(self.path)!r}")

    def _do_rows(self, rows: list[list[Any]]) -> None:
        n, k = self._n_rows, len(rows)
        cols = list(zip(*rows))
        for j, name in enumerate(["step"] + self._keys):
            ds = self._ts[name]
            ds.resize(n + k, axis=0)
            ds[n:] = np.asarray(cols[j], dtype=ds.dtype)
        self._n_rows = n + k
        self._last_step = int(rows[-1][0])

    def _do_frame(self, step: int, time_min: float, layers: dict[str, np.ndarray]) -> None:
        self._check_space(f"the frame of step {step}", self.plan.frame_bytes())
        f, n = self._f, self._n_frames
        shape4 = (1, *self.plan.shape3)
        for name in self.plan.layers:
            ds = self._ds[name]
            ds.resize(n + 1, axis=0)
            ds[n:] = np.reshape(layers[name], shape4)
        f.flush()
        # Phase two: only now does the frame count (the length of /time) include this frame.
        for name, value in (("time", time_min), ("step", step)):
            ds = self._ds[name]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        f.flush()
        self._n_frames = n + 1
        self._times.append(time_min)
        self._flushed_step = self._last_step
        self._frame_step = step
        self._write_xdmf_now(force=False)

    def _do_state(self, state: dict[str, Any]) -> None:
        step = int(state["step_index"])
        self._check_space(f"the kept state of step {step}", _state_bytes(state))
        fill_state_group(self._f[f"states/step_{step}"], state)
        self._do_flush()
        # Second phase, as for frames: the flag is set only once the state it vouches for is on disk.
        self._states["filled"][self.plan.keep_states.index(step)] = 1
        self._f.flush()

    def _do_flush(self) -> None:
        self._f.flush()
        self._flushed_step = self._last_step

    def _do_checkpoint(self, state: dict[str, Any]) -> None:
        self._check_space("a checkpoint", _state_bytes(state))
        self._do_flush()
        if self._xdmf_stale:
            self._write_xdmf_now()
        try:
            save_checkpoint_file(self.checkpoint_path, state, self.run_id)
        except OSError as exc:
            # The run file itself is intact and flushed: close it properly rather than leave it half-open.
            raise _CleanStop(f"writing the checkpoint {str(self.checkpoint_path)!r} failed: "
                             f"{describe_os_error(exc)}; stopped and closed {str(self.path)!r}") from None

    def _do_abort(self) -> None:
        self._xdmf_if_stale()
        self._f.flush()
        self._f.close()

    def _xdmf_if_stale(self) -> None:
        """Name every frame on disk in the XDMF index before the writer stops (a failure here is no news)."""
        if self._xdmf_stale:
            try:
                self._write_xdmf_now()
            except OSError:
                pass

    def _set_status(self, status: str, error: str = "") -> None:
        run = self._run
        run["status"][()] = status.encode()
        run["end_time"][()] = utc_now().encode()
        run["steps_done"][()] = self._flushed_step
        run["wall_seconds"][()] = time.perf_counter() - self._t0
        run["error"][()] = error.encode("utf-8", "replace")[:ERROR_BYTES]

    def _do_close(self, status: str, final_state: dict[str, Any] | None) -> None:
        if self._xdmf_stale:
            self._write_xdmf_now()
        if final_state is not None:
            self._check_space("the final state", _state_bytes(final_state))
            fill_state_group(self._f["checkpoint"], final_state)
        self._do_flush()
        # The status is written after the final state is flushed: "complete" vouches for /checkpoint.
        self._set_status(status)
        self._f.flush()
        self._f.close()
        if status == "complete":
            self.checkpoint_path.unlink(missing_ok=True)

    def _write_xdmf_now(self, force: bool = True) -> None:
        """Rewrite the XDMF index to name every frame on disk; without ``force``, only if it is due (see
        :data:`XDMF_INTERVAL`), so that the cost per frame stays constant however many frames there are."""
        now = time.monotonic()
        if not force and now < self._xdmf_due:
            self._xdmf_stale = True
            return
        n = self._n_frames
        times = self._times
        layers = [(name, self._ds[name].dtype) for name in self.plan.layers]
        # Frame blocks are cached: each rewrite only joins them (the text of old frames never changes, except
        # the dataset length, which xdmf_document fills in).
        while len(self._xdmf_frames) < n:
            i = len(self._xdmf_frames)
            self._xdmf_frames.append(xdmf_frame(i, float(times[i]), self.path.name, self.plan.shape3,
                                                self.plan.params.dx_um, layers))
        del self._xdmf_frames[n:]
        write_xdmf(self.xdmf_path, xdmf_document(self._xdmf_frames, n))
        done = time.monotonic()
        self._xdmf_due = done + max(XDMF_INTERVAL, XDMF_COST_FACTOR * (done - now))
        self._xdmf_stale = False


def _close_quietly(f: h5py.File) -> None:
    """Close a file whose writing failed (on a full disk, closing flushes and fails again): its temporary name is
    removed next, whatever the close did."""
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the error that matters is the one being raised
        pass


class _CleanStop(Exception):
    """Raised in the writer thread to stop with a properly closed file (not enough space, checkpoint failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def plain_value(v: Any) -> Any:
    """A NumPy scalar as the Python number it holds (what JSON takes; a row read back from a file)."""
    return v.item() if isinstance(v, np.generic) else v


def _state_bytes(state: dict[str, Any]) -> int:
    return sum(np.asarray(a).nbytes for a in state["arrays"].values())


class FileLayout:
    """How a run file's lattice datasets are made: the frame datasets and the final state's arrays.  This one
    makes ordinary chunked, compressed datasets in the file itself (a serial run); a run under MPI makes virtual
    datasets over its rank files instead (:class:`tumorca.io.distributed.VirtualRunLayout`)."""

    #: Whether frames and kept states are written into this file (and so copied when a run is resumed).
    stores_frames = True

    def frame_dataset(self, f: h5py.File, name: str, plan: RunPlan, dtype: np.dtype) -> h5py.Dataset:
        """Create the empty frame dataset ``name``, shaped ``(0, nz, ny, nx)``, growing along time."""
        nz, ny, nx = plan.shape3
        return f.create_dataset(name, shape=(0, nz, ny, nx), maxshape=(None, nz, ny, nx), dtype=dtype,
                                chunks=frame_chunks(plan.shape3, dtype.itemsize),
                                fletcher32=True, **compression_kwargs(plan.compression, dtype))

    def state_group(self, group: h5py.Group, state: dict[str, Any], run_id: str, step_index: int,
                    source: str = "checkpoint") -> None:
        """Lay out a state in ``group`` (see :func:`tumorca.io.checkpoint.create_state_group`): the final state,
        or a kept state.  ``source`` names the group (``checkpoint``, ``states/step_<N>``); a layout whose arrays
        live elsewhere maps them from the group of that name there."""
        create_state_group(group, state, run_id, step_index=step_index)


def _create_layout(f: h5py.File, plan: RunPlan, keys: list[str], dtypes: list[np.dtype],
                   layout: FileLayout | None = None) -> None:
    """Every dataset of a run file, empty along time, with units and dimension scales (docs/FORMAT.md)."""
    layout = layout or FileLayout()
    nz, ny, nx = plan.shape3
    dx = plan.params.dx_um
    t = f.create_dataset("time", shape=(0,), maxshape=(None,), chunks=(TIMESERIES_CHUNK,), dtype=np.float64)
    t.attrs.update({"units": "min", "long_name": "simulated time of each frame"})
    t.make_scale("time")
    for name, n in (("z", nz), ("y", ny), ("x", nx)):
        d = f.create_dataset(name, data=coordinates(n, dx))
        d.attrs.update({"units": "um", "long_name": f"{name} of the site centre"})
        d.make_scale(name)
    s = f.create_dataset("step", shape=(0,), maxshape=(None,), chunks=(TIMESERIES_CHUNK,), dtype=np.int64)
    s.attrs.update({"units": "1", "long_name": "step index of each frame"})
    s.dims[0].attach_scale(t)
    for name in plan.layers:
        dtype, units, long_name = layer_meta(name)
        ds = layout.frame_dataset(f, name, plan, dtype)
        ds.attrs.update({"units": units, "long_name": long_name})
        if name in ("tissue", "vessel"):
            ds.attrs.update(cell_state_attrs(Cell if name == "tissue" else Vessel))
        for axis, scale in enumerate(("time", "z", "y", "x")):
            ds.dims[axis].attach_scale(f[scale])
    run = f.create_group("run")
    run.attrs["long_name"] = "how the run ended; written in place at the end (SWMR allows no new attributes)"
    # Fixed-size datasets written now, so their space exists: setting them at the end never needs more disk.
    for name, value in (("status", np.bytes_(b"running".ljust(16))), ("end_time", np.bytes_(b"".ljust(32))),
                        ("steps_done", np.int64(-1)), ("wall_seconds", np.float64(0.0)),
                        ("error", np.bytes_(b"".ljust(ERROR_BYTES)))):
        run.create_dataset(name, data=value)
    run["status"][()] = b"running"
    g = f.create_group("timeseries")
    g.attrs["long_name"] = ("Simulation.summary() after every step (row i: after step start_step + i; row 0: the "
                            "start state)")
    st = g.create_dataset("step", shape=(0,), maxshape=(None,), chunks=(TIMESERIES_CHUNK,), dtype=np.int64)
    st.attrs.update({"units": "1", "long_name": "step index"})
    st.make_scale("step")
    for key, dtype in zip(keys, dtypes):
        ds = g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(TIMESERIES_CHUNK,), dtype=dtype)
        ds.attrs["units"] = SUMMARY_UNITS.get(key, "")
        ds.dims[0].attach_scale(st)


def _create_kept_states(f: h5py.File, plan: RunPlan, state: dict[str, Any], run_id: str,
                        layout: FileLayout) -> None:
    """``/states``: the kept steps, a fill flag per state and one empty state group per step (SWMR allows nothing
    new later), laid out by ``layout`` as the final state is (under MPI: virtual datasets over the rank files)."""
    g = f.create_group("states")
    g.attrs["long_name"] = "full engine states kept at chosen steps (tumorca run --keep-states), to branch from"
    steps = g.create_dataset("steps", data=np.array(plan.keep_states, dtype=np.int64))
    steps.attrs.update({"units": "1", "long_name": "step of each kept state"})
    filled = g.create_dataset("filled", data=np.zeros(len(plan.keep_states), dtype=np.uint8))
    filled.attrs.update({"units": "1", "long_name": "1 once the kept state of that step is on disk"})
    for k in plan.keep_states:
        layout.state_group(g.create_group(f"step_{k}"), state, run_id, k, source=f"states/step_{k}")


def _copy_frames(src: h5py.Dataset, dst: h5py.Dataset, n: int) -> None:
    """Copy the first ``n`` frames.  With equal chunking and filters the compressed chunks are copied as they are
    (bit-identical, no recompression); otherwise frame by frame through NumPy."""
    dst.resize(n, axis=0)
    if n == 0:
        return
    same = (src.chunks == dst.chunks and src.compression == dst.compression
            and src.compression_opts == dst.compression_opts and src.shuffle == dst.shuffle
            and src.fletcher32 == dst.fletcher32 and src.dtype == dst.dtype)
    if not same:
        for i in range(n):
            dst[i] = src[i]
        return
    _, nz, ny, nx = dst.shape
    _, cz, cy, cx = dst.chunks
    for i in range(n):
        for z in range(0, nz, cz):
            for y in range(0, ny, cy):
                for x in range(0, nx, cx):
                    mask, data = src.id.read_direct_chunk((i, z, y, x))
                    dst.id.write_direct_chunk((i, z, y, x), data, mask)
