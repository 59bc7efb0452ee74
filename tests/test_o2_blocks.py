"""The block kernels of the distributed mgcg O2 solve (ext/_o2.pyx, "mgcg by blocks"), each against its NumPy twin
(tumorca.reference.o2_mgcg) on the whole lattice: a block of a lattice, held as a local array with halo layers
and a global origin, must get exactly the values the twin computes there (colours and pairs by global index,
neighbours from the halo).  tests/test_parallel.py then holds whole distributed solves to the serial one."""
import numpy as np
import pytest

from tumorca import _o2
from tumorca._numerics import MGCG_COARSE_SCALE, mgcg_level_arrays
from tumorca.reference import o2_mgcg as twin

from test_o2_solver import K, UPTAKE, lattice

H = 3  # halo layers of the local arrays here (a kernel reads at most two)
#: OpenMP threads: the results must not depend on them (3 on 2 cores too: other static chunks)
THREADS = [1, 3]

CASES = [((1, 37, 29), ((0, 1), (11, 26), (0, 29))),      # 2D, odd start row (colours by global index)
         ((1, 40, 33), ((0, 1), (0, 13), (0, 33))),       # 2D, block on the lattice's low face
         ((13, 17, 11), ((3, 10), (5, 17), (0, 11))),     # 3D, odd z start, block on the high y face
         ((12, 15, 10), ((4, 8), (2, 9), (0, 10)))]       # 3D, even starts


def local_view(gshape, box):
    """The local array region (global slices) of a block with H halo layers where the lattice goes on, its
    origin, and the block inside it (local indices)."""
    lo = [max(0, b[0] - H) for b in box]
    hi = [min(n, b[1] + H) for n, b in zip(gshape, box)]
    region = tuple(slice(a, b) for a, b in zip(lo, hi))
    lbox = tuple((b[0] - o, b[1] - o) for b, o in zip(box, lo))
    return region, tuple(lo), lbox


def inner(box):
    return tuple(slice(a, b) for a, b in box)


def coarse_box(box, cshape):
    """The coarse cells whose first child is in the block (the distributed rule)."""
    return tuple(((a + 1) // 2, (b + 1) // 2) if n > 1 else (0, n) for (a, b), n in zip(box, cshape))


def same(a, b):  # bit for bit
    assert a.shape == b.shape
    assert np.array_equal(np.asarray(a).view(np.uint8), np.asarray(b).view(np.uint8)), \
        f"{np.count_nonzero(a != b)} values differ"


def problem(shape, dirichlet, seed=3):
    tissue, source, c = lattice(shape, seed, vessel_fraction=0.05)
    F = twin.Fine(tissue, source, UPTAKE, K, dirichlet, 38.0)
    Hh = twin.Hierarchy(F, 2)
    return tissue, source, c, F, Hh


def level_dict(L, region, gshape):
    """A block of the twin's level L as the kernels' local arrays (float32)."""
    return {"e": np.zeros(L.shape, dtype=np.float32)[region].copy(),
            "f": np.zeros(L.shape, dtype=np.float32)[region].copy(),
            "m": np.array(L.m32[region]), "b": np.array(L.b32[region]),
            "w": [np.array(L.w32[a][region]) if gshape[a] > 1 else None for a in range(3)]}


@pytest.mark.parametrize("shape,box", CASES)
@pytest.mark.parametrize("dirichlet", [False, True])
@pytest.mark.parametrize("nt", THREADS)
def test_fine_level_block_kernels_match_the_twin(shape, box, dirichlet, nt):
    tissue, source, c, F, _ = problem(shape, dirichlet)
    region, org, lbox = local_view(shape, box)
    t, s = np.array(tissue[region]), np.array(source[region])
    own = inner(box)
    rng = np.random.default_rng(1)

    # start: sources set, x = c, r = b - A x on the block
    cl = np.array(c[region])
    x = np.zeros(cl.shape)
    r = np.zeros(cl.shape, dtype=np.float32)
    _o2.mgcg_blk_start(cl, t, s, UPTAKE, K, 38.0, dirichlet, 38.0, x, r, lbox, org, shape, nt)
    cw = c.copy()
    cw[source != 0] = np.float32(38.0)
    same(cl, cw[region])
    same(x, cw[region].astype(np.float64))
    same(r[inner(lbox)], F.residual_full(cw.astype(np.float64)).astype(np.float32)[own])

    # A p and the row partials of p.q
    p = (rng.random(shape) - 0.5).astype(np.float32)
    q = np.zeros(cl.shape, dtype=np.float32)
    nrows = (box[0][1] - box[0][0]) * (box[1][1] - box[1][0])
    part = np.zeros(nrows)
    _o2.mgcg_blk_apply(np.array(p[region]), t, s, UPTAKE, K, dirichlet, q, part, lbox, org, shape, nt)
    qref = F.apply(p)
    same(q[inner(lbox)], qref[own])
    rows = [twin.dot(p[own][z, y][None, None], qref[own][z, y][None, None])
            for z in range(nrows // (box[1][1] - box[1][0])) for y in range(box[1][1] - box[1][0])]
    same(part, np.array(rows))
    dpart = np.zeros(nrows)
    _o2.mgcg_blk_dot(np.array(p[region]), q, dpart, lbox, nt)
    same(dpart, part)

    # one colour of Gauss-Seidel on z, by global colour, halo read not written
    zg = (rng.random(shape) - 0.5).astype(np.float32)
    rg = (rng.random(shape) - 0.5).astype(np.float32)
    for color in (0, 1):
        zl = np.array(zg[region])
        _o2.mgcg_blk_fine_sweep(zl, np.array(rg[region]), t, s, UPTAKE, K, dirichlet, color, lbox, org,
                                shape, nt)
        zr = zg.copy()
        F.half_sweep(zr, rg, color)
        same(zl[inner(lbox)], zr[own])
        outside = np.ones(zl.shape, dtype=bool)
        outside[inner(lbox)] = False
        same(zl[outside], zg[region][outside])

    # restriction of the residual and level 1's operator, on the coarse cells whose first child is in the block
    shapes = twin.mgcg_shapes(shape)
    cshape = shapes[1]
    cb = coarse_box(box, cshape)
    cregion, corg, clbox = local_view(cshape, cb)
    f1 = np.zeros(tuple(sl.stop - sl.start for sl in cregion), dtype=np.float32)
    _o2.mgcg_blk_fine_restrict(np.array(zg[region]), np.array(rg[region]), t, s, UPTAKE, K,
                               dirichlet, lbox, org, shape, f1, clbox, corg, cshape, nt)
    same(f1[inner(clbox)], twin.coarsen_sum(F.residual(zg, rg)).astype(np.float32)[inner(cb)])
    L1 = twin.Hierarchy(F, 2).levels[1]
    lv = mgcg_level_arrays(f1.shape, cshape)
    _o2.mgcg_blk_build1(t, s, UPTAKE, K, dirichlet, lbox, org, shape, lv, clbox, corg, cshape, MGCG_COARSE_SCALE, nt)
    same(lv["m"][inner(clbox)], L1.m32[inner(cb)])
    same(lv["b"][inner(clbox)], L1.b32[inner(cb)])
    for a in range(3):
        if cshape[a] > 1:
            same(lv["w"][a][inner(clbox)], L1.w32[a][inner(cb)])

    # prolongation of a level-1 correction onto the block's free sites
    e1 = (rng.random(cshape) - 0.5).astype(np.float32)
    zl = np.array(zg[region])
    _o2.mgcg_blk_fine_prolong(zl, np.array(e1[cregion]), s, lbox, org, corg, nt)
    want = np.where(source != 0, zg, (zg.astype(np.float64) + twin.prolong(e1, shape).astype(np.float64)
                                      ).astype(np.float32))
    same(zl[inner(lbox)], want[own])

    # x += alpha p, r -= alpha q, p = z + beta p, c = x: on the block only
    xl, rl, pl = x.copy(), r.copy(), np.array(p[region])
    delta = _o2.mgcg_blk_update(xl, rl, pl, q, 0.37, lbox, nt)
    d = 0.37 * pl.astype(np.float64)
    same(xl[inner(lbox)], (x + d)[inner(lbox)])
    same(rl[inner(lbox)], (r.astype(np.float64) - 0.37 * q.astype(np.float64)).astype(np.float32)[inner(lbox)])
    assert delta == np.abs(d[inner(lbox)]).max()
    _o2.mgcg_blk_next(pl, q, -0.5, lbox, nt)
    same(pl[inner(lbox)], (q.astype(np.float64) - 0.5 * p[region].astype(np.float64)).astype(np.float32)
         [inner(lbox)])
    cl2 = cl.copy()
    _o2.mgcg_blk_finish(cl2, xl, s, lbox, nt)
    same(cl2[inner(lbox)], np.where(s != 0, cl, xl.astype(np.float32))[inner(lbox)])


@pytest.mark.parametrize("shape,box", CASES)
@pytest.mark.parametrize("dirichlet", [False, True])
@pytest.mark.parametrize("nt", THREADS)
def test_coarse_level_block_kernels_match_the_twin(shape, box, dirichlet, nt):
    _, _, _, F, Hh = problem(shape, dirichlet, seed=5)
    shapes = twin.mgcg_shapes(shape)
    if len(shapes) < 3:
        pytest.skip("needs two coarse levels")
    rng = np.random.default_rng(2)
    s1, s2 = shapes[1], shapes[2]
    b1 = coarse_box(box, s1)
    if any(hi - lo < 1 for lo, hi in b1):
        pytest.skip("empty coarse block")
    reg1, org1, lb1 = local_view(s1, b1)
    L1 = Hh.levels[1]
    e = (rng.random(s1) - 0.5).astype(np.float32)
    f = (rng.random(s1) - 0.5).astype(np.float32)

    for color in (0, 1):
        lv = level_dict(L1, reg1, s1)
        lv["e"][...] = e[reg1]
        lv["f"][...] = f[reg1]
        _o2.mgcg_blk_c_sweep(lv, color, lb1, org1, s1, nt)
        er = e.copy()
        L1.half_sweep(er, f, color)
        same(lv["e"][inner(lb1)], er[inner(b1)])

    # restriction of the residual, and level 2's operator, on level 2's cells whose first child is in the block
    b2 = coarse_box(b1, s2)
    reg2, org2, lb2 = local_view(s2, b2)
    shape2 = tuple(sl.stop - sl.start for sl in reg2)
    lv = level_dict(L1, reg1, s1)
    lv["e"][...] = e[reg1]
    lv["f"][...] = f[reg1]
    out = np.zeros(shape2, dtype=np.float32)
    _o2.mgcg_blk_c_restrict(lv, lb1, org1, s1, out, lb2, org2, s2, nt)
    same(out[inner(lb2)], twin.coarsen_sum(L1.residual(e, f)).astype(np.float32)[inner(b2)])
    m2, b2v, w2 = twin.coarsen(L1.m32, L1.b32, L1.w32, MGCG_COARSE_SCALE)
    for src, want, cross, scale, scaled in [(L1.m32, m2, -1, 1.0, False),
                                            (L1.b32, b2v, -1, MGCG_COARSE_SCALE, True)] + [
            (L1.w32[a], w2[a], a, MGCG_COARSE_SCALE, True) for a in range(3) if s2[a] > 1]:
        out = np.zeros(shape2, dtype=np.float32)
        _o2.mgcg_blk_coarsen(np.array(src[reg1]), lb1, org1, s1, out, lb2, org2, s2, cross, scale, scaled,
                             nt)
        same(out[inner(lb2)], want[inner(b2)])

    # prolongation of level 2's correction onto level 1's active cells
    e2 = (rng.random(s2) - 0.5).astype(np.float32)
    lv = level_dict(L1, reg1, s1)
    lv["e"][...] = e[reg1]
    _o2.mgcg_blk_c_prolong(lv, lb1, org1, s1, np.array(e2[reg2]), org2, nt)
    want = np.where(L1.active, (e.astype(np.float64) + twin.prolong(e2, s1).astype(np.float64)).astype(np.float32),
                    e)
    same(lv["e"][inner(lb1)], want[inner(b1)])


@pytest.mark.parametrize("nt", THREADS)
def test_agglomerated_tail_is_the_serial_coarse_cycle(nt):
    """mgcg_tail_build and mgcg_tail_cycle (rank 0's part of a distributed solve) from level 2: the twin's
    levels and V-cycle from there."""
    from tumorca._numerics import MgcgTail
    shape = (1, 45, 38)
    _, _, _, F, Hh = problem(shape, False, seed=7)
    tail = MgcgTail(shape, 2)
    L2 = Hh.levels[2]
    lv = tail.levels[2]
    lv["m"][:] = L2.m32.ravel()
    lv["b"][:] = L2.b32.ravel()
    for a in range(3):
        if lv["w"][a] is not None:
            lv["w"][a][:] = L2.w32[a].ravel()
    _o2.mgcg_tail_build(tail, 2, nt)
    for lvl in range(3, len(tail.shapes)):
        same(tail.levels[lvl]["m"], Hh.levels[lvl].m32.ravel())
        same(tail.levels[lvl]["b"], Hh.levels[lvl].b32.ravel())
    f = (np.random.default_rng(3).random(L2.shape) - 0.5).astype(np.float32)
    lv["f"][:] = f.ravel()
    _o2.mgcg_tail_cycle(tail, 2, 2, nt)
    same(lv["e"], Hh._vcycle(2, f).ravel())
