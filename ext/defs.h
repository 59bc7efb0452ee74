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
    TC_PURPOSE_TUMOR = 1,
    TC_PURPOSE_TIP = 2,
    TC_PURPOSE_SPROUT = 3,
    TC_PURPOSE_NEUT = 4,
    TC_PURPOSE_NEUT_MOVE = 5   /* | (substep << 8) */
};

/* Tip-phase proposal byte: low 5 bits = 1 + Moore direction of the move, then these flags. */
#define TC_TIP_FUSE 0x20
#define TC_TIP_BRANCH 0x40
#define TC_SPROUT_CANDIDATE 0x80
/* Neutrophil kill target "own site" (Moore directions are 1..26). */
#define TC_KILL_OWN_SITE 27

/* Encoding of the per-site proposal byte written by the tumour pass:
 * low 5 bits = division target (1 + Moore direction index, 0 = none), high 3 bits = the site's next state. */
#define TC_PROP_DIR_MASK 0x1F
#define TC_PROP_STATE_SHIFT 5

#endif
