# cython: language_level=3
"""Tumour-cell rules: one step of cycling, quiescence, necrosis and division with gather-based placement.

Two passes over the lattice, both reading only the state the tip phase left (docs/model.md: phases run in order):

1. every live tumour site decides its own next state and, if it divides, proposes one empty Moore neighbour;
   decision and proposal are packed into one byte of ``prop`` (defs.h), nothing else is written but ``clock``;
2. every empty site gathers the proposals aimed at it and takes the one with the largest random key (ties go to
   the first direction in MOORE order); every live tumour site takes its decided state.

With ``push_range`` R >= 2 a dividing cell with no empty Moore neighbour may push (docs/model.md §2.6): pass 1
picks the Moore ray on which the nearest empty site lies (at most R steps, every site before it a tumour or
necrotic cell); its direction goes into ``prop`` like a division's, and the ray's length is found again from
``tissue`` when needed (no extra scratch).  Every event (division or push) claims the sites of its ray from the
dividing cell to its target and executes only if its key (word 3 of its draw, then the larger global site) is
larger than that of every other event claiming one of those sites.  If some row holds a push, three more passes:

* resolve (before pass 2, reads ``prop`` and ``tissue``): each event near a push checks the events that claim its
  sites and marks itself in ``clock``, which is 0 at every dividing cell after pass 1: 1 = lost, 2 = won push;
* after pass 2 (which skips lost divisions): the winning pushes, collected into a list, each shift the cells of
  their own ray one site outward (the winners' rays are disjoint: no two threads touch a site) and place the
  daughter on the first site;
* rows that held events reset ``clock`` to 0 under cycling cells (clearing the marks).

No site is written by two threads and no decision reads a value written in the same pass, so the result is the
same for any thread count.  src/tumorca/reference/tissue.py does the same in NumPy.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from _philox cimport tc_draw, tc_u01, tc_below
cimport _defs
from _moore cimport TC_DZ, TC_DY, TC_DX, Geom, make_geom, gsite, row_owned, site_owned
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
    cdef bint pushes = False
    cdef int64_t[::1] wins
    cdef int64_t[::1] winners
    cdef int64_t nwin = 0, i, pushed = 0
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            rowflags[r] = _decide_row(tissue, clock, o2, prop, r // ny, r % ny, seed, step, &R, &G)
        if R.push_range >= 2:
            for r in range(nrows):
                if rowflags[r] & _defs.TC_ROW_PUSH:
                    pushes = True
                    break
    if pushes:
        wins_arr = np.zeros(nrows, dtype=np.int64)
        wins = wins_arr
        with nogil:
            for r in prange(nrows, schedule="static", num_threads=num_threads):
                wins[r] = _resolve_row(tissue, clock, prop, rowflags, r // ny, r % ny, seed, step, R.push_range,
                                       &G)
        ends = np.cumsum(wins_arr)
        nwin = int(wins_arr.sum())
        winners = np.empty(nwin, dtype=np.int64)
        wins = ends - wins_arr          # where each row's winners start
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            born[r] = _apply_row(tissue, clock, prop, rowflags, r // ny, r % ny, seed, step, &G, pushes)
    if pushes:
        with nogil:
            # collect the winning pushes (row by row, read only), then shift each one's ray
            for r in prange(nrows, schedule="static", num_threads=num_threads):
                _collect_row(clock, prop, r // ny, r % ny, wins[r], winners)
            for i in prange(nwin, schedule="static", num_threads=num_threads):
                pushed += _shift(tissue, clock, prop, winners[i], R.push_range, &G)
            for r in prange(nrows, schedule="static", num_threads=num_threads):
                if rowflags[r] & _defs.TC_ROW_PROPOSALS:
                    _clear_marks_row(tissue, clock, r // ny, r % ny)
    return int(born_arr.sum()) + int(pushed)


# Marks the resolve pass leaves in ``clock`` at a dividing cell (whose clock pass 1 set to 0).
cdef enum:
    _LOST = 1
    _WON_PUSH = 2


cdef int _ray_length(const uint8_t[:, :, ::1] tissue, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, int d,
                     int rng) noexcept nogil:
    """Steps along Moore direction ``d`` from (z, y, x) to the first empty site, if it lies within ``rng`` steps
    and every site before it holds a tumour or necrotic cell; else 0 (the array's edge blocks)."""
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t zz, yy, xx
    cdef int k
    cdef uint8_t t
    for k in range(1, rng + 1):
        zz = z + k * TC_DZ[d]
        yy = y + k * TC_DY[d]
        xx = x + k * TC_DX[d]
        if not (0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx):
            return 0
        t = tissue[zz, yy, xx]
        if t == _defs.TC_EMPTY:
            return k
        if t != _defs.TC_TUMOR_P and t != _defs.TC_TUMOR_Q and t != _defs.TC_NECROTIC:
            return 0
    return 0


cdef inline bint _beats(uint32_t ka, uint64_t ga, uint32_t kb, uint64_t gb) noexcept nogil:
    """Event a (key word, global site) outranks event b."""
    return ka > kb or (ka == kb and ga > gb)


cdef int64_t _resolve_row(const uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                          const uint8_t[::1] rowflags, Py_ssize_t z, Py_ssize_t y, uint64_t seed, uint32_t step,
                          int rng, const Geom* G) noexcept nogil:
    """Mark each event of row (z, y) that loses to an event claiming one of its sites (clock = _LOST) and each
    push that wins (clock = _WON_PUSH); returns the number of winning pushes.  Only events within rng + 1 rows
    of a push can meet one; elsewhere pass 2's gather alone decides, as without pushing."""
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t x, zz, yy, cz, cy, cx, qz, qy, qx
    cdef uint32_t w[4]
    cdef uint32_t key, kf
    cdef uint64_t g, gf
    cdef int d, e, k, m, L
    cdef bint near = False, lost
    cdef int64_t nwon = 0
    cdef uint8_t t
    if not (rowflags[z * ny + y] & _defs.TC_ROW_PROPOSALS):
        return 0
    for zz in range(z - rng - 1, z + rng + 2):
        for yy in range(y - rng - 1, y + rng + 2):
            if 0 <= zz < nz and 0 <= yy < ny and (rowflags[zz * ny + yy] & _defs.TC_ROW_PUSH):
                near = True
    if not near:
        return 0
    for x in range(nx):
        d = (prop[z, y, x] & _defs.TC_PROP_DIR_MASK) - 1
        if d < 0:
            continue
        g = gsite(G, z, y, x)
        tc_draw(seed, step, g, _defs.TC_PURPOSE_TUMOR, w)
        key = w[3]
        L = _ray_length(tissue, z, y, x, d, rng)
        lost = False
        for k in range(L + 1):
            cz = z + k * TC_DZ[d]
            cy = y + k * TC_DY[d]
            cx = x + k * TC_DX[d]
            if k > 0 and (prop[cz, cy, cx] & _defs.TC_PROP_DIR_MASK) != 0:
                gf = gsite(G, cz, cy, cx)
                tc_draw(seed, step, gf, _defs.TC_PURPOSE_TUMOR, w)
                if _beats(w[3], gf, key, g):
                    lost = True
                    break
            # events whose ray reaches (cz, cy, cx): walk back along each direction until an empty site
            for e in range(26):
                for m in range(1, rng + 1):
                    qz = cz - m * TC_DZ[e]
                    qy = cy - m * TC_DY[e]
                    qx = cx - m * TC_DX[e]
                    if not (0 <= qz < nz and 0 <= qy < ny and 0 <= qx < nx):
                        break
                    t = tissue[qz, qy, qx]
                    if t == _defs.TC_EMPTY:
                        break
                    if (prop[qz, qy, qx] & _defs.TC_PROP_DIR_MASK) == e + 1 and not (qz == z and qy == y and qx == x):
                        gf = gsite(G, qz, qy, qx)
                        tc_draw(seed, step, gf, _defs.TC_PURPOSE_TUMOR, w)
                        if _beats(w[3], gf, key, g):
                            lost = True
                            break
                if lost:
                    break
            if lost:
                break
        if lost:
            clock[z, y, x] = _LOST
        elif L >= 2:
            clock[z, y, x] = _WON_PUSH
            nwon += 1
    return nwon


cdef void _collect_row(const uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y,
                       int64_t at, int64_t[::1] winners) noexcept nogil:
    """Write the flat local index of each winning push of row (z, y) into ``winners`` from ``at`` on."""
    cdef Py_ssize_t ny = prop.shape[1], nx = prop.shape[2], x
    for x in range(nx):
        if (prop[z, y, x] & _defs.TC_PROP_DIR_MASK) != 0 and clock[z, y, x] == _WON_PUSH:
            winners[at] = (z * ny + y) * nx + x
            at += 1


cdef int64_t _shift(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                    int64_t flat, int rng, const Geom* G) noexcept nogil:
    """Carry out one winning push: the cells of its ray move one site outward with their clocks (0 under a
    cycling cell: it may carry a mark), the daughter takes the first site.  Returns 1 if that site is owned."""
    cdef Py_ssize_t ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t z = flat // (ny * nx), y = (flat // nx) % ny, x = flat % nx
    cdef int d = (prop[z, y, x] & _defs.TC_PROP_DIR_MASK) - 1
    cdef int L = _ray_length(tissue, z, y, x, d, rng)   # pass 2 kept the ray's cells and its empty end
    cdef int k
    cdef uint8_t t
    cdef Py_ssize_t az, ay, ax, bz, by, bx
    for k in range(L, 1, -1):
        az = z + k * TC_DZ[d]
        ay = y + k * TC_DY[d]
        ax = x + k * TC_DX[d]
        bz = az - TC_DZ[d]
        by = ay - TC_DY[d]
        bx = ax - TC_DX[d]
        t = tissue[bz, by, bx]
        tissue[az, ay, ax] = t
        clock[az, ay, ax] = 0 if t == _defs.TC_TUMOR_P else clock[bz, by, bx]
    az = z + TC_DZ[d]
    ay = y + TC_DY[d]
    ax = x + TC_DX[d]
    tissue[az, ay, ax] = _defs.TC_TUMOR_P
    clock[az, ay, ax] = 0
    clock[z, y, x] = 0
    return 1 if site_owned(G, az, ay, ax) else 0


cdef void _clear_marks_row(const uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, Py_ssize_t z,
                           Py_ssize_t y) noexcept nogil:
    cdef Py_ssize_t nx = tissue.shape[2], x
    for x in range(nx):
        if tissue[z, y, x] == _defs.TC_TUMOR_P:
            clock[z, y, x] = 0


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
                    elif R.push_range >= 2:
                        dirn = _push_direction(tissue, z, y, x, R.push_range, w[2])
                        if dirn:
                            flags |= _defs.TC_ROW_PROPOSALS | _defs.TC_ROW_PUSH
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


cdef int _push_direction(const uint8_t[:, :, ::1] tissue, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, int rng,
                         uint32_t word) noexcept nogil:
    """1 + the Moore direction a cell with no empty neighbour pushes along, or 0: among the rays whose nearest
    empty site lies within ``rng`` steps behind only tumour or necrotic cells, those with the least squared
    Euclidean length L**2 * (nonzero components); ``below(word, count)`` picks among ties in MOORE order."""
    cdef int lens[26]
    cdef int d, m, best = 0x7FFFFFFF, count = 0, j
    for d in range(26):
        lens[d] = _ray_length(tissue, z, y, x, d, rng)
        if lens[d] > 0:
            m = lens[d] * lens[d] * (TC_DZ[d] * TC_DZ[d] + TC_DY[d] * TC_DY[d] + TC_DX[d] * TC_DX[d])
            if m < best:
                best = m
                count = 1
            elif m == best:
                count = count + 1
    if count == 0:
        return 0
    j = <int>tc_below(word, <uint32_t>count)
    for d in range(26):
        if lens[d] > 0 and lens[d] * lens[d] * (TC_DZ[d] * TC_DZ[d] + TC_DY[d] * TC_DY[d] + TC_DX[d] * TC_DX[d]) == best:
            if j == 0:
                return d + 1
            j = j - 1
    return 0


cdef int64_t _apply_row(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                     const uint8_t[::1] rowflags, Py_ssize_t z, Py_ssize_t y, uint64_t seed,
                     uint32_t step, const Geom* G, bint marks) noexcept nogil:
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t x, zz, yy, xx
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef int64_t best
    cdef uint8_t s
    cdef int d
    cdef bint near_proposal = False, lost
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
            lost = False
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
                            # a division the resolve pass marked lost (to a push) keeps its rank here
                            lost = marks and clock[zz, yy, xx] == _LOST
            if best >= 0 and not lost:
                tissue[z, y, x] = _defs.TC_TUMOR_P
                clock[z, y, x] = 0
                if counted and G.bx0 <= x < G.bx1:
                    births += 1
        elif s == _defs.TC_TUMOR_P or s == _defs.TC_TUMOR_Q:
            tissue[z, y, x] = prop[z, y, x] >> _defs.TC_PROP_STATE_SHIFT
    return births
