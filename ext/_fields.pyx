# cython: language_level=3
"""Field kernels of the slow fields: secretion and release, and the implicit (backward-Euler) axis step.

Every floating-point expression here has a twin in src/tumorca/reference/fields.py, written in the same order and
the same precision (float32 storage, float64 arithmetic), so that both give bit-identical fields.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free
from _defs cimport TC_TUMOR_P, TC_TUMOR_Q
from _rules cimport SecretionRules, fill_secretion

cnp.import_array()


cdef void _thomas_block(float* base, Py_ssize_t n, Py_ssize_t si, Py_ssize_t sj, Py_ssize_t bw,
                        const double* cp, const double* m, double alpha, double gain, double edge_add,
                        double* buf) noexcept nogil:
    """Solve the constant-coefficient tridiagonal system along one axis for ``bw`` lines at once.

    Element i of line j is base[i*si + j*sj]; buf holds n*bw doubles of forward-sweep results.  Sweeping several
    independent lines together keeps the pipeline busy: along one line each value waits for the previous one.
    """
    cdef Py_ssize_t i, j
    cdef double d, x
    for i in range(n):
        for j in range(bw):
            d = base[i * si + j * sj] * gain
            if i == 0:
                d = d + edge_add
            if i == n - 1:
                d = d + edge_add
            if i == 0:
                buf[j] = d * m[0]
            else:
                buf[i * bw + j] = (d + alpha * buf[(i - 1) * bw + j]) * m[i]
    for j in range(bw):
        base[(n - 1) * si + j * sj] = <float>buf[(n - 1) * bw + j]
    for i in range(n - 2, -1, -1):
        for j in range(bw):
            # x_{i+1} is re-read from the double buffer, never from the float32 store.
            x = buf[i * bw + j] - cp[i] * buf[(i + 1) * bw + j]
            buf[i * bw + j] = x
            base[i * si + j * sj] = <float>x


def implicit_axis(float[:, :, ::1] c, int axis, const double[::1] cp, const double[::1] m, double alpha,
                  double gain, double edge_add, int num_threads):
    """Backward-Euler diffusion along one axis (0 = z, 1 = y, 2 = x), in place.

    Each line along ``axis`` is multiplied by ``gain``, gets ``edge_add`` at both ends, and is solved with the
    tridiagonal factors (cp, m) of ``(1 + alpha*nn_i) x_i - alpha (x_{i-1} + x_{i+1})``.
    """
    cdef Py_ssize_t nz = c.shape[0], ny = c.shape[1], nx = c.shape[2]
    cdef Py_ssize_t n, outer, inner, si, sj, ostride, bw, nblk, item, o, b, j0, width
    cdef Py_ssize_t BW = 32
    cdef double* buf
    cdef float* data = &c[0, 0, 0]
    cdef int failed_flag = 0
    cdef int* failed = &failed_flag
    # Lines along ``axis`` are grouped in blocks of up to BW neighbouring lines (index j, stride sj).
    if axis == 2:
        outer, n, inner, si, sj = nz, nx, ny, 1, nx
    elif axis == 1:
        outer, n, inner, si, sj = nz, ny, nx, nx, 1
    elif axis == 0:
        outer, n, inner, si, sj = 1, nz, ny * nx, ny * nx, 1
    else:
        raise ValueError("axis must be 0, 1 or 2")
    if cp.shape[0] != n or m.shape[0] != n:
        raise ValueError("tridiagonal factors do not match the axis length")
    ostride = n * inner
    bw = BW if inner >= BW else inner
    nblk = (inner + bw - 1) // bw
    with nogil, parallel(num_threads=num_threads):
        buf = <double*>malloc(n * bw * sizeof(double))
        if buf != NULL:
            for item in prange(outer * nblk, schedule="static"):
                o = item // nblk
                b = item % nblk
                j0 = b * bw
                width = bw if j0 + bw <= inner else inner - j0
                _thomas_block(data + o * ostride + j0 * sj, n, si, sj, width, &cp[0], &m[0], alpha, gain,
                              edge_add, buf)
            free(buf)
        else:
            failed[0] = 1
    if failed_flag:
        raise MemoryError("implicit_axis: could not allocate the line buffer")
    return None


def secrete(const uint8_t[:, :, ::1] tissue, const float[:, :, ::1] o2, const uint8_t[:, :, ::1] neut,
            const float[:, :, ::1] neut_p, float[:, :, ::1] vegf_free, float[:, :, ::1] vegf_bound,
            float[:, :, ::1] mmp9, float[:, :, ::1] cxcl, object rules, int num_threads):
    """Add one step of secretion to the slow fields and let MMP9 release bound VEGF, in place.

    With the fields of ``rules`` (a tumorca.rules.SecretionRules): live tumour secretes VEGF
    ``vegf_tumor_min + (vegf_tumor_max - vegf_tumor_min)*h`` and CXCL ``cxcl_tumor_live + cxcl_tumor_hypoxic*h``
    with the hypoxia Hill factor ``h = 1/(1 + (pO2/vegf_hill_o2)^vegf_hill_n)`` (repeated multiplication); a
    neutrophil of polarisation p adds VEGF ``p*vegf_neut`` and MMP9 ``p*mmp9_neut``.  Of the VEGF,
    ``dt_vegf_free`` per unit rate goes to the free field and ``dt_vegf_bound`` to the matrix; MMP9 and CXCL get
    ``dt_min``.  Then bound VEGF is released by backward Euler, ``Vb' = Vb/(1 + krel_dt*M)``, and what leaves Vb
    joins V_free.
    """
    cdef SecretionRules R
    fill_secretion(&R, rules)
    # local copies: the loop below reads them per site
    cdef double vt_min = R.vegf_tumor_min, vt_max = R.vegf_tumor_max, o2_half = R.vegf_hill_o2
    cdef int hill_n = R.vegf_hill_n
    cdef double dt_free = R.dt_vegf_free, dt_bound = R.dt_vegf_bound, dt = R.dt_min
    cdef double c_live = R.cxcl_tumor_live, c_hyp = R.cxcl_tumor_hypoxic
    cdef double v_neut = R.vegf_neut, m_neut = R.mmp9_neut, krel_dt = R.krel_dt
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r, z, y, x
    cdef uint8_t s
    cdef int k
    cdef double sv, sm, sc, q, qn, h, pp, vf, vb, m, m32, vbn
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            z = r // ny
            y = r % ny
            for x in range(nx):
                s = tissue[z, y, x]
                sv = 0.0
                sm = 0.0
                sc = 0.0
                if s == TC_TUMOR_P or s == TC_TUMOR_Q:
                    q = o2[z, y, x] / o2_half
                    qn = q
                    for k in range(1, hill_n):
                        qn = qn * q
                    h = 1.0 / (1.0 + qn)
                    sv = vt_min + (vt_max - vt_min) * h
                    sc = c_live + c_hyp * h
                if neut[z, y, x]:
                    pp = neut_p[z, y, x]
                    sv = sv + pp * v_neut
                    sm = pp * m_neut
                if sv == 0.0 and sm == 0.0 and sc == 0.0 and (vegf_bound[z, y, x] == 0.0 or mmp9[z, y, x] == 0.0):
                    continue  # nothing changes here (the arithmetic below would leave every value as it is)
                vf = vegf_free[z, y, x] + dt_free * sv
                vb = vegf_bound[z, y, x] + dt_bound * sv
                m = mmp9[z, y, x] + dt * sm
                mmp9[z, y, x] = <float>m
                cxcl[z, y, x] = <float>(cxcl[z, y, x] + dt * sc)
                m32 = <float>m
                vbn = vb / (1.0 + krel_dt * m32)
                vf = vf + (vb - vbn)
                vegf_free[z, y, x] = <float>vf
                vegf_bound[z, y, x] = <float>vbn
    return None
