"""f-trajectory balance: one dial from mode-seeking to mass-covering GFlowNet training.

Fawkes & Hartford (ICML 2026, arXiv:2605.15417) show that for every f-divergence there is a
loss on the trajectory-balance residual whose gradient, on trajectories drawn from the
sampler itself, is the gradient of that divergence between the sampler's trajectory
distribution ``q(tau) = prod_t P_F`` and the target ``p(tau) = R(x) P_B(tau | x) / Z``,
and whose minimiser stays ``q = p`` when the trajectories come from any other behaviour
with full support. Squared trajectory balance is the reverse-KL member (Malkin et al.,
ICLR 2023, "GFlowNets and variational inference").

**The family implemented here** (our parameterisation; the paper's exact one was not
checked). Write ``Delta = sum_t log P_F - log R(x) - sum_t log P_B`` per node trajectory
(:func:`~workbench.models.gflownet.losses.trajectory_log_ratio`, no ``log Z``). For the
alpha family ``f''(r) = r^(alpha - 2)`` the pointwise loss is::

    l_alpha(Delta - c) = (exp(-alpha (Delta - c)) + alpha (Delta - c) - 1) / alpha^2

whose on-policy gradient ``E_q[l'(Delta - c) grad log q]`` is, up to a positive factor,
the gradient of the alpha-divergence ``D_alpha(p || q)``. Instead of learning ``c = log Z``
we take, per node, the ``c`` that minimises the batch loss (closed form: a log-mean-exp).
The result depends on ``Delta`` only through its spread over the batch, so adding any
constant to ``log R`` leaves loss and gradient unchanged (translation invariance), and no
``log Z`` has to travel the hundreds of nats a peaked reward needs::

    L_alpha = [ mean(Delta) + (1/alpha) log mean exp(-alpha Delta) ] / alpha
    L_0     = var(Delta) / 2                     (the log-variance loss, Richter et al. 2020)

By the envelope theorem its gradient is ``mean_b (1 - w_b) grad Delta_b / alpha`` with
self-normalised weights ``w_b ∝ exp(-alpha Delta_b) = (p/q)^alpha``. On-policy this is
``(1/alpha) grad D^Renyi_alpha(p || q)`` (Li & Turner, NeurIPS 2016): a monotone transform of
the alpha-divergence with the same minimiser and descent directions, and exactly

- ``alpha = 0``: ``grad KL(q || p)``, reverse KL (standard TB, mode-seeking);
- ``alpha = 1``: ``grad KL(p || q)``, forward KL (mass-covering);
- ``alpha = 1/2``: a Hellinger-type divergence, in between.

Off-policy (tempered roll-outs, replay, backward trajectories) the loss is zero exactly
when ``Delta`` is the same on every trajectory, which for a behaviour with full support means
``q = p``. ``weights`` gives each trajectory an importance weight (for example its exact
probability under ``q``, which turns the batch mean into an expectation).
"""

from __future__ import annotations

import math

import torch

from workbench.errors import WorkbenchError
from workbench.models.gflownet.losses import trajectory_log_ratio
from workbench.models.gflownet.sampler import Trajectories

#: Named members of the alpha family (alpha of ``D_alpha(p || q)``).
DIVERGENCES = {"reverse_kl": 0.0, "hellinger": 0.5, "forward_kl": 1.0}


def resolve_alpha(alpha: float | str) -> float:
    """``alpha`` from a number or a name in :data:`DIVERGENCES`.

    Parameters
    ----------
    alpha : float or str
        A finite number, or ``"reverse_kl"``, ``"hellinger"`` or ``"forward_kl"``.

    Returns
    -------
    float
        The alpha of ``D_alpha(p || q)``.

    Raises
    ------
    WorkbenchError
        For an unknown name or a number that is not finite.
    """
    if isinstance(alpha, str):
        if alpha not in DIVERGENCES:
            raise WorkbenchError(f"unknown f-divergence {alpha!r}.",
                                 f"use one of {', '.join(DIVERGENCES)} or give alpha as a number.")
        return DIVERGENCES[alpha]
    a = float(alpha)
    if not math.isfinite(a):
        raise WorkbenchError(f"alpha must be a finite number, got {alpha!r}.",
                             "use 0 (reverse KL), 0.5 (Hellinger) or 1 (forward KL).")
    return a


def ftb_penalty(delta: torch.Tensor, alpha: float) -> torch.Tensor:
    """Pointwise ``l_alpha(Delta)``: convex, zero with zero slope at ``Delta = 0``.

    This is the form to use with a learned ``log Z`` inside ``Delta``; the exponent is
    clamped at 50 so that a far-off start does not overflow.

    Parameters
    ----------
    delta : torch.Tensor
        Residuals, any shape.
    alpha : float
        Member of the family; below ``1e-8`` in size the squared penalty ``Delta^2 / 2``
        (trajectory balance) is used.

    Returns
    -------
    torch.Tensor
        ``l_alpha`` of every residual, the shape of ``delta``.
    """
    if abs(alpha) < 1e-8:
        return 0.5 * delta.pow(2)
    z = (-alpha * delta).clamp(max=50.0)
    return (torch.exp(z) + alpha * delta - 1.0) / alpha**2


def shift_invariant_ftb(delta: torch.Tensor, alpha: float,
                        weights: torch.Tensor | None = None) -> torch.Tensor:
    """``L_alpha`` of residuals ``delta`` ``(B, d)``: one optimal shift per column, then mean.

    ``weights`` ``(B,)`` or ``(B, d)`` (non-negative, no gradient) weight the batch mean of
    each column; by default every trajectory counts the same.

    Parameters
    ----------
    delta : torch.Tensor
        Residuals ``(B, d)``, one column per node; a ``(B,)`` vector is one column.
    alpha : float
        Member of the family; below ``1e-8`` in size the weighted variance ``L_0`` is used.
    weights : torch.Tensor, optional
        Non-negative weights ``(B,)`` or ``(B, d)`` with a positive sum per column,
        detached; trajectories of weight zero drop out. ``None`` weighs all equally.

    Returns
    -------
    torch.Tensor
        Scalar: the mean over columns of ``L_alpha``.

    Raises
    ------
    WorkbenchError
        With fewer than two trajectories, or weights that are negative or sum to zero.
    """
    if delta.dim() == 1:
        delta = delta.unsqueeze(-1)
    b = delta.shape[0]
    if b < 2:
        raise WorkbenchError("f-trajectory balance needs at least two trajectories per node "
                             f"in a batch, got {b}.",
                             "roll out more graphs per step (n_envs >= 2).")
    if weights is None:
        log_w = torch.full_like(delta, -math.log(b))
    else:
        w = weights.detach().to(delta.dtype)
        if w.dim() == 1:
            w = w.unsqueeze(-1)
        w = w.expand_as(delta)
        if bool((w < 0).any()) or not bool((w.sum(0) > 0).all()):
            raise WorkbenchError("trajectory weights must be non-negative with a positive sum "
                                 "per node.", "pass probabilities or counts as weights.")
        w = w / w.sum(0, keepdim=True)
        log_w = torch.log(w)
        delta = torch.where(w > 0, delta, torch.zeros_like(delta))
        log_w = torch.where(w > 0, log_w, torch.full_like(log_w, -1e30))
    w = log_w.exp()
    mean = (w * delta).sum(0)
    if abs(alpha) < 1e-8:
        per_node = 0.5 * (w * (delta - mean).pow(2)).sum(0)
    else:
        lme = torch.logsumexp(log_w - alpha * delta, dim=0)
        per_node = (mean + lme / alpha) / alpha
    return per_node.mean()


def f_trajectory_balance_loss(traj: Trajectories, log_pf: torch.Tensor,
                              log_reward_final: torch.Tensor, *, alpha: float | str = 0.0,
                              weights: torch.Tensor | None = None) -> torch.Tensor:
    """Shift-invariant f-TB loss over the ``B x d`` node trajectories of ``traj``.

    Parameters
    ----------
    traj : Trajectories
        Roll-outs with states ``(T + 1, B, d, d)`` and actions ``(T, B, d)``.
    log_pf : torch.Tensor
        Forward log-probabilities at every state, ``(T + 1, B, d, d + 1)``, with gradient.
    log_reward_final : torch.Tensor
        ``log R`` of each terminal parent set, ``(B, d)``.
    alpha : float or str
        Member of the family: a number, or ``"reverse_kl"`` (0, the default),
        ``"hellinger"`` (0.5), ``"forward_kl"`` (1).
    weights : torch.Tensor, optional
        Importance weight of each trajectory, ``(B,)`` or ``(B, d)``; ``None`` weighs all
        equally.

    Returns
    -------
    torch.Tensor
        Scalar loss (see :func:`shift_invariant_ftb`).
    """
    delta = trajectory_log_ratio(traj, log_pf, log_reward_final)
    return shift_invariant_ftb(delta, resolve_alpha(alpha), weights)
