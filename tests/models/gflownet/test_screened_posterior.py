"""The screened posterior: each gene's candidates scored exactly as the full enumeration
scores them, one-step edges outside from the same reward, a proper distribution per gene,
and at 40 genes a ranking and calibration no worse than the bootstrap Lasso's."""

import math

import numpy as np
import pytest

from workbench.models.gflownet import exact_posterior as ep
from workbench.models.gflownet import screened_posterior as sp


def _system(seed=0, n=300, d=7, noise=0.4):
    rng = np.random.default_rng(seed)
    w = np.zeros((d, d))
    for i in range(d):  # two parents each, asymmetric, plus decay
        for j in rng.choice(d, size=2, replace=False):
            w[i, j] = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        w[i, i] = -0.8
    x = rng.normal(size=(n, d))
    v = x @ w.T + noise * rng.normal(size=(n, d))
    return x, v, w != 0


SETTINGS = dict(temperature=0.12, edge_prior=0.2, ridge=1e-3)


def test_all_genes_as_candidates_is_the_exact_posterior():
    x, v, _ = _system()
    d = x.shape[1]
    exact = ep.ExactParentPosterior(3, **SETTINGS).fit(x, v)
    scr = sp.ScreenedParentPosterior(3, d, **SETTINGS).fit(x, v)
    assert (scr.candidates_ == np.arange(d)[None, :]).all()
    assert scr.outside_mass_ == 0.0
    np.testing.assert_allclose(scr.edge_probability_, exact.edge_probability_, atol=1e-10)
    np.testing.assert_allclose(scr.log_posterior_, exact.log_posterior_, atol=1e-9)


def test_candidate_sets_score_as_the_full_enumeration_scores_them():
    # each gene's candidates differ; a local set's reward must be the global set's reward
    x, v, _ = _system(1, d=8)
    stats = ep.sufficient_statistics(x, v)
    exact = ep.ExactParentPosterior(3, **SETTINGS).fit_statistics(stats)
    cand = sp.screen_candidates(stats, 5)
    assert len({tuple(r) for r in cand}) > 1, "the test needs genes with different lists"
    scr = sp.ScreenedParentPosterior(3, 5, **SETTINGS).fit_statistics(stats, cand)
    index = {tuple(np.flatnonzero(r)): k for k, r in enumerate(exact.membership_)}
    for i in range(8):
        for k, row in enumerate(scr.local_membership_):
            parents = tuple(cand[i][row > 0])
            assert scr.log_reward_[i, k] == pytest.approx(exact.log_reward_[i, index[parents]],
                                                          abs=1e-9), (i, parents)


def test_one_step_edges_compare_the_map_set_with_it_plus_one():
    x, v, _ = _system(2, d=7)
    stats = ep.sufficient_statistics(x, v)
    cand = sp.screen_candidates(stats, 3)
    scr = sp.ScreenedParentPosterior(2, 3, **SETTINGS).fit_statistics(stats, cand)
    # a full enumeration up to 3 parents holds every S* + j
    full = ep.ExactParentPosterior(3, **SETTINGS).fit_statistics(stats)
    index = {tuple(np.flatnonzero(r)): k for k, r in enumerate(full.membership_)}
    checked = 0
    for i in range(7):
        s_map = tuple(int(a) for a in scr.map_sets_[i])
        for j in range(7):
            if j in cand[i]:
                assert scr.outside_probability_[i, j] == 0.0
                continue
            lr_map = full.log_reward_[i, index[s_map]]
            lr_add = full.log_reward_[i, index[tuple(sorted(s_map + (j,)))]]
            want = 1.0 / (1.0 + math.exp(lr_map - lr_add))
            assert scr.outside_probability_[i, j] == pytest.approx(want, rel=1e-7, abs=1e-12)
            checked += 1
    assert checked == 7 * 4


def test_each_gene_has_a_proper_distribution_and_samples_follow_it():
    x, v, _ = _system(3, d=6)
    scr = sp.ScreenedParentPosterior(2, 3, **SETTINGS).fit(x, v)
    for i in range(6):
        total = sum(math.exp(scr.log_prob_parent_set(i, np.flatnonzero([(m >> b) & 1
                                                                         for b in range(6)])))
                    for m in range(2 ** 6))
        assert total == pytest.approx(1.0, abs=1e-9)
    samples = scr.sample(4000, seed=5)
    assert samples.shape == (4000, 6, 6)
    assert np.abs(samples.mean(0) - scr.edge_probability_).max() < 0.03
    # at most max_parents of a gene's candidates per sample
    inside = np.stack([samples[:, i, scr.candidates_[i]].sum(1) for i in range(6)], 1)
    assert inside.max() <= 2


def test_screening_keeps_the_true_parents_and_the_gene_itself():
    from workbench.tools.grn_synthetic import simulate_panel

    sim = simulate_panel("linear", p=40, n_traj=200, noise=2.0, sparsity=1 - 2 / 39, seed=13)
    stats = ep.sufficient_statistics(sim["x"], sim["v"])
    cand = sp.screen_candidates(stats, 12)
    truth = sim["adjacency"] > 0
    assert all(i in cand[i] for i in range(40))
    recall = np.mean([truth[i, cand[i]].sum() / truth[i].sum() for i in range(40)])
    assert recall >= 0.9, recall
    # the screen must look at gene i's own row: candidates of the transposed problem miss
    wrong = np.mean([truth[cand[i], i].sum() / max(truth[:, i].sum(), 1) for i in range(40)])
    assert wrong < recall - 0.1


def test_screened_step_beats_the_bootstrap_lasso_on_calibration_at_40_genes():
    from workbench.models.grn_params import BootstrapLassoPosterior, edge_scores
    from workbench.tools.grn import fit_exact, scale_for_grn
    from workbench.tools.grn_metrics import edge_auc
    from workbench.tools.grn_synthetic import simulate_panel

    sim = simulate_panel("linear", p=40, n_traj=200, noise=2.0, sparsity=1 - 2 / 39, seed=13)
    x, v, _ = scale_for_grn(sim["x"], sim["v"])
    truth = sim["adjacency"] > 0
    off = ~np.eye(40, dtype=bool)
    res = fit_exact(x, v, max_parents=6, n_samples=200, n_boot=20, groups=sim["trajectory"],
                    n_candidates=12)
    assert res["chosen"]["method"] == "screened" and res["chosen"]["n_candidates"] == 12
    p = res["edge_probability"]
    lasso = res["baseline"].edge_probability_
    assert isinstance(res["baseline"], BootstrapLassoPosterior)
    auc = edge_auc(p, truth, off)["auroc"]
    assert auc >= edge_auc(lasso, truth, off)["auroc"] - 0.01
    assert auc > edge_auc(edge_scores(x, v, "ols"), truth, off)["auroc"]
    assert np.mean((p - truth) ** 2) < np.mean((lasso - truth) ** 2)
    assert edge_auc(p, truth.T, off)["auroc"] < auc - 0.1
    edges = res["samples"].sum((1, 2)).mean()
    assert truth.sum() / 1.5 <= edges <= 1.5 * truth.sum()
