"""The O2 solvers.  mgcg (the default): error against a direct sparse solve within the tolerance on odd, prime,
thin and 3D lattices; every kernel bit-identical to its NumPy twin; independent of the thread count; a solve that
stops at its cap warns with the step and the error estimate.  The experimental multigrid keeps its twin test."""
import warnings

import numpy as np
import pytest

import tumorca
from tumorca import Cell, _o2, _rng, reference
from tumorca._numerics import MgcgWorkspace, MultigridWorkspace
from tumorca.reference import o2_mgcg as twin
from tumorca.reference._lattice import VN, shifted

K = 250.0  # D/dx^2 of the default parameters (1/min)
UPTAKE = reference.uptake_table(tumorca.Params())


def lattice(shape, seed, vessel_fraction=0.03):
    """Random stroma/tumour/necrotic tissue with perfused vessel sites scattered over ``vessel_fraction`` of the
    lattice (at least one), and a random float32 start field in [0, 38)."""
    rng = np.random.default_rng(seed)
    tissue = rng.choice([Cell.EMPTY, Cell.TUMOR_P, Cell.TUMOR_Q, Cell.NECROTIC], size=shape,
                        p=[0.4, 0.4, 0.1, 0.1]).astype(np.uint8)
    source = (rng.random(shape) < vessel_fraction).astype(np.uint8)
    source.flat[0] = 1
    c = (rng.random(shape, dtype=np.float32) * np.float32(38.0)).astype(np.float32)
    return tissue, source, c


def disk(shape, vessel_rows=0):
    """Tumour disk (ball) with a necrotic core, stroma around; optional vessel rows every ``vessel_rows`` sites."""
    idx = np.indices(shape)
    centre = [(n - 1) / 2 for n in shape]
    rad = np.sqrt(sum((idx[a] - centre[a]) ** 2 for a in range(3) if shape[a] > 1))
    R = max(1.0, min(n for n in shape if n > 1) / 2 - 2) if max(shape) > 1 else 1.0
    tissue = np.where(rad < R, Cell.TUMOR_P, Cell.EMPTY).astype(np.uint8)
    tissue[rad < R / 3] = Cell.NECROTIC
    source = np.zeros(shape, dtype=np.uint8)
    if vessel_rows:
        source[:, ::vessel_rows, :] = 1
    return tissue, source, np.zeros(shape, dtype=np.float32)


def solve_mgcg(c, tissue, source, dirichlet=False, tol=1e-4, threads=2, workspace=None, smooth=2, max_iter=200,
               source_values=None):
    ws = workspace if workspace is not None else MgcgWorkspace(c.shape)
    return _o2.o2_solve_mgcg(c, tissue, source, UPTAKE, K, 38.0, dirichlet, 38.0, smooth, tol, max_iter, ws,
                             threads, source_values)


def direct(tissue, source, dirichlet, source_values=None, edge=38.0):
    """The same discrete system solved by scipy's sparse LU."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    shape, n = tissue.shape, tissue.size
    idx = np.arange(n).reshape(shape)
    free = (source == 0).ravel()
    nn = np.zeros(shape, dtype=np.int64)
    rows, cols, vals = [], [], []
    rhs = np.where(free, 0.0, 38.0 if source_values is None else source_values.ravel().astype(np.float64))
    for off in VN:
        axis = int(np.flatnonzero(off)[0])
        ghost = dirichlet and shape[axis] > 1
        nb = shifted(idx, off, -1).ravel()
        inside = nb >= 0
        nn += (inside | ghost).reshape(shape)
        m = free & inside
        rows.append(idx.ravel()[m])
        cols.append(nb[m])
        vals.append(np.full(m.sum(), -K))
        if ghost:
            rhs[free & ~inside] += K * np.float64(np.float32(edge))
    diag = np.where(free, (K * nn + UPTAKE[tissue]).ravel(), 1.0)
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return spl.spsolve(a, rhs).reshape(shape)


# odd, prime, thin, one-site axes, 2D and 3D
SHAPES = [(1, 37, 29), (1, 57, 57), (1, 97, 131), (9, 11, 13), (13, 17, 11), (5, 1, 7), (1, 1, 41), (1, 3, 101),
          (4, 2, 3), (1, 64, 64), (1, 1, 1), (2, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dirichlet", [False, True])
def test_mgcg_kernel_matches_reference_bit_for_bit(shape, dirichlet):
    tissue, source, c0 = lattice(shape, seed=sum(shape))
    ck, cr = c0.copy(), c0.copy()
    out_k = solve_mgcg(ck, tissue, source, dirichlet)
    out_r = reference.o2_solve_mgcg(cr, tissue, source, UPTAKE, K, 38.0, dirichlet, 38.0, 2, 1e-4, 200)
    assert out_k == out_r
    np.testing.assert_array_equal(ck.view(np.uint32), cr.view(np.uint32))
    assert out_k[1] <= 1e-4


@pytest.mark.parametrize("shape,maker,dirichlet", [
    ((1, 57, 57), "disk", True), ((1, 97, 131), "random", False), ((1, 97, 131), "rows", False),
    ((1, 61, 61), "rows", True), ((1, 1, 41), "random", True), ((1, 3, 101), "rows", False),
    ((13, 17, 11), "random", False), ((11, 13, 9), "disk", True), ((12, 15, 10), "rows", False),
])
def test_mgcg_error_against_a_direct_solve_is_within_tol(shape, maker, dirichlet):
    if maker == "random":
        tissue, source, c = lattice(shape, seed=5)
        c[:] = 0.0  # cold
    else:
        tissue, source, c = disk(shape, vessel_rows=10 if maker == "rows" else 0)
    exact = direct(tissue, source, dirichlet)
    for tol in (1e-4, 1e-5):
        ci = c.copy()
        its, est, _ = solve_mgcg(ci, tissue, source, dirichlet, tol=tol)
        err = np.abs(ci - exact).max()
        assert err <= tol, (tol, its, est, err)
        assert its <= 25


def test_mgcg_per_site_source_values_match_the_direct_solve_and_the_twin():
    tissue, source, c = lattice((1, 33, 27), seed=4)
    vals = (np.random.default_rng(1).random(tissue.shape) * 40).astype(np.float32)
    ck, cr = c.copy(), c.copy()
    out = solve_mgcg(ck, tissue, source, True, tol=1e-5, source_values=vals)
    assert out == reference.o2_solve_mgcg(cr, tissue, source, UPTAKE, K, 38.0, True, 38.0, 2, 1e-5, 200,
                                          source_values=vals)
    np.testing.assert_array_equal(ck.view(np.uint32), cr.view(np.uint32))
    assert np.abs(ck - direct(tissue, source, True, source_values=vals)).max() <= 1e-5


@pytest.mark.parametrize("shape", [(1, 37, 29), (9, 11, 13), (1, 1, 41)])
@pytest.mark.parametrize("dirichlet", [False, True])
def test_mgcg_coarse_operators_match_reference(shape, dirichlet):
    tissue, source, _ = lattice(shape, seed=2)
    ws = MgcgWorkspace(shape)
    _o2.mgcg_levels(tissue, source, UPTAKE, K, dirichlet, ws, 2)
    h = twin.Hierarchy(twin.Fine(tissue, source, UPTAKE, K, dirichlet, 38.0), 2)
    for lvl in range(1, len(ws.shapes)):
        ref = h.levels[lvl]
        got = ws.levels[lvl]
        for got_a, ref_a in [(got["m"], ref.m32), (got["b"], ref.b32)] + [
                (got["w"][a], ref.w32[a]) for a in range(3) if got["w"][a] is not None]:
            assert got_a.dtype == ref_a.dtype == np.float32
            np.testing.assert_array_equal(got_a.view(np.uint32), ref_a.ravel().view(np.uint32))
        for a in range(3):
            if got["w"][a] is None:
                assert not ref.w32[a].any()


@pytest.mark.parametrize("shape", [(1, 37, 29), (9, 11, 13), (1, 1, 41), (1, 64, 64)])
def test_mgcg_preconditioner_matches_reference_and_is_symmetric(shape):
    tissue, source, _ = lattice(shape, seed=3)
    rng = np.random.default_rng(0)
    r1, r2 = (np.where(source == 0, rng.standard_normal(shape), 0.0).astype(np.float32) for _ in range(2))
    ws = MgcgWorkspace(shape)
    z1 = _o2.mgcg_precondition(r1, tissue, source, UPTAKE, K, True, 2, ws, 2)
    z2 = _o2.mgcg_precondition(r2, tissue, source, UPTAKE, K, True, 2, ws, 2)
    h = twin.Hierarchy(twin.Fine(tissue, source, UPTAKE, K, True, 38.0), 2)
    np.testing.assert_array_equal(z1, h.apply(r1))
    # a symmetric positive definite preconditioner is what makes CG converge on every input (up to the float32
    # rounding of the lattice and coarse corrections)
    z1, z2, r1, r2 = (v.astype(np.float64).ravel() for v in (z1, z2, r1, r2))
    assert np.dot(z1, r2) == pytest.approx(np.dot(r1, z2), rel=1e-5)
    assert np.dot(z1, r1) > 0


@pytest.mark.parametrize("shape", [(1, 7, 5), (3, 4, 5), (1, 130, 3)])
def test_mgcg_dot_matches_reference(shape):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    assert _o2.mgcg_dot(a, b, 2) == twin.dot(a, b)
    assert _o2.mgcg_dot(a, b, 1) == _o2.mgcg_dot(a, b, 3)


@pytest.mark.skipif(not _rng.openmp_enabled(), reason="built without OpenMP: one thread only")
@pytest.mark.parametrize("shape", [(1, 61, 47), (12, 9, 14)])
def test_mgcg_is_independent_of_thread_count(shape):
    # parallel_sites=1 spreads even the smallest coarse level over the threads.
    tissue, source, c0 = lattice(shape, seed=1)
    results = []
    for threads in (1, 2, 3):
        c = c0.copy()
        out = solve_mgcg(c, tissue, source, threads=threads, workspace=MgcgWorkspace(shape, parallel_sites=1))
        results.append((out, c))
    for out, c in results[1:]:
        assert out == results[0][0]
        np.testing.assert_array_equal(c.view(np.uint32), results[0][1].view(np.uint32))


def test_mgcg_stopping_at_its_cap_warns_with_step_and_estimate():
    p = tumorca.Params(init_vessels="parallel", o2_max_iter=1)
    sim = tumorca.Simulation((40, 40), p, seed=1, threads=1)
    with pytest.warns(RuntimeWarning, match=r"o2_max_iter = 1\) with error estimate \S+ mmHg .*\(step 0\)"):
        sim.step(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tumorca.Simulation((40, 40), tumorca.Params(init_vessels="parallel"), seed=1, threads=1).step(2)


def test_mgcg_is_the_default_and_reports_work():
    sim = tumorca.Simulation((48, 40), tumorca.Params(init_vessels="parallel"), seed=3, threads=2)
    assert sim._params.o2_solver == "mgcg"
    sim.step(2)
    st = sim.o2_solver_stats
    assert 0 < st["sweeps"] <= 25 and st["residual"] <= 1e-4 and st["work"] > st["sweeps"]


def test_mgcg_and_sor_reach_the_same_solution():
    params = tumorca.Params(init_vessels="parallel", init_vessel_spacing=32, init_tumor_radius=30)
    sim = tumorca.Simulation((96, 96), params, seed=2, threads=2)
    sim.step(3)
    a = sim._arrays
    c_cg = np.zeros(a["o2"].shape, dtype=np.float32)
    c_sor = c_cg.copy()
    solve_mgcg(c_cg, a["tissue"], a["perfused"], tol=1e-5)
    _o2.o2_solve(c_sor, a["tissue"], a["perfused"], UPTAKE, K, 38.0, False, 38.0, 1.7, 1e-6, 100000, 2)
    assert np.abs(c_cg.astype(np.float64) - c_sor).max() <= 1e-3
    assert c_cg.min() < 15.0


def test_workspace_must_match_the_lattice():
    tissue, source, c = lattice((1, 20, 20), seed=0)
    with pytest.raises(ValueError, match="workspace"):
        solve_mgcg(c, tissue, source, workspace=MgcgWorkspace((1, 20, 21)))


# -- the experimental multigrid -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 37, 29), (9, 11, 13), (1, 64, 64)])
@pytest.mark.parametrize("dirichlet", [False, True])
def test_multigrid_kernel_matches_reference_bit_for_bit(shape, dirichlet):
    tissue, source, c0 = lattice(shape, seed=sum(shape))
    ck, cr = c0.copy(), c0.copy()
    out_k = _o2.o2_solve_multigrid(ck, tissue, source, UPTAKE, K, 38.0, dirichlet, 38.0, 1e6, 2, 2, 1e-4, 500,
                                   MultigridWorkspace(shape), 2)
    out_r = reference.o2_solve_multigrid(cr, tissue, source, UPTAKE, K, 38.0, dirichlet, 38.0, 1e6, 2, 2, 1e-4,
                                         500)
    assert out_k == out_r
    np.testing.assert_array_equal(ck.view(np.uint32), cr.view(np.uint32))
