"""Slow fields in NumPy: the twin of ``ext/_fields.pyx`` (secretion and release, the implicit axis step)."""
from __future__ import annotations


import numpy as np

from .._constants import Cell
from .._numerics import tridiagonal_factors
from ..params import Params


def implicit_axis(c: np.ndarray, axis: int, alpha: float, gain: float, dirichlet: bool,
                  edge_value: float = 0.0) -> None:
    """Backward-Euler diffusion along ``axis`` of ``c`` (float32, in place), by the Thomas algorithm.

    Each line is multiplied by ``gain`` and solved for ``(1 + alpha*nn_i) x_i - alpha (x_{i-1} + x_{i+1}) = d_i``
    (see :func:`tumorca._numerics.tridiagonal_factors`); a Dirichlet end adds ``alpha*edge_value`` to d.
    """
    n = c.shape[axis]
    cp, m = tridiagonal_factors(n, alpha, dirichlet and n > 1)
    edge_add = alpha * edge_value if (dirichlet and n > 1) else 0.0
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
    """One implicit step of a slow field: decay by ``gain`` then diffusion along x, y, z in turn (LOD)."""
    implicit_axis(c, 2, alpha, gain, dirichlet)
    for axis in (1, 0):
        if c.shape[axis] > 1:
            implicit_axis(c, axis, alpha, 1.0, dirichlet)


def secrete(a: dict[str, np.ndarray], rates: dict[str, float], ifn_rates: dict[str, float], params: Params) -> None:
    """One step of secretion into the slow fields and MMP9-driven release of bound VEGF, in place.

    Live tumour: VEGF ``vegf_tumor_min + (max - min)*h`` and CXCL ``cxcl_tumor_live + cxcl_tumor_hypoxic*h`` with
    ``h = 1/(1 + (pO2/vegf_hill_o2)^n)``; a neutrophil of polarisation p: VEGF ``p*v_neut`` and MMP9 ``p*m_neut``.
    Secreted VEGF splits into free and matrix-bound; then ``Vb' = Vb/(1 + k_rel*dt*M)`` and V_free gains the rest.
    """
    p = params
    live = (a["tissue"] == Cell.TUMOR_P) | (a["tissue"] == Cell.TUMOR_Q)
    q = a["o2"].astype(np.float64) / p.vegf_hill_o2
    qn = q
    for _ in range(1, p.vegf_hill_n):
        qn = qn * q
    h = 1.0 / (1.0 + qn)
    sv = np.where(live, p.vegf_tumor_min + (p.vegf_tumor_max - p.vegf_tumor_min) * h, 0.0)
    sc = np.where(live, p.cxcl_tumor_live + p.cxcl_tumor_hypoxic * h, 0.0)
    neut = a["neut"] != 0
    pp = a["neut_p"].astype(np.float64)
    sv = np.where(neut, sv + pp * ifn_rates["v_neut"], sv)
    sm = np.where(neut, pp * ifn_rates["m_neut"], 0.0)
    vf = a["vegf_free"].astype(np.float64) + rates["vegf_dt_free"] * sv
    vb = a["vegf_bound"].astype(np.float64) + rates["vegf_dt_bound"] * sv
    m = a["mmp9"].astype(np.float64) + p.dt_min * sm
    a["mmp9"][...] = m.astype(np.float32)
    a["cxcl"][...] = (a["cxcl"].astype(np.float64) + p.dt_min * sc).astype(np.float32)
    m32 = m.astype(np.float32).astype(np.float64)
    vbn = vb / (1.0 + rates["krel_dt"] * m32)
    vf = vf + (vb - vbn)
    a["vegf_free"][...] = vf.astype(np.float32)
    a["vegf_bound"][...] = vbn.astype(np.float32)
