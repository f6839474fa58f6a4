"""Roll-outs: tempered exploration for training, plain sampling of posterior graphs.

Training trajectories come from a behaviour policy, not from ``P_F`` itself: detailed and
trajectory balance are off-policy objectives, so any behaviour with full support is fine,
and the reward of DynGFN is so peaked (``1 / T^2`` is ``10^4`` for ``T = 0.01``) that
sampling from ``P_F`` alone collapses early onto whatever it found first. As in DynGFN the
behaviour is a tempered policy ``softmax(c * log P_F)`` whose inverse temperature ``c``
follows a cosine schedule between ``c_min`` and 1; we mix in an ``epsilon`` share of
uniform random allowed actions as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.models.gflownet.env import ParentSetEnv
from workbench.models.gflownet.estimators import ForwardPolicy


@dataclass
class Trajectories:
    """A batch of ``B`` graphs built edge by edge, ``d`` node environments each.

    Parameters
    ----------
    states : torch.Tensor
        ``(T + 1, B, d, d)``: the parent sets before each step, then the final ones.
    actions : torch.Tensor
        ``(T, B, d)`` long: the action taken at step ``t`` (a parent index, or ``d`` for
        stop); ``-1`` where that environment had already stopped.
    log_rewards : torch.Tensor, optional
        ``(T + 1, B, d)`` per-node log-rewards of every visited state, when the roll-out
        was given a reward tracker; ``None`` otherwise.

    Attributes
    ----------
    final : torch.Tensor
        ``(B, d, d)``: the terminal graphs (the last row of ``states``).
    active : torch.Tensor
        ``(T, B, d)`` bool: environment still running at step ``t``.
    """

    states: torch.Tensor
    actions: torch.Tensor
    log_rewards: torch.Tensor | None = None

    @property
    def final(self) -> torch.Tensor:
        return self.states[-1]

    @property
    def active(self) -> torch.Tensor:
        """``(T, B, d)`` bool: environment still running at step ``t``."""
        return self.actions >= 0


def temper_schedule(step: int, period: int, c_min: float = 0.05) -> float:
    """Inverse temperature at ``step``: a cosine wave between ``c_min`` and 1.

    Parameters
    ----------
    step : int
        Training step; the wave starts at 1 at step 0.
    period : int
        Steps per full wave; 0 or less keeps the inverse temperature at 1 (no tempering).
    c_min : float
        Lowest inverse temperature, reached half-way through each period.

    Returns
    -------
    float
        The inverse temperature ``c`` of the behaviour policy ``softmax(c * log P_F)``.
    """
    if period <= 0:
        return 1.0
    mid, amp = (1.0 + c_min) / 2.0, (1.0 - c_min) / 2.0
    return float(mid + amp * math.cos(2.0 * math.pi * step / period))


@torch.no_grad()
def rollout(
    policy: ForwardPolicy,
    env: ParentSetEnv,
    n_graphs: int,
    generator: torch.Generator,
    *,
    inverse_temperature: float = 1.0,
    epsilon: float = 0.0,
    device: torch.device | str = "cpu",
    reward_tracker=None,
) -> Trajectories:
    """Build ``n_graphs`` graphs, every node's parent set in parallel.

    With ``inverse_temperature = 1`` and ``epsilon = 0`` the graphs are exact samples from
    the learned ``Q``; otherwise they come from the tempered behaviour policy. A
    ``reward_tracker`` (see :class:`workbench.models.grn_params.IncrementalRidge`) scores
    each visited state on the way; its values land in ``log_rewards`` ``(T + 1, B, d)``.

    Parameters
    ----------
    policy : ForwardPolicy
        The forward policy ``P_F``.
    env : ParentSetEnv
        The environment (its ``max_parents`` cap applies).
    n_graphs : int
        Number of graphs ``B`` built together.
    generator : torch.Generator
        Source of the action draws.
    inverse_temperature : float
        ``c`` of the behaviour policy ``softmax(c * log P_F)``; 1 samples ``P_F`` itself.
    epsilon : float
        Share of uniform random allowed actions mixed in, in [0, 1].
    device : torch.device or str
        Device of the states.
    reward_tracker : object, optional
        Something with a ``log_reward`` tensor ``(B, d)`` and an ``add(actions, active)``
        method that updates it (an ``IncrementalRidge``).

    Returns
    -------
    Trajectories
        The ``T`` steps taken (``T`` the largest parent set plus the stop), with
        ``log_rewards`` when a tracker was given.
    """
    d = env.n_nodes
    s = env.initial(n_graphs, device)
    done = torch.zeros(n_graphs, d, dtype=torch.bool, device=device)
    states, actions = [s], []
    rewards = [reward_tracker.log_reward] if reward_tracker is not None else None
    while not bool(done.all()):
        mask = env.forward_mask(s)
        logp = policy.log_probs(s, mask)
        if inverse_temperature != 1.0:
            logp = torch.log_softmax(inverse_temperature * logp, dim=-1)
        probs = logp.exp()
        if epsilon > 0:
            uniform = mask.to(probs.dtype) / mask.sum(-1, keepdim=True)
            probs = (1.0 - epsilon) * probs + epsilon * uniform
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        flat = probs.reshape(-1, d + 1)
        a = torch.multinomial(flat, 1, generator=generator).reshape(n_graphs, d)
        a = torch.where(done, torch.full_like(a, -1), a)
        if reward_tracker is not None:
            reward_tracker.add(a, (a >= 0) & (a < d))
            rewards.append(reward_tracker.log_reward)
        s, done = env.step(s, a, done)
        states.append(s)
        actions.append(a)
    return Trajectories(torch.stack(states), torch.stack(actions),
                        torch.stack(rewards) if rewards is not None else None)


@torch.no_grad()
def sample_graphs(policy: ForwardPolicy, env: ParentSetEnv, n: int, generator: torch.Generator,
                  *, batch: int = 1024, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` graphs drawn from ``Q`` (no tempering).

    Parameters
    ----------
    policy : ForwardPolicy
        The trained forward policy.
    env : ParentSetEnv
        The environment.
    n : int
        Number of graphs.
    generator : torch.Generator
        Source of the draws.
    batch : int
        Graphs rolled out at a time (memory only).
    device : torch.device or str
        Device of the roll-outs.

    Returns
    -------
    torch.Tensor
        ``(n, d, d)`` uint8 adjacency matrices on the CPU.
    """
    out = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        out.append(rollout(policy, env, m, generator, device=device).final.to("cpu", torch.uint8))
    return torch.cat(out) if out else torch.zeros(0, env.n_nodes, env.n_nodes, dtype=torch.uint8)


@torch.no_grad()
def backward_trajectories(final: torch.Tensor, generator: torch.Generator) -> Trajectories:
    """Forward trajectories that build the given graphs, in uniformly random edge orders.

    This is a sample of the uniform backward policy run from each terminal parent set back
    to the empty set, written forward (add the parents one by one, then stop). Training on
    such trajectories teaches the flows along every route into good graphs, including
    routes the forward policy has not yet found (Zhang et al. 2022; Kim et al. 2023 use
    backward roll-outs from good objects in the same way).

    Parameters
    ----------
    final : torch.Tensor
        ``(B, d, d)`` 0/1 terminal graphs.
    generator : torch.Generator
        Source of the random orders (on the device of ``final``).

    Returns
    -------
    Trajectories
        ``states`` ``(T + 1, B, d, d)`` and ``actions`` ``(T, B, d)`` with ``T`` the
        largest parent set plus one (the stop); no rewards.
    """
    b, d, _ = final.shape
    present = final > 0.5
    keys = torch.rand(final.shape, generator=generator, device=final.device)
    keys = torch.where(present, keys, torch.full_like(keys, 2.0))
    order = keys.argsort(-1)                      # parents first, in random order
    rank = order.argsort(-1)                      # position of each column in that order
    k = present.sum(-1)                           # (B, d)
    n_steps = int(k.max()) + 1
    t = torch.arange(n_steps + 1, device=final.device).view(-1, 1, 1, 1)
    states = (present.unsqueeze(0) & (rank.unsqueeze(0) < t)).to(final.dtype)
    steps = torch.arange(n_steps, device=final.device).view(-1, 1, 1)
    pick = order.permute(2, 0, 1)[: n_steps].clone() if n_steps <= d else None
    if pick is None:  # only when every node has all d parents
        pick = torch.cat([order.permute(2, 0, 1), order.permute(2, 0, 1)[:1]])
    actions = torch.where(steps < k, pick, torch.where(steps == k, torch.full_like(pick, d),
                                                        torch.full_like(pick, -1)))
    return Trajectories(states, actions)


@torch.no_grad()
def perturb_graphs(graphs: torch.Tensor, generator: torch.Generator,
                   rate: float = 0.5) -> torch.Tensor:
    """Local moves: in each row, with probability ``rate``, swap one parent for a non-parent.

    Rows with no parent gain one; rows with every parent lose one.

    Parameters
    ----------
    graphs : torch.Tensor
        ``(B, d, d)`` 0/1 graphs (not changed).
    generator : torch.Generator
        Source of the random moves.
    rate : float
        Probability that a row is moved.

    Returns
    -------
    torch.Tensor
        ``(B, d, d)`` perturbed copies.
    """
    g = graphs.clone()
    bsz, d, _ = g.shape
    move = torch.rand(bsz, d, generator=generator, device=g.device) < rate
    noise = torch.rand(g.shape, generator=generator, device=g.device)
    drop = torch.where(g > 0.5, noise, torch.full_like(noise, -1.0)).argmax(-1)
    add = torch.where(g < 0.5, noise, torch.full_like(noise, -1.0)).argmax(-1)
    has_parent = g.sum(-1) > 0.5
    has_free = g.sum(-1) < d - 0.5
    rows = torch.arange(bsz, device=g.device).view(-1, 1).expand(bsz, d)
    nodes = torch.arange(d, device=g.device).view(1, -1).expand(bsz, d)
    g[rows[move & has_parent], nodes[move & has_parent], drop[move & has_parent]] = 0.0
    g[rows[move & has_free], nodes[move & has_free], add[move & has_free]] = 1.0
    return g
