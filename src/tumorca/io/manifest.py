"""The output directory of a sweep (docs/sweeps.md): where its runs go, and its manifest.

``OUTDIR/runs/NAME.h5`` holds complete runs only, ``OUTDIR/.partial/NAME/NAME.h5`` the runs being written,
``OUTDIR/.sweep.lock`` the lock of the sweep process, and ``OUTDIR/manifest.json`` / ``manifest.csv`` every run's
parameters, seed, status and final measures.  Pure Python: reading a manifest needs neither Dask nor the engine.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import SweepError
from .layout import temporary_path

MANIFEST_FORMAT = "tumorca-sweep"
MANIFEST_VERSION = "1.0"
MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
RUNS_DIR = "runs"
#: The shared parents of a branched sweep (``[branch]``), complete ones only, like ``runs/``.
PARENTS_DIR = "parents"
PARTIAL_DIR = ".partial"
LOCK_NAME = ".sweep.lock"


def run_paths(outdir: str | Path, name: str, folder: str = RUNS_DIR) -> tuple[Path, Path]:
    """``(final, partial)`` paths of run ``name``: ``OUTDIR/runs/NAME.h5`` and ``OUTDIR/.partial/NAME/NAME.h5``
    (``folder`` = ``PARENTS_DIR`` for a branched sweep's parents: ``OUTDIR/parents/NAME.h5``).

    The partial file has the final file's name so that its XDMF sidecar, which names the HDF5 file, stays valid
    when both are moved into ``runs/``."""
    out = Path(outdir)
    return out / folder / f"{name}.h5", out / PARTIAL_DIR / name / f"{name}.h5"


def utc_now() -> str:
    """The current UTC time, to the second, in ISO 8601 (the manifest's ``created`` and ``updated``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def json_value(v: Any) -> Any:
    """A manifest value as plain JSON: NumPy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


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


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader sees the old or the new text."""
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a write that failed (a full disk) leaves nothing behind


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # every digit: the CSV reads back to the same float
    return v


def manifest_columns(rows: list[dict[str, Any]], varied: list[str]) -> list[str]:
    """CSV column order: identity, varied values, seed, outcome, final measures (first-seen order), error."""
    head = ["run", "file", "status", "condition", "replicate", "preset"]
    head += [k for k in varied if k != "preset"]
    if any("parent" in r for r in rows):  # a branched sweep: the parent each run continues, and from which step
        head += ["parent", "start_step"]
    head += ["seed", "attempts", "wall_seconds", "started", "host"]
    seen: dict[str, None] = {}
    for r in rows:
        for k in r.get("measures") or {}:
            seen.setdefault(k, None)
    return head + [k for k in seen if k not in head] + ["error"]


def manifest_csv(rows: list[dict[str, Any]], varied: list[str]) -> str:
    """The manifest's rows as CSV text, one line per run, measures flattened into columns."""
    cols = manifest_columns(rows, varied)
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(cols)
    for r in rows:
        flat = {**r, **(r.get("measures") or {})}
        wr.writerow([_csv_value(flat.get(c)) for c in cols])
    return buf.getvalue()


def write_manifest(outdir: str | Path, doc: Mapping[str, Any]) -> None:
    """Rewrite ``manifest.json`` and ``manifest.csv`` in ``outdir`` atomically from a manifest document
    (OSError if they cannot be written: each file is then the previous version, whole)."""
    out = Path(outdir)
    atomic_write(out / MANIFEST_JSON, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    atomic_write(out / MANIFEST_CSV, manifest_csv(list(doc["runs"]), list(doc["varied"])))


__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "MANIFEST_JSON", "MANIFEST_CSV", "RUNS_DIR", "PARENTS_DIR", "PARTIAL_DIR",
           "LOCK_NAME", "run_paths", "read_manifest", "write_manifest", "manifest_csv", "manifest_columns",
           "json_value", "utc_now", "atomic_write"]
