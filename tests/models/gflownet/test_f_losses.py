"""f-trajectory balance against divergences computed by enumerating every trajectory.

The world: ``d = 3`` nodes, each choosing a parent set among all 8 subsets of three
candidates. A node has 16 trajectories (every order of every subset, then stop), so sets
of two and three parents are reached along 2 and 6 routes and ``log P_B`` is ``-log 2`` and
``-log 6`` there: a loss that drops ``log P_B`` or flips its sign targets the wrong
trajectory distribution, and the gradient checks below see it.

The policy is a table of logits (node, state, action), so ``q(tau)`` and every divergence
can be written in closed form and differentiated by autograd.
"""

import itertools
import math

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.models.gflownet.f_losses import (DIVERGENCES, f_trajectory_balance_loss,
                                                ftb_penalty, shift_invariant_ftb)
from workbench.models.gflownet.sampler import Trajectories

pytestmark = pytest.mark.usefixtures("torch_one_thread")

D = 3
ALPHAS = [0.0, 0.5, 1.0]


def _all_trajectories() -> Trajectories:
    """Every node trajectory, ``B = 16``; trajectory ``b`` is the same order for every node."""
    seqs = [p for k in range(D + 1) for c in itertools.combinations(range(D), k)
            for p in itertools.permutations(c)]
    b, n_t = len(seqs), D + 1
    states = torch.zeros(n_t + 1, b, D, D, dtype=torch.float64)
    actions = torch.full((n_t, b, D), -1, dtype=torch.long)
    for k, seq in enumerate(seqs):
        for t in range(n_t):
            if t < len(seq):
                actions[t, k, :] = seq[t]
                states[t + 1, k, :] = states[t, k, :]
                states[t + 1, k, :, seq[t]] = 1.0
            else:
                if t == len(seq):
                    actions[t, k, :] = D
                states[t + 1, k, :] = states[t, k, :]
    return Trajectories(states, actions)


TRAJ = _all_trajectories()
SIZES = TRAJ.final[:, 0].sum(-1)                                # (B,) parents at the end
MASK_ID = (TRAJ.states * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)).sum(-1).long()


def _log_pf(theta: torch.Tensor) -> torch.Tensor:
    """``(T + 1, B, D, D + 1)`` masked log-probabilities from logits ``theta (D, 8, D + 1)``."""
    node = torch.arange(D).view(1, 1, D).expand_as(MASK_ID)
    logits = theta[node, MASK_ID]
    allowed = torch.cat([TRAJ.states < 0.5, torch.ones_like(TRAJ.states[..., :1], dtype=bool)], -1)
    logits = torch.where(allowed, logits, torch.full_like(logits, -1e9))
    return torch.log_softmax(logits, -1)


def _log_q(log_pf: torch.Tensor) -> torch.Tensor:
    """``log q(tau)`` per trajectory and node, ``(B, D)``."""
    a = TRAJ.actions
    lp = log_pf[:-1].gather(-1, a.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(a >= 0, lp, torch.zeros_like(lp)).sum(0)


def _rewards(seed: int) -> torch.Tensor:
    """``log R`` of each node's terminal set for every trajectory, ``(B, D)``."""
    gen = torch.Generator().manual_seed(seed)
    table = 2.0 * torch.randn(D, 8, generator=gen, dtype=torch.float64)   # (node, set id)
    final_id = MASK_ID[-1]                                                # (B, D)
    return table[torch.arange(D).view(1, D), final_id]


def _log_p(log_r: torch.Tensor, pb_sign: float = 1.0) -> torch.Tensor:
    """Target ``log p(tau) = log R + log P_B - log Z`` (``pb_sign``: a plausible mistake)."""
    log_pb = -torch.lgamma(SIZES + 1.0).unsqueeze(-1) * pb_sign          # uniform backward: 1/k!
    u = log_r + log_pb
    return u - torch.logsumexp(u, 0, keepdim=True)


def _divergence(log_q: torch.Tensor, log_p: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1/alpha) D^Renyi_alpha(p || q)`` (KL(q||p) at 0, KL(p||q) at 1), mean over nodes."""
    q, p = log_q.exp(), log_p.exp()
    if alpha == 0.0:
        return (q * (log_q - log_p)).sum(0).mean()
    if alpha == 1.0:
        return (p * (log_p - log_q)).sum(0).mean()
    lse = torch.logsumexp(alpha * log_p + (1 - alpha) * log_q, 0)
    return (lse / (alpha * (alpha - 1.0))).mean()


def _theta(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + seed)
    return torch.randn(D, 8, D + 1, generator=gen, dtype=torch.float64).requires_grad_(True)


def _grad(fn, theta):
    theta.grad = None
    fn().backward()
    return theta.grad.clone()


def test_world_has_multi_parent_routes():
    assert len(TRAJ.actions[0]) == 16
    assert sorted(set(SIZES.tolist())) == [0.0, 1.0, 2.0, 3.0]
    # probabilities of all trajectories of a node sum to one under any table
    assert torch.allclose(_log_q(_log_pf(_theta(0))).exp().sum(0), torch.ones(D, dtype=torch.float64))


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", [0, 1])
def test_on_policy_gradient_is_the_divergence_gradient(alpha, seed):
    theta, log_r = _theta(seed), _rewards(seed)

    def surrogate():
        lp = _log_pf(theta)
        w = _log_q(lp).exp().detach()                 # on-policy: the exact expectation under q
        return f_trajectory_balance_loss(TRAJ, lp, log_r, alpha=alpha, weights=w)

    g_loss = _grad(surrogate, theta)
    g_true = _grad(lambda: _divergence(_log_q(_log_pf(theta)), _log_p(log_r), alpha), theta)
    assert g_true.abs().max() > 1e-3
    assert torch.allclose(g_loss, g_true, rtol=1e-7, atol=1e-10)
    # the divergence towards a target without log P_B (or with it flipped) has another
    # gradient: a loss that made either mistake would fail the check above
    for sign in (0.0, -1.0):
        g_wrong = _grad(lambda s=sign: _divergence(_log_q(_log_pf(theta)), _log_p(log_r, s),
                                                   alpha), theta)
        assert (g_wrong - g_true).abs().max() > 1e-2


@pytest.mark.parametrize("alpha", ALPHAS + [-0.5, 2.0])
def test_adding_a_constant_to_log_reward_leaves_loss_and_gradient_unchanged(alpha):
    theta, log_r = _theta(2), _rewards(2)
    shift = torch.tensor([7.3, -120.0, 1e3], dtype=torch.float64)    # one per node
    for weights in (None, "on-policy"):
        def loss(lr, weights=weights):
            lp = _log_pf(theta)
            w = None if weights is None else _log_q(lp).exp().detach()
            return f_trajectory_balance_loss(TRAJ, lp, lr, alpha=alpha, weights=w)

        g0, g1 = _grad(lambda: loss(log_r), theta), _grad(lambda: loss(log_r + shift), theta)
        assert g0.abs().max() > 1e-3
        assert torch.allclose(g0, g1, rtol=1e-8, atol=1e-10)
        with torch.no_grad():
            assert abs(float(loss(log_r)) - float(loss(log_r + shift))) < 1e-8


def _terminal_q(theta):
    """``Q`` over each node's 8 terminal sets, ``(D, 8)``, summing its trajectories."""
    q = _log_q(_log_pf(theta)).exp()
    out = torch.zeros(D, 8, dtype=torch.float64)
    return out.index_add_(1, MASK_ID[-1, :, 0], q.T)


def _terminal_p(log_r):
    r = torch.zeros(D, 8, dtype=torch.float64)
    r[:, MASK_ID[-1, :, 0]] = log_r.T.exp()   # each set's reward (same on all its routes)
    return r / r.sum(1, keepdim=True)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_free_logits_reach_the_reward_both_on_and_off_policy(alpha):
    log_r = _rewards(3)
    target = _terminal_p(log_r)
    for behaviour in ("on-policy", "uniform"):
        theta = torch.zeros(D, 8, D + 1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=0.1)
        for _ in range(400):
            lp = _log_pf(theta)
            w = _log_q(lp).exp().detach() if behaviour == "on-policy" else None
            loss = f_trajectory_balance_loss(TRAJ, lp, log_r, alpha=alpha, weights=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
        tv = 0.5 * (_terminal_q(theta.detach()) - target).abs().sum(1).max()
        assert tv < 0.01, (alpha, behaviour, float(tv))


SIZE_OF = torch.tensor([bin(m).count("1") for m in range(8)])


def _tied_policy(par: torch.Tensor) -> torch.Tensor:
    """A misspecified policy: one logit per edge for every state, a stop logit per set size.

    ``par (D, D + 4)``: columns ``:D`` the edge logits, ``D:`` the stop logit at 0..3 parents.
    """
    edges = par[:, :D].unsqueeze(1).expand(D, 8, D)
    stop = par[:, D:][:, SIZE_OF].unsqueeze(-1)
    return torch.cat([edges, stop], -1)


def _train_tied(alpha, log_r, steps=300):
    par = torch.zeros(D, D + 4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([par], lr=0.05)
    for _ in range(steps):
        lp = _log_pf(_tied_policy(par))
        loss = f_trajectory_balance_loss(TRAJ, lp, log_r, alpha=alpha,
                                         weights=_log_q(lp).exp().detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _terminal_q(_tied_policy(par.detach()))


def test_reverse_kl_seeks_a_mode_and_forward_kl_covers_both():
    # two modes per node: {0} with 0.6 of the mass and {1, 2} with 0.35. The tied policy
    # stops at every one-parent set alike and shares its edge logits, so it cannot reach
    # {1, 2} often without also stopping at {1} and {2}: the members must disagree
    table = torch.full((8,), math.log(0.05 / 6), dtype=torch.float64)
    table[0b001], table[0b110] = math.log(0.6), math.log(0.35)
    log_r = table[MASK_ID[-1]]
    q = {a: _train_tied(a, log_r) for a in ALPHAS}
    major = {a: float(q[a][:, 0b001].mean()) for a in ALPHAS}
    minor = {a: float(q[a][:, 0b110].mean()) for a in ALPHAS}
    # reverse KL piles onto the major mode; larger alpha spreads mass further
    assert major[0.0] > 0.85 and major[0.0] > major[0.5] + 0.03 > major[1.0] + 0.3, major
    assert minor[1.0] > minor[0.0] + 0.04, minor
    p = _terminal_p(log_r)
    kl = lambda a, b: float((a * (a / b).log()).sum(1).mean())  # noqa: E731
    # each member is the better one on its own divergence
    assert kl(p, q[1.0]) < kl(p, q[0.0]) - 1.0
    assert kl(q[0.0], p) < kl(q[1.0], p) - 0.5


def test_penalty_is_zero_with_zero_slope_at_balance_and_matches_the_alpha_limit():
    d = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    for alpha in (0.0, 0.5, 1.0, -1.0):
        val = ftb_penalty(d, alpha)
        assert (val >= -1e-12).all()
        (g,) = torch.autograd.grad(val.sum(), d)
        assert abs(float(val[6].detach())) < 1e-12 and abs(float(g[6])) < 1e-12
    assert torch.allclose(ftb_penalty(d, 1e-5), ftb_penalty(d, 0.0), atol=1e-4)
    # the shift-invariant loss is the penalty at its best shift, and zero for a constant residual
    x = torch.tensor([[0.3], [1.2], [-0.4]], dtype=torch.float64)
    for alpha in (0.0, 0.5, 1.0):
        grid = torch.linspace(-2, 2, 4001, dtype=torch.float64)
        best = min(float(ftb_penalty(x - c, alpha).mean()) for c in grid)
        assert abs(float(shift_invariant_ftb(x, alpha)) - best) < 1e-6
        assert float(shift_invariant_ftb(torch.full((4, 2), 5.0), alpha)) == pytest.approx(0.0, abs=1e-12)


def test_bad_alpha_and_tiny_batches_are_refused_with_a_fix():
    assert DIVERGENCES["forward_kl"] == 1.0
    with pytest.raises(WorkbenchError, match="unknown f-divergence"):
        f_trajectory_balance_loss(TRAJ, _log_pf(_theta(0)), _rewards(0), alpha="chi2")
    with pytest.raises(WorkbenchError, match="at least two"):
        shift_invariant_ftb(torch.zeros(1, 3), 0.5)
