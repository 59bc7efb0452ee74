"""Engine checkpoints in HDF5: the dict of ``Simulation.get_state()`` written to, and read back from, a group.

The layout is generic: one dataset per entry of ``state["arrays"]`` (whatever arrays the engine has, so new state
arrays need no change here), the scalars as attributes.  The same layout serves the sibling ``OUT.ckpt.h5``
written during a run and the ``/checkpoint`` group of a finished run file (docs/FORMAT.md).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .layout import (CHECKPOINT_FORMAT_NAME, FORMAT_VERSION, RunFileError, compression_kwargs, frame_chunks, shape3_of,
                     temporary_path)


def create_state_group(group: h5py.Group, state: dict[str, Any], run_id: str = "",
                       step_index: int | None = None) -> None:
    """Lay out a state group: its attributes and one empty dataset per state array (shape and type from
    ``state``), to be filled by :func:`fill_state_group`.

    Parameters
    ----------
    group : h5py.Group
        Destination; receives the attributes ``step_index``, ``seed``, ``shape``, ``parameters`` (JSON),
        ``tumorca_version``, ``run_id`` and a subgroup ``arrays``.
    state : dict
        As returned by ``Simulation.get_state()``; only its scalars and its arrays' names, shapes and types are
        used here.
    run_id : str
        Identifier of the run the state belongs to, so a checkpoint is never applied to another run's file.
    step_index : int, optional
        Step the state will hold (default ``state["step_index"]``).  A run file lays out its final state at the
        start, because nothing can be created once it is in SWMR mode.
    """
    shape = tuple(int(d) for d in state["shape"])
    shape3 = shape3_of(shape)
    group.attrs["step_index"] = np.int64(state["step_index"] if step_index is None else step_index)
    group.attrs["seed"] = np.uint64(state["seed"])
    group.attrs["shape"] = np.array(shape, dtype=np.int64)
    group.attrs["parameters"] = json.dumps(dict(state["params"]))
    group.attrs["tumorca_version"] = str(state.get("version", ""))
    group.attrs["run_id"] = run_id
    arrays = group.create_group("arrays")
    for name in sorted(state["arrays"]):
        a = np.asarray(state["arrays"][name])
        # Tiles as for frames; gzip-1 whatever the run's compression, so checkpoints stay portable and small; a
        # Fletcher32 checksum per chunk, so a damaged checkpoint is refused rather than resumed from.
        chunks = frame_chunks(shape3, a.dtype.itemsize)[1:][-a.ndim:] if 0 < a.ndim <= 3 and a.size else None
        arrays.create_dataset(name, shape=a.shape, dtype=a.dtype, chunks=chunks,
                              **(dict(compression_kwargs("gzip", a.dtype), fletcher32=True) if chunks else {}))


def fill_state_group(group: h5py.Group, state: dict[str, Any]) -> None:
    """Write the arrays of ``state`` into a group laid out by :func:`create_state_group`."""
    arrays = group["arrays"]
    if set(arrays) != set(state["arrays"]):
        raise RunFileError(f"state arrays {sorted(state['arrays'])} do not match the file's {sorted(arrays)}")
    for name, a in state["arrays"].items():
        arrays[name][...] = np.asarray(a)


def write_state(group: h5py.Group, state: dict[str, Any], run_id: str = "") -> None:
    """Write an engine state (``Simulation.get_state()``) into an empty HDF5 group (see
    :func:`create_state_group` for the layout)."""
    create_state_group(group, state, run_id)
    fill_state_group(group, state)


def read_state(group: h5py.Group) -> dict[str, Any]:
    """Read a state written by :func:`write_state` back into the dict ``Simulation.from_state`` takes."""
    try:
        arrays = {name: ds[()] for name, ds in group["arrays"].items()}
        return {"version": str(group.attrs.get("tumorca_version", "")),
                "shape": tuple(int(d) for d in np.asarray(group.attrs["shape"]).ravel()),
                "params": json.loads(str(group.attrs["parameters"])), "seed": int(group.attrs["seed"]),
                "step_index": int(group.attrs["step_index"]), "arrays": arrays}
    except (KeyError, ValueError, OSError) as exc:
        raise RunFileError(f"checkpoint in {group.file.filename!r} is incomplete or damaged: {exc}") from None


def save_checkpoint_file(path: str | Path, state: dict[str, Any], run_id: str) -> None:
    """Write ``state`` to the checkpoint file ``path`` atomically.

    The state goes to a temporary file in the same directory, which is synced and then renamed over ``path``: at
    every moment ``path`` holds either the previous checkpoint or the new one in full, even after ``kill -9``.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHECKPOINT_FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            write_state(f, state, run_id)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(run_id, state)`` of a checkpoint file; RunFileError if it is not one or is damaged."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT_NAME:
                raise RunFileError(f"{str(path)!r} is not a tumorca checkpoint file")
            return str(f.attrs.get("run_id", "")), read_state(f)
    except OSError as exc:
        raise RunFileError(f"cannot read checkpoint {str(path)!r}: {exc}") from None


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so that a rename into it survives a crash."""
    # Makes the rename itself durable; not possible on every platform/filesystem, where it is skipped.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
