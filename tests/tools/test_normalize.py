"""TVN on controls, aggregation and cosine maps, against planted batch effects."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.tools.normalize import TVN, aggregate, cosine_matrix, standardize_on_controls, tvn


def planted(seed=0, n=600, d=8):
    """Two batches with an offset and a different scale; perturbation 'A' shifts dim 0."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    batch = np.repeat(["b1", "b2"], n // 2)
    ctrl = np.tile(np.arange(n // 2) % 3 == 0, 2)
    pert = np.where(ctrl, "ctrl", np.where(np.arange(n) % 2 == 0, "A", "B"))
    Z = rng.normal(size=(n, d))
    Z[pert == "A", 0] += 3.0
    X = Z @ mix
    X[batch == "b2"] = X[batch == "b2"] * 1.5 + 4.0
    return X, ctrl, batch, pert


def test_controls_are_whitened_and_batch_offsets_removed():
    X, ctrl, batch, pert = planted()
    W = tvn(X, ctrl, batch)
    np.testing.assert_allclose(np.cov(W[ctrl], rowvar=False), np.eye(8), atol=0.05)
    for b in ("b1", "b2"):
        assert np.abs(W[ctrl & (batch == b)].mean(0)).max() < 1e-6
    # the same perturbation looks the same in both batches after TVN, not before
    a1, a2 = (W[(pert == "A") & (batch == b)].mean(0) for b in ("b1", "b2"))
    r1, r2 = (X[(pert == "A") & (batch == b)].mean(0) for b in ("b1", "b2"))
    assert np.linalg.norm(a1 - a2) < 0.3 * np.linalg.norm(a1)
    assert np.linalg.norm(r1 - r2) > np.linalg.norm(r1 - X[ctrl & (batch == "b1")].mean(0))
    # global TVN (EFAAR default) leaves the batch offset in place
    G = TVN(batch_center=False).fit_transform(X, ctrl)
    assert np.abs(G[ctrl & (batch == "b2")].mean(0)).max() > 0.5


def test_fit_on_controls_only_then_apply():
    X, ctrl, batch, pert = planted()
    t = TVN().fit(X, ctrl, batch)
    X2 = X.copy()
    X2[~ctrl] += 100.0            # what perturbed samples hold does not move the normaliser
    t2 = TVN().fit(X2, ctrl, batch)
    np.testing.assert_allclose(t.transform(X, batch), t2.transform(X, batch), atol=1e-5)


def test_coral_aligns_batch_covariances():
    X, ctrl, batch, pert = planted()
    X[batch == "b2", :3] *= 3.0
    W = TVN(coral=True, coral_reg=0.01).fit_transform(X, ctrl, batch)
    c1, c2 = (np.cov(W[ctrl & (batch == b)], rowvar=False) for b in ("b1", "b2"))
    assert np.abs(c1 - c2).max() < 0.1


def test_few_controls_many_features_stays_finite_and_keeps_signal():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 300))
    ctrl = np.zeros(120, bool)
    ctrl[:20] = True
    X[60:, 5] += 4.0
    W = tvn(X, ctrl)
    assert W.shape == (120, 300) and np.isfinite(W).all()
    t = TVN().fit(X, ctrl)
    assert t.reg_ > 0                       # rank deficient: ridge switched on
    names, P, n = aggregate(W, np.where(np.arange(120) < 60, "x", "y"))
    assert np.linalg.norm(P[1]) > 1.5 * np.linalg.norm(P[0])


def test_errors_name_the_problem():
    X, ctrl, batch, pert = planted()
    with pytest.raises(ValidationError, match="control"):
        tvn(X, np.zeros(len(X), bool))
    nob2 = ctrl & (batch == "b1")
    with pytest.raises(ValidationError, match="'b2' has no controls"):
        tvn(X, nob2, batch)
    with pytest.raises(ValidationError, match="CORAL"):
        TVN(coral=True).fit(X, ctrl)


def test_aggregate_and_cosine():
    X = np.array([[1, 0], [3, 0], [0, 2], [5, 5]], float)
    names, P, n = aggregate(X, ["a", "a", "b", "ctrl"], drop=["ctrl"])
    assert list(names) == ["a", "b"] and list(n) == [2, 1]
    np.testing.assert_allclose(P, [[2, 0], [0, 2]])
    np.testing.assert_allclose(cosine_matrix(P), [[1, 0], [0, 1]], atol=1e-7)
    _, M, _ = aggregate(X, ["a", "a", "a", "b"], how="median")
    np.testing.assert_allclose(M[0], [1, 0])
    S = standardize_on_controls(X, [True, True, True, False])
    assert np.abs(S[:3].mean(0)).max() < 1e-6


def test_aggregation_levels_qc_and_dose():
    import pandas as pd

    from workbench.tools.normalize import aggregate_obs, aggregate_rows, qc_mask

    obs = pd.DataFrame({"perturbation": ["A", "A", "A", "B", "B", "C"],
                        "plate": ["p1"] * 6, "well": ["w1", "w1", "w2", "w3", "w3", "w4"],
                        "cell_id": ["c1", "c1", "c2", "c3", "c4", "c5"],
                        "dose": [1, 1, 2, 1, 1, 1], "no_cell": [0, 0, 0, 0, 1, 0]})
    X = np.arange(12, dtype=float).reshape(6, 2)
    codes, wells = aggregate_obs(obs, "well")
    assert list(wells.index) == ["p1_w1", "p1_w2", "p1_w3", "p1_w4"]
    assert list(wells["n_crops"]) == [2, 1, 2, 1] and "cell_id" not in wells.columns
    W = aggregate_rows(X, codes, len(wells))
    np.testing.assert_allclose(W[0], X[:2].mean(0))
    M = aggregate_rows(np.array([[0.0], [0.0], [9.0], [1.0], [5.0], [7.0]]),
                       np.array([0, 0, 0, 1, 1, 2]), 3, "median")
    np.testing.assert_allclose(M.ravel(), [0.0, 3.0, 7.0])
    _, cells = aggregate_obs(obs, "cell")
    assert len(cells) == 5
    keep, rep = qc_mask(obs, exclude_column="no_cell")
    codes_qc, wells_qc = aggregate_obs(obs, "well", keep=keep)
    assert codes_qc[4] == -1 and list(wells_qc["n_crops"]) == [2, 1, 1, 1]
    np.testing.assert_allclose(aggregate_rows(X, codes_qc, 4)[2], X[3])
    inten = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 50.0])
    keep2, rep2 = qc_mask(obs, inten, max_intensity_z=5)
    assert not keep2[5] and keep2[:5].all() and rep2["excluded_by_intensity"] == 1
    _, doses = aggregate_obs(obs, "perturbation", dose_key="dose")
    assert len(doses) == 4                   # A@1, A@2, B@1, C@1
    with pytest.raises(ValidationError, match="cell_id"):
        aggregate_obs(obs.drop(columns="cell_id"), "cell")


def test_arm_centering_removes_a_shared_arm_offset_only_where_enough_genes_are_silent():
    from workbench.tools.normalize import arm_centering

    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(90)]
    arms = {g: ("1p" if i < 40 else "2q" if i < 70 else "3p") for i, g in enumerate(genes)}
    P = rng.normal(0, 0.1, (90, 4))
    P[:40] += np.array([2.0, 0, 0, 0])          # truncation signature of arm 1p
    P[70:] += np.array([0, 2.0, 0, 0])          # arm 3p: only 5 silent genes, not centred
    silent = set(genes[:25]) | set(genes[40:45]) | set(genes[70:75])
    out, used = arm_centering(P, genes, arms, silent)
    assert used == {"1p": 25}
    assert np.abs(out[:40, 0].mean()) < 0.05 and np.allclose(out[40:], P[40:], atol=1e-6)
    cos_before = cosine_matrix(P[:40]).mean()
    assert cosine_matrix(out[:40]).mean() < cos_before - 0.5


def test_perturbation_map_applies_the_arm_correction():
    import pandas as pd

    from workbench.tools.embed import perturbation_map

    rng = np.random.default_rng(1)
    genes = [f"g{i}" for i in range(30)]
    obs = pd.DataFrame({"perturbation": np.repeat(["NT"] + genes, 2)})
    X = rng.normal(0, 0.1, (len(obs), 3))
    X[2:2 + 2 * 25, 0] += 3.0                       # g0..g24 share arm 1p's signature
    arms = {g: "1p" if i < 25 else "2q" for i, g in enumerate(genes)}
    plain = perturbation_map(X, obs, "NT")
    fixed = perturbation_map(X, obs, "NT", arm_correction=(arms, set(genes[:22])))
    assert fixed.uns["workbench"]["arm_correction"]["arms"] == ["1p"]
    on = plain.obs_names.isin(genes[:25])
    assert plain.X[on, 0].mean() > 2.5 and abs(fixed.X[on, 0].mean()) < 0.2
