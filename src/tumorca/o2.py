"""The quasi-steady O2 solve of a whole lattice, as the engine calls it once per step.

:class:`O2Solver` is built once per run from the parameters (it holds the solver's workspace) and solves the
state's ``o2`` field in place with the sources and sinks of the current tissue.  The block form used under MPI is
:class:`tumorca.parallel.o2.BlockO2Solver`; both give the same field bit for bit.

The sources are a mask (``arrays["perfused"]`` today) and their values: ``o2_vessel`` everywhere, or a per-site
float32 array passed as ``source_values`` (for a vessel layer whose strengths depend on flow).
"""
from __future__ import annotations

import numpy as np

from . import _o2
from ._numerics import MgcgWorkspace, MultigridWorkspace, float32_exact
from ._constants import Cell
from .params import Params

#: Workspace bytes per lattice site, upper bounds (docs/o2-solver.md): mgcg holds a float64 and three float32
#: lattice vectors and its coarse levels (4 + up to 3 weights, float32, on N/3 cells in 2D and N/7 in 3D): counted
#: 28.0-28.4 B/site in 2D, 24.1-24.4 in 3D.
WORKSPACE_BYTES_PER_SITE = {"mgcg": 30, "multigrid": 32, "sor": 0}

#: The parameter that caps each solver's iterations (named in the warning when a solve stops at it).
CAP_NAME = {"mgcg": "o2_max_iter", "multigrid": "o2_mg_max_cycles", "sor": "o2_max_sweeps"}


#: What each solver's reported residual is.
MEASURE = {"mgcg": "error estimate", "multigrid": "correction", "sor": "correction"}


def workspace_bytes_per_site(solver: str) -> int:
    """Bytes per site that ``o2_solver = solver`` allocates besides the state."""
    return WORKSPACE_BYTES_PER_SITE[solver]


def uptake_table(params: Params) -> np.ndarray:
    """O2 uptake (1/min) indexed by tissue state, as the O2 kernels read it (a vessel site takes up what the
    tissue on it takes up; a perfused one is a source instead)."""
    table = np.zeros(8, dtype=np.float64)
    table[Cell.EMPTY] = params.o2_uptake_stroma
    table[Cell.TUMOR_P] = table[Cell.TUMOR_Q] = params.o2_uptake_tumor
    table[Cell.NECROTIC] = params.o2_uptake_necrotic
    return table


class O2Solver:
    """The O2 solve of the whole lattice: ``o2_solver = "mgcg"`` (default; conjugate gradients preconditioned by
    an aggregation multigrid V-cycle), ``"sor"`` (red-black SOR) or ``"multigrid"`` (experimental V-cycles).

    Parameters
    ----------
    shape3 : tuple of int
        (nz, ny, nx) of the lattice.
    params : Params
        Model parameters (solver, tolerance, caps, boundary).
    rates : dict
        ``params.rates()`` (``o2_k`` = D/dx^2).
    """

    def __init__(self, shape3: tuple[int, int, int], params: Params, rates: dict[str, float]) -> None:
        p = params
        self.params = p
        self.solver = p.o2_solver
        self.k = rates["o2_k"]
        self.uptake = uptake_table(p)
        # Coarse levels and scratch, allocated once for the whole run.
        self.mg = MultigridWorkspace(shape3) if p.o2_solver == "multigrid" else None
        self.ws = MgcgWorkspace(shape3) if p.o2_solver == "mgcg" else None
        if self.mg is not None:
            self.cycle_work = self.mg.plan.cycle_work(p.o2_mg_presmooth, p.o2_mg_postsmooth)
        elif self.ws is not None:
            self.cycle_work = self.ws.cycle_work(p.o2_mgcg_smooth)
        else:
            self.cycle_work = 1.0
        self.cap_name = CAP_NAME[p.o2_solver]
        #: What the second number of :meth:`solve` is (named in the engine's warning).
        self.measure = MEASURE[p.o2_solver]

    def solve(self, arrays: dict[str, np.ndarray], threads: int,
              source_values: np.ndarray | None = None) -> tuple[int, float, float]:
        """Solve ``arrays["o2"]`` in place; returns (iterations, residual or error estimate in mmHg, work in
        lattice-sweep equivalents).  ``source_values`` (mgcg only): per-site values at the sources."""
        p, a = self.params, arrays
        args = (a["o2"], a["tissue"], a["perfused"], self.uptake, self.k, float32_exact(p.o2_vessel),
                p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value))
        if self.ws is not None:
            its, est, vcycles = _o2.o2_solve_mgcg(*args, p.o2_mgcg_smooth, p.o2_tol, p.o2_max_iter, self.ws, threads,
                                                  source_values)
            # each CG iteration applies A once, and the initial residual is one more pass
            return its, est, vcycles * self.cycle_work + its + 1.0
        if source_values is not None:
            raise ValueError("per-site source values need o2_solver = 'mgcg'")
        if self.mg is not None:
            its, res = _o2.o2_solve_multigrid(*args, p.o2_mg_vessel_uptake, p.o2_mg_presmooth, p.o2_mg_postsmooth,
                                              p.o2_tol, p.o2_mg_max_cycles, self.mg, threads)
        else:
            its, res = _o2.o2_solve(*args, p.o2_omega, p.o2_tol, p.o2_max_sweeps, threads)
        return its, res, its * self.cycle_work
