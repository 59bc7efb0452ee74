"""Every compiled kernel agrees with its NumPy twin bit for bit, kernel by kernel.

Each kernel of ``ext/_X.pyx`` has a twin of the same name and the same arguments in ``tumorca.reference.X``.  One
parametrised test runs both on copies of the same random state (every tissue type, clocks, neutrophils and fields
scattered so that every rule fires), in 2D and 3D, for two seeds, on the whole lattice and, where the kernel
places a block of a decomposed lattice, on a block with a halo; it compares every array the kernel may write, bit
for bit, and the return values.  A divergence names the kernel, where the whole-step tests (test_reference.py)
only say that a step differs.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from tumorca import Cell, Vessel, _constants, _fields, _neutrophils, _rng, _tissue, _vessels
from tumorca import reference
from tumorca._numerics import tridiagonal_factors
from tumorca.reference import fields as ref_fields
from tumorca.reference import neutrophils as ref_neutrophils
from tumorca.reference import tissue as ref_tissue
from tumorca.reference import vessels as ref_vessels
from tumorca.rules import StepRules

from conftest import hypoxic_params, random_state

#: Lattices: (shape, the local block of the block case as slices of it); odd, unequal sides catch axis mix-ups.
LATTICES = {
    2: ((1, 40, 46), (slice(0, 1), slice(6, 34), slice(8, 42))),
    3: ((12, 14, 17), (slice(2, 12), slice(0, 11), slice(3, 17))),
}
#: Halo layers around the owned box of the block case (on sides that face another block).
HALO = 3


@dataclass
class Case:
    """The input of one kernel call: state arrays (3D), rules, draw key and block placement."""

    a: dict[str, np.ndarray]
    rules: StepRules
    seed: int
    step: int
    geom: tuple  # () on the whole lattice, else (origin, gshape, box)
    search: tuple | None

    def scratch(self) -> tuple[np.ndarray, np.ndarray]:
        sh = self.a["tissue"].shape
        return np.zeros(sh, dtype=np.uint8), np.zeros(sh[0] * sh[1], dtype=np.uint8)

    def ec(self) -> np.ndarray:
        """Flat indices of the vessel sites inside the search region (the whole array by default)."""
        t = self.a["vessel"]
        inside = np.zeros(t.shape, dtype=bool)
        inside[tuple(slice(lo, hi) for lo, hi in (self.search or [(0, n) for n in t.shape]))] = True
        return np.flatnonzero((t != Vessel.NONE) & inside)


# -- the kernels: how each is called, what it writes, and evidence that its rules fired ------------------------
# ``call(mod, c)`` calls kernel ``name`` of module ``mod`` (the kernel's or the twin's) on the arrays of case c.
@dataclass(frozen=True)
class Kernel:
    name: str
    kernel_module: object
    twin_module: object
    writes: tuple[str, ...]
    call: Callable
    placed: bool  # takes origin/gshape/box
    prepare: Callable | None = None  # brings the case to the kernel's input (with the kernels), before copying
    fired: Callable | None = None  # (before, after, returned) -> True if the rules did their work


def _tumor(mod, c):
    prop, rows = c.scratch()
    a = c.a
    return mod.tumor_update(a["tissue"], a["clock"], a["o2"], prop, rows, c.seed, c.step, c.rules.tumour, 1,
                            *c.geom)


def _endothelium(mod, c):
    prop, rows = c.scratch()
    a = c.a
    return mod.endothelium_update(a["vessel"], a["vclock"], a["tissue"], a["perfused"], a["vegf_free"], a["mmp9"],
                                  prop, rows, c.seed, c.step, c.rules.endothelium, 1, *c.geom)


def _connect(mod, c):
    a = c.a
    return mod.perfusion_connect(a["vessel"], a["inlet"], a["perfused"], c.ec(), c.rules.perfusion, *c.geom,
                                 *((c.search,) if c.search else ()))


def _prune(mod, c):
    a = c.a
    return mod.perfusion_prune_round(a["vessel"], a["inlet"], a["perfused"], c.scratch()[0], c.ec(),
                                     c.rules.perfusion, *c.geom)


def _finish(mod, c):
    a = c.a
    return mod.perfusion_finish(a["vessel"], a["vclock"], a["inlet"], a["perfused"], a["tissue"], a["vegf_free"],
                                c.ec(), c.seed, c.step, c.rules.perfusion, *c.geom)


def _perfusion_flags(c):
    """The input of the pruning rounds: flags cleared, then connectivity marked (by the kernel)."""
    c.a["perfused"].fill(0)
    _connect(_vessels, c)


def _perfusion_pruned(c):
    """The input of perfusion_finish: connectivity and every pruning round (by the kernels)."""
    _perfusion_flags(c)
    while _prune(_vessels, c):
        pass


def _life_kill(mod, c):
    prop, rows = c.scratch()
    a = c.a
    return mod.neutrophil_life_kill(a["tissue"], a["clock"], a["perfused"], a["cxcl"], a["neut"], a["neut_p"],
                                    a["neut_age"], prop, rows, c.seed, c.step, c.rules.neutrophils, 1, *c.geom)


def _submove(mod, c):
    prop, rows = c.scratch()
    a = c.a
    return mod.neutrophil_submove(a["neut"], a["neut_p"], a["neut_age"], a["cxcl"], prop, rows, c.seed, c.step, 2,
                                  c.rules.neutrophils, 1, *c.geom)


def _after_submove(c):
    """The input of neutrophil_clear: a sub-move (by the kernel) leaves its proposals in ``prop``."""
    a = c.a
    prop, rows = c.scratch()
    _neutrophils.neutrophil_submove(a["neut"], a["neut_p"], a["neut_age"], a["cxcl"], prop, rows, c.seed, c.step, 0,
                                    c.rules.neutrophils, 1)
    a["prop"] = prop


def _clear(mod, c):
    a = c.a
    return mod.neutrophil_clear(a["neut"], a["neut_p"], a["neut_age"], a["prop"], 1)


def _secrete(mod, c):
    a = c.a
    return mod.secrete(a["tissue"], a["o2"], a["neut"], a["neut_p"], a["vegf_free"], a["vegf_bound"], a["mmp9"],
                       a["cxcl"], c.rules.secretion, 1)


def _implicit(mod, c):
    # every axis, with Dirichlet factors and an edge term on one field and Neumann factors on another
    a = c.a
    for name, alpha, gain, dirichlet, edge in (("vegf_free", 0.7, 0.9, True, 0.05), ("cxcl", 2.5, 1.0, False, 0.0)):
        for axis in (2, 1, 0):
            n = a[name].shape[axis]
            cp, m = tridiagonal_factors(n, alpha, dirichlet and n > 1)
            mod.implicit_axis(a[name], axis, cp, m, alpha, gain, edge, 1)


def _changed(name):
    return lambda before, after, ret: not np.array_equal(before[name], after[name])


def _tumour_fired(before, after, born):
    t0, t1 = before["tissue"], after["tissue"]
    moves = {(Cell.TUMOR_P, Cell.TUMOR_Q), (Cell.TUMOR_P, Cell.NECROTIC), (Cell.TUMOR_Q, Cell.TUMOR_P),
             (Cell.TUMOR_Q, Cell.NECROTIC), (Cell.EMPTY, Cell.TUMOR_P)}
    return born > 0 and all(np.any((t0 == s) & (t1 == e)) for s, e in moves)


def _endothelium_fired(before, after, ret):
    t0, t1, tis = before["vessel"], after["vessel"], before["tissue"]
    sprouted = np.any((t0 == Vessel.STALK) & (t1 == Vessel.TIP))
    moved = np.any((t0 == Vessel.NONE) & (t1 == Vessel.TIP))
    invaded = np.any((t0 == Vessel.NONE) & (t1 == Vessel.TIP) & ((tis == Cell.TUMOR_P) | (tis == Cell.TUMOR_Q)))
    stopped = np.any((t0 == Vessel.TIP) & (t1 == Vessel.STALK))  # a tip that moved on or fused
    return sprouted and moved and invaded and stopped


def _finish_fired(before, after, ret):
    # flow marked, and both regressions (a cut-off tip stopping is not always present: dense random 3D vessels
    # connect every tip)
    n_flow, n_coopt = ret
    return np.any(after["perfused"] == 1) and n_flow > 0 and n_coopt > 0


KERNELS = [
    Kernel("tumor_update", _tissue, ref_tissue, ("tissue", "clock"), _tumor, True, fired=_tumour_fired),
    Kernel("perfusion_connect", _vessels, ref_vessels, ("perfused",), _connect, True,
           prepare=lambda c: c.a["perfused"].fill(0), fired=lambda b, a, n: n > 0),
    Kernel("perfusion_prune_round", _vessels, ref_vessels, ("perfused",), _prune, True, prepare=_perfusion_flags,
           fired=lambda b, a, n: n > 0),
    Kernel("perfusion_finish", _vessels, ref_vessels, ("vessel", "vclock", "inlet", "perfused"), _finish, True,
           prepare=_perfusion_pruned, fired=_finish_fired),
    Kernel("endothelium_update", _vessels, ref_vessels, ("vessel", "vclock"), _endothelium, True,
           fired=_endothelium_fired),
    Kernel("neutrophil_life_kill", _neutrophils, ref_neutrophils, ("tissue", "clock", "neut", "neut_p", "neut_age"),
           _life_kill, True, fired=lambda b, a, counts: min(counts) > 0),
    Kernel("neutrophil_submove", _neutrophils, ref_neutrophils, ("neut", "neut_p", "neut_age"), _submove, True,
           fired=_changed("neut")),
    Kernel("neutrophil_clear", _neutrophils, ref_neutrophils, ("neut", "neut_p", "neut_age"), _clear, False,
           prepare=_after_submove, fired=_changed("neut_p")),
    Kernel("secrete", _fields, ref_fields, ("vegf_free", "vegf_bound", "mmp9", "cxcl"), _secrete, False,
           fired=lambda b, a, r: all(not np.array_equal(b[n], a[n]) for n in ("vegf_free", "vegf_bound", "mmp9"))),
    Kernel("implicit_axis", _fields, ref_fields, ("vegf_free", "cxcl"), _implicit, False, fired=_changed("cxcl")),
]
CASES = [(k, ndim, seed, where) for k in KERNELS for ndim in (2, 3) for seed in (1, 2)
         for where in (("whole", "block") if k.placed else ("whole",))]


def _case(ndim: int, seed: int, where: str) -> Case:
    shape3, block = LATTICES[ndim]
    # Rates high enough that every rule fires in one call; in 2D, seed 2 takes edge inlets (in the small 3D
    # lattice they would connect every vessel, and nothing would regress)
    kw = dict(necrosis_rate_max=0.01, sprout_rate=0.05, sprout_exclusion=40.0, coopt_regression_rate=0.005)
    params = hypoxic_params(**kw, **({"vessel_inlets": "edge"} if seed == 2 and ndim == 2 else {}))
    st = random_state(shape3[1:] if ndim == 2 else shape3, params, seed, clock_high=12)
    a = {k: np.ascontiguousarray(v).reshape(shape3) for k, v in st["arrays"].items()}
    # perfusion as a random part of the vessels (the state's own is that of the initial vessels)
    rng = np.random.default_rng(seed + 100)
    ec = a["vessel"] != Vessel.NONE
    a["perfused"][...] = ec & (rng.random(shape3) < 0.6)
    rules = StepRules.from_params(params, params.ifn_level)
    step = 17 + seed
    if where == "whole":
        return Case(a, rules, seed, step, (), None)
    # a block with HALO layers on the sides that face another block: draws and tie-breaks use global indices,
    # faces are the global faces and counts cover the owned box
    local = {k: np.ascontiguousarray(v[block]) for k, v in a.items()}
    origin = tuple(s.start for s in block)
    box = tuple((0 if s.start == 0 else HALO, (s.stop - s.start) - (0 if s.stop == n else HALO))
                for s, n in zip(block, shape3))
    search = tuple((0, s.stop - s.start) for s in block)
    return Case(local, rules, seed, step, (origin, shape3, box), search)


def _copy(c: Case) -> Case:
    return Case({k: v.copy() for k, v in c.a.items()}, c.rules, c.seed, c.step, c.geom, c.search)


def _params(f) -> list[str]:
    return list(inspect.signature(f).parameters)


@pytest.mark.parametrize("kernel,ndim,seed,where", CASES,
                         ids=[f"{k.name}-{n}d-seed{s}-{w}" for k, n, s, w in CASES])
def test_kernel_matches_twin(kernel: Kernel, ndim: int, seed: int, where: str) -> None:
    base = _case(ndim, seed, where)
    if kernel.prepare is not None:
        kernel.prepare(base)
    mine, twin = _copy(base), _copy(base)
    got = kernel.call(kernel.kernel_module, mine)
    want = kernel.call(kernel.twin_module, twin)
    name = kernel.name
    assert got == want, f"{name}: kernel returned {got}, twin {want}"
    for arr in base.a:
        if arr == "prop":
            continue  # scratch, and the twins do not write it
        x, y = mine.a[arr], twin.a[arr]
        if not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
            diff = np.flatnonzero(x.ravel() != y.ravel())
            pytest.fail(f"{name} ({ndim}D, seed {seed}, {where}): {arr!r} differs from the twin at {diff.size} "
                        f"sites, first {diff[:5]}")
        if arr not in kernel.writes:
            assert np.array_equal(base.a[arr].view(np.uint8), x.view(np.uint8)), f"{name} wrote {arr!r}"
    if where == "whole":  # the block is small: some rules need not fire inside it
        assert kernel.fired(base.a, mine.a, got), f"{name}: its rules did not fire on the test state"


@pytest.mark.parametrize("kernel", KERNELS, ids=[k.name for k in KERNELS])
def test_twin_has_the_kernels_signature(kernel: Kernel) -> None:
    f, g = getattr(kernel.kernel_module, kernel.name), getattr(kernel.twin_module, kernel.name)
    assert _params(f) == _params(g), kernel.name
    assert getattr(reference, kernel.name) is g


def test_kernel_rejects_a_misspelt_rule() -> None:
    # the rule structs are filled by attribute name: a field the object lacks fails at once
    c = _case(2, 1, "whole")

    class Partial:
        p_div_max = 0.1

    with pytest.raises(AttributeError):
        _tissue.tumor_update(c.a["tissue"], c.a["clock"], c.a["o2"], *c.scratch(), 1, 0, Partial(), 1)


def test_new_constants_agree_with_kernels() -> None:
    for name in ("CLOCK_MAX", "ROW_SITES", "ROW_PROPOSALS", "ROW_PUSH", "PERFUSION_CONNECTED", "PERFUSION_REMOVED"):
        assert _rng.CONSTANTS[name] == getattr(_constants, name), name


# -- pushing (push_range >= 2) ----------------------------------------------------------------------------------
def _push_case(ndim: int, seed: int, where: str, push_range: int = 3) -> Case:
    """The kernel case on a densely packed tissue (few empty sites), with pushing on: most dividing cells have no
    empty neighbour."""
    c = _case(ndim, seed, where)
    t = c.a["tissue"]
    rng = np.random.default_rng(seed + 7)
    empty = 0.06 if ndim == 2 else 0.015      # 26 neighbours in 3D: fewer empty sites for as many pushes
    t[...] = rng.choice(4, size=t.shape, p=[empty, 0.76 - empty, 0.12, 0.12]).astype(np.uint8)
    c.rules = dataclasses.replace(c.rules, tumour=dataclasses.replace(c.rules.tumour, push_range=push_range))
    return c


def _pushed(before: np.ndarray, after: np.ndarray) -> bool:
    """Evidence of a push: an empty site holds a quiescent or necrotic cell, or a site that held a tumour or
    necrotic cell holds another kind of cell afterwards (a cell moved in); without pushing an empty site only
    receives a cycling daughter and a cell only changes P -> Q/N, Q -> P/N."""
    if np.any((before == Cell.EMPTY) & ((after == Cell.TUMOR_Q) | (after == Cell.NECROTIC))):
        return True
    allowed = {(Cell.TUMOR_P, Cell.TUMOR_Q), (Cell.TUMOR_P, Cell.NECROTIC), (Cell.TUMOR_Q, Cell.TUMOR_P),
               (Cell.TUMOR_Q, Cell.NECROTIC)}
    for s in (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC):
        for e in (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC):
            if s != e and (s, e) not in allowed and np.any((before == s) & (after == e)):
                return True
    return False


PUSH_CASES = [(ndim, seed, where, r) for ndim in (2, 3) for seed in (1, 2) for where in ("whole", "block")
              for r in (2, 3)]


@pytest.mark.parametrize("ndim,seed,where,push_range", PUSH_CASES,
                         ids=[f"{n}d-seed{s}-{w}-R{r}" for n, s, w, r in PUSH_CASES])
def test_tumour_push_matches_twin(ndim: int, seed: int, where: str, push_range: int) -> None:
    base = _push_case(ndim, seed, where, push_range)
    mine, twin = _copy(base), _copy(base)
    got, want = _tumor(_tissue, mine), _tumor(ref_tissue, twin)
    assert got == want
    for arr in ("tissue", "clock"):
        diff = np.flatnonzero(mine.a[arr].ravel() != twin.a[arr].ravel())
        assert diff.size == 0, f"{arr!r} differs from the twin at {diff.size} sites, first {diff[:5]}"
    assert _pushed(base.a["tissue"], mine.a["tissue"]), "no push happened on the packed state"
    # and pushing changed the outcome: more births than without
    off = _copy(base)
    off.rules = dataclasses.replace(off.rules, tumour=dataclasses.replace(off.rules.tumour, push_range=0))
    assert got > _tumor(_tissue, off)


@pytest.mark.parametrize("ndim", (2, 3))
def test_push_conserves_cells(ndim: int) -> None:
    """Pushing moves cells, never loses or duplicates one: after the step, tumour + necrotic = before + born,
    every quiescent clock > 0 before is found again (a moved quiescent cell keeps its clock + 1), and cycling
    cells have clock 0."""
    c = _push_case(ndim, 1, "whole")
    before = c.a["tissue"].copy()
    vessel0 = c.a["vessel"].copy()
    clock0 = c.a["clock"].copy()
    c.rules = dataclasses.replace(c.rules, tumour=dataclasses.replace(c.rules.tumour, p_nec_max=0.0,
                                                                       q_death_steps=10 ** 4))
    o2 = c.a["o2"]
    o2[...] = np.where(before == Cell.TUMOR_Q, 0.0, 60.0)   # quiescent cells stay, cycling cells divide
    born = _tumor(_tissue, c)
    after, clock1 = c.a["tissue"], c.a["clock"]
    cells = (Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC)
    assert born > 0 and _pushed(before, after)
    assert np.isin(after, cells).sum() == np.isin(before, cells).sum() + born
    assert (after == Cell.NECROTIC).sum() == (before == Cell.NECROTIC).sum()
    assert (after == Cell.TUMOR_Q).sum() == (before == Cell.TUMOR_Q).sum()
    assert sorted(clock1[after == Cell.TUMOR_Q]) == sorted(clock0[before == Cell.TUMOR_Q] + 1)
    assert not clock1[after == Cell.TUMOR_P].any()
    # the vessel layer does not move with the tissue (pushed cells slide over it: co-option)
    assert np.array_equal(c.a["vessel"], vessel0)


@pytest.mark.parametrize("ndim", (2, 3))
def test_push_is_the_same_on_any_thread_count(ndim: int) -> None:
    base = _push_case(ndim, 2, "whole")
    runs = []
    for threads in (1, 2):
        c = _copy(base)
        prop, rows = c.scratch()
        n = _tissue.tumor_update(c.a["tissue"], c.a["clock"], c.a["o2"], prop, rows, c.seed, c.step,
                                 c.rules.tumour, threads)
        runs.append((n, c.a["tissue"], c.a["clock"]))
    assert runs[0][0] == runs[1][0] > 0
    assert np.array_equal(runs[0][1], runs[1][1]) and np.array_equal(runs[0][2], runs[1][2])


def test_push_range_below_two_is_off() -> None:
    """push_range 0 and 1 give the same step as before pushing existed (the goldens), on the packed state."""
    results = []
    for r in (0, 1):
        c = _push_case(3, 1, "whole", r)
        results.append((_tumor(_tissue, c), c.a["tissue"].copy(), c.a["clock"].copy()))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1]) and np.array_equal(results[0][2], results[1][2])
    assert not _pushed(_push_case(3, 1, "whole", 0).a["tissue"], results[0][1])


def test_packed_ball_grows_inside_only_with_pushing() -> None:
    """A fully packed disk of cycling cells at full O2: without pushing only the rim divides; with push_range 3
    cells up to 3 sites inside the rim divide too, so more cells are born and the disk grows faster."""
    n = 41
    yy, xx = np.mgrid[:n, :n]
    ball = (yy - n // 2) ** 2 + (xx - n // 2) ** 2 <= 12 ** 2
    born = {}
    for r in (0, 3):
        c = _case(2, 1, "whole")
        t = np.zeros((1, n, n), dtype=np.uint8)
        t[0] = np.where(ball, Cell.TUMOR_P, Cell.EMPTY)
        clock = np.zeros_like(t, dtype=np.uint16)
        o2 = np.full(t.shape, 60.0, dtype=np.float32)
        tumour = dataclasses.replace(c.rules.tumour, push_range=r, p_div_max=0.5, p_nec_max=0.0)
        total = 0
        inner = 0
        for step in range(3):
            prop, rows = np.zeros(t.shape, dtype=np.uint8), np.zeros(n, dtype=np.uint8)
            t0 = t.copy()
            total += _tissue.tumor_update(t, clock, o2, prop, rows, 5, step, tumour, 1)
            # daughters placed on a site that held a cell: births inside the tumour (pushes)
            inner += int(((t0 != Cell.EMPTY) & (t != t0)).sum())
        born[r] = total
        assert (t != Cell.EMPTY).sum() == ball.sum() + total
        if r == 0:
            assert inner == 0
    assert born[3] > 1.3 * born[0], born
