"""Low-rank pair model and acquisitions on a planted low-rank matrix."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models.pair_selection import ACQUISITIONS, LowRankPairModel, select_batch


def test_model_recovers_planted_low_rank_matrix():
    rng = np.random.default_rng(0)
    n, k = 25, 2
    u = rng.normal(size=(n, k))
    side = u + 0.1 * rng.normal(size=(n, k))  # informative side features
    R = u @ u.T
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.4
    m = LowRankPairModel(rank=3, n_samples=8, steps=200, seed=0)
    m.fit(iu[0][obs], iu[1][obs], R[iu][obs], side=side, n_items=n)
    mean, sd = m.predict(iu[0][~obs], iu[1][~obs])
    assert np.corrcoef(mean, R[iu][~obs])[0, 1] > 0.7
    assert (sd > 0).all() and mean.shape == sd.shape


@pytest.mark.parametrize("acq", ACQUISITIONS)
def test_batches_have_no_repeats(acq):
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(16, 50)) + np.linspace(0, 3, 50)
    pick = select_batch(samples, acq, 10, seed=0)
    assert len(pick) == 10 and len(set(pick.tolist())) == 10
    if acq in ("greedy", "ucb", "ids"):
        assert np.mean(pick) > 30  # prefers the high-valued candidates


def test_unknown_acquisition():
    with pytest.raises(ValueError, match="unknown acquisition"):
        select_batch(np.zeros((2, 3)), "bogus", 1)


def test_unmeasured_gene_prior_is_scaled_to_the_side_features():
    # 64 uninformative side features (an embedding-wide side vector): a gene with no
    # measured pair must get a posterior on the scale of the observed values, not
    # sqrt(64) target sds of prior noise
    rng = np.random.default_rng(2)
    n, p = 30, 64
    side = rng.normal(size=(n, p)) * 5.0
    iu = np.triu_indices(n, 1)
    y_all = rng.gamma(2.0, 1.0, len(iu[0]))
    has_last = (iu[0] == n - 1) | (iu[1] == n - 1)
    obs = (rng.random(len(y_all)) < 0.5) & ~has_last
    m = LowRankPairModel(rank=2, n_samples=16, steps=150, seed=0)
    m.fit(iu[0][obs], iu[1][obs], y_all[obs], side=side, n_items=n)
    mean, sd = m.predict(iu[0][has_last], iu[1][has_last])
    y = y_all[obs]
    assert np.abs(mean - y.mean()).max() < 1.5 * y.std()
    assert np.median(sd) < 2.0 * y.std()


def test_fit_leaves_the_thread_count_as_it_was():
    import torch

    before = torch.get_num_threads()
    m = LowRankPairModel(rank=2, n_samples=2, steps=5, seed=0, device="cpu")
    m.fit([0, 1], [1, 2], [1.0, 2.0], n_items=3)
    assert torch.get_num_threads() == before


def test_soft_impute_beats_the_mean_on_a_low_rank_matrix():
    from workbench.models.pair_selection import soft_impute

    rng = np.random.default_rng(3)
    n = 40
    u = rng.normal(size=(n, 2))
    R = u @ u.T + 1.0
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.3
    Z = soft_impute(n, iu[0][obs], iu[1][obs], R[iu][obs], rank=4, shrink=0.05)
    assert np.allclose(Z, Z.T)
    held = R[iu][~obs]
    err = np.mean((Z[iu][~obs] - held) ** 2)
    base = np.mean((R[iu][obs].mean() - held) ** 2)
    assert err < 0.3 * base


def test_factored_soft_impute_agrees_with_the_dense_one():
    from workbench.models.pair_selection import soft_impute, soft_impute_entries

    rng = np.random.default_rng(5)
    n = 40
    u = rng.normal(size=(n, 2))
    R = u @ u.T
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.3
    args = (n, iu[0][obs], iu[1][obs], R[iu][obs])
    Z = soft_impute(*args, rank=4, shrink=0.05)
    F = soft_impute(*args, rank=4, shrink=0.05, factors=True)
    got = soft_impute_entries(F, iu[0][~obs], iu[1][~obs])
    assert np.abs(got - Z[iu][~obs]).max() < 0.05 * R.std()  # same fixed point
    assert np.mean((got - R[iu][~obs]) ** 2) < 0.3 * R[iu][~obs].var()
    # a warm start from the factors continues where the first run stopped
    F2 = soft_impute(*args, rank=4, shrink=0.05, iters=5, init=F, factors=True)
    F45 = soft_impute(*args, rank=4, shrink=0.05, iters=45, factors=True)
    a, b = (soft_impute_entries(f, iu[0][~obs], iu[1][~obs]) for f in (F2, F45))
    assert np.abs(a - b).max() < 0.05 * R.std()


def test_factored_soft_impute_never_builds_the_gene_by_gene_matrix():
    # 20,000 genes: a dense float64 matrix would need 3.2 GB; the factors need n x rank
    from workbench.models.pair_selection import soft_impute, soft_impute_entries

    n = 20_000
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, 3000)
    j = (i + 1 + rng.integers(0, n - 1, 3000)) % n
    y = rng.normal(size=3000)
    U, s, Vh, mean = soft_impute(n, i, j, y, rank=4, iters=3, seed=0, factors=True)
    assert U.shape[0] == n and Vh.shape[1] == n and U.shape[1] <= 4
    assert np.isfinite(soft_impute_entries((U, s, Vh, mean), i, j)).all()
