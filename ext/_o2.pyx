# cython: language_level=3
"""The quasi-steady O2 solve: red-black SOR (also by blocks, for a rank of an MPI run) and geometric multigrid.

Every floating-point expression here has a twin in src/tumorca/reference/o2.py, written in the same order and the
same precision (float32 storage, float64 arithmetic), so that both give bit-identical fields.  Missing neighbours
at a no-flux edge are skipped here and added as 0.0 there, which is exact.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.math cimport fabs
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from _defs cimport TC_TUMOR_P, TC_TUMOR_Q

cnp.import_array()


cdef inline double _neighbour_sum(const float* cur, const float* ym, const float* yp, const float* zm,
                                  const float* zp, Py_ssize_t x, Py_ssize_t nx, bint dirichlet_x, double edge,
                                  int nn_base, int* nn) noexcept nogil:
    """Sum of the 6 stencil neighbours of site x of a row in the fixed order -x, +x, -y, +y, -z, +z (the
    reference adds in the same order); ``nn`` gets the neighbour count of the diagonal.  Missing y/z rows are
    passed as ghost rows (zeros, or the edge value on a Dirichlet face)."""
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
    nn[0] = n
    return s


cdef inline double _sor_site(float* cur, const float* ym, const float* yp, const float* zm, const float* zp,
                             const uint8_t* tis, const double* uptake, Py_ssize_t x, Py_ssize_t nx, int nn_base,
                             bint dirichlet_x, double edge, double k, double omega) noexcept nogil:
    """SOR update of free site x of a row; returns its Jacobi correction."""
    cdef double s, diag, gs, old, corr
    cdef int nn
    s = _neighbour_sum(cur, ym, yp, zm, zp, x, nx, dirichlet_x, edge, nn_base, &nn)
    diag = k * nn + uptake[tis[x]]
    gs = (k * s) / diag
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
    cdef int nn_base, nn
    cdef double s, diag
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
            s = _neighbour_sum(cur, ym, yp, zm, zp, x, nx, dir_x, edge_value, nn_base, &nn)
            diag = k * nn + uptake[tissue[z, y, x]]
            r[q * nx + x] = k * s - diag * cur[x]


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
