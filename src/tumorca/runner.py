"""Run a simulation into a run file: the loop between the engine (:class:`tumorca.Simulation`) and the file writer
(:class:`tumorca.io.RunWriter`), with resource estimates, resumption and a clean stop.

The CLI parses and reports; this module does the work, and is usable from Python::

    plan = RunPlan(shape=(256, 256), params=Params(), seed=1, steps=480, every=48, keep_states=(240,))
    outcome = run(plan, "out.h5", provenance={"command_line": "", "threads": 2})

A run may start from any given state instead of the built-in initial condition -- a state kept by another run (a
branch), or one built from data -- with ``run(plan, path, start_state=state, lineage={...})``, where
``plan.start_step`` is the state's step.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import ResourceError
from .io.layout import BASE_LAYERS, RunFileError, RunPlan, fmt_bytes, fmt_shape
from .io.reader import RunReader
from .io.writer import QUEUE_DEPTH, OutputLock, RunWriter, plain_value

#: Defaults of a run (``tumorca run`` and sweep files): a 256x256 lattice for 10 simulated days, a frame every
#: simulated day, a checkpoint every 10 frames.
DEFAULT_SHAPE = (256, 256)
DEFAULT_DAYS = 10.0
CHECKPOINT_FRAMES = 10

#: progress(step, total_steps, first_step): called after every step.
ProgressFn = Callable[[int, int, int], None]
#: stop(): polled before every step; True ends the run with a checkpoint (status ``interrupted``).
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``status`` is ``complete`` or ``interrupted``; ``step`` the last step done."""

    path: Path
    status: str
    step: int
    steps: int
    frames: int
    wall_seconds: float
    first_step: int


@dataclass(frozen=True)
class ResourceEstimate:
    """Up-front estimates of what a run needs and what is available (bytes; None where unknown)."""

    memory: int
    memory_available: int | None
    file: int
    disk_free: int | None

    def describe(self) -> str:
        return f"memory ~{fmt_bytes(self.memory)}, file up to {fmt_bytes(self.file)} uncompressed"


def estimate_resources(plan: RunPlan, path: str | Path) -> ResourceEstimate:
    """Estimate memory (engine state, frames and checkpoint copies queued for the writer) and file size
    (uncompressed: an upper bound) of a run, with the memory and disk space available."""
    from .simulation import available_memory, bytes_per_site, solver_bytes_per_site  # the engine's accounting

    nz, ny, nx = plan.shape3
    sites = nz * ny * nx
    state = sites * bytes_per_site()
    memory = state + sites * solver_bytes_per_site(plan.params) + (QUEUE_DEPTH + 1) * max(plan.frame_bytes(), state)
    try:
        disk = shutil.disk_usage(Path(path).resolve().parent).free
    except OSError:
        disk = None
    return ResourceEstimate(memory, available_memory(), plan.projected_file_bytes(
        state_bytes_per_site=bytes_per_site()), disk)


def state_bytes(plan: RunPlan) -> int:
    """Uncompressed bytes of one full engine state of ``plan``'s lattice (a kept state, the final state)."""
    from .engine import STATE_ARRAYS

    nz, ny, nx = plan.shape3
    return nz * ny * nx * sum(dt.itemsize for dt in STATE_ARRAYS.values())


def check_resources(plan: RunPlan, path: str | Path, existing_bytes: int = 0, copy_bytes: int = 0
                    ) -> ResourceEstimate:
    """:func:`estimate_resources`, raising ResourceError (naming both figures) if memory or disk is short.

    ``existing_bytes`` is space that the run frees or reuses once it has started (the file it replaces or
    resumes); ``copy_bytes`` is space it needs beside that file before then (a resume rewrites the part of the file
    it keeps under a temporary name, and the old file is freed only when the copy replaces it)."""
    est = estimate_resources(plan, path)
    check_copy_space(est, path, copy_bytes)
    shape = fmt_shape(plan.shape)
    if est.memory_available is not None and est.memory > est.memory_available:
        raise ResourceError(f"a {shape} lattice needs about {fmt_bytes(est.memory)} of memory (state and write "
                            f"buffers) but {fmt_bytes(est.memory_available)} is available; its file would take up "
                            f"to {fmt_bytes(est.file)} before compression")
    if est.disk_free is not None and est.file > est.disk_free + existing_bytes:
        raise ResourceError(f"the run file may grow to {fmt_bytes(est.file)} ({plan.n_frames} frames of "
                            f"{fmt_bytes(plan.frame_bytes())} before compression) but only "
                            f"{fmt_bytes(est.disk_free)} is free in {str(Path(path).resolve().parent)!r} "
                            f"(memory needed: about {fmt_bytes(est.memory)}); write fewer frames (--every, "
                            "--fields) or a smaller lattice")
    return est


def check_copy_space(est: ResourceEstimate, path: str | Path, copy_bytes: int) -> None:
    """ResourceError unless ``copy_bytes`` fit on the disk of ``path`` beside what is there (a resume's copy)."""
    if copy_bytes and est.disk_free is not None and copy_bytes > est.disk_free:
        raise ResourceError(f"resuming rewrites {str(Path(path))!r} under a temporary name first, which needs up to "
                            f"{fmt_bytes(copy_bytes)} free beside it, but only {fmt_bytes(est.disk_free)} is free in "
                            f"{str(Path(path).resolve().parent)!r}; free some space, then resume")


def snapshot_layers(sim: Any, plan: RunPlan) -> dict[str, np.ndarray]:
    """Copies of the site layers a frame stores (the engine mutates its arrays in place, so views would not do)."""
    neut = sim.neutrophils
    out = {}
    for name in plan.layers:
        if name in BASE_LAYERS:
            source = BASE_LAYERS[name][0]
            view = neut[source.split(":")[1]] if source.startswith("neutrophils:") else getattr(sim, source)
        else:
            view = sim.field(name)
        out[name] = np.array(view, copy=True)
    return out


def initial_state(plan: RunPlan) -> dict[str, Any]:
    """The built-in initial state of ``plan`` (its shape, parameters and seed at step 0), as
    ``Simulation.get_state()`` gives it."""
    from .simulation import Simulation

    return Simulation(plan.shape, plan.params, seed=plan.seed, threads=1).get_state()


def prepare_start_state(plan: RunPlan, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` made the start of ``plan``: it must hold the plan's lattice at ``plan.start_step``; it takes the
    plan's parameters and seed (a branch changes them from its parent's).  RunFileError if it does not fit."""
    try:
        shape = tuple(int(d) for d in state["shape"])
        step = int(state["step_index"])
        arrays = state["arrays"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFileError(f"the start state is incomplete: {exc}") from None
    if shape != tuple(plan.shape):
        raise RunFileError(f"the start state holds a {fmt_shape(shape)} lattice, the run {fmt_shape(plan.shape)}")
    if step != plan.start_step:
        raise RunFileError(f"the start state is at step {step}, the run starts at step {plan.start_step}")
    return {**state, "params": plan.params.to_dict(), "seed": plan.seed, "arrays": arrays}


def run(plan: RunPlan, path: str | Path, *, provenance: Mapping[str, Any], threads: int | None = None,
        overwrite: bool = False, progress: ProgressFn | None = None, stop: StopFn | None = None,
        start_state: Mapping[str, Any] | None = None, start_summary: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None, run_id: str | None = None) -> RunOutcome:
    """Run ``plan`` from the built-in initial state, or from ``start_state``, into a new run file.

    Parameters
    ----------
    plan : RunPlan
        What to simulate and store.
    path : path-like
        Output file (must not exist unless ``overwrite``).
    provenance : mapping
        Root attributes recording how the run was started (``command_line``...).
    threads : int, optional
        Engine threads (default: the CPUs available).
    overwrite : bool
        Replace an existing file, once the new one is set up.
    progress, stop : callable, optional
        See :data:`ProgressFn` and :data:`StopFn`.
    start_state : dict, optional
        The state to start from, as ``Simulation.get_state()`` gives it, at step ``plan.start_step`` on the plan's
        lattice; it runs with the plan's parameters and seed (see :func:`prepare_start_state`) and is stored in
        the file (``/start``).  Default: the built-in initial condition (``plan.start_step`` must then be 0).
    start_summary : mapping, optional
        Row 0 of the time series, when the start state comes from a run that recorded it (a branch copies its
        parent's row of that step): the per-step quantities of the step that led to the state (O2 sweeps,
        neutrophil secretion...), which the state itself does not hold.  Default: ``Simulation.summary()`` of
        the start state (those quantities then read 0).
    lineage : mapping, optional
        Root attributes recording where ``start_state`` came from (names beginning ``parent_`` or
        ``initial_``; see docs/FORMAT.md).
    run_id : str, optional
        The run's identifier (default: a fresh random one).  A sweep gives its parents one derived from their
        plan, so that a parent grown again is recognised by the runs that branched from it.

    Returns
    -------
    RunOutcome

    Raises
    ------
    tumorca.errors.TumorcaError
        RunFileError if the file cannot be written or the start state does not fit the plan,
        ResourceError/LatticeError/ParameterError from the engine.
    """
    from .simulation import Simulation

    path = Path(os.path.realpath(path)) if overwrite else Path(path)
    if start_state is None and plan.start_step:
        raise RunFileError(f"the plan starts at step {plan.start_step}: give the state of that step")
    with OutputLock(path):  # a second process writing the same file is refused, not raced
        if start_state is None:
            sim = Simulation(plan.shape, plan.params, seed=plan.seed, threads=threads)
            stored = None
        else:
            sim = Simulation.from_state(prepare_start_state(plan, start_state), threads=threads)
            stored = sim.get_state()  # as the engine holds it (from_state normalises empty neutrophil sites)
        first = sim.summary()
        if start_summary is not None:
            if int(start_summary.get("step", -1)) != plan.start_step:
                raise RunFileError(f"the start row is of step {start_summary.get('step')}, the run starts at "
                                   f"step {plan.start_step}")
            first = start_row(first, start_summary)
        writer = RunWriter.create(path, plan, first, sim.get_state(), {**provenance, "threads": sim.threads},
                                  overwrite=overwrite, start_state=stored, lineage=lineage, run_id=run_id)
        _drop_rank_files(path)  # an earlier MPI run's rank files, if this run replaced one
        return _drive(sim, writer, plan, progress, stop, first_summary=first)


def start_row(summary: Mapping[str, Any], start_summary: Mapping[str, Any]) -> dict[str, Any]:
    """Row 0 of a run from a given state: ``summary`` (the engine's ``summary()`` of the start state) with the
    values ``start_summary`` holds (the row its parent recorded for that step) in their place, as Python numbers."""
    return {k: plain_value(start_summary.get(k, v)) for k, v in summary.items()}


def branch_start(parent: str | Path, plan: RunPlan, relative_to: str | Path | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`run` for a branch: ``plan`` continues the run file ``parent`` from its step
    ``plan.start_step`` (a state the parent keeps, its final state, or its start).

    Returns ``start_state`` (the parent's state there), ``start_summary`` (its time-series row of that step) and
    ``lineage`` (the ``parent_*`` attributes, with the parameters ``plan`` changes; ``parent_path`` relative to
    ``relative_to`` if given, so that files moved together still find each other).  RunFileError (one line,
    listing the steps available) if the parent holds no state at that step::

        plan = dataclasses.replace(parent_plan, params=therapy, start_step=336, steps=672)
        run(plan, "branch.h5", provenance={}, **branch_start("parent.h5", plan))
    """
    from .io.lineage import parameter_changes, parent_attrs

    n = plan.start_step
    with RunReader(parent) as r:
        state, row = r.state_at(n), r.row_at(n)
        pplan, run_id = r.plan, str(r.attrs.get("run_id", ""))
    if state is None:  # the parent's built-in initial condition, with its own parameters and seed
        state = initial_state(pplan)
    try:
        lineage = parent_attrs(parent, run_id, n, parameter_changes(pplan, plan))
    except OSError as exc:
        raise RunFileError(f"cannot read {str(parent)!r}: {exc.strerror or exc}") from None
    if relative_to is not None:
        lineage["parent_path"] = os.path.relpath(os.path.realpath(parent), os.path.realpath(relative_to))
    return {"start_state": state, "start_summary": row, "lineage": lineage}


def _drop_rank_files(path: str | Path) -> None:
    """Remove ``OUT.h5.ranks/`` (the rank files of a run written under MPI), which a serial file never refers to;
    a no-op when there is none."""
    from .io.distributed import ranks_dir, remove_unreferenced

    if ranks_dir(path).is_dir():
        remove_unreferenced(Path(path), set())


def check_resume(reader: RunReader, given: Mapping[str, Any]) -> None:
    """Raise RunFileError unless ``reader``'s run can be resumed with the options ``given`` (only those the user
    set: ``shape``, ``params``, ``seed``, ``steps``, ``every``, ``fields``, ``compression``, ``checkpoint_every``).
    """
    st = reader.status
    name = str(reader.path)
    if st.state == "complete":
        raise RunFileError(f"{name!r} is a finished run ({st.detail}); nothing to resume")
    if st.state == "running" and not st.resumable:
        raise RunFileError(f"{name!r} is {st.detail}; stop that process first")
    if st.state == "damaged":
        raise RunFileError(f"{name!r} is {st.detail}; it cannot be resumed")
    try:
        plan = reader.plan
    except (ValueError, KeyError) as exc:
        raise RunFileError(f"{name!r} cannot be resumed by this tumorca: {exc}") from None
    damage = reader.layout_problem()
    if damage:
        raise RunFileError(f"{name!r} is damaged: {damage}")
    reader.verify_checkpoint()  # a checkpoint edited or mixed up is refused before anything is written
    for key, value in given.items():
        have = getattr(plan, key)
        if key == "params":
            if value != have:
                diff = sorted(k for k in value if value[k] != have[k])
                shown = ", ".join(f"{k} = {value[k]!r} (file: {have[k]!r})" for k in diff[:3])
                raise RunFileError(f"{name!r} was run with other parameters: {shown}")
        elif key == "shape":
            if tuple(value) != tuple(have):
                raise RunFileError(f"{name!r} has shape {fmt_shape(have)}, not {fmt_shape(value)}")
        elif key == "fields":
            if tuple(value) != tuple(have):
                raise RunFileError(f"{name!r} stores fields {','.join(have) or 'none'}, not "
                                   f"{','.join(value) or 'none'}")
        elif value != have:
            raise RunFileError(f"{name!r} was run with {key.replace('_', '-')} {have}, not {value}")


def resume(path: str | Path, *, provenance: Mapping[str, Any], threads: int | None = None,
           given: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
           stop: StopFn | None = None) -> RunOutcome:
    """Continue a cut-off or interrupted run from its last checkpoint, to the same end as the uninterrupted run.

    Frames and time-series rows written after the checkpoint are dropped and recomputed; the finished file then
    equals the uninterrupted run's in every dataset.  Raises RunFileError if the file cannot be resumed (see
    :func:`check_resume`); ``given`` are the options the user set, each of which must match the file.
    """
    path = Path(os.path.realpath(path))  # through a symlink: the target is the run (its checkpoint is beside it)
    with OutputLock(path):  # taken before the file is read: what is checked below is what is resumed
        return _resume_locked(path, provenance, threads, given, progress, stop)


def _resume_locked(path: Path, provenance: Mapping[str, Any], threads: int | None, given: Mapping[str, Any] | None,
                   progress: ProgressFn | None, stop: StopFn | None) -> RunOutcome:
    from .simulation import Simulation

    reader = RunReader(path)
    try:
        check_resume(reader, given or {})
        plan = reader.plan
        # the latest checkpoint, else the stored start state, else the built-in initial condition
        state = reader.checkpoint()
        if state is None:
            state = reader.start_state()
        if state is not None:
            sim = Simulation.from_state(state, threads=threads)
        elif plan.start_step:
            raise RunFileError(f"{str(path)!r} starts at step {plan.start_step} but stores no start state")
        else:
            sim = Simulation(plan.shape, plan.params, seed=plan.seed, threads=threads)
        c = sim.step_index
        if c > plan.steps:
            raise RunFileError(f"checkpoint of {str(path)!r} is at step {c}, past the run's {plan.steps} steps")
        start_row = None
        if reader.has_start_state() and reader.n_rows == 0:
            start_row = json.loads(str(reader.file["start"].attrs.get("summary", "{}"))) or None
        writer = RunWriter.resume(path, reader, c, sim.get_state(), {**provenance, "threads": sim.threads})
    finally:
        reader.close()
    if c in plan.keep_states and not writer.is_kept(c):
        writer.add_state(sim.get_state())  # cut off between the kept state's step and its write
    outcome = _drive(sim, writer, plan, progress, stop, first_summary=start_row)
    if outcome.status == "complete":
        _drop_rank_files(path)  # a run begun under MPI, finished serially: its rank files are no longer used
    return outcome


def _drive(sim: Any, writer: RunWriter, plan: RunPlan, progress: ProgressFn | None, stop: StopFn | None,
           first_summary: Mapping[str, Any] | None = None) -> RunOutcome:
    t0 = time.perf_counter()
    first = sim.step_index
    status = "complete"
    try:
        if first == plan.start_step:
            # A fresh run, or a resume with nothing usable on disk: record the start state.
            if writer.rows_written == 0:
                writer.add_row(first_summary or sim.summary())
            if writer.frames_written == 0:
                writer.add_frame(first, sim.time_min, snapshot_layers(sim, plan))
        while sim.step_index < plan.steps:
            if stop is not None and stop():
                status = "interrupted"
                break
            sim.step(1)
            s = sim.step_index
            writer.add_row(sim.summary())
            if plan.is_frame(s):
                writer.add_frame(s, sim.time_min, snapshot_layers(sim, plan))
            if s in plan.keep_states:
                writer.add_state(sim.get_state())
            if plan.is_checkpoint(s) and s < plan.steps:
                writer.add_checkpoint(sim.get_state())
            if progress is not None:
                progress(s, plan.steps, first)
        if status == "complete":
            writer.close("complete", final_state=sim.get_state())
        else:
            writer.add_checkpoint(sim.get_state())
            writer.close("interrupted")
    except BaseException:
        writer.abort()
        raise
    done = sim.step_index
    return RunOutcome(writer.path, status, done, plan.steps, plan.frames_until(done),
                      time.perf_counter() - t0, first)
