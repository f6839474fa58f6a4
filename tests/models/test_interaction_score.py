"""The graded separability score under a nonlinear map: its interval keeps its coverage
where the former Gaussian-only parametric null loses its level; degenerate embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models.interaction_scenarios import simulate_pairs
from workbench.models.interaction_tests import equalize_groups, separability_score
from workbench.models.kl_additivity import kl_additivity_score

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _level_held(rejected: np.ndarray, alpha: float = 0.05) -> bool:
    """The check every calibrated readout must pass on null pairs: a rejection rate whose
    one-sided 95% binomial bound is not far above alpha (generous at 30 pairs)."""
    k, n = int(np.sum(rejected)), len(rejected)
    return (k - 1.645 * np.sqrt(n * alpha * (1 - alpha))) / n <= alpha


def test_score_interval_keeps_coverage_where_the_gaussian_null_does_not():
    # latent-disjoint (separable) pairs seen through per-coordinate sinh / exp maps
    groups, units, _ = simulate_pairs(30, map="monotone", n=40, seed=3)
    r = kl_additivity_score(groups, units, n_bootstrap=20, seed=0)
    excludes_zero = (r.ci_low > 0) | (r.ci_high < 0)
    assert np.isfinite(r.ci_low).all() and np.isnan(r.p_value).all()
    assert _level_held(excludes_zero)
    assert (1 - excludes_zero.mean()) >= 0.9  # 95% intervals cover the null value 0
    # the former default: a parametric null that assumes Gaussian coordinates
    keep = [g for g in groups
            if min(len(g["a"]), len(g["b"]), len(g["ab"]), len(g["ctrl"]) // 2) >= 20]
    S = equalize_groups(keep, 20, need={"ctrl": 2}, seed=0)[0]
    gauss = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], n_null=200,
                               n_bootstrap=0, seed=0)
    assert len(keep) >= 20
    assert not _level_held(gauss.p_value < 0.05)  # the same check catches the broken null
    # ... and on Gaussian latents it holds, so the check is not simply strict
    g0, _, _ = simulate_pairs(30, map="gaussian", n=40, seed=3)
    keep0 = [g for g in g0
             if min(len(g["a"]), len(g["b"]), len(g["ab"]), len(g["ctrl"]) // 2) >= 20]
    S0 = equalize_groups(keep0, 20, need={"ctrl": 2}, seed=0)[0]
    assert _level_held(separability_score(S0["ctrl"], S0["a"], S0["b"], S0["ab"], n_null=200,
                                          n_bootstrap=0, seed=0).p_value < 0.05)


def test_score_is_finite_with_dead_units_and_few_controls():
    """An embedding unit constant in the controls that a perturbation switches on, and
    fewer controls than coordinates (rank-deficient PCA), used to give NaN scores."""
    rng = np.random.default_rng(0)
    d = 40
    g = {c: rng.normal(size=(k, d)).astype(np.float32)
         for c, k in (("ctrl", 20), ("a", 12), ("b", 12), ("ab", 12))}
    for c in ("ctrl", "a", "b", "ab"):
        g[c][:, :5] = 0.0  # dead in every condition ...
    for c in ("a", "ab"):
        g[c][:, 0] = 3.0 + rng.random(len(g[c]))  # ... unless A switches unit 0 on
        g[c][:, 6] += 2.0
    u = {c: np.array([f"{c}{i % (4 if c == 'ctrl' else 2)}" for i in range(len(g[c]))])
         for c in g}
    r = kl_additivity_score([g], [u], n_bootstrap=10, seed=0)
    assert np.isfinite(r.statistic).all() and np.isfinite(r.ci_low).all()
    kls = np.array([r.terms[k][0] for k in ("kl_ab", "kl_ctrl_ctrl", "kl_a", "kl_b")])
    # unscaled dead units or near-zero components gave KLs in the hundreds (|S| ~ 360)
    assert np.isfinite(kls).all() and np.abs(kls).max() < 20 and abs(r.statistic[0]) < 20
