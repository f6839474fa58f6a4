"""The linear-to-hyper warm start: the hypernetwork run starts from the linear run's policy."""

import numpy as np
import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.models.gflownet import DynGFN
from workbench.tools.grn import scale_for_grn
from workbench.tools.grn_synthetic import simulate_unidentifiable_system

pytestmark = pytest.mark.usefixtures("torch_one_thread")

KW = dict(temperature=0.05, sparsity=20.0, n_envs=8, hidden=16, max_parents=3,
          hyper_hidden=(16,), hyper_width=4, batch_size=64, device="cpu", seed=3)


@pytest.fixture(scope="module")
def data():
    sim = simulate_unidentifiable_system("sigmoid", p=4, n_copies=1, sparsity=0.6,
                                         n_traj=60, seed=2)
    x, v, _ = scale_for_grn(sim["x"], sim["v"])
    return x, v


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.policy_.state_dict().values(),
                                                 b.policy_.state_dict().values()))


def test_warm_start_hands_the_linear_policy_to_the_hypernetwork_run(data):
    x, v = data
    linear = DynGFN(reward="linear", n_steps=6, **KW).fit(x, v)
    warm = DynGFN(reward="hyper", warm_start=6, n_steps=6, **KW).fit(x, v)
    assert _same(linear, warm)                       # the first 6 steps are l-DynGFN's
    assert warm.history_["loss"] == linear.history_["loss"]
    assert np.isnan(warm.history_["hyper_mse"]).all()  # hypernetwork untouched so far
    cold = DynGFN(reward="hyper", n_steps=6, **KW).fit(x, v)
    assert not _same(linear, cold)                   # without it the runs differ at once
    # after the switch the hypernetwork scores and trains, and the policy moves on
    on = DynGFN(reward="hyper", warm_start=6, warm_start_fit=5, n_steps=8, **KW).fit(x, v)
    assert not _same(linear, on)
    assert np.isfinite(on.history_["hyper_mse"][6:]).all()
    fresh = DynGFN(reward="hyper", warm_start=6, n_steps=7, **KW).fit(x, v)
    assert on.history_["hyper_mse"][6] < fresh.history_["hyper_mse"][6]  # fitted at switch


def test_warm_start_needs_the_hypernetwork_reward(data):
    x, v = data
    with pytest.raises(WorkbenchError, match="needs reward='hyper'"):
        DynGFN(reward="linear", warm_start=3, n_steps=3, **KW).fit(x, v)
    with pytest.raises(WorkbenchError, match=">= 0"):
        DynGFN(reward="hyper", warm_start=-1, n_steps=3, **KW).fit(x, v)
