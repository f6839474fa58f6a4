"""The per-pair result every interaction test returns (one array entry per pair)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["InteractionTestResult"]


@dataclass
class InteractionTestResult:
    """Per-pair outcome of one test; arrays have one entry per pair.

    Attributes
    ----------
    test : "disjointness" or "separability".
    statistic : the test statistic (unbiased D = 4 MMD^2, or the separability score S).
    p_value : permutation (disjointness) or parametric-null (separability) p-value; NaN
        where the method gives only a score (the classifier separability estimator).
    effect_size : statistic divided by the spread of its null (disjointness: permutation
        standard deviation; separability: bootstrap standard error).
    ci_low, ci_high : 95% interval (separability: S +- 1.96 bootstrap se; disjointness: NaN).
    terms : extra per-pair arrays (e.g. the four KL estimates).
    params : kernel, bandwidth rule and bandwidths, sample sizes, permutations, seed.
    """

    test: str
    statistic: np.ndarray
    p_value: np.ndarray
    effect_size: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
