"""One run of a sweep as a task: what a Dask worker runs (:func:`run_task`).

A run is written to ``OUTDIR/.partial/NAME/NAME.h5`` and moved to ``OUTDIR/runs/NAME.h5`` once complete (the
directory layout is :mod:`tumorca.io.manifest`); an earlier attempt's cut-off file is resumed from its checkpoint.
The task returns a summary: final measures (:func:`final_measures`), wall time, where it ran.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._constants import MINUTES_PER_DAY
from ..errors import TumorcaError
from ..io.layout import RunFileError, RunPlan, sidecar_paths
from ..io.manifest import PARENTS_DIR, PARTIAL_DIR, json_value, run_paths


def _plan_given(plan: RunPlan) -> dict[str, Any]:
    return {"shape": plan.shape, "params": plan.params, "seed": plan.seed, "steps": plan.steps, "every": plan.every,
            "fields": plan.fields, "compression": plan.compression, "checkpoint_every": plan.checkpoint_every}


def is_complete_run(path: Path, plan: RunPlan) -> bool:
    """Whether ``path`` is a complete run file of ``plan``."""
    from ..io.reader import RunReader

    if not path.exists():
        return False
    try:
        with RunReader(path) as r:
            return r.status.state == "complete" and r.plan == plan
    except (TumorcaError, OSError, KeyError, ValueError):
        return False


def _publish(partial: Path, final: Path) -> None:
    """Move a complete run (and its XDMF sidecar) from ``.partial/NAME/`` into ``runs/``: the HDF5 file last, by
    an atomic rename, so a file in ``runs/`` is always a complete run."""
    final.parent.mkdir(parents=True, exist_ok=True)
    px, pck = sidecar_paths(partial)
    fx, _ = sidecar_paths(final)
    if px.exists():
        os.replace(px, fx)
    os.replace(partial, final)
    pck.unlink(missing_ok=True)
    shutil.rmtree(partial.parent, ignore_errors=True)


def _mark_failed(partial: Path, exc: BaseException) -> None:
    """After a run raised in this process, mark its partial file ``failed`` (resumable from its checkpoint) so that
    a retry on another worker does not take it for a file still being written; remove it if that fails."""
    import h5py

    from ..io.writer import ERROR_BYTES

    try:
        with h5py.File(partial, "r+") as f:
            run = f["run"]
            if run["status"][()].rstrip(b"\0 ") == b"running":
                run["status"][()] = b"failed"
                run["steps_done"][()] = (int(f.attrs.get("start_step", 0))
                                         + min(ds.shape[0] for ds in f["timeseries"].values()) - 1)
                run["error"][()] = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:ERROR_BYTES]
    except Exception:  # noqa: BLE001 - whatever the state of the file, a retry must not trip over it
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass




def final_measures(path: str | Path) -> dict[str, Any]:
    """Final measures of a complete run file: every :func:`tumorca.analysis.measures.frame_measures` of the last
    frame, the simulated time, and the tumour's radial growth rate fitted over the whole time series."""
    from ..analysis.measures import frame_measures, growth_rate
    from ..io.reader import RunReader

    with RunReader(path) as r:
        params = r.plan.params
        frame = {k: r.frame(k, -1) for k in r.layers}
        out: dict[str, Any] = {"time_days": float(r.times[-1]) / MINUTES_PER_DAY}
        out.update(frame_measures(frame, params.dx_um, params.hypoxia_o2))
        ts = r.timeseries()
        if "tumor_live" in ts and "necrotic" in ts:
            sites = (ts["tumor_live"] + ts["necrotic"]).astype(np.float64)
            if len(r.shape) == 2:
                radius = np.sqrt(sites * params.dx_um ** 2 / np.pi)
            else:
                radius = np.cbrt(3.0 * sites * params.dx_um ** 3 / (4.0 * np.pi))
            out["growth_um_per_day"] = growth_rate(ts["time_min"], radius)["slope_um_per_day"]
    return {k: json_value(v) for k, v in out.items()}


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one sweep run on a worker and return its summary.

    ``task`` holds ``index``, ``name``, ``plan`` (a RunPlan), ``outdir``, ``threads``, ``attempt``,
    ``provenance`` (root attributes for the run file) and, in a branched sweep, ``parent``: the ``name`` and
    ``plan`` of the run whose final state this one continues.  The run is written under ``.partial/NAME/``; an
    earlier attempt's cut-off or interrupted file there is resumed from its checkpoint (the finished file equals an
    uninterrupted run's), anything else there is replaced.  A complete file is moved into ``runs/``; if one is
    already there (the task ran before but its result was lost) it is kept and only summarised.  A parent is grown
    into ``parents/`` by the first task that needs it (the others wait for it) and reused by the rest.

    Returns a dict: ``name``, ``status`` (``complete``), ``file`` (relative to ``outdir``), ``wall_seconds`` (of
    this task), ``started`` (``new``, ``resumed from step K`` or ``already complete``), ``host``, ``pid`` and
    ``measures`` (:func:`final_measures`).  Raises on failure; the driver records the error and retries.
    """
    t0 = time.perf_counter()
    from .. import runner

    plan: RunPlan = task["plan"]
    name = task["name"]
    outdir = Path(task["outdir"])
    final, partial = run_paths(outdir, name)
    prov = dict(task.get("provenance", {}))
    threads = task.get("threads") or 1
    parent = task.get("parent")

    def branch_from_parent() -> dict[str, Any]:
        # only when the run starts afresh: a complete or resumable file of it needs no parent
        parent_file = _grow_parent(outdir, parent["name"], parent["plan"], prov, threads)
        return runner.branch_start(parent_file, plan, relative_to=final.parent)

    how = produce(plan, final, partial, prov, threads, branch_from_parent if parent is not None else None)
    try:
        measures = final_measures(final)
        measures_error = ""
    except Exception as exc:  # a bug in a measure must not lose the run
        measures, measures_error = {}, f"{type(exc).__name__}: {exc}"
    return {"name": name, "status": "complete", "file": str(final.relative_to(outdir)),
            "wall_seconds": time.perf_counter() - t0, "started": how, "host": socket.gethostname(),
            "pid": os.getpid(), "measures": measures, "measures_error": measures_error}


def produce(plan: RunPlan, final: Path, partial: Path, prov: Mapping[str, Any], threads: int,
            start: Callable[[], dict[str, Any]] | None = None, run_id: str | None = None) -> str:
    """Make ``final`` a complete run file of ``plan``: written under ``partial`` (an earlier attempt's file there
    resumed when it can be), then published.  ``start()`` gives the keyword arguments of a run that starts from a
    given state (``start_state``, ``start_summary``, ``lineage``); it is called only if the run starts afresh (a
    resumed file holds its start state).  ``run_id``: the new file's (default random).  Returns how it started
    (``new``, ``resumed from step K``...)."""
    from .. import runner
    from ..io.reader import RunReader

    if is_complete_run(final, plan):
        return "already complete"
    partial.parent.mkdir(parents=True, exist_ok=True)
    how = "new"
    outcome = None
    if partial.exists():
        decision, busy = "fresh", ""
        try:
            with RunReader(partial) as r:
                st = r.status
                same = r.plan == plan
                mine = int(r.attrs.get("writer_pid", 0)) == os.getpid() and \
                    str(r.attrs.get("host", "")) == socket.gethostname()
            if same and st.state == "complete":
                decision = "publish"
            elif same and st.resumable:
                decision = "resume"
            elif st.state == "running" and not mine:
                busy = st.detail
        except (TumorcaError, OSError, KeyError, ValueError):
            pass  # unreadable (e.g. killed while being created): start again
        if busy:
            raise RunFileError(f"{str(partial)!r} is {busy}")
        if decision == "publish":
            how = "completed earlier"
            outcome = True
        elif decision == "resume":
            try:
                with RunReader(partial) as r:
                    ck = r.checkpoint_step()
                outcome = runner.resume(partial, provenance=prov, threads=threads, given=_plan_given(plan))
                how = f"resumed from step {ck}" if ck is not None else "restarted (no checkpoint)"
            except TumorcaError:
                outcome = None  # cannot be resumed after all: run it afresh
            except BaseException as exc:
                _mark_failed(partial, exc)
                raise
    if outcome is None:
        try:
            outcome = runner.run(plan, partial, provenance=prov, threads=threads, overwrite=True, run_id=run_id,
                                 **(start() if start is not None else {}))
        except BaseException as exc:
            _mark_failed(partial, exc)
            raise
    if outcome is not True and outcome.status != "complete":
        raise RuntimeError(f"run stopped at step {outcome.step} of {outcome.steps} ({outcome.status})")
    _publish(partial, final)
    return how


def _grow_parent(outdir: Path, name: str, plan: RunPlan, prov: Mapping[str, Any], threads: int) -> Path:
    """The complete parent file ``OUTDIR/parents/NAME.h5``, grown here unless it exists.  Tasks that need the same
    parent take turns on a lock: the first grows it, the others find it complete (growing it twice would give the
    same bits, but twice the cost)."""
    import fcntl
    import hashlib
    import json

    final, partial = run_paths(outdir, name, PARENTS_DIR)
    if is_complete_run(final, plan):
        return final
    lock_path = outdir / PARTIAL_DIR / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    keys = ("command_line", "sweep_name", "sweep_id", "sweep_root_seed")
    # The id follows from what the parent computes: grown again (its file lost), it is the same parent to the
    # runs that branched from it earlier (tumorca inspect matches lineage by run id).
    identity = json.dumps({"sweep_id": prov.get("sweep_id"), "name": name, "seed": plan.seed, "steps": plan.steps,
                           "params": plan.params.to_dict()}, sort_keys=True)
    try:
        # Taking turns: a task that waited finds the parent complete.  (The lock file is unlinked by its holder,
        # so a late task may lock a fresh file beside a waiter on the old one; both then find the parent
        # complete, or resume its partial file, which OutputLock keeps to one writer at a time.)
        fcntl.flock(fd, fcntl.LOCK_EX)
        produce(plan, final, partial, {**{k: prov[k] for k in keys if k in prov}, "sweep_parent": name}, threads,
                run_id=hashlib.sha256(identity.encode()).hexdigest()[:32])
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)
    return final


__all__ = ["run_task", "produce", "final_measures", "is_complete_run", "run_paths"]
