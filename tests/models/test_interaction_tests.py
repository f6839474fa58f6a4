"""Interaction tests against planted ground truth (the demo world's latent states)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.models.interaction_tests import (
    benjamini_hochberg, disjointness_test, equalize_groups, interaction_shift,
    separability_score,
)

N = 18  # cells per condition, as in the quick demo


def _draw(world, pairs, reps, n=N, seed=0):
    from workbench.data.simulate import sample_latents

    rng = np.random.default_rng(seed)
    groups, names = [], []
    for _ in range(reps):
        for p in pairs:
            a, b = p.split("+")
            groups.append({"ctrl": sample_latents(world, "control", 2 * n, rng),
                           "a": sample_latents(world, a, n, rng),
                           "b": sample_latents(world, b, n, rng),
                           "ab": sample_latents(world, p, n, rng, survival=False)})
            names.append(p)
    stacked, n_used = equalize_groups(groups, n, need={"ctrl": 2}, names=names, seed=seed)
    return stacked, n_used


@pytest.fixture(scope="module")
def world():
    from workbench.data.simulate import make_world

    return make_world(seed=0, size="quick")


@pytest.fixture(scope="module")
def by_type(world):
    out: dict[str, list[str]] = {}
    for p in world.ground_truth()["all_pairs"]:
        out.setdefault(p["type"], []).append(p["pair"])
    return out


def _rates(world, pairs, reps, seed, kernel="additive_rbf", sep=True):
    S, n = _draw(world, pairs, reps, seed=seed)
    d = disjointness_test(S["ctrl"][:, :n], S["a"], S["b"], S["ab"], kernel=kernel,
                          n_permutations=200, seed=seed)
    s = None
    if sep:
        s = separability_score(S["ctrl"], S["a"], S["b"], S["ab"], n_null=200,
                               n_bootstrap=0, seed=seed)
    return d, s


@pytest.mark.slow
def test_null_fpr_power_and_pair_types(world, by_type):
    # null for both tests: additive effects on disjoint latent properties
    null = by_type["additive_disjoint"]
    reps = int(np.ceil(300 / len(null)))
    d, s = _rates(world, null, reps, seed=1)
    assert len(d.p_value) >= 200
    fpr = float((d.p_value < 0.05).mean())
    sep_fpr = float((s.p_value < 0.05).mean())
    print(f"FPR on {len(d.p_value)} null pairs: disjointness {fpr:.3f}, separability "
          f"{sep_fpr:.3f}")
    assert 0.02 <= fpr <= 0.08
    assert 0.02 <= sep_fpr <= 0.08
    # planted interactions (buffering, synergy, synthetic lethality at full survival)
    inter = by_type["buffering"] + by_type["synergy"] + by_type["synthetic_lethal"]
    d_i, s_i = _rates(world, inter, 10, seed=2)
    power, sep_power = float((d_i.p_value < 0.05).mean()), float((s_i.p_value < 0.05).mean())
    print(f"power on {len(d_i.p_value)} interacting draws: disjointness {power:.3f}, "
          f"separability {sep_power:.3f}")
    assert power >= 0.8 and sep_power >= 0.7
    # additive on shared properties: neither disjoint nor separable, so both reject often
    d_s, s_s = _rates(world, by_type["additive_shared"], 5, seed=3)
    shared = float((d_s.p_value < 0.05).mean()), float((s_s.p_value < 0.05).mean())
    print(f"additive-shared rejection: disjointness {shared[0]:.3f}, separability "
          f"{shared[1]:.3f}")
    assert shared[0] > 3 * fpr and shared[1] > 3 * sep_fpr
    # the linear kernel tests additivity in the mean only: shared-additive pairs are null there
    d_lin, _ = _rates(world, by_type["additive_shared"], 5, seed=3, kernel="linear", sep=False)
    assert (d_lin.p_value < 0.05).mean() <= 0.15


def test_unbiased_mmd_matches_direct_formula():
    rng = np.random.default_rng(0)
    ctrl, a, b, ab = (rng.normal(size=(1, 6, 3)) for _ in range(4))
    ab = ab + 1.0
    r = disjointness_test(ctrl, a, b, ab, kernel="linear", n_permutations=10)
    # D = mean over i != j of <psi_i, psi_j>, psi_i = ab_i + ctrl_i - a_i - b_i (linear kernel / d)
    psi = ab[0] + ctrl[0] - a[0] - b[0]
    g = psi @ psi.T / 3
    direct = (g.sum() - np.trace(g)) / (6 * 5)
    assert r.statistic[0] == pytest.approx(direct, rel=1e-4, abs=1e-6)
    assert r.params["kernel"] == "linear" and r.params["n_per_condition"] == 6
    assert r.params["seed"] == 0 and r.params["n_permutations"] == 10
    # linear-kernel D = 4 MMD^2 is close to ||interaction shift||^2 / d for large samples
    shift = interaction_shift(ctrl, a, b, ab)
    assert shift.shape == (1, 3)


def test_strong_interaction_detected_and_effect_ordering():
    rng = np.random.default_rng(1)
    P, n, d = 6, 20, 4
    ctrl, a, b, ab = (rng.normal(size=(P, n, d)) for _ in range(4))
    a[..., 0] += 1.5
    b[..., 1] += 1.5
    ab[..., 0] += 1.5
    ab[..., 1] += 1.5
    ab[3:, ..., 2] += 3.0  # last three pairs interact
    r = disjointness_test(ctrl, a, b, ab, n_permutations=300, seed=0)
    assert (r.p_value[3:] < 0.05).all() and (r.p_value[:3] > 0.05).all()
    assert r.effect_size[3:].min() > r.effect_size[:3].max()


def test_equalize_and_bad_inputs():
    rng = np.random.default_rng(0)
    g = [{"ctrl": rng.normal(size=(30, 2)), "a": rng.normal(size=(12, 2)),
          "b": rng.normal(size=(15, 2)), "ab": rng.normal(size=(9, 2))}]
    S, n = equalize_groups(g, need={"ctrl": 2})
    assert n == 9 and S["ctrl"].shape == (1, 18, 2) and S["ab"].shape == (1, 9, 2)
    with pytest.raises(ValueError, match="G1\\+G2"):
        equalize_groups(g, 20, names=["G1+G2"])
    with pytest.raises(ValueError, match="share one"):
        disjointness_test(np.zeros((1, 5, 2)), np.zeros((1, 4, 2)), np.zeros((1, 5, 2)),
                          np.zeros((1, 5, 2)))


def test_benjamini_hochberg():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    q = benjamini_hochberg(p)
    # sorted p 0.01, 0.03, 0.04, 0.5 -> p m / rank 0.04, 0.06, 0.0533, 0.5 -> running min
    # from the right 0.04, 0.0533, 0.0533, 0.5
    assert np.allclose(q[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    assert np.isnan(q[4])


@pytest.mark.parametrize("kernel,parts", [("additive_rbf", None), ("additive_rbf", 2),
                                          ("rbf", None)])
def test_batched_statistics_match_a_direct_per_permutation_loop(kernel, parts):
    """The block-symmetric Gram and the one-matmul permutations give, pair by pair and
    permutation by permutation, what relabelling and recomputing gives."""
    import torch

    from workbench.models.interaction_tests import median_bandwidths

    rng = np.random.default_rng(3)
    P, n, d, B = 3, 5, 4, 30
    ctrl, a, b, ab = (rng.normal(size=(P, n, d)).astype(np.float32) for _ in range(4))
    ab[2, :, 1] += 2.0
    r = disjointness_test(ctrl, a, b, ab, kernel=kernel, parts=parts, n_permutations=B,
                          seed=4, chunk_pairs=2)
    labels = np.arange(d) * (parts or d) // d
    if kernel == "rbf":
        labels = np.zeros(d, int)
    assign = (labels[:, None] == np.unique(labels)[None]).astype(np.float32)
    sig = median_bandwidths(ctrl.reshape(-1, d), assign, seed=4)
    gen = torch.Generator().manual_seed(4)
    eps = (torch.randint(0, 2, (B + 1, n), generator=gen) * 2 - 1).numpy()[1:]
    sign = np.repeat([1.0, 1.0, -1.0, -1.0], n)
    for p in range(P):
        z = np.concatenate([ab[p], ctrl[p], a[p], b[p]]).astype(np.float64)
        per_part = ((z[:, None, :] - z[None, :, :]) ** 2) @ assign
        k = np.exp(-per_part / (2 * sig)).mean(-1)

        def stat(order, k=k):
            h = (k[np.ix_(order, order)] * np.outer(sign, sign)).reshape(4, n, 4, n).sum((0, 2))
            return (h.sum() - np.trace(h)) / (n * (n - 1))

        quad = np.arange(4 * n).reshape(4, n)
        obs = stat(quad.reshape(-1))
        null = np.array([stat(np.where(e > 0, quad, quad[[2, 3, 0, 1]]).reshape(-1))
                         for e in eps])
        assert r.statistic[p] == pytest.approx(obs, rel=1e-4, abs=1e-6)
        tol = 1e-5 * max(abs(obs), np.abs(null).max())
        assert r.p_value[p] == pytest.approx((1 + (null >= obs - tol).sum()) / (B + 1))
