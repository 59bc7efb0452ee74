# cython: language_level=3
"""The quasi-steady O2 solve: red-black SOR (also by blocks, for a rank of an MPI run) and geometric multigrid.

Every floating-point expression here has a twin in src/tumorca/reference/o2.py, written in the same order and the
same precision (float32 storage, float64 arithmetic), so that both give bit-identical fields.  Missing neighbours
at a no-flux edge are skipped here and added as 0.0 there, which is exact.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.math cimport fabs, INFINITY
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from _defs cimport TC_TUMOR_P, TC_TUMOR_Q

cnp.import_array()


# Helpers called inside prange loops return their results by value, never through a pointer to the caller's
# local: Cython makes a prange body's variables private only where the body assigns them, so a local written
# through its address is shared by the threads (a race; tests/test_kernel_lint.py looks for it).
cdef struct _NbSum:
    double s    # the sum of the neighbours
    int nn      # the neighbour count of the diagonal


cdef inline _NbSum _neighbour_sum(const float* cur, const float* ym, const float* yp, const float* zm,
                                  const float* zp, Py_ssize_t x, Py_ssize_t nx, bint dirichlet_x, double edge,
                                  int nn_base) noexcept nogil:
    """Sum of the 6 stencil neighbours of site x of a row in the fixed order -x, +x, -y, +y, -z, +z (the
    reference adds in the same order), and the neighbour count of the diagonal.  Missing y/z rows are passed as
    ghost rows (zeros, or the edge value on a Dirichlet face)."""
    cdef _NbSum r
    cdef double s = 0.0
    cdef int n = nn_base
    if x > 0:
        s = s + cur[x - 1]
        n = n + 1
    elif dirichlet_x:
        s = s + edge
        n = n + 1
    if x < nx - 1:
        s = s + cur[x + 1]
        n = n + 1
    elif dirichlet_x:
        s = s + edge
        n = n + 1
    s = s + ym[x]
    s = s + yp[x]
    s = s + zm[x]
    s = s + zp[x]
    r.s = s
    r.nn = n
    return r


cdef inline double _sor_site(float* cur, const float* ym, const float* yp, const float* zm, const float* zp,
                             const uint8_t* tis, const double* uptake, Py_ssize_t x, Py_ssize_t nx, int nn_base,
                             bint dirichlet_x, double edge, double k, double omega) noexcept nogil:
    """SOR update of free site x of a row; returns its Jacobi correction."""
    cdef double diag, gs, old, corr
    cdef _NbSum nb
    nb = _neighbour_sum(cur, ym, yp, zm, zp, x, nx, dirichlet_x, edge, nn_base)
    diag = k * nb.nn + uptake[tis[x]]
    gs = (k * nb.s) / diag
    old = cur[x]
    corr = gs - old
    cur[x] = <float>(old + omega * corr)
    return corr


cdef double _sor_row(float* cur, const float* ym, const float* yp, const float* zm, const float* zp,
                     const uint8_t* tis, const uint8_t* src, const double* uptake,
                     Py_ssize_t nx, Py_ssize_t x0, int nn_base, bint dirichlet_x, double edge,
                     double k, double omega) noexcept nogil:
    """One colour of one row: SOR update of the free sites; returns the largest Jacobi correction seen."""
    cdef Py_ssize_t x
    cdef double corr, rmax = 0.0
    for x in range(x0, nx, 2):
        if src[x]:
            continue
        corr = fabs(_sor_site(cur, ym, yp, zm, zp, tis, uptake, x, nx, nn_base, dirichlet_x, edge, k, omega))
        if corr > rmax:
            rmax = corr
    return rmax


cdef double _sor_row_box(float* cur, const float* ym, const float* yp, const float* zm, const float* zp,
                         const uint8_t* tis, const uint8_t* src, const double* uptake,
                         Py_ssize_t nx, Py_ssize_t x0, Py_ssize_t xend, int nn_base, bint dirichlet_x, double edge,
                         double k, double omega, Py_ssize_t rx0, Py_ssize_t rx1) noexcept nogil:
    """:func:`_sor_row` on the sites x0, x0 + 2, .. below xend of a block's row (the row has nx sites);
    returns the largest Jacobi correction seen at rx0 <= x < rx1 (the owned part).  A separate function so that
    the serial sweep keeps its tight loop."""
    cdef Py_ssize_t x
    cdef double corr, rmax = 0.0
    for x in range(x0, xend, 2):
        if src[x]:
            continue
        corr = fabs(_sor_site(cur, ym, yp, zm, zp, tis, uptake, x, nx, nn_base, dirichlet_x, edge, k, omega))
        if corr > rmax and rx0 <= x < rx1:
            rmax = corr
    return rmax


cdef inline int _face_rows(float[:, :, ::1] c, Py_ssize_t z, Py_ssize_t y, bint dir_z, bint dir_y,
                           const float* er, const float* zr, const float** ym, const float** yp,
                           const float** zm, const float** zp) noexcept nogil:
    """Point ym..zp at the four y/z neighbour rows of row (z, y); returns how many count in the diagonal."""
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1]
    cdef int nn_base = 0
    if y > 0:
        ym[0] = &c[z, y - 1, 0]
        nn_base = nn_base + 1
    elif dir_y:
        ym[0] = er
        nn_base = nn_base + 1
    else:
        ym[0] = zr
    if y < ny - 1:
        yp[0] = &c[z, y + 1, 0]
        nn_base = nn_base + 1
    elif dir_y:
        yp[0] = er
        nn_base = nn_base + 1
    else:
        yp[0] = zr
    if z > 0:
        zm[0] = &c[z - 1, y, 0]
        nn_base = nn_base + 1
    elif dir_z:
        zm[0] = er
        nn_base = nn_base + 1
    else:
        zm[0] = zr
    if z < nz - 1:
        zp[0] = &c[z + 1, y, 0]
        nn_base = nn_base + 1
    elif dir_z:
        zp[0] = er
        nn_base = nn_base + 1
    else:
        zp[0] = zr
    return nn_base


cdef double _fine_sweep(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                        const double* uptake, double k, bint dir_z, bint dir_y, bint dir_x, double edge_value,
                        const float* er, const float* zr, double omega, double* rowmax,
                        int num_threads) noexcept nogil:
    """One red-black sweep (red = (x+y+z) even, then black) of the lattice; returns its largest Jacobi correction.

    A face neighbour that is missing reads the row ``er`` (all ``edge_value``) on a Dirichlet axis and ``zr``
    (zeros, not counted in the diagonal) otherwise.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r, z, y
    cdef int color, nn_base
    cdef double rmax = 0.0
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    for color in range(2):
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            z = r // ny
            y = r % ny
            # Assigned here so that Cython makes the row pointers private to each thread (a write through their
            # address does not count).
            ym = yp = zm = zp = zr
            nn_base = _face_rows(c, z, y, dir_z, dir_y, er, zr, &ym, &yp, &zm, &zp)
            rowmax[r] = _sor_row(&c[z, y, 0], ym, yp, zm, zp, &tissue[z, y, 0], &source[z, y, 0], uptake, nx,
                                 (color + y + z) & 1, nn_base, dir_x, edge_value, k, omega)
        # A max is exact whatever the thread split; combine serially for clarity.
        for r in range(nrows):
            if rowmax[r] > rmax:
                rmax = rowmax[r]
    return rmax


def _check_edge(double edge_value):
    if edge_value != <double><float>edge_value:
        raise ValueError("edge_value must be exactly representable in float32")


cdef void _hold_sources(float[:, :, ::1] c, const uint8_t[:, :, ::1] source, float sv,
                        int num_threads) noexcept nogil:
    cdef Py_ssize_t ny = c.shape[1], nx = c.shape[2], r, z, y, x
    for r in prange(c.shape[0] * ny, schedule="static", num_threads=num_threads):
        z = r // ny
        y = r % ny
        for x in range(nx):
            if source[z, y, x]:
                c[z, y, x] = sv


def o2_solve(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
             const double[::1] uptake, double k, double source_value, bint dirichlet, double edge_value,
             double omega, double tol, int max_sweeps, int num_threads):
    """Red-black SOR for k*lap(c) - uptake[tissue]*c = 0 with c = source_value on source sites.

    Parameters
    ----------
    c : float32 (nz, ny, nx), updated in place (warm start in, solution out).
    tissue : uint8 states, indexing ``uptake`` (min^-1).
    source : nonzero where c is held at ``source_value`` (perfused vessels).
    k : D / dx^2 (min^-1).
    dirichlet : lattice faces of non-singleton axes held at ``edge_value``; otherwise no-flux.
    omega, tol, max_sweeps : over-relaxation factor, stopping test on the largest Jacobi correction of a
        full red+black sweep (mmHg), and a cap on sweeps.

    Returns
    -------
    (sweeps, residual) : sweeps done and the largest correction of the last sweep.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    cdef int sweep = 0
    cdef double rmax = 0.0
    cdef bint dir_y = dirichlet and ny > 1, dir_z = dirichlet and nz > 1, dir_x = dirichlet and nx > 1
    _check_edge(edge_value)
    zero_row = np.zeros(nx, dtype=np.float32)
    edge_row = np.full(nx, edge_value, dtype=np.float32)
    rowmax_arr = np.zeros(nz * ny, dtype=np.float64)
    cdef float[::1] zr = zero_row, er = edge_row
    cdef double[::1] rowmax = rowmax_arr
    with nogil:
        _hold_sources(c, source, <float>source_value, num_threads)
        while sweep < max_sweeps:
            rmax = _fine_sweep(c, tissue, source, &uptake[0], k, dir_z, dir_y, dir_x, edge_value, &er[0], &zr[0],
                               omega, &rowmax[0], num_threads)
            sweep = sweep + 1
            if rmax <= tol:
                break
    return sweep, rmax


def o2_hold_sources(float[:, :, ::1] c, const uint8_t[:, :, ::1] source, double source_value, int num_threads):
    """Set c = source_value on every source site (the first step of :func:`o2_solve`)."""
    with nogil:
        _hold_sources(c, source, <float>source_value, num_threads)
    return None


def o2_sor_half_sweep(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                      const double[::1] uptake, double k, bint dir_z, bint dir_y, bint dir_x, double edge_value,
                      double omega, int color, object origin, object box, object rbox, int num_threads):
    """One colour of the red-black SOR sweep of :func:`o2_solve` on the sites of ``box`` of a block.

    For the domain-decomposed solve (tumorca.parallel): ``box`` (((z0, z1), (y0, y1), (x0, x1)), local indices)
    is the region updated: the owned part of the local array, possibly with some halo layers whose inputs are
    exact (the sweep is then redundant there and spares halo exchanges); ``rbox``, inside it, is the owned part,
    over which the largest correction is taken.  ``origin`` is the global index of local [0, 0, 0], so that the
    colour ``color`` (0 = red: x + y + z even) is the global parity; ``dir_z, dir_y, dir_x`` say which axes have
    Dirichlet faces (from the global lattice shape).  The arithmetic is that of :func:`o2_solve`, site by site.
    Returns the largest Jacobi correction in ``rbox``.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    cdef Py_ssize_t oz, oy, ox, bz0, bz1, by0, by1, bx0, bx1, nrows, q, r, z, y
    cdef Py_ssize_t rz0, rz1, ry0, ry1, rx0, rx1
    cdef int nn_base
    cdef double rmax = 0.0
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    _check_edge(edge_value)
    oz, oy, ox = origin
    (bz0, bz1), (by0, by1), (bx0, bx1) = box
    (rz0, rz1), (ry0, ry1), (rx0, rx1) = rbox
    if not (0 <= bz0 <= bz1 <= nz and 0 <= by0 <= by1 <= ny and 0 <= bx0 <= bx1 <= nx):
        raise ValueError(f"box {box} is not inside the array {(nz, ny, nx)}")
    nrows = (bz1 - bz0) * (by1 - by0)
    if nrows == 0 or bx1 == bx0:
        return 0.0
    zero_row = np.zeros(nx, dtype=np.float32)
    edge_row = np.full(nx, edge_value, dtype=np.float32)
    rowmax_arr = np.zeros(nrows, dtype=np.float64)
    cdef float[::1] zr = zero_row, er = edge_row
    cdef double[::1] rowmax = rowmax_arr
    cdef const float* zrp = &zr[0]
    cdef const float* erp = &er[0]
    with nogil:
        for q in prange(nrows, schedule="static", num_threads=num_threads):
            z = bz0 + q // (by1 - by0)
            y = by0 + q % (by1 - by0)
            ym = yp = zm = zp = zrp
            nn_base = _face_rows(c, z, y, dir_z, dir_y, erp, zrp, &ym, &yp, &zm, &zp)
            rowmax[q] = _sor_row_box(&c[z, y, 0], ym, yp, zm, zp, &tissue[z, y, 0], &source[z, y, 0], &uptake[0],
                                     nx, bx0 + ((color + z + oz + y + oy + bx0 + ox) & 1), bx1, nn_base, dir_x,
                                     edge_value, k, omega, rx0, rx1)
        for r in range(nrows):
            z = bz0 + r // (by1 - by0)
            y = by0 + r % (by1 - by0)
            if rowmax[r] > rmax and rz0 <= z < rz1 and ry0 <= y < ry1:
                rmax = rowmax[r]
    return rmax


# ---------------------------------------------------------------------------------------------------------------
# Multigrid O2 solve (docs/o2-solver.md).  Levels >= 1 hold float64 corrections; every array is C-ordered
# (nz, ny, nx) and flattened.  A transfer along one axis sees its array as (outer, n, inner).
# ---------------------------------------------------------------------------------------------------------------
cdef struct _Level:
    Py_ssize_t n[3]          # (nz, ny, nx) of this level
    double k[3]              # D/h^2 along z, y, x at this level
    bint dirichlet[3]        # a missing neighbour along the axis counts in the diagonal (as a 0 correction)
    double* e                # correction (levels >= 1)
    double* f                # right-hand side: restricted residual (levels >= 1)
    double* diag             # diagonal (levels >= 1); holds the averaged uptake until _coarse_diag
    double* r                # residual on the way down, prolonged correction on the way up
    double* t1               # intermediates of the separable transfers
    double* t2
    int nt                   # threads for this level's passes
    bint coarsened[3]        # transfer to the next level: axes halved, and their tables
    Py_ssize_t* ja[3]
    Py_ssize_t* jb[3]
    double* wa[3]
    double* wb[3]
    Py_ssize_t* ridx[3]
    double* rw[3]


cdef enum:
    _RESTRICT = 0
    _PAIR_MEAN = 1
    _PROLONG = 2


cdef void _axis_pass(int op, const double* src, double* dst, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t m,
                     Py_ssize_t inner, const Py_ssize_t* ja, const Py_ssize_t* jb, const double* wa,
                     const double* wb, const Py_ssize_t* ridx, const double* rw, int nt) noexcept nogil:
    """One axis of a separable transfer between a fine length ``n`` and a coarse length ``m``.

    _RESTRICT and _PAIR_MEAN map (outer, n, inner) to (outer, m, inner); _PROLONG maps (outer, m, inner) to
    (outer, n, inner).  Each output is one fixed expression of at most four inputs, so the split over threads
    cannot change it.
    """
    cdef Py_ssize_t q, o, j, i, nout = m if op != _PROLONG else n, nin = n if op != _PROLONG else m
    cdef const double* s
    cdef double* d
    cdef Py_ssize_t i0, i1, i2, i3
    cdef double w0, w1, w2, w3
    for q in prange(outer * nout, schedule="static", num_threads=nt):
        o = q // nout
        j = q % nout
        s = src + o * nin * inner
        d = dst + q * inner
        if op == _RESTRICT:
            i0 = ridx[4 * j] * inner
            i1 = ridx[4 * j + 1] * inner
            i2 = ridx[4 * j + 2] * inner
            i3 = ridx[4 * j + 3] * inner
            w0 = rw[4 * j]
            w1 = rw[4 * j + 1]
            w2 = rw[4 * j + 2]
            w3 = rw[4 * j + 3]
            for i in range(inner):
                d[i] = w0 * s[i0 + i] + w1 * s[i1 + i] + w2 * s[i2 + i] + w3 * s[i3 + i]
        elif op == _PAIR_MEAN:
            i0 = 2 * j * inner
            if 2 * j + 1 < n:
                for i in range(inner):
                    d[i] = (s[i0 + i] + s[i0 + inner + i]) * 0.5
            else:
                for i in range(inner):
                    d[i] = s[i0 + i]
        else:
            i0 = ja[j] * inner
            i1 = jb[j] * inner
            w0 = wa[j]
            w1 = wb[j]
            for i in range(inner):
                d[i] = w0 * s[i0 + i] + w1 * s[i1 + i]


cdef void _transfer(int op, _Level* fine, _Level* coarse, const double* src, double* dst) noexcept nogil:
    """Apply ``op`` along every coarsened axis: x, y, z going down (_RESTRICT, _PAIR_MEAN from ``fine`` to
    ``coarse``), z, y, x going up (_PROLONG).  Intermediates alternate between fine.t1 and fine.t2."""
    cdef Py_ssize_t shape[3]
    cdef int order[3]
    cdef int step, a, npass = 0, done = 0
    cdef Py_ssize_t outer, inner, b
    cdef const double* cur = src
    cdef double* out
    for a in range(3):
        shape[a] = fine.n[a] if op != _PROLONG else coarse.n[a]
        order[a] = 2 - a if op != _PROLONG else a
        if fine.coarsened[a]:
            npass = npass + 1
    for step in range(3):
        a = order[step]
        if not fine.coarsened[a]:
            continue
        out = dst if done == npass - 1 else (fine.t1 if done % 2 == 0 else fine.t2)
        outer = 1
        for b in range(a):
            outer = outer * shape[b]
        inner = 1
        for b in range(a + 1, 3):
            inner = inner * shape[b]
        _axis_pass(op, cur, out, outer, fine.n[a], coarse.n[a], inner, fine.ja[a], fine.jb[a], fine.wa[a],
                   fine.wb[a], fine.ridx[a], fine.rw[a], fine.nt)
        shape[a] = coarse.n[a] if op != _PROLONG else fine.n[a]
        cur = out
        done = done + 1


cdef inline int _nn(Py_ssize_t p, Py_ssize_t n, bint dirichlet) noexcept nogil:
    """Neighbours along one axis that count in the diagonal of a site at index ``p`` of ``n``."""
    if dirichlet:
        return 2
    return (p > 0) + (p < n - 1)


cdef void _coarse_diag(_Level* lv) noexcept nogil:
    """diag = kx*nnx + ky*nny + kz*nnz + uptake, in that order (the uptake was left in lv.diag)."""
    cdef Py_ssize_t nz = lv.n[0], ny = lv.n[1], nx = lv.n[2], q, z, y, x
    cdef double t
    for q in prange(nz * ny, schedule="static", num_threads=lv.nt):
        z = q // ny
        y = q % ny
        for x in range(nx):
            t = lv.k[2] * _nn(x, nx, lv.dirichlet[2])
            t = t + lv.k[1] * _nn(y, ny, lv.dirichlet[1])
            t = t + lv.k[0] * _nn(z, nz, lv.dirichlet[0])
            lv.diag[q * nx + x] = t + lv.diag[q * nx + x]


cdef inline double _coarse_terms(_Level* lv, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, Py_ssize_t i) noexcept nogil:
    """f + kx*(e[x-1] + e[x+1]) + ky*(...) + kz*(...): each neighbour sum starts from 0.0 and skips a missing
    neighbour (the reference adds 0.0 instead, which is exact on a sum that starts from +0.0)."""
    cdef const double* e = lv.e
    cdef Py_ssize_t nx = lv.n[2], sy = lv.n[2], sz = lv.n[1] * lv.n[2]
    cdef double sx_ = 0.0, sy_ = 0.0, sz_ = 0.0, t
    if x > 0:
        sx_ = sx_ + e[i - 1]
    if x < nx - 1:
        sx_ = sx_ + e[i + 1]
    if y > 0:
        sy_ = sy_ + e[i - sy]
    if y < lv.n[1] - 1:
        sy_ = sy_ + e[i + sy]
    if z > 0:
        sz_ = sz_ + e[i - sz]
    if z < lv.n[0] - 1:
        sz_ = sz_ + e[i + sz]
    t = lv.f[i]
    t = t + lv.k[2] * sx_
    t = t + lv.k[1] * sy_
    t = t + lv.k[0] * sz_
    return t


cdef void _coarse_sweep(_Level* lv) noexcept nogil:
    """One red-black Gauss-Seidel sweep of the correction equation on a coarse level."""
    cdef Py_ssize_t ny = lv.n[1], nx = lv.n[2], q, z, y, x, i
    cdef int color
    for color in range(2):
        for q in prange(lv.n[0] * ny, schedule="static", num_threads=lv.nt):
            z = q // ny
            y = q % ny
            for x in range((color + y + z) & 1, nx, 2):
                i = q * nx + x
                lv.e[i] = _coarse_terms(lv, z, y, x, i) / lv.diag[i]


cdef void _coarse_residual(_Level* lv) noexcept nogil:
    cdef Py_ssize_t ny = lv.n[1], nx = lv.n[2], q, z, y, x, i
    for q in prange(lv.n[0] * ny, schedule="static", num_threads=lv.nt):
        z = q // ny
        y = q % ny
        for x in range(nx):
            i = q * nx + x
            lv.r[i] = _coarse_terms(lv, z, y, x, i) - lv.diag[i] * lv.e[i]


cdef void _fine_residual(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                         const double* uptake, double k, bint dir_z, bint dir_y, bint dir_x, double edge_value,
                         const float* er, const float* zr, double* r, int num_threads) noexcept nogil:
    """r = k*s - diag*c on the lattice (s and diag as in _sor_row), 0 on source sites."""
    cdef Py_ssize_t ny = c.shape[1], nx = c.shape[2], q, z, y, x
    cdef int nn_base
    cdef _NbSum nb
    cdef double diag
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    cdef const float* cur
    for q in prange(c.shape[0] * ny, schedule="static", num_threads=num_threads):
        z = q // ny
        y = q % ny
        # Assigned here so that Cython makes the row pointers private to each thread (a write through their
        # address does not count).
        ym = yp = zm = zp = zr
        nn_base = _face_rows(c, z, y, dir_z, dir_y, er, zr, &ym, &yp, &zm, &zp)
        cur = &c[z, y, 0]
        for x in range(nx):
            if source[z, y, x]:
                r[q * nx + x] = 0.0
                continue
            nb = _neighbour_sum(cur, ym, yp, zm, zp, x, nx, dir_x, edge_value, nn_base)
            diag = k * nb.nn + uptake[tissue[z, y, x]]
            r[q * nx + x] = k * nb.s - diag * cur[x]


cdef double* _dptr(object a) except NULL:
    """Address of the data of a C-contiguous float64 array (owned by the workspace or plan, which outlive the
    solve)."""
    cdef double[::1] v = np.ravel(a)
    if not np.shares_memory(a, v):
        raise ValueError("expected a C-contiguous float64 array")
    return &v[0]


cdef Py_ssize_t* _iptr(object a) except NULL:
    """As _dptr, for an intp array."""
    cdef Py_ssize_t[::1] v = np.ravel(a)
    if not np.shares_memory(a, v):
        raise ValueError("expected a C-contiguous intp array")
    return &v[0]


def o2_solve_multigrid(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                       const double[::1] uptake, double k, double source_value, bint dirichlet, double edge_value,
                       double vessel_uptake, int presmooth, int postsmooth, double tol, int max_cycles,
                       object workspace, int num_threads):
    """Multigrid V-cycles for k*lap(c) - uptake[tissue]*c = 0 with c = source_value on source sites.

    The lattice level is smoothed by red-black Gauss-Seidel (the SOR sweep with omega = 1) with the sources held
    exactly; coarser levels solve for the correction with the sources replaced by an uptake ``vessel_uptake``,
    averaged with the rest of each coarse cell's children.  Stops after the first V-cycle whose last lattice sweep
    has no Jacobi correction above ``tol`` (the SOR test), or after ``max_cycles``.

    Parameters
    ----------
    c, tissue, source, uptake, k, source_value, dirichlet, edge_value : as for :func:`o2_solve`.
    vessel_uptake : uptake (min^-1) standing for a source site on the coarse levels.
    presmooth, postsmooth : red-black sweeps before and after the coarse correction on every level but the
        coarsest (which gets MG_COARSE_SWEEPS).
    tol, max_cycles : stopping test (mmHg) and cap on V-cycles.
    workspace : tumorca._numerics.MultigridWorkspace for this lattice shape (its plan and scratch arrays).

    Returns
    -------
    (cycles, residual) : V-cycles done and the largest correction of the last lattice sweep.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    plan = workspace.plan
    if tuple(plan.shapes[0]) != (nz, ny, nx):
        raise ValueError(f"workspace is for shape {plan.shapes[0]}, not {(nz, ny, nx)}")
    if postsmooth < 1:
        raise ValueError("postsmooth must be at least 1: the stopping test reads the last lattice sweep")
    _check_edge(edge_value)
    cdef int L = plan.levels, l, a, s, cycles = 0, coarse_sweeps = workspace.coarse_sweeps
    cdef double rmax = 0.0, sweep_max
    cdef bint dir_y = dirichlet and ny > 1, dir_z = dirichlet and nz > 1, dir_x = dirichlet and nx > 1
    cdef bint dirs[3]
    dirs[0], dirs[1], dirs[2] = dir_z, dir_y, dir_x
    zero_row = np.zeros(nx, dtype=np.float32)
    edge_row = np.full(nx, edge_value, dtype=np.float32)
    cdef float[::1] zr = zero_row, er = edge_row
    cdef double* rowmax = _dptr(workspace.rowmax)
    cdef const double* up = &uptake[0]
    cdef _Level* lv = <_Level*>malloc(L * sizeof(_Level))
    cdef Py_ssize_t q, z, y, x, i, nsite
    cdef float* cf = &c[0, 0, 0]
    if lv == NULL:
        raise MemoryError("o2_solve_multigrid: could not allocate the level table")
    try:
        for l in range(L):
            arrays = workspace.levels[l]
            for a in range(3):
                lv[l].n[a] = plan.shapes[l][a]
                lv[l].k[a] = k * plan.kscale[l][a]
                lv[l].dirichlet[a] = dirs[a]
                lv[l].coarsened[a] = False
            lv[l].r = _dptr(arrays["r"])
            lv[l].t1 = _dptr(arrays["t1"])
            lv[l].t2 = _dptr(arrays["t2"])
            lv[l].nt = num_threads if l == 0 or plan.sites(l) >= workspace.parallel_sites else 1
            if l > 0:
                lv[l].e = _dptr(arrays["e"])
                lv[l].f = _dptr(arrays["f"])
                lv[l].diag = _dptr(arrays["diag"])
            else:
                lv[l].e = lv[l].f = lv[l].diag = NULL
            if l < L - 1:
                for a in range(3):
                    tr = plan.transfers[l][a]
                    if tr is not None:
                        lv[l].coarsened[a] = True
                        lv[l].ja[a] = _iptr(tr[0])
                        lv[l].jb[a] = _iptr(tr[1])
                        lv[l].wa[a] = _dptr(tr[2])
                        lv[l].wb[a] = _dptr(tr[3])
                        lv[l].ridx[a] = _iptr(tr[4])
                        lv[l].rw[a] = _dptr(tr[5])
        with nogil:
            _hold_sources(c, source, <float>source_value, num_threads)
            # Coarse operators, once per solve: the lattice's uptake (vessel_uptake on sources) averaged down.
            if L > 1:
                for q in prange(nz * ny, schedule="static", num_threads=num_threads):
                    z = q // ny
                    y = q % ny
                    for x in range(nx):
                        lv[0].r[q * nx + x] = vessel_uptake if source[z, y, x] else up[tissue[z, y, x]]
                _transfer(_PAIR_MEAN, &lv[0], &lv[1], lv[0].r, lv[1].diag)
                for l in range(1, L - 1):
                    _transfer(_PAIR_MEAN, &lv[l], &lv[l + 1], lv[l].diag, lv[l + 1].diag)
                for l in range(1, L):
                    _coarse_diag(&lv[l])
            while cycles < max_cycles:
                for s in range(presmooth):
                    _fine_sweep(c, tissue, source, up, k, dir_z, dir_y, dir_x, edge_value, &er[0], &zr[0], 1.0,
                                rowmax, num_threads)
                if L > 1:
                    _fine_residual(c, tissue, source, up, k, dir_z, dir_y, dir_x, edge_value, &er[0], &zr[0],
                                   lv[0].r, num_threads)
                    for l in range(1, L):
                        _transfer(_RESTRICT, &lv[l - 1], &lv[l], lv[l - 1].r, lv[l].f)
                        nsite = lv[l].n[0] * lv[l].n[1] * lv[l].n[2]
                        memset(lv[l].e, 0, nsite * sizeof(double))
                        for s in range(coarse_sweeps if l == L - 1 else presmooth):
                            _coarse_sweep(&lv[l])
                        if l < L - 1:
                            _coarse_residual(&lv[l])
                    for l in range(L - 2, -1, -1):
                        _transfer(_PROLONG, &lv[l], &lv[l + 1], lv[l + 1].e, lv[l].r)
                        if l > 0:
                            nsite = lv[l].n[0] * lv[l].n[1] * lv[l].n[2]
                            for i in prange(nsite, schedule="static", num_threads=lv[l].nt):
                                lv[l].e[i] = lv[l].e[i] + lv[l].r[i]
                            for s in range(postsmooth):
                                _coarse_sweep(&lv[l])
                        else:
                            for q in prange(nz * ny, schedule="static", num_threads=num_threads):
                                z = q // ny
                                y = q % ny
                                for x in range(nx):
                                    if not source[z, y, x]:
                                        i = q * nx + x
                                        cf[i] = <float>(cf[i] + lv[0].r[i])
                for s in range(postsmooth):
                    rmax = _fine_sweep(c, tissue, source, up, k, dir_z, dir_y, dir_x, edge_value, &er[0], &zr[0],
                                       1.0, rowmax, num_threads)
                cycles = cycles + 1
                if rmax <= tol:
                    break
    finally:
        free(lv)
    return cycles, rmax


# ---------------------------------------------------------------------------------------------------------------
# The default O2 solve ("mgcg", docs/o2-solver.md): conjugate gradients preconditioned by a symmetric aggregation
# multigrid V-cycle.  Twin: src/tumorca/reference/o2_mgcg.py.  Every array is C-ordered (nz, ny, nx), flattened;
# the lattice vectors and every level array are float32 (the iterate x and the row partials float64), and every
# expression is evaluated in float64 (a float32 value is widened where it is read, a result rounded where it is
# stored).  Level 0 is the lattice (its operator is computed from tissue and sources); level
# l >= 1 holds a correction e, right-hand side f, mass m, leak b and face weights w[a] to the + neighbour along
# axis a (NULL where the level has one site along a).  A missing neighbour adds an explicit 0.0, as the twin does.
# ---------------------------------------------------------------------------------------------------------------
cdef struct _ALevel:
    Py_ssize_t n[3]
    float* e
    float* f
    float* m
    float* b
    float* w[3]
    int nt


cdef struct _Fine:
    Py_ssize_t n[3]
    const uint8_t* tis
    const uint8_t* src
    const double* up
    double k
    bint dirichlet[3]      # the axis has Dirichlet ghosts (dirichlet and n > 1)
    double edge
    int nt
    const float* zerof     # a row of nx zeros (the ghost row of the correction equations, and of the full
                           # equation on a no-flux axis)
    const float* gyrow     # the ghost rows of the full equation along y and z: edge values or zeros
    const float* gzrow


cdef struct _Terms:
    double t    # f + the weighted neighbours
    double d    # the diagonal


cdef inline _Terms _cdiag_terms(const _ALevel* L, const float* e, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x,
                                Py_ssize_t i) noexcept nogil:
    """f + w[x-1] e[x-1] + w[x] e[x+1] + (y) + (z) of coarse cell i, and its diagonal m + b + its 6 face
    weights."""
    cdef _Terms r
    cdef Py_ssize_t p[3]
    cdef Py_ssize_t st[3]
    cdef int a
    cdef double t = L.f[i], d = <double>L.m[i] + <double>L.b[i], wm, wp
    cdef const float* w
    p[0] = z
    p[1] = y
    p[2] = x
    st[2] = 1
    st[1] = L.n[2]
    st[0] = L.n[1] * L.n[2]
    for a in range(2, -1, -1):
        w = L.w[a]
        if w == NULL:
            t = t + 0.0
            t = t + 0.0
            d = d + 0.0
            d = d + 0.0
            continue
        if p[a] > 0:
            wm = w[i - st[a]]
            t = t + wm * <double>e[i - st[a]]
        else:
            wm = 0.0
            t = t + 0.0
        wp = w[i]
        if p[a] < L.n[a] - 1:
            t = t + wp * <double>e[i + st[a]]
        else:
            t = t + 0.0
        d = d + wm
        d = d + wp
    r.t = t
    r.d = d
    return r


cdef void _c_half_sweep(_ALevel* L, int color) noexcept nogil:
    cdef Py_ssize_t nz = L.n[0], ny = L.n[1], nx = L.n[2], q, z, y, x, i
    cdef _Terms td
    for q in prange(nz * ny, schedule="static", num_threads=L.nt):
        z = q // ny
        y = q % ny
        for x in range((color + y + z) & 1, nx, 2):
            i = q * nx + x
            td = _cdiag_terms(L, L.e, z, y, x, i)
            if td.d > 0:
                L.e[i] = <float>(td.t / td.d)


cdef inline double _c_res(const _ALevel* L, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    cdef Py_ssize_t i = (z * L.n[1] + y) * L.n[2] + x
    cdef _Terms td = _cdiag_terms(L, L.e, z, y, x, i)
    if td.d > 0:
        return td.t - td.d * <double>L.e[i]
    return 0.0


cdef inline int _frows(const _Fine* F, const float* v, Py_ssize_t z, Py_ssize_t y, const float* gy,
                       const float* gz, const float** ym, const float** yp, const float** zm,
                       const float** zp) noexcept nogil:
    """Point ym..zp at the y/z neighbour rows of row (z, y) of ``v`` (``gy``/``gz`` where missing); returns the
    y/z neighbours that count in the diagonal (lattice neighbours and Dirichlet ghosts)."""
    cdef Py_ssize_t nx = F.n[2], i0 = (z * F.n[1] + y) * nx, sz = F.n[1] * nx
    cdef int nn = 0
    ym[0] = v + i0 - nx if y > 0 else gy
    yp[0] = v + i0 + nx if y < F.n[1] - 1 else gy
    zm[0] = v + i0 - sz if z > 0 else gz
    zp[0] = v + i0 + sz if z < F.n[0] - 1 else gz
    if F.dirichlet[1]:
        nn = nn + 2
    else:
        nn = nn + (y > 0) + (y < F.n[1] - 1)
    if F.dirichlet[0]:
        nn = nn + 2
    else:
        nn = nn + (z > 0) + (z < F.n[0] - 1)
    return nn


cdef inline double _rowsum(const float* cur, const float* ym, const float* yp, const float* zm,
                           const float* zp, Py_ssize_t x, Py_ssize_t nx, double gx) noexcept nogil:
    """Sum of the 6 neighbours of site x of a row (values widened to float64), -x, +x, -y, +y, -z, +z from 0.0
    (the twin's order); a missing x neighbour adds ``gx``, missing y/z rows are ghost rows."""
    cdef double s = 0.0
    s = s + (<double>cur[x - 1] if x > 0 else gx)
    s = s + (<double>cur[x + 1] if x < nx - 1 else gx)
    s = s + <double>ym[x]
    s = s + <double>yp[x]
    s = s + <double>zm[x]
    s = s + <double>zp[x]
    return s


cdef inline int _frows32(const _Fine* F, const float* v, Py_ssize_t z, Py_ssize_t y, const float** ym,
                         const float** yp, const float** zm, const float** zp) noexcept nogil:
    """_frows for a lattice vector of the correction equations (ghost rows of zeros)."""
    return _frows(F, v, z, y, F.zerof, F.zerof, ym, yp, zm, zp)


cdef inline double _rowsum32(const float* cur, const float* ym, const float* yp, const float* zm,
                             const float* zp, Py_ssize_t x, Py_ssize_t nx) noexcept nogil:
    """_rowsum of a vector of the correction equations (a missing x neighbour adds 0.0)."""
    return _rowsum(cur, ym, yp, zm, zp, x, nx, 0.0)


cdef inline int _nnx(const _Fine* F, Py_ssize_t x) noexcept nogil:
    if F.dirichlet[2]:
        return 2
    return (x > 0) + (x < F.n[2] - 1)


cdef void _f_half_sweep(const _Fine* F, float* zv, const float* r, int color) noexcept nogil:
    cdef Py_ssize_t nz = F.n[0], ny = F.n[1], nx = F.n[2], q, z, y, x, i, i0
    cdef int nnb
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    cdef const uint8_t* src
    cdef const uint8_t* tis
    for q in prange(nz * ny, schedule="static", num_threads=F.nt):
        z = q // ny
        y = q % ny
        i0 = q * nx
        ym = yp = zm = zp = F.zerof
        nnb = _frows32(F, zv, z, y, &ym, &yp, &zm, &zp)
        src = F.src + i0
        tis = F.tis + i0
        for x in range((color + y + z) & 1, nx, 2):
            if src[x]:
                continue
            i = i0 + x
            zv[i] = <float>((<double>r[i] + F.k * _rowsum32(zv + i0, ym, yp, zm, zp, x, nx)) / (
                F.k * (_nnx(F, x) + nnb) + F.up[tis[x]]))


cdef void _f_res_row(const _Fine* F, const float* zv, const float* r, Py_ssize_t z, Py_ssize_t y,
                     double* out) noexcept nogil:
    """The preconditioner equation's residual along lattice row (z, y): r + k*s - diag*z, 0 on sources."""
    cdef Py_ssize_t nx = F.n[2], i0 = (z * F.n[1] + y) * nx, x
    cdef int nnb
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    nnb = _frows32(F, zv, z, y, &ym, &yp, &zm, &zp)
    for x in range(nx):
        if F.src[i0 + x]:
            out[x] = 0.0
        else:
            out[x] = <double>r[i0 + x] + F.k * _rowsum32(zv + i0, ym, yp, zm, zp, x, nx) - (
                F.k * (_nnx(F, x) + nnb) + F.up[F.tis[i0 + x]]) * <double>zv[i0 + x]


cdef void _f_level1_rows(const _Fine* F, Py_ssize_t z, Py_ssize_t y, double* m, double* b, double* w0,
                         double* w1, double* w2) noexcept nogil:
    """Along lattice row (z, y): mass m (uptake), leak b (k * source neighbours and Dirichlet ghosts) and the
    weights w_a (k to a free + neighbour along axis a), all 0 on sources."""
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], nz = F.n[0], sz = ny * nx, i0 = (z * ny + y) * nx, x, i
    cdef int nb
    for x in range(nx):
        i = i0 + x
        if F.src[i]:
            m[x] = b[x] = w0[x] = w1[x] = w2[x] = 0.0
            continue
        m[x] = F.up[F.tis[i]]
        nb = 0
        if nx > 1 and F.dirichlet[2]:
            nb = nb + (x == 0) + (x == nx - 1)
        if x > 0 and F.src[i - 1]:
            nb = nb + 1
        if x < nx - 1 and F.src[i + 1]:
            nb = nb + 1
        if ny > 1 and F.dirichlet[1]:
            nb = nb + (y == 0) + (y == ny - 1)
        if y > 0 and F.src[i - nx]:
            nb = nb + 1
        if y < ny - 1 and F.src[i + nx]:
            nb = nb + 1
        if nz > 1 and F.dirichlet[0]:
            nb = nb + (z == 0) + (z == nz - 1)
        if z > 0 and F.src[i - sz]:
            nb = nb + 1
        if z < nz - 1 and F.src[i + sz]:
            nb = nb + 1
        b[x] = F.k * nb
        w2[x] = F.k if x < nx - 1 and not F.src[i + 1] else 0.0
        w1[x] = F.k if y < ny - 1 and not F.src[i + nx] else 0.0
        w0[x] = F.k if z < nz - 1 and not F.src[i + sz] else 0.0


cdef inline double _rx(const double* row, Py_ssize_t X, Py_ssize_t fnx, int cross) noexcept nogil:
    if fnx == 1:
        return row[0]
    if cross == 2:
        return row[2 * X + 1] if 2 * X + 1 < fnx else 0.0
    if 2 * X + 1 < fnx:
        return row[2 * X] + row[2 * X + 1]
    return row[2 * X]


cdef inline double _ry(const double* buf, Py_ssize_t X, Py_ssize_t fnx, int cross, bint ysplit,
                       bint ypair) noexcept nogil:
    """buf, buf + fnx: the fine rows y = 2Y and 2Y + 1 (the second one present if ``ypair``)."""
    if not ysplit:
        return _rx(buf, X, fnx, cross)
    if cross == 1:
        return _rx(buf + fnx, X, fnx, cross) if ypair else 0.0
    if ypair:
        return _rx(buf, X, fnx, cross) + _rx(buf + fnx, X, fnx, cross)
    return _rx(buf, X, fnx, cross)


cdef inline double _rz(const double* buf, Py_ssize_t X, Py_ssize_t fnx, int cross, bint ysplit, bint ypair,
                       bint zsplit, bint zpair) noexcept nogil:
    """buf + (2 * zc + yc) * fnx: the fine rows of the children of a coarse row; the sum of pairs along x, then
    y, then z, as _zpair (along the crossing axis only the high child)."""
    if not zsplit:
        return _ry(buf, X, fnx, cross, ysplit, ypair)
    if cross == 0:
        return _ry(buf + 2 * fnx, X, fnx, cross, ysplit, ypair) if zpair else 0.0
    if zpair:
        return _ry(buf, X, fnx, cross, ysplit, ypair) + _ry(buf + 2 * fnx, X, fnx, cross, ysplit, ypair)
    return _ry(buf, X, fnx, cross, ysplit, ypair)


cdef void _restrict_fine(const _Fine* F, const float* zv, const float* r, _ALevel* L1) noexcept nogil:
    """L1.f = the sum over children of the preconditioner equation's lattice residual, one pass over coarse rows
    with the children's residual rows in a per-thread buffer."""
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], nz = F.n[0], q, Z, Y, X, cnx = L1.n[2], cny = L1.n[1]
    cdef bint ysplit = ny > 1, zsplit = nz > 1, ypair, zpair
    cdef int zc, yc
    cdef double* buf
    with parallel(num_threads=F.nt):
        buf = <double*>malloc(4 * nx * sizeof(double))
        for q in prange(L1.n[0] * cny, schedule="static"):
            Z = q // cny
            Y = q % cny
            ypair = ysplit and 2 * Y + 1 < ny
            zpair = zsplit and 2 * Z + 1 < nz
            for zc in range(2 if zpair else 1):
                for yc in range(2 if ypair else 1):
                    _f_res_row(F, zv, r, 2 * Z + zc if zsplit else 0, 2 * Y + yc if ysplit else 0,
                               buf + (2 * zc + yc) * nx)
            for X in range(cnx):
                L1.f[q * cnx + X] = <float>_rz(buf, X, nx, -1, ysplit, ypair, zsplit, zpair)
        free(buf)


cdef void _build_level1(const _Fine* F, _ALevel* L1, double scale) noexcept nogil:
    """Level 1's operator from the lattice in one pass: m (sum), b and w[a] (scale * sum, w[a] over the children
    at the high end along a), the children's rows in a per-thread buffer."""
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], nz = F.n[0], q, Z, Y, X, i, cnx = L1.n[2], cny = L1.n[1]
    cdef Py_ssize_t st = 4 * nx
    cdef bint ysplit = ny > 1, zsplit = nz > 1, ypair, zpair
    cdef int zc, yc, a
    cdef double* buf
    cdef double* o
    with parallel(num_threads=F.nt):
        buf = <double*>malloc(5 * st * sizeof(double))
        for q in prange(L1.n[0] * cny, schedule="static"):
            Z = q // cny
            Y = q % cny
            ypair = ysplit and 2 * Y + 1 < ny
            zpair = zsplit and 2 * Z + 1 < nz
            for zc in range(2 if zpair else 1):
                for yc in range(2 if ypair else 1):
                    o = buf + (2 * zc + yc) * nx
                    _f_level1_rows(F, 2 * Z + zc if zsplit else 0, 2 * Y + yc if ysplit else 0, o, o + st,
                                   o + 2 * st, o + 3 * st, o + 4 * st)
            for X in range(cnx):
                i = q * cnx + X
                L1.m[i] = <float>_rz(buf, X, nx, -1, ysplit, ypair, zsplit, zpair)
                L1.b[i] = <float>(scale * _rz(buf + st, X, nx, -1, ysplit, ypair, zsplit, zpair))
                for a in range(3):
                    if L1.w[a] != NULL:
                        L1.w[a][i] = <float>(scale * _rz(buf + (2 + a) * st, X, nx, a, ysplit, ypair, zsplit,
                                                         zpair))
        free(buf)


cdef enum:
    _V_ARRAY = 0       # child values read from an array
    _V_CROSS = 1       # as _V_ARRAY, only the children at the high end along the crossing axis
    _V_COARSE_RES = 3  # a coarse level's residual


cdef struct _CoarsenCtx:
    int mode
    int cross            # crossing axis (0, 1, 2) or -1
    Py_ssize_t n[3]      # fine shape
    const float* a
    const _ALevel* L


cdef inline double _child(const _CoarsenCtx* C, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    if C.mode == _V_COARSE_RES:
        return _c_res(C.L, z, y, x)
    return C.a[(z * C.n[1] + y) * C.n[2] + x]


cdef inline double _xpair(const _CoarsenCtx* C, Py_ssize_t z, Py_ssize_t y, Py_ssize_t X) noexcept nogil:
    if C.n[2] == 1:
        return _child(C, z, y, 0)
    if C.cross == 2:
        return _child(C, z, y, 2 * X + 1) if 2 * X + 1 < C.n[2] else 0.0
    if 2 * X + 1 < C.n[2]:
        return _child(C, z, y, 2 * X) + _child(C, z, y, 2 * X + 1)
    return _child(C, z, y, 2 * X)


cdef inline double _ypair(const _CoarsenCtx* C, Py_ssize_t z, Py_ssize_t Y, Py_ssize_t X) noexcept nogil:
    if C.n[1] == 1:
        return _xpair(C, z, 0, X)
    if C.cross == 1:
        return _xpair(C, z, 2 * Y + 1, X) if 2 * Y + 1 < C.n[1] else 0.0
    if 2 * Y + 1 < C.n[1]:
        return _xpair(C, z, 2 * Y, X) + _xpair(C, z, 2 * Y + 1, X)
    return _xpair(C, z, 2 * Y, X)


cdef inline double _zpair(const _CoarsenCtx* C, Py_ssize_t Z, Py_ssize_t Y, Py_ssize_t X) noexcept nogil:
    if C.n[0] == 1:
        return _ypair(C, 0, Y, X)
    if C.cross == 0:
        return _ypair(C, 2 * Z + 1, Y, X) if 2 * Z + 1 < C.n[0] else 0.0
    if 2 * Z + 1 < C.n[0]:
        return _ypair(C, 2 * Z, Y, X) + _ypair(C, 2 * Z + 1, Y, X)
    return _ypair(C, 2 * Z, Y, X)


cdef void _coarsen(const _CoarsenCtx* C, float* out, const Py_ssize_t* cn, double scale, bint scaled,
                   int nt) noexcept nogil:
    """out[J] = (scale *) the sum over the children of coarse cell J (pairs along x, then y, then z; along the
    crossing axis only the child at the high end, 0.0 past a lone last cell)."""
    cdef Py_ssize_t q, Z, Y, X
    cdef double v
    for q in prange(cn[0] * cn[1], schedule="static", num_threads=nt):
        Z = q // cn[1]
        Y = q % cn[1]
        for X in range(cn[2]):
            v = _zpair(C, Z, Y, X)
            out[q * cn[2] + X] = <float>(scale * v) if scaled else <float>v


cdef void _prolong_coarse(_ALevel* L, const _ALevel* Lc) noexcept nogil:
    """e += (piecewise-constant) prolongation of the next level's correction, at active cells."""
    cdef Py_ssize_t ny = L.n[1], nx = L.n[2], q, z, y, x, i, ci
    for q in prange(L.n[0] * ny, schedule="static", num_threads=L.nt):
        z = q // ny
        y = q % ny
        for x in range(nx):
            i = q * nx + x
            if _cdiag_terms(L, L.e, z, y, x, i).d > 0:
                ci = ((z // 2) * Lc.n[1] + (y // 2)) * Lc.n[2] + (x // 2)
                L.e[i] = <float>(<double>L.e[i] + <double>Lc.e[ci])


cdef void _coarse_cycle(_ALevel* lv, int l0, int nlev, int smooth) noexcept nogil:
    """The V-cycle below the lattice from level ``l0`` (its f given) down: e of level l0 on return.  The serial
    preconditioner runs it from level 1; an MPI run's agglomerated tail from its first gathered level."""
    cdef int l, s
    cdef _CoarsenCtx C
    C.cross = -1
    for l in range(l0, nlev):
        memset(lv[l].e, 0, lv[l].n[0] * lv[l].n[1] * lv[l].n[2] * sizeof(float))
        for s in range(smooth):
            _c_half_sweep(&lv[l], 0)
            _c_half_sweep(&lv[l], 1)
        if l < nlev - 1:
            C.mode = _V_COARSE_RES
            C.n[0], C.n[1], C.n[2] = lv[l].n[0], lv[l].n[1], lv[l].n[2]
            C.L = &lv[l]
            _coarsen(&C, lv[l + 1].f, lv[l + 1].n, 1.0, False, lv[l].nt)
    for l in range(nlev - 1, l0 - 1, -1):
        if l < nlev - 1:
            _prolong_coarse(&lv[l], &lv[l + 1])
        for s in range(smooth):
            _c_half_sweep(&lv[l], 1)
            _c_half_sweep(&lv[l], 0)


cdef void _precondition(const _Fine* F, _ALevel* lv, int nlev, int smooth, const float* r,
                        float* zv) noexcept nogil:
    """zv = B r: the symmetric V-cycle from 0 (pre-smoothing red then black, post-smoothing black then red)."""
    cdef Py_ssize_t N = F.n[0] * F.n[1] * F.n[2], q, z, y, x, i, ci
    cdef int s
    cdef const _ALevel* L1
    memset(zv, 0, N * sizeof(float))
    for s in range(smooth):
        _f_half_sweep(F, zv, r, 0)
        _f_half_sweep(F, zv, r, 1)
    if nlev > 1:
        _restrict_fine(F, zv, r, &lv[1])
        _coarse_cycle(lv, 1, nlev, smooth)
        L1 = &lv[1]
        for q in prange(F.n[0] * F.n[1], schedule="static", num_threads=F.nt):
            z = q // F.n[1]
            y = q % F.n[1]
            for x in range(F.n[2]):
                i = q * F.n[2] + x
                if not F.src[i]:
                    ci = ((z // 2) * L1.n[1] + (y // 2)) * L1.n[2] + (x // 2)
                    zv[i] = <float>(<double>zv[i] + <double>L1.e[ci])
    for s in range(smooth):
        _f_half_sweep(F, zv, r, 1)
        _f_half_sweep(F, zv, r, 0)


cdef void _build_coarse(_ALevel* lv, int l0, int nlev, double scale) noexcept nogil:
    """The operators of levels l0 + 1 .. nlev - 1, each from the one above (level l0's given)."""
    cdef _CoarsenCtx C
    cdef int l, a
    cdef int nt
    for l in range(l0 + 1, nlev):
        C.n[0], C.n[1], C.n[2] = lv[l - 1].n[0], lv[l - 1].n[1], lv[l - 1].n[2]
        nt = lv[l - 1].nt
        C.mode = _V_ARRAY
        C.cross = -1
        C.a = lv[l - 1].m
        _coarsen(&C, lv[l].m, lv[l].n, 1.0, False, nt)
        C.a = lv[l - 1].b
        _coarsen(&C, lv[l].b, lv[l].n, scale, True, nt)
        C.mode = _V_CROSS
        for a in range(3):
            if lv[l].w[a] != NULL:
                C.cross = a
                C.a = lv[l - 1].w[a]
                _coarsen(&C, lv[l].w[a], lv[l].n, scale, True, nt)


cdef void _build_levels(const _Fine* F, _ALevel* lv, int nlev, double scale) noexcept nogil:
    """The coarse operators of this solve: level 1 from the lattice, each next one from the one above."""
    if nlev < 2:
        return
    _build_level1(F, &lv[1], scale)
    _build_coarse(lv, 1, nlev, scale)


cdef double _dot(const float* a, const float* b, Py_ssize_t nrows, Py_ssize_t nx, double* part,
                 int nt) noexcept nogil:
    """sum of a*b: per row from 0.0 in x order, then the row partials from 0.0 in row order (as the twin)."""
    cdef Py_ssize_t q, x, i
    cdef double s
    for q in prange(nrows, schedule="static", num_threads=nt):
        s = 0.0
        for x in range(nx):
            i = q * nx + x
            s = s + <double>a[i] * <double>b[i]
        part[q] = s
    s = 0.0
    for q in range(nrows):
        s = s + part[q]
    return s


cdef double _error_estimate(double delta, double prev, double* prev_ratio, double safety) noexcept nogil:
    """tumorca._numerics.mgcg_error_estimate: safety * delta * rho / (1 - rho), rho the larger of the last two
    update ratios (infinite after the first update or while rho >= 1)."""
    cdef double ratio, rho
    if prev <= 0.0:
        prev_ratio[0] = 0.0
        return INFINITY
    ratio = delta / prev
    rho = ratio if ratio > prev_ratio[0] else prev_ratio[0]
    prev_ratio[0] = ratio
    if rho >= 1.0:
        return INFINITY
    return safety * delta * rho / (1.0 - rho)


def _ghost_rows(Py_ssize_t nx, double edge_value):
    """A row of zeros and a row of edge values (float32, nx each; the edge value is exact in float32)."""
    return (np.zeros(nx, dtype=np.float32), np.full(nx, edge_value, dtype=np.float32))


cdef float* _fptr(object a) except NULL:
    """Address of the data of a C-contiguous float32 array (owned by the workspace or the caller)."""
    cdef float[::1] v = np.ravel(a)
    if not np.shares_memory(a, v):
        raise ValueError("expected a C-contiguous float32 array")
    return &v[0]


cdef int _fill_fine(_Fine* F, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                    const double[::1] uptake, double k, bint dirichlet, double edge_value, int nt,
                    object rows) except -1:
    """The lattice's operator (pointers into the caller's arrays, which outlive the solve); ``rows``: a row of
    zeros and a row of edge values, from :func:`_ghost_rows`."""
    if (source.shape[0], source.shape[1], source.shape[2]) != (tissue.shape[0], tissue.shape[1], tissue.shape[2]):
        raise ValueError("tissue and source must have the same shape")
    F.n[0], F.n[1], F.n[2] = tissue.shape[0], tissue.shape[1], tissue.shape[2]
    F.tis = &tissue[0, 0, 0]
    F.src = &source[0, 0, 0]
    F.up = &uptake[0]
    F.k = k
    F.dirichlet[0] = dirichlet and F.n[0] > 1
    F.dirichlet[1] = dirichlet and F.n[1] > 1
    F.dirichlet[2] = dirichlet and F.n[2] > 1
    F.edge = edge_value
    F.nt = nt
    F.zerof = _fptr(rows[0])
    F.gyrow = _fptr(rows[1]) if F.dirichlet[1] else F.zerof
    F.gzrow = _fptr(rows[1]) if F.dirichlet[0] else F.zerof
    return 0


cdef int _fill_levels(object workspace, _ALevel* lv, int num_threads, int first=1) except -1:
    """The level table from a tumorca._numerics.MgcgWorkspace (or an MgcgTail: levels before ``first`` hold
    no arrays)."""
    cdef int l, a
    shapes = workspace.shapes
    for l in range(len(shapes)):
        arrays = workspace.levels[l]
        for a in range(3):
            lv[l].n[a] = shapes[l][a]
            lv[l].w[a] = NULL
        lv[l].nt = num_threads if lv[l].n[0] * lv[l].n[1] * lv[l].n[2] >= workspace.parallel_sites else 1
        if l == 0 or l < first:
            lv[l].e = lv[l].f = lv[l].m = lv[l].b = NULL
            continue
        lv[l].e = _fptr(arrays["e"])
        lv[l].f = _fptr(arrays["f"])
        lv[l].m = _fptr(arrays["m"])
        lv[l].b = _fptr(arrays["b"])
        for a in range(3):
            if shapes[l][a] > 1:
                lv[l].w[a] = _fptr(arrays["w"][a])
    return 0


def mgcg_levels(const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source, const double[::1] uptake,
                double k, bint dirichlet, object workspace, int num_threads):
    """Build the coarse operators of the mgcg preconditioner into ``workspace`` (its levels' m, b, w): the
    first step of :func:`o2_solve_mgcg`, exposed for its twin test."""
    cdef _Fine F
    cdef double scale
    cdef int nlev = len(workspace.shapes)
    if tuple(workspace.shapes[0]) != (tissue.shape[0], tissue.shape[1], tissue.shape[2]):
        raise ValueError("workspace does not match the lattice")
    cdef _ALevel* lv = <_ALevel*>malloc(nlev * sizeof(_ALevel))
    if lv == NULL:
        raise MemoryError()
    try:
        rows = _ghost_rows(tissue.shape[2], 0.0)
        _fill_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows)
        _fill_levels(workspace, lv, num_threads)
        scale = workspace.scale
        with nogil:
            _build_levels(&F, lv, nlev, scale)
    finally:
        free(lv)


def mgcg_precondition(const float[:, :, ::1] r, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                      const double[::1] uptake, double k, bint dirichlet, int smooth, object workspace,
                      int num_threads):
    """z = B r, one application of the mgcg preconditioner (the coarse operators built first); returns z as a
    new float32 array of the lattice's shape.  Exposed for its twin test."""
    cdef _Fine F
    cdef int nlev = len(workspace.shapes)
    cdef double scale = workspace.scale
    shape = (tissue.shape[0], tissue.shape[1], tissue.shape[2])
    if tuple(workspace.shapes[0]) != shape or (r.shape[0], r.shape[1], r.shape[2]) != shape:
        raise ValueError("workspace and r must match the lattice")
    cdef _ALevel* lv = <_ALevel*>malloc(nlev * sizeof(_ALevel))
    cdef float* zv = _fptr(workspace.z)
    if lv == NULL:
        raise MemoryError()
    try:
        rows = _ghost_rows(tissue.shape[2], 0.0)
        _fill_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows)
        _fill_levels(workspace, lv, num_threads)
        with nogil:
            _build_levels(&F, lv, nlev, scale)
            _precondition(&F, lv, nlev, smooth, &r[0, 0, 0], zv)
    finally:
        free(lv)
    return workspace.z.reshape(tissue.shape[0], tissue.shape[1], tissue.shape[2]).copy()


def mgcg_dot(const float[:, :, ::1] a, const float[:, :, ::1] b, int num_threads):
    """The dot product of the mgcg solve (per-row partials summed in row order); exposed for its twin test."""
    cdef Py_ssize_t nrows = a.shape[0] * a.shape[1], nx = a.shape[2]
    if (a.shape[0], a.shape[1], a.shape[2]) != (b.shape[0], b.shape[1], b.shape[2]):
        raise ValueError("a and b must have the same shape")
    part_arr = np.zeros(max(nrows, 1))
    cdef double[::1] part = part_arr
    cdef double out
    with nogil:
        out = _dot(&a[0, 0, 0], &b[0, 0, 0], nrows, nx, &part[0], num_threads)
    return out


def o2_solve_mgcg(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                  const double[::1] uptake, double k, double source_value, bint dirichlet, double edge_value,
                  int smooth, double tol, int max_iter, object workspace, int num_threads,
                  object source_values=None):
    """Conjugate gradients preconditioned by a symmetric aggregation V-cycle for k*lap(c) - uptake[tissue]*c = 0
    with c held on source sites (``source_value``, or ``source_values`` where given).

    Parameters
    ----------
    c, tissue, source, uptake, k, source_value, dirichlet, edge_value : as for :func:`o2_solve`.
    smooth : red-black Gauss-Seidel sweeps before (and, in reverse colour order, after) the coarse correction on
        every level.
    tol : stop once the estimated max-norm error (see the twin's ``error_estimate``) is at most this (mmHg).
    max_iter : cap on CG iterations.
    workspace : tumorca._numerics.MgcgWorkspace for this lattice shape.
    source_values : optional float32 array of the lattice's shape: per-site source values.

    Returns
    -------
    (iterations, error estimate, V-cycles) : CG iterations done, the error estimate of the last one (inf while
    fewer than two updates or no contraction yet; 0.0 if the start was exact) and preconditioner applications.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    cdef Py_ssize_t N = nz * ny * nx, nrows = nz * ny, q, z, y, x, i
    shapes = workspace.shapes
    if tuple(shapes[0]) != (nz, ny, nx):
        raise ValueError(f"workspace is for shape {shapes[0]}, not {(nz, ny, nx)}")
    if (tissue.shape[0], tissue.shape[1], tissue.shape[2]) != (nz, ny, nx):
        raise ValueError("tissue must have the shape of c")
    if smooth < 1:
        raise ValueError("smooth must be at least 1")
    _check_edge(edge_value)
    cdef int nlev = len(shapes), its = 0, vcycles = 0
    cdef _Fine F
    cdef _ALevel* lv = <_ALevel*>malloc(nlev * sizeof(_ALevel))
    if lv == NULL:
        raise MemoryError("o2_solve_mgcg: could not allocate the level table")
    cdef float[:, :, ::1] sv
    cdef bint per_site = source_values is not None
    if per_site:
        sv = source_values
        if sv.shape[0] != nz or sv.shape[1] != ny or sv.shape[2] != nx:
            free(lv)
            raise ValueError("source_values must have the lattice's shape")
    cdef double* xv = _dptr(workspace.x)
    cdef float* r = _fptr(workspace.r)
    cdef float* p = _fptr(workspace.p)
    cdef float* zv = _fptr(workspace.z)
    cdef double* part = _dptr(workspace.part)
    cdef float* cf = &c[0, 0, 0]
    cdef double scale, safety, rz, rz_new, pq, alpha, beta, d, delta, gx
    cdef int nnb
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    cdef double prev = 0.0, prev_ratio = 0.0, est = 0.0
    cdef const float* fym
    cdef const float* fyp
    cdef const float* fzm
    cdef const float* fzp
    cdef float fv = <float>source_value
    try:
        rows = _ghost_rows(nx, edge_value)
        _fill_fine(&F, tissue, source, uptake, k, dirichlet, edge_value, num_threads, rows)
        _fill_levels(workspace, lv, num_threads)
        gx = edge_value if F.dirichlet[2] else 0.0
        scale = float(workspace.scale)
        safety = float(workspace.safety)
        with nogil:
            for q in prange(nrows, schedule="static", num_threads=num_threads):
                for x in range(nx):
                    i = q * nx + x
                    if F.src[i]:
                        if per_site:
                            cf[i] = sv[q // ny, q % ny, x]
                        else:
                            cf[i] = fv
                    xv[i] = cf[i]
            _build_levels(&F, lv, nlev, scale)
            # r = b - A x, with the sources' values and the Dirichlet ghosts (x = c, read from c)
            for q in prange(nrows, schedule="static", num_threads=num_threads):
                z = q // ny
                y = q % ny
                ym = yp = zm = zp = F.zerof
                nnb = _frows(&F, cf, z, y, F.gyrow, F.gzrow, &ym, &yp, &zm, &zp)
                for x in range(nx):
                    i = q * nx + x
                    if F.src[i]:
                        r[i] = 0.0
                    else:
                        r[i] = <float>(k * _rowsum(cf + q * nx, ym, yp, zm, zp, x, nx, gx) - (
                            k * (_nnx(&F, x) + nnb) + F.up[F.tis[i]]) * <double>cf[i])
            _precondition(&F, lv, nlev, smooth, r, zv)
            vcycles = 1
            rz = _dot(r, zv, nrows, nx, part, num_threads)
            memcpy(p, zv, N * sizeof(float))
            while its < max_iter:
                if not rz > 0.0:  # r = 0: the iterate is the solution
                    est = 0.0
                    break
                # q = A p (into zv) and p.q
                for q in prange(nrows, schedule="static", num_threads=num_threads):
                    z = q // ny
                    y = q % ny
                    d = 0.0
                    fym = fyp = fzm = fzp = F.zerof
                    nnb = _frows32(&F, p, z, y, &fym, &fyp, &fzm, &fzp)
                    for x in range(nx):
                        i = q * nx + x
                        if F.src[i]:
                            zv[i] = 0.0
                        else:
                            zv[i] = <float>((k * (_nnx(&F, x) + nnb) + F.up[F.tis[i]]) * <double>p[i]
                                            - k * _rowsum32(p + q * nx, fym, fyp, fzm, fzp, x, nx))
                        d = d + <double>p[i] * <double>zv[i]
                    part[q] = d
                pq = 0.0
                for q in range(nrows):
                    pq = pq + part[q]
                if not pq > 0.0:  # p = 0, hence r = 0
                    est = 0.0
                    break
                alpha = rz / pq
                for q in prange(nrows, schedule="static", num_threads=num_threads):
                    delta = 0.0
                    for x in range(nx):
                        i = q * nx + x
                        d = alpha * <double>p[i]
                        xv[i] = xv[i] + d
                        r[i] = <float>(<double>r[i] - alpha * <double>zv[i])
                        if fabs(d) > delta:
                            delta = fabs(d)
                    part[q] = delta
                delta = 0.0
                for q in range(nrows):
                    if part[q] > delta:
                        delta = part[q]
                its = its + 1
                est = _error_estimate(delta, prev, &prev_ratio, safety)
                prev = delta
                if est <= tol:
                    break
                _precondition(&F, lv, nlev, smooth, r, zv)
                vcycles = vcycles + 1
                rz_new = _dot(r, zv, nrows, nx, part, num_threads)
                beta = rz_new / rz
                for i in prange(N, schedule="static", num_threads=num_threads):
                    p[i] = <float>(<double>zv[i] + beta * <double>p[i])
                rz = rz_new
            for q in prange(nrows, schedule="static", num_threads=num_threads):
                for x in range(nx):
                    i = q * nx + x
                    if not F.src[i]:
                        cf[i] = <float>xv[i]
    finally:
        free(lv)
    return its, est, vcycles


# ---------------------------------------------------------------------------------------------------------------
# mgcg by blocks, for a rank of an MPI run (tumorca.parallel.o2_mgcg drives them and exchanges the halos).
#
# Each level of a rank is a local array: its block of cells plus halo layers on the sides that face another block
# (none on a face of the lattice, so there the local bounds are the lattice bounds, as in the serial kernels).
# The lattice is never split along x, so rows are whole and the per-row partials of the dot products are the
# serial ones.  A coarse cell J belongs to the rank that owns its first child 2J, so a restriction reads at most
# one halo layer on the high side and a prolongation one on the low side.  Every value is computed by the serial
# expressions (the same inline helpers, on the local array), which is what makes the blocks' result the serial one.
# Colours and pair tests use global indices (org: global index of the local element [0, 0, 0]; gn: the level's
# global shape); loops run over the block (box: [lo, hi) per axis, local indices).
# ---------------------------------------------------------------------------------------------------------------
cdef struct _Geo:
    Py_ssize_t lo[3]
    Py_ssize_t hi[3]
    Py_ssize_t org[3]
    Py_ssize_t gn[3]
    Py_ssize_t ln[3]


cdef int _geo(_Geo* G, object box, object org, object gn, object ln) except -1:
    cdef int a
    for a in range(3):
        G.lo[a] = box[a][0]
        G.hi[a] = box[a][1]
        G.org[a] = org[a]
        G.gn[a] = gn[a]
        G.ln[a] = ln[a]
        if not (0 <= G.lo[a] <= G.hi[a] <= G.ln[a]):
            raise ValueError("block box outside the local array")
    return 0


cdef int _blk_fine(_Fine* F, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                   const double[::1] uptake, double k, bint dirichlet, double edge_value, int nt, object rows,
                   const _Geo* G) except -1:
    _fill_fine(F, tissue, source, uptake, k, dirichlet, edge_value, nt, rows)
    cdef int a
    for a in range(3):
        if F.n[a] != G.ln[a]:
            raise ValueError("tissue does not have the local shape")
        F.dirichlet[a] = dirichlet and G.gn[a] > 1
    F.gyrow = _fptr(rows[1]) if F.dirichlet[1] else F.zerof
    F.gzrow = _fptr(rows[1]) if F.dirichlet[0] else F.zerof
    return 0


cdef int _blk_level(_ALevel* L, object arrays, const _Geo* G, int nt) except -1:
    """A level's local arrays (e, f, m, b, w as 3D float32 arrays of the local shape; w[a] None where the level
    has one cell along a) as an _ALevel of the local shape."""
    cdef int a
    for a in range(3):
        L.n[a] = G.ln[a]
        L.w[a] = NULL
        if G.gn[a] > 1:
            L.w[a] = _fptr(arrays["w"][a])
    L.e = _fptr(arrays["e"])
    L.f = _fptr(arrays["f"])
    L.m = _fptr(arrays["m"])
    L.b = _fptr(arrays["b"])
    L.nt = nt
    return 0


def mgcg_blk_start(float[:, :, ::1] c, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                   const double[::1] uptake, double k, double source_value, bint dirichlet, double edge_value,
                   double[:, :, ::1] xa, float[:, :, ::1] ra, object box, object org, object gn, int num_threads):
    """Sources set on the whole local array (their halo must be current), x = c there, r = b - A x on the
    block (the first lines of :func:`o2_solve_mgcg`)."""
    cdef _Geo G
    cdef _Fine F
    _geo(&G, box, org, gn, (c.shape[0], c.shape[1], c.shape[2]))
    rows = _ghost_rows(c.shape[2], edge_value)
    _blk_fine(&F, tissue, source, uptake, k, dirichlet, edge_value, num_threads, rows, &G)
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], N = F.n[0] * ny * nx, nyo = G.hi[1] - G.lo[1]
    cdef Py_ssize_t nro = (G.hi[0] - G.lo[0]) * nyo, q, z, y, x, i, i0
    cdef float* cf = &c[0, 0, 0]
    cdef double* xv = &xa[0, 0, 0]
    cdef float* r = &ra[0, 0, 0]
    cdef float fv = <float>source_value
    cdef double gx = edge_value if F.dirichlet[2] else 0.0
    cdef int nnb
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    _check_edge(edge_value)
    with nogil:
        for i in prange(N, schedule="static", num_threads=num_threads):
            if F.src[i]:
                cf[i] = fv
            xv[i] = cf[i]
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = G.lo[0] + q // nyo
            y = G.lo[1] + q % nyo
            i0 = (z * ny + y) * nx
            ym = yp = zm = zp = F.zerof
            nnb = _frows(&F, cf, z, y, F.gyrow, F.gzrow, &ym, &yp, &zm, &zp)
            for x in range(G.lo[2], G.hi[2]):
                i = i0 + x
                if F.src[i]:
                    r[i] = 0.0
                else:
                    r[i] = <float>(k * _rowsum(cf + i0, ym, yp, zm, zp, x, nx, gx) - (
                        k * (_nnx(&F, x) + nnb) + F.up[F.tis[i]]) * <double>cf[i])


def mgcg_blk_apply(const float[:, :, ::1] pa, const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source,
                   const double[::1] uptake, double k, bint dirichlet, float[:, :, ::1] qa, double[::1] part,
                   object box, object org, object gn, int num_threads):
    """q = A p on the block (p's halo current) and part[row] = the row's p.q (rows of the block in C order)."""
    cdef _Geo G
    cdef _Fine F
    _geo(&G, box, org, gn, (pa.shape[0], pa.shape[1], pa.shape[2]))
    rows = _ghost_rows(pa.shape[2], 0.0)
    _blk_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows, &G)
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], nyo = G.hi[1] - G.lo[1]
    cdef Py_ssize_t nro = (G.hi[0] - G.lo[0]) * nyo, q, z, y, x, i, i0
    if part.shape[0] < nro:
        raise ValueError("part is shorter than the block's rows")
    cdef const float* p = &pa[0, 0, 0]
    cdef float* zv = &qa[0, 0, 0]
    cdef double d
    cdef int nnb
    cdef const float* fym
    cdef const float* fyp
    cdef const float* fzm
    cdef const float* fzp
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = G.lo[0] + q // nyo
            y = G.lo[1] + q % nyo
            i0 = (z * ny + y) * nx
            d = 0.0
            fym = fyp = fzm = fzp = F.zerof
            nnb = _frows32(&F, p, z, y, &fym, &fyp, &fzm, &fzp)
            for x in range(G.lo[2], G.hi[2]):
                i = i0 + x
                if F.src[i]:
                    zv[i] = 0.0
                else:
                    zv[i] = <float>((k * (_nnx(&F, x) + nnb) + F.up[F.tis[i]]) * <double>p[i]
                                    - k * _rowsum32(p + i0, fym, fyp, fzm, fzp, x, nx))
                d = d + <double>p[i] * <double>zv[i]
            part[q] = d


def mgcg_blk_update(double[:, :, ::1] xa, float[:, :, ::1] ra, const float[:, :, ::1] pa,
                    const float[:, :, ::1] qa, double alpha, object box, int num_threads):
    """x += alpha p, r -= alpha q on the block; returns the block's largest |alpha p|."""
    cdef Py_ssize_t nx = xa.shape[2], ny = xa.shape[1]
    cdef Py_ssize_t z0 = box[0][0], nyo = box[1][1] - box[1][0], y0 = box[1][0], x0 = box[2][0], x1 = box[2][1]
    cdef Py_ssize_t nro = (box[0][1] - box[0][0]) * nyo, q, x, i, i0
    part_arr = np.zeros(max(nro, 1))
    cdef double[::1] part = part_arr
    cdef double d, delta
    cdef double* xv = &xa[0, 0, 0]
    cdef float* r = &ra[0, 0, 0]
    cdef const float* p = &pa[0, 0, 0]
    cdef const float* zv = &qa[0, 0, 0]
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            i0 = ((z0 + q // nyo) * ny + y0 + q % nyo) * nx
            delta = 0.0
            for x in range(x0, x1):
                i = i0 + x
                d = alpha * <double>p[i]
                xv[i] = xv[i] + d
                r[i] = <float>(<double>r[i] - alpha * <double>zv[i])
                if fabs(d) > delta:
                    delta = fabs(d)
            part[q] = delta
    return float(part_arr.max()) if nro else 0.0


def mgcg_blk_dot(const float[:, :, ::1] aa, const float[:, :, ::1] ba, double[::1] part, object box,
                 int num_threads):
    """part[row] = the row's a.b over the block's rows (as :func:`mgcg_dot`, before the rows are summed)."""
    cdef Py_ssize_t nx = aa.shape[2], ny = aa.shape[1]
    cdef Py_ssize_t z0 = box[0][0], nyo = box[1][1] - box[1][0], y0 = box[1][0], x0 = box[2][0], x1 = box[2][1]
    cdef Py_ssize_t nro = (box[0][1] - box[0][0]) * nyo, q, x, i, i0
    if part.shape[0] < nro:
        raise ValueError("part is shorter than the block's rows")
    cdef const float* a = &aa[0, 0, 0]
    cdef const float* b = &ba[0, 0, 0]
    cdef double s
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            i0 = ((z0 + q // nyo) * ny + y0 + q % nyo) * nx
            s = 0.0
            for x in range(x0, x1):
                i = i0 + x
                s = s + <double>a[i] * <double>b[i]
            part[q] = s


def mgcg_blk_next(float[:, :, ::1] pa, const float[:, :, ::1] za, double beta, object box, int num_threads):
    """p = z + beta p on the block."""
    cdef Py_ssize_t nx = pa.shape[2], ny = pa.shape[1]
    cdef Py_ssize_t z0 = box[0][0], nyo = box[1][1] - box[1][0], y0 = box[1][0], x0 = box[2][0], x1 = box[2][1]
    cdef Py_ssize_t nro = (box[0][1] - box[0][0]) * nyo, q, x, i, i0
    cdef float* p = &pa[0, 0, 0]
    cdef const float* zv = &za[0, 0, 0]
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            i0 = ((z0 + q // nyo) * ny + y0 + q % nyo) * nx
            for x in range(x0, x1):
                i = i0 + x
                p[i] = <float>(<double>zv[i] + beta * <double>p[i])


def mgcg_blk_finish(float[:, :, ::1] c, const double[:, :, ::1] xa, const uint8_t[:, :, ::1] source, object box,
                    int num_threads):
    """c = x (rounded to float32) on the block's free sites."""
    cdef Py_ssize_t nx = c.shape[2], ny = c.shape[1]
    cdef Py_ssize_t z0 = box[0][0], nyo = box[1][1] - box[1][0], y0 = box[1][0], x0 = box[2][0], x1 = box[2][1]
    cdef Py_ssize_t nro = (box[0][1] - box[0][0]) * nyo, q, x, i, i0
    cdef float* cf = &c[0, 0, 0]
    cdef const double* xv = &xa[0, 0, 0]
    cdef const uint8_t* src = &source[0, 0, 0]
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            i0 = ((z0 + q // nyo) * ny + y0 + q % nyo) * nx
            for x in range(x0, x1):
                i = i0 + x
                if not src[i]:
                    cf[i] = <float>xv[i]


def mgcg_blk_fine_sweep(float[:, :, ::1] za, const float[:, :, ::1] ra, const uint8_t[:, :, ::1] tissue,
                        const uint8_t[:, :, ::1] source, const double[::1] uptake, double k, bint dirichlet,
                        int color, object box, object org, object gn, int num_threads):
    """One colour of the preconditioner's red-black Gauss-Seidel on the block (z's halo current)."""
    cdef _Geo G
    cdef _Fine F
    _geo(&G, box, org, gn, (za.shape[0], za.shape[1], za.shape[2]))
    rows = _ghost_rows(za.shape[2], 0.0)
    _blk_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows, &G)
    cdef Py_ssize_t nx = F.n[2], ny = F.n[1], nyo = G.hi[1] - G.lo[1]
    cdef Py_ssize_t nro = (G.hi[0] - G.lo[0]) * nyo, q, z, y, x, i, i0
    cdef float* zv = &za[0, 0, 0]
    cdef const float* r = &ra[0, 0, 0]
    cdef int nnb
    cdef const float* ym
    cdef const float* yp
    cdef const float* zm
    cdef const float* zp
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = G.lo[0] + q // nyo
            y = G.lo[1] + q % nyo
            i0 = (z * ny + y) * nx
            ym = yp = zm = zp = F.zerof
            nnb = _frows32(&F, zv, z, y, &ym, &yp, &zm, &zp)
            for x in range(G.lo[2] + ((color + z + G.org[0] + y + G.org[1] + G.lo[2] + G.org[2]) & 1),
                           G.hi[2], 2):
                if F.src[i0 + x]:
                    continue
                i = i0 + x
                zv[i] = <float>((<double>r[i] + F.k * _rowsum32(zv + i0, ym, yp, zm, zp, x, nx)) / (
                    F.k * (_nnx(&F, x) + nnb) + F.up[F.tis[i]]))


cdef struct _Kids:
    # the local fine rows of a coarse row's children, and whether it has two along y and z
    Py_ssize_t zr[2]
    Py_ssize_t yr[2]
    bint ysplit, ypair, zsplit, zpair


cdef inline _Kids _child_rows(const _Geo* G, const _Geo* C, Py_ssize_t Zl, Py_ssize_t Yl) noexcept nogil:
    """The children of local coarse row (Zl, Yl); pair flags from the global shapes (by value: see _NbSum)."""
    cdef _Kids k
    cdef Py_ssize_t Z = Zl + C.org[0], Y = Yl + C.org[1]
    k.ysplit = G.gn[1] > 1
    k.zsplit = G.gn[0] > 1
    k.ypair = k.ysplit and 2 * Y + 1 < G.gn[1]
    k.zpair = k.zsplit and 2 * Z + 1 < G.gn[0]
    k.yr[0] = (2 * Y if k.ysplit else 0) - G.org[1]
    k.yr[1] = k.yr[0] + 1
    k.zr[0] = (2 * Z if k.zsplit else 0) - G.org[0]
    k.zr[1] = k.zr[0] + 1
    return k


def mgcg_blk_fine_restrict(const float[:, :, ::1] za, const float[:, :, ::1] ra, const uint8_t[:, :, ::1] tissue,
                           const uint8_t[:, :, ::1] source, const double[::1] uptake, double k, bint dirichlet,
                           object box, object org, object gn, float[:, :, ::1] fa, object cbox, object corg,
                           object cgn, int num_threads):
    """f of the coarse block = the children's sums of the preconditioner equation's residual (as _restrict_fine;
    z's halo current two layers deep, r's one)."""
    cdef _Geo G, C
    cdef _Fine F
    _geo(&G, box, org, gn, (za.shape[0], za.shape[1], za.shape[2]))
    _geo(&C, cbox, corg, cgn, (fa.shape[0], fa.shape[1], fa.shape[2]))
    if G.lo[2] != 0 or G.hi[2] != G.gn[2] or C.hi[2] - C.lo[2] != C.gn[2]:
        raise ValueError("blocks must hold whole rows")
    rows = _ghost_rows(za.shape[2], 0.0)
    _blk_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows, &G)
    cdef Py_ssize_t nx = F.n[2], cny = C.ln[1], cnyo = C.hi[1] - C.lo[1], q, Zl, Yl, X
    cdef Py_ssize_t nro = (C.hi[0] - C.lo[0]) * cnyo
    cdef _Kids kd
    cdef int zc, yc
    cdef double* buf
    cdef const float* zv = &za[0, 0, 0]
    cdef const float* r = &ra[0, 0, 0]
    cdef float* f = &fa[0, 0, 0]
    with nogil, parallel(num_threads=num_threads):
        buf = <double*>malloc(4 * nx * sizeof(double))
        for q in prange(nro, schedule="static"):
            Zl = C.lo[0] + q // cnyo
            Yl = C.lo[1] + q % cnyo
            kd = _child_rows(&G, &C, Zl, Yl)
            for zc in range(2 if kd.zpair else 1):
                for yc in range(2 if kd.ypair else 1):
                    _f_res_row(&F, zv, r, kd.zr[zc], kd.yr[yc], buf + (2 * zc + yc) * nx)
            for X in range(C.gn[2]):
                f[(Zl * cny + Yl) * C.ln[2] + X] = <float>_rz(buf, X, nx, -1, kd.ysplit, kd.ypair, kd.zsplit,
                                                              kd.zpair)
        free(buf)


def mgcg_blk_build1(const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] source, const double[::1] uptake,
                    double k, bint dirichlet, object box, object org, object gn, object level, object cbox,
                    object corg, object cgn, double scale, int num_threads):
    """Level 1's operator (m, b, w of ``level``, local arrays) on the coarse block (as _build_level1; tissue and
    sources current two layers into the halo)."""
    cdef _Geo G, C
    cdef _Fine F
    cdef _ALevel L1
    _geo(&G, box, org, gn, (tissue.shape[0], tissue.shape[1], tissue.shape[2]))
    ln = level["m"].shape
    _geo(&C, cbox, corg, cgn, ln)
    if G.lo[2] != 0 or G.hi[2] != G.gn[2] or C.hi[2] - C.lo[2] != C.gn[2]:
        raise ValueError("blocks must hold whole rows")
    rows = _ghost_rows(tissue.shape[2], 0.0)
    _blk_fine(&F, tissue, source, uptake, k, dirichlet, 0.0, num_threads, rows, &G)
    _blk_level(&L1, level, &C, num_threads)
    cdef Py_ssize_t nx = F.n[2], st = 4 * nx, cny = C.ln[1], cnyo = C.hi[1] - C.lo[1], q, Zl, Yl, X, i
    cdef Py_ssize_t nro = (C.hi[0] - C.lo[0]) * cnyo
    cdef _Kids kd
    cdef int zc, yc, a
    cdef double* buf
    cdef double* o
    with nogil, parallel(num_threads=num_threads):
        buf = <double*>malloc(5 * st * sizeof(double))
        for q in prange(nro, schedule="static"):
            Zl = C.lo[0] + q // cnyo
            Yl = C.lo[1] + q % cnyo
            kd = _child_rows(&G, &C, Zl, Yl)
            for zc in range(2 if kd.zpair else 1):
                for yc in range(2 if kd.ypair else 1):
                    o = buf + (2 * zc + yc) * nx
                    _f_level1_rows(&F, kd.zr[zc], kd.yr[yc], o, o + st, o + 2 * st, o + 3 * st, o + 4 * st)
            for X in range(C.gn[2]):
                i = (Zl * cny + Yl) * C.ln[2] + X
                L1.m[i] = <float>_rz(buf, X, nx, -1, kd.ysplit, kd.ypair, kd.zsplit, kd.zpair)
                L1.b[i] = <float>(scale * _rz(buf + st, X, nx, -1, kd.ysplit, kd.ypair, kd.zsplit, kd.zpair))
                for a in range(3):
                    if L1.w[a] != NULL:
                        L1.w[a][i] = <float>(scale * _rz(buf + (2 + a) * st, X, nx, a, kd.ysplit, kd.ypair,
                                                         kd.zsplit, kd.zpair))
        free(buf)


def mgcg_blk_fine_prolong(float[:, :, ::1] za, const float[:, :, ::1] ea, const uint8_t[:, :, ::1] source,
                          object box, object org, object corg, int num_threads):
    """z += the coarse correction of each free site's parent (``ea``: a local array of level 1 with origin
    ``corg`` holding every parent of the block)."""
    cdef Py_ssize_t nx = za.shape[2], ny = za.shape[1], cny = ea.shape[1], cnx = ea.shape[2]
    cdef Py_ssize_t z0 = box[0][0], nyo = box[1][1] - box[1][0], y0 = box[1][0], x0 = box[2][0], x1 = box[2][1]
    cdef Py_ssize_t nro = (box[0][1] - box[0][0]) * nyo, q, z, y, x, i, ci, cz, cy
    cdef Py_ssize_t o0 = org[0], o1 = org[1], o2 = org[2], c0 = corg[0], c1 = corg[1], c2 = corg[2]
    cdef float* zv = &za[0, 0, 0]
    cdef const float* e = &ea[0, 0, 0]
    cdef const uint8_t* src = &source[0, 0, 0]
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = z0 + q // nyo
            y = y0 + q % nyo
            cz = (z + o0) // 2 - c0
            cy = (y + o1) // 2 - c1
            for x in range(x0, x1):
                i = (z * ny + y) * nx + x
                if not src[i]:
                    ci = (cz * cny + cy) * cnx + (x + o2) // 2 - c2
                    zv[i] = <float>(<double>zv[i] + <double>e[ci])


def mgcg_blk_c_sweep(object level, int color, object box, object org, object gn, int num_threads):
    """One colour of Gauss-Seidel on a coarse level's block (e, f, m, b, w current one layer into the halo)."""
    cdef _Geo G
    cdef _ALevel L
    _geo(&G, box, org, gn, level["e"].shape)
    _blk_level(&L, level, &G, num_threads)
    cdef Py_ssize_t ny = L.n[1], nx = L.n[2], nyo = G.hi[1] - G.lo[1]
    cdef Py_ssize_t nro = (G.hi[0] - G.lo[0]) * nyo, q, z, y, x, i
    cdef _Terms td
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = G.lo[0] + q // nyo
            y = G.lo[1] + q % nyo
            for x in range(G.lo[2] + ((color + z + G.org[0] + y + G.org[1] + G.lo[2] + G.org[2]) & 1),
                           G.hi[2], 2):
                i = (z * ny + y) * nx + x
                td = _cdiag_terms(&L, L.e, z, y, x, i)
                if td.d > 0:
                    L.e[i] = <float>(td.t / td.d)


cdef struct _BCtx:
    int mode
    int cross
    _Geo G               # the fine level (of this restriction)
    const float* a
    const _ALevel* L


cdef inline double _bchild(const _BCtx* C, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    """The child at global (z, y, x), read from its local position."""
    cdef Py_ssize_t lz = z - C.G.org[0], ly = y - C.G.org[1], lx = x - C.G.org[2]
    if C.mode == _V_COARSE_RES:
        return _c_res(C.L, lz, ly, lx)
    return C.a[(lz * C.G.ln[1] + ly) * C.G.ln[2] + lx]


cdef inline double _bxpair(const _BCtx* C, Py_ssize_t z, Py_ssize_t y, Py_ssize_t X) noexcept nogil:
    if C.G.gn[2] == 1:
        return _bchild(C, z, y, 0)
    if C.cross == 2:
        return _bchild(C, z, y, 2 * X + 1) if 2 * X + 1 < C.G.gn[2] else 0.0
    if 2 * X + 1 < C.G.gn[2]:
        return _bchild(C, z, y, 2 * X) + _bchild(C, z, y, 2 * X + 1)
    return _bchild(C, z, y, 2 * X)


cdef inline double _bypair(const _BCtx* C, Py_ssize_t z, Py_ssize_t Y, Py_ssize_t X) noexcept nogil:
    if C.G.gn[1] == 1:
        return _bxpair(C, z, 0, X)
    if C.cross == 1:
        return _bxpair(C, z, 2 * Y + 1, X) if 2 * Y + 1 < C.G.gn[1] else 0.0
    if 2 * Y + 1 < C.G.gn[1]:
        return _bxpair(C, z, 2 * Y, X) + _bxpair(C, z, 2 * Y + 1, X)
    return _bxpair(C, z, 2 * Y, X)


cdef inline double _bzpair(const _BCtx* C, Py_ssize_t Z, Py_ssize_t Y, Py_ssize_t X) noexcept nogil:
    if C.G.gn[0] == 1:
        return _bypair(C, 0, Y, X)
    if C.cross == 0:
        return _bypair(C, 2 * Z + 1, Y, X) if 2 * Z + 1 < C.G.gn[0] else 0.0
    if 2 * Z + 1 < C.G.gn[0]:
        return _bypair(C, 2 * Z, Y, X) + _bypair(C, 2 * Z + 1, Y, X)
    return _bypair(C, 2 * Z, Y, X)


cdef void _bcoarsen(const _BCtx* C, float* out, const _Geo* D, double scale, bint scaled, int nt) noexcept nogil:
    """out over the coarse block D = (scale *) the children's sums (as _coarsen, on global indices)."""
    cdef Py_ssize_t nyo = D.hi[1] - D.lo[1], nro = (D.hi[0] - D.lo[0]) * nyo, q, z, y, x
    cdef double v
    for q in prange(nro, schedule="static", num_threads=nt):
        z = D.lo[0] + q // nyo
        y = D.lo[1] + q % nyo
        for x in range(D.lo[2], D.hi[2]):
            v = _bzpair(C, z + D.org[0], y + D.org[1], x + D.org[2])
            out[(z * D.ln[1] + y) * D.ln[2] + x] = <float>(scale * v) if scaled else <float>v


def mgcg_blk_c_restrict(object level, object box, object org, object gn, float[:, :, ::1] fa, object cbox,
                        object corg, object cgn, int num_threads):
    """f of the next level's block = the children's sums of this level's residual (its e current two layers
    into the halo, f, m, b and w one)."""
    cdef _BCtx C
    cdef _ALevel L
    cdef _Geo D
    _geo(&C.G, box, org, gn, level["e"].shape)
    _geo(&D, cbox, corg, cgn, (fa.shape[0], fa.shape[1], fa.shape[2]))
    _blk_level(&L, level, &C.G, num_threads)
    C.mode = _V_COARSE_RES
    C.cross = -1
    C.L = &L
    C.a = NULL
    with nogil:
        _bcoarsen(&C, &fa[0, 0, 0], &D, 1.0, False, num_threads)


def mgcg_blk_coarsen(const float[:, :, ::1] a, object box, object org, object gn, float[:, :, ::1] out,
                     object cbox, object corg, object cgn, int cross, double scale, bint scaled, int num_threads):
    """``out`` over the next level's block = (scale *) the children's sums of ``a`` (the crossing children only
    along ``cross`` >= 0): the next level's m, b and w from this one's (current one layer into the halo)."""
    cdef _BCtx C
    cdef _Geo D
    _geo(&C.G, box, org, gn, (a.shape[0], a.shape[1], a.shape[2]))
    _geo(&D, cbox, corg, cgn, (out.shape[0], out.shape[1], out.shape[2]))
    C.mode = _V_CROSS if cross >= 0 else _V_ARRAY
    C.cross = cross
    C.a = &a[0, 0, 0]
    C.L = NULL
    with nogil:
        _bcoarsen(&C, &out[0, 0, 0], &D, scale, scaled, num_threads)


def mgcg_blk_c_prolong(object level, object box, object org, object gn, const float[:, :, ::1] ea, object corg,
                       int num_threads):
    """e += the parent's correction (``ea``, a local array of the next level with origin ``corg``) at the block's
    active cells."""
    cdef _Geo G
    cdef _ALevel L
    _geo(&G, box, org, gn, level["e"].shape)
    _blk_level(&L, level, &G, num_threads)
    cdef Py_ssize_t ny = L.n[1], nx = L.n[2], cny = ea.shape[1], cnx = ea.shape[2], nyo = G.hi[1] - G.lo[1]
    cdef Py_ssize_t nro = (G.hi[0] - G.lo[0]) * nyo, q, z, y, x, i, ci, cz, cy
    cdef Py_ssize_t c0 = corg[0], c1 = corg[1], c2 = corg[2]
    cdef const float* e = &ea[0, 0, 0]
    with nogil:
        for q in prange(nro, schedule="static", num_threads=num_threads):
            z = G.lo[0] + q // nyo
            y = G.lo[1] + q % nyo
            cz = (z + G.org[0]) // 2 - c0
            cy = (y + G.org[1]) // 2 - c1
            for x in range(G.lo[2], G.hi[2]):
                i = (z * ny + y) * nx + x
                if _cdiag_terms(&L, L.e, z, y, x, i).d > 0:
                    ci = (cz * cny + cy) * cnx + (x + G.org[2]) // 2 - c2
                    L.e[i] = <float>(<double>L.e[i] + <double>e[ci])


def mgcg_tail_build(object tail, int l0, int num_threads):
    """The operators of an agglomerated tail's levels below ``l0`` (level l0's m, b, w given)."""
    cdef int nlev = len(tail.shapes)
    cdef _ALevel* lv = <_ALevel*>malloc(nlev * sizeof(_ALevel))
    if lv == NULL:
        raise MemoryError()
    cdef double scale = tail.scale
    try:
        _fill_levels(tail, lv, num_threads, l0)
        with nogil:
            _build_coarse(lv, l0, nlev, scale)
    finally:
        free(lv)


def mgcg_tail_cycle(object tail, int l0, int smooth, int num_threads):
    """The V-cycle of an agglomerated tail from level ``l0`` (its f given; its e on return)."""
    cdef int nlev = len(tail.shapes)
    cdef _ALevel* lv = <_ALevel*>malloc(nlev * sizeof(_ALevel))
    if lv == NULL:
        raise MemoryError()
    try:
        _fill_levels(tail, lv, num_threads, l0)
        with nogil:
            _coarse_cycle(lv, l0, nlev, smooth)
    finally:
        free(lv)
