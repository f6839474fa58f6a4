"""The 2-D layout the embed step stores: UMAP with the step's seed, PCA with a note."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.tools.layout import MIN_UMAP_POINTS, layout_2d, pca_2d


def clusters(n=60, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.repeat([0, 1, 2], n // 3)
    X = rng.normal(size=(n, 10)) + 6 * np.eye(10)[lab]
    return X, lab


def test_pca_layout_is_the_top_two_axes_and_tiny_inputs_fall_back_with_a_note():
    X, _ = clusters()
    xy = pca_2d(X)
    ev = np.linalg.eigvalsh(np.cov(X.T))[::-1]
    assert np.var(xy[:, 0], ddof=1) == pytest.approx(ev[0], rel=1e-4)
    assert np.var(xy[:, 1], ddof=1) == pytest.approx(ev[1], rel=1e-4)
    small, info = layout_2d(X[: MIN_UMAP_POINTS - 1], method="auto")
    assert info["method"] == "pca" and info["key"] == "X_pca" and "too few" in info["note"]
    assert small.shape == (MIN_UMAP_POINTS - 1, 2)
    with pytest.raises(ValidationError, match="too few"):
        layout_2d(X[:5], method="umap")
    with pytest.raises(ValidationError, match="unknown layout"):
        layout_2d(X, method="tsne")


@pytest.mark.slow
def test_umap_layout_is_seeded_and_keeps_clusters_apart():
    pytest.importorskip("umap", reason="umap-learn (the layout extra) is not installed")
    X, lab = clusters()
    state = np.random.get_state()[1][:5].copy()
    a, info = layout_2d(X, method="auto", seed=3)
    b, _ = layout_2d(X, method="auto", seed=3)
    assert info["method"] == "umap" and info["key"] == "X_umap"
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.random.get_state()[1][:5], state)   # global RNG untouched
    cent = np.stack([a[lab == k].mean(0) for k in range(3)])
    spread = max(np.linalg.norm(a[lab == k] - cent[k], axis=1).mean() for k in range(3))
    gaps = [np.linalg.norm(cent[i] - cent[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread
