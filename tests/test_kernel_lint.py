"""A static check of the Cython kernels (ext/*.pyx) for one data race that no run reliably shows: a prange body
that passes the address of a scalar local to a helper (``f(..., &d)``) without assigning that local itself.

Cython makes a variable private to each OpenMP thread only where the prange body assigns it; a write through
its address does not count, so such a local is shared by the threads and one thread can read the value another
wrote.  It gave the mgcg coarse smoothing (the diagonal returned through ``&d``) and the distributed restriction
(the child rows) results that changed from run to run with more than one thread, rarely enough that the
thread-count tests passed.  Helpers return such results by value instead (a struct); row pointers that a
helper sets are assigned in the body first (then they are private)."""
from __future__ import annotations

import re
from pathlib import Path

EXT = Path(__file__).resolve().parents[1] / "ext"

#: C types of the locals whose address must not reach a helper from a prange body unless the body assigns them.
SCALAR = re.compile(r"^\s*cdef\s+(?:const\s+)?(?:double|float|int|bint|Py_ssize_t|u?int(?:8|16|32|64)_t|size_t)"
                    r"\s*\**\s+(.*)$")


def _functions(text: str):
    """(name, lines) of every top-level def/cdef/cpdef function."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines)
              if re.match(r"(c?p?def|cdef inline)\s.*\(", ln) and not ln.startswith("cdef struct")]
    for a, b in zip(starts, starts[1:] + [len(lines)]):
        yield lines[a], lines[a:b]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def shared_address_writes(text: str) -> list[str]:
    """``function: &name`` for each scalar local whose address a prange body passes without assigning it, and
    ``function: name[]`` for each local C array a prange body uses (never private: Cython does not privatise
    arrays)."""
    found = []
    for head, lines in _functions(text):
        fn = head.split("(")[0].split()[-1]
        scalars, arrays = set(), set()
        for ln in lines:
            m = SCALAR.match(ln)
            if m:
                for part in m.group(1).split(","):
                    decl = part.split("=")[0].strip().lstrip("*")
                    name = decl.split("[")[0].strip()
                    if name.isidentifier():
                        (arrays if "[" in decl else scalars).add(name)
        for i, ln in enumerate(lines):
            if "prange(" not in ln:
                continue
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and _indent(nxt) <= _indent(ln):
                    break
                body.append(nxt)
            code = "\n".join(body)
            for name in sorted(set(re.findall(r"&(\w+)\b(?!\s*[\[.])", code)) & scalars):
                if not re.search(rf"(^|[\s,(=]){name}\s*=(?!=)", code, re.M):
                    found.append(f"{fn}: &{name}")
            for name in sorted(arrays):
                if re.search(rf"(?<![\w.]){name}\b", code):
                    found.append(f"{fn}: {name}[]")
    return found


def test_the_check_finds_a_shared_output_local():
    racy = """
def kernel(int n):
    cdef Py_ssize_t q
    cdef double t, d
    with nogil:
        for q in prange(n, schedule="static"):
            t = _terms(q, &d)
            out[q] = t / d
"""
    fixed = racy.replace("            t = _terms(q, &d)", "            d = 0.0\n            t = _terms(q, &d)")
    assert shared_address_writes(racy) == ["kernel: &d"]
    assert shared_address_writes(fixed) == []
    rows = racy.replace("    cdef double t, d\n", "    cdef double t, d\n    cdef Py_ssize_t zr[2]\n").replace(
        "            t = _terms(q, &d)", "            d = 0.0\n            _rows(q, zr)\n            t = _terms(zr[0], &d)")
    assert shared_address_writes(rows) == ["kernel: zr[]"]


def test_no_prange_body_writes_a_shared_local_through_its_address():
    sources = sorted(EXT.glob("*.pyx"))
    assert sources, f"no Cython sources in {EXT}"
    bad = [f"{p.name}: {hit}" for p in sources for hit in shared_address_writes(p.read_text())]
    assert not bad, "prange bodies passing a local's address that the threads share: " + "; ".join(bad)
