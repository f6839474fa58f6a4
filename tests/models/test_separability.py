"""Separability score on planted Gaussian pairs: separable, interacting, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models.separability import separability_score

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _pairs(n_pairs=40, n=30, d=6, interact=False, seed=0):
    """Independent unit Gaussians; A shifts coordinate 0, B scales coordinate 1; the double
    does both (separable) or also shifts coordinate 2 (not separable)."""
    rng = np.random.default_rng(seed)
    ctrl = rng.normal(size=(n_pairs, 2 * n, d))
    a, b, ab = (rng.normal(size=(n_pairs, n, d)) for _ in range(3))
    a[..., 0] += 1.5
    b[..., 1] *= 2.0
    ab[..., 0] += 1.5
    ab[..., 1] *= 2.0
    if interact:
        ab[..., 2] += 3.0
    return ctrl, a, b, ab


def test_separable_pairs_are_null_and_interacting_pairs_are_found():
    null = separability_score(*_pairs(), n_null=200, n_bootstrap=20, seed=0)
    assert (null.p_value < 0.05).mean() <= 0.15
    assert abs(np.mean(null.statistic)) < 2 * np.std(null.statistic) / np.sqrt(40) + 0.2
    # every plug-in KL carries about the same positive bias (the control-vs-control term
    # shows it); S_raw = KL_ab - KL_a - KL_b lacks one plus term, S balances it
    t = null.terms
    bias = np.median(t["kl_ctrl_ctrl"])
    assert bias > 0.1
    assert np.median(t["S_raw"]) == pytest.approx(-bias, abs=0.3)
    assert np.median(null.statistic) == pytest.approx(0, abs=0.3)
    alt = separability_score(*_pairs(interact=True, seed=1), n_null=200, n_bootstrap=20, seed=0)
    # the constrained null lets one single "own" the new coordinate, which absorbs part of
    # an interaction there: power 0.875 here for a 4.5-nat interaction at n = 30
    assert (alt.p_value < 0.05).mean() >= 0.75
    assert np.median(alt.statistic) > 3.0  # true S = 3^2 / 2 = 4.5
    assert (alt.ci_low < alt.statistic).all() and (alt.statistic < alt.ci_high).all()
    assert alt.params["estimator"] == "gaussian" and alt.params["n_null"] == 200
    assert alt.params["n_per_condition"] == 30 and alt.params["seed"] == 0


def test_classifier_is_a_score_without_p_value():
    r = separability_score(*_pairs(n_pairs=4, interact=True), estimator="classifier",
                           n_bootstrap=5, seed=0)
    assert np.isnan(r.p_value).all() and np.isfinite(r.statistic).all()
    assert "graded score" in r.params["calibration"]


def test_bad_inputs():
    ctrl, a, b, ab = _pairs(n_pairs=2)
    with pytest.raises(ValueError, match="ctrl \\(P, 2n, d\\)"):
        separability_score(ctrl[:, :10], a, b, ab)
    with pytest.raises(ValueError, match="unknown estimator"):
        separability_score(ctrl, a, b, ab, estimator="knn")


def test_kl_additivity_score_is_a_labelled_score_that_sees_synergy():
    from workbench.models.interaction_scenarios import simulate_pairs
    from workbench.models.kl_additivity import kl_additivity_score

    g0, u0, _ = simulate_pairs(10, n=40, wells=3, seed=7)
    g1, u1, _ = simulate_pairs(10, kind="synergy", n=40, wells=3, seed=8)
    null = kl_additivity_score(g0, u0, n_bootstrap=5, seed=0)
    alt = kl_additivity_score(g1, u1, n_bootstrap=5, seed=0)
    assert null.test == "separability_score" and np.isnan(null.p_value).all()
    assert "graded score" in null.params["calibration"]
    assert set(null.terms["status"]) == {"score (no p-value)"}
    assert (null.ci_low <= null.ci_high).all()
    # synergy adds KL to the double beyond the singles: S well above the null's
    assert np.median(alt.statistic) > np.median(null.statistic) + 1.0
    assert abs(np.median(null.statistic)) < 0.7


def test_batched_newton_logistic_matches_scikit_learn():
    """The classifier behind the density ratios is a ridge logistic regression: each problem
    of the batch must give scikit-learn's weights (same penalty, intercept free), whether
    Newton stops early or not. A transposed Hessian, a dropped penalty or problems mixed
    within the batch would move them."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from workbench.models.separability import _fit_logistic

    rng = np.random.default_rng(0)
    m, n, f, l2 = 3, 120, 5, 2.0
    x = rng.normal(size=(m, n, f - 1))
    y = (rng.random((m, n)) < 1 / (1 + np.exp(-(x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3)))
         ).astype(float)
    y[1] = 1 - y[1]   # a different problem in the same batch
    feat = torch.as_tensor(np.concatenate([np.ones((m, n, 1)), x], -1))
    for iters in (15, 40):
        w = _fit_logistic(feat, torch.as_tensor(y), l2, iters=iters).numpy()
        for i in range(m):
            ref = LogisticRegression(C=1 / l2, tol=1e-10, max_iter=10_000).fit(x[i], y[i])
            np.testing.assert_allclose(w[i, 1:], ref.coef_[0], atol=2e-4)
            np.testing.assert_allclose(w[i, 0], ref.intercept_[0], atol=2e-3)
