"""Small pure-Python numerical helpers shared by the engine and the NumPy reference.

They are per-parameter constants, computed once per run in double precision, never per-site work.
"""
from __future__ import annotations

import numpy as np


def tridiagonal_factors(n: int, alpha: float, dirichlet: bool) -> tuple[np.ndarray, np.ndarray]:
    """Thomas-algorithm factors of the backward-Euler diffusion matrix along a line of ``n`` sites.

    The matrix is ``(1 + alpha*nn_i) on the diagonal and -alpha off it``, where ``nn_i`` counts the neighbours
    of site i: 2 inside, 1 at a no-flux end, 2 at a Dirichlet end (whose boundary value goes to the right-hand
    side).  A line of one site is always no-flux.

    Returns
    -------
    cp, m : float64 arrays of length n
        ``m[i] = 1 / (b_i + alpha*cp[i-1])`` and ``cp[i] = -alpha*m[i]``, so that the forward sweep is
        ``y_i = (d_i + alpha*y_{i-1}) * m[i]`` and the back substitution ``x_i = y_i - cp[i]*x_{i+1}``.
    """
    cp = np.zeros(n, dtype=np.float64)
    m = np.zeros(n, dtype=np.float64)
    prev = 0.0
    for i in range(n):
        nn = 2
        if n == 1:
            nn = 0
        elif (i == 0 or i == n - 1) and not dirichlet:
            nn = 1
        b = 1.0 + alpha * nn
        inv = 1.0 / (b + alpha * prev)
        m[i] = inv
        cp[i] = -alpha * inv
        prev = cp[i]
    return cp, m


def float32_exact(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Python float (values stored in float32 fields)."""
    return float(np.float32(value))
