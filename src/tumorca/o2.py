"""The quasi-steady O2 solve of a whole lattice, as the engine calls it once per step.

:class:`O2Solver` is built once per run from the parameters (it holds the solver's workspace) and solves the
state's ``o2`` field in place with the sources and sinks of the current tissue.  The block form used under MPI is
:class:`tumorca.parallel.o2.BlockO2Solver`; both give the same field bit for bit.
"""
from __future__ import annotations

import numpy as np

from . import _o2
from ._numerics import MultigridWorkspace, float32_exact
from ._constants import Cell
from .params import Params


def uptake_table(params: Params) -> np.ndarray:
    """O2 uptake (1/min) indexed by tissue state, as the O2 kernels read it."""
    table = np.zeros(8, dtype=np.float64)
    table[Cell.EMPTY] = params.o2_uptake_stroma
    table[Cell.TUMOR_P] = table[Cell.TUMOR_Q] = params.o2_uptake_tumor
    table[Cell.NECROTIC] = params.o2_uptake_necrotic
    table[Cell.EC_STALK] = table[Cell.EC_TIP] = params.o2_uptake_endothelium
    return table


class O2Solver:
    """Red-black SOR (``o2_solver = "sor"``) or geometric multigrid (``"multigrid"``) on the whole lattice.

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
        self.k = rates["o2_k"]
        self.uptake = uptake_table(p)
        # Coarse levels and scratch of the multigrid solve, allocated once for the whole run.
        self.mg = MultigridWorkspace(shape3) if p.o2_solver == "multigrid" else None
        self.cycle_work = (self.mg.plan.cycle_work(p.o2_mg_presmooth, p.o2_mg_postsmooth)
                           if self.mg is not None else 1.0)
        #: The parameter that caps the iterations (named in the warning when a solve stops at it).
        self.cap_name = "o2_mg_max_cycles" if self.mg is not None else "o2_max_sweeps"

    def solve(self, arrays: dict[str, np.ndarray], threads: int) -> tuple[int, float, float]:
        """Solve ``arrays["o2"]`` in place; returns (iterations, last Jacobi correction in mmHg, work in
        lattice-sweep equivalents)."""
        p, a = self.params, arrays
        args = (a["o2"], a["tissue"], a["perfused"], self.uptake, self.k, float32_exact(p.o2_vessel),
                p.o2_boundary == "dirichlet", float32_exact(p.o2_boundary_value))
        if self.mg is not None:
            its, res = _o2.o2_solve_multigrid(*args, p.o2_mg_vessel_uptake, p.o2_mg_presmooth, p.o2_mg_postsmooth,
                                              p.o2_tol, p.o2_mg_max_cycles, self.mg, threads)
        else:
            its, res = _o2.o2_solve(*args, p.o2_omega, p.o2_tol, p.o2_max_sweeps, threads)
        return its, res, its * self.cycle_work
