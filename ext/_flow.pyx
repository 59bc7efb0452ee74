# cython: language_level=3
"""Blood flow on the vessel network: pressure by Kirchhoff's law on the graph of vessel sites (Moore adjacency,
edge conductance 1/length), inlets held at the arterial or venous pressure.

The solve works on a sorted list of global flat site indices (``nodes``), so a decomposed lattice gathers its
vessel sites to one rank, solves and scatters back with the bits of the serial solve.  The steps and the order of
every floating-point operation are those of src/tumorca/reference/flow.py (its docstring is the specification):
adjacency, components (flow only where a component holds both inlet kinds), peeling of dead-end trees (exactly
no flow), contraction of degree-2 chains into series conductances, Jacobi-preconditioned conjugate gradients on
the junctions with dot products summed in fixed blocks (independent of the thread count), interpolation of the
chain pressures, and the flow through each node.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport fabs, sqrt, isfinite
from libc.stdint cimport uint8_t, int64_t
from _rules cimport FlowRules, fill_flow

cnp.import_array()

cdef enum:
    BLOCK = 1024
FLOW_BLOCK = BLOCK

cdef double LEN[4]
cdef double GC[4]
LEN[0] = 0.0
LEN[1] = 1.0
LEN[2] = sqrt(2.0)
LEN[3] = sqrt(3.0)
GC[0] = 0.0
GC[1] = 1.0 / LEN[1]
GC[2] = 1.0 / LEN[2]
GC[3] = 1.0 / LEN[3]


cdef inline Py_ssize_t _lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t hi, int64_t t) noexcept nogil:
    cdef Py_ssize_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _gallop(const int64_t* a, Py_ssize_t lo, Py_ssize_t n, int64_t t) noexcept nogil:
    """First position >= lo whose value is >= t (every value before lo is < t)."""
    cdef Py_ssize_t hi, step = 1
    if lo >= n or a[lo] >= t:
        return lo
    while True:
        hi = lo + step
        if hi >= n:
            hi = n
            break
        if a[hi] >= t:
            break
        lo = hi
        step *= 2
    return _lower_bound(a, lo + 1, hi, t)


cdef int _adj_chunk(const int64_t* nodes, Py_ssize_t n, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t nz,
                    Py_ssize_t ny, Py_ssize_t nx, int64_t* ptr, int64_t* nbr, int64_t* lc) noexcept nogil:
    """Neighbours of nodes i0..i1-1 in Moore order (ascending index).  Without ``nbr``: their number into
    ptr[i + 1]; with it: positions into nbr[ptr[i]:] and length classes into lc.  The search for each of the 9
    neighbouring rows gallops on from the previous node's hit (targets grow with the node index)."""
    cdef Py_ssize_t hint[9]
    cdef Py_ssize_t i, x, y, z, zz, yy, k, xx
    cdef int64_t v, t, base, o
    cdef int dz, dy, r9, cnt
    for r9 in range(9):
        hint[r9] = -1
    for i in range(i0, i1):
        v = nodes[i]
        x = v % nx
        y = (v // nx) % ny
        z = v // (nx * ny)
        cnt = 0
        o = ptr[i] if nbr != NULL else 0
        r9 = -1
        for dz in range(-1, 2):
            zz = z + dz
            for dy in range(-1, 2):
                yy = y + dy
                r9 += 1
                if zz < 0 or zz >= nz or yy < 0 or yy >= ny:
                    continue
                base = (zz * ny + yy) * nx
                xx = x - 1 if x > 0 else 0
                if hint[r9] < 0:
                    k = _lower_bound(nodes, 0, n, base + xx)
                else:
                    k = _gallop(nodes, hint[r9], n, base + xx)
                hint[r9] = k
                while k < n and nodes[k] <= base + x + 1 and nodes[k] < base + nx:
                    t = nodes[k] - base
                    if not (dz == 0 and dy == 0 and t == x):
                        if nbr != NULL:
                            nbr[o + cnt] = k
                            lc[o + cnt] = (dz != 0) + (dy != 0) + (t != x)
                        cnt += 1
                    k += 1
        if nbr == NULL:
            ptr[i + 1] = cnt
    return 0


cdef enum:
    ADJ_CHUNK = 4096


def adjacency(const int64_t[::1] nodes, object gshape, int num_threads=1):
    """CSR adjacency of the sorted global flat indices ``nodes`` of a lattice of shape ``gshape``: (ptr, nbr,
    lcls) as in tumorca.reference.flow.adjacency."""
    cdef Py_ssize_t nz, ny, nx, n = nodes.shape[0], i, c, nchunk, i1
    nz, ny, nx = (int(v) for v in gshape)
    ptr_a = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] ptr = ptr_a
    if n == 0:
        return ptr_a, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cdef const int64_t* N = &nodes[0]
    nchunk = (n + ADJ_CHUNK - 1) // ADJ_CHUNK
    with nogil:
        for c in prange(nchunk, schedule="static", num_threads=num_threads):
            i1 = (c + 1) * ADJ_CHUNK
            if i1 > n:
                i1 = n
            _adj_chunk(N, n, c * ADJ_CHUNK, i1, nz, ny, nx, &ptr[0], NULL, NULL)
        for i in range(n):
            ptr[i + 1] += ptr[i]
    nbr_a = np.empty(max(ptr[n], 1), dtype=np.int64)
    cls_a = np.empty(max(ptr[n], 1), dtype=np.int64)
    cdef int64_t[::1] nbr = nbr_a
    cdef int64_t[::1] lc = cls_a
    if ptr[n] > 0:
        with nogil:
            for c in prange(nchunk, schedule="static", num_threads=num_threads):
                i1 = (c + 1) * ADJ_CHUNK
                if i1 > n:
                    i1 = n
                _adj_chunk(N, n, c * ADJ_CHUNK, i1, nz, ny, nx, &ptr[0], &nbr[0], &lc[0])
    return ptr_a, nbr_a[:ptr[n]], cls_a[:ptr[n]]


cdef double _dot(const double* a, const double* b, Py_ssize_t m, double* part, int nt) noexcept nogil:
    """sum of a*b in blocks of BLOCK entries (each from 0.0 in order), the block sums from 0.0 in order."""
    cdef Py_ssize_t nb = (m + BLOCK - 1) // BLOCK, q, k, k1
    cdef double s, t = 0.0
    for q in prange(nb, schedule="static", num_threads=nt):
        s = 0.0
        k1 = (q + 1) * BLOCK
        if k1 > m:
            k1 = m
        for k in range(q * BLOCK, k1):
            s = s + a[k] * b[k]
        part[q] = s
    for q in range(nb):
        t = t + part[q]
    return t


cdef double _absmax(const double* a, Py_ssize_t m, double* part, int nt) noexcept nogil:
    cdef Py_ssize_t nb = (m + BLOCK - 1) // BLOCK, q, k, k1
    cdef double s, t = 0.0
    for q in prange(nb, schedule="static", num_threads=nt):
        s = 0.0
        k1 = (q + 1) * BLOCK
        if k1 > m:
            k1 = m
        for k in range(q * BLOCK, k1):
            if fabs(a[k]) > s:
                s = fabs(a[k])
        part[q] = s
    for q in range(nb):
        if part[q] > t:
            t = part[q]
    return t


cdef void _gsum_resid(const int64_t* jptr, const int64_t* jcol, const double* jval, const double* diag,
                      const uint8_t* free, const double* v, double* out, Py_ssize_t m, bint apply,
                      int nt) noexcept nogil:
    """apply: out = diag*v - sum_k g_k v[col_k]; else out = sum_k g_k v[col_k] - diag*v (the residual); 0 where
    not free."""
    cdef Py_ssize_t a, k
    cdef double s
    for a in prange(m, schedule="static", num_threads=nt):
        if not free[a]:
            out[a] = 0.0
            continue
        s = 0.0
        for k in range(jptr[a], jptr[a + 1]):
            s = s + jval[k] * v[jcol[k]]
        if apply:
            out[a] = diag[a] * v[a] - s
        else:
            out[a] = s - diag[a] * v[a]


def flow_solve_nodes(const int64_t[::1] nodes, const uint8_t[::1] inlet, object gshape, object rules,
                     object x0=None, int num_threads=1):
    """Pressure and flow of the vessel network whose nodes are the sorted global flat indices ``nodes`` of a
    lattice of shape ``gshape``, with inlet codes ``inlet`` (per node: 0 none, 1 arterial, 2 venous).

    ``rules`` is a tumorca.rules.FlowRules; ``x0`` (float64 per node, or None) starts the iteration.  Returns
    (pressure, flow, info) as tumorca.reference.flow.flow_solve_nodes, bit for bit, for any ``num_threads``."""
    cdef FlowRules R
    fill_flow(&R, rules)
    cdef Py_ssize_t n = nodes.shape[0], i, k, kk, j, a, b, e, prev, cur, nxt, head, tail, m, q, c, w0, w1, nw
    cdef Py_ssize_t nz, ny, nx
    nz, ny, nx = (int(v) for v in gshape)
    if inlet.shape[0] != n:
        raise ValueError("inlet must hold one code per node")
    for i in range(1, n):
        if nodes[i] <= nodes[i - 1]:
            raise ValueError("nodes must be sorted and unique")
    if n and (nodes[0] < 0 or nodes[n - 1] >= nz * ny * nx):
        raise ValueError("nodes must lie inside the lattice")
    cdef double pa = R.p_arterial, pv = R.p_venous
    pressure_a = np.zeros(n)
    flow_a = np.zeros(n)
    info = {"iterations": 0, "imbalance": 0.0, "unknowns": 0, "converged": True}
    if n == 0:
        return pressure_a, flow_a, info
    cdef double[::1] P = pressure_a
    cdef double[::1] Q = flow_a
    ptr_a, nbr_a, cls_a = adjacency(nodes, (nz, ny, nx), num_threads)
    cdef int64_t[::1] ptr = ptr_a
    cdef int64_t[::1] nbr = nbr_a
    cdef int64_t[::1] lcls = cls_a
    cdef const uint8_t[::1] I = inlet

    # 2. components (breadth-first from each unlabelled node in order)
    comp_a = np.full(n, -1, dtype=np.int64)
    queue_a = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] comp = comp_a
    cdef int64_t[::1] queue = queue_a
    cflag_a = np.zeros(n, dtype=np.uint8)      # per component: bit 1 arterial, bit 2 venous
    cdef uint8_t[::1] cflag = cflag_a
    active_a = np.zeros(n, dtype=np.uint8)
    cdef uint8_t[::1] active = active_a
    cdef Py_ssize_t ncomp = 0
    cdef bint any_active = False
    with nogil:
        for i in range(n):
            if comp[i] >= 0:
                continue
            head = 0
            tail = 1
            queue[0] = i
            comp[i] = ncomp
            while head < tail:
                cur = queue[head]
                head += 1
                if I[cur] == 1:
                    cflag[ncomp] |= 1
                elif I[cur] == 2:
                    cflag[ncomp] |= 2
                for k in range(ptr[cur], ptr[cur + 1]):
                    j = nbr[k]
                    if comp[j] < 0:
                        comp[j] = ncomp
                        queue[tail] = j
                        tail += 1
            ncomp += 1
        for i in range(n):
            c = cflag[comp[i]]
            active[i] = c == 3
            if c == 3:
                any_active = True
            P[i] = pa if (c & 1) else (pv if c == 2 else 0.0)
    if pa == pv or not any_active:
        return pressure_a, flow_a, info

    # 3. peel dead-end trees: non-inlet nodes with at most one unpeeled neighbour
    core_a = active_a.copy()
    cdeg_a = np.zeros(n, dtype=np.int64)
    cdef uint8_t[::1] core = core_a
    cdef int64_t[::1] cdeg = cdeg_a
    with nogil:
        tail = 0
        for i in range(n):
            if not active[i]:
                continue
            for k in range(ptr[i], ptr[i + 1]):
                cdeg[i] += 1  # every neighbour of an active node is active
            if I[i] == 0 and cdeg[i] <= 1:
                queue[tail] = i
                tail += 1
                core[i] = 0
        head = 0
        while head < tail:
            cur = queue[head]
            head += 1
            for k in range(ptr[cur], ptr[cur + 1]):
                j = nbr[k]
                if core[j]:
                    cdeg[j] -= 1
                    if I[j] == 0 and cdeg[j] <= 1:
                        core[j] = 0
                        queue[tail] = j
                        tail += 1

    # 4. junctions and chains
    kind_a = np.zeros(n, dtype=np.uint8)       # 1 junction, 2 chain node
    cdef uint8_t[::1] kind = kind_a
    chain_a = np.full(n, -1, dtype=np.int64)
    s_a = np.zeros(n)
    cdef int64_t[::1] chain_of = chain_a
    cdef double[::1] s_of = s_a
    cha_a = np.empty(n, dtype=np.int64)
    chb_a = np.empty(n, dtype=np.int64)
    chg_a = np.empty(n)
    chr_a = np.empty(n)
    cdef int64_t[::1] cha = cha_a
    cdef int64_t[::1] chb = chb_a
    cdef double[::1] chg = chg_a
    cdef double[::1] chr_ = chr_a
    cdef Py_ssize_t nch = 0
    cdef double s, lk
    jidx_a = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] jidx = jidx_a
    m = 0
    with nogil:
        for i in range(n):
            if core[i]:
                kind[i] = 1 if (I[i] != 0 or cdeg[i] != 2) else 2
                if kind[i] == 1:
                    jidx[i] = m
                    m += 1
        for a in range(n):
            if kind[a] != 1:
                continue
            for k in range(ptr[a], ptr[a + 1]):
                b = nbr[k]
                if kind[b] != 2 or chain_of[b] >= 0:
                    continue
                # walk; the walk's nodes go to queue[0:nw] and their cumulative lengths to chr_ scratch? no:
                nw = 0
                prev = a
                cur = b
                s = 0.0 + LEN[lcls[k]]
                while kind[cur] == 2:
                    queue[nw] = cur
                    s_of[cur] = s
                    nw += 1
                    nxt = -1
                    lk = 0.0
                    for kk in range(ptr[cur], ptr[cur + 1]):
                        if core[nbr[kk]] and nbr[kk] != prev:
                            nxt = nbr[kk]
                            lk = LEN[lcls[kk]]
                            break
                    s = s + lk
                    prev = cur
                    cur = nxt
                e = cur
                if e < a or (e == a and queue[nw - 1] < queue[0]):
                    continue  # the other end walks this chain (s_of is overwritten then)
                for q in range(nw):
                    chain_of[queue[q]] = nch
                cha[nch] = a
                chb[nch] = e
                chg[nch] = 1.0 / s
                chr_[nch] = s
                nch += 1

    # junction system
    jn_a = np.empty(m, dtype=np.int64)
    jptr_a = np.zeros(m + 1, dtype=np.int64)
    cdef int64_t[::1] jn = jn_a
    cdef int64_t[::1] jptr = jptr_a
    with nogil:
        for i in range(n):
            if kind[i] == 1:
                jn[jidx[i]] = i
        for q in range(m):
            a = jn[q]
            c = 0
            for k in range(ptr[a], ptr[a + 1]):
                b = nbr[k]
                if kind[b] == 1:
                    c += 1
                elif kind[b] == 2 and cha[chain_of[b]] != chb[chain_of[b]]:
                    c += 1
            jptr[q + 1] = jptr[q] + c
    jcol_a = np.empty(jptr[m], dtype=np.int64)
    jval_a = np.empty(jptr[m])
    diag_a = np.zeros(m)
    free_a = np.zeros(m, dtype=np.uint8)
    cdef int64_t[::1] jcol = jcol_a
    cdef double[::1] jval = jval_a
    cdef double[::1] diag = diag_a
    cdef uint8_t[::1] free = free_a
    cdef Py_ssize_t nfree = 0
    with nogil:
        for q in range(m):
            a = jn[q]
            kk = jptr[q]
            for k in range(ptr[a], ptr[a + 1]):
                b = nbr[k]
                if kind[b] == 1:
                    jcol[kk] = jidx[b]
                    jval[kk] = GC[lcls[k]]
                    kk += 1
                elif kind[b] == 2:
                    c = chain_of[b]
                    if cha[c] == chb[c]:
                        continue
                    jcol[kk] = jidx[chb[c]] if cha[c] == a else jidx[cha[c]]
                    jval[kk] = chg[c]
                    kk += 1
            s = 0.0
            for k in range(jptr[q], jptr[q + 1]):
                s = s + jval[k]
            diag[q] = s
            free[q] = I[a] == 0
            if free[q]:
                nfree += 1

    # 5. Jacobi-preconditioned CG on the junctions
    cdef double[::1] x0v
    p_a = np.empty(m)
    cdef double[::1] p = p_a
    if x0 is not None:
        x0v = np.ascontiguousarray(x0, dtype=np.float64)
        if x0v.shape[0] != n:
            raise ValueError("x0 must hold one pressure per node")
    for q in range(m):
        a = jn[q]
        p[q] = pa if I[a] == 1 else (pv if I[a] == 2 else 0.5 * (pa + pv))
        if x0 is not None and I[a] == 0 and isfinite(x0v[a]):
            p[q] = x0v[a]
    r_a = np.zeros(m)
    z_a = np.zeros(m)
    d_a = np.zeros(m)
    qv_a = np.zeros(m)
    part_a = np.zeros((m + BLOCK - 1) // BLOCK + 1)
    cdef double[::1] r = r_a
    cdef double[::1] z = z_a
    cdef double[::1] dv = d_a
    cdef double[::1] qv = qv_a
    cdef double[::1] partv = part_a
    cdef double* part = &partv[0]
    cdef double thresh = R.tol * fabs(pa - pv), imb, rz = 0.0, rz_new, dq, alpha, beta
    cdef long long its = 0, max_iter = R.max_iter
    cdef bint converged, restart = True
    cdef int nt = num_threads
    with nogil:
        _gsum_resid(&jptr[0], &jcol[0] if jptr[m] > 0 else NULL, &jval[0] if jptr[m] > 0 else NULL, &diag[0],
                    &free[0], &p[0], &r[0], m, False, nt)
        imb = _absmax(&r[0], m, part, nt)
        converged = imb <= thresh
        while not converged and its < max_iter:
            for q in prange(m, schedule="static", num_threads=nt):
                z[q] = r[q] / diag[q] if free[q] else 0.0
            rz_new = _dot(&r[0], &z[0], m, part, nt)
            if restart:
                for q in prange(m, schedule="static", num_threads=nt):
                    dv[q] = z[q]
                restart = False
            else:
                beta = rz_new / rz
                for q in prange(m, schedule="static", num_threads=nt):
                    dv[q] = z[q] + beta * dv[q]
            rz = rz_new
            _gsum_resid(&jptr[0], &jcol[0], &jval[0], &diag[0], &free[0], &dv[0], &qv[0], m, True, nt)
            dq = _dot(&dv[0], &qv[0], m, part, nt)
            if not dq > 0.0:
                break
            alpha = rz / dq
            for q in prange(m, schedule="static", num_threads=nt):
                p[q] = p[q] + alpha * dv[q]
                r[q] = r[q] - alpha * qv[q]
            its += 1
            if _absmax(&r[0], m, part, nt) <= thresh:
                _gsum_resid(&jptr[0], &jcol[0], &jval[0], &diag[0], &free[0], &p[0], &r[0], m, False, nt)
                imb = _absmax(&r[0], m, part, nt)
                converged = imb <= thresh
                restart = True
        if not converged:
            _gsum_resid(&jptr[0], &jcol[0] if jptr[m] > 0 else NULL, &jval[0] if jptr[m] > 0 else NULL,
                        &diag[0], &free[0], &p[0], &r[0], m, False, nt)
            imb = _absmax(&r[0], m, part, nt)
            converged = imb <= thresh
    info.update(iterations=int(its), imbalance=float(imb), unknowns=int(nfree), converged=bool(converged))

    # 6. pressures: junctions, chain nodes, then peeled trees (breadth-first from the core, exact copies)
    cdef double p0, p1
    with nogil:
        for q in range(m):
            P[jn[q]] = p[q]
        for i in prange(n, schedule="static", num_threads=nt):
            if kind[i] == 2:
                c = chain_of[i]
                p0 = P[cha[c]]
                p1 = P[chb[c]]
                P[i] = p0 + (p1 - p0) * (s_of[i] / chr_[c])
        tail = 0
        for i in range(n):
            if core[i]:
                queue[tail] = i
                tail += 1
        head = 0
        while head < tail:
            cur = queue[head]
            head += 1
            for k in range(ptr[cur], ptr[cur + 1]):
                j = nbr[k]
                if active[j] and not core[j]:
                    core[j] = 1
                    P[j] = P[cur]
                    queue[tail] = j
                    tail += 1

    # 7. flow through each node
    cdef double ab, net, dd
    with nogil:
        for i in prange(n, schedule="static", num_threads=nt):
            ab = 0.0
            net = 0.0
            for k in range(ptr[i], ptr[i + 1]):
                dd = P[i] - P[nbr[k]]
                ab = ab + GC[lcls[k]] * fabs(dd)
                net = net + GC[lcls[k]] * dd
            if not active[i]:
                Q[i] = 0.0
            elif I[i] != 0:
                Q[i] = fabs(net)
            else:
                Q[i] = 0.5 * ab
    return pressure_a, flow_a, info
