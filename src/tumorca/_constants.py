"""Numbers shared with the compiled kernels (ext/defs.h).  Kept here so pure-Python code (the NumPy reference,
the analysis) never needs the kernels; tests/test_rng.py checks both copies agree."""
from enum import IntEnum

#: Minutes in a simulated day (times in run files and parameters are in minutes; days are for people).
MINUTES_PER_DAY = 1440.0


class Cell(IntEnum):
    """States of the tissue layer, one byte per site."""

    EMPTY = 0      #: stroma
    TUMOR_P = 1    #: cycling (proliferative) tumour cell
    TUMOR_Q = 2    #: quiescent tumour cell
    NECROTIC = 3   #: dead tumour cell


class Vessel(IntEnum):
    """States of the vessel layer, one byte per site, beside the tissue: a vessel and a tumour cell can share a
    site (a tumour co-opts the vessels it grows over)."""

    NONE = 0       #: no vessel
    STALK = 1      #: endothelial stalk (vessel) cell
    TIP = 2        #: endothelial tip cell of a sprout


#: Fourth counter word of each random draw, one per independent decision.
PURPOSE_TUMOR = 1
PURPOSE_TIP = 2
PURPOSE_SPROUT = 3
PURPOSE_NEUT = 4
PURPOSE_NEUT_MOVE = 5  #: ``| (substep << 8)`` for each neutrophil sub-move
PURPOSE_VESSEL = 6  #: regression of a co-opted vessel

#: Tip-phase proposal byte: low 5 bits = 1 + Moore direction of the move, then these flags.
TIP_FUSE = 0x20
TIP_BRANCH = 0x40
SPROUT_CANDIDATE = 0x80
#: Neutrophil kill target "own site" (Moore directions are 1..26).
KILL_OWN_SITE = 27

#: Per-site proposal byte: low 5 bits = 1 + Moore direction of a division target, high 3 bits = next state.
PROP_DIR_MASK = 0x1F
PROP_STATE_SHIFT = 5

#: The uint16 clocks (quiescent steps; a vessel's steps without flow, or a tip's age; neutrophil age) saturate here.
CLOCK_MAX = 65535

#: Row flags a kernel's first pass leaves for the next: the row holds sites to visit; it holds proposals aimed at
#: a neighbour (rows next to it gather).
ROW_SITES = 0x1
ROW_PROPOSALS = 0x2
#: Tumour pass 1: the row holds a dividing cell that pushes.
ROW_PUSH = 0x4

#: Flags held in ``perfused`` while the perfusion search runs: connected to an inlet; pruned (a dead end).
PERFUSION_CONNECTED = 0x2
PERFUSION_REMOVED = 0x4

#: Moore directions in lexicographic (dz, dy, dx) order: division proposals index into this tuple.
MOORE = tuple((dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dz or dy or dx)

#: NEIGHBOUR_ADJACENCY[d]: bit mask of the Moore directions whose sites touch the site in direction d.
NEIGHBOUR_ADJACENCY = tuple(
    sum(1 << e for e, b in enumerate(MOORE) if e != d and max(abs(x - y) for x, y in zip(a, b)) <= 1)
    for d, a in enumerate(MOORE))

#: Names of the float32 fields, in storage order.
FIELD_NAMES = ("o2", "vegf_free", "vegf_bound", "mmp9", "cxcl")
