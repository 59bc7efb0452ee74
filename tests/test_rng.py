"""Philox4x32-10: published known-answer vectors, and the kernels' and reference's draws agree; every constant
of ext/defs.h equals its Python twin in tumorca._constants, in the compiled modules and in the reference."""
import ast
import importlib
import importlib.machinery
import importlib.util
import operator
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import tumorca
from tumorca import _constants, _rng, reference

# Random123 kat_vectors, philox4x32 with 10 rounds: counter words, key words -> output words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_kernel_known_answers(ctr, key, expected):
    assert tuple(int(v) for v in _rng.philox4x32_10(ctr, key)) == expected


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_reference_known_answers(ctr, key, expected):
    out = reference.philox4x32_10(np.array([ctr], dtype=np.uint32), key)
    assert tuple(int(v) for v in out[0]) == expected


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**64 - 1])
def test_kernel_and_reference_draws_agree(seed):
    sites = np.array([0, 1, 2, 2**32 - 1, 2**32, 2**40 + 3, 2**64 - 1], dtype=np.uint64)
    for step, purpose in [(0, 1), (7, 1), (2**32 - 1, 9)]:
        np.testing.assert_array_equal(_rng.draw(seed, step, sites, purpose),
                                      reference.draw(seed, step, sites, purpose))


def test_draws_depend_on_every_input():
    base = _rng.draw(5, 3, np.arange(4, dtype=np.uint64), 1)
    assert len({tuple(r) for r in base}) == 4  # different sites
    assert not np.array_equal(base, _rng.draw(6, 3, np.arange(4, dtype=np.uint64), 1))
    assert not np.array_equal(base, _rng.draw(5, 4, np.arange(4, dtype=np.uint64), 1))
    assert not np.array_equal(base, _rng.draw(5, 3, np.arange(4, dtype=np.uint64), 2))


def test_uniform_words_are_uniform():
    # 200k words into 64 bins: a chi-square far beyond its 63 degrees of freedom would flag a broken generator.
    w = _rng.draw(11, 0, np.arange(50_000, dtype=np.uint64), 1).ravel()
    counts = np.bincount((reference.u01(w) * 64).astype(int), minlength=64)
    expected = w.size / 64
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 120, chi2
    assert reference.u01(np.array([0xFFFFFFFF], dtype=np.uint32))[0] < 1.0


# ---- every constant of ext/defs.h against its Python twin ----------------------------------------------------
# defs.h is parsed here, so a constant added there is checked without touching this file.  (philox.h's multipliers
# and Weyl keys are not parsed: the known-answer vectors above pin them in both the kernels and the reference.)

DEFS_H = Path(__file__).resolve().parent.parent / "ext" / "defs.h"
_BINOPS = {ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
           ast.RShift: operator.rshift, ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def _c_int(expr: str, known: dict[str, int]) -> int:
    """Value of a C integer constant expression of literals (with u/l suffixes), earlier names and | & ^ << >> + - *."""
    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert)):
            return -ev(node.operand) if isinstance(node.op, ast.USub) else ~ev(node.operand)
        raise ValueError(f"{DEFS_H.name}: cannot evaluate {expr!r}; teach tests/test_rng.py:_c_int this form")
    py = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())
    return ev(ast.parse(py, mode="eval").body)


def header_constants(path: Path = DEFS_H) -> dict[str, int]:
    """Every enumerator (explicit or implicit value) and every object-like ``#define`` with a value in ``path``."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)
    found: dict[str, int] = {}
    for body in re.findall(r"\benum\b[^{;]*\{(.*?)\}", text, flags=re.S):
        value = 0
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, eq, expr = (part.strip() for part in item.partition("="))
            value = _c_int(expr, found) if eq else value
            found[name] = value
            value += 1
    for name, expr in re.findall(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(\S.*?)[ \t]*$", text, flags=re.M):
        found[name] = _c_int(expr, found)
    return found


def python_twin(c_name: str):
    """The value tumorca._constants gives the C constant ``TC_X``: ``_constants.X``, a member ``Cell.X`` or
    ``Vessel.Y`` (for ``TC_VESSEL_Y``), or for ``TC_N_STATES`` the number of cell states."""
    assert c_name.startswith("TC_"), f"{c_name}: constants in {DEFS_H.name} are named TC_*"
    name = c_name[3:]
    if name == "N_STATES":
        return len(_constants.Cell)
    if name in _constants.Cell.__members__:
        return int(_constants.Cell[name])
    if name.startswith("VESSEL_") and name[7:] in _constants.Vessel.__members__:
        return int(_constants.Vessel[name[7:]])
    if hasattr(_constants, name):
        return getattr(_constants, name)
    raise AssertionError(f"ext/defs.h defines {c_name} but src/tumorca/_constants.py has no {name} (nor Cell.{name}):"
                         " add the Python twin")


def test_header_parser_sees_the_header():
    """The parser is not vacuous: it finds enumerators, implicit values and defines, and reads hex and suffixes."""
    c = header_constants()
    assert c["TC_EMPTY"] == 0 and c["TC_VESSEL_TIP"] == 2 and c["TC_N_STATES"] == 4 and c["TC_TIP_FUSE"] == 0x20 and c["TC_PROP_STATE_SHIFT"] == 5
    assert "TUMORCA_DEFS_H" not in c  # the include guard has no value
    assert _c_int("(1u << 3) | 0x10UL", {}) == 24 and _c_int("A + 1", {"A": 4}) == 5


@pytest.mark.parametrize("c_name", sorted(header_constants()))
def test_every_header_constant_has_an_equal_python_twin(c_name):
    value = header_constants()[c_name]
    assert python_twin(c_name) == value, f"{c_name} = {value} in ext/defs.h, {python_twin(c_name)} in Python"


def test_every_cell_state_and_constant_is_in_the_header():
    """The other direction: no Python state without a kernel twin."""
    c = header_constants()
    for cell in _constants.Cell:
        assert c.get(f"TC_{cell.name}") == int(cell), cell
    assert c["TC_N_STATES"] == len(_constants.Cell)


def test_compiled_kernels_carry_the_header_values():
    """What the extension modules were compiled with (a stale build shows here), and what they export."""
    header = header_constants()
    for name, value in _rng.CONSTANTS.items():
        in_header = header.get(f"TC_{name}")
        assert in_header == value, f"_rng.CONSTANTS[{name!r}] = {value}, ext/defs.h: {in_header}"
    # every table a compiled module exports under a name of tumorca._constants (MOORE, NEIGHBOUR_ADJACENCY, ...)
    seen = set()
    for info in pkgutil.iter_modules(tumorca.__path__):
        origin = importlib.util.find_spec(f"tumorca.{info.name}").origin or ""
        if not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            continue  # only compiled modules: importing the others could start MPI
        module = importlib.import_module(f"tumorca.{info.name}")
        for name in dir(module):
            if name.isupper() and hasattr(_constants, name) and name != "CONSTANTS":
                assert getattr(module, name) == getattr(_constants, name), f"tumorca.{info.name}.{name}"
                seen.add(name)
    assert "MOORE" in seen


def test_reference_uses_the_same_constants():
    """The NumPy reference (a module or a package of modules) holds no copy of a constant that differs."""
    modules = [reference]
    if hasattr(reference, "__path__"):
        modules += [importlib.import_module(m.name) for m in pkgutil.walk_packages(reference.__path__,
                                                                                      reference.__name__ + ".")]
    checked = 0
    for module in modules:
        for name in dir(_constants):
            if name.isupper() and hasattr(module, name):
                assert getattr(module, name) == getattr(_constants, name), f"{module.__name__}.{name}"
                checked += 1
    assert checked >= 5  # the reference does import them
