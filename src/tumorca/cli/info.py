"""``tumorca presets``, ``params`` and ``inspect``: what there is to run, and what a run file holds."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import presets
from .._constants import MINUTES_PER_DAY
from ..errors import TumorcaError
from ..io.layout import fmt_bytes, fmt_shape
from ..params import PARAMETERS
from ._common import CONTEXT, RunProblem, UsageProblem


@click.command("presets", context_settings=CONTEXT)
def presets_cmd() -> None:
    """List the scenario presets and the parameters each one changes."""
    for name in presets.names():
        desc, changes = presets.PRESETS[name]
        click.echo(f"{name:<22} {desc}")
        text = ", ".join(f"{k} = {v!r}" for k, v in changes.items()) or "(nothing: the defaults)"
        click.echo(f"{'':<22} changes: {text}")


@click.command("params", context_settings=CONTEXT)
@click.option("--toml", "as_toml", is_flag=True, help="Print a TOML config file with every default, to edit.")
def params_cmd(as_toml: bool) -> None:
    """List every model parameter with its default, unit and allowed range."""
    group = None
    for s in PARAMETERS:
        if s.group != group:
            sep = "\n" if group is not None else ""
            group = s.group
            click.echo(f"{sep}# {group}" if as_toml else f"{sep}[{group}]")
        if as_toml:
            value = json.dumps(s.default) if s.kind is not bool else str(s.default).lower()
            click.echo(f"# {s.doc} ({s.unit or 'dimensionless'}; {s.describe_range()})")
            click.echo(f"{s.name} = {value}")
        else:
            click.echo(f"  {s.name:<26} {s.default!s:<12} {s.unit or '-':<11} {s.describe_range():<24} {s.doc}")



@click.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
@click.option("--verify", is_flag=True, help="Read every frame to check it (checksums); slower on big files.")
def inspect(path: Path, as_json: bool, verify: bool) -> None:
    """Describe a run file: size, frames, time span, parameters, and whether it is complete, still being
    written, interrupted, cut off or damaged (exit status 1 if damaged)."""
    from ..io.reader import RunReader

    try:
        reader = RunReader(path)
    except TumorcaError as exc:
        raise UsageProblem(str(exc)) from None
    with reader:
        try:
            info, lines, damage = _describe(reader, path, verify)
        except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise UsageProblem(f"{str(path)!r} is damaged: {' '.join(str(exc).split())[:200]}") from None
    click.echo(json.dumps(info, indent=2) if as_json else "\n".join(lines))
    if damage:
        raise RunProblem(f"{str(path)!r} is damaged: {damage}")


def _describe(reader: Any, path: Path, verify: bool) -> tuple[dict[str, Any], list[str], str]:
    """The facts of ``inspect`` as a dict and as lines, and the damage found ("" if none)."""
    a = reader.attrs
    st = reader.status
    damage = "" if st.state == "running" and not st.resumable else reader.verify(full=verify)
    if not damage and st.resumable:
        try:
            reader.verify_checkpoint()
        except TumorcaError as exc:
            damage = f"its checkpoint cannot be resumed from: {exc}"
    if damage and st.state != "damaged":
        st = type(st)("damaged", f"damaged: {damage}", False)
    elif st.state == "damaged" and not damage:
        damage = st.detail.removeprefix("damaged: ")
    times = reader.times
    ck = reader.checkpoint_step()
    changed = reader.changed_parameters()
    info = {
        "file": str(path), "status": st.state, "detail": st.detail, "format_version": a.get("format_version"),
        "tumorca_version": a.get("tumorca_version"), "shape": list(reader.shape),
        "dx_um": a.get("dx_um"), "dt_min": a.get("dt_min"), "steps_planned": int(a["steps"]),
        "start_step": reader.first_step, "steps_on_disk": reader.last_step, "frames": reader.n_frames,
        "frames_planned": int(a["frames_planned"]),
        "every": int(a["every"]), "time_min": [float(times[0]), float(times[-1])] if len(times) else [],
        "layers": reader.layers, "compression": a.get("compression"), "preset": a.get("preset"),
        "seed": int(a["seed"]), "threads": a.get("threads"), "host": a.get("host"),
        "start_time": a.get("start_time"), "end_time": reader.run_info().get("end_time") or None,
        "command_line": a.get("command_line"), "checkpoint_step": ck,
        "resumed": len(json.loads(a.get("resume_history", "[]"))),
        "changed_parameters": {k: v for k, (v, _) in changed.items()}, "file_bytes": path.stat().st_size,
        "ranks": a.get("ranks"), "ranks_shape": a.get("ranks_shape"),
    }
    span = (f"{info['time_min'][0]:g}-{info['time_min'][1]:g} min "
            f"({info['time_min'][1] / MINUTES_PER_DAY:.2f} days)") if times.size else "none yet"
    lines = [
        f"file:        {path} ({fmt_bytes(info['file_bytes'])})",
        f"status:      {st.detail}" + (f"; continue with: tumorca run --resume -o {shlex.quote(str(path))}"
                                       if st.resumable and st.state != "running" else ""),
        f"shape:       {fmt_shape(reader.shape)} ({len(reader.shape)}D), dx {info['dx_um']:g} um, "
        f"dt {info['dt_min']:g} min",
        f"steps:       {max(info['steps_on_disk'], 0)} of {info['steps_planned']} on disk"
        + (f" (from step {info['start_step']})" if info["start_step"] else ""),
        f"frames:      {info['frames']} of {info['frames_planned']} (every {info['every']} steps), time {span}",
        f"layers:      {', '.join(info['layers'])} ({info['compression']})",
        f"preset:      {info['preset'] or 'none (defaults)'}",
        f"seed:        {info['seed']}",
        f"version:     tumorca {info['tumorca_version']}, format {info['format_version']}",
        f"written:     {info['start_time']} .. {info['end_time'] or '(not finished)'} on {info['host']}, "
        f"{info['threads']} threads" + (f", resumed {info['resumed']}x" if info["resumed"] else ""),
        f"command:     {info['command_line']}",
    ]
    if info["ranks"]:
        from ..io.distributed import ranks_dir

        lines.insert(-1, f"mpi:         {info['ranks']} ranks ({info['ranks_shape']}); frames and states in "
                         f"{ranks_dir(path).name}/ (virtual datasets)")
    if ck is not None:
        lines.append(f"checkpoint:  step {ck} ({reader.checkpoint_path.name})")
    lines += _states_and_lineage(reader, path, info)
    if changed:
        lines.append("parameters that differ from the defaults:")
        for k, (v, d) in changed.items():
            lines.append(f"  {k} = {v!r}" + (f" (default {d!r})" if d is not None else " (unknown to this version)"))
    else:
        lines.append("parameters:  all defaults")
    return info, lines, damage


def _states_and_lineage(reader: Any, path: Path, info: dict[str, Any]) -> list[str]:
    """The kept states with their cost, the stored start state and the lineage (parent, grandparent...): lines,
    and the same facts added to ``info``."""
    from ..io.lineage import walk_lineage

    lines = []
    dt = float(info["dt_min"])
    kept = reader.kept_states()
    info["kept_states"] = kept
    if kept:
        on = [k for k in kept if k["on_disk"]]
        each = kept[0]["bytes"]
        stored = sum(k["stored_bytes"] for k in on)
        shown = ", ".join(str(k["step"]) for k in kept[:8]) + (", ..." if len(kept) > 8 else "")
        lines.append(f"kept states: steps {shown} ({len(on)} of {len(kept)} on disk); {fmt_bytes(each)} each "
                     f"uncompressed, {fmt_bytes(len(kept) * each)} in all; stored: {fmt_bytes(stored)}")
    info["start_stored"] = reader.has_start_state()
    if info["start_stored"]:
        lines.append(f"start:       a given state at step {reader.first_step} (day "
                     f"{reader.first_step * dt / MINUTES_PER_DAY:g}), stored in /start")
    attrs = reader.attrs
    if "initial_source" in attrs:  # tumorca run --initial FILE
        src = {k[len("initial_"):]: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
               for k, v in attrs.items() if k.startswith("initial_")}
        info["initial"] = src
        resampled = (f", resampled from {fmt_shape(tuple(src['resampled_from']))} pixels"
                     if src.get("resampled_from") else "")
        lines.append(f"from data:   {src['source']} (pixel {float(src.get('pixel_size_um', 0)):g} um{resampled})")
        lines.append(f"             sha256 {src.get('sha256', '')}")
    ancestry = walk_lineage(path, reader.attrs)
    info["lineage"] = ancestry
    for depth, rec in enumerate(ancestry):
        label = "branch of:  " if depth == 0 else "  which is a branch of:"
        where = {"present": "", "missing": " [missing]", "replaced": " [replaced by another file]"}[rec["state"]]
        changes = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in rec["changes"].items()) or "none"
        lines.append(f"{label} {rec['path']}{where} (run {rec['run_id'][:12]}) at step {rec['step']} (day "
                     f"{rec['step'] * dt / MINUTES_PER_DAY:g}); changed: {changes}")
        if depth == 0:
            lines.append(f"             parent sha256 {rec['sha256']}")
    return lines

