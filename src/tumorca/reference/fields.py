"""Slow fields in NumPy: the twin of ``ext/_fields.pyx`` (secretion and release, the implicit axis step)."""
from __future__ import annotations


import numpy as np

from .._constants import Cell
from .._numerics import tridiagonal_factors
from ..rules import SecretionRules


def implicit_axis(c: np.ndarray, axis: int, cp: np.ndarray, m: np.ndarray, alpha: float, gain: float,
                  edge_add: float, num_threads: int) -> None:
    """Backward-Euler diffusion along ``axis`` of ``c`` (float32, in place), by the Thomas algorithm (the twin of
    ``tumorca._fields.implicit_axis``, same arguments; ``num_threads`` is not used).

    Each line is multiplied by ``gain``, gets ``edge_add`` at both ends and is solved for
    ``(1 + alpha*nn_i) x_i - alpha (x_{i-1} + x_{i+1}) = d_i`` with the factors (``cp``, ``m``) of
    :func:`tumorca._numerics.tridiagonal_factors`.
    """
    n = c.shape[axis]
    if len(cp) != n or len(m) != n:
        raise ValueError("tridiagonal factors do not match the axis length")
    v = np.moveaxis(c, axis, 0)  # a view: writes go to c
    y = np.empty(v.shape, dtype=np.float64)
    for i in range(n):
        d = v[i].astype(np.float64) * gain
        if i == 0:
            d = d + edge_add
        if i == n - 1:
            d = d + edge_add
        y[i] = d * m[0] if i == 0 else (d + alpha * y[i - 1]) * m[i]
    v[n - 1] = y[n - 1].astype(np.float32)
    for i in range(n - 2, -1, -1):
        y[i] = y[i] - cp[i] * y[i + 1]
        v[i] = y[i].astype(np.float32)


def diffuse(c: np.ndarray, alpha: float, gain: float, dirichlet: bool) -> None:
    """One implicit step of a slow field: decay by ``gain`` then diffusion along x, y, z in turn (LOD), with the
    factors of the whole line along each axis (as ``tumorca.engine.diffusion_factors``)."""
    for axis in (2, 1, 0):
        n = c.shape[axis]
        if axis == 2 or n > 1:
            cp, m = tridiagonal_factors(n, alpha, dirichlet and n > 1)
            implicit_axis(c, axis, cp, m, alpha, gain if axis == 2 else 1.0, 0.0, 1)


def secrete(tissue: np.ndarray, o2: np.ndarray, neut: np.ndarray, neut_p: np.ndarray, vegf_free: np.ndarray,
            vegf_bound: np.ndarray, mmp9: np.ndarray, cxcl: np.ndarray, rules: SecretionRules,
            num_threads: int) -> None:
    """One step of secretion into the slow fields and MMP9-driven release of bound VEGF, in place (the twin of
    ``tumorca._fields.secrete``, same arguments; ``num_threads`` is not used).

    With the fields of ``rules``: live tumour secretes VEGF ``vegf_tumor_min + (max - min)*h`` and CXCL
    ``cxcl_tumor_live + cxcl_tumor_hypoxic*h`` with ``h = 1/(1 + (pO2/vegf_hill_o2)^vegf_hill_n)``; a neutrophil
    of polarisation p: VEGF ``p*vegf_neut`` and MMP9 ``p*mmp9_neut``.  Secreted VEGF splits into free and
    matrix-bound; then ``Vb' = Vb/(1 + krel_dt*M)`` and V_free gains the rest.
    """
    r = rules
    live = (tissue == Cell.TUMOR_P) | (tissue == Cell.TUMOR_Q)
    q = o2.astype(np.float64) / r.vegf_hill_o2
    qn = q
    for _ in range(1, r.vegf_hill_n):
        qn = qn * q
    h = 1.0 / (1.0 + qn)
    sv = np.where(live, r.vegf_tumor_min + (r.vegf_tumor_max - r.vegf_tumor_min) * h, 0.0)
    sc = np.where(live, r.cxcl_tumor_live + r.cxcl_tumor_hypoxic * h, 0.0)
    has = neut != 0
    pp = neut_p.astype(np.float64)
    sv = np.where(has, sv + pp * r.vegf_neut, sv)
    sm = np.where(has, pp * r.mmp9_neut, 0.0)
    vf = vegf_free.astype(np.float64) + r.dt_vegf_free * sv
    vb = vegf_bound.astype(np.float64) + r.dt_vegf_bound * sv
    m = mmp9.astype(np.float64) + r.dt_min * sm
    mmp9[...] = m.astype(np.float32)
    cxcl[...] = (cxcl.astype(np.float64) + r.dt_min * sc).astype(np.float32)
    m32 = m.astype(np.float32).astype(np.float64)
    vbn = vb / (1.0 + r.krel_dt * m32)
    vf = vf + (vb - vbn)
    vegf_free[...] = vf.astype(np.float32)
    vegf_bound[...] = vbn.astype(np.float32)
