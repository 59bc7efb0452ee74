"""Blood flow on the vessel network: the public face of the ``_flow`` kernel (docs/model.md, "Blood flow").

Nodes are vessel sites; Moore neighbours that are both vessel sites are joined by an edge of conductance
``1/length`` (length 1, sqrt 2 or sqrt 3 sites).  That is Poiseuille's ``g = pi r^4/(8 mu L)`` with one radius and
one viscosity everywhere (an assumption; Pries & Secomb, Owen et al. 2009 and Welter & Rieger 2010 let the radius
adapt), so pressures are in mmHg and flows in mmHg times the conductance of one site of vessel.

Inlet codes: 0 none, 1 arterial (held at ``p_arterial``), 2 venous (held at ``p_venous``).  Every other node obeys
Kirchhoff's law.  A component without both inlet kinds, a dead-end tree and a loop hanging from a single node carry
exactly no flow.  Pressures and flows are float64: flows are differences of pressures, and float32 would keep only
about five digits of a 1/2000 drop along a long capillary.

The junction system (what remains after dead ends are peeled and chains of degree-2 nodes contracted) is solved by
conjugate gradients preconditioned by an aggregation-based algebraic multigrid V-cycle (pairwise aggregation after
Notay, ETNA 37, 2010; docs/model.md, "Blood flow"): some twenty iterations on a 2048^2 capillary bed where the
former Jacobi preconditioner needed about a thousand.

:func:`solve_nodes` takes the sorted global flat indices of the vessel sites, so a decomposed lattice gathers them
(a small fraction of the sites) to one rank, solves and scatters: the same bits as the serial solve, for any number
of threads.  :func:`solve` is the whole-array convenience.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import _flow
from ._numerics import flow_inlet_codes
from .rules import FlowRules

__all__ = ["solve_nodes", "solve", "perfused_mask", "flowing", "FlowRules"]


def solve_nodes(nodes: np.ndarray, inlet: np.ndarray, gshape: tuple[int, int, int], rules: FlowRules,
                x0: np.ndarray | None = None, threads: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pressure (mmHg) and flow of each node.

    ``nodes``: int64, sorted, unique global flat indices ``(z*ny + y)*nx + x`` of the vessel sites of a lattice of
    shape ``gshape``; ``inlet``: uint8 code per node; ``x0``: float64 pressure per node to start from (the previous
    solve's, mapped onto these nodes; NaN where unknown), or None.  Returns (pressure, flow, info) with float64
    arrays per node and info = {iterations: CG iterations, imbalance: the largest Kirchhoff imbalance at a
    junction, unknowns: free junctions, converged, levels: levels of the multigrid preconditioner (the junction
    system itself counts as one; 0 when no junction is free)}; warns if the solve stopped at ``rules.max_iter``
    without meeting ``rules.tol``."""
    nodes = np.ascontiguousarray(nodes, dtype=np.int64)
    inlet = np.ascontiguousarray(inlet, dtype=np.uint8)
    if x0 is not None:
        x0 = np.ascontiguousarray(x0, dtype=np.float64)
    p, q, info = _flow.flow_solve_nodes(nodes, inlet, tuple(int(v) for v in gshape), rules, x0, int(threads))
    if not info["converged"]:
        warnings.warn(f"flow solve stopped after {info['iterations']} iterations (flow_max_iter) with a Kirchhoff "
                      f"imbalance of {info['imbalance']:.3g}, above flow_tol*|dp|", RuntimeWarning, stacklevel=2)
    return p, q, info


def solve(vessel: np.ndarray, inlet: np.ndarray, rules: FlowRules, x0: np.ndarray | None = None,
          threads: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Whole-array convenience (serial): ``vessel`` (nonzero = vessel site) and ``inlet`` (uint8 codes) of shape
    (nz, ny, nx) to (pressure, flow, info), float64 arrays of that shape, 0.0 off the network; ``x0`` a pressure
    array of that shape or None."""
    vessel = np.asarray(vessel)
    if vessel.ndim != 3 or np.shape(inlet) != vessel.shape:
        raise ValueError("vessel and inlet must be (nz, ny, nx) arrays of one shape")
    nodes = np.flatnonzero(vessel.ravel()).astype(np.int64)
    codes = np.asarray(inlet).ravel()[nodes].astype(np.uint8)
    xn = None if x0 is None else np.asarray(x0, dtype=np.float64).ravel()[nodes]
    p, q, info = solve_nodes(nodes, codes, vessel.shape, rules, xn, threads)
    P = np.zeros(vessel.shape)
    Q = np.zeros(vessel.shape)
    P.ravel()[nodes] = p
    Q.ravel()[nodes] = q
    return P, Q, info


def perfused_mask(flow: np.ndarray, rules: FlowRules) -> np.ndarray:
    """Where the flow reaches ``rules.threshold`` (a vessel site counts as perfused)."""
    return np.asarray(flow) >= rules.threshold


def flowing(nodes: np.ndarray, inlet: np.ndarray, gshape: tuple[int, int, int], rules: FlowRules,
            edge_inlets: bool, threads: int = 1) -> tuple[np.ndarray, dict[str, float]]:
    """Which vessel nodes carry flow (the perfusion phase with ``perfusion = "flow"``): a cold solve (no warm
    start, so that a resumed run equals the uninterrupted one) on the nodes (sorted global flat indices) with
    their ``inlet`` values, edge inlets coded by :func:`tumorca._numerics.flow_inlet_codes`.  Returns a bool per
    node (flow >= ``rules.threshold``) and ``{"iterations", "inflow"}`` (CG iterations; total flow into the
    network through its arterial inlets)."""
    codes = flow_inlet_codes(nodes, inlet, gshape, edge_inlets)
    _, q, info = solve_nodes(nodes, codes, gshape, rules, None, threads)
    return q >= rules.threshold, {"iterations": int(info["iterations"]), "inflow": float(q[codes == 1].sum())}
