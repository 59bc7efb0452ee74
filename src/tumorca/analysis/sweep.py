"""The results of a sweep (``tumorca sweep``, docs/sweeps.md): its manifest as a table, its runs opened lazily.

Pure Python over the manifest and :class:`tumorca.io.RunReader`; nothing here needs Dask or the compiled engine.

    >>> table = open_sweep("sweeps/ifn")                                   # doctest: +SKIP
    >>> table.groupby("preset")["equivalent_radius_um"].describe()         # doctest: +SKIP
    >>> for row, run in iter_runs(table):                                  # doctest: +SKIP
    ...     print(row["run"], run.n_frames)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..io.reader import RunReader
from ..io.manifest import MANIFEST_JSON, read_manifest

#: Manifest-level facts copied into ``table.attrs`` (a DataFrame) or returned by :func:`sweep_info`.
INFO_KEYS = ("name", "sweep_id", "n_runs", "n_conditions", "replicates", "root_seed", "seed_rule", "varied", "base",
             "branch", "created", "updated", "counts")


def sweep_info(outdir: str | Path) -> dict[str, Any]:
    """The manifest's header (name, id, root seed, what is varied, base settings, status counts) and ``outdir``."""
    doc = _manifest(outdir)
    info = {k: doc.get(k) for k in INFO_KEYS}
    info["outdir"] = str(Path(outdir).resolve())
    return info


def _manifest(outdir: str | Path) -> dict[str, Any]:
    doc = read_manifest(outdir)
    if doc is None:
        raise FileNotFoundError(f"{str(Path(outdir) / MANIFEST_JSON)!r} does not exist: not a sweep directory")
    return doc


def _rows(doc: dict[str, Any], outdir: Path, status: str | None) -> list[dict[str, Any]]:
    out = []
    for r in doc.get("runs", []):
        if status is not None and r.get("status") != status:
            continue
        row = {k: v for k, v in r.items() if k not in ("measures", "errors")}
        row.update(r.get("measures") or {})
        row["errors"] = json.dumps(r.get("errors") or [])
        row["path"] = str((outdir / r["file"]).resolve())
        out.append(row)
    return out


def open_sweep(outdir: str | Path, status: str | None = None) -> Any:
    """The manifest of the sweep in ``outdir``: one row per run with its varied parameters, seed, status, file
    (``path``: absolute), wall time, final measures and error.

    Returns a pandas DataFrame (with the manifest header in ``.attrs["sweep"]``) when pandas is installed, else a
    list of dicts.  ``status`` keeps only runs in that state (e.g. ``"complete"``).  Open runs with
    :func:`iter_runs` or ``RunReader(row["path"])``.
    """
    outdir = Path(outdir)
    doc = _manifest(outdir)
    rows = _rows(doc, outdir, status)
    try:
        import pandas as pd
    except ImportError:
        return rows
    table = pd.DataFrame(rows)
    info = {k: doc.get(k) for k in INFO_KEYS}
    info["outdir"] = str(outdir.resolve())
    table.attrs["sweep"] = info
    return table


def iter_runs(table: Any, status: str = "complete") -> Iterator[tuple[dict[str, Any], RunReader]]:
    """Open the runs of a table from :func:`open_sweep` one at a time: yields ``(row, reader)``; each reader is
    closed when the loop moves on.  Rows not in ``status`` (default ``complete``; None for all) are skipped."""
    rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    for row in rows:
        if status is not None and row.get("status") != status:
            continue
        with RunReader(row["path"]) as reader:
            yield row, reader


def compare_arms(outdir: str | Path, measure: str, high: Any, low: Any, by: str = "preset",
                 where: dict[str, Any] | None = None) -> Any:
    """Test the one-sided claim ``measure(high) > measure(low)`` between two conditions of a sweep.

    The conditions are the complete runs with ``row[by] == high`` and ``== low`` among those matching ``where``
    (``{column: value}``, for the other varied parameters); each side must be one condition of the sweep, else
    KeyError says which columns still vary.  Their runs are matched by replicate.  In a branched sweep
    (``[branch]``) replicate r of both continued the same parent: the design is paired and ``p_wilcoxon`` (the
    signed-rank test of the per-replicate differences) is the test to read.  In other sweeps the runs of two
    conditions are independent and ``p_mannwhitney`` is.  Returns a :class:`tumorca.validation.stats.Effect`
    with both, the ratio of means with its bootstrap interval and the effect size.  Needs scipy
    (``pip install 'tumorca[validate]'``).
    """
    from ..validation.stats import compare  # scipy; kept out of the import of this module

    doc = _manifest(outdir)
    rows = [r for r in _rows(doc, Path(outdir), "complete")
            if all(r.get(k) == v for k, v in (where or {}).items())]
    values: dict[Any, dict[int, float]] = {}
    for arm in (high, low):
        mine = [r for r in rows if r.get(by) == arm]
        conditions = {int(r["condition"]) for r in mine}
        if not mine:
            raise KeyError(f"no complete run with {by} = {arm!r}{' and ' + repr(where) if where else ''} in "
                           f"{str(outdir)!r}")
        if len(conditions) > 1:
            varying = [k for k in doc.get("varied", []) if k != by and len({repr(r.get(k)) for r in mine}) > 1]
            raise KeyError(f"{by} = {arm!r} matches {len(conditions)} conditions of {str(outdir)!r}; choose one "
                           f"with where={{...}} over {', '.join(varying)}")
        values[arm] = {int(r["replicate"]): float(r[measure]) for r in mine if r.get(measure) is not None}
    return compare(values[high], values[low])


__all__ = ["open_sweep", "iter_runs", "sweep_info", "compare_arms"]
