"""Run a simulation under MPI into a run file: the loop between :class:`tumorca.parallel.DistributedSimulation`
and the per-rank and main-file writers of :mod:`tumorca.io.distributed` (docs/FORMAT.md, "Runs under MPI").

Every function here is collective: every rank of ``comm`` calls it with the same arguments.  Failures are agreed
on before anything irreversible, so every rank raises the same error (or returns the same outcome) together:
an error on one rank alone would leave the others waiting in a collective call.  Only rank 0 writes the main
file and calls ``progress``.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import TumorcaError
from ..io.distributed import (LAYER_SOURCES, BlockWriter, MainFileWriter, VirtualRunLayout, block_reader,
                             check_sources, checkpoint_dir, create_rank_file, frames_dir, new_generation, rank_file,
                             referenced_dirs, remove_unreferenced, write_block_checkpoint, write_main_checkpoint)
from ..io.layout import RunFileError, RunPlan, sidecar_paths
from ..runner import ProgressFn, RunOutcome, StopFn

#: Error levels agreed between ranks: none, an error that leaves the files closeable, a failed HDF5 write (the
#: process must leave without closing that file).
OK, FAILED, BROKEN = 0, 1, 2


class _Agreed(Exception):
    """Internal: carries an error every rank has agreed on."""


def mpi_comm(comm: Any = None) -> Any:
    """``comm`` or MPI.COMM_WORLD; TumorcaError with the install hint if mpi4py is missing."""
    if comm is not None:
        return comm
    try:
        from mpi4py import MPI
    except ImportError:
        raise TumorcaError("mpi4py is not installed: pip install 'tumorca[mpi]'") from None
    return MPI.COMM_WORLD


def _rebuild(kind: type, message: str) -> BaseException:
    try:
        exc = kind(message)
    except Exception:  # noqa: BLE001 - a class that takes other arguments
        exc = RunFileError(message)
    return exc


def on_root(comm: Any, fn: Callable[[], Any], share: bool = True) -> Any:
    """Run ``fn`` on rank 0 only and broadcast its result (``share=False``: rank 0 keeps it, the others get
    None); if it raised, every rank raises an error of the same class and message (an unexpected exception is
    re-raised as it is on rank 0, and as a RunFileError elsewhere: no rank is left waiting)."""
    out: tuple = (None, None, None)
    value = None
    if comm.Get_rank() == 0:
        try:
            value = fn()
            out = (value if share else None, None, None)
        except BaseException as exc:  # noqa: BLE001 - re-raised below on every rank
            out = (None, type(exc) if _expected(exc) else RunFileError, _message(exc))
            if not _expected(exc):
                comm.bcast(out, root=0)
                raise
    shared, kind, msg = comm.bcast(out, root=0)
    if kind is not None:
        raise _rebuild(kind, msg)
    return shared if share or comm.Get_rank() != 0 else value


def on_all(comm: Any, fn: Callable[[], Any], cleanup: Callable[[], None] | None = None) -> Any:
    """Run ``fn`` on every rank; if it raised on any rank, run ``cleanup`` everywhere and raise the first failing
    rank's error on every rank (an unexpected exception is re-raised as it is where it happened)."""
    own: BaseException | None = None
    try:
        value, failure = fn(), None
    except BaseException as exc:  # noqa: BLE001 - re-raised below on every rank
        value = None
        failure = (type(exc) if isinstance(exc, TumorcaError) else RunFileError, _message(exc))
        own = None if _expected(exc) else exc
    failures = comm.allgather(failure)
    first = next((f for f in failures if f is not None), None)
    if first is not None:
        if cleanup is not None:
            cleanup()
        if own is not None:
            raise own
        raise _rebuild(*first)
    return value


def _expected(exc: BaseException) -> bool:
    import click

    return isinstance(exc, (TumorcaError, OSError, click.ClickException))


def _message(exc: BaseException) -> str:
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


# -- the pieces -------------------------------------------------------------------------------------------------
def _state_dtypes() -> dict[str, np.dtype]:
    from ..engine import STATE_ARRAYS

    return dict(STATE_ARRAYS)


def _snapshot(sim: Any, plan: RunPlan) -> dict[str, np.ndarray]:
    """Copies of this rank's block of every frame layer."""
    return {name: np.array(sim.layer(LAYER_SOURCES[name]), copy=True) for name in plan.layers}


def _meta(plan: RunPlan) -> dict[str, Any]:
    from .. import __version__

    return {"shape": plan.shape, "params": plan.params.to_dict(), "seed": plan.seed, "version": __version__}


class _Run:
    """The state of one distributed run on one rank: the engine, this rank's block writer and, on rank 0, the
    main-file writer."""

    def __init__(self, comm: Any, sim: Any, plan: RunPlan, path: Path, gen: str, run_id: str,
                 blocks: list, block: BlockWriter, main: MainFileWriter | None) -> None:
        self.comm, self.sim, self.plan, self.path = comm, sim, plan, path
        self.gen, self.run_id, self.blocks = gen, run_id, blocks
        self.rank = comm.Get_rank()
        self.root = self.rank == 0
        self.block = block
        self.main = main
        self.main_error: RunFileError | None = None
        self.committed = block.frames_flushed  # every rank starts with the same frames (0, or those kept)
        self.pending: list[tuple[int, float]] = []  # frames queued on every rank, not yet in /time
        self.states_committed = block.states_flushed  # likewise the kept states (flagged in /states/filled)
        self.pending_states: list[int] = []  # kept states queued on every rank, not yet flagged
        self.fdir = frames_dir(path, gen)

    # rank-0 calls into the main writer: an error is kept for the next agreement, never raised alone
    def _main(self, fn: Callable[[MainFileWriter], None]) -> None:
        if self.main is None or self.main_error is not None:
            return
        try:
            fn(self.main)
        except RunFileError as exc:
            self.main_error = exc

    def _main_level(self) -> int:
        if self.main_error is None:
            return OK
        return BROKEN if getattr(self.main_error, "broken", False) else FAILED

    def agree(self, stop: bool = False, extra_error: str = "") -> bool:
        """One Allreduce: stop request, error levels, frames and kept states flushed on every rank.  Commits the
        frames and kept states every rank has flushed; raises the agreed error on every rank.  Returns whether any
        rank asked to stop."""
        from mpi4py import MPI

        local_err = max(self.block.level, self._main_level(), FAILED if extra_error else OK)
        flags = np.array([int(stop), local_err, -self.block.frames_flushed, -self.block.states_flushed],
                         dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        if flags[1] != OK:
            self.fail(extra_error)
        self.commit(int(-flags[2]), int(-flags[3]))
        return bool(flags[0])

    def commit(self, flushed: int, states_flushed: int) -> None:
        """Rank 0: append /time and /step of the frames every rank has flushed, and flag the kept states every
        rank has flushed (the flag vouches for the whole state, as in a serial file)."""
        while self.pending and self.committed < flushed:
            step, t = self.pending.pop(0)
            self._main(lambda m: m.commit_frame(step, t))
            self.committed += 1
        while self.pending_states and self.states_committed < states_flushed:
            k = self.pending_states.pop(0)
            self._main(lambda m: m.commit_state(k))
            self.states_committed += 1

    def add_frame(self, step: int) -> None:
        self.block.add_frame(step, _snapshot(self.sim, self.plan))
        self.pending.append((step, self.sim.time_min))

    def add_state(self, step: int) -> None:
        """Queue this rank's block of the kept state of ``step`` (the current step)."""
        self.block.add_state(step, self.sim.local_state()["arrays"])
        self.pending_states.append(step)

    def fail(self, extra_error: str = "") -> None:
        """Every rank: gather the first error message, close what can be closed (rank 0 marks the main file
        ``failed``), raise the agreed RunFileError (resumable; ``broken`` on a rank whose file write failed)."""
        mine = self.block.error or (_message(self.main_error) if self.main_error is not None else "") or extra_error
        messages = self.comm.allgather(mine)
        msg = next((m for m in messages if m), "another rank failed")
        self.block.abort()
        if self.main is not None and self._main_level() != BROKEN:
            self.main.fail(msg)
        err = RunFileError(msg)
        err.resumable = True
        err.broken = self.block.broken or self._main_level() == BROKEN
        raise _Agreed(err)

    def checkpoint(self) -> None:
        """Every rank writes its block of the state; then rank 0 commits ``OUT.ckpt.h5`` over them.  The frames
        and rows up to this step are flushed first."""
        self.block.sync()
        self.agree()
        self._main(lambda m: m.sync())
        state = self.sim.local_state()
        step = int(state["step_index"])
        cdir = checkpoint_dir(self.path, step, self.gen)
        err = ""
        try:
            write_block_checkpoint(rank_file(cdir, self.rank), state["arrays"], len(self.plan.shape),
                                   tuple(state["owned"]), self.run_id, step)
        except OSError as exc:
            err = f"writing a checkpoint to {str(cdir)!r} failed: {_message(exc)}"
        self.agree(extra_error=err)
        if self.root:
            try:
                write_main_checkpoint(sidecar_paths(self.path)[1], {**_meta(self.plan), "step_index": step},
                                      self.run_id, self.blocks, [rank_file(cdir, r) for r in range(len(self.blocks))],
                                      _state_dtypes())
            except OSError as exc:
                err = f"writing the checkpoint {str(sidecar_paths(self.path)[1])!r} failed: {_message(exc)}"
            else:
                remove_unreferenced(self.path, {self.fdir, cdir})
        self.agree(extra_error=err)

    def finish(self, status: str) -> None:
        """Close every file: ``complete`` (with the final state) or ``interrupted`` (after a checkpoint)."""
        final = self.sim.local_state()["arrays"] if status == "complete" else None
        self.block.close(final)
        self.agree()
        if self.main is not None:
            try:
                self.main.close(status)
            except RunFileError as exc:
                self.main_error = exc
            if status == "complete" and self.main_error is None:
                sidecar_paths(self.path)[1].unlink(missing_ok=True)
                remove_unreferenced(self.path, {self.fdir})
        failure = self.comm.bcast(_message(self.main_error) if self.main_error is not None else "", root=0)
        if failure:
            err = RunFileError(failure)
            err.resumable = True
            err.broken = self._main_level() == BROKEN
            raise _Agreed(err)


def _open_engine(comm: Any, build: Callable[[], Any]) -> Any:
    return on_all(comm, build)


def _setup_files(comm: Any, sim: Any, plan: RunPlan, path: Path, make_main: Callable[..., MainFileWriter],
                 copy_frames: Callable[[Any, tuple], tuple[int, int]] | None = None,
                 run_id: str | None = None) -> _Run:
    """Rank files in a fresh generation directory, then the main file on rank 0; on any failure every rank
    removes what it made and raises the same error.  ``run_id``: the run's (a resume keeps it), else a new one.
    ``copy_frames(file, owned)`` fills a resumed run's new rank file with the blocks it keeps and returns how
    many frames and kept states that is."""
    rank, size = comm.Get_rank(), comm.Get_size()
    owned = tuple(sim.decomposition.owned)
    blocks = comm.allgather(owned)
    gen, run_id = comm.bcast((new_generation(), run_id or uuid.uuid4().hex) if rank == 0 else None, root=0)
    fdir = frames_dir(path, gen)
    mine = rank_file(fdir, rank)
    dtypes = _state_dtypes()
    made: dict[str, Any] = {}

    def make_rank_file() -> BlockWriter:
        fdir.mkdir(parents=True, exist_ok=True)
        f = create_rank_file(mine, plan, owned, rank, size, run_id, dtypes)
        made["file"] = f
        n, k = copy_frames(f, owned) if copy_frames is not None else (0, 0)
        f.swmr_mode = True
        f.flush()
        return BlockWriter(mine, f, plan, n_frames=n, n_states=k)

    def cleanup() -> None:
        if made.get("main") is not None:
            made["main"].discard()
        w = made.get("writer")
        if w is not None:
            w.abort()
        elif made.get("file") is not None:
            try:
                made["file"].close()
            except Exception:  # noqa: BLE001
                pass
        comm.Barrier()
        if rank == 0:
            import shutil
            shutil.rmtree(fdir, ignore_errors=True)

    def make() -> MainFileWriter:
        w = make_main(layout, run_id)
        w.take_built()
        made["main"] = w
        return w

    layout = VirtualRunLayout(path, blocks, [rank_file(fdir, r) for r in range(size)], dtypes)
    main = on_root(comm, make, share=False)
    block = on_all(comm, make_rank_file, cleanup)
    made["writer"] = block
    on_all(comm, lambda: main.publish() if rank == 0 else None, cleanup)  # the main file gets its name last
    return _Run(comm, sim, plan, path, gen, run_id, blocks, block, main if rank == 0 else None)


# -- entry points -------------------------------------------------------------------------------------------------
def run(plan: RunPlan, path: str | Path, *, provenance: Mapping[str, Any], threads: int | None = None,
        overwrite: bool = False, ranks_shape: str | None = None, comm: Any = None,
        progress: ProgressFn | None = None, stop: StopFn | None = None,
        started: Callable[[Any], None] | None = None, start_state: Mapping[str, Any] | None = None,
        start_summary: Mapping[str, Any] | None = None, lineage: Mapping[str, Any] | None = None) -> RunOutcome:
    """:func:`tumorca.runner.run` on every rank of ``comm`` (collective).  ``ranks_shape``: ``"PzxPyxPx"``,
    ``"PyxPx"``, ``"auto"`` or None (automatic).  ``started(sim)`` is called on rank 0 once the engine and the
    files are set up.

    ``start_state``, ``start_summary`` and ``lineage`` are those of :func:`tumorca.runner.run`, given on rank 0
    (the other ranks' are not looked at): the run starts from that state at ``plan.start_step`` -- rank 0 sends
    every rank its block -- and stores it whole in ``/start``, as a serial run does.
    """
    from ..runner import prepare_start_state, start_row

    comm = mpi_comm(comm)
    path = Path(path)
    root = comm.Get_rank() == 0

    def check_start() -> tuple[bool, dict[str, Any] | None]:
        # on rank 0: the serial run's checks of the start state and row, before any engine or file exists
        if start_state is None:
            if plan.start_step:
                raise RunFileError(f"the plan starts at step {plan.start_step}: give the state of that step")
            return False, None
        if start_summary is not None and int(start_summary.get("step", -1)) != plan.start_step:
            raise RunFileError(f"the start row is of step {start_summary.get('step')}, the run starts at step "
                               f"{plan.start_step}")
        return True, prepare_start_state(plan, start_state)

    checked = on_root(comm, check_start, share=False)  # rank 0: (given, the prepared state); elsewhere None
    given = comm.bcast(checked[0] if root else None, root=0)
    prepared = checked[1] if root else None
    checked = None
    from .simulation import DistributedSimulation

    stored: dict[str, Any] | None = None
    if not given:
        sim = _open_engine(comm, lambda: DistributedSimulation(plan.shape, plan.params, seed=plan.seed,
                                                               threads=threads, comm=comm, ranks_shape=ranks_shape))
    else:
        sim = _open_engine(comm, lambda: DistributedSimulation.from_state(prepared, threads=threads, comm=comm,
                                                                          ranks_shape=ranks_shape))
        # /start holds the state as the engine holds it (as a serial run stores it: from_state normalises the
        # neutrophil layers of empty sites); only rank 0 keeps the gathered copy
        stored = sim.gather_state()
        prepared = None
    first = sim.summary()
    if root and start_summary is not None:
        first = start_row(first, start_summary)

    def make_main(layout: VirtualRunLayout, run_id: str) -> MainFileWriter:
        return MainFileWriter.create(path, plan, first, _meta(plan), {**provenance, "threads": sim.threads,
                                                                       "ranks": comm.Get_size(),
                                                                       "ranks_shape": _dims_text(sim)},
                                     overwrite=overwrite, layout=layout, run_id=run_id, start_state=stored,
                                     lineage=lineage)

    r = _setup_files(comm, sim, plan, path, make_main)
    stored = None
    if r.root:
        (sidecar_paths(path)[1]).unlink(missing_ok=True)  # a stale checkpoint must never meet this file
        remove_unreferenced(path, {r.fdir})  # rank files of an earlier run this one replaced
        if started is not None:
            started(sim)
    return _drive(r, progress, stop, first_summary=first)


def _dims_text(sim: Any) -> str:
    return "x".join(str(int(d)) for d in sim.decomposition.dims)


def resume(path: str | Path, *, provenance: Mapping[str, Any], threads: int | None = None,
           given: Mapping[str, Any] | None = None, ranks_shape: str | None = None, comm: Any = None,
           progress: ProgressFn | None = None, stop: StopFn | None = None,
           started: Callable[[Any], None] | None = None) -> RunOutcome:
    """:func:`tumorca.runner.resume` on every rank of ``comm`` (collective).  The checkpoint may have been
    written by any number of ranks, or by a serial run: every rank reads its own block of it (or, before the
    first checkpoint, of the run's stored start state ``/start``, if it has one)."""
    import json

    import h5py

    from ..io.reader import RunReader
    from .simulation import DistributedSimulation
    from ..runner import check_resume

    comm = mpi_comm(comm)
    path = Path(path)
    holder: dict[str, Any] = {}

    def inspect() -> tuple[RunPlan, bool, bool]:
        reader = RunReader(path)
        holder["reader"] = reader
        check_resume(reader, given or {})
        has_start = reader.has_start_state()
        if reader.plan.start_step and not has_start:
            raise RunFileError(f"{str(path)!r} starts at step {reader.plan.start_step} but stores no start state")
        ck = reader.checkpoint_path
        has = ck.exists()
        if has:
            try:
                with h5py.File(ck, "r") as f:
                    if str(f.attrs.get("run_id", "")) != reader.attrs.get("run_id"):
                        raise RunFileError(f"checkpoint {str(ck)!r} belongs to another run than {str(path)!r}")
            except OSError as exc:
                raise RunFileError(f"cannot read checkpoint {str(ck)!r}: {_message(exc)}") from None
        return reader.plan, has, has_start  # check_resume has verified the checkpoint against the run file

    try:
        plan, has_ckpt, has_start = on_root(comm, inspect)
    except Exception:
        if "reader" in holder:
            holder["reader"].close()
        raise
    reader = holder.get("reader")
    try:
        if not has_ckpt and not has_start:
            sim = _open_engine(comm, lambda: DistributedSimulation(plan.shape, plan.params, seed=plan.seed,
                                                                   threads=threads, comm=comm,
                                                                   ranks_shape=ranks_shape))
        else:
            # Open the checkpoint (or, before the first one, the run's start state) on every rank first, agreed
            # on its own: a failure on some ranks must not reach the engine's collectives while the others are
            # inside them.
            opened: dict[str, Any] = {}

            def open_checkpoint() -> None:
                opened["reader"] = (block_reader(sidecar_paths(path)[1]) if has_ckpt
                                    else block_reader(path, group="start"))

            on_all(comm, open_checkpoint, cleanup=lambda: opened.pop("reader", (None, None, lambda: None))[2]())
            meta, read_block, close = opened["reader"]
            try:
                sim = _open_engine(comm, lambda: DistributedSimulation.from_blocks(
                    meta, read_block, threads=threads, comm=comm, ranks_shape=ranks_shape))
            finally:
                close()
        c = sim.step_index
        if c > plan.steps:
            raise RunFileError(f"checkpoint of {str(path)!r} is at step {c}, past the run's {plan.steps} steps")

        def kept_so_far() -> tuple[int, list[int], Any]:
            # what the resumed run keeps: frames and kept states up to the checkpoint (as RunWriter.resume), and
            # the start row if the file holds no row yet
            g = reader.file.get("states")
            filled = [] if g is None else list(g["filled"][()])
            kept = [k for k, done in zip(plan.keep_states, filled) if k <= c and done]
            row = (json.loads(str(reader.file["start"].attrs.get("summary", "{}"))) or None
                   if has_start and reader.n_rows == 0 else None)
            return int(np.count_nonzero(reader.steps <= c)), kept, row

        keep, kept, start_row = on_root(comm, kept_so_far)

        def copy_frames(f: Any, owned: tuple) -> tuple[int, int]:
            with h5py.File(path, "r", swmr=True) as old:
                check_sources(old, path)  # a missing rank file would be copied as zeros
                steps = old["step"][:keep]
                f["step"].resize(keep, axis=0)
                f["step"][:] = steps
                for name in plan.layers:
                    ds = f[name]
                    ds.resize(keep, axis=0)
                    for i in range(keep):
                        ds[i] = old[name][(i, *owned)]
                sl = tuple(owned) if len(plan.shape) == 3 else tuple(owned)[1:]
                for k in kept:  # this rank's blocks of the kept states, from whatever wrote the old file
                    src, dst = old[f"states/step_{k}/arrays"], f[f"states/step_{k}/arrays"]
                    for name in dst:
                        dst[name][...] = src[name][sl]
            return keep, len(kept)

        def make_main(layout: VirtualRunLayout, run_id: str) -> MainFileWriter:
            return MainFileWriter.resume(path, reader, c, _meta(plan),
                                         {**provenance, "threads": sim.threads, "ranks": comm.Get_size(),
                                          "ranks_shape": _dims_text(sim)}, layout=layout)

        old_id = on_root(comm, lambda: str(reader.attrs.get("run_id", "")))
        r = _setup_files(comm, sim, plan, path, make_main, copy_frames, run_id=old_id or None)
    finally:
        if reader is not None:
            reader.close()
    if r.root:
        r.run_id = r.main.run_id
        remove_unreferenced(path, {r.fdir} | referenced_dirs(sidecar_paths(path)[1]))
        if started is not None:
            started(sim)
    r.run_id = comm.bcast(r.run_id, root=0)
    if c in plan.keep_states and c not in kept:
        r.add_state(c)  # cut off between the kept state's step and its write
    return _drive(r, progress, stop, first_summary=start_row)


def _drive(r: _Run, progress: ProgressFn | None, stop: StopFn | None,
           first_summary: Mapping[str, Any] | None = None) -> RunOutcome:
    from ..errors import TumorcaError as _TE

    t0 = time.perf_counter()
    sim, plan = r.sim, r.plan
    first = sim.step_index
    status = "complete"
    try:
        if first == plan.start_step:
            # summary() is collective: every rank must call it, so rank 0 says whether the row is needed
            # (a run killed in its first step has no row on disk, and only rank 0 knows).  ``first_summary``
            # (a branch's start row) may be known to rank 0 alone: every rank computes the row all the same.
            if r.comm.bcast(r.main is not None and r.main.rows_written == 0, root=0):
                computed = sim.summary()
                summary = first_summary or computed
                r._main(lambda m: m.add_row(summary))
            if r.block.frames_flushed == 0:
                r.add_frame(first)
        while True:
            engine_error = ""
            asked = stop() if stop is not None else False
            if r.agree(stop=asked):
                status = "interrupted"
                break
            if sim.step_index >= plan.steps:
                break
            try:
                sim.step(1)
            except _TE as exc:
                engine_error = _message(exc)
                r.agree(extra_error=engine_error)
            s = sim.step_index
            summary = sim.summary()
            r._main(lambda m: m.add_row(summary))
            if plan.is_frame(s):
                r.add_frame(s)
            if s in plan.keep_states:
                r.add_state(s)
            if plan.is_checkpoint(s) and s < plan.steps:
                r.checkpoint()
            if progress is not None and r.root:
                progress(s, plan.steps, first)
        if status == "interrupted":
            r.checkpoint()
        r.finish(status)
    except _Agreed as agreed:
        raise agreed.args[0] from None
    done = sim.step_index
    return RunOutcome(r.path, status, done, plan.steps, plan.frames_until(done), time.perf_counter() - t0, first)
