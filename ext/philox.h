/*
 * Philox4x32-10 counter-based random numbers (Salmon, Moraes, Dror & Shaw, SC'11), written inline so that
 * every draw is a pure function of (seed, step, site, purpose) and can be made from any thread in any order.
 *
 * Layout, shared with the NumPy implementation in src/tumorca/reference/_rng.py:
 *   key     = (seed & 0xffffffff, seed >> 32)
 *   counter = (site & 0xffffffff, site >> 32, step, purpose)
 * One call yields four independent 32-bit words.
 */
#ifndef TUMORCA_PHILOX_H
#define TUMORCA_PHILOX_H

#include <stdint.h>

#define TC_PHILOX_M0 0xD2511F53u
#define TC_PHILOX_M1 0xCD9E8D57u
#define TC_PHILOX_W0 0x9E3779B9u
#define TC_PHILOX_W1 0xBB67AE85u

static inline void tc_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)TC_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)TC_PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k0;
    uint32_t n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
}

/* Raw Philox4x32-10 on explicit counter and key words (used for the known-answer tests). */
static inline void tc_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    int r;
    for (r = 0; r < 10; ++r) {
        if (r > 0) { k0 += TC_PHILOX_W0; k1 += TC_PHILOX_W1; }
        tc_philox_round(c, k0, k1);
    }
    out[0] = c[0]; out[1] = c[1]; out[2] = c[2]; out[3] = c[3];
}

/* The four words for one (seed, step, site, purpose). */
static inline void tc_draw(uint64_t seed, uint32_t step, uint64_t site, uint32_t purpose, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)site, (uint32_t)(site >> 32), step, purpose};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    tc_philox4x32_10(ctr, key, out);
}

/* A word as a double in [0, 1): exact (w * 2^-32), so NumPy computes the same value. */
static inline double tc_u01(uint32_t w) { return (double)w * 2.3283064365386962890625e-10; }

/* Uniform integer in [0, n) by Lemire's multiply-shift: integer-only, hence identical in NumPy. */
static inline uint32_t tc_below(uint32_t w, uint32_t n) { return (uint32_t)(((uint64_t)w * n) >> 32); }

#endif
