# Cython view of ext/philox.h: the counter-based generator every kernel draws from.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "philox.h" nogil:
    void tc_philox4x32_10(const uint32_t* ctr, const uint32_t* key, uint32_t* out) noexcept
    void tc_draw(uint64_t seed, uint32_t step, uint64_t site, uint32_t purpose, uint32_t* out) noexcept
    double tc_u01(uint32_t w) noexcept
    uint32_t tc_below(uint32_t w, uint32_t n) noexcept
