"""The rules of a step as small frozen objects, built once from :class:`tumorca.Params`.

Each compiled kernel (``ext/``) and its NumPy twin (:mod:`tumorca.reference`) takes one of these objects instead of
a row of positional numbers: two swapped numbers no longer pass silently, and the per-step probabilities are
derived from the parameters once (:meth:`tumorca.Params.rates`) rather than on every step.  A kernel copies the
fields into its C struct by name once per call (``ext/_rules.pxd``), so a misspelt field fails with an
AttributeError on the first call.

The neutrophil and secretion rules depend on the IFN-beta level I(t) (:meth:`tumorca.Params.ifn_rates`); the
level changes at most once per run (the start of therapy), so the engine builds :class:`StepRules` once per level
and keeps them.

This module is pure Python and imports no kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

from .params import Params


@dataclass(frozen=True)
class PerfusionRules:
    """Perfusion and vessel remodelling (``_vessels.perfusion_connect``, ``_prune_round``, ``_finish``).

    Attributes
    ----------
    edge_inlets : bool
        A vessel on a face of the lattice counts as an inlet (``vessel_inlets = "edge"``).
    regress_steps : int
        Steps (of ``dt_min``) a stalk without flow survives before it regresses (the lifetime of a blind sprout).
    p_coopt_regress : float
        Per-step regression probability of a stalk under tumour tissue (co-opted) without VEGF.
    coopt_vegf_half : float
        VEGF that halves the co-opted regression probability (nM): ``p = p_coopt_regress*h/(h + V)``.
    flow : FlowRules or None
        With ``perfusion = "flow"``, the flow solve that decides which connected sites are perfused; None for
        the topological pruning rounds (``perfusion = "loops"``).  Python-side only (no kernel reads it).
    """

    edge_inlets: bool
    regress_steps: int
    p_coopt_regress: float
    coopt_vegf_half: float
    flow: FlowRules | None = None

    @classmethod
    def from_params(cls, params: Params) -> PerfusionRules:
        """The perfusion rules of ``params``."""
        r = params.rates()
        return cls(edge_inlets=params.vessel_inlets == "edge", regress_steps=int(r["regress_steps"]),
                   p_coopt_regress=r["p_coopt_regress"], coopt_vegf_half=params.coopt_vegf_half,
                   flow=FlowRules.from_params(params) if params.perfusion == "flow" else None)


@dataclass(frozen=True)
class FlowRules:
    """Blood flow on the vessel network (``_flow.flow_solve_nodes``; docs/model.md, "Blood flow").

    Attributes
    ----------
    p_arterial, p_venous : float
        Pressures held at arterial (inlet code 1) and venous (code 2) inlet nodes (mmHg).
    tol : float
        Stop when the largest Kirchhoff imbalance at a junction is at most ``tol*|p_arterial - p_venous|``.
    max_iter : int
        Cap on conjugate-gradient iterations (reaching it warns).
    threshold : float
        Flow at or above which a vessel site counts as perfused (for the caller; mmHg times unit conductance).
    interval : int
        Steps between solves: the perfusion phase solves on steps that are multiples of it; in between a site
        stays perfused while it was perfused and is still connected.
    """

    p_arterial: float
    p_venous: float
    tol: float
    max_iter: int
    threshold: float
    interval: int = 1

    @classmethod
    def from_params(cls, params: Params) -> FlowRules:
        """The flow rules of ``params``."""
        return cls(p_arterial=float(params.flow_p_arterial), p_venous=float(params.flow_p_venous),
                   tol=float(params.flow_tol), max_iter=int(params.flow_max_iter),
                   threshold=float(params.perfusion_flow_threshold), interval=int(params.flow_interval))


@dataclass(frozen=True)
class SecretionRules:
    """Secretion into the slow fields and MMP9-driven release of bound VEGF (``_fields.secrete``); depends on the
    IFN-beta level through the neutrophils' secretion.

    Attributes
    ----------
    vegf_tumor_min, vegf_tumor_max : float
        VEGF secretion of a well-oxygenated and of a fully hypoxic live tumour cell (nM/min).
    vegf_hill_o2 : float
        pO2 of half-maximal hypoxic secretion (mmHg).
    vegf_hill_n : int
        Hill exponent of hypoxic secretion (evaluated by repeated multiplication).
    dt_vegf_free, dt_vegf_bound : float
        Minutes of secreted VEGF that go to the free and to the matrix-bound field per step (``dt_min`` split by
        ``vegf_bound_fraction``; min).
    dt_min : float
        The step (min): MMP9 and CXCL secretion per step is ``dt_min`` times the rate.
    cxcl_tumor_live : float
        CXCL1/2 secretion of a live tumour cell (nM/min).
    cxcl_tumor_hypoxic : float
        Extra CXCL1/2 secretion of a fully hypoxic tumour cell (nM/min).
    vegf_neut, mmp9_neut : float
        VEGF and MMP9 secretion of a fully N2 neutrophil at this IFN-beta level (nM/min; times polarisation p).
    krel_dt : float
        MMP9-driven release of bound VEGF per step (1/nM): ``Vb' = Vb/(1 + krel_dt*M)``.
    """

    vegf_tumor_min: float
    vegf_tumor_max: float
    vegf_hill_o2: float
    vegf_hill_n: int
    dt_vegf_free: float
    dt_vegf_bound: float
    dt_min: float
    cxcl_tumor_live: float
    cxcl_tumor_hypoxic: float
    vegf_neut: float
    mmp9_neut: float
    krel_dt: float

    @classmethod
    def from_params(cls, params: Params, ifn: float) -> SecretionRules:
        """The secretion rules of ``params`` at IFN-beta level ``ifn``."""
        p, r, ir = params, params.rates(), params.ifn_rates(ifn)
        return cls(vegf_tumor_min=p.vegf_tumor_min, vegf_tumor_max=p.vegf_tumor_max, vegf_hill_o2=p.vegf_hill_o2,
                   vegf_hill_n=int(p.vegf_hill_n), dt_vegf_free=r["vegf_dt_free"], dt_vegf_bound=r["vegf_dt_bound"],
                   dt_min=p.dt_min, cxcl_tumor_live=p.cxcl_tumor_live, cxcl_tumor_hypoxic=p.cxcl_tumor_hypoxic,
                   vegf_neut=ir["v_neut"], mmp9_neut=ir["m_neut"], krel_dt=r["krel_dt"])


@dataclass(frozen=True)
class EndotheliumRules:
    """Sprouting, tip migration, branching and anastomosis (``_vessels.endothelium_update``).

    Attributes
    ----------
    p_sprout_max : float
        Per-step probability that a perfused stalk becomes a sprout candidate at saturating VEGF.
    sprout_vegf_half : float
        VEGF of half-maximal sprouting (nM).
    tip_move_min, tip_move_max : float
        Per-step tip move probability in intact and in fully MMP9-degraded matrix.
    tip_mmp9_half : float
        MMP9 at which the move probability is halfway (nM).
    tip_chemotaxis : float
        Move weight ``1 + tip_chemotaxis*max(0, dVEGF)`` toward a neighbour (1/nM).
    branch_max : float
        Probability that a moving tip leaves a new tip behind at saturating VEGF.
    branch_vegf_half : float
        VEGF of half-maximal branching (nM).
    tip_fusion_min_age : int
        Steps a tip must have lived before it can anastomose.
    exclusion_sites : float
        No new tip within this Euclidean distance of another tip (sites; ``sprout_exclusion/dx_um``).
    """

    p_sprout_max: float
    sprout_vegf_half: float
    tip_move_min: float
    tip_move_max: float
    tip_mmp9_half: float
    tip_chemotaxis: float
    branch_max: float
    branch_vegf_half: float
    tip_fusion_min_age: int
    exclusion_sites: float

    @classmethod
    def from_params(cls, params: Params) -> EndotheliumRules:
        """The endothelium rules of ``params``."""
        p, r = params, params.rates()
        return cls(p_sprout_max=r["p_sprout_max"], sprout_vegf_half=p.sprout_vegf_half, tip_move_min=p.tip_move_min,
                   tip_move_max=p.tip_move_max, tip_mmp9_half=p.tip_mmp9_half, tip_chemotaxis=p.tip_chemotaxis,
                   branch_max=p.branch_max, branch_vegf_half=p.branch_vegf_half,
                   tip_fusion_min_age=int(p.tip_fusion_min_age), exclusion_sites=r["exclusion_sites"])


@dataclass(frozen=True)
class TumourRules:
    """Tumour-cell cycling, quiescence, necrosis and division (``_tissue.tumor_update``).

    Attributes
    ----------
    p_div_max : float
        Per-step division probability of a cycling cell at full O2.
    cycle_o2_low, cycle_o2_high : float
        pO2 at which the division ramp reaches 0 and 1 (mmHg).
    quiescence_o2_enter : float
        A cycling cell below this pO2 becomes quiescent (mmHg).
    quiescence_o2_exit : float
        A quiescent cell above this pO2 cycles again (mmHg).
    p_nec_max : float
        Per-step necrosis probability at and below ``necrosis_o2_full``.
    necrosis_o2_onset, necrosis_o2_full : float
        pO2 above which necrosis has probability 0, and below which it is maximal (mmHg).
    q_death_steps : int
        Steps quiescent after which a quiescent cell dies.
    push_range : int
        How far (sites along a Moore ray) a dividing cell with no empty neighbour looks for an empty site to push
        its neighbours toward; 0 or 1: no pushing (docs/model.md §2.6).
    """

    p_div_max: float
    cycle_o2_low: float
    cycle_o2_high: float
    quiescence_o2_enter: float
    quiescence_o2_exit: float
    p_nec_max: float
    necrosis_o2_onset: float
    necrosis_o2_full: float
    q_death_steps: int
    push_range: int = 0

    @classmethod
    def from_params(cls, params: Params) -> TumourRules:
        """The tumour rules of ``params``."""
        p, r = params, params.rates()
        return cls(p_div_max=r["p_div_max"], cycle_o2_low=p.cycle_o2_low, cycle_o2_high=p.cycle_o2_high,
                   quiescence_o2_enter=p.quiescence_o2_enter, quiescence_o2_exit=p.quiescence_o2_exit,
                   p_nec_max=r["p_nec_max"], necrosis_o2_onset=p.necrosis_o2_onset,
                   necrosis_o2_full=p.necrosis_o2_full, q_death_steps=int(r["q_death_steps"]),
                   push_range=int(p.push_range))


@dataclass(frozen=True)
class NeutrophilRules:
    """Neutrophil recruitment, death, polarisation, N1 killing and the chemotactic walk
    (``_neutrophils.neutrophil_life_kill``, ``neutrophil_submove``); depends on the IFN-beta level.

    Attributes
    ----------
    p_recruit : float
        Per-step recruitment probability at a perfused site at saturating CXCL (after depletion).
    cxcl_half : float
        CXCL of half-maximal recruitment (nM).
    p_death : float
        Per-step death probability of a neutrophil (lifespan and depletion).
    p_star : float
        Target polarisation p* (0 = N1, 1 = N2) that p relaxes toward; new neutrophils start at it.
    g_pol : float
        Per-step relaxation factor of p toward p*: ``p' = p* + (p - p*)*g_pol``.
    p_kill_max : float
        Per-step kill probability of a fully N1 neutrophil (times ``1 - p``).
    chemotaxis : float
        Sub-move weight ``1 + chemotaxis*max(0, dCXCL)`` toward a free neighbour (1/nM).
    substeps : int
        Random-walk sub-moves per step.
    """

    p_recruit: float
    cxcl_half: float
    p_death: float
    p_star: float
    g_pol: float
    p_kill_max: float
    chemotaxis: float
    substeps: int

    @classmethod
    def from_params(cls, params: Params, ifn: float) -> NeutrophilRules:
        """The neutrophil rules of ``params`` at IFN-beta level ``ifn``."""
        p, r, ir = params, params.rates(), params.ifn_rates(ifn)
        return cls(p_recruit=ir["p_rec"], cxcl_half=p.neut_cxcl_half, p_death=ir["p_death"], p_star=ir["pstar"],
                   g_pol=r["g_pol"], p_kill_max=r["p_kill_max"], chemotaxis=ir["chi"],
                   substeps=int(p.neut_substeps))


@dataclass(frozen=True)
class StepRules:
    """Every rule family of a step at one IFN-beta level, in phase order (what the engine and
    :func:`tumorca.reference.step` pass to the kernels)."""

    perfusion: PerfusionRules
    secretion: SecretionRules
    endothelium: EndotheliumRules
    tumour: TumourRules
    neutrophils: NeutrophilRules

    @classmethod
    def from_params(cls, params: Params, ifn: float) -> StepRules:
        """The rules of ``params`` at IFN-beta level ``ifn``."""
        return cls(perfusion=PerfusionRules.from_params(params),
                   secretion=SecretionRules.from_params(params, ifn),
                   endothelium=EndotheliumRules.from_params(params),
                   tumour=TumourRules.from_params(params),
                   neutrophils=NeutrophilRules.from_params(params, ifn))
