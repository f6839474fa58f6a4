"""The replicate-level additivity test: level with well effects, power, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.additivity import additivity_test
from workbench.models.interaction_scenarios import simulate_pairs


def _cells_as_units(units):
    return [{c: np.array([f"{c}{i}" for i in range(len(v))]) for c, v in u.items()}
            for u in units]


def _rate(p):
    return float(np.mean(np.asarray(p) < 0.05))


@pytest.fixture(scope="module")
def null_with_wells():
    # additive pairs, a well sd of half the cell sd, 3 wells per condition (controls 6)
    return simulate_pairs(80, map="gaussian", n=45, wells=3, well_sd=0.5, seed=3)


def test_level_holds_with_wells_and_fails_when_wells_are_ignored(null_with_wells):
    groups, units, _ = null_with_wells
    r = additivity_test(groups, units, n_bootstrap=200, seed=0, device="cpu")
    assert np.isfinite(r.p_value).all() and set(r.status) == {"tested"}
    # at most 10 of 80 (a level-0.05 test exceeds that with probability about 0.01; the
    # benchmark has the precise rates)
    assert _rate(r.p_value) <= 0.125
    assert 0.3 < float(np.mean(r.p_value)) < 0.7  # roughly uniform, not all near 1
    # the same statistic with every cell its own replicate: the well effects are noise it
    # does not see, and it rejects far more than its level
    cell = additivity_test(groups, _cells_as_units(units), n_bootstrap=200, seed=0,
                           device="cpu")
    assert _rate(cell.p_value) >= 0.3


def test_level_under_a_monotone_map_and_power_on_synergy():
    groups, units, _ = simulate_pairs(60, map="monotone", n=40, wells=2, well_sd=1 / 3, seed=5)
    r = additivity_test(groups, units, n_bootstrap=200, seed=1, device="cpu")
    assert _rate(r.p_value) <= 7 / 60
    g, u, _ = simulate_pairs(20, kind="synergy", map="gaussian", n=100, wells=4,
                             well_sd=0.2, seed=6)
    s = additivity_test(g, u, n_bootstrap=200, seed=1, device="cpu")
    assert _rate(s.p_value) >= 0.5  # 6 coordinates, 4 wells: about 0.6 expected
    # the effect (debiased norm of the 0.8 + 0.8 extra shift, about 1.1 in sd units) is
    # in its interval and the null pairs' effects are smaller
    assert (s.ci_low <= s.effect_size).all() and (s.effect_size <= s.ci_high).all()
    assert 0.6 < float(np.median(s.effect_size)) < 1.6
    assert float(np.median(r.effect_size)) < 0.3


def test_one_unit_screen_empty_condition_and_bad_input():
    groups, units, _ = simulate_pairs(3, n=20, wells=2, seed=7)
    one = [{c: np.zeros(len(v), int).astype(str) for c, v in u.items()} for u in units]
    r = additivity_test(groups, one, n_bootstrap=50, device="cpu")
    assert np.isnan(r.p_value).all()
    assert all("one replicate unit" in s for s in r.status)
    # a condition with one unit in a screen with replicates elsewhere is still tested
    mixed = [dict(u) for u in units]
    mixed[0]["ab"] = np.zeros(len(units[0]["ab"]), int).astype(str)
    r = additivity_test(groups, mixed, n_bootstrap=50, device="cpu")
    assert np.isfinite(r.p_value).all() and r.units[0]["ab"] == 1
    empty = [dict(g) for g in groups]
    empty[1] = {**groups[1], "ab": groups[1]["ab"][:0]}
    uempty = [dict(u) for u in units]
    uempty[1] = {**units[1], "ab": units[1]["ab"][:0]}
    r = additivity_test(empty, uempty, n_bootstrap=50, device="cpu")
    assert np.isnan(r.p_value[1]) and "no cells of ab" in r.status[1]
    assert np.isfinite(r.p_value[[0, 2]]).all()
    bad = [dict(g) for g in groups]
    bad[2] = {**groups[2], "ctrl": groups[2]["ctrl"].copy()}
    bad[2]["ctrl"][4, 1] = np.inf
    with pytest.raises(ValidationError, match="pair 2: condition 'ctrl'.*NaN/inf"):
        additivity_test(bad, units, n_bootstrap=50, device="cpu")
    with pytest.raises(ValidationError, match="n_bootstrap"):
        additivity_test(groups, units, n_bootstrap=0, device="cpu")


def test_seeded_and_order_free():
    groups, units, _ = simulate_pairs(6, kind="buffering", n=20, seed=8)
    a = additivity_test(groups, units, n_bootstrap=100, seed=4, device="cpu")
    b = additivity_test(groups, units, n_bootstrap=100, seed=4, device="cpu")
    np.testing.assert_array_equal(a.p_value, b.p_value)
    # the statistic of a pair does not depend on the other pairs' order
    rev = additivity_test(groups[::-1], units[::-1], n_bootstrap=100, seed=4, device="cpu")
    np.testing.assert_allclose(rev.statistic[::-1], a.statistic, rtol=1e-8)


def test_bootstrap_wishart_draws_have_the_wishart_moments():
    """The bootstrap redraws each covariance estimate as W / df with W ~ Wishart(df, S):
    mean S and Var(W_ij / df) = (S_ij^2 + S_ii S_jj) / df, per problem of the batch and
    for each one's own df. A transposed Cholesky factor (L^T L instead of L L^T), a df
    mask that lets the padded rows through or the wrong divisor would move them."""
    import torch

    from workbench.models.additivity import _wishart

    rng = np.random.default_rng(0)
    d = 3
    a = rng.normal(size=(2, d, d))
    s = a @ a.transpose(0, 2, 1) + np.eye(d)            # two different covariances
    chol = torch.as_tensor(np.linalg.cholesky(s))
    df = torch.as_tensor([5, 40])                          # and two different df
    draws = _wishart(chol, df, 20_000, np.random.default_rng(1), cap=128).numpy()
    for k, nu in enumerate((5, 40)):
        w = draws[k]
        np.testing.assert_allclose(w.mean(0), s[k], rtol=0.05, atol=0.05 * s[k].max())
        var = (s[k] ** 2 + np.outer(np.diag(s[k]), np.diag(s[k]))) / nu
        np.testing.assert_allclose(w.var(0), var, rtol=0.12)
    # above the cap the draws are those of df = cap: treated as less well known
    capped = _wishart(chol[:1], torch.as_tensor([500]), 20_000, np.random.default_rng(2),
                      cap=50).numpy()[0]
    var = (s[0] ** 2 + np.outer(np.diag(s[0]), np.diag(s[0]))) / 50
    np.testing.assert_allclose(capped.var(0), var, rtol=0.12)
