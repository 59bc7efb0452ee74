"""The package's module structure: no import cycle between tumorca's modules, and no module importing another
module's private names (issue 13: "rooms that show the architecture")."""
from __future__ import annotations

import ast
from pathlib import Path

import tumorca

ROOT = Path(tumorca.__file__).resolve().parent


#: Private names imported across modules that are known exceptions (none: the serial and distributed engines share
#: tumorca.engine and tumorca._lattice).  This list may shrink, never grow.
KNOWN_PRIVATE_IMPORTS: set[str] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for p in ROOT.rglob("*.so"):  # compiled kernels (tumorca._fields...) are modules too
        mods[".".join(["tumorca", *p.relative_to(ROOT).parent.parts, p.name.split(".")[0]])] = (p, False)
    for p in ROOT.rglob("*.py"):
        parts = ["tumorca", *p.relative_to(ROOT).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (p, is_pkg)
    return mods


def _imports(mods: dict[str, tuple[Path, bool]]) -> dict[str, set[tuple[str, str | None]]]:
    """Every module's imports of tumorca modules, at any depth of the code (a function-level import is a
    dependency too), as ``(module, imported name or None)``."""
    out: dict[str, set[tuple[str, str | None]]] = {}
    for m, (p, is_pkg) in mods.items():
        base = m.split(".") if is_pkg else m.split(".")[:-1]
        found: set[tuple[str, str | None]] = set()
        if p.suffix != ".py":
            out[m] = found
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    pkg = base[:len(base) - node.level + 1]
                    target = ".".join(pkg + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    found.add((sub, None) if sub in mods else (target, a.name))
            elif isinstance(node, ast.Import):
                found.update((a.name, None) for a in node.names)
        out[m] = {(t, n) for t, n in found if t in mods}
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    # A module's own ancestors are imported before it in any case: an import of one is no dependency.
    return {m: {t for t, _ in imps if t != m and not m.startswith(t + ".")} for m, imps in _imports(mods).items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert "tumorca.cli.run" in graph and "tumorca.sweep.driver" in graph  # the walk saw the packages
    assert _cycles(graph) == []


def test_no_private_names_imported_across_modules():
    """``from tumorca.x import _name`` couples to another module's internals; shared helpers are public."""
    mods = _modules()
    bad = sorted(f"{m} imports {t}.{n}" for m, imps in _imports(mods).items() for t, n in imps
                 if n is not None and n.startswith("_") and not n.startswith("__") and t != m
                 and not t.startswith(m + "."))
    assert [b for b in bad if b not in KNOWN_PRIVATE_IMPORTS] == []


def test_minutes_per_day_defined_once():
    hits = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
            if "1440" in p.read_text(encoding="utf-8") or "24 * 60" in p.read_text(encoding="utf-8")]
    assert hits == ["_constants.py"]
