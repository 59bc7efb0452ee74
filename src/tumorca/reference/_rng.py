"""Philox4x32-10 counter-based random numbers, the twin of ``ext/philox.h`` and ``ext/_rng.pyx``."""
from __future__ import annotations


import numpy as np



_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------------------------
# Random numbers
# ---------------------------------------------------------------------------------------------------------------
def philox4x32_10(counter: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 (Salmon et al., SC'11) of counters ``(n, 4)`` uint32 under one key of two words."""
    c = [np.asarray(counter[..., i], dtype=np.uint32) for i in range(4)]
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        p0 = _M0 * c[0].astype(np.uint64)
        p1 = _M1 * c[2].astype(np.uint64)
        hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
        hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
        c = [hi1 ^ c[1] ^ np.uint32(k0), lo1, hi0 ^ c[3] ^ np.uint32(k1), lo0]
    return np.stack(c, axis=-1)


def draw(seed: int, step: int, sites: np.ndarray, purpose: int) -> np.ndarray:
    """The four uint32 words of (seed, step, site, purpose) for each site: shape ``sites.shape + (4,)``."""
    sites = np.asarray(sites, dtype=np.uint64)
    ctr = np.empty(sites.shape + (4,), dtype=np.uint32)
    ctr[..., 0] = (sites & np.uint64(_MASK32)).astype(np.uint32)
    ctr[..., 1] = (sites >> np.uint64(32)).astype(np.uint32)
    ctr[..., 2] = step
    ctr[..., 3] = purpose
    return philox4x32_10(ctr, (seed & _MASK32, seed >> 32))


def u01(w: np.ndarray) -> np.ndarray:
    """Words as float64 in [0, 1): w * 2**-32, exact."""
    return w.astype(np.float64) * 2.0 ** -32


def below(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, n) from words, by multiply-shift: (w * n) >> 32."""
    return (w.astype(np.uint64) * n.astype(np.uint64)) >> np.uint64(32)
