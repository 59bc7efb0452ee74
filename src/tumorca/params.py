"""Model parameters: one table of every parameter with its default, unit, range and source, and the
:class:`Params` object that validates against it.

The table (:data:`PARAMETERS`) is the single source of truth for the defaults, the validation, ``tumorca params``
and the parameter attributes written into run files.  docs/model.md explains each rule the parameters drive.
"""
from __future__ import annotations

import difflib
import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ._constants import CLOCK_MAX, MINUTES_PER_DAY
from .errors import ParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, unit, kind (float, int, str or bool), allowed range or choices, meaning
    and source."""

    name: str
    default: Any
    unit: str
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""
    source: str = ""
    group: str = ""

    def describe_range(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}]"


def _p(name, default, unit, kind, low=None, high=None, *, choices=None, doc="", source="", group=""):
    return ParamSpec(name, default, unit, kind, low, high, choices, doc, source, group)


#: Every model parameter, grouped as in docs/model.md §5.  Ranges are what the rules accept, not what is plausible.
PARAMETERS: tuple[ParamSpec, ...] = (
    # lattice and time
    _p("dx_um", 20.0, "um", float, 1.0, 1000.0, doc="lattice spacing (one tumour cell per site)",
       source="design, docs/model.md §1.1", group="lattice"),
    _p("dt_min", 30.0, "min", float, 0.1, MINUTES_PER_DAY, doc="cell step", source="Owen 2011", group="lattice"),
    # oxygen
    _p("o2_diffusivity", 1.0e5, "um^2/min", float, 1.0, 1.0e8, doc="O2 diffusion coefficient",
       source="PhysiCell/BioFVM; Owen 2011 uses 1.45e5", group="oxygen"),
    _p("o2_uptake_tumor", 3.1, "1/min", float, 0.0, 1.0e4,
       doc="first-order O2 uptake of a site holding a live tumour cell (10/min x V_cell/V_voxel, "
           "2494/8000 um^3)", source="PhysiCell cancer_immune sample", group="oxygen"),
    _p("o2_uptake_stroma", 2.5, "1/min", float, 0.0, 1.0e4, doc="O2 uptake of host tissue (stroma)",
       source="chosen so that the O2 diffusion length sqrt(D/lambda) in host tissue is 200 um, within the "
       "100-200 um of Thomlinson & Gray 1955 / Vaupel 1989; assumption", group="oxygen"),
    _p("o2_uptake_necrotic", 0.0, "1/min", float, 0.0, 1.0e4, doc="O2 uptake of necrotic sites",
       source="dead cells consume nothing", group="oxygen"),
    _p("o2_vessel", 38.0, "mmHg", float, 0.0, 760.0, doc="pO2 held at perfused vessel sites",
       source="PhysiCell", group="oxygen"),
    _p("o2_boundary", "no-flux", "", str, choices=("no-flux", "dirichlet"),
       doc="O2 condition on the lattice faces (an axis of length 1 is always no-flux)", group="oxygen"),
    _p("o2_boundary_value", 38.0, "mmHg", float, 0.0, 760.0, doc="far-field pO2 for o2_boundary='dirichlet'",
       group="oxygen"),
    _p("o2_tol", 1.0e-4, "mmHg", float, 1.0e-5, 1.0, doc="O2 solve tolerance: with 'mgcg', a bound on the estimated "
       "max-norm error of the solution (docs/o2-solver.md); with 'sor' and 'multigrid', on the largest Jacobi "
       "correction of a sweep (which bounds the error only loosely).  O2 is stored in float32, one ulp at 38 mmHg "
       "is 3.8e-6: smaller tolerances stall", source="docs/o2-solver.md", group="oxygen"),
    _p("o2_omega", 1.7, "", float, 1.0, 1.99, doc="over-relaxation factor of the red-black SOR O2 solve",
       source="docs/o2-solver.md (1.65-1.78 warm in vascularised tissue)", group="oxygen"),
    _p("o2_max_sweeps", 20000, "", int, 1, 10**7, doc="cap on O2 sweeps per step (o2_solver='sor')",
       group="oxygen"),
    _p("o2_solver", "mgcg", "", str, choices=("mgcg", "sor", "multigrid"),
       doc="O2 solver: 'mgcg', conjugate gradients preconditioned by an aggregation multigrid V-cycle, converges "
           "on every lattice and vessel layout and stops on an error estimate; 'sor', red-black SOR; 'multigrid', "
           "(experimental, serial only) geometric V-cycles, fast on lattices whose lengths are a small number "
           "times a power of two (docs/o2-solver.md)", source="docs/o2-solver.md (measured)", group="oxygen"),
    _p("o2_max_iter", 200, "", int, 1, 10**6, doc="cap on conjugate-gradient iterations per step "
       "(o2_solver='mgcg'; measured 2-6 warm, 7-10 cold)", source="assumption (20x a cold solve)",
       group="oxygen"),
    _p("o2_mgcg_smooth", 2, "", int, 1, 20, doc="red-black Gauss-Seidel sweeps before, and again (in reverse "
       "colour order) after, the coarse correction on every level of the mgcg preconditioner",
       source="assumption (measured: 1 and 2 cost about the same, docs/o2-solver.md)", group="oxygen"),
    _p("o2_mg_max_cycles", 500, "", int, 1, 10**6, doc="cap on multigrid V-cycles per step", group="oxygen"),
    _p("o2_mg_presmooth", 2, "", int, 0, 50, doc="red-black Gauss-Seidel sweeps before the coarse correction "
       "on each multigrid level", source="docs/o2-solver.md (V(2,2))", group="oxygen"),
    _p("o2_mg_postsmooth", 2, "", int, 1, 50, doc="sweeps after the coarse correction on each level (at least "
       "1: the stopping test reads the last lattice sweep)", source="docs/o2-solver.md (V(2,2))", group="oxygen"),
    _p("o2_mg_vessel_uptake", 1.0e6, "1/min", float, 0.0, 1.0e12,
       doc="uptake standing for a perfused vessel site on the coarse multigrid levels, averaged with its "
           "neighbours (on the lattice itself vessels are held exactly)", source="docs/o2-solver.md (MG-A)",
       group="oxygen"),
    _p("init_o2", 38.0, "mmHg", float, 0.0, 760.0, doc="O2 everywhere before the first solve",
       group="oxygen"),
    # slow fields
    _p("vegf_diffusivity", 1000.0, "um^2/min", float, 0.0, 1.0e7, doc="free VEGF diffusion coefficient",
       source="Owen 2011", group="fields"),
    _p("vegf_decay", 0.01, "1/min", float, 0.0, 100.0, doc="free VEGF decay rate", source="Owen 2011",
       group="fields"),
    _p("vegf_bound_decay", 0.01, "1/min", float, 0.0, 100.0, doc="matrix-bound VEGF decay rate",
       source="assumption: as free VEGF", group="fields"),
    _p("mmp9_diffusivity", 600.0, "um^2/min", float, 0.0, 1.0e7, doc="MMP9 diffusion coefficient",
       source="assumption, to calibrate", group="fields"),
    _p("mmp9_decay", 0.02, "1/min", float, 0.0, 100.0, doc="MMP9 decay rate", source="assumption, to calibrate",
       group="fields"),
    _p("cxcl_diffusivity", 1000.0, "um^2/min", float, 0.0, 1.0e7, doc="CXCL1/2 diffusion coefficient",
       source="PhysiCell immunostimulatory factor", group="fields"),
    _p("cxcl_decay", 0.016, "1/min", float, 0.0, 100.0, doc="CXCL1/2 decay rate",
       source="PhysiCell immunostimulatory factor", group="fields"),
    _p("field_boundary", "no-flux", "", str, choices=("no-flux", "dirichlet"),
       doc="condition of the slow fields on the lattice faces (dirichlet holds them at 0)", group="fields"),
    # tumour
    _p("tumor_cycle_rate", 0.00072, "1/min", float, 0.0, 1.0, doc="division hazard of a cycling cell at full O2",
       source="PhysiCell", group="tumour"),
    _p("cycle_o2_low", 5.0, "mmHg", float, 0.0, 760.0, doc="pO2 at which the division ramp reaches 0",
       source="design, docs/model.md §2.6", group="tumour"),
    _p("cycle_o2_high", 38.0, "mmHg", float, 0.0, 760.0, doc="pO2 at which the division ramp reaches 1",
       source="design, docs/model.md §2.6", group="tumour"),
    _p("quiescence_o2_enter", 8.9, "mmHg", float, 0.0, 760.0, doc="a cycling cell below this becomes quiescent",
       source="Owen 2011", group="tumour"),
    _p("quiescence_o2_exit", 9.8, "mmHg", float, 0.0, 760.0, doc="a quiescent cell above this cycles again",
       source="Owen 2011", group="tumour"),
    _p("necrosis_o2_onset", 5.0, "mmHg", float, 0.0, 760.0, doc="necrosis probability is 0 above this",
       source="PhysiCell", group="tumour"),
    _p("necrosis_o2_full", 2.5, "mmHg", float, 0.0, 760.0, doc="necrosis probability is maximal below this",
       source="PhysiCell", group="tumour"),
    _p("necrosis_rate_max", 1.0 / 360.0, "1/min", float, 0.0, 1.0, doc="necrosis hazard at and below "
       "necrosis_o2_full (1/(6 h))", source="PhysiCell", group="tumour"),
    _p("quiescent_death_time", 4000.0, "min", float, 0.0, 1.0e7, doc="a cell quiescent this long dies",
       source="design, docs/model.md §2.6", group="tumour"),
    _p("push_range", 5, "sites", int, 0, 8, doc="a dividing cell with no empty Moore neighbour pushes the "
       "chain of cells along a Moore ray toward an empty site at most this many sites away (0 or 1: off)",
       source="Drasdo & Hoehme 2005; Waclaw et al. 2015; Nan et al. 2018 (shoving); ray and conflict rule: "
       "assumption, docs/model.md §2.6; 5 sites = 100 um, the proliferating rim of spheroids is 100-200 um "
       "(Sutherland 1988)", group="tumour"),
    # growth-factor sources
    _p("vegf_tumor_min", 0.005, "nM/min", float, 0.0, 100.0, doc="VEGF secretion of a well-oxygenated tumour cell",
       source="design, docs/model.md §2.3 (s_min); calibrated, docs/validation.md", group="secretion"),
    _p("vegf_tumor_max", 0.05, "nM/min", float, 0.0, 100.0, doc="VEGF secretion of a fully hypoxic tumour cell",
       source="design, docs/model.md §2.3 (s_max); calibrated, docs/validation.md", group="secretion"),
    _p("vegf_hill_o2", 4.44, "mmHg", float, 0.01, 760.0, doc="pO2 of half-maximal hypoxic secretion",
       source="design, docs/model.md §2.3", group="secretion"),
    _p("vegf_hill_n", 3, "", int, 1, 8, doc="Hill exponent of hypoxic secretion (integer: evaluated by repeated "
       "multiplication so kernels and reference agree bit for bit)", source="assumption", group="secretion"),
    _p("vegf_bound_fraction", 0.5, "", float, 0.0, 1.0, doc="fraction of secreted VEGF that binds the matrix",
       source="Lee 2005; value assumed", group="secretion"),
    _p("vegf_release_rate", 0.05, "1/(nM min)", float, 0.0, 100.0, doc="MMP9-driven release k_rel: "
       "dVb/dt = -k_rel M Vb", source="Lee 2005; Nozawa 2006; value assumed", group="secretion"),
    _p("cxcl_tumor_live", 0.01, "nM/min", float, 0.0, 100.0, doc="CXCL1/2 secretion of a live tumour cell",
       source="assumption; calibrated, docs/validation.md", group="secretion"),
    _p("cxcl_tumor_hypoxic", 0.05, "nM/min", float, 0.0, 100.0, doc="extra CXCL1/2 secretion of a fully hypoxic "
       "tumour cell (same Hill law as VEGF)", source="assumption; calibrated, docs/validation.md", group="secretion"),
    # vessels
    _p("vessel_inlets", "initial", "", str, choices=("initial", "edge"),
       doc="what feeds perfusion: the initial vessels ('initial'), or those plus any vessel on a lattice "
       "face ('edge')", group="vessels"),
    _p("vessel_regression_time", 2 * MINUTES_PER_DAY, "min", float, 0.0, 1.0e7, doc="a vessel site without flow "
       "this long regresses (a blind sprout that has not connected)", source="Welter et al. 2010 protect blind sprouts "
       "~50 h; Owen et al. 2011 prune after ~4000 min at low shear", group="vessels"),
    _p("coopt_regression_rate", 1.0 / (7 * MINUTES_PER_DAY), "1/min", float, 0.0, 1.0, doc="regression hazard of a "
       "vessel under tumour tissue (co-opted) without VEGF", source="assumption; co-opted vessels regress over "
       "1-4 weeks (Holash et al. 1999, Science 284:1994)", group="vessels"),
    _p("coopt_vegf_half", 0.5, "nM", float, 1e-6, 1.0e4, doc="VEGF that halves the co-opted regression hazard",
       source="assumption; VEGF keeps immature vessels alive (Benjamin et al. 1999, JCI 103:159)", group="vessels"),
    _p("sprout_rate", 2.5e-4, "1/min", float, 0.0, 1.0, doc="sprouting hazard of a perfused stalk cell at "
       "saturating VEGF", source="Owen 2011", group="vessels"),
    _p("sprout_vegf_half", 0.5, "nM", float, 1e-6, 1.0e4, doc="VEGF of half-maximal sprouting",
       source="Owen 2011", group="vessels"),
    _p("sprout_exclusion", 80.0, "um", float, 0.0, 1.0e4, doc="no new tip within this distance of another tip",
       source="Owen 2011", group="vessels"),
    _p("tip_move_min", 0.25, "1/step", float, 0.0, 1.0, doc="tip move probability per step in intact matrix",
       source="assumption, to calibrate", group="vessels"),
    _p("tip_move_max", 1.0, "1/step", float, 0.0, 1.0, doc="tip move probability per step in MMP9-degraded matrix",
       source="assumption, to calibrate", group="vessels"),
    _p("tip_mmp9_half", 0.5, "nM", float, 1e-6, 1.0e4, doc="MMP9 at which the tip move probability is halfway; "
       "a move into live tumour tissue is weighted by M/(M + tip_mmp9_half)", source="assumption; without matrix "
       "degradation vessels encapsulate a tumour rather than enter it (Macklin et al. 2009)", group="vessels"),
    _p("tip_chemotaxis", 20.0, "1/nM", float, 0.0, 1.0e6, doc="tip move weight 1 + chi*max(0, dVEGF) toward a "
       "neighbour", source="Anderson & Chaplain 1998 (biased random walk)", group="vessels"),
    _p("branch_max", 0.05, "1/move", float, 0.0, 1.0, doc="probability that a moving tip leaves a new tip behind, "
       "at saturating VEGF", source="Anderson & Chaplain 1998", group="vessels"),
    _p("branch_vegf_half", 1.0, "nM", float, 1e-6, 1.0e4, doc="VEGF of half-maximal branching",
       source="assumption", group="vessels"),
    _p("tip_fusion_min_age", 3, "steps", int, 1, CLOCK_MAX, doc="a tip can anastomose only after this many steps",
       source="assumption (stops a sprout fusing with its own parent at once)", group="vessels"),
    # blood flow (src/tumorca/flow.py): perfusion = "flow"
    _p("perfusion", "flow", "", str, choices=("flow", "loops"), doc="what makes a vessel site perfused: blood "
       "flow above perfusion_flow_threshold in a pressure solve between arterial and venous inlets (flow), or "
       "lying on a loop or path between inlets (loops: topological, no pressure)", source="flow: Owen et al. "
       "2009, Welter & Rieger 2010 (Poiseuille flow on the vessel graph); loops: assumption", group="flow"),
    _p("flow_p_arterial", 35.0, "mmHg", float, 0.0, 300.0, doc="blood pressure held at arterial inlet sites "
       "(inlet code 1)", source="Landis 1930 (human nailfold capillaries, about 32 mmHg at the arteriolar end); "
       "35 mmHg is the textbook arteriolar-end capillary pressure", group="flow"),
    _p("flow_p_venous", 15.0, "mmHg", float, 0.0, 300.0, doc="blood pressure held at venous inlet sites (inlet "
       "code 2)", source="Landis 1930 (about 12-15 mmHg at the venular end)", group="flow"),
    _p("flow_tol", 1.0e-6, "", float, 1.0e-15, 1.0e-2, doc="the flow solve stops when the largest Kirchhoff "
       "imbalance at a junction is at most flow_tol*|flow_p_arterial - flow_p_venous| (in units of the flow "
       "through one site of vessel under that pressure drop)", source="assumption", group="flow"),
    _p("flow_interval", 6, "steps", int, 1, 10**6, doc="steps between flow solves; in between, a vessel site keeps "
       "its flow while it stays connected to an inlet, and new vessel sites wait for the next solve", source="assumption "
       "(flow re-routes over hours, as the network remodels)", group="flow"),
    _p("flow_max_iter", 100000, "", int, 1, 10**8, doc="cap on conjugate-gradient iterations of one flow solve "
       "(reaching it warns)", source="assumption", group="flow"),
    _p("perfusion_flow_threshold", 1.0e-4, "mmHg", float, 0.0, 1.0e3, doc="a vessel site counts as perfused "
       "where its flow q is at least this (q in mmHg times the conductance of one site of vessel: a straight "
       "vessel of L sites between the two inlet pressures carries (35-15)/L)", source="assumption", group="flow"),
    # neutrophils and IFN-beta
    _p("ifn_level", 1.0, "", float, 0.0, 1.0e3, doc="IFN-beta level I before any therapy (1: wild-type "
       "constitutive endogenous level; 0: Ifnb1-/-)", source="design, docs/model.md §4", group="ifn"),
    _p("ifn_therapy_level", 0.0, "", float, 0.0, 1.0e3, doc="IFN-beta level I from ifn_therapy_start on; 0 means "
       "no therapy", source="design, docs/model.md §4 (e.g. 3)", group="ifn"),
    _p("ifn_therapy_start", 0.0, "min", float, 0.0, 1.0e8, doc="time the therapy level starts", group="ifn"),
    _p("ifn_K", 1.0, "", float, 1e-6, 1.0e3, doc="IFN level of half suppression in S(I) = 1/(1+(I/K)^h)",
       source="design 0.5, docs/model.md §4; calibrated, docs/validation.md", group="ifn"),
    _p("ifn_hill", 2.0, "", float, 0.1, 10.0, doc="Hill exponent h of S(I)", source="design, docs/model.md §4",
       group="ifn"),
    _p("neut_recruit_min", 5.0e-6, "1/min", float, 0.0, 1.0, doc="recruitment rate per perfused site at full "
       "IFN suppression (X_min)", source="assumption; calibrated, docs/validation.md (about 1 neutrophil per 100 "
       "tumour cells in the wild-type)", group="neutrophils"),
    _p("neut_recruit_max", 5.0e-5, "1/min", float, 0.0, 1.0, doc="recruitment rate per perfused site without "
       "IFN-beta (X_max)", source="Jablonska 2010 (more TANs in Ifnb1-/-); calibrated, docs/validation.md (the "
       "capillary bed holds about 100 times the perfused sites of the vessel grid the earlier value was set "
       "for)", group="neutrophils"),
    _p("neut_cxcl_half", 0.1, "nM", float, 1e-6, 1.0e4, doc="CXCL of half-maximal recruitment (K_C)",
       source="assumption", group="neutrophils"),
    _p("neut_depletion", 0.0, "", float, 0.0, 1.0, doc="fraction epsilon of recruitment removed by antibody "
       "depletion", source="design, docs/model.md §4 (about 0.9)", group="neutrophils"),
    _p("neut_depletion_death", 0.0, "1/min", float, 0.0, 1.0, doc="extra death hazard under antibody depletion",
       source="design, docs/model.md §4", group="neutrophils"),
    _p("neut_lifespan_min", 360.0, "min", float, 1.0, 1.0e6, doc="mean neutrophil lifespan in the tumour under "
       "IFN-beta (X_min)", source="Summers 2010; Pillay 2010", group="neutrophils"),
    _p("neut_lifespan_max", 2880.0, "min", float, 1.0, 1.0e6, doc="mean lifespan without IFN-beta (X_max)",
       source="Andzinski 2015 (longer-lived TANs in Ifnb1-/-)", group="neutrophils"),
    _p("neut_polarization_min", 0.5, "", float, 0.0, 1.0, doc="target polarisation p* under IFN-beta (0 = N1, "
       "1 = N2)", source="Andzinski 2016 (type I IFN drives N1); value to calibrate", group="neutrophils"),
    _p("neut_polarization_max", 0.95, "", float, 0.0, 1.0, doc="target polarisation p* without IFN-beta",
       source="Fridlender 2009; Andzinski 2016", group="neutrophils"),
    _p("neut_polarization_time", 360.0, "min", float, 1.0, 1.0e6, doc="relaxation time of p toward p*",
       source="assumption", group="neutrophils"),
    _p("neut_chemotaxis_min", 20.0, "1/nM", float, 0.0, 1.0e6, doc="CXCR4-driven homing: sub-move weight "
       "1 + chi*max(0, dCXCL), under IFN-beta (X_min)", source="Jablonska 2010 (CXCR4 up in Ifnb1-/-)",
       group="neutrophils"),
    _p("neut_chemotaxis_max", 100.0, "1/nM", float, 0.0, 1.0e6, doc="homing weight chi without IFN-beta (X_max)",
       source="Jablonska 2010", group="neutrophils"),
    _p("neut_substeps", 16, "", int, 0, 1000, doc="random-walk sub-moves per step (16 x 20 um / 30 min = "
       "10.7 um/min)", source="BioNumbers: 10-17 um/min", group="neutrophils"),
    _p("neut_vegf_min", 0.03, "nM/min", float, 0.0, 100.0, doc="VEGF secretion of a fully N2 neutrophil under "
       "IFN-beta (X_min; scaled by p)", source="Jablonska 2010; calibrated, docs/validation.md", group="neutrophils"),
    _p("neut_vegf_max", 0.3, "nM/min", float, 0.0, 100.0, doc="VEGF secretion of a fully N2 neutrophil without "
       "IFN-beta (X_max)", source="Jablonska 2010 (more VEGF in Ifnb1-/- TANs); calibrated, docs/validation.md", group="neutrophils"),
    _p("neut_mmp9_min", 0.03, "nM/min", float, 0.0, 100.0, doc="MMP9 secretion of a fully N2 neutrophil under "
       "IFN-beta (X_min; scaled by p)", source="Jablonska 2010; calibrated, docs/validation.md", group="neutrophils"),
    _p("neut_mmp9_max", 0.3, "nM/min", float, 0.0, 100.0, doc="MMP9 secretion without IFN-beta (X_max)",
       source="Jablonska 2010 (more MMP9 in Ifnb1-/- TANs); calibrated, docs/validation.md", group="neutrophils"),
    _p("neut_kill_rate", 0.0005, "1/min", float, 0.0, 1.0, doc="kill hazard of a fully N1 neutrophil (p = 0) on "
       "an adjacent tumour cell; scaled by 1 - p", source="PhysiCell T-cell 0.067/min as upper bound; calibrated, docs/validation.md",
       group="neutrophils"),
    _p("hypoxia_o2", 10.0, "mmHg", float, 0.0, 760.0, doc="live tumour below this pO2 counts as hypoxic in "
       "summaries", source="convention", group="observables"),
    # initial condition
    _p("init_tumor_radius", 10.0, "sites", float, 0.0, 1.0e6, doc="radius of the initial tumour disk/ball at "
       "the lattice centre", group="initial"),
    _p("init_vessels", "bed", "", str, choices=("bed", "parallel", "grid", "none"),
       doc="initial vessels: a capillary bed of parallel capillaries along x joined by oblique cross-links, "
       "arterial inlets at x = 0 and venous at x = nx - 1 (bed), straight perfused vessels along x at a regular "
       "spacing in y (and z) (parallel), along z through a square grid of (y, x) sites (grid: isolated vessel "
       "cross-sections in 2D), or none",
       group="initial"),
    _p("init_vessel_spacing", 10, "sites", int, 2, 10**6, doc="distance between initial parallel vessels "
       "(capillaries of the bed)", source="200 um: with the host O2 uptake, host-tissue pO2 between capillaries "
       "stays above 30 mmHg, within the 25-50 mmHg of normal tissue (McKeown 2014); assumption", group="initial"),
    _p("init_bed_crosslink_spacing", 20, "sites", int, 1, 10**6, doc="distance along x between the cross-links "
       "of the capillary bed (tumorca.initial.capillary_bed)", source="400 um, two capillary spacings: where a "
       "tumour cuts a capillary, flow reroutes through the links within this distance; at 800 um 3D tumours grew "
       "to 0.64 of their width along the capillaries (docs/model.md, host bed); assumption", group="initial"),
)

_SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAMETERS}


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(_SPECS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """Check one value against its spec and return it in canonical type; raise ParameterError otherwise."""
    name = spec.name
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(f"parameter {name!r} must be true or false, got {value!r}")
    if spec.kind is str:
        if not isinstance(value, str) or value not in spec.choices:
            raise ParameterError(f"parameter {name!r} must be {spec.describe_range()}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"parameter {name!r} must be a number, got {value!r}")
    if spec.kind is int:
        try:
            iv = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"parameter {name!r} must be an integer, got {value!r}") from None
        if iv != value:
            raise ParameterError(f"parameter {name!r} must be an integer, got {value!r}")
        value = iv
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name!r} must be a number, got {value!r}") from None
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be finite, got {value!r}")
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        raise ParameterError(f"parameter {name!r} = {value!r} is out of range {spec.describe_range()}")
    return value


# Orderings between parameters that the rules need: (lower, upper, strict).
_ORDERINGS = (
    ("cycle_o2_low", "cycle_o2_high", True),
    ("necrosis_o2_full", "necrosis_o2_onset", True),
    ("quiescence_o2_enter", "quiescence_o2_exit", False),
    ("tip_move_min", "tip_move_max", False),
)


#: The largest TOML file tumorca reads (parameter and sweep files are a few kB): a bigger one, or a device such
#: as /dev/zero, is refused instead of filling the memory.
MAX_TOML_BYTES = 1 << 20


def read_text_file(path: Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of a small regular file; ``error`` (one line) if it is missing, not a regular file, larger
    than :data:`MAX_TOML_BYTES` or not UTF-8."""
    import os
    import stat

    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise error(f"{what} {str(path)!r} is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise error(f"{what} {str(path)!r} is not a regular file")
            data = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise error(f"cannot read {what} {str(path)!r}: it does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {str(path)!r} is a directory") from None
    except OSError as exc:
        raise error(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOML_BYTES:
        raise error(f"{what} {str(path)!r} is larger than {MAX_TOML_BYTES >> 20} MiB; it cannot be one")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start})") from None


def parse_toml(text: str, source: str, error: type[Exception]) -> dict[str, Any]:
    """``tomllib.loads``; ``error`` (one line) for malformed TOML, and for nesting too deep to parse."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"malformed TOML in {source!r}: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"malformed TOML in {source!r}: arrays or tables nested too deeply") from None


class Params(Mapping[str, Any]):
    """An immutable, validated set of model parameters.

    Parameters
    ----------
    **values
        Any parameters to change from their defaults (see :data:`PARAMETERS` or ``tumorca params``).

    Raises
    ------
    tumorca.errors.ParameterError
        For an unknown name (with the closest valid one), a value of the wrong type, or one out of range.

    Examples
    --------
    >>> p = Params(o2_uptake_stroma=0.01)
    >>> p.o2_vessel
    38.0
    >>> p.replace(o2_vessel=40).o2_vessel
    40.0
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        merged = {s.name: s.default for s in PARAMETERS}
        for name, value in values.items():
            spec = _SPECS.get(name)
            if spec is None:
                raise ParameterError(f"unknown parameter {name!r}{_suggest(name)}")
            merged[name] = _coerce(spec, value)
        dt = merged["dt_min"]
        for name in ("quiescent_death_time", "vessel_regression_time"):
            if math.ceil(merged[name] / dt - 1e-9) > CLOCK_MAX:
                raise ParameterError(f"parameter {name!r} = {merged[name]!r} is more than {CLOCK_MAX} steps of "
                                     f"dt_min = {dt!r} (clocks are 16-bit)")
        for lo, hi, strict in _ORDERINGS:
            if merged[lo] > merged[hi] or (strict and merged[lo] == merged[hi]):
                rel = "<" if strict else "<="
                raise ParameterError(f"parameters must satisfy {lo} {rel} {hi}, got {merged[lo]!r} and "
                                     f"{merged[hi]!r}")
        object.__setattr__(self, "_values", merged)

    # -- mapping and attribute access ------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"unknown parameter {name!r}{_suggest(name)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Params is immutable; use params.replace(...)")

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"unknown parameter {name!r}{_suggest(name)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Params) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        diff = self.changed()
        inner = ", ".join(f"{k}={v!r}" for k, v in diff.items())
        return f"Params({inner})"

    def __reduce__(self):
        return (_params_from_dict, (self.to_dict(),))

    # -- construction and export -----------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "Params":
        """A copy with ``changes`` applied (validated like the constructor)."""
        return Params(**{**self._values, **changes})

    def to_dict(self) -> dict[str, Any]:
        """All parameters as a plain dict (JSON/TOML/HDF5-attribute friendly)."""
        return dict(self._values)

    def changed(self) -> dict[str, Any]:
        """Only the parameters that differ from the built-in defaults."""
        return {k: v for k, v in self._values.items() if v != _SPECS[k].default}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Params":
        """Build from a mapping; unknown keys are errors."""
        if not isinstance(values, Mapping):
            raise ParameterError(f"parameters must be a mapping, got {type(values).__name__}")
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | Path, base: "Params | None" = None) -> "Params":
        """Read parameters from a TOML file: top-level ``key = value`` lines, or the same under ``[params]``.

        Values not given keep those of ``base`` (the defaults if None).
        """
        path = Path(path)
        text = read_text_file(path, "parameter file", ParameterError)
        data = parse_toml(text, str(path), ParameterError)
        table = data.pop("params", {})
        if not isinstance(table, dict):
            raise ParameterError(f"params in {str(path)!r} must be a table ([params] with key = value lines), got "
                                 f"{type(table).__name__}")
        values = dict(table)
        for key, value in data.items():
            if isinstance(value, dict):
                raise ParameterError(f"unknown table [{key}] in {str(path)!r} (parameters go at the top level "
                                     "or under [params])")
            values[key] = value
        return (base or cls()).replace(**values)

    # -- quantities the kernels use --------------------------------------------------------------------------
    def rates(self) -> dict[str, float]:
        """Per-step probabilities and stencil constants derived from the parameters.

        Hazards become per-step probabilities once, here (1 - exp(-h*dt)), so that neither the kernels nor the
        NumPy reference evaluate a transcendental function per site.
        """
        dt, dx2 = self.dt_min, self.dx_um ** 2

        def gain(decay: float) -> float:
            return 1.0 / (1.0 + decay * dt)

        return {
            "o2_k": self.o2_diffusivity / dx2,
            "p_div_max": -math.expm1(-self.tumor_cycle_rate * dt),
            "p_nec_max": -math.expm1(-self.necrosis_rate_max * dt),
            "q_death_steps": max(1, math.ceil(self.quiescent_death_time / dt - 1e-9)),
            "vegf_alpha": self.vegf_diffusivity * dt / dx2, "vegf_gain": gain(self.vegf_decay),
            "vegf_bound_gain": gain(self.vegf_bound_decay),
            "mmp9_alpha": self.mmp9_diffusivity * dt / dx2, "mmp9_gain": gain(self.mmp9_decay),
            "cxcl_alpha": self.cxcl_diffusivity * dt / dx2, "cxcl_gain": gain(self.cxcl_decay),
            "vegf_dt_free": dt * (1.0 - self.vegf_bound_fraction), "vegf_dt_bound": dt * self.vegf_bound_fraction,
            "krel_dt": self.vegf_release_rate * dt,
            "regress_steps": max(1, math.ceil(self.vessel_regression_time / dt - 1e-9)),
            "p_coopt_regress": -math.expm1(-self.coopt_regression_rate * dt),
            "p_sprout_max": -math.expm1(-self.sprout_rate * dt),
            "exclusion_sites": self.sprout_exclusion / self.dx_um,
            "p_kill_max": -math.expm1(-self.neut_kill_rate * dt),
            "g_pol": math.exp(-dt / self.neut_polarization_time),
        }

    def suppression(self, ifn: float) -> float:
        """The IFN-beta suppression curve S(I) = 1/(1 + (I/K)^h) (1 without IFN-beta, toward 0 with much)."""
        return 1.0 / (1.0 + (ifn / self.ifn_K) ** self.ifn_hill)

    def ifn_rates(self, ifn: float) -> dict[str, float]:
        """Neutrophil constants at IFN-beta level ``ifn``: each X(I) = X_min + (X_max - X_min)*S(I) (docs/model.md §4),
        turned into per-step probabilities where the kernels need them."""
        S = self.suppression(ifn)
        dt = self.dt_min

        def x(name: str) -> float:
            lo, hi = self[name + "_min"], self[name + "_max"]
            return lo + (hi - lo) * S

        lifespan = x("neut_lifespan")
        return {
            "S": S,
            "p_rec": x("neut_recruit") * dt * (1.0 - self.neut_depletion),
            "p_death": -math.expm1(-dt * (1.0 / lifespan + self.neut_depletion_death)),
            "pstar": x("neut_polarization"),
            "chi": x("neut_chemotaxis"),
            "v_neut": x("neut_vegf"),
            "m_neut": x("neut_mmp9"),
            "lifespan": lifespan,
        }


def _params_from_dict(values: dict[str, Any]) -> Params:
    return Params(**values)


def check_value(name: str, value: Any) -> Any:
    """``value`` checked against parameter ``name`` and returned in its canonical type (ParameterError naming the
    parameter, with the closest valid name if it is unknown)."""
    return _coerce(spec(name), value)


def spec(name: str) -> ParamSpec:
    """The :class:`ParamSpec` of one parameter (ParameterError naming the closest valid one if unknown)."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ParameterError(f"unknown parameter {name!r}{_suggest(name)}") from None
