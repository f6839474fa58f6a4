"""Linear probes that choose the transformer block whose features carry the most biology.

The idea (ViTally Consistent, Kenyon-Dean et al. 2024, arXiv 2411.02572): the last block of
a masked autoencoder is tuned to repaint pixels, not to separate phenotypes; an earlier
block is often better. Train a class-balanced logistic regression on each block's features
and keep the block with the best cross-validated *balanced accuracy*. The folds are grouped
(by plate, batch, experiment or field of view): a probe tested on a plate it has seen could
win by recognising the plate instead of the phenotype.

Predictions are pooled out of fold (each sample is predicted by the probe that did not see
its group) and scored once, so that a fold whose test part holds a single class still
counts correctly. numpy and scikit-learn only.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError


def grouped_folds(groups, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs where no group is on both sides.

    Parameters
    ----------
    groups : array_like
        A group per sample (at least two distinct).
    n_splits : int
        Folds wanted (at most the number of groups).

    Returns
    -------
    list of tuple of numpy.ndarray
        ``(train, test)`` indices per fold (scikit-learn's ``GroupKFold``).
    """
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups).astype(str)
    ng = len(np.unique(groups))
    if ng < 2:
        raise ValidationError(
            f"the probe folds are grouped by plate/batch/field, but there is only {ng} group.",
            "probe on data with at least two plates, batches or fields (grouped folds keep a "
            "probe from winning by recognising them).")
    return list(GroupKFold(n_splits=min(n_splits, ng)).split(np.zeros(len(groups)), groups=groups))


def probe_accuracy(X, y, groups, *, n_splits: int = 5, C: float = 1.0,
                   max_dim: int | None = 128, seed: int = 0) -> dict:
    """Grouped cross-validated balanced accuracy of a linear probe on ``X`` for labels ``y``.

    Features are standardised and, when there are more than allowed, reduced by PCA within
    each training fold (:func:`reduction_size`); the logistic regression is class-balanced.

    Parameters
    ----------
    X : array_like
        ``(n, d)`` features.
    y : array_like
        Labels, one per sample.
    groups : array_like
        Fold groups, one per sample.
    n_splits : int
        Grouped folds.
    C : float
        Inverse regularisation strength.
    max_dim : int, optional
        Most PCA components kept (``None``: no cap beyond ``n_train - 1``).
    seed : int
        PCA random state.

    Returns
    -------
    dict
        ``balanced_accuracy`` (pooled out of fold), ``fold_accuracy``, ``chance`` (one over
        the number of classes), ``n_folds``, ``n_components`` per fold and ``reduction`` (in
        words).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(str)
    pred = np.empty(len(y), dtype=object)
    per_fold, comps = [], []
    for train, test in grouped_folds(groups, n_splits):
        steps = [StandardScaler()]
        k = reduction_size(len(train), X.shape[1], max_dim)
        comps.append(k)
        if k < X.shape[1]:
            steps.append(PCA(k, random_state=seed))
        if len(np.unique(y[train])) < 2:
            pred[test] = y[train][0]
        else:
            clf = make_pipeline(*steps, LogisticRegression(C=C, max_iter=200, tol=1e-3,
                                                           class_weight="balanced"))
            pred[test] = clf.fit(X[train], y[train]).predict(X[test])
        per_fold.append(float(np.mean(pred[test] == y[test])))
    reduced = [c for c in comps if c < X.shape[1]]
    return {"balanced_accuracy": float(balanced_accuracy_score(y, pred.astype(str))),
            "fold_accuracy": per_fold, "chance": 1.0 / len(np.unique(y)),
            "n_folds": len(per_fold), "n_components": comps,
            "reduction": (f"PCA to {min(reduced)}-{max(reduced)} components (of {X.shape[1]} "
                          f"dims; at most max_dim={max_dim} and n_train-1)" if reduced
                          else f"none ({X.shape[1]} dims kept)")}


def reduction_size(n_train: int, dims: int, max_dim: int | None = 128) -> int:
    """Components the probe keeps: ``min(max_dim, n_train - 1, dims)`` (at least 1).

    A PCA cannot have more components than training samples minus one, so on a small fold
    (132 NF1 crops split by field) a fixed 128 would fail; the probe shrinks instead.

    Parameters
    ----------
    n_train : int
        Training samples of the fold.
    dims : int
        Feature dimensions.
    max_dim : int, optional
        Cap on the components (``None`` or 0: none).

    Returns
    -------
    int
        The number of components.
    """
    k = dims if not max_dim else min(int(max_dim), dims)
    return max(1, min(k, int(n_train) - 1))


def probe_blocks(features, y, groups, *, prepare=None, **kw) -> dict:
    """Probe every block of ``features`` ``(n, n_blocks, D)``; pick the best (1-based).

    ``prepare(X) -> X`` (e.g. TVN on controls) is applied to each block first, as the card
    prescribes the same post-processing before probing as after.

    Parameters
    ----------
    features : array_like
        ``(n, n_blocks, D)``.
    y : array_like
        Labels, one per sample.
    groups : array_like
        Fold groups, one per sample.
    prepare : callable, optional
        ``prepare(X) -> X`` applied to each block's ``(n, D)`` features first.
    **kw
        Passed to :func:`probe_accuracy`.

    Returns
    -------
    dict
        ``blocks`` (1-based), ``balanced_accuracy`` per block, ``best_block``, ``chance``,
        ``fold_accuracy`` per block and ``reduction``.
    """
    F = np.asarray(features)
    if F.ndim != 3:
        raise ValidationError(f"block features have shape {F.shape}; expected (n, blocks, dim).")
    curve, folds, reduction = [], [], ""
    for b in range(F.shape[1]):
        Xb = prepare(F[:, b]) if prepare else F[:, b]
        r = probe_accuracy(Xb, y, groups, **kw)
        curve.append(r["balanced_accuracy"])
        folds.append(r["fold_accuracy"])
        reduction = r["reduction"]
    curve = np.asarray(curve)
    return {"blocks": np.arange(1, F.shape[1] + 1), "balanced_accuracy": curve,
            "best_block": int(np.argmax(curve)) + 1, "chance": 1.0 / len(np.unique(np.asarray(y))),
            "fold_accuracy": folds, "reduction": reduction}
