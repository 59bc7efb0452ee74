# Parallel loops split rows statically (dynamic chunks measured slower on an idle machine and did not help on a
# busy one; passive OpenMP waiting did, see tumorca/__init__.py).  Every pass writes per-row or per-site
# results, so no schedule could change the result.
#
from libc.stdint cimport uint64_t, int64_t

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


# Placement of a kernel's local array in the global lattice (MPI domain decomposition, tumorca.parallel).
# Random draws and tie-breaks key on the *global* site index, so a block computes exactly what the serial run
# computes there; counts returned by a kernel cover only the owned box, so that summing them over ranks counts
# every site once.  The serial engine passes origin 0, global shape = local shape and box = whole array.
cdef struct Geom:
    Py_ssize_t oz, oy, ox                   # global index of local element [0, 0, 0]
    Py_ssize_t gnz, gny, gnx                # global lattice shape
    Py_ssize_t bz0, bz1, by0, by1, bx0, bx1  # owned box in local indices (half-open)


cdef inline int make_geom(Geom* g, Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx, object origin, object gshape,
                          object box) except -1:
    """Fill ``g`` for a local array of shape (nz, ny, nx); None means serial (origin 0, global = local, box =
    everything)."""
    if origin is None:
        origin = (0, 0, 0)
    if gshape is None:
        gshape = (nz, ny, nx)
    if box is None:
        box = ((0, nz), (0, ny), (0, nx))
    g.oz, g.oy, g.ox = origin
    g.gnz, g.gny, g.gnx = gshape
    (g.bz0, g.bz1), (g.by0, g.by1), (g.bx0, g.bx1) = box
    if not (0 <= g.oz and g.oz + nz <= g.gnz and 0 <= g.oy and g.oy + ny <= g.gny and 0 <= g.ox
            and g.ox + nx <= g.gnx):
        raise ValueError(f"local array {(nz, ny, nx)} at {tuple(origin)} does not fit the lattice {tuple(gshape)}")
    if not (0 <= g.bz0 <= g.bz1 <= nz and 0 <= g.by0 <= g.by1 <= ny and 0 <= g.bx0 <= g.bx1 <= nx):
        raise ValueError(f"owned box {box} is not inside the local array {(nz, ny, nx)}")
    return 0


cdef inline uint64_t gsite(const Geom* g, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    """Global site index (z*ny + y)*nx + x of local (z, y, x): the random-number counter and tie-break key."""
    return <uint64_t>(((z + g.oz) * g.gny + (y + g.oy)) * g.gnx + (x + g.ox))


cdef inline void glocal(const Geom* g, int64_t s, Py_ssize_t* z, Py_ssize_t* y, Py_ssize_t* x) noexcept nogil:
    """Local (z, y, x) of global site index ``s`` (inverse of gsite)."""
    x[0] = s % g.gnx - g.ox
    y[0] = (s // g.gnx) % g.gny - g.oy
    z[0] = s // (g.gnx * g.gny) - g.oz


cdef inline bint row_owned(const Geom* g, Py_ssize_t z, Py_ssize_t y) noexcept nogil:
    return g.bz0 <= z < g.bz1 and g.by0 <= y < g.by1


cdef inline bint site_owned(const Geom* g, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    return g.bz0 <= z < g.bz1 and g.by0 <= y < g.by1 and g.bx0 <= x < g.bx1
