"""The per-pair result every interaction test returns (one array entry per pair)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["InteractionTestResult"]


@dataclass
class InteractionTestResult:
    """Per-pair outcome of one test; arrays have one entry per pair.

    Parameters
    ----------
    test : str
        Which test made it: ``"disjointness"``, ``"separability"`` or
        ``"separability_score"`` (the well-level KL-additivity score).
    statistic : ndarray
        The test statistic (unbiased ``D = 4 MMD^2``, or the separability score ``S``).
    p_value : ndarray
        Permutation (disjointness) or parametric-null (separability) p-value; NaN where
        the method gives only a score (the classifier estimator, the KL-additivity score).
    effect_size : ndarray
        The statistic divided by the spread of its null (disjointness: permutation
        standard deviation; separability: bootstrap standard error).
    ci_low, ci_high : ndarray
        95% interval (separability: ``S +- 1.96`` bootstrap se; the KL-additivity score: a
        percentile interval; disjointness: NaN).
    terms : dict of str to ndarray
        Extra per-pair arrays (e.g. the four KL estimates, a status per pair).
    params : dict
        Kernel, bandwidth rule and bandwidths, sample sizes, permutations, seed: written
        into provenance.
    """

    test: str
    statistic: np.ndarray
    p_value: np.ndarray
    effect_size: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
