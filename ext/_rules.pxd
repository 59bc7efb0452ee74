# The rules of the kernels as C structs, and their fill from the Python rule objects (src/tumorca/rules.py).
#
# A kernel takes one rule object and copies it here by attribute name once per call, before its loops: a field
# misspelt on either side fails with an AttributeError at the first call instead of passing a wrong number.
# Struct fields carry the Python names; derived values (the exclusion radius) are computed here, once per call.


cdef struct PerfusionRules:
    bint edge_inlets
    int regress_steps
    double p_coopt_regress
    double coopt_vegf_half


cdef struct FlowRules:
    double p_arterial
    double p_venous
    double tol
    long long max_iter
    double threshold


cdef struct SecretionRules:
    double vegf_tumor_min
    double vegf_tumor_max
    double vegf_hill_o2
    int vegf_hill_n
    double dt_vegf_free
    double dt_vegf_bound
    double dt_min
    double cxcl_tumor_live
    double cxcl_tumor_hypoxic
    double vegf_neut
    double mmp9_neut
    double krel_dt


cdef struct EndotheliumRules:
    double p_sprout_max
    double sprout_vegf_half
    double tip_move_min
    double tip_move_max
    double tip_mmp9_half
    double tip_chemotaxis
    double branch_max
    double branch_vegf_half
    int tip_fusion_min_age
    int excl_r          # floor(exclusion_sites): the half-width of the box searched for tips and candidates
    int exclusion_r2    # floor(exclusion_sites**2): squared Euclidean exclusion distance in sites


cdef struct TumourRules:
    double p_div_max
    double cycle_o2_low
    double cycle_o2_high
    double quiescence_o2_enter
    double quiescence_o2_exit
    double p_nec_max
    double necrosis_o2_onset
    double necrosis_o2_full
    int q_death_steps
    int push_range


cdef struct NeutrophilRules:
    double p_recruit
    double cxcl_half
    double p_death
    double p_star
    double g_pol
    double p_kill_max
    double chemotaxis


cdef inline int fill_perfusion(PerfusionRules* R, object rules) except -1:
    R.edge_inlets = rules.edge_inlets
    R.regress_steps = rules.regress_steps
    R.p_coopt_regress = rules.p_coopt_regress
    R.coopt_vegf_half = rules.coopt_vegf_half
    return 0


cdef inline int fill_flow(FlowRules* R, object rules) except -1:
    R.p_arterial = rules.p_arterial
    R.p_venous = rules.p_venous
    R.tol = rules.tol
    R.max_iter = rules.max_iter
    R.threshold = rules.threshold
    return 0


cdef inline int fill_secretion(SecretionRules* R, object rules) except -1:
    R.vegf_tumor_min = rules.vegf_tumor_min
    R.vegf_tumor_max = rules.vegf_tumor_max
    R.vegf_hill_o2 = rules.vegf_hill_o2
    R.vegf_hill_n = rules.vegf_hill_n
    R.dt_vegf_free = rules.dt_vegf_free
    R.dt_vegf_bound = rules.dt_vegf_bound
    R.dt_min = rules.dt_min
    R.cxcl_tumor_live = rules.cxcl_tumor_live
    R.cxcl_tumor_hypoxic = rules.cxcl_tumor_hypoxic
    R.vegf_neut = rules.vegf_neut
    R.mmp9_neut = rules.mmp9_neut
    R.krel_dt = rules.krel_dt
    return 0


cdef inline int fill_endothelium(EndotheliumRules* R, object rules) except -1:
    cdef double e = rules.exclusion_sites
    R.p_sprout_max = rules.p_sprout_max
    R.sprout_vegf_half = rules.sprout_vegf_half
    R.tip_move_min = rules.tip_move_min
    R.tip_move_max = rules.tip_move_max
    R.tip_mmp9_half = rules.tip_mmp9_half
    R.tip_chemotaxis = rules.tip_chemotaxis
    R.branch_max = rules.branch_max
    R.branch_vegf_half = rules.branch_vegf_half
    R.tip_fusion_min_age = rules.tip_fusion_min_age
    R.excl_r = <int>e
    R.exclusion_r2 = <int>(e * e)
    return 0


cdef inline int fill_tumour(TumourRules* R, object rules) except -1:
    R.p_div_max = rules.p_div_max
    R.cycle_o2_low = rules.cycle_o2_low
    R.cycle_o2_high = rules.cycle_o2_high
    R.quiescence_o2_enter = rules.quiescence_o2_enter
    R.quiescence_o2_exit = rules.quiescence_o2_exit
    R.p_nec_max = rules.p_nec_max
    R.necrosis_o2_onset = rules.necrosis_o2_onset
    R.necrosis_o2_full = rules.necrosis_o2_full
    R.q_death_steps = rules.q_death_steps
    R.push_range = rules.push_range
    return 0


cdef inline int fill_neutrophils(NeutrophilRules* R, object rules) except -1:
    R.p_recruit = rules.p_recruit
    R.cxcl_half = rules.cxcl_half
    R.p_death = rules.p_death
    R.p_star = rules.p_star
    R.g_pol = rules.g_pol
    R.p_kill_max = rules.p_kill_max
    R.chemotaxis = rules.chemotaxis
    return 0
