"""Scenario presets (docs/model.md §4): each one is data, the parameters it changes from the wild-type defaults.

No preset is special-cased anywhere in the engine: a preset only chooses parameter values.
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from ._constants import MINUTES_PER_DAY
from .errors import ParameterError
from .params import Params

_DEPLETION = {"neut_depletion": 0.9, "neut_depletion_death": 1.0 / 240.0}

#: name -> (one-line description, parameters changed from the defaults)
PRESETS: dict[str, tuple[str, Mapping[str, Any]]] = {
    "wild-type": ("constitutive low endogenous IFN-beta (I = 1); the defaults", {}),
    "ifnb-knockout": ("Ifnb1-/-: no endogenous IFN-beta (I = 0)", {"ifn_level": 0.0}),
    "ifnb-therapy": ("low-dose IFN-beta therapy: I = 3 from day 3 on top of wild-type",
                     {"ifn_therapy_level": 3.0, "ifn_therapy_start": 3 * MINUTES_PER_DAY}),
    "neutrophil-depleted": ("anti-Ly6G depletion in wild-type: recruitment x 0.1 and extra death hazard",
                            dict(_DEPLETION)),
    "knockout-depleted": ("Ifnb1-/- with neutrophil depletion", {"ifn_level": 0.0, **_DEPLETION}),
    "cxcr2-block": ("CXCR2 blocked: no neutrophil recruitment", {"neut_recruit_min": 0.0, "neut_recruit_max": 0.0}),
    "mmp9-knockout": ("no neutrophil MMP9, so no release of matrix-bound VEGF by it",
                      {"neut_mmp9_min": 0.0, "neut_mmp9_max": 0.0}),
    "anti-vegf": ("VEGF-neutralising antibody: free VEGF cleared ten times faster", {"vegf_decay": 0.1}),
    "tgfb-block": ("TGF-beta blocked: neutrophils N1-biased (p* = 0.1) whatever the IFN level",
                   {"neut_polarization_min": 0.1, "neut_polarization_max": 0.1}),
}


def names() -> list[str]:
    """The preset names, in a stable order."""
    return list(PRESETS)


def changes(name: str) -> dict[str, Any]:
    """The parameters ``name`` changes; ParameterError listing the valid names if it is unknown."""
    try:
        return dict(PRESETS[name][1])
    except KeyError:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"unknown preset {name!r}{hint}; presets are {', '.join(PRESETS)}") from None


def get(name: str, **overrides: Any) -> Params:
    """The Params of preset ``name``, with optional further ``overrides``."""
    return Params(**{**changes(name), **overrides})
