"""The enumerated reward posterior: its reward is a marginal likelihood, its sets are all
there, its samples follow it, and its data-driven settings give a sparse, calibrated
posterior on a system with known truth."""

import math

import numpy as np
import pytest
import torch

from workbench.models.gflownet import exact_posterior as ep

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _linear_system(seed=0, n=300, d=6, noise=0.3):
    rng = np.random.default_rng(seed)
    w = np.zeros((d, d))
    for i in range(d):  # one or two parents each, asymmetric
        for j in rng.choice(d, size=1 + i % 2, replace=False):
            w[i, j] = rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
    x = rng.normal(size=(n, d))
    v = x @ w.T + noise * rng.normal(size=(n, d))
    return x, v, w != 0


def test_parent_sets_are_all_bounded_subsets():
    sets = ep.parent_sets(7, 3)
    flat = {tuple(s) for group in sets for s in group}
    assert len(flat) == ep.n_parent_sets(7, 3) == 1 + 7 + 21 + 35
    assert ep.n_parent_sets(26, 4) == 17902


def test_reward_is_the_bayesian_linear_regression_evidence():
    # independent cells (n_eff = n), one noise level: log R(S) - log R(empty) must equal
    # log N(v; 0, s2 I + tau^2 X_S X_S^T) - log N(v; 0, s2 I) + |S| logit(pi)
    x, v, _ = _linear_system(1, n=80, d=4)
    xc, vc = x - x.mean(0), v - v.mean(0)
    n = len(x)
    s2, tau, pi = 0.5, 0.8, 0.2
    post = ep.ExactParentPosterior(max_parents=4, temperature=math.sqrt(2 * s2 / n),
                                   edge_prior=pi, ridge=s2 / (n * tau ** 2)).fit(x, v)
    from scipy.stats import multivariate_normal

    def evidence(i, cols):
        cov = s2 * np.eye(n) + tau ** 2 * xc[:, cols] @ xc[:, cols].T
        return multivariate_normal(np.zeros(n), cov).logpdf(vc[:, i])

    logit = math.log(pi / (1 - pi))
    for i in range(4):
        base = evidence(i, [])
        for k, row in enumerate(post.membership_):
            cols = list(np.flatnonzero(row))
            want = evidence(i, cols) - base + len(cols) * logit
            got = post.log_reward_[i, k] - post.log_reward_[i, 0]
            assert abs(got - want) < 1e-6 * max(1.0, abs(want)), (i, cols)


def test_plug_in_energy_matches_the_dyngfn_linear_reward():
    from workbench.models.grn_params import LinearVelocityReward

    x, v, _ = _linear_system(2, d=5)
    lam, temp, ridge = 40.0, 0.2, 1e-3
    pi = 1.0 / (1.0 + math.exp(lam / 5))
    post = ep.ExactParentPosterior(5, temp, pi, ridge, occam=False).fit(x, v)
    lin = LinearVelocityReward(x, v, temperature=temp, sparsity=lam, ridge=ridge)
    states = torch.as_tensor(np.broadcast_to(post.membership_[:, None, :],
                                             (post.n_sets, 5, 5)).copy())
    log_r = lin.log_reward(states).double().numpy().T        # (d, n_sets)
    # equal up to the per-node constant (the prior's (1 - pi)^d normaliser)
    diff = post.log_reward_ - log_r
    assert np.allclose(diff - diff[:, :1], 0.0, atol=1e-3 * np.abs(log_r).max())


def test_posterior_normalises_samples_follow_it_and_log_prob_agrees():
    x, v, _ = _linear_system(3, d=4, noise=1.5)
    post = ep.ExactParentPosterior(2, 0.5, 0.3, 1e-3).fit(x, v)
    assert np.allclose(np.exp(post.log_posterior_).sum(1), 1.0)
    g = post.sample(4000, seed=1)
    assert g.sum(-1).max() <= 2
    assert np.abs(g.mean(0) - post.edge_probability_).max() < 0.04
    lp = post.log_prob(g[:5])
    want = [sum(post.log_prob_parent_set(i, np.flatnonzero(r)) for i, r in enumerate(s))
            for s in g[:5]]
    assert np.allclose(lp, want)
    assert post.log_prob_parent_set(0, [0, 1, 2]) == -np.inf
    # KL of the posterior to itself is zero, to a flat model it is positive
    assert np.allclose(post.kl_to(post.log_prob_parent_set), 0.0, atol=1e-9)
    flat = -math.log(post.n_sets)
    assert (post.kl_to(lambda i, s: flat) > 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_settings_from_data_give_a_sparse_calibrated_posterior(seed):
    x, v, truth = _linear_system(seed, n=400, d=8, noise=0.5)
    res = ep.held_out_residuals(x, v, seed=seed)
    s2 = ep.noise_variance(res)
    assert np.allclose(s2, 0.25, rtol=0.35)            # the planted noise variance
    n_eff = ep.effective_sample_size(x, res)
    assert 0.7 * len(x) < n_eff <= len(x)              # independent cells
    stats = ep.sufficient_statistics(x, v)
    eb = ep.empirical_bayes(stats, ep.parent_sets(8, 3), s2, n_eff)
    post = ep.ExactParentPosterior(3, eb["temperature"], eb["edge_prior"], eb["ridge"]).fit(x, v)
    p = post.edge_probability_
    assert abs(p.sum() - truth.sum()) <= 0.5 * truth.sum()
    assert p[truth].min() > 0.9 and p[~truth].max() < 0.5
    brier = float(np.mean((p - truth) ** 2))
    assert brier < 0.02


def test_effective_sample_size_sees_shared_noise_within_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 10)
    shared = rng.normal(size=(20, 3))[groups]
    x = rng.normal(size=(200, 3))
    n_ind = ep.effective_sample_size(x, rng.normal(size=(200, 3)), groups=groups)
    n_shared = ep.effective_sample_size(x, shared + 0.1 * rng.normal(size=(200, 3)),
                                        groups=groups)
    assert n_ind > 150 and 20 <= n_shared < 25


def test_bad_input_is_refused():
    from workbench.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="one shape"):
        ep.ExactParentPosterior().fit(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(WorkbenchError, match="edge_prior"):
        ep.ExactParentPosterior(edge_prior=1.5).fit(np.zeros((5, 3)), np.zeros((5, 3)))


def test_sample_coefficients_recover_signed_weights_of_the_true_graph():
    x, v, truth = _linear_system(seed=4, n=600, noise=0.2)
    w_true = np.linalg.lstsq(x - x.mean(0), v - v.mean(0), rcond=None)[0].T * truth
    model = ep.ExactParentPosterior(4, temperature=0.05, edge_prior=0.2, ridge=1e-3).fit(x, v)
    samples = model.sample(200, seed=1)
    w = model.coefficients(samples)
    assert ((w != 0) == (samples > 0)).all()
    # on the true graph the weights are its regression weights (rows are children)
    on_truth = model.coefficients(truth[None].astype(np.uint8))[0]
    np.testing.assert_allclose(on_truth, w_true, atol=0.02)
    mean_w, positive = ep.edge_sign_summary(samples, w)
    sure = model.edge_probability_ > 0.9
    assert sure.sum() >= truth.sum() - 1
    assert (np.sign(mean_w[sure]) == np.sign(w_true[sure])).all()
    assert ((positive[sure] > 0.5) == (w_true[sure] > 0)).all()
    assert np.isnan(positive[(samples.sum(0) == 0)]).all()
    # a graph with a wrong extra parent gets its own refit, not the true graph's weights
    extra = truth.copy()
    j = int(np.flatnonzero(~truth[0])[0])
    extra[0, j] = True
    w_extra = model.coefficients(extra[None].astype(np.uint8))[0]
    assert w_extra[0, j] != 0 and abs(w_extra[0, j]) < 0.1


def _fit_from_data(x, v, groups=None, **kw):
    res = ep.held_out_residuals(x, v, groups=groups, seed=0)
    s2 = ep.noise_variance(res)
    n_eff = ep.effective_sample_size(x, res, groups=groups)
    stats = ep.sufficient_statistics(x, v)
    eb = ep.empirical_bayes(stats, ep.parent_sets(x.shape[1], 3), s2, n_eff, **kw)
    post = ep.ExactParentPosterior(3, eb["temperature"], eb["edge_prior"], eb["ridge"])
    return eb, s2, post.fit_statistics(stats)


def test_evidence_recovers_the_planted_noise_level_with_many_cells():
    # the Gaussian normaliser -n/2 log sigma^2 is what stops the evidence from always
    # preferring the largest noise (which flattens every -J / T^2 term)
    x, v, _ = _linear_system(2, n=400, d=6, noise=0.5)
    eb, _, _ = _fit_from_data(x, v)
    assert np.allclose(eb["noise_variance"], 0.25, rtol=0.35)
    assert 0.4 <= eb["noise_scale"] <= 1.5
    scales = {g["noise_scale"] for g in eb["grid"]}
    assert min(scales) < 0.1 and max(scales) > 1.5          # the search spans both sides


def test_few_cells_noise_is_rescaled_down_and_the_posterior_is_not_emptied():
    # 24 cells, 10 genes: held-out residuals of a fit on every gene carry the fit's own
    # estimation error, so the raw estimate overstates the noise and a posterior built on
    # it keeps almost no edges. The evidence must shrink it and recover the planted edges.
    from workbench.tools import grn_synthetic as syn
    from workbench.tools.grn_metrics import edge_auc

    aucs, fixed_aucs = [], []
    for seed in (0, 1):
        sim = syn.simulate_panel("linear", p=10, n_traj=12, noise=0.6, seed=13 + seed)
        x, v, g = sim["x"], sim["v"], np.asarray(sim["trajectory"])
        truth = np.asarray(sim["adjacency"]) > 0
        off = ~np.eye(10, dtype=bool)
        eb, s2, post = _fit_from_data(x, v, groups=g)
        _, _, fixed = _fit_from_data(x, v, groups=g, noise_scales=(1.0,))
        assert eb["noise_scale"] < 0.5
        assert post.edge_probability_.sum() > 2 * fixed.edge_probability_.sum()
        aucs.append(edge_auc(post.edge_probability_, truth, off)["auroc"])
        fixed_aucs.append(edge_auc(fixed.edge_probability_, truth, off)["auroc"])
    assert np.mean(aucs) > np.mean(fixed_aucs) + 0.03
    assert min(aucs) > 0.8
