"""RunReader: reads a run file (docs/FORMAT.md), finished, still being written, or cut off.

Needs only h5py, NumPy and tumorca's pure-Python modules (no compiled engine).
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..params import PARAMETERS, Params
from .checkpoint import load_checkpoint_file, read_state
from .hdf5 import end_of_file_address, open_file
from .._constants import FIELD_NAMES, MINUTES_PER_DAY
from .. import __version__
from ..errors import TumorcaError
from .layout import (CHECKPOINT_FORMAT_NAME, FORMAT_NAME, FORMAT_VERSION, LINEAGE_PREFIXES, RunFileError, RunPlan,
                     layer_names, legacy_checkpoint_path, sidecar_paths)

_DEFAULTS = {s.name: s.default for s in PARAMETERS}


@dataclass(frozen=True)
class RunStatus:
    """Where a run file stands.

    Attributes
    ----------
    state : str
        ``complete``; ``running`` (its writer process is alive); ``interrupted`` (stopped by a signal after writing
        a checkpoint); ``cut off`` (its writer died, e.g. ``kill -9`` or a crash); ``failed`` (a write failed);
        ``damaged`` (truncated or corrupted since it was written: see :meth:`RunReader.verify`).
    detail : str
        One line for people.
    resumable : bool
        Whether ``tumorca run --resume`` can continue it.
    """

    state: str
    detail: str
    resumable: bool


def _pid_alive(pid: int, start_ticks: int) -> bool:
    """Whether process ``pid`` (started at ``start_ticks``, 0 = unknown) is alive on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    if start_ticks:
        from .writer import process_start_ticks
        now = process_start_ticks(pid)
        if now and now != start_ticks:
            return False  # the pid was reused by another process
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False  # a zombie has finished writing
    except (OSError, IndexError):
        pass
    return True


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.rstrip(b"\0 ").decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


class RunReader:
    """Read-only access to a run file, safe while another process writes it.

    The file is opened in SWMR read mode (the only mode in which a file whose writer was killed opens), falling
    back to a plain open.  Call :meth:`refresh` to see frames written since.

    Parameters
    ----------
    path : path-like
        The run file.

    Raises
    ------
    RunFileError
        If the file is missing, not HDF5, not a tumorca run file, or of an unknown format major version.

    Examples
    --------
    >>> with RunReader("out.h5") as run:                           # doctest: +SKIP
    ...     print(run.shape, run.n_frames, run.status.state)
    ...     o2_last = run.frame("o2", -1)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RunFileError(f"{str(self.path)!r} does not exist")
        if self.path.is_dir():
            raise RunFileError(f"{str(self.path)!r} is a directory, not a run file")
        try:
            self.file = open_file(self.path, swmr=True)
        except OSError:
            try:
                self.file = open_file(self.path, swmr=False)
            except OSError as exc:
                msg = " ".join(str(exc).split())
                if not h5py.is_hdf5(self.path):
                    raise RunFileError(f"{str(self.path)!r} is not an HDF5 file") from None
                raise RunFileError(f"cannot open {str(self.path)!r}: {msg}") from None
        try:
            fmt = _decode(self.file.attrs.get("format", ""))
            if fmt != FORMAT_NAME:
                raise RunFileError(f"{str(self.path)!r} is not a tumorca run file (no format = {FORMAT_NAME!r} "
                                   "attribute)")
            version = str(_decode(self.file.attrs.get("format_version", "")))
            if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
                old = " (1.x files hold vessels in the tissue layer; rerun them with this tumorca)" \
                    if version.split(".")[0] == "1" else ""
                raise RunFileError(f"{str(self.path)!r} has format version {version}; this tumorca reads "
                                   f"{FORMAT_VERSION.split('.')[0]}.x{old}")
        except BaseException:
            self.file.close()
            raise
        self.attrs: dict[str, Any] = {k: _decode(v) for k, v in self.file.attrs.items()}
        self._plan: RunPlan | None = None
        try:
            missing = [n for n in ("time", "step", "timeseries", "run") if n not in self.file]
            if missing:
                raise RunFileError(f"{str(self.path)!r} is damaged: it has no {', '.join('/' + n for n in missing)}")
            self._refresh_counts()
        except BaseException as exc:
            self.file.close()
            if isinstance(exc, (OSError, KeyError, ValueError, TypeError, AttributeError)):
                raise RunFileError(f"{str(self.path)!r} is damaged: {_damage(exc)}") from None
            raise

    # -- context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.file.id.valid:
            self.file.close()

    # -- plan and metadata -----------------------------------------------------------------------------------
    @property
    def plan(self) -> RunPlan:
        """The run's plan (shape, parameters, seed, steps, frames...).  ParameterError if the file's parameters
        are unknown to this tumorca version."""
        if self._plan is None:
            try:
                plan = RunPlan.from_attrs(self.attrs)
                seed_ok = 0 <= plan.seed < 2 ** 64
            except TumorcaError:
                raise
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise RunFileError(f"{str(self.path)!r} is damaged: its attributes do not describe a run: "
                                   f"{_damage(exc)}") from None
            if not seed_ok:
                raise RunFileError(f"{str(self.path)!r} is damaged: its seed {plan.seed} is out of range")
            self._plan = plan
        return self._plan

    @property
    def parameters(self) -> dict[str, Any]:
        """All parameters as stored (JSON), without validation."""
        return json.loads(self.attrs["parameters"])

    def changed_parameters(self) -> dict[str, tuple[Any, Any]]:
        """Parameters that differ from this version's defaults: name -> (value, default); unknown names map to
        (value, None)."""
        out = {}
        for k, v in self.parameters.items():
            d = _DEFAULTS.get(k)
            if k not in _DEFAULTS or v != d:
                out[k] = (v, d)
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        """Lattice shape as given to the run: (ny, nx) or (nz, ny, nx)."""
        return tuple(int(d) for d in np.asarray(self.attrs["shape"]).ravel())

    @property
    def shape3(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in np.asarray(self.attrs["lattice_shape"]).ravel())

    @property
    def layers(self) -> list[str]:
        """Names of the frame datasets (T, nz, ny, nx)."""
        present = [k for k, v in self.file.items() if isinstance(v, h5py.Dataset) and v.ndim == 4]
        order = layer_names(FIELD_NAMES)  # file order: base layers, then fields in FIELD_NAMES order
        return sorted(present, key=lambda k: (order.index(k) if k in order else len(order), k))

    @property
    def xdmf_path(self) -> Path:
        return sidecar_paths(self.path)[0]

    @property
    def checkpoint_path(self) -> Path:
        """``OUT.h5.ckpt.h5``; or, if there is none, a checkpoint of this run under the stem-based name of
        earlier versions (``OUT.ckpt.h5``), which a sibling file with another suffix may own (run id checked)."""
        ck = sidecar_paths(self.path)[1]
        old = legacy_checkpoint_path(self.path)
        if not ck.exists() and old.exists() and old != self.path:
            try:
                with h5py.File(old, "r") as f:
                    if str(_decode(f.attrs.get("run_id", ""))) == str(self.attrs.get("run_id")):
                        return old
            except OSError:
                pass
        return ck

    # -- contents --------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """See what a live writer has flushed since (SWMR ``refresh`` of every dataset)."""
        if self.file.swmr_mode:
            for name in ["time", "step"] + self.layers:
                self.file[name].refresh()
            for ds in self.file["timeseries"].values():
                ds.refresh()
        self._refresh_counts()

    def truncation(self) -> str:
        """Why the file is shorter than HDF5 last recorded it ("" if it is not): a file its writer closed keeps
        that size, so a shorter one lost its end (a copy cut short, a full disk...)."""
        eof = end_of_file_address(self.path)
        try:
            size = self.path.stat().st_size
        except OSError:
            return ""
        if eof is not None and size < eof:
            return f"truncated: {size} of its {eof} bytes are left"
        return ""

    def layout_problem(self) -> str:
        """Why the file's datasets do not have the shapes its plan implies ("" if they do): frames
        ``(T, nz, ny, nx)`` for every layer, one-dimensional ``/time``, ``/step`` and time series."""
        f = self.file
        try:
            want = tuple(self.plan.shape3)
            layers = self.plan.layers
        except (TumorcaError, KeyError, ValueError, TypeError) as exc:
            return f"its attributes do not describe a run: {_damage(exc)}"
        for layer in layers:
            ds = f.get(layer)
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 4 or tuple(ds.shape[1:]) != want:
                got = "missing" if ds is None else f"shaped {tuple(getattr(ds, 'shape', ()))}"
                return f"frame dataset {layer!r} is {got}, not (frames, {', '.join(map(str, want))})"
        for key in ("time", "step"):
            if not isinstance(f[key], h5py.Dataset) or f[key].ndim != 1:
                return f"/{key} is not a one-dimensional dataset"
        for key, ds in f["timeseries"].items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
                return f"/timeseries/{key} is not a one-dimensional dataset"
        return ""

    def verify(self, full: bool = False) -> str:
        """Read the file to find damage; returns "" or why it is damaged (one line).

        Without ``full``: the truncation check, the time series, the last frame of every layer and, for a
        complete run, its final state -- a cut or damaged end shows there, in about the time of one frame.  With
        ``full``: every frame and every kept state too (every chunk's Fletcher32 checksum is checked as it is
        read)."""
        damage = self.truncation() or self.layout_problem()
        if damage:
            return damage
        try:
            self.timeseries()
            n = self._n_frames
            frames = range(n) if full else ([n - 1] if n else [])
            for name in self.layers:
                for i in frames:
                    self.file[name][i]
            self.times, self.steps  # noqa: B018 - read for their checksums
            if self.run_info().get("status") == "complete" and "checkpoint" in self.file:
                read_state(self.file["checkpoint"])
            if "start" in self.file:
                read_state(self.file["start"])
            for k in self.kept_states() if full else ():
                if k["on_disk"]:
                    read_state(self.file[f"states/step_{k['step']}"])
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RunFileError) as exc:
            return f"cannot read it: {_damage(exc)}"
        return ""

    def _refresh_counts(self) -> None:
        f = self.file
        # /time is written after the layers of a frame are flushed, so its length counts complete frames only.
        self._n_frames = min([f["time"].shape[0], f["step"].shape[0]] + [f[k].shape[0] for k in self.layers])
        self._n_rows = min(ds.shape[0] for ds in f["timeseries"].values())

    @property
    def n_frames(self) -> int:
        """Frames on disk (as of the last :meth:`refresh`)."""
        return self._n_frames

    @property
    def n_rows(self) -> int:
        """Rows of the per-step time series on disk (steps ``first_step .. first_step + n_rows - 1``)."""
        return self._n_rows

    @property
    def first_step(self) -> int:
        """Step the run starts from: 0, or the step of its given start state (a branch); row 0 of the time series
        and the first frame hold this step."""
        return int(self.attrs.get("start_step", 0))

    @property
    def last_step(self) -> int:
        """Step of the last time-series row on disk (``first_step - 1`` if there is none yet)."""
        return self.first_step + self._n_rows - 1

    # -- stored states ---------------------------------------------------------------------------------------
    def kept_states(self) -> list[dict[str, Any]]:
        """The kept states (``tumorca run --keep-states``): for each, ``step``, ``on_disk`` (filled), ``bytes``
        (uncompressed) and ``stored_bytes`` (as stored, compressed; 0 until filled)."""
        g = self.file.get("states")
        if g is None:
            return []
        if self.file.swmr_mode:
            g["filled"].refresh()
        out = []
        for k, filled in zip(g["steps"][()], g["filled"][()]):
            arrays = g[f"step_{int(k)}/arrays"]
            out.append({"step": int(k), "on_disk": bool(filled),
                        "bytes": sum(ds.size * ds.dtype.itemsize for ds in arrays.values()),
                        "stored_bytes": sum(_stored_bytes(ds, self.path) for ds in arrays.values()) if filled
                        else 0})
        return out

    def has_start_state(self) -> bool:
        """Whether the file stores the state it started from (``/start``): a run that did not start from the
        built-in initial condition of its plan."""
        return "start" in self.file

    def start_state(self) -> dict[str, Any] | None:
        """The stored start state (``/start``), or None for a run from the built-in initial condition."""
        return read_state(self.file["start"]) if "start" in self.file else None

    def state_steps(self) -> list[int]:
        """Steps whose full state this file can give (see :meth:`state_at`), in order."""
        steps = {self.first_step} | {k["step"] for k in self.kept_states() if k["on_disk"]}
        if self.run_info().get("status") == "complete":
            steps.add(int(self.attrs["steps"]))
        return sorted(steps)

    def state_at(self, step: int) -> dict[str, Any] | None:
        """The full engine state at ``step``: a kept state, the final state (``/checkpoint``) of a complete run at
        its last step, or the start state at the first step -- None when that is the built-in initial
        condition of the plan (the caller builds it).  RunFileError (one line, listing the steps available)
        otherwise."""
        if step == self.first_step:
            return self.start_state()
        for k in self.kept_states():
            if k["step"] == step and k["on_disk"]:
                return read_state(self.file[f"states/step_{step}"])
        if step == int(self.attrs["steps"]) and self.run_info().get("status") == "complete":
            return self.final_state()
        name = str(self.path)
        if any(k["step"] == step for k in self.kept_states()):
            why = f"{name!r} has not reached step {step} yet ({self.status.detail})"
        else:
            why = f"{name!r} keeps no state at step {step}"
        dt = float(self.attrs.get("dt_min", 0) or 0)
        shown = ", ".join(f"{s} (day {s * dt / MINUTES_PER_DAY:g})" if dt else str(s) for s in self.state_steps())
        raise RunFileError(f"{why}; states available at steps: {shown} (keep more with tumorca run --keep-states)")

    @property
    def lineage(self) -> dict[str, Any]:
        """The root attributes that record where the start state came from (``parent_*``, ``initial_*``); empty
        for a run from the built-in initial condition."""
        return {k: v for k, v in self.attrs.items() if k.startswith(LINEAGE_PREFIXES)}

    @property
    def times(self) -> np.ndarray:
        """Time in minutes of each frame on disk."""
        return self.file["time"][: self._n_frames]

    @property
    def steps(self) -> np.ndarray:
        """Step index of each frame on disk."""
        return self.file["step"][: self._n_frames]

    def frame(self, name: str, i: int) -> np.ndarray:
        """Layer ``name`` of frame ``i`` (negative counts from the last frame on disk), in the run's shape."""
        if name not in self.layers:
            raise KeyError(f"no layer {name!r} in {str(self.path)!r}; layers are {', '.join(self.layers)}")
        n = self._n_frames
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range: {n} frames on disk")
        return self.file[name][i % n].reshape(self.shape)

    def row_at(self, step: int) -> dict[str, Any] | None:
        """The time-series row of ``step`` (every per-step quantity), or None if it is not on disk."""
        i = step - self.first_step
        if not 0 <= i < self._n_rows:
            return None
        return {k: ds[i] for k, ds in self.file["timeseries"].items()}

    def timeseries(self) -> dict[str, np.ndarray]:
        """Every per-step quantity (``step`` included) over the rows on disk."""
        return {k: ds[: self._n_rows] for k, ds in self.file["timeseries"].items()}

    def final_state(self) -> dict[str, Any]:
        """The engine state at the end of a complete run (``Simulation.from_state`` continues it)."""
        if self.run_info().get("status") != "complete":
            raise RunFileError(f"{str(self.path)!r} holds no final state (the run did not complete)")
        return read_state(self.file["checkpoint"])

    def checkpoint(self) -> dict[str, Any] | None:
        """The latest checkpoint this run can resume from: the sibling ``OUT.ckpt.h5`` if it belongs to this run,
        else None (resume then restarts from the initial state).  RunFileError if it belongs to another run, does
        not match the run (:meth:`verify_checkpoint`) or its data fail their checksums."""
        ck = self.checkpoint_path
        if not ck.exists():
            return None
        self.verify_checkpoint()
        run_id, state = load_checkpoint_file(ck)
        layout = {k: (np.shape(a), np.asarray(a).dtype) for k, a in state["arrays"].items()}
        self._check_checkpoint(run_id, state, layout)
        return state

    def verify_checkpoint(self) -> None:
        """Check the sibling checkpoint against this run file without reading its arrays: it must belong to this
        run (``run_id``) and hold this run's lattice, seed, parameters and array names, shapes and types, at a
        step within the run, written by a tumorca version that wrote this file (or this one).  A no-op if there
        is no checkpoint; RunFileError (one line) otherwise.

        A checkpoint edited by hand (another kill rate, another seed...) would otherwise be resumed with its
        values while the run file still describes the original run."""
        ck = self.checkpoint_path
        if not ck.exists():
            return
        try:
            with h5py.File(ck, "r") as f:
                if _decode(f.attrs.get("format", "")) != CHECKPOINT_FORMAT_NAME:
                    raise RunFileError(f"{str(ck)!r} is not a tumorca checkpoint file")
                a = f.attrs
                meta = {"version": str(_decode(a.get("tumorca_version", ""))),
                        "shape": tuple(int(d) for d in np.asarray(a["shape"]).ravel()),
                        "params": json.loads(str(_decode(a["parameters"]))), "seed": int(a["seed"]),
                        "step_index": int(a["step_index"])}
                layout = {k: (ds.shape, ds.dtype) for k, ds in f["arrays"].items()}
                run_id = str(_decode(a.get("run_id", "")))
        except RunFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise RunFileError(f"checkpoint {str(ck)!r} is damaged: {' '.join(str(exc).split())[:200]}") from None
        self._check_checkpoint(run_id, meta, layout)

    def _check_checkpoint(self, run_id: str, meta: dict[str, Any], layout: dict[str, tuple]) -> None:
        ck = f"checkpoint {str(self.checkpoint_path)!r}"
        if run_id != self.attrs.get("run_id"):
            raise RunFileError(f"{ck} belongs to another run than {str(self.path)!r}")
        plan = self.plan
        if not isinstance(meta["shape"], tuple) or tuple(meta["shape"]) != tuple(plan.shape):
            raise RunFileError(f"{ck} holds a {'x'.join(map(str, meta['shape']))} lattice, the run "
                               f"{'x'.join(map(str, plan.shape))}")
        if meta["seed"] != plan.seed:
            raise RunFileError(f"{ck} holds seed {meta['seed']}, the run {plan.seed}")
        try:
            params = Params(**meta["params"])
        except (TumorcaError, TypeError) as exc:
            raise RunFileError(f"{ck} holds invalid parameters: {exc}") from None
        if params != plan.params:
            mine, theirs = params.to_dict(), plan.params.to_dict()
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            shown = ", ".join(f"{k} = {mine[k]!r} (run: {theirs.get(k)!r})" for k in diff[:3])
            raise RunFileError(f"{ck} holds other parameters than the run: {shown}")
        versions = {__version__, str(self.attrs.get("tumorca_version", ""))}
        try:
            history = json.loads(str(self.attrs.get("resume_history", "[]")))
        except ValueError:
            history = []
        versions |= {str(h["tumorca_version"]) for h in history if isinstance(h, dict) and h.get("tumorca_version")}
        if meta["version"] not in versions:
            raise RunFileError(f"{ck} was written by tumorca {meta['version'] or '(unknown)'}, which did not write "
                               f"this run (tumorca {self.attrs.get('tumorca_version')})")
        if not plan.start_step <= meta["step_index"] <= plan.steps:
            raise RunFileError(f"{ck} is at step {meta['step_index']}, outside the run's "
                               f"{plan.start_step}..{plan.steps}")
        expect = self.file.get("checkpoint/arrays")
        if expect is not None:
            want = {k: (ds.shape, ds.dtype) for k, ds in expect.items()}
            if set(want) != set(layout):
                raise RunFileError(f"{ck} holds arrays {', '.join(sorted(layout))}, the run "
                                   f"{', '.join(sorted(want))}")
            for k, (shape, dtype) in sorted(want.items()):
                if tuple(layout[k][0]) != tuple(shape) or np.dtype(layout[k][1]) != np.dtype(dtype):
                    raise RunFileError(f"{ck}: array {k!r} is {np.dtype(layout[k][1])} "
                                       f"{'x'.join(map(str, layout[k][0])) or 'scalar'}, the run's "
                                       f"{np.dtype(dtype)} {'x'.join(map(str, shape)) or 'scalar'}")

    def checkpoint_step(self) -> int | None:
        """Step of the sibling checkpoint, or None if there is none (reads only its attributes)."""
        ck = self.checkpoint_path
        try:
            with h5py.File(ck, "r") as f:
                return int(f.attrs["step_index"])
        except (OSError, KeyError):
            return None

    # -- status ----------------------------------------------------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        """The ``/run`` datasets: ``status``, ``end_time``, ``steps_done``, ``wall_seconds``, ``error``."""
        run = self.file["run"]
        out = {}
        for name, ds in run.items():
            if self.file.swmr_mode:
                ds.refresh()
            out[name] = _decode(ds[()])
        return out

    @property
    def status(self) -> RunStatus:
        """Whether the run is complete, being written, interrupted or cut off (see :class:`RunStatus`)."""
        a = self.attrs
        run = self.run_info()
        if "status" not in run:
            return RunStatus("damaged", "damaged: it has no /run/status", False)
        state = run["status"]
        try:
            steps = int(a["steps"])
            planned = int(a["frames_planned"])
            self.plan  # noqa: B018 - a file whose attributes describe no run is damaged, whatever its status
        except (KeyError, ValueError, TypeError, RunFileError) as exc:
            return RunStatus("damaged", f"damaged: its attributes do not describe a run: {_damage(exc)}", False)
        if state != "running":  # its writer closed it: the file has had its full size since
            damage = self.truncation()
            if damage:
                return RunStatus("damaged", f"damaged: {damage}", False)
        if state == "complete":
            if self._n_frames == planned and self._n_rows == steps - self.first_step + 1:
                span = f"steps {self.first_step + 1}..{steps}" if self.first_step else f"{steps} steps"
                return RunStatus("complete", f"complete: {span}, {planned} frames", False)
            return RunStatus("failed", f"marked complete but holds {self._n_frames} of {planned} frames", True)
        last = f"step {self.last_step}" if self._n_rows else "no step yet"
        if state == "interrupted":
            return RunStatus("interrupted", f"interrupted at step {run.get('steps_done', '?')} of {steps}", True)
        if state == "failed":
            return RunStatus("failed", f"stopped at step {run.get('steps_done', '?')} of {steps}: "
                             f"{run.get('error', '')}", True)
        pid, host = int(a.get("writer_pid", 0)), str(a.get("host", ""))
        if host == socket.gethostname():
            if _pid_alive(pid, int(a.get("writer_start", 0))):
                return RunStatus("running", f"still being written by process {pid} (on disk: {last} of {steps})",
                                 False)
            return RunStatus("cut off", f"cut off: its writer (process {pid}) ended without closing it; on disk: "
                             f"{last} of {steps}", True)
        return RunStatus("running", f"being written on host {host!r}, or cut off there (on disk: {last} of "
                         f"{steps})", True)


def _damage(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _stored_bytes(ds: h5py.Dataset, path: Path) -> int:
    """Bytes ``ds`` takes on disk: for a virtual dataset (a run written under MPI), those of the blocks it maps in
    the rank files (0 for a rank file that cannot be read)."""
    if not ds.is_virtual:
        return ds.id.get_storage_size()
    total = 0
    for vs in ds.virtual_sources():
        try:
            with h5py.File(Path(path).parent / vs.file_name.replace("%%", "%"), "r", swmr=True) as f:
                total += f[vs.dset_name].id.get_storage_size()
        except (OSError, KeyError):
            pass
    return total


def open_run(path: str | Path) -> RunReader:
    """Open a run file for reading (see :class:`RunReader`)."""
    return RunReader(path)


__all__ = ["RunReader", "RunStatus", "open_run"]
