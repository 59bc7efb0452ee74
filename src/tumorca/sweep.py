"""Batch sweeps (docs/sweeps.md): one sweep file (TOML) expands into many runs; each run is one task on Dask
distributed that writes its own run file, and a manifest records every run's parameters, seed, status and final
measures.

The parts, from the file to the cluster:

* :func:`load_sweep` reads and validates a sweep file into a :class:`SweepSpec`, whose :meth:`SweepSpec.runs` are
  the :class:`SweepRun` s (a :class:`~tumorca.io.layout.RunPlan` each), with seeds from
  ``numpy.random.SeedSequence(seed).spawn(n)`` (:func:`derive_seeds`).
* :func:`run_task` is what a worker runs: one simulation into ``OUTDIR/.partial/NAME/NAME.h5``, moved to
  ``OUTDIR/runs/NAME.h5`` once complete, and a summary (final measures, wall time) returned.
* :class:`SweepDriver` owns an output directory (lock, resume scan, manifest) and submits the runs to a
  ``distributed.Client``, retrying failed ones; :func:`run_sweep` does all of it from Python.

Nothing here imports Dask at module level: the sweep file, the dry run and the manifest work without it.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import __version__, presets
from ._constants import FIELD_NAMES
from .errors import TumorcaError
from .io.layout import COMPRESSIONS, RunFileError, RunPlan, fmt_shape, sidecar_paths
from .params import PARAMETERS, Params, check_value, tomllib
from .runner import CHECKPOINT_FRAMES, DEFAULT_DAYS, DEFAULT_SHAPE, MINUTES_PER_DAY  # the defaults of tumorca run

#: Value of ``format`` in ``manifest.json``.
MANIFEST_FORMAT = "tumorca-sweep"
MANIFEST_VERSION = "1.0"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
RUNS_DIR = "runs"
PARTIAL_DIR = ".partial"
LOCK_NAME = ".sweep.lock"
#: Test hook, read by workers: comma list of ``INDEX[@ATTEMPT]=raise|kill`` (see :func:`_fault_hook`).
FAULTS_ENV = "TUMORCA_SWEEP_FAULTS"

#: How a run's seed follows from the root seed (recorded in the manifest).
SEED_RULE = ("seed of run i = int(numpy.random.SeedSequence(root).spawn(n)[i].generate_state(1, numpy.uint64)[0]), "
             "i.e. SeedSequence(root, spawn_key=(i,)); runs are numbered conditions-major, replicates innermost")

_TOP_KEYS = ("name", "description", "seed", "replicates", "preset", "shape", "steps", "days", "every", "fields",
             "compression", "checkpoint_every", "params", "grid", "zip")
_PARAM_NAMES = [s.name for s in PARAMETERS]


class SweepError(TumorcaError):
    """A sweep file or output directory cannot be used.  One line, naming the file and, where known, the line and
    key."""


# -- the sweep file ----------------------------------------------------------------------------------------------
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
                "checkpoint_every": p.checkpoint_every, "preset": p.preset}


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
    _runs: list[SweepRun] = field(default_factory=list, repr=False)

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
    def sweep_id(self) -> str:
        """A digest of every run's plan: two sweep files with the same runs have the same id."""
        blob = json.dumps([r.identity() for r in self._runs], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        dims = " x ".join(f"{len(a)} {'+'.join(a[0])}" for a in self.axes) or "no grid"
        p = self._runs[0].plan
        steps = sorted({r.plan.steps for r in self._runs})
        steps_s = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        return (f"sweep {self.name!r}: {self.n_runs} runs = {self.n_conditions} conditions ({dims}) x "
                f"{self.replicates} replicates, root seed {self.seed}, {fmt_shape(p.shape)} lattice, {steps_s} steps")


def derive_seeds(root: int, n: int) -> list[int]:
    """The seeds of ``n`` runs from a root seed: ``SeedSequence(root).spawn(n)``, one 64-bit word each."""
    children = np.random.SeedSequence(root).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint64)[0]) for c in children]


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; SweepError (one line naming the file, line and key) if it is bad."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError(f"sweep file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise SweepError(f"sweep file {str(p)!r} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read sweep file {str(p)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_sweep(text, source=str(p))


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

    spec = SweepSpec(source=source, text=text, name=name, seed=seed, replicates=replicates, base=base,
                     base_params=dict(base_params), axes=axes, varied=varied)
    spec._runs = _expand(spec, w)
    return spec


def _expand(spec: SweepSpec, w: _Where) -> list[SweepRun]:
    combos = [dict(kv for part in combo for kv in part.items()) for combo in itertools.product(*spec.axes)] \
        if spec.axes else [{}]
    n = len(combos) * spec.replicates
    seeds = derive_seeds(spec.seed, n)
    width = max(4, len(str(n - 1)))
    b = spec.base
    runs: list[SweepRun] = []
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
        for r in range(spec.replicates):
            i = c * spec.replicates + r
            try:
                plan = RunPlan(shape=b["shape"], params=params, seed=seeds[i], steps=steps, every=every,
                               fields=b["fields"], compression=b["compression"], checkpoint_every=ck, preset=preset)
            except TumorcaError as exc:
                raise SweepError(f"{w.source}: condition {c} ({label}): {exc}") from None
            varied = {k: combo[k] for k in spec.varied}
            runs.append(SweepRun(i, f"run_{i:0{width}d}", c, r, varied, plan))
    return runs


# -- one run, on a worker ----------------------------------------------------------------------------------------
def run_paths(outdir: str | Path, name: str) -> tuple[Path, Path]:
    """``(final, partial)`` paths of run ``name``: ``OUTDIR/runs/NAME.h5`` and ``OUTDIR/.partial/NAME/NAME.h5``.

    The partial file has the final file's name so that its XDMF sidecar, which names the HDF5 file, stays valid
    when both are moved into ``runs/``."""
    out = Path(outdir)
    return out / RUNS_DIR / f"{name}.h5", out / PARTIAL_DIR / name / f"{name}.h5"


def _fault_hook(index: int, attempt: int, partial: Path, plan: RunPlan) -> Callable[[int, int, int], None] | None:
    """Faults injected for tests through ``TUMORCA_SWEEP_FAULTS``: a comma list of ``INDEX[@ATTEMPT]=KIND``.
    ``raise`` raises in run INDEX (on attempt ATTEMPT, counted from 0, or on every attempt), ``kill`` SIGKILLs the
    worker process; both strike at step 30 (or the last step), once the first periodic checkpoint is on disk, so a
    retry resumes from it.  ``slow`` sleeps 20 ms after every step (the results do not change)."""
    text = os.environ.get(FAULTS_ENV, "").strip()
    if not text:
        return None
    kind = None
    for item in text.split(","):
        target, _, what = item.strip().partition("=")
        idx, _, att = target.partition("@")
        try:
            if int(idx) == index and (not att or int(att) == attempt):
                kind = what.strip()
        except ValueError:
            continue
    if kind not in ("raise", "kill", "slow"):
        return None
    ckpt = sidecar_paths(partial)[1]
    strike = min(30, plan.steps)

    def hook(step: int, total: int, first: int) -> None:
        if kind == "slow":
            time.sleep(0.02)
        elif step >= strike:
            if 0 < plan.checkpoint_every < strike:
                deadline = time.monotonic() + 10
                while not ckpt.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"fault injected by {FAULTS_ENV} at step {step} (attempt {attempt})")

    return hook


def _plan_given(plan: RunPlan) -> dict[str, Any]:
    return {"shape": plan.shape, "params": plan.params, "seed": plan.seed, "steps": plan.steps, "every": plan.every,
            "fields": plan.fields, "compression": plan.compression, "checkpoint_every": plan.checkpoint_every}


def _complete_with(path: Path, plan: RunPlan) -> bool:
    """Whether ``path`` is a complete run file of ``plan``."""
    from .io.reader import RunReader

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

    from .io.writer import ERROR_BYTES

    try:
        with h5py.File(partial, "r+") as f:
            run = f["run"]
            if run["status"][()].rstrip(b"\0 ") == b"running":
                run["status"][()] = b"failed"
                run["steps_done"][()] = min(ds.shape[0] for ds in f["timeseries"].values()) - 1
                run["error"][()] = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:ERROR_BYTES]
    except Exception:  # noqa: BLE001 - whatever the state of the file, a retry must not trip over it
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def final_measures(path: str | Path) -> dict[str, Any]:
    """Final measures of a complete run file: every :func:`tumorca.analysis.measures.frame_measures` of the last
    frame, the simulated time, and the tumour's radial growth rate fitted over the whole time series."""
    from .analysis.measures import frame_measures, growth_rate
    from .io.reader import RunReader

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
    return {k: _py(v) for k, v in out.items()}


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one sweep run on a worker and return its summary.

    ``task`` holds ``index``, ``name``, ``plan`` (a RunPlan), ``outdir``, ``threads``, ``attempt`` and
    ``provenance`` (root attributes for the run file).  The run is written under ``.partial/NAME/``; an earlier
    attempt's cut-off or interrupted file there is resumed from its checkpoint (the finished file equals an
    uninterrupted run's), anything else there is replaced.  A complete file is moved into ``runs/``; if one is
    already there (the task ran before but its result was lost) it is kept and only summarised.

    Returns a dict: ``name``, ``status`` (``complete``), ``file`` (relative to ``outdir``), ``wall_seconds`` (of
    this task), ``started`` (``new``, ``resumed from step K`` or ``already complete``), ``host``, ``pid`` and
    ``measures`` (:func:`final_measures`).  Raises on failure; the driver records the error and retries.
    """
    t0 = time.perf_counter()
    from . import runner
    from .io.reader import RunReader

    plan: RunPlan = task["plan"]
    name = task["name"]
    outdir = Path(task["outdir"])
    final, partial = run_paths(outdir, name)
    how = "new"
    if _complete_with(final, plan):
        how = "already complete"
    else:
        partial.parent.mkdir(parents=True, exist_ok=True)
        hook = _fault_hook(int(task["index"]), int(task.get("attempt", 0)), partial, plan)
        prov = dict(task.get("provenance", {}))
        threads = task.get("threads") or 1
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
                    outcome = runner.resume(partial, provenance=prov, threads=threads, given=_plan_given(plan),
                                            progress=hook)
                    how = f"resumed from step {ck}" if ck is not None else "restarted (no checkpoint)"
                except TumorcaError:
                    outcome = None  # cannot be resumed after all: run it afresh
                except BaseException as exc:
                    _mark_failed(partial, exc)
                    raise
        if outcome is None:
            try:
                outcome = runner.run(plan, partial, provenance=prov, threads=threads, overwrite=True,
                                     progress=hook)
            except BaseException as exc:
                _mark_failed(partial, exc)
                raise
        if outcome is not True and outcome.status != "complete":
            raise RuntimeError(f"run stopped at step {outcome.step} of {outcome.steps} ({outcome.status})")
        _publish(partial, final)
    try:
        measures = final_measures(final)
        measures_error = ""
    except Exception as exc:  # a bug in a measure must not lose the run
        measures, measures_error = {}, f"{type(exc).__name__}: {exc}"
    return {"name": name, "status": "complete", "file": str(final.relative_to(outdir)),
            "wall_seconds": time.perf_counter() - t0, "started": how, "host": socket.gethostname(),
            "pid": os.getpid(), "measures": measures, "measures_error": measures_error}


# -- the manifest ------------------------------------------------------------------------------------------------
def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def read_manifest(outdir: str | Path) -> dict[str, Any] | None:
    """``OUTDIR/manifest.json`` as a dict, None if there is none; SweepError if it is not a sweep manifest."""
    p = Path(outdir) / MANIFEST_JSON
    if not p.exists():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(f"{str(p)!r} is not a readable sweep manifest: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise SweepError(f"{str(p)!r} is not a tumorca sweep manifest (no format = {MANIFEST_FORMAT!r})")
    return doc


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def manifest_columns(rows: list[dict[str, Any]], varied: list[str]) -> list[str]:
    """CSV column order: identity, varied values, seed, outcome, final measures (first-seen order), error."""
    head = ["run", "file", "status", "condition", "replicate", "preset"]
    head += [k for k in varied if k != "preset"]
    head += ["seed", "attempts", "wall_seconds", "started", "host"]
    seen: dict[str, None] = {}
    for r in rows:
        for k in r.get("measures") or {}:
            seen.setdefault(k, None)
    return head + [k for k in seen if k not in head] + ["error"]


def manifest_csv(rows: list[dict[str, Any]], varied: list[str]) -> str:
    cols = manifest_columns(rows, varied)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(cols)
    for r in rows:
        flat = {**r, **(r.get("measures") or {})}
        wr.writerow([_csv_value(flat.get(c)) for c in cols])
    return buf.getvalue()


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
        self.created = _utc_now()
        self.existing: dict[str, Any] | None = None

    # -- rows ------------------------------------------------------------------------------------------------
    def _base_row(self, run: SweepRun) -> dict[str, Any]:
        row: dict[str, Any] = {"run": run.name, "file": f"{RUNS_DIR}/{run.name}.h5", "status": "pending",
                               "condition": run.condition, "replicate": run.replicate, "preset": run.plan.preset}
        row.update({k: v for k, v in run.varied.items() if k != "preset"})
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
            if final.exists() and _complete_with(final, run.plan):
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
        from .io.reader import RunReader

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
            self.write_manifest(force=True)
        except BaseException:
            self.close()
            raise

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
            "name": spec.name, "sweep_id": self.sweep_id, "created": self.created, "updated": _utc_now(),
            "n_runs": len(self.runs), "n_conditions": spec.n_conditions, "replicates": spec.replicates,
            "counts": counts, "root_seed": spec.seed, "seed_rule": SEED_RULE, "varied": spec.varied,
            "base": {"shape": list(b["shape"]), "steps": b.get("steps"), "days": b.get("days"),
                     "every": b.get("every"), "fields": list(b["fields"]), "compression": b["compression"],
                     "checkpoint_every": b.get("checkpoint_every"), "preset": b["preset"],
                     "params": spec.base_params},
            "sweep_file": spec.source, "sweep_file_text": spec.text, "command_line": self.command_line,
            "runs": [{k: (_py(v) if not isinstance(v, (dict, list)) else v) for k, v in r.items()}
                     for r in self.rows],
        }

    def write_manifest(self, force: bool = False, every: float = 2.0) -> None:
        """Rewrite ``manifest.json`` and ``manifest.csv`` atomically (at most every ``every`` s unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_write < every:
            return
        doc = self.manifest()
        _atomic_write(self.outdir / MANIFEST_JSON, json.dumps(doc, indent=1, allow_nan=False) + "\n")
        _atomic_write(self.outdir / MANIFEST_CSV, manifest_csv(doc["runs"], self.spec.varied))
        self._last_write = now

    # -- running ---------------------------------------------------------------------------------------------
    def task(self, i: int) -> dict[str, Any]:
        run = self.runs[i]
        prov = {"command_line": self.command_line, "sweep_name": self.spec.name, "sweep_id": self.sweep_id,
                "sweep_run": run.name, "sweep_index": run.index, "sweep_condition": run.condition,
                "sweep_replicate": run.replicate, "sweep_root_seed": str(self.spec.seed),
                "sweep_varied": json.dumps(run.varied)}
        return {"index": i, "name": run.name, "plan": run.plan, "outdir": str(self.outdir.resolve()),
                "threads": self.threads, "attempt": self.rows[i]["attempts"], "provenance": prov}

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
            for i in pending.values():
                if self.rows[i]["status"] in ("submitted", "retrying"):
                    self.rows[i]["status"] = "pending"
            self.adopt_finished()
        return self.rows

    def adopt_finished(self) -> None:
        """Mark complete every pending run whose file is complete on disk (it finished, but its result had not
        come back: a cancelled task can still finish on its worker), and rewrite the manifest.  Call it again
        once the workers are gone, so that the manifest names every run on disk."""
        for i, row in enumerate(self.rows):
            if row["status"] != "pending":
                continue
            final, _ = run_paths(self.outdir, row["run"])
            if _complete_with(final, self.runs[i].plan):
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
    """Resource projection from :func:`tumorca.runner.estimate_resources` for every distinct plan shape."""
    from .runner import estimate_resources

    probe = _existing_ancestor(Path(outdir))
    cache: dict[tuple, Any] = {}
    mem = size = total = 0
    est = None
    for r in runs:
        p = r.plan
        key = (p.shape, p.steps, p.every, p.fields)
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
def local_cluster(workers: int, **kw: Any) -> Any:
    """The LocalCluster a sweep uses here (docs/sweeps.md): worker processes of one thread each, on the loopback
    interface, no dashboard.  A dead worker fails its run at once (``allowed-failures`` 0: the driver retries) and
    each worker holds one run at a time (``worker-saturation`` 1.0)."""
    import logging

    import dask
    from distributed import LocalCluster

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
                                dashboard_address=None, silence_logs=kw.pop("silence_logs", logging.CRITICAL),
                                **kw)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def default_workers(threads_per_run: int = 1) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, threads_per_run))


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
    own = []
    try:
        if client is None:
            from distributed import Client

            if scheduler is not None:
                client = connect(scheduler)
            else:
                cluster = local_cluster(workers or default_workers(threads_per_run))
                own.append(cluster)
                client = Client(cluster, set_as_default=False)
            own.insert(0, client)
        drv.start()
        try:
            return drv.execute(client, todo, progress)
        finally:
            for obj in own:  # stop our workers first, so that no run lands on disk after the manifest
                obj.close()
            own.clear()
            drv.adopt_finished()
            drv.close()
    finally:
        for obj in own:
            obj.close()


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


__all__ = ["SweepSpec", "SweepRun", "SweepError", "SweepDriver", "load_sweep", "parse_sweep", "derive_seeds",
           "run_task", "run_sweep", "final_measures", "read_manifest", "estimate_sweep", "local_cluster", "connect"]
