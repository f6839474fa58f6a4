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
