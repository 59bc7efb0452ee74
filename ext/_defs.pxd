# Cython view of ext/defs.h.
cdef extern from "defs.h" nogil:
    enum:
        TC_EMPTY
        TC_TUMOR_P
        TC_TUMOR_Q
        TC_NECROTIC
        TC_EC_STALK
        TC_EC_TIP
        TC_N_STATES
        TC_PURPOSE_TUMOR
        TC_PURPOSE_TIP
        TC_PURPOSE_SPROUT
        TC_PURPOSE_NEUT
        TC_PURPOSE_NEUT_MOVE
        TC_TIP_FUSE
        TC_TIP_BRANCH
        TC_SPROUT_CANDIDATE
        TC_KILL_OWN_SITE
        TC_PROP_DIR_MASK
        TC_PROP_STATE_SHIFT
