"""Effect sizes, confidence intervals and tests for one-sided claims ``high > low`` between two arms."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

#: Bootstrap resamples for the confidence intervals, permutations for tied Mann–Whitney p-values, and the
#: generator seed that makes both reproducible.
BOOTSTRAP_RESAMPLES = 10_000
PERMUTATIONS = 20_000
SEED = 12345
#: Confidence level of the intervals: 1 - ALPHA.
ALPHA = 0.05
#: A claim holds when the Holm-adjusted p is below this: issue 14 asks each ordering at p < 0.01.
CLAIM_ALPHA = 0.01


@dataclass(frozen=True)
class Effect:
    """The comparison of two samples ``high`` and ``low`` (the claim is high > low).

    ``ratio`` is mean(high)/mean(low) with its percentile-bootstrap 95 % CI (arms resampled independently);
    ``difference`` is mean(high) − mean(low) with its CI; ``a12`` is the common-language effect size
    P(X_high > X_low) + ½·P(X_high = X_low) = U/(n_high·n_low); ``p_mannwhitney`` the one-sided Mann–Whitney U
    p-value (unpaired; exact without ties, a seeded permutation estimate with ties), ``p_holm`` that p-value
    adjusted by Holm's method over the claims of one table (set by :func:`holm`), ``p_wilcoxon`` the one-sided
    Wilcoxon signed-rank p-value of the differences between replicates with the same seed, or NaN where it
    cannot be computed.
    """

    n_high: int
    n_low: int
    mean_high: float
    mean_low: float
    ratio: float
    ratio_ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    a12: float
    p_mannwhitney: float
    p_wilcoxon: float
    p_holm: float = math.nan

    @property
    def computed(self) -> bool:
        return self.n_high >= 2 and self.n_low >= 2

    @property
    def holds(self) -> bool:
        """The claim is supported: the direction is right and the Mann–Whitney test rejects at CLAIM_ALPHA after
        the Holm adjustment (or unadjusted, where no adjustment was made)."""
        p = self.p_mannwhitney if math.isnan(self.p_holm) else self.p_holm
        return self.computed and self.difference > 0 and p < CLAIM_ALPHA

    @property
    def verdict(self) -> str:
        if not self.computed:
            return "not computed (fewer than 2 runs)"
        if self.holds:
            return "holds"
        if self.difference > 0:
            return "direction only (not significant)"
        return "fails"


def _mannwhitney_greater(high: np.ndarray, low: np.ndarray) -> tuple[float, float]:
    """U statistic of ``high`` and its one-sided p-value: exact without ties; with ties a permutation estimate
    (scipy's 'auto' falls back to the normal approximation there, which is anticonservative for small n)."""
    from scipy.stats import PermutationMethod, mannwhitneyu

    tied = len(np.unique(np.concatenate([high, low]))) < len(high) + len(low)
    if not tied:
        r = mannwhitneyu(high, low, alternative="greater", method="exact")
    else:
        method = PermutationMethod(n_resamples=PERMUTATIONS, random_state=np.random.default_rng(SEED))
        r = mannwhitneyu(high, low, alternative="greater", method=method)
    return float(r.statistic), float(r.pvalue)


def compare(high: Sequence[float] | Mapping[int, float], low: Sequence[float] | Mapping[int, float]) -> Effect:
    """Compare two samples under the one-sided claim mean(high) > mean(low); NaNs are dropped.

    Given as mappings ``{replicate: value}``, replicates present (and not NaN) in both arms are also paired for
    the Wilcoxon test; given as sequences, there is no pairing (``p_wilcoxon`` is NaN).
    """
    from scipy.stats import wilcoxon

    p_w = math.nan
    if isinstance(high, Mapping) and isinstance(low, Mapping):
        both = sorted(k for k in high if k in low and not (math.isnan(high[k]) or math.isnan(low[k])))
        ph = np.array([high[k] for k in both], dtype=np.float64)
        pl = np.array([low[k] for k in both], dtype=np.float64)
        if len(both) >= 2 and np.any(ph != pl):
            p_w = float(wilcoxon(ph, pl, alternative="greater").pvalue)
        high, low = list(high.values()), list(low.values())
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    high, low = high[~np.isnan(high)], low[~np.isnan(low)]
    nh, nl = len(high), len(low)
    nan = math.nan
    if nh < 2 or nl < 2:
        return Effect(nh, nl, nan, nan, nan, (nan, nan), nan, (nan, nan), nan, nan, nan)
    mh, ml = float(high.mean()), float(low.mean())
    rng = np.random.default_rng(SEED)
    bh = high[rng.integers(0, nh, (BOOTSTRAP_RESAMPLES, nh))].mean(axis=1)
    bl = low[rng.integers(0, nl, (BOOTSTRAP_RESAMPLES, nl))].mean(axis=1)
    diff = bh - bl
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bh / bl
    lo_q, hi_q = 100 * ALPHA / 2, 100 * (1 - ALPHA / 2)
    u, p = _mannwhitney_greater(high, low)
    finite = ratio[np.isfinite(ratio)]  # 0/0 when both arms are all zero: no ratio, no interval
    ratio_ci = ((float(np.percentile(finite, lo_q)), float(np.percentile(finite, hi_q))) if len(finite)
                else (nan, nan))
    return Effect(nh, nl, mh, ml, mh / ml if ml else nan, ratio_ci, mh - ml,
                  (float(np.percentile(diff, lo_q)), float(np.percentile(diff, hi_q))),
                  u / (nh * nl), p, p_w)


def holm(effects: Sequence[Effect]) -> list[Effect]:
    """The effects with ``p_holm`` set: Holm's step-down adjustment of their Mann–Whitney p-values (a family of
    claims tested together; controls the family-wise error rate at CLAIM_ALPHA)."""
    from dataclasses import replace

    idx = [i for i, e in enumerate(effects) if not math.isnan(e.p_mannwhitney)]
    order = sorted(idx, key=lambda i: effects[i].p_mannwhitney)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * effects[i].p_mannwhitney))
        adjusted[i] = running
    return [replace(e, p_holm=adjusted.get(i, math.nan)) for i, e in enumerate(effects)]


@dataclass(frozen=True)
class DesignGain:
    """A treatment effect measured by a paired (branched) design and by an independent one, on the first ``n``
    replicates.

    ``control`` and ``treated_paired`` are the arms continued from the same parents (replicate k of both from
    parent k); ``treated_independent`` grew from other seeds.  The claim is control > treated.  ``paired`` holds the
    effect with ``p_wilcoxon`` (signed-rank test of the per-parent differences); ``independent`` the effect of
    control against the independent treated runs with ``p_mannwhitney``.  ``relative_efficiency`` is
    (var(control) + var(independent treated)) / var(paired differences): how many times more replicates per arm
    the independent design needs for the standard error of the paired one.
    """

    n: int
    paired: Effect
    independent: Effect
    relative_efficiency: float


def design_gain(control: Sequence[float], treated_paired: Sequence[float], treated_independent: Sequence[float],
                n: int) -> DesignGain:
    """Compare the paired and the independent design on their first ``n`` replicates (see :class:`DesignGain`)."""
    c = np.asarray(control, dtype=np.float64)[:n]
    tp = np.asarray(treated_paired, dtype=np.float64)[:n]
    ti = np.asarray(treated_independent, dtype=np.float64)[:n]
    if not len(c) == len(tp) == len(ti) == n:
        raise ValueError(f"design_gain needs {n} replicates of each arm, got {len(c)}, {len(tp)}, {len(ti)}")
    paired = compare(dict(enumerate(c)), dict(enumerate(tp)))
    independent = compare(c, ti)
    var_d = float(np.var(c - tp, ddof=1)) if n > 1 else math.nan
    var_i = float(np.var(c, ddof=1) + np.var(ti, ddof=1)) if n > 1 else math.nan
    # inf only for a real zero-variance pairing against a spread-out independent design; NaN where undefined
    eff = var_i / var_d if var_d > 0 else (math.inf if var_i > 0 else math.nan)
    return DesignGain(n, paired, independent, eff)
