"""Balance losses on transitions into multi-parent states, where ``log P_B`` is not zero.

For a per-node environment with the uniform backward policy, the exact forward policy of a
reward ``R`` follows from the state flows ``F(s) = R(s) + sum_j F(s + j) / |s + j|`` (every
state stops with flow ``R(s)``, and each child sends ``1/|s'|`` of its flow back to each of
its parents). The losses must vanish on that policy along every transition. Dropping
``log P_B`` or flipping its sign changes the residual by ``log |s'|``, which is zero only
for one-parent states, so these tests use trajectories into sets of two and three parents.
"""

import itertools
import math

import pytest
import torch

from workbench.models.gflownet.losses import detailed_balance_loss, trajectory_balance_loss
from workbench.models.gflownet.sampler import backward_trajectories

pytestmark = pytest.mark.usefixtures("torch_one_thread")

D = 3


def _subsets(d):
    return [frozenset(c) for k in range(d + 1) for c in itertools.combinations(range(d), k)]


def _exact_flows(log_r: dict) -> dict:
    """State flows of the exact GFlowNet with uniform backward policy (largest sets first)."""
    flow = {}
    for s in sorted(log_r, key=len, reverse=True):
        total = math.exp(log_r[s])
        for j in range(D):
            if j not in s:
                child = s | {j}
                total += flow[child] / len(child)
        flow[s] = total
    return flow


def _rewards(seed):
    gen = torch.Generator().manual_seed(seed)
    # node i's reward of parent set s: random, so no two sets tie
    return [{s: float(torch.randn(1, generator=gen)) * 2.0 for s in _subsets(D)}
            for _ in range(D)]


def _policy_tables(rewards, use_backward=True):
    """``log P_F`` per node and state: dict node -> {state: tensor (D + 1,)}."""
    tables = []
    for log_r in rewards:
        flow = _exact_flows(log_r) if use_backward else None
        if not use_backward:  # a plausible mistake: flows built as if P_B were 1
            flow = {}
            for s in sorted(log_r, key=len, reverse=True):
                flow[s] = math.exp(log_r[s]) + sum(flow[s | {j}] for j in range(D) if j not in s)
        tab = {}
        for s in log_r:
            lp = torch.full((D + 1,), -1e9, dtype=torch.float64)
            for j in range(D):
                if j not in s:
                    child = s | {j}
                    div = len(child) if use_backward else 1
                    lp[j] = math.log(flow[child] / div / flow[s])
            lp[D] = log_r[s] - math.log(flow[s])
            tab[s] = lp
        tables.append(tab)
    return tables


def _evaluate(traj, rewards, tables):
    t1, b, d, _ = traj.states.shape
    log_pf = torch.empty(t1, b, d, d + 1, dtype=torch.float64)
    log_r = torch.empty(t1, b, d, dtype=torch.float64)
    for t in range(t1):
        for g in range(b):
            for i in range(d):
                s = frozenset(int(j) for j in torch.nonzero(traj.states[t, g, i]).flatten())
                log_pf[t, g, i] = tables[i][s]
                log_r[t, g, i] = rewards[i][s]
    return log_pf, log_r


def _full_graph_trajectories():
    # every node ends with all three parents: its trajectory passes through 1-, 2- and
    # 3-parent states, so log P_B takes the values 0, -log 2 and -log 3
    final = torch.ones(4, D, D)
    final[1, 0, 2] = 0.0  # one row with two parents, to mix lengths
    return backward_trajectories(final, torch.Generator().manual_seed(0))


def test_multi_parent_transitions_are_present():
    traj = _full_graph_trajectories()
    sizes = traj.states[1:].sum(-1)
    edge = (traj.actions >= 0) & (traj.actions < D)
    assert set(sizes[edge].unique().tolist()) == {1.0, 2.0, 3.0}


@pytest.mark.parametrize("seed", [0, 1])
def test_detailed_balance_vanishes_on_exact_policy_with_multi_parent_states(seed):
    rewards = _rewards(seed)
    traj = _full_graph_trajectories()
    log_pf, log_r = _evaluate(traj, rewards, _policy_tables(rewards))
    assert float(detailed_balance_loss(traj, log_pf, log_r, huber_delta=None)) < 1e-12
    # a policy balanced as if P_B were 1 is wrong, and DB must see it
    wrong_pf, _ = _evaluate(traj, rewards, _policy_tables(rewards, use_backward=False))
    assert float(detailed_balance_loss(traj, wrong_pf, log_r, huber_delta=None)) > 1e-2


@pytest.mark.parametrize("seed", [0, 1])
def test_trajectory_balance_vanishes_on_exact_policy_with_multi_parent_states(seed):
    rewards = _rewards(seed)
    traj = _full_graph_trajectories()
    log_pf, log_r = _evaluate(traj, rewards, _policy_tables(rewards))
    log_z = torch.tensor([math.log(_exact_flows(r)[frozenset()]) for r in rewards],
                         dtype=torch.float64)
    final_r = log_r[-1]
    assert float(trajectory_balance_loss(traj, log_pf, final_r, log_z)) < 1e-12
    # the log-partition of the P_B-free flows does not balance these trajectories
    wrong_pf, _ = _evaluate(traj, rewards, _policy_tables(rewards, use_backward=False))
    assert float(trajectory_balance_loss(traj, wrong_pf, final_r, log_z)) > 1e-2
