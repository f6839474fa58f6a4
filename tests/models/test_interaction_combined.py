"""The combined call (additivity or viability): its factor, NaN handling and level."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.additivity import additivity_test
from workbench.models.combined_call import bonferroni_min
from workbench.models.interaction_scenarios import simulate_pairs
from workbench.models.replicates import count_test


def test_nan_keeps_the_factor_and_all_nan_stays_nan():
    p = np.array([[0.01, np.nan], [np.nan, np.nan], [0.3, 0.02], [0.7, 0.8]])
    comb, which = bonferroni_min(p)
    # a readout without a p-value still counts: 2 * 0.01, not 0.01
    np.testing.assert_allclose(comb[[0, 2, 3]], [0.02, 0.04, 1.0])
    assert np.isnan(comb[1]) and list(which) == [0, -1, 1, 0]
    with pytest.raises(ValidationError, match="outside \\[0, 1\\]"):
        bonferroni_min(np.array([[0.2, 1.5]]))
    with pytest.raises(ValidationError, match="one column per readout"):
        bonferroni_min(np.array([0.2, 0.5]))


def test_null_rate_holds_on_a_small_scenario():
    # additive pairs whose counts follow the singles' fitness, well effects, 3 wells
    groups, units, counts = simulate_pairs(80, map="gaussian", n=40, wells=3, well_sd=0.4,
                                           seed=11)
    pa = additivity_test(groups, units, n_bootstrap=200, seed=0, device="cpu").p_value
    pv = count_test(counts).p_value
    comb, _ = bonferroni_min(np.column_stack([pa, pv]))
    assert np.isfinite(comb).all()
    assert float(np.mean(comb < 0.05)) <= 0.1  # at most 8 of 80
    # and it still sees a synthetic-lethal double through its count
    g, u, c = simulate_pairs(20, kind="synthetic_lethal", n=40, wells=3, well_sd=0.4,
                             seed=12)
    sl, _ = bonferroni_min(np.column_stack([
        additivity_test(g, u, n_bootstrap=200, seed=0, device="cpu").p_value,
        count_test(c).p_value]))
    assert float(np.mean(sl < 0.05)) >= 0.5
