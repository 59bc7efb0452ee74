"""Blood flow on the vessel network (ext/_flow.pyx, tumorca.reference.flow, tumorca.flow): against a sparse
direct solve, analytic cases, Kirchhoff's law, kernel vs twin bit for bit, threads and node lists, and the
multigrid preconditioner of the junction solve (levels, iteration counts)."""
from __future__ import annotations

import numpy as np
import pytest

from tumorca import _flow, flow, initial
from tumorca._constants import MOORE
from tumorca.params import Params
from tumorca.reference import flow as ref
from tumorca.rules import FlowRules

sp = pytest.importorskip("scipy.sparse")
spl = pytest.importorskip("scipy.sparse.linalg")
csgraph = pytest.importorskip("scipy.sparse.csgraph")

PA, PV = 35.0, 15.0
RULES = FlowRules(p_arterial=PA, p_venous=PV, tol=1e-12, max_iter=100000, threshold=1e-4)


def graph(vessel):
    """Nodes, Laplacian and edge list of the Moore graph of ``vessel`` built independently of the solver."""
    nz, ny, nx = vessel.shape
    nodes = np.flatnonzero(vessel.ravel())
    pos = {int(v): i for i, v in enumerate(nodes)}
    rows, cols, vals = [], [], []
    for i, v in enumerate(nodes):
        z, y, x = v // (ny * nx), (v // nx) % ny, v % nx
        for dz, dy, dx in MOORE:
            zz, yy, xx = z + dz, y + dy, x + dx
            if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                j = pos.get(int((zz * ny + yy) * nx + xx))
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(1.0 / np.sqrt(abs(dz) + abs(dy) + abs(dx)))
    n = nodes.shape[0]
    W = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
    return nodes, W


def direct(vessel, inlet):
    """Pressures by scipy's spsolve on the active components; mask of the active nodes; W."""
    nodes, W = graph(vessel)
    n = nodes.shape[0]
    code = inlet.ravel()[nodes]
    ncomp, lab = csgraph.connected_components(W, directed=False)
    act = np.zeros(n, dtype=bool)
    for c in range(ncomp):
        m = lab == c
        act[m] = (code[m] == 1).any() and (code[m] == 2).any()
    L = sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W
    fixed = code != 0
    free = act & ~fixed
    p = np.where(code == 1, PA, np.where(code == 2, PV, 0.0))
    if free.any():
        Lf = L.tocsr()[free]
        p[free] = spl.spsolve(Lf[:, free].tocsc(), -(Lf[:, fixed] @ p[fixed]))
    return nodes, p, act, W


def random_network(rng, shape, density, n_inlets=4):
    vessel = (rng.random(shape) < density).astype(np.uint8)
    inlet = np.zeros(shape, dtype=np.uint8)
    sites = np.flatnonzero(vessel.ravel())
    pick = rng.choice(sites, min(sites.size, 2 * n_inlets), replace=False)
    inlet.ravel()[pick[:n_inlets]] = 1
    inlet.ravel()[pick[n_inlets:]] = 2
    return vessel, inlet


SHAPES = [(1, 23, 31), (1, 40, 17), (5, 9, 13), (3, 17, 7), (7, 6, 11)]


@pytest.mark.parametrize("seed", range(10))
def test_matches_sparse_direct_solve_and_kirchhoff(seed):
    rng = np.random.default_rng(seed)
    shape = SHAPES[seed % len(SHAPES)]
    vessel, inlet = random_network(rng, shape, rng.uniform(0.3, 0.55) if shape[0] == 1 else rng.uniform(0.15, 0.3))
    P, Q, info = flow.solve(vessel, inlet, RULES)
    assert info["converged"]
    nodes, p, act, W = direct(vessel, inlet)
    assert act.any()
    got = P.ravel()[nodes]
    assert np.abs(got[act] - p[act]).max() <= 1e-8 * (PA - PV)
    # Kirchhoff: the net flow out of every non-inlet active node vanishes; flows of the reference solution agree
    code = inlet.ravel()[nodes]
    net = np.asarray(W.multiply(got[:, None] - got[None, :]).sum(axis=1)).ravel()
    assert np.abs(net[act & (code == 0)]).max() <= 1e-8 * (PA - PV)
    absflow = 0.5 * np.asarray(abs(W.multiply(p[:, None] - p[None, :])).sum(axis=1)).ravel()
    q = Q.ravel()[nodes]
    inner = act & (code == 0)
    assert np.abs(q[inner] - absflow[inner]).max() <= 1e-7 * (PA - PV)
    assert np.all(q[~act] == 0.0)


@pytest.mark.parametrize("length", [2, 7, 30])
@pytest.mark.parametrize("axis", [0, 1, 2, "diag"])
def test_straight_vessel_linear_pressure_uniform_flow(length, axis):
    shape = [1, 5, 5] if axis != 0 else [5, 1, 5]
    idx = []
    for t in range(length):
        c = [0, 2, 2] if axis != 0 else [2, 0, 2]
        if axis == "diag":
            shape = [length, length, 3]
            c = [t, t, 1]
        else:
            shape[axis] = length
            c[axis] = t
        idx.append(tuple(c))
    vessel = np.zeros(shape, dtype=np.uint8)
    inlet = np.zeros(shape, dtype=np.uint8)
    for c in idx:
        vessel[c] = 1
    inlet[idx[0]] = 1
    inlet[idx[-1]] = 2
    P, Q, info = flow.solve(vessel, inlet, RULES)
    h = np.sqrt(2.0) if axis == "diag" else 1.0
    L = (length - 1) * h  # total length; g = 1/L
    expect_p = PA - (PA - PV) * np.arange(length) / (length - 1)
    got = np.array([P[c] for c in idx])
    assert np.abs(got - expect_p).max() <= 1e-10
    q = np.array([Q[c] for c in idx])
    assert np.abs(q - (PA - PV) / L).max() <= 1e-10


def _draw(shape, paths):
    vessel = np.zeros(shape, dtype=np.uint8)
    for path in paths:
        for c in path:
            vessel[c] = 1
    return vessel


def test_parallel_vessels_split_flow_by_resistance():
    # two vessels from an arterial node A to a venous node V: a straight one of 10 edges and a detour of
    # 4 + 10 + 4 = 18 edges (no Moore contacts between them except at A and V)
    shape = (1, 12, 16)
    A, V = (0, 6, 2), (0, 6, 12)
    straight = [(0, 6, x) for x in range(2, 13)]
    up = [(0, 6 - t, 2) for t in range(1, 5)] + [(0, 2, x) for x in range(3, 12)] + [(0, 2 + t, 12) for t in
                                                                                      range(0, 4)]
    vessel = _draw(shape, [straight, up])
    inlet = np.zeros(shape, dtype=np.uint8)
    inlet[A] = 1
    inlet[V] = 2
    # the detour touches the straight one near A and V (Moore); compare with the direct solve instead of a formula
    P, Q, info = flow.solve(vessel, inlet, RULES)
    nodes, p, act, W = direct(vessel, inlet)
    assert np.abs(P.ravel()[nodes] - p).max() <= 1e-9
    # far from the ends, each vessel is a chain: flow ratio = inverse ratio of their resistances between the
    # junction clusters at A and V; check it through the pressure drop along each chain
    q_straight = Q[0, 6, 7]
    q_detour = Q[0, 2, 7]
    drop_s = P[0, 6, 4] - P[0, 6, 10]  # 6 unit edges
    drop_d = P[0, 2, 4] - P[0, 2, 10]
    assert q_straight == pytest.approx(drop_s / 6, rel=1e-9)
    assert q_detour == pytest.approx(drop_d / 6, rel=1e-9)
    assert q_straight > q_detour > 0


def test_two_separated_parallel_vessels_exact_ratio():
    # two parallel paths between an arterial and a venous site, lengths 8 and 16 edges, disjoint except at the
    # inlets: with inlets at both ends, each path is on its own -> flows (PA-PV)/8 and (PA-PV)/16
    shape = (1, 9, 20)
    short = [(0, 1, x) for x in range(2, 11)]
    long_ = [(0, 6, x) for x in range(2, 19)]
    vessel = _draw(shape, [short, long_])
    inlet = np.zeros(shape, dtype=np.uint8)
    inlet[0, 1, 2] = inlet[0, 6, 2] = 1
    inlet[0, 1, 10] = inlet[0, 6, 18] = 2
    P, Q, _ = flow.solve(vessel, inlet, RULES)
    assert Q[0, 1, 5] / Q[0, 6, 5] == pytest.approx(16 / 8, rel=1e-12)
    assert Q[0, 1, 5] == pytest.approx((PA - PV) / 8, rel=1e-12)


def test_blind_sprout_isolated_loop_and_single_kind_component_carry_no_flow():
    shape = (1, 20, 24)
    main = [(0, 3, x) for x in range(1, 23)]
    sprout = [(0, 3 + t, 10 + t) for t in range(1, 8)] + [(0, 11, 17), (0, 12, 17)]
    loop = [(0, 15, 2), (0, 15, 3), (0, 15, 4), (0, 16, 5), (0, 17, 4), (0, 17, 3), (0, 17, 2), (0, 16, 1)]
    single = [(0, 15, x) for x in range(12, 22)]
    vessel = _draw(shape, [main, sprout, loop, single])
    inlet = np.zeros(shape, dtype=np.uint8)
    inlet[0, 3, 1] = 1
    inlet[0, 3, 22] = 2
    inlet[0, 15, 12] = 1
    inlet[0, 15, 21] = 1
    P, Q, info = flow.solve(vessel, inlet, RULES)
    for c in sprout[1:]:
        assert Q[c] == 0.0
        assert P[c] == P[sprout[0]] or Q[c] == 0.0
    for c in loop:
        assert Q[c] == 0.0
    for c in single:
        assert Q[c] == 0.0 and P[c] == PA
    for c in main:
        assert Q[c] > 0.0


def test_hanging_triangle_loop_exactly_zero():
    # a loop of degree-2 nodes returning to one junction carries exactly no flow
    shape = (1, 8, 12)
    main = [(0, 5, x) for x in range(0, 12)]
    ring = [(0, 4, 5), (0, 3, 4), (0, 2, 5), (0, 3, 6)]  # hangs from the stub (0, 4, 5)
    vessel = _draw(shape, [main, ring])
    inlet = np.zeros(shape, dtype=np.uint8)
    inlet[0, 5, 0] = 1
    inlet[0, 5, 11] = 2
    P, Q, _ = flow.solve(vessel, inlet, RULES)
    for c in ring[1:]:
        assert Q[c] == 0.0 and P[c] == P[ring[0]]
    assert Q[ring[0]] > 0.0  # the stub touches three sites of the vessel: a (short) bypass


@pytest.mark.parametrize("seed", range(12))
def test_kernel_twin_bit_identical_and_thread_independent(seed):
    rng = np.random.default_rng(100 + seed)
    shape = SHAPES[seed % len(SHAPES)]
    vessel, inlet = random_network(rng, shape, rng.uniform(0.2, 0.6) if shape[0] == 1 else rng.uniform(0.1, 0.35),
                                   n_inlets=int(rng.integers(1, 6)))
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = inlet.ravel()[nodes]
    rules = FlowRules(PA, PV, 10.0 ** rng.uniform(-12, -6), 100000, 1e-4)
    x0 = None if seed % 2 else PV + (PA - PV) * rng.random(nodes.size)
    a = ref.flow_solve_nodes(nodes, codes, shape, rules, x0)
    b = _flow.flow_solve_nodes(nodes, codes, shape, rules, x0, 1)
    c = _flow.flow_solve_nodes(nodes, codes, shape, rules, x0, 2, 0)
    d = _flow.flow_solve_nodes(nodes, codes, shape, rules, x0, 3, 0)
    for u, v, w, y in zip(a[:2], b[:2], c[:2], d[:2]):
        assert u.tobytes() == v.tobytes() == w.tobytes() == y.tobytes()
    assert a[2] == b[2] == c[2] == d[2]
    for u, v in zip(ref.adjacency(nodes, shape), _flow.adjacency(nodes, shape, 2)):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("shape, density", [((1, 90, 100), 0.42), ((12, 30, 30), 0.25)])
def test_kernel_twin_bit_identical_beyond_one_dot_block_and_multigrid_levels(shape, density):
    # more junctions than one block of a dot product (1024): the block order matters; and enough of them for a
    # multigrid hierarchy of several levels (aggregates of up to 4 per level, the coarsest at most 64 unknowns)
    rng = np.random.default_rng(5)
    vessel, inlet = random_network(rng, shape, density, n_inlets=10)
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = inlet.ravel()[nodes]
    rules = FlowRules(PA, PV, 1e-10, 100000, 1e-4)
    a = ref.flow_solve_nodes(nodes, codes, vessel.shape, rules)
    assert a[2]["unknowns"] > 2 * ref.BLOCK and a[2]["iterations"] > 10 and a[2]["levels"] >= 4
    for threads in (1, 2, 3):
        b = _flow.flow_solve_nodes(nodes, codes, vessel.shape, rules, None, threads, 0)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
    _, p, act, _ = direct(vessel, inlet)
    assert np.abs(a[0][act] - p[act]).max() <= 1e-8 * (PA - PV)


def test_multigrid_iterations_on_a_capillary_bed():
    # a capillary bed of 7101 free junctions (capillaries along x joined by oblique cross-links, like the host bed
    # of the benchmark cases), flow_tol 1e-6: Jacobi-preconditioned CG needed 346 iterations here (measured with the
    # former preconditioner; its count grows with the bed's length, ~1000 on 2048^2), the aggregation V-cycle 19,
    # and about as many on 2048^2 (82 621 junctions, 7 levels).  30 leaves room for a changed bed layout but fails
    # if the hierarchy degrades to a few levels or the V-cycle loses its coarse correction.
    P0 = Params(init_vessel_spacing=7, init_bed_crosslink_spacing=9)
    vessel, inlet = initial.capillary_bed((1, 200, 300), P0)
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = inlet.ravel()[nodes]
    rules = FlowRules.from_params(P0)
    a = ref.flow_solve_nodes(nodes, codes, vessel.shape, rules)
    b = _flow.flow_solve_nodes(nodes, codes, vessel.shape, rules, None, 2, 0)
    assert a[0].tobytes() == b[0].tobytes() and a[2] == b[2]
    info = b[2]
    assert info["converged"] and info["unknowns"] > 7000
    assert info["levels"] >= 5 and info["iterations"] <= 30


def test_multigrid_without_coarsening_free_junctions_apart():
    # free junctions that touch only inlets (a comb: rows of alternating arterial and venous inlets, free sites
    # every second column on the row below): no two can be aggregated, coarsening stops at once and the level of
    # 580 unknowns, too big for the dense coarse solve, is smoothed only; its matrix is diagonal, so the V-cycle is
    # a multiple of the inverse and CG converges in one step
    vessel = np.zeros((1, 60, 60), dtype=np.uint8)
    inlet = np.zeros_like(vessel)
    vessel[0, 0::3, :] = 1
    inlet[0, 0::3, 0::2] = 1
    inlet[0, 0::3, 1::2] = 2
    vessel[0, 1::3, 0::2] = 1
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = inlet.ravel()[nodes]
    rules = FlowRules(PA, PV, 1e-10, 100, 1e-4)
    a = ref.flow_solve_nodes(nodes, codes, vessel.shape, rules)
    assert a[2]["unknowns"] > ref.AMG_DENSE and a[2]["levels"] == 1 and a[2]["iterations"] == 1
    for threads in (1, 3):
        b = _flow.flow_solve_nodes(nodes, codes, vessel.shape, rules, None, threads, 0)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
    _, p, act, _ = direct(vessel, inlet)
    assert np.abs(a[0][act] - p[act]).max() <= 1e-8 * (PA - PV)


def test_iteration_cap_is_honoured_and_warns():
    rng = np.random.default_rng(7)
    vessel, inlet = random_network(rng, (1, 40, 40), 0.5)
    rules = FlowRules(PA, PV, 1e-14, 3, 1e-4)
    with pytest.warns(RuntimeWarning, match="flow_max_iter"):
        _, _, info = flow.solve(vessel, inlet, rules)
    assert info["iterations"] == 3 and not info["converged"]
    a = ref.flow_solve(vessel, inlet, rules)
    b = _flow.flow_solve_nodes(np.flatnonzero(vessel.ravel()).astype(np.int64),
                               inlet.ravel()[np.flatnonzero(vessel.ravel())], vessel.shape, rules, None, 1)
    assert a[0].ravel()[np.flatnonzero(vessel.ravel())].tobytes() == b[0].tobytes()


def test_gathered_blocks_give_the_serial_bits():
    # ranks own blocks; each lists its vessel sites by global index; the gathered, sorted list solved on one rank
    # equals the whole-array solve
    P0 = Params(init_vessel_spacing=6, init_bed_crosslink_spacing=5)
    shape = (4, 18, 25)
    vessel, inlet = initial.capillary_bed(shape, P0)
    Pw, Qw, _ = flow.solve(vessel, inlet, RULES, threads=2)
    nz, ny, nx = shape
    parts = []
    for zs in (slice(0, 2), slice(2, 4)):
        for ys in (slice(0, 7), slice(7, 18)):
            for xs in (slice(0, 11), slice(11, 25)):
                v, i = initial.capillary_bed(shape, P0, (zs, ys, xs))
                z, y, x = np.nonzero(v)
                g = ((z + zs.start) * ny + (y + ys.start)) * nx + (x + xs.start)
                parts.append((g, i[v]))
    g = np.concatenate([p[0] for p in parts])
    codes = np.concatenate([p[1] for p in parts])
    order = np.argsort(g)
    p, q, _ = flow.solve_nodes(g[order], codes[order], shape, RULES, None, 1)
    nodes = np.flatnonzero(vessel.ravel())
    assert np.array_equal(g[order], nodes)
    assert p.tobytes() == Pw.ravel()[nodes].tobytes()
    assert q.tobytes() == Qw.ravel()[nodes].tobytes()


@pytest.mark.parametrize("shape", [(1, 60, 90), (12, 14, 30)])
def test_capillary_bed_region_and_flow_everywhere(shape):
    P0 = Params(init_vessel_spacing=7, init_bed_crosslink_spacing=9)
    vessel, inlet = initial.capillary_bed(shape, P0)
    region = (slice(0, shape[0]), slice(3, shape[1] - 5), slice(10, shape[2] - 4))
    v2, i2 = initial.capillary_bed(shape, P0, region)
    assert np.array_equal(v2, vessel[region]) and np.array_equal(i2, inlet[region])
    assert set(np.unique(inlet[vessel])) == {0, 1, 2}
    rules = FlowRules.from_params(P0)
    P, Q, info = flow.solve(vessel, inlet, rules)
    assert info["converged"]
    assert flow.perfused_mask(Q, rules)[vessel].all()
    assert Q[vessel].min() > 0.0


def test_empty_and_degenerate_inputs():
    empty = np.zeros((1, 4, 4), dtype=np.uint8)
    P, Q, info = flow.solve(empty, empty, RULES)
    assert not P.any() and not Q.any() and info["iterations"] == 0
    with pytest.raises(ValueError):
        _flow.flow_solve_nodes(np.array([3, 2], dtype=np.int64), np.zeros(2, np.uint8), (1, 4, 4), RULES, None, 1)
    with pytest.raises(ValueError):
        _flow.flow_solve_nodes(np.array([2, 99], dtype=np.int64), np.zeros(2, np.uint8), (1, 4, 4), RULES, None, 1)
    # equal inlet pressures: no flow anywhere
    vessel = np.zeros((1, 3, 6), dtype=np.uint8)
    vessel[0, 1, :] = 1
    inlet = np.zeros_like(vessel)
    inlet[0, 1, 0], inlet[0, 1, 5] = 1, 2
    P, Q, _ = flow.solve(vessel, inlet, FlowRules(20.0, 20.0, 1e-9, 10, 0.0))
    assert not Q.any() and np.all(P[vessel != 0] == 20.0)


def test_adjacency_arrays_are_compact_and_more_nodes_than_int32_holds_are_refused(monkeypatch):
    # the solve's peak memory is its per-node and per-edge arrays: positions int32, length classes one byte
    vessel = np.zeros((1, 5, 7), dtype=np.uint8)
    vessel[0, 2, :] = 1
    vessel[0, 1:4, 3] = 1
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    ptr, nbr, lcls = _flow.adjacency(nodes, vessel.shape)
    assert (ptr.dtype, nbr.dtype, lcls.dtype) == (np.int64, np.int32, np.uint8)
    # a network of more nodes than int32 positions can address is refused with a one-line error naming the limit
    monkeypatch.setattr(_flow, "MAX_NODES", nodes.size - 1)
    with pytest.raises(ValueError, match=f"at most {nodes.size - 1} vessel nodes on one rank, got {nodes.size}"):
        _flow.flow_solve_nodes(nodes, np.zeros(nodes.size, np.uint8), vessel.shape, RULES, None, 1)
