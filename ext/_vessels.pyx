# cython: language_level=3
"""Endothelium kernels: perfusion (connectivity and loops), regression, sprouting, tip migration, anastomosis.

Vessels live in a layer of their own (``vessel``: none, stalk or tip, with its clock ``vclock``) beside the
tissue, so a vessel and a tumour cell can share a site: a tumour co-opts the vessels it grows over, and tips
invade tumour tissue where MMP9 has degraded the matrix.

Perfusion is a property of sets: connectivity to an inlet (a search, whose result does not depend on visiting
order) and flow pruning in synchronous rounds (each round decided on the previous one); src/tumorca/reference/vessels.py
finds the same sets by vectorised dilation and pruning.  The tip phase is three parallel passes that only ever write the site they
visit, like the tumour kernel (see ``endothelium_update``).
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from _philox cimport tc_draw, tc_u01
cimport _defs
from _moore cimport TC_DZ, TC_DY, TC_DX, inside as _inside, near_flag, weighted_pick, Geom, make_geom, gsite, glocal
from _rules cimport PerfusionRules, EndotheliumRules, fill_perfusion, fill_endothelium

cnp.import_array()

# ADJ[d]: bit mask of the Moore directions whose sites touch (Chebyshev distance 1) the site in direction d.
cdef uint32_t ADJ[26]
for _d in range(26):
    ADJ[_d] = 0
    for _e in range(26):
        if _e != _d and max(abs(TC_DZ[_d] - TC_DZ[_e]), abs(TC_DY[_d] - TC_DY[_e]), abs(TC_DX[_d] - TC_DX[_e])) <= 1:
            ADJ[_d] |= (<uint32_t>1) << _e
NEIGHBOUR_ADJACENCY = tuple(int(ADJ[_d]) for _d in range(26))


cdef inline bint _one_cluster(uint32_t mask) noexcept nogil:
    """True if the neighbours in ``mask`` form at most one cluster (touching each other through the mask)."""
    cdef uint32_t comp, grow
    cdef int d
    if mask == 0:
        return True
    comp = mask & (~mask + 1)  # lowest set bit
    while True:
        grow = comp
        for d in range(26):
            if comp & ((<uint32_t>1) << d):
                grow |= ADJ[d]
        grow &= mask
        if grow == comp:
            return comp == mask
        comp = grow


cdef inline bint _tumour_tissue(uint8_t s) noexcept nogil:
    # tissue a vessel is co-opted by: live tumour or necrotic
    return s == _defs.TC_TUMOR_P or s == _defs.TC_TUMOR_Q or s == _defs.TC_NECROTIC


cdef inline bint _on_face(Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, Py_ssize_t nz, Py_ssize_t ny,
                          Py_ssize_t nx) noexcept nogil:
    # faces of axes longer than one site (a 2D lattice has no z faces)
    return ((nx > 1 and (x == 0 or x == nx - 1)) or (ny > 1 and (y == 0 or y == ny - 1))
            or (nz > 1 and (z == 0 or z == nz - 1)))


# ---------------------------------------------------------------------------------------------------------------
# Perfusion, on the whole lattice or on one block of a decomposed lattice (tumorca.engine drives it through its
# domain).  Vessel sites (stalk or tip in the vessel layer) form a graph under Moore adjacency.  Inlets are the sites flagged in
# ``inlet`` (plus, with ``edge_inlets``, endothelium on a lattice face).  A site is *connected* if a path of
# endothelium joins it to an inlet, and *perfused* if it is connected and survives the flow pruning: in
# synchronous rounds (not a queue, so that the result does not depend on visiting order), every non-inlet site
# whose vessel neighbours form at most one touching cluster (a dead end, including a sharp corner of a blind
# sprout) is removed, until none is.  What survives lies on a loop or between inlets, so blind-ended sprouts carry
# no flow until they fuse.
#
# ``perfusion_connect`` (on a block: repeat, exchanging the flags in ``perfused``, until no rank marks a new owned
# site), ``perfusion_prune_round`` (one synchronous round; repeat until a round prunes nothing anywhere) and
# ``perfusion_finish`` (flags, clocks, regression).  Both sets are unique fixed points, so the result is the same
# whatever the decomposition.  ``ec`` lists the local flat indices of the vessel sites.
# ---------------------------------------------------------------------------------------------------------------
cdef inline bint _on_face_g(const Geom* G, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    # faces of the global lattice (axes longer than one site)
    return _on_face(z + G.oz, y + G.oy, x + G.ox, G.gnz, G.gny, G.gnx)


def perfusion_connect(const uint8_t[:, :, ::1] vessel, const uint8_t[:, :, ::1] inlet,
                      uint8_t[:, :, ::1] perfused, const int64_t[::1] ec, object rules, object origin=None,
                      object gshape=None, object box=None, object search=None):
    """Mark (TC_PERFUSION_CONNECTED in ``perfused``) every vessel site joined to an inlet or to an already marked
    site by a path of vessel sites inside ``search`` (local ((z0, z1), (y0, y1), (x0, x1)); default the whole
    array); returns the number of marked sites in ``box``.

    ``search`` is the block plus the halo layer refreshed before the call: the search must not walk through
    halo sites farther out, whose vessel layer is not exact.  ``ec`` lists the vessel sites inside ``search``.
    Marks only grow and every mark is a true one, so repeating this with the marks of the neighbouring ranks
    exchanged in between reaches the serial connected set.  ``rules`` is a tumorca.rules.PerfusionRules.
    """
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t z, y, x, zz, yy, xx, head = 0, tail = 0, k, n_ec = ec.shape[0], n_owned = 0
    cdef Py_ssize_t sz0, sz1, sy0, sy1, sx0, sx1
    cdef int64_t i, j
    cdef int d
    cdef Geom G
    cdef PerfusionRules R
    fill_perfusion(&R, rules)
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if search is None:
        search = ((0, nz), (0, ny), (0, nx))
    (sz0, sz1), (sy0, sy1), (sx0, sx1) = search
    if not (0 <= sz0 <= sz1 <= nz and 0 <= sy0 <= sy1 <= ny and 0 <= sx0 <= sx1 <= nx):
        raise ValueError(f"search box {search} is not inside the array {(nz, ny, nx)}")
    if n_ec == 0:
        return 0
    cdef const uint8_t* T = &vessel[0, 0, 0]
    cdef const uint8_t* I = &inlet[0, 0, 0]
    cdef uint8_t* P = &perfused[0, 0, 0]
    cdef int64_t* queue = <int64_t*>malloc(n_ec * sizeof(int64_t))
    if queue == NULL:
        raise MemoryError("perfusion_connect: cannot allocate the search queue")
    with nogil:
        for k in range(n_ec):
            i = ec[k]
            x = i % nx
            y = (i // nx) % ny
            z = i // (nx * ny)
            if I[i] or (R.edge_inlets and _on_face_g(&G, z, y, x)):
                P[i] |= _defs.TC_PERFUSION_CONNECTED
            if P[i] & _defs.TC_PERFUSION_CONNECTED:
                queue[tail] = i
                tail += 1
        while head < tail:
            i = queue[head]
            head += 1
            x = i % nx
            y = (i // nx) % ny
            z = i // (nx * ny)
            for d in range(26):
                zz = z + TC_DZ[d]
                yy = y + TC_DY[d]
                xx = x + TC_DX[d]
                if sz0 <= zz < sz1 and sy0 <= yy < sy1 and sx0 <= xx < sx1:
                    j = (zz * ny + yy) * nx + xx
                    if T[j] != 0 and not (P[j] & _defs.TC_PERFUSION_CONNECTED):
                        P[j] |= _defs.TC_PERFUSION_CONNECTED
                        queue[tail] = j
                        tail += 1
        for k in range(n_ec):
            i = ec[k]
            x = i % nx
            y = (i // nx) % ny
            z = i // (nx * ny)
            if (P[i] & _defs.TC_PERFUSION_CONNECTED) and G.bz0 <= z < G.bz1 and G.by0 <= y < G.by1 and G.bx0 <= x < G.bx1:
                n_owned += 1
    free(queue)
    return n_owned


def perfusion_prune_round(const uint8_t[:, :, ::1] vessel, const uint8_t[:, :, ::1] inlet,
                          uint8_t[:, :, ::1] perfused, uint8_t[:, :, ::1] scratch, const int64_t[::1] ec,
                          object rules, object origin=None, object gshape=None, object box=None):
    """One synchronous pruning round over the local array: every non-inlet site not yet
    removed whose vessel neighbours not yet removed form at most one cluster gets TC_PERFUSION_REMOVED in
    ``perfused``.  ``scratch`` (one byte per site, zero) holds the round's decisions until they are applied.
    Returns the number of sites in ``box`` pruned by this round (0 everywhere ends the rounds)."""
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t z, y, x, zz, yy, xx, k, n_ec = ec.shape[0], n_owned = 0
    cdef int64_t i, j
    cdef int d
    cdef uint32_t nbmask
    cdef Geom G
    cdef PerfusionRules R
    fill_perfusion(&R, rules)
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if n_ec == 0:
        return 0
    cdef const uint8_t* T = &vessel[0, 0, 0]
    cdef const uint8_t* I = &inlet[0, 0, 0]
    cdef uint8_t* P = &perfused[0, 0, 0]
    cdef uint8_t* S = &scratch[0, 0, 0]
    with nogil:
        for k in range(n_ec):
            i = ec[k]
            if P[i] & _defs.TC_PERFUSION_REMOVED:
                continue
            x = i % nx
            y = (i // nx) % ny
            z = i // (nx * ny)
            if I[i] or (R.edge_inlets and _on_face_g(&G, z, y, x)):
                continue
            nbmask = 0
            for d in range(26):
                zz = z + TC_DZ[d]
                yy = y + TC_DY[d]
                xx = x + TC_DX[d]
                if 0 <= zz < nz and 0 <= yy < ny and 0 <= xx < nx:
                    j = (zz * ny + yy) * nx + xx
                    if T[j] != 0 and not (P[j] & _defs.TC_PERFUSION_REMOVED):
                        nbmask |= (<uint32_t>1) << d
            if _one_cluster(nbmask):
                S[i] = 1
                if G.bz0 <= z < G.bz1 and G.by0 <= y < G.by1 and G.bx0 <= x < G.bx1:
                    n_owned += 1
        for k in range(n_ec):
            i = ec[k]
            if S[i]:
                S[i] = 0
                P[i] |= _defs.TC_PERFUSION_REMOVED
    return n_owned


def perfusion_finish(uint8_t[:, :, ::1] vessel, uint16_t[:, :, ::1] vclock, uint8_t[:, :, ::1] inlet,
                     uint8_t[:, :, ::1] perfused, const uint8_t[:, :, ::1] tissue, const float[:, :, ::1] vegf,
                     const int64_t[::1] ec, uint64_t seed, uint32_t step, object rules, object origin=None,
                     object gshape=None, object box=None):
    """Turn the connected/removed flags of the vessel sites ``ec`` into ``perfused`` (0/1), then remodel.

    ``rules`` is a tumorca.rules.PerfusionRules.  At each site of ``ec``:

    * a perfused stalk resets ``vclock``; a stalk without flow (cut off, or connected but on a dead end: a blind
      sprout) counts it up; a tip keeps its age while connected and stops (becomes a stalk counting from 1) when
      cut off;
    * a stalk whose ``vclock`` reaches ``rules.regress_steps`` regresses (sprout lifetime without flow);
    * a stalk under tumour tissue (live or necrotic: co-opted) regresses with probability
      ``p_coopt_regress * coopt_vegf_half/(coopt_vegf_half + V)`` (w0 of its VESSEL draw): VEGF protects it.

    A regressed site loses its vessel, its flow and its inlet flag (initial vessels are not permanent).
    Returns ``(regressed without flow, regressed co-opted)``, counted in ``box``.
    """
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t k, n_ec = ec.shape[0], z, y, x
    cdef int64_t i, n_flow = 0, n_coopt = 0
    cdef int c
    cdef uint8_t v
    cdef uint32_t w[4]
    cdef double vg, p
    cdef bint connected, perf, gone, owned
    cdef Geom G
    cdef PerfusionRules R
    fill_perfusion(&R, rules)
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if n_ec == 0:
        return 0, 0
    cdef uint8_t* V = &vessel[0, 0, 0]
    cdef uint8_t* I = &inlet[0, 0, 0]
    cdef uint8_t* P = &perfused[0, 0, 0]
    cdef uint16_t* C = &vclock[0, 0, 0]
    cdef const uint8_t* T = &tissue[0, 0, 0]
    cdef const float* VG = &vegf[0, 0, 0]
    with nogil:
        for k in range(n_ec):
            i = ec[k]
            x = i % nx
            y = (i // nx) % ny
            z = i // (nx * ny)
            connected = (P[i] & _defs.TC_PERFUSION_CONNECTED) != 0
            perf = connected and not (P[i] & _defs.TC_PERFUSION_REMOVED)
            P[i] = 1 if perf else 0
            v = V[i]
            c = C[i]
            if v == _defs.TC_VESSEL_TIP:
                if not connected:
                    v = _defs.TC_VESSEL_STALK
                    c = 1
            elif perf:
                c = 0
            else:
                c = c + 1
            gone = False
            owned = G.bz0 <= z < G.bz1 and G.by0 <= y < G.by1 and G.bx0 <= x < G.bx1
            if v == _defs.TC_VESSEL_STALK and c >= R.regress_steps:
                gone = True
                if owned:
                    n_flow += 1
            elif v == _defs.TC_VESSEL_STALK and _tumour_tissue(T[i]) and R.p_coopt_regress > 0.0:
                tc_draw(seed, step, gsite(&G, z, y, x), _defs.TC_PURPOSE_VESSEL, w)
                vg = VG[i]
                p = R.p_coopt_regress * (R.coopt_vegf_half / (R.coopt_vegf_half + vg))
                if tc_u01(w[0]) < p:
                    gone = True
                    if owned:
                        n_coopt += 1
            if gone:
                V[i] = _defs.TC_VESSEL_NONE
                P[i] = 0
                I[i] = 0
                C[i] = 0
            else:
                V[i] = v
                C[i] = _defs.clock_sat(c)
    return int(n_flow), int(n_coopt)


cdef inline int64_t _tip_key(uint64_t seed, uint32_t step, uint64_t site) noexcept nogil:
    cdef uint32_t w[4]
    tc_draw(seed, step, site, _defs.TC_PURPOSE_TIP, w)
    return <int64_t>w[0]


cdef int64_t _tip_winner(const uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x,
                         uint64_t seed, uint32_t step, const Geom* G) noexcept nogil:
    """Site index of the tip whose move into (z, y, x) wins (largest key, first in MOORE order), or -1."""
    cdef Py_ssize_t nz = prop.shape[0], ny = prop.shape[1], nx = prop.shape[2], zz, yy, xx
    cdef int d
    cdef int64_t best = -1, winner = -1, key
    cdef uint64_t site
    for d in range(26):
        zz = z - TC_DZ[d]
        yy = y - TC_DY[d]
        xx = x - TC_DX[d]
        if _inside(zz, yy, xx, nz, ny, nx) and (prop[zz, yy, xx] & _defs.TC_PROP_DIR_MASK) == d + 1:
            site = gsite(G, zz, yy, xx)
            key = _tip_key(seed, step, site)
            if key > best:
                best = key
                winner = <int64_t>site
    return winner


def endothelium_update(uint8_t[:, :, ::1] vessel, uint16_t[:, :, ::1] vclock, const uint8_t[:, :, ::1] tissue,
                       const uint8_t[:, :, ::1] perfused, const float[:, :, ::1] vegf, const float[:, :, ::1] mmp9, uint8_t[:, :, ::1] prop,
                       uint8_t[::1] rowflags, uint64_t seed, uint32_t step, object rules, int num_threads,
                       object origin=None, object gshape=None, object box=None):
    """One step of sprouting and tip migration, in place, on the vessel layer (``vessel``, ``vclock``).

    ``rules`` is a tumorca.rules.EndotheliumRules (the names below are its fields).
    Pass A (decide, every site reads the state at the start of the phase):
      * a perfused stalk becomes a sprout candidate with probability ``p_sprout_max*V/(V + sprout_vegf_half)``
        (w0 of its SPROUT draw) if no tip lies within ``exclusion_sites`` (Euclidean);
      * a tip moves with probability ``tip_move_min + (tip_move_max - tip_move_min)*M/(M + tip_mmp9_half)`` (w1
        of its TIP draw) to a Moore neighbour chosen with weights ``1 + tip_chemotaxis*max(0, V_j - V_i)`` (w2):
        sites without a vessel (over stroma or necrotic tissue; over live tumour with the weight multiplied by
        ``M_j/(M_j + tip_mmp9_half)``: a tip enters tumour tissue where MMP9 has degraded the matrix), and, once
        ``vclock >= tip_fusion_min_age``, perfused stalks or other tips (choosing one of those is anastomosis: the
        tip becomes a stalk where it is).  A moving tip leaves a new
        tip behind with probability ``branch_max*V/(V + branch_vegf_half)`` (w3), else a stalk.
    Pass B (resolve): each site without a vessel takes the tip move aimed at it with the largest key (w0 of the TIP
    draw); a winning tip's old site becomes stalk (or a new tip); a fusing tip becomes stalk; a candidate becomes
    a tip unless another candidate within the exclusion distance has a larger key (w1 of its SPROUT draw).
    Pass C: clocks of the tips that proposed a move (0 if they moved, else one step older).
    ``prop`` and ``rowflags`` (one byte per row) are scratch space; rows far from any tip or candidate are
    skipped in passes B and C.

    ``origin``, ``gshape`` and ``box`` place a block of a decomposed lattice (see tumorca._tissue.tumor_update):
    draws and the candidates' tie-break use global site indices.
    """
    cdef EndotheliumRules R
    fill_endothelium(&R, rules)
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t nrows = nz * ny, r
    cdef Geom G
    make_geom(&G, nz, ny, nx, origin, gshape, box)
    if rowflags.shape[0] != nrows:
        raise ValueError("rowflags must hold one byte per row")
    with nogil:
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            rowflags[r] = _tip_decide_row(vessel, vclock, tissue, perfused, vegf, mmp9, prop, r // ny, r % ny, seed, step,
                                          &R, &G)
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            if rowflags[r] or near_flag(rowflags, r // ny, r % ny, nz, ny, _defs.TC_ROW_PROPOSALS):
                _tip_resolve_row(vessel, vclock, prop, r // ny, r % ny, seed, step, &R,
                                 near_flag(rowflags, r // ny, r % ny, nz, ny, _defs.TC_ROW_PROPOSALS), &G)
        for r in prange(nrows, schedule="static", num_threads=num_threads):
            if rowflags[r] & _defs.TC_ROW_PROPOSALS:
                _tip_clock_row(vessel, vclock, prop, r // ny, r % ny, seed, step, &G)
    return None


# Row flags of the tip phase: TC_ROW_SITES = the row has a tip or a sprout candidate, TC_ROW_PROPOSALS = it has a
# move proposal.
cdef uint8_t _tip_decide_row(const uint8_t[:, :, ::1] vessel, const uint16_t[:, :, ::1] clock,
                          const uint8_t[:, :, ::1] tissue, const uint8_t[:, :, ::1] perfused, const float[:, :, ::1] vegf,
                          const float[:, :, ::1] mmp9, uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y,
                          uint64_t seed, uint32_t step, const EndotheliumRules* R, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t x, zz, yy, xx, e = R.excl_r
    cdef uint64_t site
    cdef uint32_t w[4]
    cdef uint8_t s, t, tt, out, flags = 0
    cdef int d, pick
    cdef double v, m, mj, p, wgt, total
    cdef double weights[26]
    cdef bint blocked, fusion_ok
    for x in range(nx):
        s = vessel[z, y, x]
        out = 0
        site = gsite(G, z, y, x)
        if s == _defs.TC_VESSEL_STALK and perfused[z, y, x]:
            tc_draw(seed, step, site, _defs.TC_PURPOSE_SPROUT, w)
            v = vegf[z, y, x]
            p = R.p_sprout_max * (v / (v + R.sprout_vegf_half))
            if tc_u01(w[0]) < p:
                blocked = False
                for zz in range(z - e, z + e + 1):
                    for yy in range(y - e, y + e + 1):
                        for xx in range(x - e, x + e + 1):
                            if (_inside(zz, yy, xx, nz, ny, nx) and vessel[zz, yy, xx] == _defs.TC_VESSEL_TIP and
                                    (zz - z) * (zz - z) + (yy - y) * (yy - y) + (xx - x) * (xx - x) <= R.exclusion_r2):
                                blocked = True
                if not blocked:
                    out = _defs.TC_SPROUT_CANDIDATE
                    flags |= _defs.TC_ROW_SITES
        elif s == _defs.TC_VESSEL_TIP:
            flags |= _defs.TC_ROW_SITES
            tc_draw(seed, step, site, _defs.TC_PURPOSE_TIP, w)
            v = vegf[z, y, x]
            m = mmp9[z, y, x]
            p = R.tip_move_min + (R.tip_move_max - R.tip_move_min) * (m / (m + R.tip_mmp9_half))
            if tc_u01(w[1]) < p:
                fusion_ok = clock[z, y, x] >= R.tip_fusion_min_age
                total = 0.0
                for d in range(26):
                    weights[d] = 0.0
                    zz = z + TC_DZ[d]
                    yy = y + TC_DY[d]
                    xx = x + TC_DX[d]
                    if not _inside(zz, yy, xx, nz, ny, nx):
                        continue
                    t = vessel[zz, yy, xx]
                    if t == _defs.TC_VESSEL_NONE or (fusion_ok and (t == _defs.TC_VESSEL_TIP or
                                                                   (t == _defs.TC_VESSEL_STALK and perfused[zz, yy, xx]))):
                        wgt = vegf[zz, yy, xx] - v
                        if wgt < 0.0:
                            wgt = 0.0
                        weights[d] = 1.0 + R.tip_chemotaxis * wgt
                        tt = tissue[zz, yy, xx]
                        if t == _defs.TC_VESSEL_NONE and (tt == _defs.TC_TUMOR_P or tt == _defs.TC_TUMOR_Q):
                            mj = mmp9[zz, yy, xx]
                            weights[d] = weights[d] * (mj / (mj + R.tip_mmp9_half))
                        total = total + weights[d]
                if total > 0.0:
                    pick = weighted_pick(weights, tc_u01(w[2]) * total)
                    t = vessel[z + TC_DZ[pick], y + TC_DY[pick], x + TC_DX[pick]]
                    if t != _defs.TC_VESSEL_NONE:
                        out = _defs.TC_TIP_FUSE
                    else:
                        out = <uint8_t>(pick + 1)
                        flags |= _defs.TC_ROW_PROPOSALS
                        if tc_u01(w[3]) < R.branch_max * (v / (v + R.branch_vegf_half)):
                            out = out | _defs.TC_TIP_BRANCH
        prop[z, y, x] = out
    return flags


cdef void _tip_resolve_row(uint8_t[:, :, ::1] vessel, uint16_t[:, :, ::1] clock, const uint8_t[:, :, ::1] prop,
                           Py_ssize_t z, Py_ssize_t y, uint64_t seed, uint32_t step,
                           const EndotheliumRules* R, bint near_moves, const Geom* G) noexcept nogil:
    cdef Py_ssize_t nz = vessel.shape[0], ny = vessel.shape[1], nx = vessel.shape[2]
    cdef Py_ssize_t x, zz, yy, xx, e = R.excl_r, wz, wy, wx
    cdef uint64_t site, other
    cdef uint32_t w[4]
    cdef uint8_t s, pr
    cdef int d, age
    cdef int64_t winner, mykey, key
    cdef bint wins
    for x in range(nx):
        s = vessel[z, y, x]
        pr = prop[z, y, x]
        site = gsite(G, z, y, x)
        if s == _defs.TC_VESSEL_NONE:
            if not near_moves:
                continue
            winner = _tip_winner(prop, z, y, x, seed, step, G)
            if winner >= 0:
                glocal(G, winner, &wz, &wy, &wx)
                age = clock[wz, wy, wx] + 1
                vessel[z, y, x] = _defs.TC_VESSEL_TIP
                clock[z, y, x] = _defs.clock_sat(age)
        elif s == _defs.TC_VESSEL_TIP:
            if pr & _defs.TC_TIP_FUSE:
                vessel[z, y, x] = _defs.TC_VESSEL_STALK
                clock[z, y, x] = 0
            elif pr & _defs.TC_PROP_DIR_MASK:
                d = (pr & _defs.TC_PROP_DIR_MASK) - 1
                if _tip_winner(prop, z + TC_DZ[d], y + TC_DY[d], x + TC_DX[d], seed, step, G) == <int64_t>site:
                    vessel[z, y, x] = _defs.TC_VESSEL_TIP if (pr & _defs.TC_TIP_BRANCH) else _defs.TC_VESSEL_STALK
            else:
                age = clock[z, y, x] + 1
                clock[z, y, x] = _defs.clock_sat(age)
        elif s == _defs.TC_VESSEL_STALK and (pr & _defs.TC_SPROUT_CANDIDATE):
            tc_draw(seed, step, site, _defs.TC_PURPOSE_SPROUT, w)
            mykey = <int64_t>w[1]
            wins = True
            for zz in range(z - e, z + e + 1):
                for yy in range(y - e, y + e + 1):
                    for xx in range(x - e, x + e + 1):
                        if not _inside(zz, yy, xx, nz, ny, nx) or not (prop[zz, yy, xx] & _defs.TC_SPROUT_CANDIDATE):
                            continue
                        other = gsite(G, zz, yy, xx)
                        if other == site or (zz - z) * (zz - z) + (yy - y) * (yy - y) + (xx - x) * (xx - x) > R.exclusion_r2:
                            continue
                        tc_draw(seed, step, other, _defs.TC_PURPOSE_SPROUT, w)
                        key = <int64_t>w[1]
                        if key > mykey or (key == mykey and other < site):
                            wins = False
            if wins:
                vessel[z, y, x] = _defs.TC_VESSEL_TIP
                clock[z, y, x] = 0


cdef void _tip_clock_row(const uint8_t[:, :, ::1] vessel, uint16_t[:, :, ::1] clock,
                         const uint8_t[:, :, ::1] prop, Py_ssize_t z, Py_ssize_t y, uint64_t seed,
                         uint32_t step, const Geom* G) noexcept nogil:
    cdef Py_ssize_t ny = vessel.shape[1], nx = vessel.shape[2], x
    cdef uint8_t pr
    cdef int d, age
    cdef uint64_t site
    for x in range(nx):
        pr = prop[z, y, x]
        if (pr & _defs.TC_PROP_DIR_MASK) == 0 or (pr & _defs.TC_SPROUT_CANDIDATE):
            continue
        d = (pr & _defs.TC_PROP_DIR_MASK) - 1
        site = gsite(G, z, y, x)
        if _tip_winner(prop, z + TC_DZ[d], y + TC_DY[d], x + TC_DX[d], seed, step, G) == <int64_t>site:
            clock[z, y, x] = 0
        else:
            age = clock[z, y, x] + 1
            clock[z, y, x] = _defs.clock_sat(age)
