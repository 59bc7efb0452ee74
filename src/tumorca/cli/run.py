"""``tumorca run``: a new run, a branch of another run (``--from``), a run from data (``--initial``), ``--resume``,
and the same under MPI (``mpiexec -n P tumorca run ...``).

This module only parses, validates and reports; :mod:`tumorca.runner` (serial) and :mod:`tumorca.parallel.run`
(MPI) run, and :mod:`tumorca.io` writes and reads.

Under MPI every rank parses the same arguments and so finds the same usage errors by itself (only rank 0 prints
them).  Everything that depends on the file system or on chance -- the output checks, the seed, the checks of a
file to resume -- is done by rank 0 and broadcast, so every rank takes the same decision before any file is
touched (a branch's parent and an ``--initial`` file are read by rank 0, which alone holds the start state and
sends every rank its block).  An error agreed on by the ranks is one line on rank 0's stderr and every rank exits with the same status;
an unexpected exception on one rank is reported by that rank and ends the whole job (``MPI_Abort``) rather than
leaving the others waiting.
"""
from __future__ import annotations

import math
import os
import secrets
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np

from .. import presets
from .._constants import FIELD_NAMES, MINUTES_PER_DAY
from ..errors import LatticeError, ParameterError, ResourceError, TumorcaError
from ..io.layout import COMPRESSIONS, RunFileError, RunPlan, fmt_bytes, fmt_shape
from ..params import Params
from ..runner import CHECKPOINT_FRAMES, DEFAULT_DAYS, DEFAULT_SHAPE
from ._common import (CONTEXT, MAX_COUNT, Progress, RunProblem, StopOnSignal, UsageProblem, build_params,
                      check_output_path, check_threads, command_line, echo, launcher_size, one_line, parse_fields,
                      parse_ranks_shape, parse_shape)


@click.command(context_settings=CONTEXT)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Run file to write (HDF5).")
@click.option("--preset", help="Scenario to start from (see 'tumorca presets').")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file of parameters (key = value, at the top or under [params]).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set one parameter (value read as TOML); repeatable.  Overrides --config and --preset.")
@click.option("--shape", metavar="NYxNX|NZxNYxNX", help="Lattice size  [default: 256x256].")
@click.option("--steps", type=int, help="Steps to run (of dt_min each).")
@click.option("--days", type=float, help=f"Simulated days to run instead of --steps  [default: {DEFAULT_DAYS:g}].")
@click.option("--every", type=int, help="A frame every this many steps  [default: one simulated day].")
@click.option("--fields", help="Fields in each frame: comma list of " + ", ".join(FIELD_NAMES) +
              ", or all or none  [default: all].")
@click.option("--compression", type=click.Choice(COMPRESSIONS), help="Frame compression  [default: gzip].")
@click.option("--seed", type=int, help="Random seed in [0, 2**64)  [default: drawn at random and recorded].")
@click.option("--threads", type=int, help="Engine threads  [default: the CPUs available].")
@click.option("--checkpoint-every", type=int,
              help=f"A checkpoint every this many steps (0: only at the end)  [default: {CHECKPOINT_FRAMES} "
                   "frames' worth].")
@click.option("--keep-states", "keep_steps", metavar="STEPS",
              help="Keep the full engine state at these steps (comma list) in the file, to branch from later.")
@click.option("--keep-states-days", "keep_days", metavar="DAYS",
              help="Keep the full engine state at these simulated days (comma list; each a whole step).")
@click.option("--from", "parent", type=click.Path(path_type=Path), metavar="RUN.h5",
              help="Branch: continue RUN.h5 from its state at --at-step/--at-day, with the parameters changed by "
                   "--preset/--config/--set (its seed unless --seed).")
@click.option("--at-step", type=int, help="With --from: the step to branch at (a state RUN.h5 keeps).")
@click.option("--at-day", type=float, help="With --from: the simulated day to branch at, instead of --at-step.")
@click.option("--initial", type=click.Path(path_type=Path), metavar="FILE",
              help="Start from the tissue and vessel layers (and fields) in FILE: HDF5, .npz, PNG or TIFF "
                   "(docs/initial-conditions.md); the lattice is the file's.")
@click.option("--pixel-size", type=float, metavar="UM",
              help="With --initial: the file's pixel size in um, if it differs from the lattice spacing dx_um "
                   "(the file is resampled) and the file does not say.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--resume", is_flag=True, help="Continue the cut-off or interrupted run in OUTPUT.")
@click.option("--ranks-shape", metavar="PzxPyxPx|PyxPx|auto",
              help="Under MPI (mpiexec -n P tumorca run ...): the grid of blocks, one per rank  [default: auto].")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def run(output: Path, preset: str | None, config: Path | None, sets: tuple[str, ...], shape: str | None,
        steps: int | None, days: float | None, every: int | None, fields: str | None, compression: str | None,
        seed: int | None, threads: int | None, checkpoint_every: int | None, keep_steps: str | None,
        keep_days: str | None, parent: Path | None, at_step: int | None, at_day: float | None,
        initial: Path | None, pixel_size: float | None, overwrite: bool, resume: bool, ranks_shape: str | None,
        quiet: bool) -> None:
    """Run a simulation into an HDF5 run file (plus OUT.h5.xdmf for ParaView).

    \b
    Examples:
      tumorca run -o wt.h5 --preset wild-type --days 14
      tumorca run -o ko.h5 --preset ifnb-knockout --shape 512x512 --seed 7 --fields o2,vegf_free
      tumorca run -o t.h5 --config my.toml --set neut_kill_rate=0.002 --steps 200 --every 10
      tumorca run -o wt.h5 --days 14 --keep-states-days 7
      tumorca run -o therapy.h5 --from wt.h5 --at-day 7 --preset ifnb-therapy
      tumorca run -o mine.h5 --initial drawing.png --pixel-size 10 --days 6
      tumorca run --resume -o ko.h5
      mpiexec -n 4 tumorca run -o big.h5 --shape 256x256x256 --ranks-shape 1x2x2 --threads 8
    """
    if overwrite and resume:
        raise UsageProblem("--overwrite and --resume exclude each other")
    if steps is not None and days is not None:
        raise UsageProblem("give --steps or --days, not both")
    if steps is not None and steps <= 0:
        raise UsageProblem(f"--steps must be a positive integer, got {steps}")
    if days is not None and not (days > 0 and math.isfinite(days)):
        raise UsageProblem(f"--days must be positive, got {days:g}")
    if every is not None and every <= 0:
        raise UsageProblem(f"--every must be a positive integer, got {every}")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise UsageProblem(f"--checkpoint-every must be 0 or a positive integer, got {checkpoint_every}")
    if seed is not None and not 0 <= seed < 2 ** 64:
        raise UsageProblem(f"--seed must be in [0, 2**64), got {seed}")
    check_threads(threads)
    if parent is None and (at_step is not None or at_day is not None):
        raise UsageProblem("--at-step and --at-day go with --from RUN.h5")
    if parent is not None:
        if resume:
            raise UsageProblem("--from makes a new run; --resume continues one (resume a branch with --resume -o "
                               "BRANCH.h5 alone)")
        if shape is not None:
            raise UsageProblem("--from: a branch has its parent's lattice; drop --shape")
        if (at_step is None) == (at_day is None):
            raise UsageProblem("--from needs the state to branch at: give --at-step N or --at-day D (one of them)")
        if at_step is not None and at_step < 0:
            raise UsageProblem(f"--at-step must be 0 or a positive integer, got {at_step}")
        if at_day is not None and not (at_day >= 0 and math.isfinite(at_day)):
            raise UsageProblem(f"--at-day must be 0 or positive, got {at_day:g}")
    if pixel_size is not None and initial is None:
        raise UsageProblem("--pixel-size goes with --initial FILE")
    if initial is not None and (os.path.realpath(initial) == os.path.realpath(output)):
        raise UsageProblem(f"-o {str(output)!r} is the --initial file itself; write the run to another file")
    if initial is not None:
        if parent is not None or resume:
            raise UsageProblem(f"--initial makes a new run from a file; it excludes {'--from' if parent else '--resume'}")
        if pixel_size is not None and not (pixel_size > 0 and math.isfinite(pixel_size)):
            raise UsageProblem(f"--pixel-size must be positive, got {pixel_size:g}")
    keep_list = _parse_keep(keep_steps, keep_days)
    for name, value in (("--steps", steps), ("--every", every), ("--checkpoint-every", checkpoint_every)):
        if value is not None and value > MAX_COUNT:
            raise UsageProblem(f"{name} must be at most {MAX_COUNT} (2**63 - 1), got {value}")
    if preset is not None and preset not in presets.PRESETS:
        try:
            presets.changes(preset)
        except TumorcaError as exc:
            raise UsageProblem(str(exc)) from None
    shape_t = parse_shape(shape) if shape is not None else None
    fields_t = parse_fields(fields) if fields is not None else None
    if ranks_shape is not None:
        ranks_shape = parse_ranks_shape(ranks_shape)
    params_given = preset is not None or config is not None or bool(sets)
    if parent is None:
        params = build_params(preset, config, sets)
    if keep_list != ((), ()) and resume:
        raise UsageProblem("--keep-states is part of a run's plan: it cannot change on --resume")
    under_mpi = ranks_shape is not None or launcher_size() > 1
    branch = None if parent is None else dict(parent=parent, at_step=at_step, at_day=at_day, preset=preset,
                                              config=config, sets=sets, steps=steps, days=days, every=every,
                                              fields=fields_t, compression=compression, seed=seed,
                                              checkpoint_every=checkpoint_every, keep=keep_list)
    if parent is not None and under_mpi:
        run_mpi(output=output, params=None, params_given=params_given, preset=preset, shape=None, steps=steps,
                days=days, every=every, fields=fields_t, compression=compression, seed=seed, threads=threads,
                checkpoint_every=checkpoint_every, overwrite=overwrite, resume=False, ranks_shape=ranks_shape,
                quiet=quiet, command=command_line(), branch=branch)
        return
    if parent is not None:
        check_output_path(output, overwrite=overwrite, resume=False)
        from .. import runner

        _branch(runner, output, threads=threads, overwrite=overwrite, quiet=quiet, **branch)
        return
    if output.is_symlink() and (resume or overwrite):
        # The run file is the link's target: its checkpoint is beside it, and a rename must replace it, not the
        # link (which would leave the target cut off and the link a copy).
        output = Path(os.path.realpath(output))
    if under_mpi:
        # the MPI path: every check below, agreed between the ranks
        run_mpi(output=output, params=params, params_given=params_given, preset=preset, shape=shape_t,
                steps=steps, days=days, every=every, fields=fields_t, compression=compression, seed=seed,
                threads=threads, checkpoint_every=checkpoint_every, overwrite=overwrite, resume=resume,
                ranks_shape=ranks_shape, quiet=quiet, command=command_line(), keep=keep_list,
                initial=None if initial is None else (initial, pixel_size))
        return
    check_output_path(output, overwrite=overwrite, resume=resume)
    cmd = command_line()
    provenance = {"command_line": cmd}

    from .. import runner  # the engine loads here, after the arguments are known to be good

    if resume:
        _resume(output, runner, provenance, threads, quiet, shape=shape_t, params=params if params_given else None,
                seed=seed, steps=steps, days=days, every=every, fields=fields_t, compression=compression,
                checkpoint_every=checkpoint_every)
        return

    start: dict[str, Any] = {}
    if initial is not None:
        start, shape_t = _initial(initial, pixel_size, params, shape_t)
    plan = make_plan(params, preset, shape_t, steps, days, every, fields_t, compression,
                     seed if seed is not None else secrets.randbits(63), checkpoint_every,
                     keep_states=_keep_steps(keep_list, params.dt_min))
    dt = params.dt_min
    if start:
        start["start_state"] = {**start["start_state"], "seed": plan.seed}
    _refuse_live_target(output, overwrite)
    est = _check_resources(runner, plan, output, output.stat().st_size if overwrite and output.exists() else 0)
    source = f", from {start['lineage']['initial_source']}" if start else ""
    echo(quiet, f"tumorca: {fmt_shape(plan.shape)} lattice{source}, {plan.steps} steps "
                 f"({plan.steps * dt / MINUTES_PER_DAY:g} days), {plan.n_frames} frames every "
                 f"{plan.every} steps, seed {plan.seed}, preset {plan.preset or 'none'}"
                 f"{_kept_text(runner, plan)}; {est.describe()} -> {output}")
    _execute(lambda stop, prog: runner.run(plan, output, provenance=provenance, threads=threads,
                                           overwrite=overwrite, progress=prog, stop=stop, **start), output, quiet)


def _initial(path: Path, pixel_size: float | None, params: Params, shape: tuple[int, ...] | None
             ) -> tuple[dict[str, Any], tuple[int, ...]]:
    """``tumorca run --initial FILE``: the keyword arguments of ``runner.run`` for a run that starts from the
    layers in FILE (its start state and the ``initial_*`` lineage), and the lattice shape they give."""
    from ..io.initial import load_initial
    from ..simulation import Simulation

    try:
        data = load_initial(path, pixel_size_um=pixel_size, dx_um=params.dx_um)
    except TumorcaError as exc:
        raise UsageProblem(f"--initial: {exc}") from None
    if shape is not None and tuple(shape) != tuple(data.shape):
        raise UsageProblem(f"--initial: {str(path)!r} gives a {fmt_shape(data.shape)} lattice but --shape is "
                           f"{fmt_shape(shape)}; drop --shape")
    try:
        # the seed is the plan's, set once it is drawn; building the state draws no random number
        state = Simulation.from_arrays(**data.arrays(), params=params, threads=1).get_state()
    except TumorcaError as exc:
        raise UsageProblem(f"--initial: {str(path)!r}: {exc}") from None
    lineage = {"initial_source": str(path), "initial_sha256": data.sha256,
               "initial_pixel_size_um": float(data.pixel_size_um if data.pixel_size_um is not None else params.dx_um),
               "initial_resampled_from": np.array(data.resampled_from or (), dtype=np.int64)}
    return {"start_state": state, "lineage": lineage}, tuple(data.shape)


def make_plan(params: Params, preset: str | None, shape: tuple[int, ...] | None, steps: int | None,
              days: float | None, every: int | None, fields: tuple[str, ...] | None, compression: str | None,
              seed: int, checkpoint_every: int | None, keep_states: tuple[int, ...] = ()) -> RunPlan:
    """The plan of a new run from the options given (defaults for the rest); UsageProblem if it is invalid."""
    dt = params.dt_min
    if steps is None:
        steps = max(1, round((days if days is not None else DEFAULT_DAYS) * MINUTES_PER_DAY / dt))
    if steps > MAX_COUNT:
        raise UsageProblem(f"--days {days:g} makes {steps} steps, more than {MAX_COUNT} (2**63 - 1)")
    if every is None:
        every = min(steps, max(1, round(MINUTES_PER_DAY / dt)))
    elif every > steps:
        raise UsageProblem(f"--every {every} is larger than the run ({steps} steps)")
    if checkpoint_every is None:
        checkpoint_every = CHECKPOINT_FRAMES * every
    _check_keep(keep_states, 0, steps)
    try:
        return RunPlan(shape=shape or DEFAULT_SHAPE, params=params, seed=seed, steps=steps, every=every,
                       fields=FIELD_NAMES if fields is None else fields, compression=compression or "gzip",
                       checkpoint_every=checkpoint_every, preset=preset or "", keep_states=keep_states)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None


# -- kept states and branches ------------------------------------------------------------------------------------
def _parse_keep(keep_steps: str | None, keep_days: str | None) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``--keep-states`` and ``--keep-states-days`` as (steps, days), unconverted (days need the time step)."""
    steps: list[int] = []
    days: list[float] = []
    for opt, text, kind in (("--keep-states", keep_steps, int), ("--keep-states-days", keep_days, float)):
        if text is None:
            continue
        for item in (t.strip() for t in text.split(",")):
            try:
                v = kind(item)
            except ValueError:
                raise UsageProblem(f"{opt}: {item!r} is not a {'step' if kind is int else 'number of days'}; "
                                   f"give a comma list such as {'96,192' if kind is int else '2,4.5'}") from None
            if not (v > 0 and math.isfinite(v)):
                raise UsageProblem(f"{opt}: {item} is not positive")
            (steps if kind is int else days).append(v)
    return tuple(steps), tuple(days)


def _keep_steps(keep: tuple[tuple[int, ...], tuple[float, ...]], dt: float) -> tuple[int, ...]:
    """The kept steps: those given, and the days given converted with the time step ``dt`` (whole steps only)."""
    steps = list(keep[0])
    for d in keep[1]:
        x = d * MINUTES_PER_DAY / dt
        if abs(x - round(x)) > 1e-6:
            raise UsageProblem(f"--keep-states-days: day {d:g} is not a whole step (dt = {dt:g} min); give steps "
                               "with --keep-states")
        steps.append(round(x))
    return tuple(sorted(set(steps)))


def _check_keep(keep: tuple[int, ...], start: int, end: int) -> None:
    bad = [k for k in keep if not start < k <= end]
    if bad:
        raise UsageProblem(f"--keep-states: step {bad[0]} is outside the steps this run computes "
                           f"({start + 1}..{end})")


def _kept_text(runner: Any, plan: RunPlan) -> str:
    """What the kept states cost, for the start message ("" if none)."""
    if not plan.keep_states:
        return ""
    each = runner.state_bytes(plan)
    n = len(plan.keep_states)
    shown = ",".join(map(str, plan.keep_states[:6])) + (",..." if n > 6 else "")
    return (f", {n} kept state{'s' if n > 1 else ''} (steps {shown}; {fmt_bytes(each)} each, "
            f"{fmt_bytes(n * each)} in all, uncompressed)")


def _branch(runner: Any, output: Path, *, threads: int | None, overwrite: bool, quiet: bool, **branch: Any) -> None:
    """``tumorca run --from PARENT --at-step N -o OUTPUT``: a new run from PARENT's state at step N."""
    existing = output.stat().st_size if overwrite and output.exists() else 0
    plan, state, row, lineage, header = _branch_setup(
        runner, output=output, overwrite=overwrite,
        check_disk=lambda plan: _check_resources(runner, plan, output, existing).describe(), **branch)
    echo(quiet, header)
    provenance = {"command_line": command_line()}
    _execute(lambda stop, prog: runner.run(plan, output, provenance=provenance, threads=threads,
                                           overwrite=overwrite, progress=prog, stop=stop, start_state=state,
                                           start_summary=row, lineage=lineage), output, quiet)


def _branch_setup(runner: Any, parent: Path, output: Path, *, at_step: int | None, at_day: float | None,
                  preset: str | None, config: Path | None, sets: tuple[str, ...], steps: int | None,
                  days: float | None, every: int | None, fields: tuple[str, ...] | None, compression: str | None,
                  seed: int | None, checkpoint_every: int | None, keep: tuple[tuple[int, ...], tuple[float, ...]],
                  overwrite: bool, check_disk: Callable[[RunPlan], str]
                  ) -> tuple[RunPlan, dict[str, Any], Any, dict[str, Any], str]:
    """The checks and the start of a branch (serial, or on rank 0 under MPI): returns its plan, its start state
    (PARENT's state at step N), start row, lineage and the one-line description to print.  ``check_disk(plan)``
    checks the resources and describes the estimate."""
    from ..io.lineage import parameter_changes, parent_attrs
    from ..io.reader import RunReader

    if parent.exists() and output.exists() and os.path.samefile(parent, output) \
            or os.path.realpath(parent) == os.path.realpath(output):
        raise UsageProblem(f"-o {str(output)!r} is the parent run itself; write the branch to another file")
    try:
        reader = RunReader(parent)
    except TumorcaError as exc:
        raise UsageProblem(f"--from: {exc}") from None
    with reader:
        try:
            pplan = reader.plan
        except TumorcaError as exc:
            raise UsageProblem(f"--from: {exc}") from None
        st = reader.status
        if st.state == "damaged":
            raise UsageProblem(f"--from: {str(parent)!r} is {st.detail}")
        dt = pplan.params.dt_min
        if at_day is not None:
            x = at_day * MINUTES_PER_DAY / dt
            at_step = round(x)
            if abs(x - at_step) > 1e-6:
                raise UsageProblem(f"--at-day {at_day:g} is not a whole step of {str(parent)!r} (dt = {dt:g} min); "
                                   f"states available at steps: {_available(reader, dt)}")
        n = int(at_step)
        try:
            state = reader.state_at(n)
        except TumorcaError as exc:
            raise UsageProblem(f"--from: {exc}") from None
        row = reader.row_at(n)
        run_id = str(reader.attrs.get("run_id", ""))
        # the new arm: the parent's parameters, then the preset's changes, then --config, then --set
        params = build_params(preset, config, sets, base=pplan.params)
    fixed = [k for k in ("dt_min", "dx_um") if params[k] != pplan.params[k]]
    if fixed:
        raise UsageProblem(f"--from: a branch keeps its parent's {fixed[0]} ({pplan.params[fixed[0]]!r}): the step "
                           "count and the lattice are shared with the parent")
    if steps is None and days is not None:
        steps = max(1, round(days * MINUTES_PER_DAY / dt))
    if steps is None:
        steps = pplan.steps - n
        if steps <= 0:
            raise UsageProblem(f"--from: step {n} is where {str(parent)!r} ends; give --steps or --days for the "
                               "branch")
    if every is not None and every > steps:
        raise UsageProblem(f"--every {every} is larger than the branch ({steps} steps)")
    every = every if every is not None else pplan.every
    keep_states = _keep_steps(keep, dt)
    _check_keep(keep_states, n, n + steps)
    try:
        plan = RunPlan(shape=pplan.shape, params=params, seed=seed if seed is not None else pplan.seed,
                       steps=n + steps, every=every, fields=pplan.fields if fields is None else fields,
                       compression=compression or pplan.compression,
                       checkpoint_every=(checkpoint_every if checkpoint_every is not None
                                         else CHECKPOINT_FRAMES * every),
                       preset=_branch_preset(pplan.preset, preset), start_step=n, keep_states=keep_states)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    if state is None:  # the parent's built-in initial condition, with its own parameters and seed
        state = runner.initial_state(pplan)
    changes = parameter_changes(pplan, plan)
    try:
        lineage = parent_attrs(parent, run_id, n, changes)
    except OSError as exc:
        raise UsageProblem(f"--from: cannot read {str(parent)!r}: {exc.strerror or exc}") from None
    _refuse_live_target(output, overwrite)
    described = check_disk(plan)
    changed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()) or \
        "none (continues the parent bit for bit)"
    header = (f"tumorca: branch of {parent} at step {n} (day {n * dt / MINUTES_PER_DAY:g}): steps {n + 1}.."
              f"{plan.steps} ({steps * dt / MINUTES_PER_DAY:g} days), {plan.n_frames} frames every "
              f"{plan.every} steps, seed {plan.seed}; changed: {changed}{_kept_text(runner, plan)}; "
              f"{described} -> {output}")
    return plan, state, row, lineage, header


def _branch_preset(parent: str, given: str | None) -> str:
    """The preset a branch records: ``--preset`` applies only the preset's changes on top of the parent's
    parameters, so a branch of an ``ifnb-knockout`` run with ``--preset wild-type`` (which changes nothing) is
    still a knockout: it records ``ifnb-knockout+wild-type``, never a name its parameters do not follow."""
    if given is None or given == parent:
        return parent
    return f"{parent}+{given}" if parent else given


def _available(reader: Any, dt: float) -> str:
    return ", ".join(f"{s} (day {s * dt / MINUTES_PER_DAY:g})" for s in reader.state_steps())


def _refuse_live_target(output: Path, overwrite: bool) -> None:
    """--overwrite never replaces a run file that a live process is still writing."""
    if not (overwrite and output.exists()):
        return
    from ..io.reader import RunReader

    try:
        with RunReader(output) as r:
            st = r.status
    except TumorcaError:
        return  # not a tumorca run file: --overwrite may replace it
    if st.state == "running" and not st.resumable:
        raise UsageProblem(f"{str(output)!r} is {st.detail}; refusing to overwrite it")


def _check_resources(runner: Any, plan: RunPlan, output: Path, existing: int, copy: int = 0):
    try:
        return runner.check_resources(plan, output, existing, copy)
    except ResourceError as exc:
        raise RunProblem(str(exc)) from None


def _resume_given(reader: Any, given: dict[str, Any]) -> dict[str, Any]:
    """The options given to ``--resume`` as the plan states them: ``--days`` as steps, and for a run that starts
    past step 0 (a branch) ``--steps``/``--days`` counted from its start, as ``--from`` counts them; options not
    given are left out."""
    g = dict(given)
    days = g.pop("days", None)
    try:
        plan = reader.plan
    except (TumorcaError, KeyError, ValueError):
        return {k: v for k, v in g.items() if v is not None}  # check_resume says what is wrong with the file
    if days is not None:
        g["steps"] = max(1, round(days * MINUTES_PER_DAY / (g.get("params") or plan.params).dt_min))
    if g.get("steps") is not None:
        g["steps"] += plan.start_step
    return {k: v for k, v in g.items() if v is not None}


def _resume(output: Path, runner: Any, provenance: dict, threads: int | None, quiet: bool, **given: Any) -> None:
    from ..io.reader import RunReader
    from ..io.writer import remove_stale_lock

    # the lock of a writer killed after it finished (nothing would take it again: a finished run is refused below)
    remove_stale_lock(os.path.realpath(output))
    try:
        reader = RunReader(output)
    except TumorcaError as exc:
        raise UsageProblem(f"--resume: {exc}") from None
    with reader:
        given = _resume_given(reader, given)
        try:
            runner.check_resume(reader, given)
            plan = reader.plan
        except TumorcaError as exc:
            raise UsageProblem(f"--resume: {exc}") from None
        ck = reader.checkpoint_step()
        on_disk = reader.last_step
        start_text = (f"the stored start state at step {plan.start_step}" if reader.has_start_state()
                      else "the initial state")
    size = output.stat().st_size
    est = _check_resources(runner, plan, output, size, copy=size)
    start = f"checkpoint at step {ck}" if ck is not None else f"{start_text} (no checkpoint yet)"
    echo(quiet, f"tumorca: resuming {output} from {start} (file had step {on_disk} of {plan.steps}); "
                 f"{est.describe()}")
    _execute(lambda stop, prog: runner.resume(output, provenance=provenance, threads=threads, given=given,
                                              progress=prog, stop=stop), output, quiet)


def _execute(call: Callable[[Callable[[], bool], Any], Any], output: Path, quiet: bool) -> None:
    """Run with signal handling and progress; report the end in one line."""
    progress = Progress()
    with StopOnSignal() as stop:
        try:
            outcome = call(stop, None if quiet else progress)
        except RunFileError as exc:
            progress.finish()
            msg = str(exc)
            if getattr(exc, "resumable", False):
                msg += f"; after fixing the cause, continue with: tumorca run --resume -o {shlex.quote(str(output))}"
            if getattr(exc, "broken", False):
                # HDF5 holds writes it cannot complete; a normal exit would retry them while tearing down (noise,
                # and crashes seen with HDF5 2.0).  The file on disk is as of its last flush, so leave now.
                click.echo(f"tumorca: error: {msg}", err=True)
                sys.stderr.flush()
                sys.stdout.flush()
                os._exit(1)
            raise RunProblem(msg) from None
        except TumorcaError as exc:
            progress.finish()
            raise RunProblem(str(exc)) from None
    progress.finish()
    if outcome.status == "interrupted":
        name = signal.Signals(stop.signum).name if stop.signum else "signal"
        click.echo(f"tumorca: {name} at step {outcome.step} of {outcome.steps}: checkpoint written; continue with: "
                   f"tumorca run --resume -o {shlex.quote(str(output))}", err=True)
        sys.exit(130)
    size = output.stat().st_size
    rate = (outcome.step - outcome.first_step) / max(outcome.wall_seconds, 1e-9)
    echo(quiet, f"tumorca: wrote {output}: {outcome.frames} frames, {outcome.steps} steps, {fmt_bytes(size)} in "
                 f"{outcome.wall_seconds:.1f} s ({rate:.1f} steps/s)")


# -- under MPI ---------------------------------------------------------------------------------------------------
def run_mpi(*, output: Path, params: Any, params_given: bool, preset: str | None, shape: tuple[int, ...] | None,
            steps: int | None, days: float | None, every: int | None, fields: tuple[str, ...] | None,
            compression: str | None, seed: int | None, threads: int | None, checkpoint_every: int | None,
            overwrite: bool, resume: bool, ranks_shape: str | None, quiet: bool, command: str,
            keep: tuple[tuple[int, ...], tuple[float, ...]] = ((), ()),
            initial: tuple[Path, float | None] | None = None, branch: dict[str, Any] | None = None) -> None:
    """``tumorca run`` under MPI; ``command`` is the command line as given (recorded in the run file).

    ``keep``: the kept states asked for (steps, days); ``initial``: ``--initial FILE`` and ``--pixel-size``;
    ``branch``: the keyword arguments of :func:`_branch_setup` for ``--from`` (then ``params`` is None: the
    branch's are its parent's, changed).  The start state of a branch or of ``--initial`` is read on rank 0 only.
    """
    from ..parallel import run as mpirun

    try:
        comm = mpirun.mpi_comm()
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    rank = comm.Get_rank()
    from ..io.writer import OutputLock

    lock = OutputLock(output)  # taken by rank 0 in its checks, held to the end: one writer per output

    def take_lock() -> None:
        try:
            lock.acquire()
        except TumorcaError as exc:
            raise RunProblem(str(exc)) from None

    try:
        if resume:
            _mpi_resume(comm, output, threads, quiet or rank != 0, ranks_shape, command, take_lock,
                        given=dict(shape=shape, params=params if params_given else None, seed=seed, steps=steps,
                                   days=days, every=every, fields=fields, compression=compression,
                                   checkpoint_every=checkpoint_every))
            return
        from .. import runner

        if branch is None:
            # the seed is drawn once, on rank 0 (a branch's is its parent's unless given)
            seed = comm.bcast(seed if seed is not None else secrets.randbits(63), root=0)
        if branch is None and initial is None:
            # every rank finds the same usage errors in the plan by itself
            plan = make_plan(params, preset, shape, steps, days, every, fields, compression, seed, checkpoint_every,
                             keep_states=_keep_steps(keep, params.dt_min))

        def existing() -> int:
            return output.stat().st_size if overwrite and output.exists() else 0

        def checks() -> tuple[tuple[RunPlan, Any, Any, str], Any]:
            # rank 0: ((plan, start row, lineage, header), start state); the state stays on rank 0
            check_output_path(output, overwrite=overwrite, resume=False)
            take_lock()
            if branch is not None:
                size = existing()
                b_plan, state, row, lineage, text = _branch_setup(
                    runner, output=output, overwrite=overwrite,
                    check_disk=lambda p: _mpi_check_disk(p, output, size), **branch)
                return (b_plan, row, lineage, text), state
            _refuse_live_target(output, overwrite)
            start: dict[str, Any] = {}
            the_plan = plan if initial is None else None
            if initial is not None:
                start, shape_i = _initial(initial[0], initial[1], params, shape)
                the_plan = make_plan(params, preset, shape_i, steps, days, every, fields, compression, seed,
                                     checkpoint_every, keep_states=_keep_steps(keep, params.dt_min))
                start["start_state"] = {**start["start_state"], "seed": the_plan.seed}
            described = _mpi_check_disk(the_plan, output, existing())
            dt = the_plan.params.dt_min
            source = f", from {start['lineage']['initial_source']}" if start else ""
            text = (f"tumorca: {fmt_shape(the_plan.shape)} lattice{source}, {the_plan.steps} steps "
                    f"({the_plan.steps * dt / MINUTES_PER_DAY:g} days), {the_plan.n_frames} frames every "
                    f"{the_plan.every} steps, seed {the_plan.seed}, preset {the_plan.preset or 'none'}"
                    f"{_kept_text(runner, the_plan)}; {described} -> {output}")
            return (the_plan, None, start.get("lineage"), text), start.get("start_state")

        checked = mpirun.on_root(comm, checks, share=False)
        plan, row, lineage, header = comm.bcast(checked[0] if rank == 0 else None, root=0)
        state = checked[1] if rank == 0 else None
        checked = None
        provenance = {"command_line": command}
        quiet = quiet or rank != 0
        _mpi_execute(comm, lambda stop, prog: mpirun.run(plan, output, provenance=provenance, threads=threads,
                                                     overwrite=overwrite, ranks_shape=ranks_shape, comm=comm,
                                                     progress=prog, stop=stop, start_state=state,
                                                     start_summary=row, lineage=lineage,
                                                     started=lambda sim: echo(quiet, header + _ranks_text(sim))),
                 output, quiet)
    except (click.ClickException, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - possibly on this rank alone: end the job, never hang
        sys.stderr.write(f"tumorca: error: rank {rank}: internal error: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())}\n")
        sys.stderr.flush()
        comm.Abort(1)
    finally:
        lock.release()


def _ranks_text(sim: Any) -> str:
    dims = "x".join(str(int(d)) for d in sim.decomposition.dims)
    block = "x".join(str(int(d)) for d in sim.decomposition.block_shape)
    return f"; {sim.size} MPI ranks as a {dims} grid of blocks (rank 0: {block} sites), {sim.threads} thread(s) each"


def _mpi_check_disk(plan: RunPlan, output: Path, existing: int, copy: int = 0) -> str:
    """The serial run's up-front disk check (the memory check is per rank, in the engine); a one-line
    description of the estimate."""
    from ..runner import check_copy_space, estimate_resources

    try:
        est = estimate_resources(plan, output)
        check_copy_space(est, output, copy)
    except TumorcaError as exc:
        raise RunProblem(str(exc)) from None
    if est.disk_free is not None and est.file > est.disk_free + existing:
        raise RunProblem(f"the run files may grow to {fmt_bytes(est.file)} ({plan.n_frames} frames of "
                         f"{fmt_bytes(plan.frame_bytes())} before compression) but only "
                         f"{fmt_bytes(est.disk_free)} is free in {str(output.resolve().parent)!r}; write fewer "
                         "frames (--every, --fields) or a smaller lattice")
    return f"files up to {fmt_bytes(est.file)} uncompressed"


def _mpi_resume(comm: Any, output: Path, threads: int | None, quiet: bool, ranks_shape: str | None, command: str,
                take_lock: Callable[[], None], given: dict[str, Any]) -> None:
    from ..io.reader import RunReader
    from ..parallel import run as mpirun
    from ..runner import check_resume

    def checks() -> tuple[dict[str, Any], str]:
        check_output_path(output, overwrite=False, resume=True)
        take_lock()
        try:
            reader = RunReader(output)
        except TumorcaError as exc:
            raise UsageProblem(f"--resume: {exc}") from None
        with reader:
            g = _resume_given(reader, given)
            try:
                check_resume(reader, g)
                plan = reader.plan
            except TumorcaError as exc:
                raise UsageProblem(f"--resume: {exc}") from None
            ck = reader.checkpoint_step()
            on_disk = reader.last_step
            start_text = (f"the stored start state at step {plan.start_step}" if reader.has_start_state()
                          else "the initial state")
        size = output.stat().st_size + sum(p.stat().st_size for p in _rank_files(output))
        described = _mpi_check_disk(plan, output, size, copy=size)
        start = f"checkpoint at step {ck}" if ck is not None else f"{start_text} (no checkpoint yet)"
        return g, (f"tumorca: resuming {output} from {start} (file had step {on_disk} of {plan.steps}); "
                   f"{described}")

    g, message = mpirun.on_root(comm, checks)
    provenance = {"command_line": command}
    _mpi_execute(comm, lambda stop, prog: mpirun.resume(output, provenance=provenance, threads=threads, given=g,
                                                    ranks_shape=ranks_shape, comm=comm, progress=prog, stop=stop,
                                                    started=lambda sim: echo(quiet, message + _ranks_text(sim))),
             output, quiet)


def _mpi_execute(comm: Any, call: Callable[[Callable[[], bool], Any], Any], output: Path, quiet: bool) -> None:
    """As :func:`_execute`: signals, progress (rank 0), one line at the end; errors here were agreed by
    every rank, so every rank raises (and exits) alike."""
    progress = Progress()
    resume_hint = f"tumorca run --resume -o {shlex.quote(str(output))}"
    with StopOnSignal() as stop:
        try:
            outcome = call(stop, None if quiet else progress)
        except RunFileError as exc:
            progress.finish()
            msg = str(exc)
            if getattr(exc, "resumable", False):
                msg += f"; after fixing the cause, continue with: mpiexec -n P {resume_hint}"
            if comm.Get_rank() == 0:
                click.echo(f"tumorca: error: {one_line(msg)}", err=True)
            sys.stderr.flush()
            sys.stdout.flush()
            # mpiexec ends the whole job the moment one rank exits with an error: a rank whose write broke (and
            # leaves at once, below) would take rank 0 down before it said why.  Rank 0 has marked the file by now
            # (the error was agreed); wait until it has also spoken, then every rank leaves.
            _wait_for_every_rank(comm)
            if getattr(exc, "broken", False):
                # HDF5 holds writes it cannot complete; a normal exit would retry them while tearing down
                os._exit(1)
            sys.exit(1)
        except (LatticeError, ParameterError) as exc:
            progress.finish()
            raise UsageProblem(str(exc)) from None
        except (ResourceError, TumorcaError) as exc:
            progress.finish()
            raise RunProblem(str(exc)) from None
    progress.finish()
    if outcome.status == "interrupted":
        if comm.Get_rank() == 0:
            name = signal.Signals(stop.signum).name if stop.signum else "signal"
            click.echo(f"tumorca: {name} at step {outcome.step} of {outcome.steps}: checkpoint written; continue "
                       f"with: mpiexec -n P {resume_hint}", err=True)
        sys.exit(130)
    if not quiet:
        size = output.stat().st_size + sum(p.stat().st_size for p in _rank_files(output))
        rate = (outcome.step - outcome.first_step) / max(outcome.wall_seconds, 1e-9)
        click.echo(f"tumorca: wrote {output} (+ {comm.Get_size()} rank files): {outcome.frames} frames, "
                   f"{outcome.steps} steps, {fmt_bytes(size)} in {outcome.wall_seconds:.1f} s ({rate:.1f} steps/s)",
                   err=True)


def _wait_for_every_rank(comm: Any, timeout: float = 30.0) -> None:
    """A barrier that gives up after ``timeout`` seconds (a rank that never comes must not hang the others)."""
    import time

    try:
        req = comm.Ibarrier()
        deadline = time.monotonic() + timeout
        while not req.Test():
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
    except Exception:  # noqa: BLE001 - best effort: leaving is what comes next anyway
        pass


def _rank_files(output: Path) -> list[Path]:
    from ..io.distributed import ranks_dir

    d = ranks_dir(output)
    return [p for p in d.rglob("*.h5")] if d.is_dir() else []
