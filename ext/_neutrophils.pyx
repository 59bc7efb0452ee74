# cython: language_level=3
"""Neutrophil kernels: recruitment, death, polarisation, N1 killing and the chemotactic random walk.

The neutrophil layer shares sites with the tissue: at most one neutrophil per site.  As in the other kernels
every pass writes only the site it visits, and conflicts (two neutrophils moving into one site, several killers
on one tumour cell) are resolved by the target gathering its neighbours' proposals; src/tumorca/reference/neutrophils.py
does the same in NumPy.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from _philox cimport tc_draw, tc_u01, tc_below
cimport _defs
from _moore cimport TC_DZ, TC_DY, TC_DX, inside as _inside, near_flag, weighted_pick, Geom, make_geom, gsite, site_owned
from _rules cimport NeutrophilRules, fill_neutrophils

cnp.import_array()


cdef inline bint _live(uint8_t s) noexcept nogil:
    return s == _defs.TC_TUMOR_P or s == _defs.TC_TUMOR_Q


# ---------------------------------------------------------------------------------------------------------------
# One step of the neutrophil layer is three kernels, called in this order by tumorca.engine (which refreshes a
# block's halo between sub-moves); the numbers named are the fields of ``rules``, a tumorca.rules.NeutrophilRules.
# 1. ``neutrophil_life_kill``: each neutrophil (NEUT draw w0..w2) dies with probability ``p_death``; otherwise it
#    picks a kill target with probability ``p_kill_max*(1 - p)`` (w1) among the live tumour on its own site and
#    its Moore neighbours (``below(w2, k)``; own site first), relaxes p toward p* (``p_star + (p - p_star)*g_pol``)
#    and ages one step.  A perfused site without a neutrophil recruits one with probability
#    ``p_recruit*C/(C + cxcl_half)`` (w0), with p = p_star and age 0.  Each live tumour cell targeted by any
#    neutrophil dies and is cleared (stroma).
# 2. ``neutrophil_submove`` for each of ``substeps`` sub-moves: each neutrophil proposes a free Moore neighbour
#    (weights ``1 + chemotaxis*max(0, C_j - C_i)``, NEUT_MOVE draw w1, purpose ``| substep << 8``); each free site
#    takes the proposal with the largest key (w0), and the winner moves there with its polarisation and age.
#    A site its neutrophil left in the previous sub-move (its proposal still in ``prop``) is cleared first.
# 3. ``neutrophil_clear`` after the last sub-move (``prop`` holds its proposals).
# ``origin``, ``gshape`` and ``box`` place a block of a decomposed lattice (see tumorca._tissue.tumor_update).
# ---------------------------------------------------------------------------------------------------------------
def neutrophil_life_kill(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] perfused,
                         const float[:, :, ::1] cxcl, uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p,
                         uint16_t[:, :, ::1] neut_age, uint8_t[:, :, ::1] prop, uint8_t[::1] rowflags,
                         uint64_t seed, uint32_t step, object rules, int num_threads, object origin=None,
                         object gshape=None, object box=None):
    """Recruitment, death, polarisation and killing (part 1 above); returns
    (recruited, died, killed) in ``box``."""
    cdef NeutrophilRules R
    fill_neutrophils(&R, rules)
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r
    cdef Geom G
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if rowflags.shape[0] != nrows:
        raise ValueError("rowflags must hold one byte per row")
    counts_arr = np.zeros((nrows, 3), dtype=np.int64)
    cdef int64_t[:, ::1] counts = counts_arr
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            rowflags[r] = _life_row(tissue, perfused, cxcl, neut, neut_p, neut_age, prop, r // ny, r % ny, seed,
                                    step, &R, &counts[r, 0], &G)
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            if near_flag(rowflags, r // ny, r % ny, nz, ny, _defs.TC_ROW_PROPOSALS):
                counts[r, 2] = _kill_row(tissue, clock, prop, r // ny, r % ny, &G)
    tot = counts_arr.sum(axis=0)
    return int(tot[0]), int(tot[1]), int(tot[2])


def neutrophil_submove(uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                       const float[:, :, ::1] cxcl, uint8_t[:, :, ::1] prop, uint8_t[::1] rowflags, uint64_t seed,
                       uint32_t step, int substep, object rules, int num_threads, object origin=None,
                       object gshape=None, object box=None):
    """Sub-move ``substep`` (part 2 above): propose, then gather and move."""
    cdef NeutrophilRules R
    fill_neutrophils(&R, rules)
    cdef Py_ssize_t nz = neut.shape[0], ny = neut.shape[1], nx = neut.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r
    cdef uint32_t purpose = <uint32_t>(_defs.TC_PURPOSE_NEUT_MOVE | (substep << 8))
    cdef Geom G
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if rowflags.shape[0] != nrows:
        raise ValueError("rowflags must hold one byte per row")
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            rowflags[r] = _propose_row(neut, neut_p, neut_age, cxcl, prop, r // ny, r % ny, seed, step,
                                       purpose, R.chemotaxis, &G)
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            _move_row(neut, neut_p, neut_age, prop, rowflags, r // ny, r % ny, seed, step, purpose, &G)
    return None


def neutrophil_clear(const uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                     const uint8_t[:, :, ::1] prop, int num_threads):
    """End of part 3: zero polarisation and age where a neutrophil left in the last sub-move."""
    cdef Py_ssize_t ny = neut.shape[1], nrows = neut.shape[0] * neut.shape[1], r
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            _clear_row(neut, neut_p, neut_age, prop, r // ny, r % ny)
    return None


# Returns TC_ROW_PROPOSALS if the row holds a kill proposal, so the kill pass can skip rows far from any.
cdef uint8_t _life_row(const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] perfused, const float[:, :, ::1] cxcl,
                    uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                    uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y, uint64_t seed, uint32_t step,
                    const NeutrophilRules* R, int64_t* counts, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2], x, zz, yy, xx
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef int d, kk, j
    cdef double p, c, prob
    cdef uint8_t out, flag = 0
    cdef bint owned
    for x in range(nx):
        out = 0
        owned = site_owned(G, z, y, x)
        if neut[z, y, x]:
            site = gsite(G, z, y, x)
            tc_draw(seed, step, site, _defs.TC_PURPOSE_NEUT, w)
            if tc_u01(w[0]) < R.p_death:
                neut[z, y, x] = 0
                neut_p[z, y, x] = 0.0
                neut_age[z, y, x] = 0
                if owned:
                    counts[1] += 1
                prop[z, y, x] = 0
                continue
            p = neut_p[z, y, x]
            if tc_u01(w[1]) < R.p_kill_max * (1.0 - p):
                kk = 1 if _live(tissue[z, y, x]) else 0
                for d in range(26):
                    zz = z + TC_DZ[d]
                    yy = y + TC_DY[d]
                    xx = x + TC_DX[d]
                    if _inside(zz, yy, xx, nz, ny, nx) and _live(tissue[zz, yy, xx]):
                        kk += 1
                if kk > 0:
                    j = <int>tc_below(w[2], <uint32_t>kk)
                    if _live(tissue[z, y, x]):
                        if j == 0:
                            out = _defs.TC_KILL_OWN_SITE
                        j -= 1
                    if out == 0:
                        for d in range(26):
                            zz = z + TC_DZ[d]
                            yy = y + TC_DY[d]
                            xx = x + TC_DX[d]
                            if _inside(zz, yy, xx, nz, ny, nx) and _live(tissue[zz, yy, xx]):
                                if j == 0:
                                    out = <uint8_t>(d + 1)
                                    break
                                j -= 1
            neut_p[z, y, x] = <float>(R.p_star + (p - R.p_star) * R.g_pol)
            neut_age[z, y, x] = _defs.clock_sat(neut_age[z, y, x] + 1)
        elif perfused[z, y, x] and R.p_recruit > 0.0:
            site = gsite(G, z, y, x)
            tc_draw(seed, step, site, _defs.TC_PURPOSE_NEUT, w)
            c = cxcl[z, y, x]
            prob = R.p_recruit * (c / (c + R.cxcl_half))
            if tc_u01(w[0]) < prob:
                neut[z, y, x] = 1
                neut_p[z, y, x] = <float>R.p_star
                neut_age[z, y, x] = 0
                if owned:
                    counts[0] += 1
        if out:
            flag = _defs.TC_ROW_PROPOSALS
        prop[z, y, x] = out
    return flag


cdef int64_t _kill_row(uint8_t[:, :, ::1] tissue, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                       Py_ssize_t z, Py_ssize_t y, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = tissue.shape[0], ny = tissue.shape[1], nx = tissue.shape[2], x, zz, yy, xx
    cdef int d
    cdef bint hit
    cdef int64_t killed = 0
    for x in range(nx):
        if not _live(tissue[z, y, x]):
            continue
        hit = prop[z, y, x] == _defs.TC_KILL_OWN_SITE
        if not hit:
            for d in range(26):
                zz = z - TC_DZ[d]
                yy = y - TC_DY[d]
                xx = x - TC_DX[d]
                if _inside(zz, yy, xx, nz, ny, nx) and prop[zz, yy, xx] == d + 1:
                    hit = True
                    break
        if hit:
            tissue[z, y, x] = _defs.TC_EMPTY
            clock[z, y, x] = 0
            if site_owned(G, z, y, x):
                killed += 1
    return killed


cdef uint8_t _propose_row(const uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                          const float[:, :, ::1] cxcl, uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y,
                          uint64_t seed, uint32_t step, uint32_t purpose, double chi,
                          const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = neut.shape[0], ny = neut.shape[1], nx = neut.shape[2], x, zz, yy, xx
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef int d, pick
    cdef double c, g, total
    cdef double weights[26]
    cdef uint8_t flag = 0, out
    for x in range(nx):
        out = 0
        if not neut[z, y, x]:
            # A neutrophil that left in the last sub-move (its old proposal is still here) leaves nothing behind;
            # every other empty site already holds zeros, so it is not written (saves 6 B/site per sub-move).
            if prop[z, y, x]:
                neut_p[z, y, x] = 0.0
                neut_age[z, y, x] = 0
        else:
            c = cxcl[z, y, x]
            total = 0.0
            for d in range(26):
                weights[d] = 0.0
                zz = z + TC_DZ[d]
                yy = y + TC_DY[d]
                xx = x + TC_DX[d]
                if _inside(zz, yy, xx, nz, ny, nx) and not neut[zz, yy, xx]:
                    g = cxcl[zz, yy, xx] - c
                    if g < 0.0:
                        g = 0.0
                    weights[d] = 1.0 + chi * g
                    total = total + weights[d]
            if total > 0.0:
                site = gsite(G, z, y, x)
                tc_draw(seed, step, site, purpose, w)
                pick = weighted_pick(weights, tc_u01(w[1]) * total)
                out = <uint8_t>(pick + 1)
                flag = _defs.TC_ROW_PROPOSALS
        prop[z, y, x] = out
    return flag


cdef int64_t _move_winner(const uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x,
                          uint64_t seed, uint32_t step, uint32_t purpose, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = prop.shape[0], ny = prop.shape[1], nx = prop.shape[2], zz, yy, xx
    cdef int d
    cdef int64_t best = -1, winner = -1
    cdef uint64_t site
    cdef uint32_t w[4]
    for d in range(26):
        zz = z - TC_DZ[d]
        yy = y - TC_DY[d]
        xx = x - TC_DX[d]
        if _inside(zz, yy, xx, nz, ny, nx) and prop[zz, yy, xx] == d + 1:
            site = gsite(G, zz, yy, xx)
            tc_draw(seed, step, site, purpose, w)
            if <int64_t>w[0] > best:
                best = <int64_t>w[0]
                winner = <int64_t>site
    return winner


cdef void _move_row(uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                    const uint8_t[:, :, ::1] prop, const uint8_t[::1] rowflags, Py_ssize_t z, Py_ssize_t y,
                    uint64_t seed, uint32_t step, uint32_t purpose, const Geom* G) noexcept nogil:
    """Apply the sub-move of every neutrophil in row (z, y) that wins the gather at its target.

    The target's gather (largest key among the proposals aimed at it) has exactly one winner, so the winner
    itself can move: no two threads write the same site, and the pass costs work per neutrophil rather than per
    free site.  Nothing read in this pass (the proposals) is written in it.
    """
    cdef Py_ssize_t ny = neut.shape[1], nx = neut.shape[2], x, tz, ty, tx
    cdef int d
    if not rowflags[z * ny + y]:
        return
    for x in range(nx):
        if not prop[z, y, x]:
            continue
        d = prop[z, y, x] - 1
        tz = z + TC_DZ[d]
        ty = y + TC_DY[d]
        tx = x + TC_DX[d]
        if _move_winner(prop, tz, ty, tx, seed, step, purpose, G) == <int64_t>gsite(G, z, y, x):
            neut[tz, ty, tx] = 1
            neut_p[tz, ty, tx] = neut_p[z, y, x]
            neut_age[tz, ty, tx] = neut_age[z, y, x]
            neut[z, y, x] = 0


cdef void _clear_row(const uint8_t[:, :, ::1] neut, float[:, :, ::1] neut_p, uint16_t[:, :, ::1] neut_age,
                     const uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y) noexcept nogil:
    cdef Py_ssize_t nx = neut.shape[2], x
    for x in range(nx):
        if not neut[z, y, x] and prop[z, y, x]:
            neut_p[z, y, x] = 0.0
            neut_age[z, y, x] = 0
