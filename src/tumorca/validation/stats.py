"""Effect sizes, confidence intervals and tests for one-sided claims ``high > low`` between two arms."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples for the confidence intervals, and the generator seed that makes them reproducible.
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 12345
ALPHA = 0.05


@dataclass(frozen=True)
class Effect:
    """The comparison of two samples ``high`` and ``low`` (the claim is high > low).

    ``ratio`` is mean(high)/mean(low) with its percentile-bootstrap 95 % CI (arms resampled independently);
    ``difference`` is mean(high) − mean(low) with its CI; ``a12`` is the common-language effect size
    P(X_high > X_low) + ½P(tie) = U/(n_high·n_low); ``p_mannwhitney`` the one-sided Mann–Whitney U p-value
    (unpaired), ``p_wilcoxon`` the one-sided Wilcoxon signed-rank p-value of the replicate-paired differences
    (replicate i of both arms share a seed), or NaN where it cannot be computed.
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

    @property
    def holds(self) -> bool:
        """The claim is supported: the direction is right and the Mann–Whitney test rejects at ALPHA."""
        return self.difference > 0 and self.p_mannwhitney < ALPHA

    @property
    def verdict(self) -> str:
        if self.holds:
            return "holds"
        if self.difference > 0:
            return "direction only (not significant)"
        return "fails"


def compare(high: np.ndarray, low: np.ndarray, paired: bool = True) -> Effect:
    """Compare two samples under the one-sided claim mean(high) > mean(low); NaNs are dropped."""
    from scipy.stats import mannwhitneyu, wilcoxon

    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    pair_ok = paired and len(high) == len(low)
    if pair_ok:
        keep = ~(np.isnan(high) | np.isnan(low))
        ph, pl = high[keep], low[keep]
    high, low = high[~np.isnan(high)], low[~np.isnan(low)]
    nh, nl = len(high), len(low)
    if nh < 2 or nl < 2:
        nan = math.nan
        return Effect(nh, nl, nan, nan, nan, (nan, nan), nan, (nan, nan), nan, nan, nan)
    mh, ml = float(high.mean()), float(low.mean())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    bh = high[rng.integers(0, nh, (BOOTSTRAP_RESAMPLES, nh))].mean(axis=1)
    bl = low[rng.integers(0, nl, (BOOTSTRAP_RESAMPLES, nl))].mean(axis=1)
    diff = bh - bl
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bh / bl
    lo_q, hi_q = 100 * ALPHA / 2, 100 * (1 - ALPHA / 2)
    u = mannwhitneyu(high, low, alternative="greater")
    p_w = math.nan
    if pair_ok and len(ph) >= 2 and np.any(ph != pl):
        p_w = float(wilcoxon(ph, pl, alternative="greater").pvalue)
    return Effect(nh, nl, mh, ml, mh / ml if ml else math.inf,
                  (float(np.nanpercentile(ratio, lo_q)), float(np.nanpercentile(ratio, hi_q))), mh - ml,
                  (float(np.percentile(diff, lo_q)), float(np.percentile(diff, hi_q))),
                  float(u.statistic) / (nh * nl), float(u.pvalue), p_w)
