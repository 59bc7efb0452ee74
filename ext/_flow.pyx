# cython: language_level=3
"""Blood flow on the vessel network: pressure by Kirchhoff's law on the graph of vessel sites (Moore adjacency,
edge conductance 1/length), inlets held at the arterial or venous pressure.

The solve works on a sorted list of global flat site indices (``nodes``), so a decomposed lattice gathers its
vessel sites to one rank, solves and scatters back with the bits of the serial solve.  The steps and the order of
every floating-point operation are those of src/tumorca/reference/flow.py (its docstring is the specification):
adjacency, components (flow only where a component holds both inlet kinds), peeling of dead-end trees (exactly
no flow), contraction of degree-2 chains into series conductances, conjugate gradients on the junctions with dot
products summed in fixed blocks (independent of the thread count), interpolation of the chain pressures, and the
flow through each node.

The CG is preconditioned by one symmetric V-cycle of aggregation-based algebraic multigrid on the free junctions
(the twin's amg_setup and amg_apply; the reasons for each choice are given there): pairwise aggregation after
Notay (ETNA 37, 2010) with a strong-coupling test, two passes per level, Galerkin coarse operators, 2 damped
Jacobi sweeps before and after a coarse correction scaled by 1.5, dense LDL^T on the coarsest level.  The setup
is sequential (its sums in a fixed order); the V-cycle's row loops are pranges that each write one row.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport fabs, sqrt, isfinite
from libc.stdint cimport uint8_t, int32_t, int64_t
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
                    Py_ssize_t ny, Py_ssize_t nx, int64_t* ptr, int32_t* nbr, uint8_t* lc) noexcept nogil:
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
                            nbr[o + cnt] = <int32_t>k
                            lc[o + cnt] = <uint8_t>((dz != 0) + (dy != 0) + (t != x))
                        cnt += 1
                    k += 1
        if nbr == NULL:
            ptr[i + 1] = cnt
    return 0


cdef enum:
    ADJ_CHUNK = 4096

#: Node positions are int32 (half the memory of int64 in the per-node and per-edge arrays, which set the solve's
#: peak); a network of more nodes than that on one rank is refused.  Global flat indices and CSR row pointers,
#: which can pass 2**31 on a large lattice, stay int64.
MAX_NODES = 2 ** 31 - 1


def adjacency(const int64_t[::1] nodes, object gshape, int num_threads=1):
    """CSR adjacency of the sorted global flat indices ``nodes`` of a lattice of shape ``gshape``: (ptr, nbr,
    lcls) as in tumorca.reference.flow.adjacency, with ptr int64, nbr int32 and lcls uint8."""
    cdef Py_ssize_t nz, ny, nx, n = nodes.shape[0], i, c, nchunk, i1
    nz, ny, nx = (int(v) for v in gshape)
    if n > MAX_NODES:
        raise ValueError(f"the flow solve takes at most {MAX_NODES} vessel nodes on one rank, got {n}")
    ptr_a = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] ptr = ptr_a
    if n == 0:
        return ptr_a, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8)
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
    nbr_a = np.empty(max(ptr[n], 1), dtype=np.int32)
    cls_a = np.empty(max(ptr[n], 1), dtype=np.uint8)
    cdef int32_t[::1] nbr = nbr_a
    cdef uint8_t[::1] lc = cls_a
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


# ---------------------------------------------------------------------------------------------------------------
# Step 5's preconditioner: aggregation multigrid on the junction system (the twin's amg_setup / amg_apply).
# Levels are built one at a time (sizes are known only after each coarsening), then laid end to end in flat
# arrays so that the V-cycle runs without the GIL.  Setup is sequential; the V-cycle's row loops are pranges
# that write one row each (thread-independent bits), its sums run in CSR or member order.
# ---------------------------------------------------------------------------------------------------------------
cdef enum:
    AMG_SWEEPS = 2          # damped Jacobi sweeps before and after the coarse correction
    AMG_COARSE = 64         # coarsen while a level has more unknowns than this
    AMG_DENSE = 256         # the coarsest level is factored (dense LDL^T) up to this size

cdef double AMG_BETA = 0.25          # strong coupling: w_ij >= AMG_BETA * max_k w_ik (Notay 2010)
cdef double AMG_OMEGA = 2.0 / 3.0    # Jacobi weight: omega*lambda_max(D^-1 A) <= 4/3 < 2 (A diagonally dominant)
cdef double AMG_SCALE = 1.5          # factor on the coarse correction


cdef Py_ssize_t _pair(const int64_t* ptr, const int64_t* col, const double* val, const uint8_t* act,
                      Py_ssize_t n, int64_t* agg) noexcept nogil:
    """Greedy pairwise matching in row order (twin: _pair): an unmatched row joins its strongest unmatched
    neighbour among the strong ones (ties to the smaller column) or stays alone; rows not ``act`` get -1.
    Returns the number of aggregates."""
    cdef Py_ssize_t i, k, j, best, nc = 0
    cdef double mx, lim, w, bw
    for i in range(n):
        agg[i] = -2 if act[i] else -1
    for i in range(n):
        if agg[i] != -2:
            continue
        mx = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            j = col[k]
            if j != i and agg[j] != -1 and val[k] > mx:
                mx = val[k]
        lim = AMG_BETA * mx
        best = -1
        bw = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            j = col[k]
            w = val[k]
            if j == i or agg[j] != -2 or w < lim:
                continue
            if best < 0 or w > bw or (w == bw and j < best):
                best = j
                bw = w
        agg[i] = nc
        if best >= 0:
            agg[best] = nc
        nc += 1
    return nc


cdef void _members(const int64_t* agg, Py_ssize_t n, Py_ssize_t nc, int64_t* mptr, int64_t* mem,
                   int64_t* cur) noexcept nogil:
    """Rows of each aggregate, ascending (counting sort); ``cur`` is scratch of nc entries."""
    cdef Py_ssize_t i, c
    for c in range(nc + 1):
        mptr[c] = 0
    for i in range(n):
        if agg[i] >= 0:
            mptr[agg[i] + 1] += 1
    for c in range(nc):
        mptr[c + 1] += mptr[c]
        cur[c] = mptr[c]
    for i in range(n):
        if agg[i] >= 0:
            mem[cur[agg[i]]] = i
            cur[agg[i]] += 1


cdef Py_ssize_t _galerkin(const int64_t* ptr, const int64_t* col, const double* val, const double* diag,
                          const int64_t* agg, Py_ssize_t nc, const int64_t* mptr, const int64_t* mem, int64_t* pos,
                          int64_t* cptr, int64_t* ccol, double* cval, double* cdiag) noexcept nogil:
    """P^T A P of the aggregates ``agg`` for A = diag - W (twin: _galerkin): coarse conductances summed in member
    then CSR order, columns sorted ascending afterwards; the coarse diagonal adds the members' diagonals and takes
    off their internal conductances in the same walk.  ``pos`` (nc entries, all -1) marks the columns of the row
    being built and is left all -1.  Returns the number of coarse entries (at most the fine ones)."""
    cdef Py_ssize_t c, q, i, k, J, nnz = 0, start, kk
    cdef double dc, w
    cptr[0] = 0
    for c in range(nc):
        dc = 0.0
        start = nnz
        for q in range(mptr[c], mptr[c + 1]):
            i = mem[q]
            dc = dc + diag[i]
            for k in range(ptr[i], ptr[i + 1]):
                J = agg[col[k]]
                if J < 0:
                    continue  # an inlet: its conductance is part of diag already
                if J == c:
                    dc = dc - val[k]
                elif pos[J] >= 0:
                    cval[pos[J]] = cval[pos[J]] + val[k]
                else:
                    pos[J] = nnz
                    ccol[nnz] = J
                    cval[nnz] = val[k]
                    nnz += 1
        # the sums are complete: sort the row by column (insertion sort, rows are short) and clear the marks
        for q in range(start + 1, nnz):
            J = ccol[q]
            w = cval[q]
            kk = q
            while kk > start and ccol[kk - 1] > J:
                ccol[kk] = ccol[kk - 1]
                cval[kk] = cval[kk - 1]
                kk -= 1
            ccol[kk] = J
            cval[kk] = w
        for q in range(start, nnz):
            pos[ccol[q]] = -1
        cptr[c + 1] = nnz
        cdiag[c] = dc
    return nnz


cdef inline const int64_t* _ip(const int64_t[::1] a) noexcept nogil:
    """Data pointer, NULL for an empty array (a level can have no off-diagonal entries: no element 0 to take)."""
    return &a[0] if a.shape[0] else NULL


cdef inline const double* _dp(const double[::1] a) noexcept nogil:
    """Data pointer, NULL for an empty array."""
    return &a[0] if a.shape[0] else NULL


cdef Py_ssize_t _pair_arrays(const int64_t[::1] ptr, const int64_t[::1] col, const double[::1] val,
                             const uint8_t[::1] act, int64_t[::1] agg):
    """_pair on arrays: fills ``agg``, returns the number of aggregates."""
    cdef Py_ssize_t n = agg.shape[0], nc = 0
    if n == 0:
        return 0
    with nogil:
        nc = _pair(&ptr[0], _ip(col), _dp(val), &act[0], n, &agg[0])
    return nc


cdef tuple _members_arrays(const int64_t[::1] agg, Py_ssize_t nc):
    """(mptr, mem) of the aggregates ``agg``."""
    cdef Py_ssize_t n = agg.shape[0]
    mptr_a = np.zeros(nc + 1, dtype=np.int64)
    mem_a = np.empty(max(n, 1), dtype=np.int64)
    cur_a = np.empty(max(nc, 1), dtype=np.int64)
    cdef int64_t[::1] mptr = mptr_a, mem = mem_a, cur = cur_a
    if n:
        with nogil:
            _members(&agg[0], n, nc, &mptr[0], &mem[0], &cur[0])
    return mptr_a, mem_a[:mptr_a[nc]]


cdef tuple _coarsen(const int64_t[::1] ptr, const int64_t[::1] col, const double[::1] val, const double[::1] diag,
                    const int64_t[::1] agg, Py_ssize_t nc):
    """(cptr, ccol, cval, cdiag) of the Galerkin operator of the aggregates ``agg``."""
    cdef Py_ssize_t nnz = 0
    mptr_a, mem_a = _members_arrays(agg, nc)
    pos_a = np.full(max(nc, 1), -1, dtype=np.int64)
    cptr_a = np.zeros(nc + 1, dtype=np.int64)
    ccol_a = np.empty(max(col.shape[0], 1), dtype=np.int64)
    cval_a = np.empty(max(col.shape[0], 1))
    cdiag_a = np.empty(max(nc, 1))
    cdef const int64_t[::1] mptr = mptr_a, mem = mem_a
    cdef int64_t[::1] pos = pos_a, cptr = cptr_a, ccol = ccol_a
    cdef double[::1] cval = cval_a, cdiag = cdiag_a
    if nc:
        with nogil:
            nnz = _galerkin(&ptr[0], _ip(col), _dp(val), &diag[0], &agg[0], nc, &mptr[0], _ip(mem), &pos[0],
                            &cptr[0], &ccol[0], &cval[0], &cdiag[0])
    return cptr_a, ccol_a[:nnz].copy(), cval_a[:nnz].copy(), cdiag_a[:nc].copy()


cdef struct _Amg:
    Py_ssize_t nl            # levels; level l holds rows ro[l] .. ro[l+1]-1 of the flat arrays
    const int64_t* ro
    const int64_t* ptr       # flat CSR: row i's entries ptr[i] .. ptr[i+1]-1, columns local to its level
    const int64_t* col
    const double* val
    const double* diag
    const double* wd         # AMG_OMEGA/diag on rows that take part, else 0
    const uint8_t* act       # row takes part (level 0: free junctions; coarser levels: all)
    const int64_t* agg       # aggregate of the row on the next level (local), -1 none
    const int64_t* mptr      # members of row i (levels >= 1): mem[mptr[i]] .. mem[mptr[i+1]-1], local rows
    const int64_t* mem
    double* x                # V-cycle iterate, right-hand side and scratch, per flat row
    double* b
    double* t
    Py_ssize_t nd            # coarsest level: 0, or the rows didx of its dense LDL^T factor dl (nd x nd)
    const int64_t* didx
    const double* dl
    const double* dinv
    double* dy


cdef inline double _offsum(const _Amg* h, Py_ssize_t row, const double* x) noexcept nogil:
    """sum_k val_k x[col_k] over the off-diagonal entries of flat row ``row``, in CSR order (x local to its level)."""
    cdef Py_ssize_t k
    cdef double s = 0.0
    for k in range(h.ptr[row], h.ptr[row + 1]):
        s = s + h.val[k] * x[h.col[k]]
    return s


cdef void _sweeps(const _Amg* h, Py_ssize_t l, int sweeps, bint from_zero, int nt) noexcept nogil:
    """``sweeps`` damped Jacobi sweeps x + wd*(b - A x) on level l, the first from x = 0 if ``from_zero``."""
    cdef Py_ssize_t o = h.ro[l], n = h.ro[l + 1] - h.ro[l], i
    cdef double* x = h.x + o
    cdef double* t = h.t + o
    cdef const double* b = h.b + o
    cdef int sw
    if from_zero:
        for i in prange(n, schedule="static", num_threads=nt):
            x[i] = h.wd[o + i] * b[i] if h.act[o + i] else 0.0
        sweeps -= 1
    for sw in range(sweeps):
        for i in prange(n, schedule="static", num_threads=nt):
            if not h.act[o + i]:
                t[i] = 0.0
                continue
            t[i] = x[i] + h.wd[o + i] * (b[i] + _offsum(h, o + i, x) - h.diag[o + i] * x[i])
        for i in prange(n, schedule="static", num_threads=nt):
            x[i] = t[i]


cdef void _vcycle(const _Amg* h, int nt) noexcept nogil:
    """x = B b on level 0 (b: 0 where a row does not take part): one V-cycle from zero (twin: amg_apply)."""
    cdef Py_ssize_t l, o, n, oc, nc, i, k, q, nd = h.nd
    cdef double s
    cdef double* x
    cdef double* t
    cdef const double* b
    for l in range(h.nl - 1):
        o = h.ro[l]
        n = h.ro[l + 1] - o
        oc = h.ro[l + 1]
        nc = h.ro[l + 2] - oc
        x = h.x + o
        t = h.t + o
        b = h.b + o
        _sweeps(h, l, AMG_SWEEPS, True, nt)
        for i in prange(n, schedule="static", num_threads=nt):
            if not h.act[o + i]:
                t[i] = 0.0
                continue
            t[i] = b[i] + _offsum(h, o + i, x) - h.diag[o + i] * x[i]
        # restriction: each coarse row sums its members' residuals in ascending order
        for i in prange(nc, schedule="static", num_threads=nt):
            s = 0.0
            for q in range(h.mptr[oc + i], h.mptr[oc + i + 1]):
                s = s + t[h.mem[q]]
            h.b[oc + i] = s
    l = h.nl - 1
    o = h.ro[l]
    n = h.ro[l + 1] - o
    if nd > 0:
        # the coarsest level exactly: L y = b, y /= d, L^T x = y (row-wise, sums in the twin's column order)
        for i in range(n):
            h.x[o + i] = 0.0
        for i in range(nd):
            s = h.b[o + h.didx[i]]
            for k in range(i):
                s = s - h.dl[i * nd + k] * h.dy[k]
            h.dy[i] = s
        for i in range(nd):
            h.dy[i] = h.dy[i] * h.dinv[i]
        for i in range(nd - 1, -1, -1):
            s = h.dy[i]
            for k in range(nd - 1, i, -1):
                s = s - h.dl[k * nd + i] * h.dy[k]
            h.dy[i] = s
            h.x[o + h.didx[i]] = s
    else:
        _sweeps(h, l, 2 * AMG_SWEEPS, True, nt)
    for l in range(h.nl - 2, -1, -1):
        o = h.ro[l]
        n = h.ro[l + 1] - o
        oc = h.ro[l + 1]
        x = h.x + o
        for i in prange(n, schedule="static", num_threads=nt):
            if h.agg[o + i] >= 0:
                x[i] = x[i] + AMG_SCALE * h.x[oc + h.agg[o + i]]
        _sweeps(h, l, AMG_SWEEPS, False, nt)


cdef void _ldlt(double* a, Py_ssize_t nd, double* dinv, double* cc) noexcept nogil:
    """Dense LDL^T in place (lower triangle, right-looking; twin: amg_setup); a pivot <= 0 (not met: the level is
    SPD) drops its unknown."""
    cdef Py_ssize_t k, i, j
    cdef double dk, li
    for k in range(nd):
        dk = a[k * nd + k]
        for i in range(k + 1, nd):
            cc[i] = a[i * nd + k]
            a[i * nd + k] = cc[i] / dk if dk > 0.0 else 0.0
        dinv[k] = 1.0 / dk if dk > 0.0 else 0.0
        for i in range(k + 1, nd):
            li = a[i * nd + k]
            for j in range(k + 1, i + 1):
                a[i * nd + j] = a[i * nd + j] - li * cc[j]


cdef dict _amg_setup(jptr, jcol, jval, diag, free):
    """The hierarchy, level by level as the twin's amg_setup, laid end to end in flat arrays (a dict that keeps
    them alive while the _Amg struct points into them)."""
    cdef Py_ssize_t n, nact, n1, n2, i, k, r, c, nd, N, last
    ptrs, cols, vals, diags = [jptr], [jcol], [jval], [diag]
    acts = [np.asarray(free, dtype=np.uint8)]
    aggs, mptrs, mems = [], [], []
    ptr, col, val, dg, act = jptr, jcol, jval, diag, acts[0]
    while True:
        n = dg.shape[0]
        nact = int(np.count_nonzero(act))
        if nact <= AMG_COARSE:
            break
        agg1 = np.empty(n, dtype=np.int64)
        n1 = _pair_arrays(ptr, col, val, act, agg1)
        p1, c1, v1, d1 = _coarsen(ptr, col, val, dg, agg1, n1)
        agg2 = np.empty(n1, dtype=np.int64)
        n2 = _pair_arrays(p1, c1, v1, np.ones(n1, dtype=np.uint8), agg2)
        if 2 * nact < 3 * n2:
            break  # stopped shrinking
        ptr, col, val, dg = _coarsen(p1, c1, v1, d1, agg2, n2)
        act = np.ones(n2, dtype=np.uint8)
        agg = np.where(agg1 >= 0, agg2[np.maximum(agg1, 0)], -1).astype(np.int64)
        mptr, mem = _members_arrays(agg, n2)
        aggs.append(agg)
        mptrs.append(mptr)
        mems.append(mem)
        ptrs.append(ptr)
        cols.append(col)
        vals.append(val)
        diags.append(dg)
        acts.append(act)
    nl = len(diags)
    aggs.append(np.full(dg.shape[0], -1, dtype=np.int64))
    sizes = [d.shape[0] for d in diags]
    ro = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    eo = np.concatenate([[0], np.cumsum([v.shape[0] for v in cols])]).astype(np.int64)
    fptr = np.concatenate([ptrs[l][:-1] + eo[l] for l in range(nl)] + [eo[nl:]]).astype(np.int64)
    fdiag = np.concatenate(diags)
    fact = np.concatenate(acts)
    ok = (fact != 0) & (fdiag > 0.0)
    wd = np.zeros(fdiag.shape[0])
    wd[ok] = AMG_OMEGA / fdiag[ok]
    # members of the rows of levels >= 1 (level 0 rows have none), as offsets into the concatenated lists
    mcount = [np.zeros(sizes[0], dtype=np.int64)] + [np.diff(m) for m in mptrs]
    fmptr = np.concatenate([[0], np.cumsum(np.concatenate(mcount))]).astype(np.int64)
    fmem = np.concatenate([np.zeros(0, dtype=np.int64)] + mems)
    # the coarsest level's dense factor
    last = nl - 1
    idx = np.flatnonzero(acts[last]).astype(np.int64)
    nd = idx.shape[0] if idx.shape[0] <= AMG_DENSE else 0
    dl_a = np.zeros(max(nd * nd, 1))
    dinv_a = np.zeros(max(nd, 1))
    cc_a = np.zeros(max(nd, 1))
    cdef double[::1] dl = dl_a, dinv = dinv_a, cc = cc_a, lval, ldg
    cdef int64_t[::1] lptr, lcol, pos, ix
    if nd > 0:
        pos_a = np.full(sizes[last], -1, dtype=np.int64)
        pos_a[idx] = np.arange(nd)
        pos = pos_a
        ix = idx
        lptr = ptrs[last]
        lcol = np.concatenate([cols[last], [0]]).astype(np.int64)
        lval = np.concatenate([vals[last], [0.0]])
        ldg = diags[last]
        with nogil:
            for r in range(nd):
                i = ix[r]
                dl[r * nd + r] = ldg[i]
                for k in range(lptr[i], lptr[i + 1]):
                    c = pos[lcol[k]]
                    if c >= 0:
                        dl[r * nd + c] = dl[r * nd + c] - lval[k]
            _ldlt(&dl[0], nd, &dinv[0], &cc[0])
    N = ro[nl]
    # the levels' own arrays are dropped as each flat array is made, so that at most one of them is held twice
    del ptrs, diags, acts, mptrs, mcount
    fcol = np.concatenate(cols + [np.zeros(1, dtype=np.int64)])
    del cols
    fval = np.concatenate(vals + [np.zeros(1)])
    del vals
    fagg = np.concatenate(aggs)
    del aggs
    fmem = np.concatenate([fmem, np.zeros(1, dtype=np.int64)])
    del mems
    return {"nl": nl, "ro": ro, "ptr": fptr, "col": fcol,
            "val": fval, "diag": fdiag, "wd": wd, "act": fact,
            "agg": fagg, "mptr": fmptr, "mem": fmem,
            "x": np.zeros(N), "b": np.zeros(N), "t": np.zeros(N), "nd": nd,
            "didx": np.concatenate([idx[:nd], np.zeros(1, dtype=np.int64)]), "dl": dl_a, "dinv": dinv_a,
            "dy": np.zeros(max(nd, 1))}


cdef void _amg_struct(_Amg* h, dict a):
    """Point ``h`` at the arrays of the hierarchy ``a`` (which keeps them alive)."""
    cdef const int64_t[::1] ro = a["ro"], ptr = a["ptr"], col = a["col"], agg = a["agg"], mptr = a["mptr"]
    cdef const int64_t[::1] mem = a["mem"], didx = a["didx"]
    cdef const double[::1] val = a["val"], diag = a["diag"], wd = a["wd"], dl = a["dl"], dinv = a["dinv"]
    cdef const uint8_t[::1] act = a["act"]
    cdef double[::1] x = a["x"], b = a["b"], t = a["t"], dy = a["dy"]
    h.nl = a["nl"]
    h.ro = &ro[0]
    h.ptr = &ptr[0]
    h.col = &col[0]
    h.val = &val[0]
    h.diag = &diag[0]
    h.wd = &wd[0]
    h.act = &act[0]
    h.agg = &agg[0]
    h.mptr = &mptr[0]
    h.mem = &mem[0]
    h.x = &x[0]
    h.b = &b[0]
    h.t = &t[0]
    h.nd = a["nd"]
    h.didx = &didx[0]
    h.dl = &dl[0]
    h.dinv = &dinv[0]
    h.dy = &dy[0]


#: Junctions below which the CG iterations (and the per-node loops after them) run on one thread.  Each iteration
#: opens about ten parallel regions on short vectors, and waking a second thread for each cost more than it saved on
#: the 2-core development machine: on the 2048^2 bed (82 621 junctions) 0.20 s on 1 thread against 0.23-0.29 s on 2;
#: on 512^2 (14 iterations) 0.009 against 0.059 s (docs/performance.md).  The bits do not depend on it.
FLOW_PARALLEL_MIN = 1 << 18


def flow_solve_nodes(const int64_t[::1] nodes, const uint8_t[::1] inlet, object gshape, object rules,
                     object x0=None, int num_threads=1, Py_ssize_t parallel_min=FLOW_PARALLEL_MIN):
    """Pressure and flow of the vessel network whose nodes are the sorted global flat indices ``nodes`` of a
    lattice of shape ``gshape``, with inlet codes ``inlet`` (per node: 0 none, 1 arterial, 2 venous).

    ``rules`` is a tumorca.rules.FlowRules; ``x0`` (float64 per node, or None) starts the iteration.  Returns
    (pressure, flow, info) as tumorca.reference.flow.flow_solve_nodes, bit for bit, for any ``num_threads``.
    The junction iterations and the per-node loops after them use ``num_threads`` only from ``parallel_min``
    junctions on (tests pass 0 to run the parallel loops on small networks)."""
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
    info = {"iterations": 0, "imbalance": 0.0, "unknowns": 0, "converged": True, "levels": 0}
    if n == 0:
        return pressure_a, flow_a, info
    cdef double[::1] P = pressure_a
    cdef double[::1] Q = flow_a
    ptr_a, nbr_a, cls_a = adjacency(nodes, (nz, ny, nx), num_threads)
    cdef int64_t[::1] ptr = ptr_a
    cdef int32_t[::1] nbr = nbr_a
    cdef uint8_t[::1] lcls = cls_a
    cdef const uint8_t[::1] I = inlet

    # Per-node arrays hold node positions as int32 (adjacency's MAX_NODES), and each is released as soon as the
    # steps below are done with it: with the junction system's multigrid hierarchy they set the solve's peak.
    # 2. components (breadth-first from each unlabelled node in order)
    comp_a = np.full(n, -1, dtype=np.int32)
    queue_a = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] comp = comp_a
    cdef int32_t[::1] queue = queue_a
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
            queue[0] = <int32_t>i
            comp[i] = <int32_t>ncomp
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
                        comp[j] = <int32_t>ncomp
                        queue[tail] = <int32_t>j
                        tail += 1
            ncomp += 1
        for i in range(n):
            c = cflag[comp[i]]
            active[i] = c == 3
            if c == 3:
                any_active = True
            P[i] = pa if (c & 1) else (pv if c == 2 else 0.0)
    comp = None
    cflag = None
    del comp_a, cflag_a
    if pa == pv or not any_active:
        return pressure_a, flow_a, info

    # 3. peel dead-end trees: non-inlet nodes with at most one unpeeled neighbour
    core_a = active_a.copy()
    cdeg_a = np.zeros(n, dtype=np.int32)
    cdef uint8_t[::1] core = core_a
    cdef int32_t[::1] cdeg = cdeg_a
    with nogil:
        tail = 0
        for i in range(n):
            if not active[i]:
                continue
            for k in range(ptr[i], ptr[i + 1]):
                cdeg[i] += 1  # every neighbour of an active node is active
            if I[i] == 0 and cdeg[i] <= 1:
                queue[tail] = <int32_t>i
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
                        queue[tail] = <int32_t>j
                        tail += 1

    # 4. junctions and chains
    kind_a = np.zeros(n, dtype=np.uint8)       # 1 junction, 2 chain node
    cdef uint8_t[::1] kind = kind_a
    jidx_a = np.full(n, -1, dtype=np.int32)
    cdef int32_t[::1] jidx = jidx_a
    m = 0
    with nogil:
        for i in range(n):
            if core[i]:
                kind[i] = 1 if (I[i] != 0 or cdeg[i] != 2) else 2
                if kind[i] == 1:
                    jidx[i] = <int32_t>m
                    m += 1
    cdeg = None
    del cdeg_a
    # every chain starts at a junction's chain-node neighbour: their number bounds the chains (far fewer than the
    # nodes on a capillary bed, whose chains are the segments between junctions)
    cdef Py_ssize_t nch_max = 0
    with nogil:
        for a in range(n):
            if kind[a] == 1:
                for k in range(ptr[a], ptr[a + 1]):
                    if kind[nbr[k]] == 2:
                        nch_max += 1
    chain_a = np.full(n, -1, dtype=np.int32)
    s_a = np.zeros(n)
    cdef int32_t[::1] chain_of = chain_a
    cdef double[::1] s_of = s_a
    cha_a = np.empty(max(nch_max, 1), dtype=np.int32)
    chb_a = np.empty(max(nch_max, 1), dtype=np.int32)
    chr_a = np.empty(max(nch_max, 1))
    cdef int32_t[::1] cha = cha_a
    cdef int32_t[::1] chb = chb_a
    cdef double[::1] chr_ = chr_a
    cdef Py_ssize_t nch = 0
    cdef double s, lk
    with nogil:
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
                    queue[nw] = <int32_t>cur
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
                    chain_of[queue[q]] = <int32_t>nch
                cha[nch] = <int32_t>a
                chb[nch] = <int32_t>e
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
                    jval[kk] = 1.0 / chr_[c]  # the chain's series conductance
                    kk += 1
            s = 0.0
            for k in range(jptr[q], jptr[q + 1]):
                s = s + jval[k]
            diag[q] = s
            free[q] = I[a] == 0
            if free[q]:
                nfree += 1
    jidx = None
    del jidx_a

    # 5. CG on the junctions, preconditioned by one aggregation-multigrid V-cycle
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
    cdef int nt = num_threads if m >= parallel_min else 1
    cdef _Amg H
    cdef dict amg = None
    cdef double* hb = NULL
    cdef double* hx = NULL
    # the junction system as CG applies it: its own arrays, or (with a hierarchy) the hierarchy's level 0, which
    # is the same matrix at the start of its flat arrays, so that the junction system's copy can be released
    cdef const int64_t* Jp = &jptr[0]
    cdef const int64_t* Jc = &jcol[0] if jptr[m] > 0 else NULL
    cdef const double* Jv = &jval[0] if jptr[m] > 0 else NULL
    cdef const double* Jd = &diag[0]
    cdef const uint8_t* Jf = &free[0]
    if nfree > 0:  # else every residual is 0: the loop below never runs (it also checks nfree, for a NaN tol)
        amg = _amg_setup(jptr_a, jcol_a, jval_a, diag_a, free_a)
        _amg_struct(&H, amg)
        hb = H.b
        hx = H.x
        Jp, Jc, Jv, Jd, Jf = H.ptr, H.col, H.val, H.diag, H.act
        jptr = jcol = None
        jval = diag = None
        free = None
        del jptr_a, jcol_a, jval_a, diag_a, free_a
    with nogil:
        _gsum_resid(Jp, Jc, Jv, Jd, Jf, &p[0], &r[0], m, False, nt)
        imb = _absmax(&r[0], m, part, nt)
        converged = imb <= thresh
        while not converged and its < max_iter and nfree > 0:
            for q in prange(m, schedule="static", num_threads=nt):
                hb[q] = r[q]
            _vcycle(&H, nt)
            for q in prange(m, schedule="static", num_threads=nt):
                z[q] = hx[q]
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
            _gsum_resid(Jp, Jc, Jv, Jd, Jf, &dv[0], &qv[0], m, True, nt)
            dq = _dot(&dv[0], &qv[0], m, part, nt)
            if not dq > 0.0:
                break
            alpha = rz / dq
            for q in prange(m, schedule="static", num_threads=nt):
                p[q] = p[q] + alpha * dv[q]
                r[q] = r[q] - alpha * qv[q]
            its += 1
            if _absmax(&r[0], m, part, nt) <= thresh:
                _gsum_resid(Jp, Jc, Jv, Jd, Jf, &p[0], &r[0], m, False, nt)
                imb = _absmax(&r[0], m, part, nt)
                converged = imb <= thresh
                restart = True
        if not converged:
            _gsum_resid(Jp, Jc, Jv, Jd, Jf, &p[0], &r[0], m, False, nt)
            imb = _absmax(&r[0], m, part, nt)
            converged = imb <= thresh
    info.update(iterations=int(its), imbalance=float(imb), unknowns=int(nfree), converged=bool(converged),
                levels=int(amg["nl"]) if amg is not None else 0)

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
