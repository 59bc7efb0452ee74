"""Running a sweep on Dask distributed: the cluster, scheduling, retries and the manifest's rows.

:class:`SweepDriver` owns an output directory (lock, resume scan, manifest) and submits the runs
(:func:`tumorca.sweep.task.run_task`) to a ``distributed.Client``, retrying failed ones; :func:`run_on_cluster`
sets up the cluster (a :func:`local_cluster` or a running one, :func:`connect`), runs and tidies up, with Ctrl-C
and SIGTERM cancelling the sweep; :func:`run_sweep` does all of it from Python.

Nothing here imports Dask at module level: the dry run, the estimates and the manifest work without it.
"""
from __future__ import annotations

import json
import os
import signal
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import ResourceError, SweepError, TumorcaError
from ..io.layout import fmt_bytes
from ..io.writer import describe_os_error
from ..io.manifest import (LOCK_NAME, MANIFEST_FORMAT, MANIFEST_JSON, MANIFEST_VERSION, PARENTS_DIR, PARTIAL_DIR, RUNS_DIR,
                           json_value, read_manifest, run_paths, utc_now, write_manifest)
from .spec import SweepRun, SweepSpec, load_sweep
from .task import final_measures, is_complete_run, run_task


# -- the driver --------------------------------------------------------------------------------------------------
@dataclass
class SweepProgressEvent:
    """What a progress callback gets after every finished attempt."""

    done: int          # runs complete (this session and before)
    failed: int        # runs failed for good
    total: int
    done_here: int     # runs completed in this session
    todo_here: int     # runs this session set out to run
    elapsed: float
    row: dict[str, Any]
    retrying: bool
    attempt: int       # the attempt that just ended (1 = the first)


class SweepDriver:
    """Runs a sweep into an output directory.

    Parameters
    ----------
    spec : SweepSpec
    outdir : path-like
        Where ``manifest.json``, ``manifest.csv`` and ``runs/`` go.
    resume : bool
        Continue the same sweep in ``outdir``: complete runs are kept, the rest (failed, cut off, never started)
        are run.  Without it, a directory that holds a sweep manifest is refused.
    threads_per_run : int
        Engine threads of each run.
    retries : int
        Times a failed run is tried again (an exception, or a worker that died under it).
    command_line : str
        Recorded in each run file.

    :meth:`prepare` checks the directory and writes nothing; :meth:`start` creates it, takes its lock and writes
    the manifest; :meth:`execute` runs what is left on a ``distributed.Client``.
    """

    def __init__(self, spec: SweepSpec, outdir: str | Path, *, resume: bool = False, threads_per_run: int = 1,
                 retries: int = 1, command_line: str = "") -> None:
        self.spec = spec
        self.outdir = Path(outdir)
        self.resume = resume
        self.threads = threads_per_run
        self.retries = retries
        self.command_line = command_line
        self.runs = spec.runs()
        self.sweep_id = spec.sweep_id
        self.rows: list[dict[str, Any]] = [self._base_row(r) for r in self.runs]
        self._lock_fd: int | None = None
        self._last_write = 0.0
        self.created = utc_now()
        self.existing: dict[str, Any] | None = None
        self.manifest_error = ""

    # -- rows ------------------------------------------------------------------------------------------------
    def _base_row(self, run: SweepRun) -> dict[str, Any]:
        row: dict[str, Any] = {"run": run.name, "file": f"{RUNS_DIR}/{run.name}.h5", "status": "pending",
                               "condition": run.condition, "replicate": run.replicate, "preset": run.plan.preset}
        row.update({k: v for k, v in run.varied.items() if k != "preset"})
        if run.parent is not None:
            row.update({"parent": f"{PARENTS_DIR}/{run.parent.name}.h5", "start_step": run.plan.start_step})
        row.update({"seed": run.seed, "attempts": 0, "wall_seconds": None, "started": "", "host": "",
                    "measures": {}, "error": "", "errors": []})
        return row

    # -- directory checks ------------------------------------------------------------------------------------
    def prepare(self) -> list[int]:
        """Check the output directory (writes nothing) and return the indices of the runs still to do.

        SweepError if ``outdir`` is a file, holds another sweep, or holds this one without ``resume``.
        """
        out = self.outdir
        if out.exists() and not out.is_dir():
            raise SweepError(f"output {str(out)!r} exists and is not a directory")
        anc = _existing_ancestor(out)
        if not anc.is_dir():
            raise SweepError(f"output {str(out)!r} cannot be created: {str(anc)!r} is not a directory")
        doc = read_manifest(out) if out.exists() else None
        if doc is None and out.exists() and ((out / RUNS_DIR).exists() or (out / PARTIAL_DIR).exists()):
            raise SweepError(f"{str(out)!r} holds run files but no {MANIFEST_JSON}; choose another directory")
        if doc is not None:
            if doc.get("sweep_id") != self.sweep_id:
                raise SweepError(f"{str(out)!r} holds another sweep ({doc.get('name')!r}, {doc.get('n_runs')} runs, "
                                 f"id {doc.get('sweep_id')}; this file's runs differ: id {self.sweep_id}); choose "
                                 "another directory")
            if not self.resume:
                done = sum(1 for r in doc.get("runs", []) if r.get("status") == "complete")
                raise SweepError(f"{str(out)!r} already holds this sweep ({done} of {doc.get('n_runs')} runs "
                                 "complete); use --resume to finish it, or choose another directory")
            self.existing = doc
            self.created = doc.get("created", self.created)
        old = {r.get("run"): r for r in (doc or {}).get("runs", [])}
        todo = []
        for i, run in enumerate(self.runs):
            final, _ = run_paths(out, run.name)
            prev = old.get(run.name)
            if prev is not None:
                self.rows[i]["attempts"] = int(prev.get("attempts") or 0)
                self.rows[i]["errors"] = list(prev.get("errors") or [])
            if final.exists() and is_complete_run(final, run.plan):
                row = self.rows[i]
                row["status"] = "complete"
                if prev is not None and prev.get("status") == "complete" and prev.get("measures"):
                    for k in ("wall_seconds", "started", "host", "measures"):
                        row[k] = prev.get(k)
                else:
                    row["started"] = "found complete"
                    try:
                        row["measures"] = final_measures(final)
                    except Exception as exc:  # pragma: no cover - a measure bug
                        row["error"] = f"measures: {exc}"
            else:
                todo.append(i)
        return todo

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self.outdir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                other = os.read(fd, 64).decode(errors="replace").strip()
            finally:
                os.close(fd)
            raise SweepError(f"another tumorca sweep is running in {str(self.outdir)!r}"
                             + (f" (process {other})" if other else "")) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock_fd = fd

    def _wait_for_writers(self, timeout: float = 20.0) -> None:
        """After a hard kill, a previous sweep's workers may take a moment to die: wait for partial files whose
        writer is still alive on this host."""
        from ..io.reader import RunReader

        part = self.outdir / PARTIAL_DIR
        if not part.is_dir():
            return
        deadline = time.monotonic() + timeout
        for f in sorted(part.glob("*/*.h5")):
            if f.name.endswith(".ckpt.h5"):
                continue
            while True:
                try:
                    with RunReader(f) as r:
                        st = r.status
                except (TumorcaError, OSError, KeyError, ValueError):
                    break
                if not (st.state == "running" and not st.resumable):
                    break
                if time.monotonic() > deadline:
                    raise SweepError(f"{str(f)!r} is {st.detail}; is another sweep running? stop it first")
                time.sleep(0.2)

    def start(self) -> None:
        """Create the directory, take its lock and write the manifest (all runs listed, complete ones marked)."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._wait_for_writers()
            self._drop_leftovers_of_complete_runs()
            self.write_manifest(force=True)
        except BaseException:
            self.close()
            raise

    def _drop_leftovers_of_complete_runs(self) -> None:
        """A sweep killed while publishing a run (between moving its file into ``runs/`` and removing its
        ``.partial/NAME/`` directory) leaves that directory behind (its checkpoint, its lock file); the run is
        complete, so nothing will ever use them."""
        for run, row in zip(self.runs, self.rows):
            if row.get("status") == "complete":
                _, partial = run_paths(self.outdir, run.name)
                shutil.rmtree(partial.parent, ignore_errors=True)

    def close(self) -> None:
        """Release the directory lock (and drop ``.partial/`` if nothing is left in it)."""
        try:
            (self.outdir / PARTIAL_DIR).rmdir()
        except OSError:
            pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- manifest --------------------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        spec = self.spec
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        b = spec.base
        return {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "tumorca_version": __version__,
            "name": spec.name, "sweep_id": self.sweep_id, "created": self.created, "updated": utc_now(),
            "n_runs": len(self.runs), "n_conditions": spec.n_conditions, "replicates": spec.replicates,
            "counts": counts, "root_seed": spec.seed, "seed_rule": spec.seed_rule, "varied": spec.varied,
            "base": {"shape": list(b["shape"]), "steps": b.get("steps"), "days": b.get("days"),
                     "every": b.get("every"), "fields": list(b["fields"]), "compression": b["compression"],
                     "checkpoint_every": b.get("checkpoint_every"), "preset": b["preset"],
                     "params": spec.base_params},
            "branch": ({**spec.branch, "at_step": self.runs[0].plan.start_step,
                        "parents": [f"{PARENTS_DIR}/{q.name}.h5" for q in spec.parents()]}
                       if spec.branch is not None else None),
            "sweep_file": spec.source, "sweep_file_text": spec.text, "command_line": self.command_line,
            "runs": [{k: (json_value(v) if not isinstance(v, (dict, list)) else v) for k, v in r.items()}
                     for r in self.rows],
        }

    def write_manifest(self, force: bool = False, every: float = 2.0) -> None:
        """Rewrite ``manifest.json`` and ``manifest.csv`` atomically (at most every ``every`` s unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_write < every:
            return
        doc = self.manifest()
        try:
            write_manifest(self.outdir, doc)
        except OSError as exc:
            # A full disk must not end the sweep with a traceback while runs are still going: the next write
            # tries again, and the last one (forced) reports it in one line.
            self.manifest_error = f"cannot write the manifest in {str(self.outdir)!r}: {describe_os_error(exc)}"
            if force:
                raise SweepRunError(self.manifest_error) from None
            return
        self.manifest_error = ""
        self._last_write = now

    # -- running ---------------------------------------------------------------------------------------------
    def task(self, i: int) -> dict[str, Any]:
        run = self.runs[i]
        prov = {"command_line": self.command_line, "sweep_name": self.spec.name, "sweep_id": self.sweep_id,
                "sweep_run": run.name, "sweep_index": run.index, "sweep_condition": run.condition,
                "sweep_replicate": run.replicate, "sweep_root_seed": str(self.spec.seed),
                "sweep_varied": json.dumps(run.varied)}
        task = {"index": i, "name": run.name, "plan": run.plan, "outdir": str(self.outdir.resolve()),
                "threads": self.threads, "attempt": self.rows[i]["attempts"], "provenance": prov}
        if run.parent is not None:
            task["parent"] = {"name": run.parent.name, "plan": run.parent.plan}
        return task

    def execute(self, client: Any, todo: list[int],
                progress: Callable[[SweepProgressEvent], None] | None = None) -> list[dict[str, Any]]:
        """Run ``todo`` on ``client`` (a ``distributed.Client``); returns the rows.  A failed attempt is recorded
        (``errors``) and submitted again until it has failed ``retries + 1`` times; the others go on."""
        from distributed import as_completed

        t0 = time.perf_counter()
        pending: dict[Any, int] = {}
        ac = as_completed(loop=client.loop)
        failures: dict[int, int] = {i: 0 for i in todo}

        def submit(i: int) -> None:
            row = self.rows[i]
            fut = client.submit(run_task, self.task(i), key=f"tumorca-{self.sweep_id}-{row['run']}-"
                                f"{row['attempts']}-{os.getpid()}-{time.monotonic_ns()}", pure=False,
                                priority=-i)
            row["attempts"] += 1
            row["status"] = "submitted" if failures[i] == 0 else "retrying"
            pending[fut] = i
            ac.add(fut)

        for i in todo:
            submit(i)
        done_here = 0
        try:
            for fut in ac:
                i = pending.pop(fut)
                row = self.rows[i]
                retrying = False
                attempt = row["attempts"]
                if fut.status == "finished":
                    res = fut.result()
                    row.update(status="complete", wall_seconds=res["wall_seconds"], started=res["started"],
                               host=res["host"], measures=res["measures"], error=res.get("measures_error", ""))
                    done_here += 1
                else:
                    err = describe_failure(fut)
                    failures[i] += 1
                    row["errors"].append(err)
                    row["error"] = err
                    if failures[i] <= self.retries:
                        retrying = True
                        submit(i)
                    else:
                        row["status"] = "failed"
                fut.release()
                self.write_manifest(force=not retrying and row["status"] == "failed")
                if progress is not None:
                    counts = self.counts()
                    progress(SweepProgressEvent(counts.get("complete", 0), counts.get("failed", 0), len(self.rows),
                                                done_here, len(todo), time.perf_counter() - t0, row, retrying,
                                                attempt))
        finally:
            for fut in list(pending):
                fut.cancel()
            self.settle(todo)
        return self.rows

    def settle(self, todo: list[int]) -> None:
        """After :meth:`execute` ended, normally or not: every run of ``todo`` not recorded as ended -- those still
        out, and one whose result was being taken in when an interrupt arrived -- goes back to ``pending``, and
        those whose file is complete on disk are adopted as complete (:meth:`adopt_finished`)."""
        for i in todo:
            if self.rows[i]["status"] in ("submitted", "retrying"):
                self.rows[i]["status"] = "pending"
        self.adopt_finished()

    def adopt_finished(self) -> None:
        """Mark complete every pending run whose file is complete on disk (it finished, but its result had not
        come back: a cancelled task can still finish on its worker), and rewrite the manifest.  Call it again
        once the workers are gone, so that the manifest names every run on disk."""
        for i, row in enumerate(self.rows):
            if row["status"] != "pending":
                continue
            final, _ = run_paths(self.outdir, row["run"])
            if is_complete_run(final, self.runs[i].plan):
                row.update(status="complete", started="found complete", error="")
                try:
                    row["measures"] = final_measures(final)
                except Exception:  # noqa: BLE001 - the run is complete; the measures can be redone
                    pass
        self.write_manifest(force=True)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def describe_failure(fut: Any) -> str:
    """One line for a failed future: the exception type and message, or what happened to the worker."""
    try:
        exc = fut.exception(timeout=10)
    except Exception as e:  # cancelled futures raise here
        exc = e
    name = type(exc).__name__
    if name == "KilledWorker":
        text = "worker process died while running it (KilledWorker)"
    elif name == "CancelledError":
        text = "cancelled (the scheduler lost the task or was shut down)"
    else:
        text = f"{name}: {exc}"
    text = " ".join(text.split())
    return text[:500]


# -- estimates ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepEstimate:
    """Projected resources: per-run peak memory and file size (uncompressed, an upper bound), their totals."""

    run_memory: int
    run_file: int
    total_files: int
    disk_free: int | None
    memory_available: int | None


def estimate_sweep(runs: list[SweepRun], outdir: str | Path) -> SweepEstimate:
    """Resource projection from :func:`tumorca.runner.estimate_resources` for every distinct plan shape (``runs``:
    anything with a ``plan``, a branched sweep's parents too)."""
    from ..runner import estimate_resources

    probe = _existing_ancestor(Path(outdir))
    cache: dict[tuple, Any] = {}
    mem = size = total = 0
    est = None
    for r in runs:
        p = r.plan
        key = (p.shape, p.start_step, p.steps, p.every, p.fields)
        if key not in cache:
            cache[key] = estimate_resources(p, probe / "x.h5")
        est = cache[key]
        mem, size = max(mem, est.memory), max(size, est.file)
        total += est.file
    return SweepEstimate(mem, size, total, est.disk_free if est else None, est.memory_available if est else None)


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (the output directory is created with its parents)."""
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


# -- from Python -------------------------------------------------------------------------------------------------
def cluster_security() -> Any:
    """Fresh TLS credentials for a local cluster (``distributed.security.Security.temporary``).

    Dask moves tasks as pickles, so whoever can talk to a scheduler or a worker can run code as the sweep's
    owner.  The loopback interface is open to every local user; with these credentials, held in memory by the
    sweep and handed to its own worker processes only, a connection without them is refused (docs/sweeps.md,
    "Security").  ClusterError (one line) if the ``cryptography`` package they need is missing.
    """
    from distributed.security import Security

    try:
        return Security.temporary()
    except ImportError:
        raise ClusterError("a local sweep cluster needs the cryptography package for its TLS credentials: "
                           "pip install 'tumorca[sweep]' (or pip install cryptography)") from None


def local_cluster(workers: int, **kw: Any) -> Any:
    """The LocalCluster a sweep uses here: worker processes of one thread each, on the loopback
    interface, no dashboard, every connection TLS with credentials of its own (:func:`cluster_security`; a
    ``distributed.Client(cluster)`` picks them up).  A dead worker fails its run at once (``allowed-failures`` 0:
    the driver retries) and each worker holds one run at a time (``worker-saturation`` 1.0)."""
    import logging

    import dask
    from distributed import LocalCluster

    security = kw.pop("security", None) or cluster_security()

    # Worker processes ignore SIGINT (they inherit that): a Ctrl-C on the terminal reaches the whole process group,
    # and only the sweep should act on it (it cancels the runs and shuts the cluster down).
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        old = None
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                              "distributed.scheduler.worker-saturation": 1.0}), warnings.catch_warnings():
            # Without a dashboard the scheduler still serves health routes on 127.0.0.1, trying port 8787 first
            # and warning when another cluster holds it: that is no news for a sweep.
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                protocol="tls://", security=security, dashboard_address=None,
                                silence_logs=kw.pop("silence_logs", logging.CRITICAL), **kw)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def default_workers(threads_per_run: int = 1) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, threads_per_run))


def check_sweep_resources(est: SweepEstimate, output: str | Path, workers: int | None, n_todo: int) -> None:
    """ResourceError if a run cannot fit: ``workers`` local runs at once in the memory available (``None``: a
    cluster of its own, not checked here), or one run file on the free disk."""
    if workers is not None and est.memory_available is not None and \
            est.run_memory * min(workers, max(1, n_todo)) > est.memory_available:
        raise ResourceError(f"{workers} workers need about {fmt_bytes(est.run_memory * workers)} of memory "
                            f"({fmt_bytes(est.run_memory)} a run) but {fmt_bytes(est.memory_available)} is "
                            "available; use fewer --workers")
    if est.disk_free is not None and est.run_file > est.disk_free:
        raise ResourceError(f"one run file may grow to {fmt_bytes(est.run_file)} before compression but only "
                            f"{fmt_bytes(est.disk_free)} is free for {str(output)!r}")


class SweepRunError(SweepError):
    """The sweep failed while running (a run error, exit status 1, unlike a bad sweep file or directory)."""


class ClusterError(SweepRunError):
    """The Dask cluster could not be started or reached."""


def run_on_cluster(driver: SweepDriver, todo: list[int], *, client: Any = None, scheduler: str | None = None,
                   workers: int | None = None, connect_timeout: float = 10.0,
                   progress: Callable[[SweepProgressEvent], None] | None = None,
                   catch_signals: bool = True) -> bool:
    """Run ``todo`` (from :meth:`SweepDriver.prepare`) to the end and return whether it was interrupted.

    ``client`` (a ``distributed.Client``) is used if given; else ``scheduler`` (an address or a scheduler file) is
    connected to; else a :func:`local_cluster` of ``workers`` processes is started.  What this function starts it
    also stops, before the manifest is written for the last time: no run lands on disk after it.  With
    ``catch_signals`` (the main thread only), SIGINT and SIGTERM cancel the runs and return True.

    Raises ClusterError if the cluster cannot be set up, SweepError if the directory cannot be taken.
    """
    import logging

    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    closers: list[Any] = []
    interrupted = started = False
    old_handlers: dict[int, Any] = {}
    try:
        if client is None:
            try:
                if scheduler is not None:
                    client = connect(scheduler, timeout=connect_timeout)
                    closers.append(client)
                else:
                    cluster = local_cluster(workers or default_workers(driver.threads))
                    closers.append(cluster)
                    client = Client(cluster, set_as_default=False)
                    closers.insert(0, client)  # the client first, then its cluster
            except SweepError as exc:
                raise ClusterError(str(exc)) from None
        driver.start()
        started = True

        def _term(signum, frame):
            raise KeyboardInterrupt

        if catch_signals:
            try:
                for s_ in (signal.SIGINT, signal.SIGTERM):
                    old_handlers[s_] = signal.signal(s_, _term)
            except ValueError:  # not the main thread
                pass
        try:
            driver.execute(client, todo, progress)
        except KeyboardInterrupt:
            if not catch_signals:
                raise
            interrupted = True
    finally:
        for s_, h in old_handlers.items():
            signal.signal(s_, h)
        for obj in closers:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing after an interrupt may race the workers' exit
                pass
        if started:  # with our workers gone, nothing else can land on disk: record what did, then unlock
            try:
                driver.adopt_finished()
            finally:
                driver.close()
    return interrupted


def run_sweep(sweep: str | Path | SweepSpec, outdir: str | Path, *, workers: int | None = None,
              threads_per_run: int = 1, scheduler: str | None = None, client: Any = None, resume: bool = False,
              retries: int = 1, progress: Callable[[SweepProgressEvent], None] | None = None) -> list[dict[str, Any]]:
    """Run a sweep from Python and return the manifest rows.

    ``client`` (a ``distributed.Client``) is used if given; else ``scheduler`` (an address or a scheduler file)
    is connected to; else a :func:`local_cluster` of ``workers`` processes is started and closed again.
    """
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    drv = SweepDriver(spec, outdir, resume=resume, threads_per_run=threads_per_run, retries=retries,
                      command_line=" ".join(sys.argv) if sys.argv else "")
    todo = drv.prepare()
    run_on_cluster(drv, todo, client=client, scheduler=scheduler, workers=workers, progress=progress,
                   catch_signals=False)
    return drv.rows


def connect(scheduler: str, timeout: float = 10.0) -> Any:
    """A Client of an existing cluster: ``scheduler`` is an address (``tcp://host:8786``) or a scheduler file
    (``dask scheduler --scheduler-file``, ``SLURMCluster``...).  SweepError if it cannot be reached in time."""
    from distributed import Client

    try:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler, timeout=timeout, set_as_default=False)
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s: "
                         f"{' '.join(str(exc).split())[:200]}") from None


__all__ = ["SweepDriver", "SweepProgressEvent", "SweepEstimate", "SweepRunError", "ClusterError", "estimate_sweep",
           "check_sweep_resources", "cluster_security", "local_cluster", "default_workers", "connect", "run_on_cluster",
           "run_sweep", "describe_failure"]