"""Blood flow on the vessel network in NumPy: the twin of ``ext/_flow.pyx`` (same function names and arguments).

The network is the graph of vessel sites under Moore adjacency, edge conductance ``1/length`` (length 1, sqrt 2 or
sqrt 3 sites: uniform radius).  Inlet nodes hold ``p_arterial`` (code 1) or ``p_venous`` (code 2); Kirchhoff's law
holds at every other node.  The solve, step by step (docs/model.md, "Blood flow"):

1. adjacency: the neighbours of each node in Moore order (ascending global index);
2. components: a component carries flow only if it holds both an arterial and a venous inlet ("active"); in a
   component with inlets of one kind every node sits at that inlet pressure, in one with none at 0.0;
3. dead ends: non-inlet nodes of an active component are peeled while they have at most one unpeeled neighbour
   (a unique set); a peeled tree takes the pressure of the node it hangs from, so it carries exactly no flow;
4. chains: what remains (the core) splits into *junctions* (inlets, and nodes with a core degree other than 2)
   and chains of degree-2 nodes between two junctions; a chain becomes one series conductance ``1/R`` (``R`` the
   sum of its edge lengths, added from the end with the smaller node index);
5. conjugate gradients on the free junction unknowns, preconditioned by one V-cycle of aggregation-based
   algebraic multigrid (:func:`amg_setup`, :func:`amg_apply`: pairwise aggregation after Notay 2010, damped Jacobi
   smoothing, scaled coarse correction, dense LDL^T on the coarsest level), dot products summed in blocks of
   :data:`BLOCK` entries (each block from 0.0 in order, then the block sums in order), so that the order of every
   floating-point operation is fixed; stop when the largest Kirchhoff imbalance (recomputed from the iterate, not
   the recursive residual) is at most ``tol*|p_arterial - p_venous|``, or after ``max_iter`` iterations;
6. chain nodes: ``p = p_a + (p_b - p_a)*(s/R)`` with ``s`` the cumulative length from ``a``;
7. flow through a node: ``q_i = 0.5*sum_j g_ij |p_i - p_j|``; at an inlet the net inflow ``|sum_j g_ij (p_i - p_j)|``.

Graph traversals (chains, peeling order) and the multigrid setup (pairing, coarse operators) are Python loops over
nodes here; the arithmetic is evaluated in the kernel's order, so pressures and flows agree bit for bit.  Meant for
small networks.
"""
from __future__ import annotations

import numpy as np

from .._constants import MOORE

#: Entries per partial sum of a dot product (kernel and twin).
BLOCK = 1024

_LEN = (0.0, 1.0, float(np.sqrt(2.0)), float(np.sqrt(3.0)))
_G = (0.0, 1.0 / _LEN[1], 1.0 / _LEN[2], 1.0 / _LEN[3])


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum of a*b: blocks of BLOCK entries, each summed from 0.0 in order, then the block sums from 0.0 in order."""
    n = a.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    prod = np.zeros(nb * BLOCK)
    prod[:n] = a * b
    part = np.cumsum(np.concatenate([np.zeros((nb, 1)), prod.reshape(nb, BLOCK)], axis=1), axis=1)[:, -1]
    return float(np.cumsum(np.concatenate([[0.0], part]))[-1])


def adjacency(nodes: np.ndarray, gshape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR adjacency of the sorted global flat indices ``nodes``: (ptr, nbr, lcls) with ``nbr`` node positions in
    Moore order and ``lcls`` the length class (1, 2, 3: number of non-zero offsets) of each edge."""
    nz, ny, nx = gshape
    n = nodes.shape[0]
    z, y, x = nodes // (nx * ny), (nodes // nx) % ny, nodes % nx
    cols = np.full((n, 26), -1, dtype=np.int64)
    for d, (dz, dy, dx) in enumerate(MOORE):
        zz, yy, xx = z + dz, y + dy, x + dx
        ok = (zz >= 0) & (zz < nz) & (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        t = (zz * ny + yy) * nx + xx
        k = np.searchsorted(nodes, t)
        kk = np.minimum(k, max(n - 1, 0))
        hit = ok & (k < n) & (nodes[kk] == t) if n else ok
        cols[:, d] = np.where(hit, kk, -1)
    cls = np.array([abs(a) + abs(b) + abs(c) for a, b, c in MOORE], dtype=np.int64)
    has = cols >= 0
    ptr = np.concatenate([[0], np.cumsum(has.sum(axis=1))]).astype(np.int64)
    return ptr, cols[has], np.broadcast_to(cls, cols.shape)[has]


# --- step 5: the aggregation multigrid preconditioner ---------------------------------------------------------
#
# Why this design (numbers: iterations to flow_tol = 1e-6 on the 2048^2 wild-type bed, 82 621 free junctions,
# where Jacobi-preconditioned CG needs 998; prototypes measured with the same stopping rule):
#
# * Unsmoothed aggregation by pairwise matching, two passes per level (the second on the Galerkin operator of the
#   first, so aggregates hold up to 4 junctions): Y. Notay, "An aggregation-based algebraic multigrid method",
#   ETNA 37 (2010) 123-146 (aggregation itself: Vanek, Mandel & Brezina, Computing 56 (1996) 179-196).  Piecewise
#   constant P keeps every level a weakly diagonally dominant M-matrix A = D - W (the Galerkin P^T A P: coarse
#   conductances are summed conductances, the coarse diagonal the members' diagonals less their internal
#   conductances), and it is built from sums alone, so its bits are easy to fix.  Smoothed aggregation would need
#   sparse triple products and denser coarse levels.
# * Notay's strong-coupling test (pair only with j where w_ij >= 0.25 max_k w_ik) matters here: a junction's
#   conductances span 1/45 .. 1 (long chains against direct contacts); pairing with the strongest neighbour without
#   it takes weakly coupled pairs when the strong partner is taken: 86 iterations instead of 19 (two-grid with
#   Gauss-Seidel smoothing and an exact coarse solve: 35 against 5).  Inlets are Dirichlet rows: left out of the
#   aggregates (their conductances are in the diagonal).
# * Smoother: AMG_SWEEPS = 2 damped Jacobi sweeps (omega = 2/3) before the coarse correction and 2 after.  Jacobi is
#   its own A-adjoint, so the V-cycle is a symmetric positive definite operator and plain CG (the stopping and
#   restart rules above unchanged) stays valid; it is row-wise (parallel in the kernel, thread-independent bits,
#   vectorised here).  Gershgorin: omega*lambda_max(D^-1 A) <= 4/3 < 2 on every level, so it contracts in the A-norm
#   and the V-cycle is SPD for any coarse correction in between.  Forward/backward Gauss-Seidel (sequential) gave
#   21 iterations, one Jacobi sweep each way 26.
# * The coarse correction is scaled by AMG_SCALE = 1.5 (over-correction for piecewise-constant interpolation, which
#   underestimates smooth errors: D. Braess, "Towards algebraic multigrid for elliptic problems of second order",
#   Computing 55 (1995) 379-393; the O2 solver's MGCG_COARSE_SCALE = 0.5 on its coarse operators is a factor 2 on
#   its coarse corrections): 1.0 gives 29 iterations, 1.25 24, 1.5 19, 1.75 20, 2.0 23.  A K-cycle (Notay & Vassilevski 2008) was not tried: it makes the preconditioner
#   nonlinear, which plain CG does not allow.
# * Coarsest level (<= AMG_COARSE unknowns) by a dense LDL^T factor, exact; coarsening also stops when a level would
#   keep more than 2/3 of its unknowns (free junctions that touch only inlets cannot be paired): up to AMG_DENSE
#   unknowns they are still factored, beyond that smoothed by 2*AMG_SWEEPS sweeps.
#
# Result on 2048^2: 7 levels (82 621, 31 059, 10 353, 2 601, 651, 163, 41 unknowns), 19 iterations; the solve
# takes a fifth of its former time.

#: Strong coupling for pairing: ``w_ij >= AMG_BETA * max_k w_ik`` over the row's off-diagonal conductances.
AMG_BETA = 0.25
#: Damped Jacobi smoother: weight, and sweeps before and after the coarse correction.
AMG_OMEGA = 2.0 / 3.0
AMG_SWEEPS = 2
#: Factor on the coarse correction (unsmoothed aggregation underestimates the smooth error components).
AMG_SCALE = 1.5
#: Coarsen while a level has more unknowns than this (and a coarse level has at most 2/3 of them).
AMG_COARSE = 64
#: The coarsest level is solved exactly (dense LDL^T) up to this many unknowns, else by 2*AMG_SWEEPS sweeps.
AMG_DENSE = 256


def _ell(ptr, col, val, n):
    """ELL layout (slot k of row a) of a CSR matrix, so that a vectorised row sum adds its entries in CSR order."""
    deg = np.diff(ptr)
    width = int(deg.max()) if n else 0
    rows = np.repeat(np.arange(n), deg)
    slot = np.arange(col.shape[0]) - ptr[rows]
    ecol = np.zeros((n, width), dtype=np.int64)
    ev = np.zeros((n, width))
    has = np.zeros((n, width), dtype=bool)
    ecol[rows, slot] = col
    ev[rows, slot] = val
    has[rows, slot] = True
    return ecol, ev, has


def _rowsum(ell, v):
    """sum_k val_k v[col_k] of each row, from 0.0 in CSR order."""
    ecol, ev, has = ell
    s = np.zeros(ecol.shape[0])
    for k in range(ecol.shape[1]):
        s = np.where(has[:, k], s + ev[:, k] * v[ecol[:, k]], s)
    return s


def _pair(ptr, col, val, act):
    """Greedy pairwise matching in row order: an unmatched row joins its strongest unmatched neighbour j
    (largest conductance among those with ``w >= AMG_BETA * max_k w_ik``, ties to the smaller j) or stays alone.
    Rows with ``act`` False (inlets) are left out (-1).  Returns (aggregate of each row, number of aggregates)."""
    ptr, col, val = ptr.tolist(), col.tolist(), val.tolist()
    agg = [-2 if a else -1 for a in act.tolist()]
    nc = 0
    for i in range(len(agg)):
        if agg[i] != -2:
            continue
        mx = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            if col[k] != i and agg[col[k]] != -1 and val[k] > mx:
                mx = val[k]
        lim = AMG_BETA * mx
        best, bw = -1, 0.0
        for k in range(ptr[i], ptr[i + 1]):
            j, w = col[k], val[k]
            if j == i or agg[j] != -2 or w < lim:
                continue
            if best < 0 or w > bw or (w == bw and j < best):
                best, bw = j, w
        agg[i] = nc
        if best >= 0:
            agg[best] = nc
        nc += 1
    return np.array(agg, dtype=np.int64), nc


def _members(agg, nc):
    """CSR of the rows of each aggregate, ascending."""
    keep = np.flatnonzero(agg >= 0)
    mem = keep[np.argsort(agg[keep], kind="stable")]
    mptr = np.concatenate([[0], np.cumsum(np.bincount(agg[keep], minlength=nc))]).astype(np.int64)
    return mptr, mem


def _galerkin(ptr, col, val, diag, agg, nc):
    """A_c = P^T A P for the piecewise-constant P of ``agg``, with A = diag - W: a coarse conductance is the sum of
    the conductances between two aggregates (in member order, then CSR order; columns ascending), a coarse diagonal
    the members' diagonals less their internal conductances (both directions), in the same order."""
    mptr, mem = _members(agg, nc)
    ptr, col, val, diag, agg = ptr.tolist(), col.tolist(), val.tolist(), diag.tolist(), agg.tolist()
    cptr, ccol, cval, cdiag = [0], [], [], []
    for c in range(nc):
        dc = 0.0
        acc = {}
        for i in mem[mptr[c]:mptr[c + 1]].tolist():
            dc = dc + diag[i]
            for k in range(ptr[i], ptr[i + 1]):
                J = agg[col[k]]
                if J < 0:
                    continue
                if J == c:
                    dc = dc - val[k]
                elif J in acc:
                    acc[J] = acc[J] + val[k]
                else:
                    acc[J] = val[k]
        for J in sorted(acc):
            ccol.append(J)
            cval.append(acc[J])
        cptr.append(len(ccol))
        cdiag.append(dc)
    return (np.array(cptr, dtype=np.int64), np.array(ccol, dtype=np.int64), np.array(cval, dtype=np.float64),
            np.array(cdiag, dtype=np.float64))


def amg_setup(jptr, jcol, jval, diag, free):
    """The levels of the aggregation multigrid for the junction system (CSR ``jptr, jcol, jval``, ``diag``; rows
    with ``free`` False are inlets, left out).  Each coarsening is two passes of :func:`_pair` (the second on the
    Galerkin operator of the first: aggregates of up to four), while a level has more than AMG_COARSE unknowns and
    the coarse level has at most 2/3 as many.  Returns a list of dicts (one per level)."""
    levels = []
    ptr, col, val, dg = jptr, jcol, jval, diag
    act = np.asarray(free, dtype=bool)
    while True:
        n = dg.shape[0]
        lev = {"n": n, "ptr": ptr, "col": col, "val": val, "diag": dg, "act": act, "agg": None}
        levels.append(lev)
        nact = int(act.sum())
        if nact <= AMG_COARSE:
            break
        agg1, n1 = _pair(ptr, col, val, act)
        p1, c1, v1, d1 = _galerkin(ptr, col, val, dg, agg1, n1)
        agg2, n2 = _pair(p1, c1, v1, np.ones(n1, dtype=bool))
        if 2 * nact < 3 * n2:
            break  # stopped shrinking
        p2, c2, v2, d2 = _galerkin(p1, c1, v1, d1, agg2, n2)
        lev["agg"] = np.where(agg1 >= 0, agg2[np.maximum(agg1, 0)], -1)
        lev["members"] = _members(lev["agg"], n2)
        ptr, col, val, dg, act = p2, c2, v2, d2, np.ones(n2, dtype=bool)
    for lev in levels:
        lev["ell"] = _ell(lev["ptr"], lev["col"], lev["val"], lev["n"])
        lev["wd"] = np.where(lev["act"] & (lev["diag"] > 0.0), AMG_OMEGA / np.where(lev["diag"] > 0.0, lev["diag"],
                                                                                    1.0), 0.0)
    last = levels[-1]
    idx = np.flatnonzero(last["act"])
    last["dense"] = None
    if idx.shape[0] <= AMG_DENSE:
        nd = idx.shape[0]
        pos = np.full(last["n"], -1, dtype=np.int64)
        pos[idx] = np.arange(nd)
        a = np.zeros((nd, nd))
        for r, i in enumerate(idx.tolist()):
            a[r, r] = last["diag"][i]
            for k in range(int(last["ptr"][i]), int(last["ptr"][i + 1])):
                c = int(pos[last["col"][k]])
                if c >= 0:
                    a[r, c] = a[r, c] - last["val"][k]
        # LDL^T, right-looking: column k scaled by 1/d_k, then a_ij - l_ik a_jk for i >= j > k (lower triangle)
        dinv = np.zeros(nd)
        for k in range(nd):
            dk = a[k, k]
            cc = a[k + 1:, k].copy()
            lk = cc / dk if dk > 0.0 else np.zeros_like(cc)
            dinv[k] = 1.0 / dk if dk > 0.0 else 0.0
            a[k + 1:, k] = lk
            a[k + 1:, k + 1:] = a[k + 1:, k + 1:] - np.outer(lk, cc)
        last["dense"] = (idx, a, dinv)
    return levels


def _smooth(lev, b, x, sweeps):
    """Damped Jacobi sweeps x + wd*(b - A x) (wd = AMG_OMEGA/diag), the first from x = 0 when ``x`` is None."""
    act, wd, dg = lev["act"], lev["wd"], lev["diag"]
    if x is None:
        x = np.where(act, wd * b, 0.0)
        sweeps -= 1
    for _ in range(sweeps):
        x = np.where(act, x + wd * (b + _rowsum(lev["ell"], x) - dg * x), 0.0)
    return x


def amg_apply(levels, r):
    """One symmetric V-cycle from zero on ``r`` (0 at inlets): AMG_SWEEPS Jacobi sweeps, restriction of the
    residual (aggregate sums, members ascending), the coarse level, prolongation of AMG_SCALE times its solution,
    AMG_SWEEPS sweeps; the coarsest level exactly (dense LDL^T) or by 2*AMG_SWEEPS sweeps."""
    nl = len(levels)
    bs, xs = [r], [None] * nl
    for lvl in range(nl - 1):
        lev, b = levels[lvl], bs[lvl]
        x = _smooth(lev, b, None, AMG_SWEEPS)
        t = np.where(lev["act"], b + _rowsum(lev["ell"], x) - lev["diag"] * x, 0.0)
        mptr, mem = lev["members"]
        nc = mptr.shape[0] - 1
        bc = np.zeros(nc)
        cnt = np.diff(mptr)
        for k in range(int(cnt.max()) if nc else 0):
            has = cnt > k
            bc = np.where(has, bc + t[mem[np.minimum(mptr[:-1] + k, mem.shape[0] - 1)]], bc)
        xs[lvl] = x
        bs.append(bc)
    last, b = levels[-1], bs[-1]
    if last["dense"] is not None:
        idx, a, dinv = last["dense"]
        y = b[idx].copy()
        nd = idx.shape[0]
        for k in range(nd):
            y[k + 1:] = y[k + 1:] - a[k + 1:, k] * y[k]
        y = y * dinv
        for k in range(nd - 1, 0, -1):
            y[:k] = y[:k] - a[k, :k] * y[k]
        x = np.zeros(last["n"])
        x[idx] = y
        xs[-1] = x
    else:
        xs[-1] = _smooth(last, b, None, 2 * AMG_SWEEPS)
    for lvl in range(nl - 2, -1, -1):
        lev = levels[lvl]
        agg = lev["agg"]
        x = np.where(agg >= 0, xs[lvl] + AMG_SCALE * xs[lvl + 1][np.maximum(agg, 0)], xs[lvl])
        xs[lvl] = _smooth(lev, bs[lvl], x, AMG_SWEEPS)
    return xs[0]


def _components(ptr, nbr, n):
    """Component label of each node: the smallest node position in it (min-label propagation)."""
    lab = np.arange(n, dtype=np.int64)
    src = np.repeat(np.arange(n), np.diff(ptr))
    while True:
        new = lab.copy()
        np.minimum.at(new, src, lab[nbr])
        new = new[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


def flow_solve_nodes(nodes, inlet, gshape, rules, x0=None, num_threads=1, parallel_min=0):
    """Pressure and flow of the vessel network whose nodes are the sorted global flat indices ``nodes`` (int64) of
    a lattice of shape ``gshape`` with inlet codes ``inlet`` (uint8 per node: 0 none, 1 arterial, 2 venous).

    ``rules`` is a tumorca.rules.FlowRules (p_arterial, p_venous, tol, max_iter); ``x0`` (float64 per node, or
    None) starts the iteration (a non-finite entry, or None, starts at the mean of the two inlet pressures).
    Returns (pressure, flow, info): float64 per node and a dict (iterations, imbalance: the largest Kirchhoff
    imbalance of the junction system, unknowns: free junctions, converged, levels: levels of the multigrid
    preconditioner, 0 without free junctions).  ``num_threads`` and ``parallel_min`` are ignored."""
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    inlet = np.ascontiguousarray(inlet, dtype=np.uint8)
    n = nodes.shape[0]
    if inlet.shape != (n,):
        raise ValueError("inlet must hold one code per node")
    if n > 1 and not np.all(nodes[1:] > nodes[:-1]):
        raise ValueError("nodes must be sorted and unique")
    nz, ny, nx = (int(v) for v in gshape)
    if n and (nodes[0] < 0 or nodes[-1] >= nz * ny * nx):
        raise ValueError("nodes must lie inside the lattice")
    pa, pv = float(rules.p_arterial), float(rules.p_venous)
    pressure = np.zeros(n)
    flow = np.zeros(n)
    info = {"iterations": 0, "imbalance": 0.0, "unknowns": 0, "converged": True, "levels": 0}
    if n == 0:
        return pressure, flow, info
    ptr, nbr, lcls = adjacency(nodes, (nz, ny, nx))
    G = np.array(_G)[lcls]
    L = np.array(_LEN)[lcls]
    deg = np.diff(ptr)
    src = np.repeat(np.arange(n), deg)

    # 2. components
    lab = _components(ptr, nbr, n)
    art = np.zeros(n, dtype=bool)
    ven = np.zeros(n, dtype=bool)
    art[lab[inlet == 1]] = True
    ven[lab[inlet == 2]] = True
    active = art[lab] & ven[lab]
    pressure = np.where(art[lab], pa, np.where(ven[lab], pv, 0.0))
    if pa == pv or not active.any():
        return pressure, flow, info

    # 3. dead ends: synchronous peeling rounds reach the same (unique) set as the kernel's queue
    core = active.copy()
    while True:
        cdeg = np.zeros(n, dtype=np.int64)
        np.add.at(cdeg, src, core[nbr])
        peel = core & (inlet == 0) & (cdeg <= 1)
        if not peel.any():
            break
        core &= ~peel
    cdeg = np.zeros(n, dtype=np.int64)
    np.add.at(cdeg, src, core[nbr])
    junction = core & ((inlet != 0) | (cdeg != 2))
    chainnode = core & ~junction

    # 4. chains, walked from each junction in node order, neighbours in Moore order; a chain is kept from the
    # end with the smaller position (a loop back to the same junction: from its smaller first chain node)
    chain_of = np.full(n, -1, dtype=np.int64)
    s_of = np.zeros(n)
    ch_a, ch_b, ch_g, ch_r = [], [], [], []
    for a in np.flatnonzero(junction):
        for k in range(ptr[a], ptr[a + 1]):
            b = nbr[k]
            if not chainnode[b] or chain_of[b] >= 0:
                continue
            walk, svals = [], []
            prev, cur, s = a, b, 0.0 + L[k]
            while chainnode[cur]:
                walk.append(cur)
                svals.append(s)
                nxt, lk = -1, 0.0
                for m in range(ptr[cur], ptr[cur + 1]):
                    if core[nbr[m]] and nbr[m] != prev:
                        nxt, lk = nbr[m], L[m]
                        break
                s = s + lk
                prev, cur = cur, nxt
            e = cur
            if e < a or (e == a and walk[-1] < walk[0]):
                continue  # the other end walks this chain
            cid = len(ch_a)
            chain_of[walk] = cid
            s_of[walk] = svals
            ch_a.append(a)
            ch_b.append(e)
            ch_g.append(1.0 / s)
            ch_r.append(s)
    ch_a = np.array(ch_a, dtype=np.int64)
    ch_b = np.array(ch_b, dtype=np.int64)
    ch_g = np.array(ch_g)
    ch_r = np.array(ch_r)

    # junction system: entries of junction a in the order of its neighbours
    jn = np.flatnonzero(junction)
    m = jn.shape[0]
    jidx = np.full(n, -1, dtype=np.int64)
    jidx[jn] = np.arange(m)
    rows, cols, vals = [], [], []
    for a in jn:
        for k in range(ptr[a], ptr[a + 1]):
            b = nbr[k]
            if junction[b]:
                rows.append(jidx[a])
                cols.append(jidx[b])
                vals.append(G[k])
            elif chainnode[b]:
                c = chain_of[b]
                other = ch_b[c] if ch_a[c] == a else ch_a[c]
                if ch_a[c] == ch_b[c]:
                    continue
                rows.append(jidx[a])
                cols.append(jidx[other])
                vals.append(ch_g[c])
    rows = np.array(rows, dtype=np.int64)
    cols = np.array(cols, dtype=np.int64)
    vals = np.array(vals)
    jptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))]).astype(np.int64)
    # rows come in junction order, so (jptr, cols, vals) is CSR; its ELL layout sums each row in CSR order
    ell = _ell(jptr, cols, vals, m)
    ecol, eval_, has = ell
    width = ecol.shape[1]

    jin = inlet[jn]
    free = jin == 0
    diag = np.zeros(m)
    for k in range(width):
        diag = np.where(has[:, k], diag + eval_[:, k], diag)

    def gsum(v):
        return _rowsum(ell, v)

    p = np.where(jin == 1, pa, np.where(jin == 2, pv, 0.5 * (pa + pv)))
    if x0 is not None:
        x0 = np.asarray(x0, dtype=np.float64)
        if x0.shape != (n,):
            raise ValueError("x0 must hold one pressure per node")
        xs = x0[jn]
        p = np.where(free & np.isfinite(xs), xs, p)
    thresh = float(rules.tol) * abs(pa - pv)
    max_iter = int(rules.max_iter)

    def true_residual(p):
        return np.where(free, gsum(p) - diag * p, 0.0)

    levels = amg_setup(jptr, cols, vals, diag, free) if free.any() else []
    r = true_residual(p)
    its = 0
    imb = float(np.abs(r).max())
    converged = imb <= thresh
    restart = True
    rz = 0.0
    d = r
    while not converged and its < max_iter and levels:
        z = amg_apply(levels, r)
        rz_new = dot(r, z)
        if restart:
            d = z
            restart = False
        else:
            d = z + (rz_new / rz) * d
        rz = rz_new
        q = np.where(free, diag * d - gsum(d), 0.0)
        dq = dot(d, q)
        if not dq > 0.0:
            break
        alpha = rz / dq
        p = p + alpha * d
        r = r - alpha * q
        its += 1
        if float(np.abs(r).max()) <= thresh:
            r = true_residual(p)
            imb = float(np.abs(r).max())
            converged = imb <= thresh
            restart = True
    if not converged:
        r = true_residual(p)
        imb = float(np.abs(r).max())
        converged = imb <= thresh
    info.update(iterations=its, imbalance=imb, unknowns=int(free.sum()), converged=bool(converged),
                levels=len(levels))

    # 6. pressures of junctions, chain nodes and peeled trees
    pressure[jn] = p
    cn = np.flatnonzero(chainnode)
    c = chain_of[cn]
    pa_, pb_ = pressure[ch_a[c]], pressure[ch_b[c]]
    pressure[cn] = pa_ + (pb_ - pa_) * (s_of[cn] / ch_r[c])
    done = core.copy()
    while True:
        todo = active & ~done
        if not todo.any():
            break
        cand = np.where(done[nbr], nbr, n)
        first = np.full(n, n, dtype=np.int64)
        np.minimum.at(first, src, cand)  # any assigned neighbour: all of them hold the same pressure
        grow = todo & (first < n)
        pressure[grow] = pressure[first[grow]]
        done |= grow

    # 7. flow through each node
    diff = pressure[src] - pressure[nbr]
    ab = np.zeros(n)
    net = np.zeros(n)
    order = np.arange(nbr.shape[0]) - ptr[src]
    for k in range(int(deg.max()) if n else 0):
        sel = order == k
        i = src[sel]
        ab[i] = ab[i] + G[sel] * np.abs(diff[sel])
        net[i] = net[i] + G[sel] * diff[sel]
    flow = np.where(inlet != 0, np.abs(net), 0.5 * ab)
    flow = np.where(active, flow, 0.0)
    return pressure, flow, info


def flow_solve(vessel, inlet, rules, x0=None, num_threads=1):
    """Whole-array convenience: ``vessel`` and ``inlet`` (uint8, (nz, ny, nx)) to (pressure, flow, info) as
    float64 arrays of the lattice shape (0.0 off the network)."""
    vessel = np.asarray(vessel)
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = np.ascontiguousarray(np.asarray(inlet).ravel()[nodes], dtype=np.uint8)
    xn = None if x0 is None else np.asarray(x0, dtype=np.float64).ravel()[nodes]
    p, q, info = flow_solve_nodes(nodes, codes, vessel.shape, rules, xn, num_threads)
    P = np.zeros(vessel.shape)
    Q = np.zeros(vessel.shape)
    P.ravel()[nodes] = p
    Q.ravel()[nodes] = q
    return P, Q, info
