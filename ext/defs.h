/*
 * Constants shared by every kernel.  src/tumorca/_constants.py holds the same numbers for the Python side
 * (which must not import the kernels); tests/test_rng.py checks that the two agree.
 */
#ifndef TUMORCA_DEFS_H
#define TUMORCA_DEFS_H

/* Tissue layer states (tumorca.Cell). */
enum {
    TC_EMPTY = 0, TC_TUMOR_P = 1, TC_TUMOR_Q = 2, TC_NECROTIC = 3, TC_EC_STALK = 4, TC_EC_TIP = 5,
    TC_N_STATES = 6
};

/* Random-draw purposes: the fourth counter word, one per independent decision. */
enum {
    TC_PURPOSE_TUMOR = 1
};

/* Encoding of the per-site proposal byte written by the tumour pass:
 * low 5 bits = division target (1 + Moore direction index, 0 = none), high 3 bits = the site's next state. */
#define TC_PROP_DIR_MASK 0x1F
#define TC_PROP_STATE_SHIFT 5

#endif
