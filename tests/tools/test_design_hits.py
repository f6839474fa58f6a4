"""Batch screen designer: hit recall against random, and the permuted-outcome control."""

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ValidationError
from workbench.tools.design.hits import feedback_flags, hit_campaign, score_candidates
from workbench.tools.design.pools import demo_hit_table


@pytest.fixture(scope="module")
def table():
    return demo_hit_table(0, n_candidates=800, hit_fraction=0.05)


def final(X, s, h, policy, permute, seed, prior=None):
    r = hit_campaign(X, s, h, policy=policy, batch_size=24, rounds=5, permute=permute,
                     prior=prior, seed=seed)
    return r.hit_recall.iloc[-1]


def test_linear_bandits_beat_random_and_ucb_collapses_under_permutation(table):
    X, s, h, _ = table
    seeds = (0, 1, 2)
    rand = np.mean([final(X, s, h, "random", False, k) for k in seeds])
    for pol in ("thompson", "ucb"):
        real = np.mean([final(X, s, h, pol, False, k) for k in seeds])
        perm = np.mean([final(X, s, h, pol, True, k) for k in seeds])
        assert real > rand + 0.1, pol
        if pol == "ucb":  # Thompson's draws are noisier on this small table
            assert real >= 2.5 * rand
            assert perm < real - 0.15  # it uses its feedback


def test_recall_is_cumulative_and_counts_hits(table):
    X, s, h, _ = table
    r = hit_campaign(X, s, h, policy="ucb", batch_size=24, rounds=5, seed=0)
    assert (np.diff(r.hits_found) >= 0).all() and (r.measured == 24 * np.arange(1, 6)).all()
    assert r.hit_recall.iloc[-1] == r.hits_found.iloc[-1] / h.sum()


def test_prior_list_seeds_the_first_batch(table):
    X, s, h, _ = table
    prior = np.where(h, 1.0, 0.0)  # a perfect list
    r = hit_campaign(X, s, h, policy="prior_nn", batch_size=24, rounds=1, prior=prior, seed=0)
    assert r.hits_found.iloc[0] == min(24, h.sum())
    with pytest.raises(ValidationError, match="ranked list"):
        score_candidates("prior_nn", X, np.array([0, 1]), np.array([1.0, 2.0]),
                         np.arange(2, 10), np.random.default_rng(0))


def test_gp_ucb_scores_follow_the_measured_values(table):
    X, s, h, _ = table
    rng = np.random.default_rng(0)
    meas = rng.choice(len(s), 150, replace=False)
    open_ = np.setdiff1d(np.arange(len(s)), meas)
    from workbench.tools.design.screen import prepare_features

    sc, _ = score_candidates("gp_ucb", prepare_features(X), meas, s[meas], open_, rng)
    assert np.corrcoef(sc, s[open_])[0, 1] > 0.3


def test_flags_mark_policies_that_ignore_feedback():
    rows = pd.DataFrame({"policy": ["a", "a", "b", "b"], "permuted": [False, True, False, True],
                         "hit_recall": [0.5, 0.1, 0.3, 0.29]})
    f = feedback_flags(rows)
    assert not f.loc["a", "ignores_feedback"] and f.loc["b", "ignores_feedback"]


def test_bad_tables_are_refused(table):
    X, s, h, _ = table
    with pytest.raises(ValidationError, match="more than the"):
        hit_campaign(X, s, h, policy="random", batch_size=500, rounds=5)
    with pytest.raises(ValidationError, match="no features"):
        hit_campaign(np.zeros((len(s), 0)), s, h, policy="random", batch_size=5)
    with pytest.raises(ValidationError, match="no candidate as a hit"):
        hit_campaign(X, s, np.zeros(len(s), bool), policy="random", batch_size=5)
    with pytest.raises(ValidationError, match="unknown hit policy"):
        hit_campaign(X, s, h, policy="llm", batch_size=5)


def test_permuted_control_changes_only_the_feedback(table):
    X, s, h, _ = table
    a = hit_campaign(X, s, h, policy="random", batch_size=24, seed=4)
    b = hit_campaign(X, s, h, policy="random", batch_size=24, seed=4, permute=True)
    assert (a.hits_found == b.hits_found).all()  # random ignores outcomes: identical
    c = hit_campaign(X, s, h, policy="ucb", batch_size=24, seed=4)
    d = hit_campaign(X, s, h, policy="ucb", batch_size=24, seed=4, permute=True)
    assert c.hits_found.iloc[0] == d.hits_found.iloc[0]  # same first batch
    assert c.hits_found.iloc[-1] != d.hits_found.iloc[-1]
