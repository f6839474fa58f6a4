"""Guided phenotype search: unbiased importance weights, valid time-uniform intervals, the
stop rule, and guidance against its baselines on a synthetic pool with planted classes."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models.guided_search import (
    BettingBounds,
    PhenotypeClassifier,
    PhenotypeSearch,
    betting_interval,
    choose_bandwidth,
    clopper_pearson_interval,
    ess_fraction,
    guided_proposal,
    nearest_exemplar_distance,
    simulate_search,
)


def pool(n=4000, prev=0.01, seed=0, dim=16):
    """Background clusters plus one compact class at ``prev``; an exemplar from the class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (6, dim))
    X = centers[rng.integers(0, 6, n)] + rng.normal(0, 1, (n, dim))
    k = max(1, int(round(prev * n)))
    pos = rng.choice(n, k, replace=False)
    X[pos] = rng.normal(0, 3, dim) + rng.normal(0, 1, (k, dim))
    y = np.zeros(n, bool)
    y[pos] = True
    return X, y, int(pos[0])


def test_proposal_is_a_distribution_with_floor():
    d = np.linspace(0, 10, 500)
    q = guided_proposal(d, 1.0, 0.05)
    assert q.sum() == pytest.approx(1.0)
    assert q.min() >= 0.05 / 500 - 1e-15
    assert np.all(np.diff(q) <= 1e-18)  # decreasing in distance
    assert ess_fraction(np.full(10, 0.1)) == pytest.approx(1.0)


def test_bandwidth_is_smallest_that_keeps_the_ess():
    X, _, ex = pool(n=1500)
    d = nearest_exemplar_distance(X, [ex])
    assert d[ex] == pytest.approx(0.0, abs=1e-6)
    s = choose_bandwidth(d, 0.05, 0.3)
    assert np.isfinite(s)
    assert ess_fraction(guided_proposal(d, s, 0.05)) >= 0.3
    assert ess_fraction(guided_proposal(d, 0.8 * s, 0.05)) < 0.3 + 0.05
    # a larger ESS demand gives a wider kernel
    assert choose_bandwidth(d, 0.05, 0.6) > s


def test_importance_weighted_estimate_is_unbiased_and_raw_rate_is_not():
    X, y, ex = pool(n=2000, prev=0.02, seed=1)
    est, raw = [], []
    for seed in range(150):
        s = PhenotypeSearch(X, [ex], tau=0.5, batch=40, seed=seed)
        for _ in range(2):
            items = s.propose()
            s.record(items, y[items])
        est.append(s.estimate())
        raw.append(y[s.state.item].mean())
    est, raw = np.array(est), np.array(raw)
    se = est.std() / np.sqrt(len(est))
    assert abs(est.mean() - y.mean()) < 3 * se + 1e-4
    # the draws themselves are enriched: forgetting to divide by q would be far off
    assert raw.mean() > 3 * y.mean()


def test_interval_covers_the_truth_at_every_look():
    X, y, ex = pool(n=2000, prev=0.02, seed=2)
    delta, misses, lows = 0.1, 0, []
    for seed in range(60):
        s = PhenotypeSearch(X, [ex], tau=0.5, delta=delta, batch=25, seed=seed)
        missed = False
        for _ in range(8):
            items = s.propose()
            s.record(items, y[items])
            lo, hi = s.interval()
            missed |= not (lo <= y.mean() <= hi)
        misses += missed
        lows.append(lo)
    assert misses / 60 <= delta
    # and informative: 200 guided draws put the lower bound well above zero
    assert np.median(lows) > 0.3 * y.mean()


def test_betting_bounds_incremental_equals_batch_and_shrink():
    rng = np.random.default_rng(0)
    x = (rng.random(300) < 0.05).astype(float)
    r = np.ones(300)
    b = BettingBounds(0.05)
    for k in range(0, 300, 37):
        b.update(x[k:k + 37], r[k:k + 37])
    assert b.interval() == betting_interval(x, r, 0.05)
    lo, hi = b.interval()
    assert lo < 0.05 < hi
    # all-zero terms: the upper bound shrinks like log(1/delta)/n
    u1 = betting_interval(np.zeros(200), np.ones(200), 0.05)[1]
    u2 = betting_interval(np.zeros(2000), np.ones(2000), 0.05)[1]
    assert u2 < u1 / 5 and u2 < 0.005
    # a term's range limits the upper side: same zeros with range 20 give a wider bound
    assert betting_interval(np.zeros(2000), np.full(2000, 20.0), 0.05)[1] > 2 * u2


def test_clopper_pearson_matches_binomial_tails():
    from scipy.stats import binom

    lo, hi = clopper_pearson_interval(3, 50, 0.1)
    assert binom.sf(2, 50, lo) == pytest.approx(0.05, rel=1e-6)
    assert binom.cdf(3, 50, hi) == pytest.approx(0.05, rel=1e-6)
    assert clopper_pearson_interval(0, 10, 0.1)[0] == 0.0


def test_guided_confirms_a_common_class_in_fewer_labels_than_random():
    need_g, need_r = [], []
    for seed in range(3):
        X, y, ex = pool(n=4000, prev=0.02, seed=10 + seed)
        g = simulate_search(X, y, [ex], policy="guided", tau=0.01, batch=20,
                            max_labels=1500, seed=seed)
        r = simulate_search(X, y, [ex], policy="random", tau=0.01, batch=20,
                            max_labels=1500, seed=seed)
        assert g["decision"] == "confirmed_common"
        assert r["decision"] in ("confirmed_common", "open")
        need_g.append(g["labels_to_decision"])
        need_r.append(r["labels_to_decision"] or 1500)
    assert np.median(need_g) < np.median(need_r) / 3


@pytest.mark.parametrize("policy", ["guided", "random"])
def test_rare_class_is_certified_below_tau_and_never_confirmed(policy):
    X, y, ex = pool(n=4000, prev=0.001, seed=3)
    res = simulate_search(X, y, [ex], policy=policy, tau=0.02, batch=40, max_labels=1500,
                          seed=0)
    assert res["decision"] == "certified_rare"
    assert res["history"][-1]["upper"] < 0.02
    assert all(h["lower"] <= 0.02 for h in res["history"])


def test_least_confidence_trains_a_classifier_but_has_no_interval():
    X, y, ex = pool(n=1500, prev=0.05, seed=4)
    res = simulate_search(X, y, [ex], policy="least_confidence", tau=0.01, batch=30,
                          max_labels=150, seed=0)
    assert res["decision"] == "open"
    assert np.isnan(res["history"][-1]["lower"])
    from sklearn.metrics import average_precision_score

    assert average_precision_score(y, res["scores"]) > 0.5


def test_same_seed_same_draws_and_no_global_rng_use():
    X, y, ex = pool(n=1000)
    np.random.seed(1)
    a = PhenotypeSearch(X, [ex], seed=5).propose()
    np.random.seed(2)
    b = PhenotypeSearch(X, [ex], seed=5).propose()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, PhenotypeSearch(X, [ex], seed=6).propose())


def test_classifier_one_class_gives_constant_scores():
    clf = PhenotypeClassifier().fit(np.zeros((3, 2)), [True, True, True])
    assert not clf.trained_
    assert np.all(clf.scores(np.ones((4, 2))) == 1.0)
