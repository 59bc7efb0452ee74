"""Faults for the sweep tests, injected into real Dask workers: a worker preload (``distributed.worker.preload``),
not a hook in tumorca's code.

The fault spec, in the environment variable ``TUMORCA_TEST_FAULTS``, is a comma list of ``INDEX[@ATTEMPT]=KIND``:
``raise`` raises in run INDEX (on attempt ATTEMPT, counted from 0, or on every attempt), ``kill`` SIGKILLs the
worker process running it; both strike at step 30 (or the last step), once the first periodic checkpoint is on
disk, so a retry resumes from it.  ``slow`` sleeps 20 ms after every step (the results do not change).

On a worker, :func:`dask_setup` wraps :func:`tumorca.sweep.task.run_task` (to learn which run and attempt it is)
and :func:`tumorca.runner.run` / :func:`tumorca.runner.resume` (to call the fault after every step); the runs
themselves are the real ones.  Use :func:`subprocess_env` for a ``tumorca sweep`` subprocess, :func:`injected` for
one run in this process (its LocalCluster's workers get the preload).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator

FAULTS_ENV = "TUMORCA_TEST_FAULTS"
PRELOAD = str(Path(__file__).resolve())

_current: dict[str, Any] = {}


def subprocess_env(spec: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``tumorca sweep`` process whose workers inject the faults ``spec``."""
    env = dict(os.environ if base is None else base)
    env[FAULTS_ENV] = spec
    env["DASK_DISTRIBUTED__WORKER__PRELOAD"] = json.dumps([PRELOAD])
    return env


@contextlib.contextmanager
def injected(spec: str) -> Iterator[None]:
    """Within the block, LocalClusters started in this process have workers that inject the faults ``spec``
    (workers are new processes: they inherit the environment and get the preload from the nanny)."""
    import dask

    old = os.environ.get(FAULTS_ENV)
    os.environ[FAULTS_ENV] = spec
    try:
        with dask.config.set({"distributed.worker.preload": [PRELOAD]}):
            yield
    finally:
        if old is None:
            os.environ.pop(FAULTS_ENV, None)
        else:
            os.environ[FAULTS_ENV] = old


def _kind(index: int, attempt: int) -> str | None:
    kind = None
    for item in os.environ.get(FAULTS_ENV, "").split(","):
        target, _, what = item.strip().partition("=")
        idx, _, att = target.partition("@")
        try:
            if int(idx) == index and (not att or int(att) == attempt):
                kind = what.strip()
        except ValueError:
            continue
    return kind if kind in ("raise", "kill", "slow") else None


def _fault_hook() -> Callable[[int, int, int], None] | None:
    """The progress callback that injects the current run's fault (None if it has none)."""
    if not _current:
        return None
    kind = _kind(_current["index"], _current["attempt"])
    if kind is None:
        return None
    from tumorca.io.layout import sidecar_paths

    plan, attempt = _current["plan"], _current["attempt"]
    ckpt = sidecar_paths(_current["partial"])[1]
    strike = min(30, plan.steps)

    def hook(step: int, total: int, first: int) -> None:
        if kind == "slow":
            time.sleep(0.02)
        elif step >= strike:
            if 0 < plan.checkpoint_every < strike:  # the checkpoint is written in the background: wait for it
                deadline = time.monotonic() + 10
                while not ckpt.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"fault injected by {FAULTS_ENV} at step {step} (attempt {attempt})")

    return hook


def _with_faults(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kw: Any) -> Any:
        hook = _fault_hook()
        if hook is not None:
            given = kw.get("progress")
            kw["progress"] = hook if given is None else (lambda *a: (given(*a), hook(*a)))
        return fn(*args, **kw)

    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapped


def install() -> None:
    """Wrap the task and the run loop of this process (idempotent)."""
    import tumorca.runner as runner
    import tumorca.sweep.task as task_mod
    from tumorca.io.manifest import run_paths

    if getattr(task_mod.run_task, "_faults", False):
        return
    original = task_mod.run_task

    def run_task(task: Any) -> Any:
        _current.update(index=int(task["index"]), attempt=int(task.get("attempt", 0)), plan=task["plan"],
                        partial=run_paths(task["outdir"], task["name"])[1])
        try:
            return original(task)
        finally:
            _current.clear()

    run_task._faults = True  # type: ignore[attr-defined]
    # The client pickles run_task by reference (module and name): the worker looks the name up here.
    task_mod.run_task = run_task
    runner.run = _with_faults(runner.run)
    runner.resume = _with_faults(runner.resume)


def dask_setup(worker: Any) -> None:
    """Dask preload entry point: runs in every worker process before its first task."""
    install()
