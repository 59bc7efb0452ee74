"""The tumorca step in plain, vectorised NumPy: the executable specification of the model.

One module per kernel file of ``ext/``: ``o2`` and ``o2_mgcg`` (``_o2.pyx``), ``fields`` (``_fields.pyx``), ``tissue``
(``_tissue.pyx``), ``vessels`` (``_vessels.pyx``), ``neutrophils`` (``_neutrophils.pyx``), ``_rng`` (``_rng.pyx``
and ``philox.h``); this module holds the phase order of a step.

Every rule here is written to be read; the compiled kernels in ``ext/`` must agree with it bit for bit
(tests/test_reference.py).  It never imports those kernels.  To agree bit for bit both sides follow the same
conventions:

* fields are stored in float32 and every arithmetic expression is evaluated in float64, term by term in the same
  order, then rounded to float32 when stored;
* no transcendental function is evaluated per site: hazards become per-step probabilities once per run
  (:meth:`tumorca.Params.rates`);
* random numbers are Philox4x32-10 words of (seed, step, site, purpose), so the order of evaluation is free.

It is one to two orders of magnitude slower than the kernels and meant for small lattices.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._constants import FIELD_NAMES, Cell
from .._numerics import float32_exact, tridiagonal_factors
from ..params import Params
from ..rules import StepRules
from ._rng import below, draw, philox4x32_10, u01
from .fields import diffuse, implicit_axis, secrete
from .neutrophils import neutrophil_clear, neutrophil_life_kill, neutrophil_submove
from .o2 import o2_solve, o2_solve_multigrid
from .o2_mgcg import o2_solve_mgcg
from .tissue import tumor_update
from .vessels import (endothelium_update, one_cluster, perfusion, perfusion_connect, perfusion_finish,
                      perfusion_prune_round)


def uptake_table(params: Params) -> np.ndarray:
    """O2 uptake (1/min) indexed by tissue state."""
    u = np.zeros(8, dtype=np.float64)
    u[Cell.EMPTY] = params.o2_uptake_stroma
    u[Cell.TUMOR_P] = u[Cell.TUMOR_Q] = params.o2_uptake_tumor
    u[Cell.NECROTIC] = params.o2_uptake_necrotic
    return u


def ifn_level(params: Params, time_min: float) -> float:
    """The IFN-beta schedule I(t): ``ifn_level``, or ``ifn_therapy_level`` from ``ifn_therapy_start`` on."""
    if params.ifn_therapy_level > 0 and time_min >= params.ifn_therapy_start:
        return params.ifn_therapy_level
    return params.ifn_level


def step(state: dict[str, Any]) -> dict[str, Any]:
    """Advance a state (as from ``Simulation.get_state()``, 3D arrays) by one step, in place; returns it.

    Order (docs/model.md §2), as ``tumorca.engine.Engine._step_once`` with the same rules objects: perfusion and
    vessel remodelling; O2 to quasi-steady state; secretion, release and one implicit step of the slow fields; tips;
    tumour cells; neutrophils (life and killing, the sub-moves, the clearing).
    """
    p = state["params"] if isinstance(state["params"], Params) else Params.from_dict(state["params"])
    r = p.rates()
    a = state["arrays"]
    n = state["step_index"]
    seed = state["seed"]
    rules = StepRules.from_params(p, ifn_level(p, n * p.dt_min))
    perfusion(a["vessel"], a["vclock"], a["inlet"], a["perfused"], a["tissue"], a["vegf_free"], seed, n,
              rules.perfusion)
    o2_args = (a["o2"], a["tissue"], a["perfused"], uptake_table(p), r["o2_k"], float32_exact(p.o2_vessel),
               p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value))
    if p.o2_solver == "mgcg":
        o2_solve_mgcg(*o2_args, p.o2_mgcg_smooth, p.o2_tol, p.o2_max_iter)
    elif p.o2_solver == "multigrid":
        o2_solve_multigrid(*o2_args, p.o2_mg_vessel_uptake, p.o2_mg_presmooth, p.o2_mg_postsmooth, p.o2_tol,
                           p.o2_mg_max_cycles)
    else:
        o2_solve(*o2_args, p.o2_omega, p.o2_tol, p.o2_max_sweeps)
    secrete(a["tissue"], a["o2"], a["neut"], a["neut_p"], a["vegf_free"], a["vegf_bound"], a["mmp9"], a["cxcl"],
            rules.secretion, 1)
    dirichlet = p.field_boundary == "dirichlet"
    for name, prefix in (("vegf_free", "vegf"), ("mmp9", "mmp9"), ("cxcl", "cxcl")):
        diffuse(a[name], r[prefix + "_alpha"], r[prefix + "_gain"], dirichlet)
    implicit_axis(a["vegf_bound"], 2, *tridiagonal_factors(a["vegf_bound"].shape[2], 0.0, False), 0.0,
                  r["vegf_bound_gain"], 0.0, 1)
    # the scratch arguments of the kernels (prop, rowflags) are not used by the twins
    endothelium_update(a["vessel"], a["vclock"], a["tissue"], a["perfused"], a["vegf_free"], a["mmp9"], None, None,
                       seed, n, rules.endothelium, 1)
    tumor_update(a["tissue"], a["clock"], a["o2"], None, None, seed, n, rules.tumour, 1)
    nr = rules.neutrophils
    neutrophil_life_kill(a["tissue"], a["clock"], a["perfused"], a["cxcl"], a["neut"], a["neut_p"], a["neut_age"],
                         None, None, seed, n, nr, 1)
    for k in range(nr.substeps):
        neutrophil_submove(a["neut"], a["neut_p"], a["neut_age"], a["cxcl"], None, None, seed, n, k, nr, 1)
    if nr.substeps > 0:
        neutrophil_clear(a["neut"], a["neut_p"], a["neut_age"], None, 1)
    state["step_index"] = n + 1
    return state


def run(state: dict[str, Any], steps: int) -> dict[str, Any]:
    """A copy of ``state`` advanced by ``steps`` steps.  2D states (arrays of shape (ny, nx)) are accepted."""
    shape = tuple(state["shape"])
    shape3 = (1,) + shape if len(shape) == 2 else shape
    out = {**state, "arrays": {k: np.array(v).reshape(shape3).copy() for k, v in state["arrays"].items()}}
    for _ in range(steps):
        step(out)
    out["arrays"] = {k: v.reshape(shape) for k, v in out["arrays"].items()}
    return out


__all__ = ["philox4x32_10", "draw", "u01", "below", "o2_solve", "o2_solve_mgcg", "o2_solve_multigrid", "implicit_axis", "diffuse",
           "secrete", "tumor_update", "perfusion", "perfusion_connect", "perfusion_prune_round",
           "perfusion_finish", "one_cluster", "endothelium_update", "neutrophil_life_kill", "neutrophil_submove",
           "neutrophil_clear", "uptake_table", "ifn_level", "step", "run", "FIELD_NAMES"]
