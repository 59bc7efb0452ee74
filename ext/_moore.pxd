# Parallel loops split rows statically (dynamic chunks measured slower on an idle machine and did not help on a
# busy one; passive OpenMP waiting did, see tumorca/__init__.py).  Every pass writes per-row or per-site
# results, so no schedule could change the result.
#
# The 26 Moore directions in lexicographic (dz, dy, dx) order, shared by every kernel that looks at neighbours.
# src/tumorca/_constants.py builds the same list (MOORE); tests check they agree.
cdef extern from *:
    """
    static const int TC_DZ[26] = {-1,-1,-1,-1,-1,-1,-1,-1,-1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const int TC_DY[26] = {-1,-1,-1, 0, 0, 0, 1, 1, 1,-1,-1,-1, 0, 0, 1, 1, 1,-1,-1,-1, 0, 0, 0, 1, 1, 1};
    static const int TC_DX[26] = {-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1};
    """
    const int* TC_DZ
    const int* TC_DY
    const int* TC_DX


cdef inline bint inside(Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, Py_ssize_t nz, Py_ssize_t ny,
                        Py_ssize_t nx) noexcept nogil:
    return 0 <= z < nz and 0 <= y < ny and 0 <= x < nx


cdef inline bint near_flag(const unsigned char[::1] rowflags, Py_ssize_t z, Py_ssize_t y, Py_ssize_t nz,
                           Py_ssize_t ny, unsigned char bit) noexcept nogil:
    """True if row (z, y) or a row next to it (in y and z) has ``bit`` set in ``rowflags``."""
    cdef Py_ssize_t zz, yy
    for zz in range(z - 1, z + 2):
        for yy in range(y - 1, y + 2):
            if 0 <= zz < nz and 0 <= yy < ny and (rowflags[zz * ny + yy] & bit):
                return True
    return False


cdef inline int weighted_pick(const double* weights, double target) noexcept nogil:
    """First Moore direction whose cumulative weight exceeds ``target`` (= u * total weight); the last positive
    weight if rounding leaves none.  The NumPy reference (``_choose``) accumulates in the same order."""
    cdef double cum = 0.0
    cdef int d, last = -1
    for d in range(26):
        if weights[d] > 0.0:
            cum = cum + weights[d]
            last = d
            if target < cum:
                return d
    return last
