"""``log Q`` of every bounded parent set at once, against the one-set dynamic programme."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _sharp_model(d, max_parents, seed=0):
    """An untrained DynGFN whose policy weights are scaled up so its actions differ a lot."""
    from workbench.models.gflownet import DynGFN

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, d))
    m = DynGFN(n_steps=0, n_envs=4, hidden=16, max_parents=max_parents, device="cpu",
               seed=seed).fit(x, rng.normal(size=x.shape))
    with torch.no_grad():
        for p in m.policy_.parameters():
            p.mul_(4.0)
    return m


@pytest.mark.parametrize("max_parents", [3, None])
def test_table_equals_the_one_set_programme_for_every_set(max_parents):
    from workbench.models.gflownet.enumerated_q import log_q_table
    from workbench.models.gflownet.exact_posterior import parent_sets

    d = 5
    m = _sharp_model(d, max_parents)
    sets = parent_sets(d, 3)
    table = log_q_table(m.policy_, m.env_, sets, chunk=7)   # chunks that split the sizes
    flat = [list(row) for idx in sets for row in idx]
    assert table.shape == (d, len(flat))
    one = np.array([[m.log_prob_parent_set(i, s) for s in flat] for i in range(d)])
    # a spread of log Q across sets, so a wrong term (a missing order, the stop probability
    # of the previous state, a subset looked up under the wrong key) cannot hide
    assert one.std() > 1.0
    np.testing.assert_allclose(table, one, atol=1e-5)
    mass = np.exp(table).sum(1)
    if max_parents == 3:                 # capped: every set of the sampler is in the table
        np.testing.assert_allclose(mass, 1.0, atol=1e-5)
    else:                                # uncapped: larger sets hold the rest
        assert (mass < 1.0).all() and mass.min() < 0.99, mass


def test_table_matches_the_sampler_frequencies():
    from workbench.models.gflownet.enumerated_q import log_q_table
    from workbench.models.gflownet.exact_posterior import parent_sets

    d = 4
    m = _sharp_model(d, 2, seed=3)
    sets = parent_sets(d, 2)
    q = np.exp(log_q_table(m.policy_, m.env_, sets))
    g = m.sample(4000, seed=5) > 0
    index = {tuple(r): k for k, r in enumerate(r for idx in sets for r in idx)}
    for i in range(d):
        freq = np.bincount([index[tuple(np.flatnonzero(r))] for r in g[:, i]],
                           minlength=q.shape[1]) / len(g)
        assert np.abs(freq - q[i]).max() < 0.03, i


def test_sets_must_be_complete_and_ordered():
    from workbench.models.gflownet.enumerated_q import log_q_table
    from workbench.models.gflownet.exact_posterior import parent_sets

    m = _sharp_model(4, 2)
    with pytest.raises(ValueError, match="every set of sizes"):
        log_q_table(m.policy_, m.env_, parent_sets(4, 2)[1:])
