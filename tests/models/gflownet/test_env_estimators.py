"""Parent-set environment, policy masking and the uniform backward policy."""

import pytest
import torch

from workbench.models.gflownet.env import ParentSetEnv
from workbench.models.gflownet.estimators import ForwardPolicy, uniform_backward_log_prob

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_masks_allow_self_loops_and_forbid_repeats():
    env = ParentSetEnv(3)
    s = env.initial(1)
    s[0, 1, 0] = 1.0  # node 1 already has parent 0
    mask = env.forward_mask(s)
    assert mask[0, 0].tolist() == [True, True, True, True]  # self-loop 0->0 allowed, stop too
    assert mask[0, 1].tolist() == [False, True, True, True]
    env_cap = ParentSetEnv(3, max_parents=1)
    assert env_cap.forward_mask(s)[0, 1].tolist() == [False, False, False, True]


def test_step_adds_parent_in_child_row_and_stop_is_terminal():
    env = ParentSetEnv(3)
    s = env.initial(1)
    done = torch.zeros(1, 3, dtype=torch.bool)
    # node 0 adds parent 2; node 1 stops; node 2 adds itself
    s, done = env.step(s, torch.tensor([[2, 3, 2]]), done)
    assert s[0].tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert done[0].tolist() == [False, True, False]
    s2, done2 = env.step(s, torch.tensor([[-1, 0, 3]]), done | torch.tensor([[True, False, False]]))
    assert torch.equal(s2, s)  # node 0 done (-1), node 1 done already, node 2 stops
    assert done2.all()


def test_policy_normalises_over_allowed_actions_per_node():
    torch.manual_seed(0)
    pol = ForwardPolicy(4, hidden=8)
    env = ParentSetEnv(4)
    s = (torch.rand(5, 4, 4) < 0.4).float()
    lp = pol.log_probs(s, env.forward_mask(s))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(5, 4), atol=1e-5)
    assert (lp.exp()[..., :4][s > 0.5] < 1e-6).all()
    # the row-wise path gives the same numbers as the batched one
    node = torch.arange(4).repeat(5)
    rows = s.reshape(-1, 4)
    lp_rows = pol.log_probs_rows(node, rows, env.forward_mask(rows))
    assert torch.allclose(lp_rows, lp.reshape(-1, 5), atol=1e-5)


def test_uniform_backward_is_one_over_number_of_parents():
    s = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    assert torch.allclose(uniform_backward_log_prob(s), torch.log(torch.tensor([1 / 3])))
