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
        TC_PROP_DIR_MASK
        TC_PROP_STATE_SHIFT
