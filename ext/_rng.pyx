# cython: language_level=3
"""Python access to the kernels' counter-based generator and build facts (private; see tumorca.rng)."""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint32_t, uint64_t
from _philox cimport tc_philox4x32_10, tc_draw
cimport _defs

cnp.import_array()

cdef extern from *:
    """
    #if TUMORCA_OPENMP
    #include <omp.h>
    static int tc_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int tc_omp_max_threads(void) { return 1; }
    #endif
    """
    int TUMORCA_OPENMP
    int tc_omp_max_threads() nogil

CONSTANTS = {
    "EMPTY": _defs.TC_EMPTY, "TUMOR_P": _defs.TC_TUMOR_P, "TUMOR_Q": _defs.TC_TUMOR_Q,
    "NECROTIC": _defs.TC_NECROTIC, "VESSEL_STALK": _defs.TC_VESSEL_STALK, "VESSEL_TIP": _defs.TC_VESSEL_TIP,
    "PURPOSE_TUMOR": _defs.TC_PURPOSE_TUMOR, "PURPOSE_TIP": _defs.TC_PURPOSE_TIP,
    "PURPOSE_SPROUT": _defs.TC_PURPOSE_SPROUT, "PURPOSE_NEUT": _defs.TC_PURPOSE_NEUT,
    "PURPOSE_NEUT_MOVE": _defs.TC_PURPOSE_NEUT_MOVE, "PURPOSE_VESSEL": _defs.TC_PURPOSE_VESSEL, "TIP_FUSE": _defs.TC_TIP_FUSE,
    "TIP_BRANCH": _defs.TC_TIP_BRANCH, "SPROUT_CANDIDATE": _defs.TC_SPROUT_CANDIDATE,
    "KILL_OWN_SITE": _defs.TC_KILL_OWN_SITE,
    "PROP_DIR_MASK": _defs.TC_PROP_DIR_MASK, "PROP_STATE_SHIFT": _defs.TC_PROP_STATE_SHIFT,
    "CLOCK_MAX": _defs.TC_CLOCK_MAX, "ROW_SITES": _defs.TC_ROW_SITES, "ROW_PROPOSALS": _defs.TC_ROW_PROPOSALS,
    "ROW_PUSH": _defs.TC_ROW_PUSH,
    "PERFUSION_CONNECTED": _defs.TC_PERFUSION_CONNECTED, "PERFUSION_REMOVED": _defs.TC_PERFUSION_REMOVED,
}


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(TUMORCA_OPENMP)


def omp_max_threads():
    """OpenMP's default team size (1 without OpenMP)."""
    return tc_omp_max_threads()


def philox4x32_10(counter, key):
    """Raw Philox4x32-10 of one counter (4 words) and key (2 words); returns 4 uint32 words."""
    cdef uint32_t ctr[4]
    cdef uint32_t k[2]
    cdef uint32_t out[4]
    cdef int i
    for i in range(4):
        ctr[i] = <uint32_t>counter[i]
    for i in range(2):
        k[i] = <uint32_t>key[i]
    tc_philox4x32_10(ctr, k, out)
    return np.array([out[0], out[1], out[2], out[3]], dtype=np.uint32)


def draw(uint64_t seed, uint32_t step, const uint64_t[::1] sites, uint32_t purpose):
    """The four words of (seed, step, site, purpose) for each site, as an (n, 4) uint32 array."""
    cdef Py_ssize_t n = sites.shape[0], i
    res = np.empty((n, 4), dtype=np.uint32)
    cdef uint32_t[:, ::1] r = res
    with nogil:
        for i in range(n):
            tc_draw(seed, step, sites[i], purpose, &r[i, 0])
    return res
