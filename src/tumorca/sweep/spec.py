"""The sweep file (docs/sweeps.md): a TOML file that expands into many runs, and its checks.

:func:`load_sweep` reads and validates a sweep file into a :class:`SweepSpec`, whose :meth:`SweepSpec.runs` are
the :class:`SweepRun` s (a :class:`~tumorca.io.layout.RunPlan` each), with seeds from
``numpy.random.SeedSequence(seed).spawn(n)`` (:func:`derive_seeds`).  Every error is a :class:`SweepError` of one
line naming the file and, where known, the line and key.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import presets
from .._constants import FIELD_NAMES, MINUTES_PER_DAY
from ..errors import SweepError, TumorcaError
from ..io.layout import COMPRESSIONS, RunPlan, fmt_shape
from ..params import PARAMETERS, Params, check_value, read_text_file, tomllib
from ..runner import CHECKPOINT_FRAMES, DEFAULT_DAYS, DEFAULT_SHAPE  # the defaults of tumorca run

#: The most runs one sweep may expand to (each is a task, a manifest row and a file): a bigger grid is refused before
#: it is expanded, instead of filling the memory.
MAX_RUNS = 100_000

#: How a run's seed follows from the root seed (recorded in the manifest).
SEED_RULE = ("seed of run i = int(numpy.random.SeedSequence(root).spawn(n)[i].generate_state(1, numpy.uint64)[0]), "
             "i.e. SeedSequence(root, spawn_key=(i,)); runs are numbered conditions-major, replicates innermost")

#: The seed rule of a branched sweep (``[branch]``): the replicates' parents draw the seeds, and every condition of a
#: replicate keeps its parent's.
BRANCH_SEED_RULE = ("seed of parent r = int(numpy.random.SeedSequence(root).spawn(replicates)[r].generate_state(1, "
                    "numpy.uint64)[0]); every run of replicate r (any condition) continues parent r with its seed")

_TOP_KEYS = ("name", "description", "seed", "replicates", "preset", "shape", "steps", "days", "every", "fields",
             "compression", "checkpoint_every", "params", "grid", "zip", "branch")
_BRANCH_KEYS = ("at_step", "at_day", "preset", "params")
#: Where a branched sweep's parents go, beside ``runs/`` (``OUTDIR/parents/parent_0000.h5``...).
PARENT_PREFIX = "parent_"
_PARAM_NAMES = [s.name for s in PARAMETERS]


# -- the sweep file ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepParent:
    """The shared parent of one replicate of a branched sweep (``[branch]``): a run from step 0 to the branch step,
    whose final state every condition of the replicate continues from."""

    replicate: int
    name: str
    plan: RunPlan

    @property
    def seed(self) -> int:
        return self.plan.seed

    def identity(self) -> dict[str, Any]:
        p = self.plan
        return {"name": self.name, "shape": list(p.shape), "params": p.params.to_dict(), "seed": p.seed,
                "steps": p.steps, "every": p.every, "fields": list(p.fields), "compression": p.compression,
                "checkpoint_every": p.checkpoint_every, "preset": p.preset}


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its index and name, the condition (combination of varied values) and replicate, the
    varied values and the full plan."""

    index: int
    name: str
    condition: int
    replicate: int
    varied: dict[str, Any]
    plan: RunPlan
    parent: SweepParent | None = None

    @property
    def seed(self) -> int:
        return self.plan.seed

    def label(self) -> str:
        inner = ", ".join(f"{k} = {v!r}" for k, v in self.varied.items())
        return f"{self.name} ({inner + ', ' if inner else ''}replicate {self.replicate})"

    def identity(self) -> dict[str, Any]:
        """Everything that defines what this run computes (what two sweeps must agree on to be the same)."""
        p = self.plan
        return {"name": self.name, "shape": list(p.shape), "params": p.params.to_dict(), "seed": p.seed,
                "steps": p.steps, "every": p.every, "fields": list(p.fields), "compression": p.compression,
                "checkpoint_every": p.checkpoint_every, "preset": p.preset,
                # only in branched sweeps, so the ids of all other sweeps stay what they were
                **({"start_step": p.start_step, "parent": self.parent.identity()} if self.parent else {})}


@dataclass
class SweepSpec:
    """A validated sweep file.  Build with :func:`load_sweep` (or :func:`parse_sweep` from text)."""

    source: str
    text: str
    name: str
    seed: int
    replicates: int
    base: dict[str, Any]
    base_params: dict[str, Any]
    axes: list[list[dict[str, Any]]]
    varied: list[str]
    branch: dict[str, Any] | None = None
    _runs: list[SweepRun] = field(default_factory=list, repr=False)
    _parents: list[SweepParent] = field(default_factory=list, repr=False)

    @property
    def n_conditions(self) -> int:
        return math.prod(len(a) for a in self.axes) if self.axes else 1

    @property
    def n_runs(self) -> int:
        return self.n_conditions * self.replicates

    def runs(self) -> list[SweepRun]:
        """Every run, in order: conditions (the cartesian product of the axes, first axis slowest), replicates
        innermost."""
        return list(self._runs)

    @property
    def seed_rule(self) -> str:
        """How the runs' seeds follow from the root seed (:data:`SEED_RULE`, or :data:`BRANCH_SEED_RULE`)."""
        return BRANCH_SEED_RULE if self.branch is not None else SEED_RULE

    def parents(self) -> list[SweepParent]:
        """The shared parents of a branched sweep, one per replicate (none without ``[branch]``)."""
        return list(self._parents)

    @property
    def sweep_id(self) -> str:
        """A digest of every run's plan: two sweep files with the same runs have the same id."""
        blob = json.dumps([r.identity() for r in self._runs], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        dims = " x ".join(f"{len(a)} {'+'.join(a[0])}" for a in self.axes) or "no grid"
        p = self._runs[0].plan
        steps = sorted({r.plan.steps for r in self._runs})
        steps_s = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        text = (f"sweep {self.name!r}: {self.n_runs} runs = {self.n_conditions} conditions ({dims}) x "
                f"{self.replicates} replicates, root seed {self.seed}, {fmt_shape(p.shape)} lattice, {steps_s} steps")
        if self._parents:
            text += (f"; paired: {len(self._parents)} parents grown to step {p.start_step}, each branched into "
                     f"every condition")
        return text


def derive_seeds(root: int, n: int) -> list[int]:
    """The seeds of ``n`` runs from a root seed: ``SeedSequence(root).spawn(n)``, one 64-bit word each."""
    children = np.random.SeedSequence(root).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0]) for c in children]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; SweepError (one line naming the file, line and key) if it is bad."""
    p = Path(path)
    return parse_sweep(read_text_file(p, "sweep file", SweepError), source=str(p))


class _Where:
    """Locates ``key`` inside ``[table]`` of the TOML text, for messages (tomllib gives no positions)."""

    _header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = Path(source).name if source else "sweep file"

    def line(self, key: str, table: str = "") -> int | None:
        current = ""
        pat = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for n, line in enumerate(self.lines, 1):
            m = self._header.match(line)
            if m:
                current = m.group(1).strip().strip("\"'")
                continue
            if current == table and pat.match(line):
                return n
        return None

    def error(self, msg: str, key: str | None = None, table: str = "") -> SweepError:
        n = self.line(key, table) if key else None
        where = f"{self.source} line {n}" if n else self.source
        return SweepError(f"{where}: {msg}")


def _suggest(name: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _positive_int(w: _Where, key: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise w.error(f"{key} must be {kind}, got {value!r}", key)
    return value


def _shape(w: _Where, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = value.lower().replace("\u00d7", "x").split("x")
        try:
            dims = tuple(int(x) for x in parts)
        except ValueError:
            dims = ()
    elif isinstance(value, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        dims = tuple(value)
    else:
        dims = ()
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise w.error(f"shape must be 2 or 3 positive integers like \"256x256\" or [64, 64, 64], got {value!r}",
                      "shape")
    return dims


def _fields(w: _Where, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        t = value.strip()
        if t == "all":
            return FIELD_NAMES
        if t in ("none", ""):
            return ()
        names = [n.strip() for n in t.split(",")]
    elif isinstance(value, list) and all(isinstance(n, str) for n in value):
        names = value
    else:
        raise w.error(f"fields must be \"all\", \"none\" or a list of field names, got {value!r}", "fields")
    for n in names:
        if n not in FIELD_NAMES:
            raise w.error(f"fields: unknown field {n!r}{_suggest(n, FIELD_NAMES)}; fields are "
                          f"{', '.join(FIELD_NAMES)}", "fields")
    return tuple(names)


def _check_preset(w: _Where, value: Any, key: str, table: str = "") -> str:
    if not isinstance(value, str):
        raise w.error(f"{'[' + table + '] ' if table else ''}preset must be a preset name, got {value!r}", key, table)
    if value not in presets.PRESETS:
        raise w.error(f"{'[' + table + '] ' if table else ''}unknown preset {value!r}{_suggest(value, presets.PRESETS)}"
                      f"; presets are {', '.join(presets.names())}", key, table)
    return value


def _check_value(w: _Where, table: str, key: str, value: Any) -> Any:
    """Validate one parameter value on its own (range and type; orderings are checked per run)."""
    if key == "preset":
        return _check_preset(w, value, key, table)
    try:
        return check_value(key, value)
    except TumorcaError as exc:
        raise w.error(f"[{table}] {exc}", key, table) from None


def _check_key(w: _Where, table: str, key: str) -> None:
    if key == "preset" and table != "params":
        return
    if key not in _PARAM_NAMES:
        extra = ["preset"] if table != "params" else []
        if key in ("shape", "steps", "days", "every", "fields", "compression", "seed", "replicates"):
            raise w.error(f"[{table}] {key}: only the preset and model parameters can be varied or set here; "
                          f"{key} is a top-level setting", key, table)
        raise w.error(f"[{table}] unknown parameter {key!r}{_suggest(key, _PARAM_NAMES + extra)}", key, table)


def _axis_values(w: _Where, table: str, key: str, values: Any, unique: bool = True) -> list[Any]:
    if not isinstance(values, list):
        raise w.error(f"[{table}] {key} must be a list of values, got {values!r} (a value for every run goes in "
                      "[params])", key, table)
    if not values:
        raise w.error(f"empty grid: [{table}] {key} has no values", key, table)
    out = [_check_value(w, table, key, v) for v in values]
    if unique and len({json.dumps(v) for v in out}) != len(out):
        raise w.error(f"[{table}] {key} lists a value twice: {values!r}", key, table)
    return out


def parse_sweep(text: str, source: str = "sweep.toml") -> SweepSpec:
    """Validate a sweep file's text (see :func:`load_sweep`)."""
    w = _Where(text, source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{w.source}: not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise SweepError(f"{w.source}: not valid TOML: arrays or tables nested too deeply") from None
    for key in doc:
        if key not in _TOP_KEYS:
            if key in _PARAM_NAMES:
                raise w.error(f"{key}: model parameters go under [params] (or [grid] to vary them)", key)
            raise w.error(f"unknown setting {key!r}{_suggest(key, _TOP_KEYS)}; settings are "
                          f"{', '.join(_TOP_KEYS)}", key)

    name = doc.get("name", Path(source).stem if source else "sweep")
    if not isinstance(name, str):
        raise w.error(f"name must be a string, got {name!r}", "name")
    if "seed" not in doc:
        raise SweepError(f"{w.source}: no seed: add a root seed (every run's seed derives from it), e.g. "
                         f"seed = {int(np.random.SeedSequence().entropy) % 10**9}")
    seed = doc["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise w.error(f"seed must be a non-negative integer, got {seed!r}", "seed")
    replicates = doc.get("replicates", 1)
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise w.error(f"replicates must be a positive integer, got {replicates!r}", "replicates")
    if replicates > MAX_RUNS:
        raise w.error(f"replicates = {replicates} is more than a sweep may hold ({MAX_RUNS} runs)", "replicates")

    base: dict[str, Any] = {"shape": _shape(w, doc["shape"]) if "shape" in doc else DEFAULT_SHAPE}
    if "steps" in doc and "days" in doc:
        raise w.error("give steps or days, not both", "days")
    if "steps" in doc:
        base["steps"] = _positive_int(w, "steps", doc["steps"])
    if "days" in doc:
        d = doc["days"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (d > 0 and math.isfinite(d)):
            raise w.error(f"days must be a positive number, got {d!r}", "days")
        base["days"] = float(d)
    if "every" in doc:
        base["every"] = _positive_int(w, "every", doc["every"])
    if "checkpoint_every" in doc:
        base["checkpoint_every"] = _positive_int(w, "checkpoint_every", doc["checkpoint_every"], low=0)
    base["fields"] = _fields(w, doc["fields"]) if "fields" in doc else FIELD_NAMES
    comp = doc.get("compression", "gzip")
    if comp not in COMPRESSIONS:
        raise w.error(f"compression must be one of {', '.join(COMPRESSIONS)}, got {comp!r}", "compression")
    base["compression"] = comp
    base["preset"] = _check_preset(w, doc["preset"], "preset") if "preset" in doc else ""

    base_params = doc.get("params", {})
    if not isinstance(base_params, dict):
        raise w.error("params must be a table ([params] with key = value lines)", "params")
    for k, v in base_params.items():
        _check_key(w, "params", k)
        base_params[k] = _check_value(w, "params", k, v)

    axes: list[list[dict[str, Any]]] = []
    varied: list[str] = []

    def claim(table: str, key: str) -> None:
        if key in varied:
            raise w.error(f"[{table}] {key} is varied twice", key, table)
        if key in base_params:
            raise w.error(f"[{table}] {key} is also set in [params]; set it in one place", key, table)
        if key == "preset" and "preset" in doc:
            raise w.error(f"[{table}] preset is also set at the top level; set it in one place", key, table)
        varied.append(key)

    if "grid" in doc:
        grid = doc["grid"]
        if not isinstance(grid, dict):
            raise w.error("grid must be a table ([grid] with key = [values] lines)", "grid")
        if not grid:
            raise w.error("empty grid: [grid] lists nothing to vary (give KEY = [values], or drop [grid] for "
                          "replicates only)", None)
        for k, values in grid.items():
            _check_key(w, "grid", k)
            claim("grid", k)
            axes.append([{k: v} for v in _axis_values(w, "grid", k, values)])
    if "zip" in doc:
        groups = doc["zip"] if isinstance(doc["zip"], list) else [doc["zip"]]
        for g in groups:
            if not isinstance(g, dict):
                raise w.error("zip must be a table ([zip]) or tables ([[zip]]) of key = [values] lines", "zip")
            if not g:
                raise w.error("empty grid: a [zip] table lists nothing to vary", None)
            cols = {}
            for k, values in g.items():
                _check_key(w, "zip", k)
                claim("zip", k)
                # A zipped list may repeat a value (one-at-a-time designs do); its rows may not.
                cols[k] = _axis_values(w, "zip", k, values, unique=False)
            lengths = {k: len(v) for k, v in cols.items()}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
                raise w.error(f"[zip] lists must have equal lengths: {shown}", next(iter(cols)), "zip")
            n = next(iter(lengths.values()))
            rows = [json.dumps([cols[k][i] for k in cols]) for i in range(n)]
            if len(set(rows)) != n:
                raise w.error(f"[zip] lists the same combination twice: {', '.join(cols)}", next(iter(cols)), "zip")
            axes.append([{k: cols[k][i] for k in cols} for i in range(n)])

    branch = _branch(w, doc["branch"]) if "branch" in doc else None
    spec = SweepSpec(source=source, text=text, name=name, seed=seed, replicates=replicates, base=base,
                     base_params=dict(base_params), axes=axes, varied=varied, branch=branch)
    if spec.n_runs > MAX_RUNS:  # counted before anything is expanded: a huge grid costs nothing to refuse
        raise SweepError(f"{w.source}: {spec.n_runs} runs ({spec.n_conditions} conditions x {replicates} "
                         f"replicates) are more than a sweep may hold ({MAX_RUNS}); split it into several sweeps")
    spec._runs, spec._parents = _expand(spec, w)
    return spec


def _branch(w: _Where, table: Any) -> dict[str, Any]:
    """The ``[branch]`` table: where the parents end (``at_step`` or ``at_day``) and their preset and parameters."""
    if not isinstance(table, dict):
        raise w.error("branch must be a table ([branch] with at_day = D or at_step = N)", "branch")
    for key in table:
        if key not in _BRANCH_KEYS:
            raise w.error(f"[branch] unknown setting {key!r}{_suggest(key, _BRANCH_KEYS)}; settings are "
                          f"{', '.join(_BRANCH_KEYS)}", key, "branch")
    if ("at_step" in table) == ("at_day" in table):
        raise w.error("[branch] needs at_step or at_day (not both): the step where every condition starts from "
                      "its replicate's parent", "branch")
    out: dict[str, Any] = {}
    if "at_step" in table:
        out["at_step"] = _positive_int(w, "at_step", table["at_step"])
    else:
        d = table["at_day"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (d > 0 and math.isfinite(d)):
            raise w.error(f"[branch] at_day must be a positive number, got {d!r}", "at_day", "branch")
        out["at_day"] = float(d)
    if "preset" in table:
        out["preset"] = _check_preset(w, table["preset"], "preset", "branch")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise w.error("[branch] params must be a table ([branch.params] with key = value lines)", "params", "branch")
    for k, v in params.items():
        if k == "preset":
            raise w.error("[branch.params] preset: the parent's preset goes in [branch]", k, "branch.params")
        _check_key(w, "branch.params", k)
        params[k] = _check_value(w, "branch.params", k, v)
    out["params"] = dict(params)
    return out


def _parents(spec: SweepSpec, w: _Where, every: int, ck: int, steps: int, dt: float) -> list[SweepParent]:
    """The parents of a branched sweep: replicate r's parent runs from step 0 to the branch step with seed r of the
    root seed's spawn.  Its parameters, by precedence: ``[branch.params]`` > ``[params]`` > ``[branch]``'s preset
    (default: the top-level preset) > the built-in defaults."""
    br, b = spec.branch, spec.base
    preset = br.get("preset", b["preset"])
    values = {**(presets.changes(preset) if preset else {}), **spec.base_params, **br["params"]}
    try:
        params = Params(**values)
    except TumorcaError as exc:
        raise w.error(f"[branch] the parent's parameters: {exc}", "branch") from None
    if params.dt_min != dt:
        raise w.error(f"[branch] the parent's dt_min ({params.dt_min:g}) differs from the conditions' ({dt:g}): "
                      "a branch continues its parent's steps", "branch")
    if "at_step" in br:
        at = br["at_step"]
    else:
        x = br["at_day"] * MINUTES_PER_DAY / dt
        at = round(x)
        if abs(x - at) > 1e-6 or at < 1:
            raise w.error(f"[branch] at_day = {br['at_day']:g} is not a whole step (dt_min = {dt:g} min); give "
                          "at_step", "at_day", "branch")
    if at >= steps:
        raise w.error(f"[branch] the branch step {at} is not before the end of the runs (step {steps})",
                      "at_step" if "at_step" in br else "at_day", "branch")
    seeds = derive_seeds(spec.seed, spec.replicates)
    width = max(4, len(str(spec.replicates - 1)))
    out = []
    for r in range(spec.replicates):
        try:
            plan = RunPlan(shape=b["shape"], params=params, seed=seeds[r], steps=at, every=min(every, at),
                           fields=b["fields"], compression=b["compression"], checkpoint_every=ck, preset=preset)
        except TumorcaError as exc:
            raise SweepError(f"{w.source}: [branch] the parent: {exc}") from None
        out.append(SweepParent(r, f"{PARENT_PREFIX}{r:0{width}d}", plan))
    return out


def _expand(spec: SweepSpec, w: _Where) -> tuple[list[SweepRun], list[SweepParent]]:
    combos = [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*spec.axes)] \
        if spec.axes else [{}]
    n = len(combos) * spec.replicates
    seeds = derive_seeds(spec.seed, n)
    width = max(4, len(str(n - 1)))
    b = spec.base
    runs: list[SweepRun] = []
    parents: list[SweepParent] = []
    for c, combo in enumerate(combos):
        preset = combo.get("preset", b["preset"])
        values = {**(presets.changes(preset) if preset else {}), **spec.base_params,
                  **{k: v for k, v in combo.items() if k != "preset"}}
        label = ", ".join(f"{k} = {v!r}" for k, v in combo.items()) or "the base settings"
        try:
            params = Params(**values)
        except TumorcaError as exc:
            raise SweepError(f"{w.source}: condition {c} ({label}): {exc}") from None
        dt = params.dt_min
        steps = b.get("steps") or max(1, round(b.get("days", DEFAULT_DAYS) * MINUTES_PER_DAY / dt))
        every = b.get("every") or min(steps, max(1, round(MINUTES_PER_DAY / dt)))
        if every > steps:
            raise w.error(f"every ({every}) is larger than the run ({steps} steps) in condition {c} ({label})",
                          "every")
        ck = b["checkpoint_every"] if "checkpoint_every" in b else CHECKPOINT_FRAMES * every
        if spec.branch is not None and not parents:
            parents = _parents(spec, w, every, ck, steps, dt)
        if parents and (parents[0].plan.params.dt_min != dt or steps <= parents[0].plan.steps):
            raise w.error(f"condition {c} ({label}) must share the parent's dt_min and end after the branch step "
                          f"{parents[0].plan.steps}", "branch")
        for r in range(spec.replicates):
            i = c * spec.replicates + r
            parent = parents[r] if parents else None
            try:
                # A branch keeps its parent's seed: from the branch on, every condition of a replicate draws the
                # same random numbers (common random numbers), and an unchanged condition continues the parent
                # bit for bit.
                plan = RunPlan(shape=b["shape"], params=params, seed=parent.seed if parent else seeds[i],
                               steps=steps, every=every, fields=b["fields"], compression=b["compression"],
                               checkpoint_every=ck, preset=preset, start_step=parent.plan.steps if parent else 0)
            except TumorcaError as exc:
                raise SweepError(f"{w.source}: condition {c} ({label}): {exc}") from None
            varied = {k: combo[k] for k in spec.varied}
            runs.append(SweepRun(i, f"run_{i:0{width}d}", c, r, varied, plan, parent))
    return runs, parents


__all__ = ["BRANCH_SEED_RULE", "SweepSpec", "SweepRun", "SweepParent", "SweepError", "load_sweep", "parse_sweep", "derive_seeds", "SEED_RULE"]
