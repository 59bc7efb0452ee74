/*
 * Constants shared by every kernel.  src/tumorca/_constants.py holds the same numbers for the Python side
 * (which must not import the kernels); tests/test_rng.py checks that the two agree.
 */
#ifndef TUMORCA_DEFS_H
#define TUMORCA_DEFS_H

/* Tissue layer states (tumorca.Cell). */
enum {
    TC_EMPTY = 0, TC_TUMOR_P = 1, TC_TUMOR_Q = 2, TC_NECROTIC = 3,
    TC_N_STATES = 4
};

/* Vessel layer states (tumorca.Vessel): a layer of its own beside the tissue, so a vessel and a tumour cell can
 * share a site (co-option). */
enum {
    TC_VESSEL_NONE = 0, TC_VESSEL_STALK = 1, TC_VESSEL_TIP = 2
};

/* Random-draw purposes: the fourth counter word, one per independent decision. */
enum {
    TC_PURPOSE_TUMOR = 1,
    TC_PURPOSE_TIP = 2,
    TC_PURPOSE_SPROUT = 3,
    TC_PURPOSE_NEUT = 4,
    TC_PURPOSE_NEUT_MOVE = 5,  /* | (substep << 8) */
    TC_PURPOSE_VESSEL = 6      /* regression of a co-opted vessel */
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

/* The uint16 clocks (quiescent steps; a vessel's steps without flow, or a tip's age; neutrophil age) saturate here. */
#define TC_CLOCK_MAX 65535

/* Row flags (one byte per (z, y) row) that a kernel's first pass leaves for the next, so that it skips rows with
 * nothing to do: the row holds sites the next pass must visit (live tumour, a tip or sprout candidate), and the
 * row holds proposals aimed at a neighbour (divisions, tip moves, kills, neutrophil moves): rows next to it gather. */
#define TC_ROW_SITES 0x1
#define TC_ROW_PROPOSALS 0x2
/* Tumour pass 1: the row holds a dividing cell that pushes (no empty Moore neighbour, docs/model.md). */
#define TC_ROW_PUSH 0x4

/* Flags held in ``perfused`` while the perfusion search runs (perfusion_connect / _prune_round / _finish). */
#define TC_PERFUSION_CONNECTED 0x2
#define TC_PERFUSION_REMOVED 0x4

#endif
