"""GFlowNet objectives for parent-set environments in which every state can stop.

**Detailed balance with stop probabilities** (the "modified DB" of DAG-GFlowNet, Deleu et
al. 2022, used by DynGFN). Because every state ``s`` is also a terminal graph, the flow
through ``s`` that stops there must equal its reward, ``F(s) P_F(stop | s) = R(s)``; putting
that into the detailed-balance condition ``F(s) P_F(s'|s) = F(s') P_B(s|s')`` removes the
state flow and leaves, for every edge-adding transition ``s -> s'``::

    delta = [log R(s') + log P_B(s | s') + log P_F(stop | s)]
          - [log R(s)  + log P_F(s' | s) + log P_F(stop | s')]

Both stop terms are kept. DynGFN's reference code treats ``log P_F(stop | s')`` as a fixed
target (no gradient); here that is the ``detach_next_stop`` option, off by default, so by
default the gradient flows through both sides. The loss is the plain mean of a squared (or
Huber) residual over all transitions in the batch: no reward-softmax weighting.

**Trajectory balance** (Malkin et al. 2022): for a whole trajectory ending in ``x``,
``log Z_i + sum_t log P_F = log R(x) + sum_t log P_B``, with one learnable ``log Z`` per node.

The f-trajectory-balance family (mode-seeking to mass-covering, no ``log Z``) lives in
:mod:`workbench.models.gflownet.f_losses` and shares :func:`trajectory_log_ratio`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from workbench.models.gflownet.estimators import uniform_backward_log_prob
from workbench.models.gflownet.sampler import Trajectories


def _penalty(residual: torch.Tensor, huber_delta: float | None) -> torch.Tensor:
    if huber_delta is None:
        return residual.pow(2)
    return F.huber_loss(residual, torch.zeros_like(residual), reduction="none", delta=huber_delta)


def detailed_balance_loss(
    traj: Trajectories,
    log_pf: torch.Tensor,
    log_reward: torch.Tensor,
    *,
    huber_delta: float | None = None,
    detach_next_stop: bool = False,
) -> torch.Tensor:
    """Mean DB-with-stop penalty over every edge-adding transition of ``traj``.

    Parameters
    ----------
    traj : Trajectories
        Roll-outs with states ``(T + 1, B, d, d)`` and actions ``(T, B, d)``.
    log_pf : torch.Tensor
        Forward log-probabilities at every state, ``(T + 1, B, d, d + 1)``, with gradient.
    log_reward : torch.Tensor
        ``log R`` of every state's parent set, ``(T + 1, B, d)``.
    huber_delta : float, optional
        Threshold of a Huber penalty on the residual; ``None`` (default) squares it.
    detach_next_stop : bool
        Treat ``log P_F(stop | s')`` as a fixed target (no gradient through it), as
        DynGFN's reference code does; off by default.

    Returns
    -------
    torch.Tensor
        Scalar mean penalty over the edge-adding transitions (zero, still attached to
        ``log_pf``, when the batch has none).
    """
    d = traj.states.shape[-1]
    a = traj.actions
    is_edge = (a >= 0) & (a < d)
    if not bool(is_edge.any()):
        return log_pf.sum() * 0.0
    t_idx = a.clamp(min=0)
    lp_action = log_pf[:-1].gather(-1, t_idx.unsqueeze(-1)).squeeze(-1)
    lp_stop_here = log_pf[:-1, ..., d]
    lp_stop_next = log_pf[1:, ..., d]
    if detach_next_stop:
        lp_stop_next = lp_stop_next.detach()
    lp_back = uniform_backward_log_prob(traj.states[1:])
    residual = (log_reward[1:] + lp_back + lp_stop_here) - (log_reward[:-1] + lp_action + lp_stop_next)
    return _penalty(residual[is_edge], huber_delta).mean()


def trajectory_balance_loss(
    traj: Trajectories,
    log_pf: torch.Tensor,
    log_reward_final: torch.Tensor,
    log_z: torch.Tensor,
    *,
    huber_delta: float | None = None,
) -> torch.Tensor:
    """Mean TB penalty over the ``B x d`` node trajectories.

    Parameters
    ----------
    traj : Trajectories
        Roll-outs with states ``(T + 1, B, d, d)`` and actions ``(T, B, d)``.
    log_pf : torch.Tensor
        Forward log-probabilities at every state, ``(T + 1, B, d, d + 1)``, with gradient.
    log_reward_final : torch.Tensor
        ``log R`` of each terminal parent set, ``(B, d)``.
    log_z : torch.Tensor
        One learnable log-partition function per node, ``(d,)``.
    huber_delta : float, optional
        Threshold of a Huber penalty on the residual; ``None`` (default) squares it.

    Returns
    -------
    torch.Tensor
        Scalar mean penalty of ``log Z + sum log P_F - log R - sum log P_B``.
    """
    residual = log_z + trajectory_log_ratio(traj, log_pf, log_reward_final)
    return _penalty(residual, huber_delta).mean()


def trajectory_log_ratio(traj: Trajectories, log_pf: torch.Tensor,
                         log_reward_final: torch.Tensor) -> torch.Tensor:
    """``sum_t log P_F - log R(x) - sum_t log P_B`` of every node trajectory, ``(B, d)``.

    This is the trajectory-balance residual without ``log Z``: the log-ratio of the
    sampler's trajectory probability to the unnormalised target ``R(x) P_B(tau | x)``.
    ``log P_B`` enters once per edge-adding step (the stop step has no backward term).

    Parameters
    ----------
    traj : Trajectories
        Roll-outs with states ``(T + 1, B, d, d)`` and actions ``(T, B, d)``; a negative
        action marks a step after the trajectory has stopped.
    log_pf : torch.Tensor
        Forward log-probabilities at every state, ``(T + 1, B, d, d + 1)``.
    log_reward_final : torch.Tensor
        ``log R`` of each terminal parent set, ``(B, d)``.

    Returns
    -------
    torch.Tensor
        The log-ratio ``Delta`` of every node trajectory, ``(B, d)``.
    """
    d = traj.states.shape[-1]
    a = traj.actions
    active = a >= 0
    lp_action = log_pf[:-1].gather(-1, a.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sum_pf = torch.where(active, lp_action, torch.zeros_like(lp_action)).sum(0)
    is_edge = active & (a < d)
    lp_back = uniform_backward_log_prob(traj.states[1:])
    sum_pb = torch.where(is_edge, lp_back, torch.zeros_like(lp_back)).sum(0)
    return sum_pf - log_reward_final - sum_pb
