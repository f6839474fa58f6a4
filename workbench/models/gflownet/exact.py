"""Exact ``log Q(G)`` of a per-node GFlowNet, summing over every order of edge additions.

A parent set ``S`` with ``k`` members can be built in ``k!`` orders, and the sampler then
stops. Its probability under the forward policy is therefore::

    Q_i(S) = P_F(stop | S) * sum over orders (j_1..j_k) of prod_t P_F(add j_t | {j_1..j_{t-1}})

The sum over orders is computed exactly by dynamic programming over the ``2^k`` subsets of
``S`` (the log-probability of reaching subset ``U`` is the log-sum-exp over its last added
member), which equals the sum over all ``k!`` orders without enumerating them. The stop
term is evaluated at the *final* parent set ``S`` (DynGFN's reference code uses the stop
probability from one step earlier; see the method card). ``log Q(G) = sum_i log Q_i(G_i)``.

Beyond :data:`MAX_EXACT_PARENTS` members the ``2^k`` subsets are too many, and the sum over
orders is estimated by importance sampling: with orders drawn uniformly (probability
``1 / k!`` each, the uniform backward policy read forwards),
``sum_orders prod_t P_F = k! * E_uniform[prod_t P_F]``, and the expectation is a log-mean-exp
over ``n_orders`` random orders. The estimate is consistent; in log space it is biased low
by at most the log of the relative spread of the order weights (Jensen), which shrinks as
``n_orders`` grows.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.models.gflownet.env import ParentSetEnv
from workbench.models.gflownet.estimators import ForwardPolicy

#: Largest parent set handled exactly (2^k policy evaluations per set).
MAX_EXACT_PARENTS = 16


@torch.no_grad()
def log_prob_parent_set(policy: ForwardPolicy, env: ParentSetEnv, node: int,
                        parents, device: torch.device | str = "cpu") -> float:
    """``log Q_node(S)`` for one parent set ``S``, exact up to :data:`MAX_EXACT_PARENTS`.

    Parameters
    ----------
    policy : ForwardPolicy
        The trained forward policy.
    env : ParentSetEnv
        The environment (its ``max_parents`` cap applies).
    node : int
        The child node ``i``.
    parents : iterable of int
        The parent indices of ``S`` (order ignored).
    device : torch.device or str
        Device of the policy evaluations.

    Returns
    -------
    float
        ``log Q_node(S)``; ``-inf`` when ``S`` exceeds ``max_parents``; the sampled estimate
        of :func:`log_prob_parent_set_sampled` beyond :data:`MAX_EXACT_PARENTS` members.
    """
    parents = sorted(int(p) for p in parents)
    k, d = len(parents), env.n_nodes
    if env.max_parents is not None and k > env.max_parents:
        return float("-inf")
    if k > MAX_EXACT_PARENTS:
        return log_prob_parent_set_sampled(policy, env, node, parents, device=device)
    n_sub = 1 << k
    bits = (np.arange(n_sub)[:, None] >> np.arange(k)[None, :]) & 1
    rows = np.zeros((n_sub, d), dtype=np.float32)
    if k:
        rows[:, parents] = bits
    rows_t = torch.as_tensor(rows, device=device)
    node_t = torch.full((n_sub,), node, dtype=torch.long, device=device)
    logp = policy.log_probs_rows(node_t, rows_t, env.forward_mask(rows_t)).double().cpu().numpy()
    reach = np.full(n_sub, -np.inf)
    reach[0] = 0.0
    for mask in sorted(range(1, n_sub), key=lambda m: bin(m).count("1")):
        terms = [reach[mask ^ (1 << b)] + logp[mask ^ (1 << b), parents[b]]
                 for b in range(k) if mask >> b & 1]
        reach[mask] = np.logaddexp.reduce(terms)
    return float(reach[n_sub - 1] + logp[n_sub - 1, d])


@torch.no_grad()
def log_prob_parent_set_sampled(policy: ForwardPolicy, env: ParentSetEnv, node: int, parents,
                                n_orders: int = 512, seed: int = 0,
                                device: torch.device | str = "cpu") -> float:
    """Importance-sampling estimate of ``log Q_node(S)`` for a parent set of any size.

    ``n_orders`` uniformly random orders of ``S`` are scored by the forward policy in one
    batch; ``log Q = log P_F(stop | S) + log k! + log mean_orders prod_t P_F(add j_t)``.

    Parameters
    ----------
    policy : ForwardPolicy
        The trained forward policy.
    env : ParentSetEnv
        The environment.
    node : int
        The child node ``i``.
    parents : iterable of int
        The parent indices of ``S``.
    n_orders : int
        Random orders averaged over; the low bias in log space shrinks as it grows.
    seed : int
        Seed of the orders (combined with ``node`` and ``|S|``, so each set has its own).
    device : torch.device or str
        Device of the policy evaluations.

    Returns
    -------
    float
        The estimate of ``log Q_node(S)``.
    """
    import math

    parents = np.array(sorted(int(p) for p in parents), dtype=np.int64)
    k, d = len(parents), env.n_nodes
    rng = np.random.default_rng([seed, node, k])
    orders = np.stack([rng.permutation(parents) for _ in range(n_orders)]) if k else \
        np.zeros((n_orders, 0), np.int64)
    # state before step t holds orders[:, :t]; step k is the full set (stop)
    rows = np.zeros((n_orders, k + 1, d), np.float32)
    for t in range(1, k + 1):
        rows[:, t] = rows[:, t - 1]
        rows[np.arange(n_orders), t, orders[:, t - 1]] = 1.0
    flat = torch.as_tensor(rows.reshape(-1, d), device=device)
    node_t = torch.full((flat.shape[0],), node, dtype=torch.long, device=device)
    logp = policy.log_probs_rows(node_t, flat, env.forward_mask(flat)).double().cpu().numpy()
    logp = logp.reshape(n_orders, k + 1, d + 1)
    steps = np.take_along_axis(logp[:, :k, :d], orders[:, :, None], axis=2)[..., 0].sum(1)
    stop = float(logp[0, k, d])
    m = steps.max()
    log_mean = m + math.log(np.exp(steps - m).mean())
    return float(stop + math.lgamma(k + 1) + log_mean)


def log_prob_graphs(policy: ForwardPolicy, env: ParentSetEnv, graphs,
                    device: torch.device | str = "cpu") -> np.ndarray:
    """``log Q(G) = sum_i log Q_i(G_i)`` for each graph; repeated rows are computed once.

    Parameters
    ----------
    policy : ForwardPolicy
        The trained forward policy.
    env : ParentSetEnv
        The environment.
    graphs : array_like
        ``(n, d, d)`` adjacency matrices in the package orientation (``G[i, j]`` nonzero:
        ``j`` is a parent of ``i``).
    device : torch.device or str
        Device of the policy evaluations.

    Returns
    -------
    ndarray
        ``(n,)`` float64 log-probabilities.
    """
    graphs = np.asarray(graphs) > 0
    cache: dict[tuple, float] = {}
    out = np.zeros(len(graphs))
    for g_idx, g in enumerate(graphs):
        total = 0.0
        for i in range(env.n_nodes):
            key = (i, tuple(np.flatnonzero(g[i])))
            if key not in cache:
                cache[key] = log_prob_parent_set(policy, env, i, key[1], device)
            total += cache[key]
        out[g_idx] = total
    return out
