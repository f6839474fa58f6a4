"""The linear reward's fast paths against a direct solve: incremental tracker and batched sets.

Both work in the parent sets' own coordinates (``k x k`` systems instead of ``d x d``), so
these tests compare them with a plain per-set ridge solve in NumPy on random states whose
sets have different sizes in one batch (the padding must not leak), with an asymmetric
cross-moment matrix (a transposed ``X^T V`` would not pass).
"""

import numpy as np
import pytest
import torch

from workbench.models.grn_params import LinearVelocityReward

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _data(n=200, d=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 3] = 0.7 * x[:, 1] + 0.3 * rng.normal(size=n)      # correlated parents
    w = np.triu(rng.normal(size=(d, d)), 1) * (rng.random((d, d)) < 0.5)  # asymmetric
    v = x @ w.T - 0.5 * x + 0.2 * rng.normal(size=(n, d))
    return x, v


def _direct(x, v, rows, ridge):
    """Penalised error and weights of each ``(node, parent mask)`` by one solve per set."""
    xc, vc = x - x.mean(0), v - v.mean(0)
    n, d = x.shape
    gram, cross, vv = xc.T @ xc / n, (xc.T @ vc / n).T, (vc * vc).mean(0)
    err = np.zeros(rows.shape[:-1])
    wts = np.zeros(rows.shape)
    for pos in np.ndindex(*rows.shape[:-1]):
        i, cols = pos[-1], np.flatnonzero(rows[pos])
        if cols.size:
            w = np.linalg.solve(gram[np.ix_(cols, cols)] + ridge * np.eye(cols.size),
                                cross[i, cols])
            err[pos] = vv[i] - w @ cross[i, cols]
            wts[pos + (cols,)] = w
        else:
            err[pos] = vv[i]
    return np.maximum(err, 0.0), wts


def test_incremental_tracker_equals_direct_solve_at_every_visited_state():
    x, v = _data()
    d, batch, ridge = x.shape[1], 6, 1e-3
    reward = LinearVelocityReward(x, v, temperature=0.3, sparsity=2.0, ridge=ridge)
    tracker = reward.start(batch)
    gen = torch.Generator().manual_seed(1)
    s = torch.zeros(batch, d, d)
    for _ in range(d):
        free = (s < 0.5).float() + 1e-12
        a = torch.multinomial(free.reshape(-1, d), 1, generator=gen).reshape(batch, d)
        active = (torch.rand(batch, d, generator=gen) < 0.75) & (s.sum(-1) < d)
        tracker.add(a, active)
        s = s + torch.nn.functional.one_hot(a, d).float() * active[..., None]
        err, wts = _direct(x, v, s.numpy() > 0.5, ridge)
        assert np.allclose(tracker.fit.clamp(min=0).numpy(), err, rtol=1e-8, atol=1e-10)
        assert np.allclose(tracker.weights().numpy(), wts, rtol=1e-7, atol=1e-9)
        assert torch.allclose(tracker.log_reward, reward.log_reward(s), rtol=1e-6, atol=1e-6)
    assert int(s.sum(-1).max()) >= 5  # large sets were reached, not only one or two parents


def test_batched_set_scoring_equals_direct_solve_with_mixed_set_sizes():
    x, v = _data(seed=2)
    d, ridge = x.shape[1], 1e-3
    reward = LinearVelocityReward(x, v, ridge=ridge)
    rng = np.random.default_rng(3)
    p_edge = rng.random((3, 4, d, 1))                       # every size from empty to full
    rows = rng.random((3, 4, d, d)) < p_edge
    rows[0, 0] = False
    rows[0, 1] = True
    err, _ = _direct(x, v, rows, ridge)
    got = reward.mse(torch.as_tensor(rows, dtype=torch.float32))
    assert got.shape == (3, 4, d)
    assert np.allclose(got.numpy(), err, rtol=1e-8, atol=1e-10)
    # chunked evaluation (a tiny memory budget) gives the same numbers
    small = reward.mse(torch.as_tensor(rows, dtype=torch.float32), budget=50)
    assert torch.allclose(small, got, rtol=1e-12, atol=1e-14)


def test_tracker_memory_follows_set_size_not_gene_count():
    rng = np.random.default_rng(0)
    d = 80
    x = rng.normal(size=(120, d))
    reward = LinearVelocityReward(x, x @ rng.normal(size=(d, d)).T * 0.1)
    tracker = reward.start(4)
    for step in range(2):
        a = torch.as_tensor(rng.permutation(d)[None].repeat(4, 0)) if step == 0 else \
            torch.as_tensor((rng.permutation(d)[None].repeat(4, 0) + 1) % d)
        tracker.add(a, torch.ones(4, d, dtype=torch.bool))
    assert tracker.p.shape == (4, d, 2, 2)
    assert tracker.parents.shape == (4, d, 2)
