"""Lineage of a run that starts from another run's state (a branch): what the file records about its parent, and
the walk from a run to its ancestors for ``tumorca inspect``.

The record is a set of root attributes (docs/FORMAT.md, "Lineage"): ``parent_path`` (as given),
``parent_realpath`` (resolved), ``parent_run_id``, ``parent_sha256`` (of the parent file when the branch was made),
``parent_step`` and ``parent_changes`` (JSON: parameter -> [parent value, branch value]).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import TumorcaError

#: Bytes read at a time when hashing a parent file.
_HASH_BLOCK = 1 << 20
#: Ancestors shown at most (a guard against a cycle made by hand-edited attributes).
MAX_DEPTH = 32


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def parent_attrs(given: str | Path, run_id: str, step: int, changes: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """The lineage attributes of a branch of the run file ``given`` (the path as the user gave it) at ``step``,
    with ``changes``: parameter (or ``seed``) -> (parent value, branch value)."""
    return {"parent_path": str(given), "parent_realpath": os.path.realpath(given), "parent_run_id": str(run_id),
            "parent_sha256": file_sha256(given), "parent_step": int(step),
            "parent_changes": json.dumps({k: [a, b] for k, (a, b) in changes.items()})}


def parameter_changes(parent: Any, child: Any) -> dict[str, tuple[Any, Any]]:
    """What a branch changes from its parent: parameter (or ``seed``) -> (parent value, branch value), from the two
    :class:`~tumorca.io.layout.RunPlan` s."""
    old, new = parent.params.to_dict(), child.params.to_dict()
    changes: dict[str, tuple[Any, Any]] = {k: (old.get(k), v) for k, v in new.items() if v != old.get(k)}
    if child.seed != parent.seed:
        changes["seed"] = (parent.seed, child.seed)
    return changes


def parent_of(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parent recorded in a run file's root attributes (``path``, ``realpath``, ``run_id``, ``sha256``,
    ``step``, ``changes``), or None for a run that is no branch."""
    if "parent_run_id" not in attrs:
        return None
    try:
        changes = json.loads(str(attrs.get("parent_changes", "{}")))
    except ValueError:
        changes = {}
    return {"path": str(attrs.get("parent_path", "")), "realpath": str(attrs.get("parent_realpath", "")),
            "run_id": str(attrs["parent_run_id"]), "sha256": str(attrs.get("parent_sha256", "")),
            "step": int(attrs.get("parent_step", -1)), "changes": changes}


def _find(parent: Mapping[str, Any], child: Path) -> Path | None:
    """Where the parent file is now: its resolved path, else the path as given (from the working directory, then
    from the child's directory: the two files may have moved together)."""
    for cand in (parent["realpath"], parent["path"], str(child.parent / parent["path"])):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def walk_lineage(path: str | Path, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ancestors of the run file ``path`` (root attributes ``attrs``), parent first: each the record of
    :func:`parent_of` plus ``found`` (the path where it is now, or None) and ``state``: ``present``,
    ``missing`` (no file there) or ``replaced`` (the file there is another run, or no run file)."""
    from .reader import RunReader

    out: list[dict[str, Any]] = []
    child = Path(path)
    rec = parent_of(attrs)
    while rec is not None and len(out) < MAX_DEPTH:
        where = _find(rec, child)
        rec = {**rec, "found": str(where) if where else None, "state": "missing"}
        out.append(rec)
        if where is None:
            break
        try:
            with RunReader(where) as r:
                if str(r.attrs.get("run_id", "")) != rec["run_id"]:
                    rec["state"] = "replaced"
                    break
                rec["state"] = "present"
                nxt = parent_of(r.attrs)
        except TumorcaError:
            rec["state"] = "replaced"
            break
        child, rec = where, nxt
    return out
