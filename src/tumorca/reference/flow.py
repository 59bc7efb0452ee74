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
5. Jacobi-preconditioned conjugate gradients on the junction unknowns, dot products summed in blocks of
   :data:`BLOCK` entries (each block from 0.0 in order, then the block sums in order), so that the order of every
   floating-point operation is fixed; stop when the largest Kirchhoff imbalance (recomputed from the iterate, not
   the recursive residual) is at most ``tol*|p_arterial - p_venous|``, or after ``max_iter`` iterations;
6. chain nodes: ``p = p_a + (p_b - p_a)*(s/R)`` with ``s`` the cumulative length from ``a``;
7. flow through a node: ``q_i = 0.5*sum_j g_ij |p_i - p_j|``; at an inlet the net inflow ``|sum_j g_ij (p_i - p_j)|``.

Graph traversals (chains, peeling order) are Python loops over nodes here; the arithmetic is evaluated in the
kernel's order, so pressures and flows agree bit for bit.  Meant for small networks.
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


def flow_solve_nodes(nodes, inlet, gshape, rules, x0=None, num_threads=1):
    """Pressure and flow of the vessel network whose nodes are the sorted global flat indices ``nodes`` (int64) of
    a lattice of shape ``gshape`` with inlet codes ``inlet`` (uint8 per node: 0 none, 1 arterial, 2 venous).

    ``rules`` is a tumorca.rules.FlowRules (p_arterial, p_venous, tol, max_iter); ``x0`` (float64 per node, or
    None) starts the iteration (a non-finite entry, or None, starts at the mean of the two inlet pressures).
    Returns (pressure, flow, info): float64 per node and a dict (iterations, imbalance: the largest Kirchhoff
    imbalance of the junction system, unknowns: free junctions, converged).  ``num_threads`` is ignored."""
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
    info = {"iterations": 0, "imbalance": 0.0, "unknowns": 0, "converged": True}
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
    width = int(np.diff(jptr).max()) if m else 0
    # ELL layout (slot k of row a) so that every row sums its entries in CSR order
    slot = np.arange(rows.shape[0]) - jptr[rows]
    ecol = np.zeros((m, width), dtype=np.int64)
    eval_ = np.zeros((m, width))
    has = np.zeros((m, width), dtype=bool)
    ecol[rows, slot] = cols
    eval_[rows, slot] = vals
    has[rows, slot] = True

    jin = inlet[jn]
    free = jin == 0
    diag = np.zeros(m)
    for k in range(width):
        diag = np.where(has[:, k], diag + eval_[:, k], diag)

    def gsum(v):
        s = np.zeros(m)
        for k in range(width):
            s = np.where(has[:, k], s + eval_[:, k] * v[ecol[:, k]], s)
        return s

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

    dsafe = np.where(free, diag, 1.0)
    r = true_residual(p)
    its = 0
    imb = float(np.abs(r).max())
    converged = imb <= thresh
    restart = True
    rz = 0.0
    d = r
    while not converged and its < max_iter:
        z = np.where(free, r / dsafe, 0.0)
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
    info.update(iterations=its, imbalance=imb, unknowns=int(free.sum()), converged=bool(converged))

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
