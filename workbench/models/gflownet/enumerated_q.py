"""``log Q`` of every bounded parent set of every node at once, for exact KLs at 26 genes.

:func:`~workbench.models.gflownet.exact.log_prob_parent_set` scores one parent set by a
dynamic programme over its ``2^k`` subsets, one policy call per set. To compare a trained
sampler with the enumerated reward posterior
(:class:`~workbench.models.gflownet.exact_posterior.ExactParentPosterior`) at realistic
sizes, every set of at most ``K`` parents of every node is needed: 17,902 sets x 26 nodes at
``K = 4``. Because the subsets of a bounded set are themselves bounded sets, the same
programme can run over the whole enumeration level by level: the policy is evaluated once
on every set (all nodes in one batched pass), and the log-probability of reaching a set of
size ``k`` is the log-sum-exp, over its members ``j``, of reaching the set without ``j``
and then adding ``j``::

    log reach(S) = logsumexp_{j in S} [ log reach(S - j) + log P_F(add j | S - j) ]
    log Q(S)     = log reach(S) + log P_F(stop | S)

which is the sum over all ``k!`` orders of adding the members, as in the one-set version.
"""

from __future__ import annotations

import numpy as np
import torch


def _keys(idx: np.ndarray) -> np.ndarray:
    """One integer per set: the bit mask of its members (``d <= 62``)."""
    if idx.shape[1] == 0:
        return np.zeros(len(idx), np.int64)
    return np.bitwise_or.reduce(np.left_shift(np.int64(1), idx.astype(np.int64)), axis=1)


@torch.no_grad()
def log_q_table(policy, env, sets: list[np.ndarray], *, device="cpu",
                chunk: int = 2048) -> np.ndarray:
    """``log Q_i(S)`` for every node ``i`` and every set ``S`` of ``sets``, ``(d, n_sets)``.

    Parameters
    ----------
    policy, env : ForwardPolicy, ParentSetEnv
        A trained :class:`~workbench.models.gflownet.estimators.ForwardPolicy` and its
        :class:`~workbench.models.gflownet.env.ParentSetEnv` (``DynGFN.policy_``,
        ``DynGFN.env_``).
    sets : list of numpy.ndarray
        Parent sets grouped by size, ``sets[k]`` an ``(m_k, k)`` index array holding *every*
        set of size ``k`` (as :func:`~workbench.models.gflownet.exact_posterior.parent_sets`
        returns them), so that each set's subsets are in the table.
    device : str or torch.device
        Device of the policy (default ``"cpu"``).
    chunk : int
        Sets per policy call (memory: about ``chunk * d * hidden`` floats per layer).

    Returns
    -------
    numpy.ndarray
        ``(d, n_sets)`` float64, columns in the order of ``np.concatenate(sets)``. The sets
        are those the sampler can reach; where the sampler is not capped at the largest
        size, mass beyond it is not in the table.
    """
    d = env.n_nodes
    sizes = [len(s) for s in sets]
    if [s.shape[1] for s in sets] != list(range(len(sets))) or sizes[0] != 1:
        raise ValueError("sets must hold every set of sizes 0, 1, ..., K in order "
                         "(use exact_posterior.parent_sets(d, K)).")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_sets = int(offsets[-1])
    member = np.zeros((n_sets, d), np.float32)
    for k, idx in enumerate(sets):
        if k:
            np.put_along_axis(member[offsets[k]:offsets[k + 1]], idx, 1.0, axis=1)
    logp = np.empty((n_sets, d, d + 1), np.float64)
    for s in range(0, n_sets, chunk):
        rows = torch.as_tensor(member[s:s + chunk], device=device)
        states = rows[:, None, :].expand(-1, d, -1).contiguous()   # every node in set S
        logp[s:s + chunk] = policy.log_probs(states, env.forward_mask(states)).double().cpu()
    reach = np.full((d, n_sets), -np.inf)
    reach[:, 0] = 0.0
    for k in range(1, len(sets)):
        idx = sets[k]
        prev_keys = _keys(sets[k - 1])
        order = np.argsort(prev_keys)
        keys = _keys(idx)
        terms = np.empty((d, len(idx), k))
        for b in range(k):
            sub_key = keys & ~np.left_shift(np.int64(1), idx[:, b].astype(np.int64))
            pos = order[np.searchsorted(prev_keys, sub_key, sorter=order)]
            sub = offsets[k - 1] + pos                                  # (m_k,)
            add = logp[sub, :, idx[:, b]]                               # (m_k, d)
            terms[:, :, b] = reach[:, sub] + add.T
        m = terms.max(axis=2, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        reach[:, offsets[k]:offsets[k + 1]] = (m[..., 0]
                                               + np.log(np.exp(terms - m).sum(axis=2)))
    return reach + logp[:, :, d].T
