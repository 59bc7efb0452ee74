# cython: language_level=3
"""Tumour-cell rules: one step of cycling, quiescence, necrosis and division with gather-based placement.

Two passes over the lattice, both reading only the state the tip phase left (docs/model.md: phases run in order):

1. every live tumour site decides its own next state and, if it divides, proposes one empty Moore neighbour;
   decision and proposal are packed into one byte of ``prop`` (defs.h), nothing else is written but ``clock``;
2. every empty site gathers the proposals aimed at it and takes the one with the largest random key (ties go to
   the first direction in MOORE order); every live tumour site takes its decided state.

No site is written by two threads and no decision reads a value written in the same pass, so the result is the
same for any thread count.  src/tumorca/reference/tissue.py does the same in NumPy.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from _philox cimport tc_draw, tc_u01, tc_below
cimport _defs
from _moore cimport TC_DZ, TC_DY, TC_DX, Geom, make_geom, gsite, row_owned
from _rules cimport TumourRules, fill_tumour

cnp.import_array()

MOORE = tuple((TC_DZ[i], TC_DY[i], TC_DX[i]) for i in range(26))


cdef inline double _clamp01(double v) noexcept nogil:
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


def tumor_update(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const float[:, :, ::1] o2,
                 uint8_t[:, :, ::1] prop, uint8_t[::1] rowflags, uint64_t seed, uint32_t step, object rules,
                 int num_threads, object origin=None, object gshape=None, object box=None):
    """Advance every tumour cell by one step in place (see the module docstring for the rules' order).

    Parameters
    ----------
    tissue, clock, o2 : ndarray
        The state (3D, C order); ``tissue`` and ``clock`` are updated.
    prop, rowflags : ndarray
        Scratch space: one byte per site (same shape as tissue) and one per row (nz*ny).
    seed, step : int
        The random-number key and the step (counter words).
    rules : tumorca.rules.TumourRules
        The tumour rules.
    num_threads : int
        OpenMP threads.
    origin, gshape, box : tuple, optional
        Place a block of a decomposed lattice (tumorca.parallel): the global index of local [0, 0, 0], the
        global lattice shape and the owned part of the local array (((z0, z1), (y0, y1), (x0, x1))); the
        default is the whole lattice.

    Returns
    -------
    int
        The number of daughter cells placed (in ``box``).
    """
    cdef TumourRules R
    fill_tumour(&R, rules)
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r
    cdef Geom G
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if rowflags.shape[0] != nrows:
        raise ValueError("rowflags must hold one byte per row")
    born_arr = np.zeros(nrows, dtype=np.int64)
    cdef int64_t[::1] born = born_arr
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            rowflags[r] = _decide_row(tissue, clock, o2, prop, r // ny, r % ny, seed, step, &R, &G)
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            born[r] = _apply_row(tissue, clock, prop, rowflags, r // ny, r % ny, seed, step, &G)
    return int(born_arr.sum())


# Row flags written by pass 1: TC_ROW_SITES = the row holds live tumour, TC_ROW_PROPOSALS = it holds a division
# proposal.
cdef uint8_t _decide_row(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const float[:, :, ::1] o2,
                         uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y, uint64_t seed, uint32_t step,
                         const TumourRules* R, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t x, zz, yy, xx
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef uint8_t s, new, flags = 0
    cdef int d, k, j, qt, dirn
    cdef double o, p_nec, p_div
    for x in range(nx):
        s = tissue[z, y, x]
        if s != _defs.TC_TUMOR_P and s != _defs.TC_TUMOR_Q:
            prop[z, y, x] = 0
            continue
        flags |= _defs.TC_ROW_SITES
        site = gsite(G, z, y, x)
        tc_draw(seed, step, site, _defs.TC_PURPOSE_TUMOR, w)
        o = o2[z, y, x]
        new = s
        dirn = 0
        qt = 0
        p_nec = R.p_nec_max * _clamp01((R.necrosis_o2_onset - o) / (R.necrosis_o2_onset - R.necrosis_o2_full))
        if tc_u01(w[0]) < p_nec:
            new = _defs.TC_NECROTIC
        elif s == _defs.TC_TUMOR_P:
            if o < R.quiescence_o2_enter:
                new = _defs.TC_TUMOR_Q
            else:
                p_div = R.p_div_max * _clamp01((o - R.cycle_o2_low) / (R.cycle_o2_high - R.cycle_o2_low))
                if tc_u01(w[1]) < p_div:
                    k = 0
                    for d in range(26):
                        zz = z + TC_DZ[d]
                        yy = y + TC_DY[d]
                        xx = x + TC_DX[d]
                        if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx and tissue[zz, yy, xx] == _defs.TC_EMPTY:
                            k = k + 1
                    if k > 0:
                        j = <int>tc_below(w[2], <uint32_t>k)
                        for d in range(26):
                            zz = z + TC_DZ[d]
                            yy = y + TC_DY[d]
                            xx = x + TC_DX[d]
                            if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx and tissue[zz, yy, xx] == _defs.TC_EMPTY:
                                if j == 0:
                                    dirn = d + 1
                                    break
                                j = j - 1
                        flags |= _defs.TC_ROW_PROPOSALS
        else:
            qt = clock[z, y, x] + 1
            if qt >= R.q_death_steps:
                new = _defs.TC_NECROTIC
            elif o > R.quiescence_o2_exit:
                new = _defs.TC_TUMOR_P
        if new == _defs.TC_TUMOR_Q:
            # saturate: the clock is 16 bits (Params keeps q_death_steps below the cap)
            clock[z, y, x] = _defs.clock_sat(qt) if s == _defs.TC_TUMOR_Q else 0
        else:
            clock[z, y, x] = 0
        prop[z, y, x] = <uint8_t>(dirn | (new << _defs.TC_PROP_STATE_SHIFT))
    return flags


cdef int64_t _apply_row(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                     const uint8_t[::1] rowflags, Py_ssize_t z, Py_ssize_t y, uint64_t seed,
                     uint32_t step, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t x, zz, yy, xx
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef int64_t best
    cdef uint8_t s
    cdef int d
    cdef bint near_proposal = False
    cdef bint counted = row_owned(G, z, y)
    cdef int64_t births = 0
    # Only rows next to a proposing row can receive a daughter: skip the 26-neighbour gather elsewhere.
    for zz in range(z - 1, z + 2):
        for yy in range(y - 1, y + 2):
            if 0 <= zz < nz and 0 <= yy < ny and (rowflags[zz * ny + yy] & _defs.TC_ROW_PROPOSALS):
                near_proposal = True
    if not near_proposal and not (rowflags[z * ny + y] & _defs.TC_ROW_SITES):
        return 0
    for x in range(nx):
        s = tissue[z, y, x]
        if s == _defs.TC_EMPTY:
            if not near_proposal:
                continue
            best = -1
            for d in range(26):
                zz = z - TC_DZ[d]
                yy = y - TC_DY[d]
                xx = x - TC_DX[d]
                if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                    if (prop[zz, yy, xx] & _defs.TC_PROP_DIR_MASK) == d + 1:
                        site = gsite(G, zz, yy, xx)
                        tc_draw(seed, step, site, _defs.TC_PURPOSE_TUMOR, w)
                        if <int64_t>w[3] > best:
                            best = <int64_t>w[3]
            if best >= 0:
                tissue[z, y, x] = _defs.TC_TUMOR_P
                clock[z, y, x] = 0
                if counted and G.bx0 <= x < G.bx1:
                    births += 1
        elif s == _defs.TC_TUMOR_P or s == _defs.TC_TUMOR_Q:
            tissue[z, y, x] = prop[z, y, x] >> _defs.TC_PROP_STATE_SHIFT
    return births
