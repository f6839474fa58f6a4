"""Exchangeable pair model: equivariance, symmetry, and accuracy against simple baselines."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workbench.models.exchangeable import ExchangeablePairModel  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _planted(n=40, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 2))
    s = rng.normal(size=(n, 1))
    R = np.tanh(u @ u.T) + np.abs(s) + np.abs(s).T
    return R, s, rng


def _gene_mean(n, i, j, y, qi, qj):
    tot, cnt = np.zeros(n), np.zeros(n)
    for a in (i, j):
        np.add.at(tot, a, y)
        np.add.at(cnt, a, 1)
    g = np.where(cnt > 0, tot / np.maximum(cnt, 1), y.mean())
    return g[qi] + g[qj]


def test_relabelling_genes_permutes_predictions():
    R, s, rng = _planted(30)
    n = len(R)
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.4
    i, j, y = iu[0][obs], iu[1][obs], R[iu][obs]
    qi, qj = iu[0][~obs], iu[1][~obs]
    kw = dict(steps=40, n_members=3, width=16, seed=1, device="cpu")
    a = ExchangeablePairModel(**kw).fit(i, j, y, side=s, n_items=n).sample(qi, qj)
    perm = rng.permutation(n)  # gene g is called perm[g] in the second run
    side2 = np.empty_like(s)
    side2[perm] = s
    b = ExchangeablePairModel(**kw).fit(perm[i], perm[j], y, side=side2, n_items=n)
    assert np.allclose(a, b.sample(perm[qi], perm[qj]), atol=1e-4)
    # and the order inside a pair does not matter
    assert np.allclose(b.sample(perm[qj], perm[qi]), b.sample(perm[qi], perm[qj]), atol=1e-5)


def test_beats_the_gene_mean_rule_on_held_out_pairs():
    R, s, rng = _planted(40, seed=2)
    n = len(R)
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.3
    i, j, y = iu[0][obs], iu[1][obs], R[iu][obs]
    qi, qj = iu[0][~obs], iu[1][~obs]
    m = ExchangeablePairModel(steps=200, n_members=4, seed=0, device="cpu")
    mean, sd = m.fit(i, j, y, side=s, n_items=n).predict(qi, qj)
    truth = R[iu][~obs]
    ours = np.corrcoef(mean, truth)[0, 1]
    base = np.corrcoef(_gene_mean(n, i, j, y, qi, qj), truth)[0, 1]
    assert ours > base + 0.05 and ours > 0.7
    assert (sd > 0).all() and 0 < m.residual_sd_ < y.std()


def test_genes_without_measured_pairs_are_predicted_from_their_singles():
    # inductive use: every pair of 8 genes is hidden; the singles must carry them
    R, s, rng = _planted(40, seed=3)
    n = len(R)
    iu = np.triu_indices(n, 1)
    new = (iu[0] >= n - 8) | (iu[1] >= n - 8)
    obs = (rng.random(len(iu[0])) < 0.5) & ~new
    m = ExchangeablePairModel(steps=200, n_members=4, seed=0, device="cpu")
    m.fit(iu[0][obs], iu[1][obs], R[iu][obs], side=s, n_items=n)
    mean, _ = m.predict(iu[0][new], iu[1][new])
    assert np.corrcoef(mean, R[iu][new])[0, 1] > 0.6


def test_seeded_and_leaves_global_rng_alone():
    R, s, rng = _planted(20, seed=4)
    iu = np.triu_indices(20, 1)
    i, j, y = iu[0][:60], iu[1][:60], R[iu][:60]
    state = torch.random.get_rng_state()
    kw = dict(steps=20, n_members=2, width=8, seed=5, device="cpu")
    a = ExchangeablePairModel(**kw).fit(i, j, y, side=s, n_items=20).sample(iu[0][60:], iu[1][60:])
    b = ExchangeablePairModel(**kw).fit(i, j, y, side=s, n_items=20).sample(iu[0][60:], iu[1][60:])
    assert np.array_equal(a, b)
    assert torch.equal(state, torch.random.get_rng_state())
    c = ExchangeablePairModel(**{**kw, "seed": 6}).fit(i, j, y, side=s, n_items=20)
    assert not np.allclose(a, c.sample(iu[0][60:], iu[1][60:]))
