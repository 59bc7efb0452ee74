# Cython view of ext/defs.h.
cdef extern from "defs.h" nogil:
    enum:
        TC_EMPTY
        TC_TUMOR_P
        TC_TUMOR_Q
        TC_NECROTIC
        TC_N_STATES
        TC_VESSEL_NONE
        TC_VESSEL_STALK
        TC_VESSEL_TIP
        TC_PURPOSE_TUMOR
        TC_PURPOSE_TIP
        TC_PURPOSE_SPROUT
        TC_PURPOSE_NEUT
        TC_PURPOSE_NEUT_MOVE
        TC_PURPOSE_VESSEL
        TC_TIP_FUSE
        TC_TIP_BRANCH
        TC_SPROUT_CANDIDATE
        TC_KILL_OWN_SITE
        TC_PROP_DIR_MASK
        TC_PROP_STATE_SHIFT
        TC_CLOCK_MAX
        TC_ROW_SITES
        TC_ROW_PROPOSALS
        TC_ROW_PUSH
        TC_PERFUSION_CONNECTED
        TC_PERFUSION_REMOVED


cdef inline unsigned short clock_sat(int c) noexcept nogil:
    """``c`` as a uint16 clock, saturated at TC_CLOCK_MAX (a clock counts up and must not wrap to 0)."""
    return <unsigned short>(c if c < TC_CLOCK_MAX else TC_CLOCK_MAX)
