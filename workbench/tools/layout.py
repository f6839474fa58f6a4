"""The 2-D layout of an embedding, computed once by the step that writes it.

UMAP (McInnes et al. 2018, "UMAP: Uniform Manifold Approximation and Projection",
arXiv 1802.03426; package ``umap-learn``) with the step's own seed, which also makes it
single-threaded and reproducible. Where umap-learn is not installed, or there are too few
points for a neighbour graph, the first two principal axes are used instead and the
reason is recorded. Views read the stored layout and never recompute it.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError

#: Below this many points a neighbour graph says little: PCA is used.
MIN_UMAP_POINTS = 30
METHODS = ("auto", "umap", "pca")


def pca_2d(X) -> np.ndarray:
    """The first two principal components (signs fixed: largest loading positive).

    Parameters
    ----------
    X : array_like
        ``(n, d)`` points.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float32 (zero-padded when ``d < 2``).
    """
    X = np.asarray(X, dtype=np.float64)
    X = X - X.mean(0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2][np.arange(min(2, len(vt))), np.abs(vt[:2]).argmax(1)])[:, None]
    out = X @ vt.T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out.astype(np.float32)


def layout_2d(X, *, method: str = "auto", seed: int = 0,
              n_neighbors: int = 15) -> tuple[np.ndarray, dict]:
    """``(coords (n, 2), info)``; ``info`` says which method ran, its obsm key and why.

    Parameters
    ----------
    X : array_like
        ``(n, d)`` points.
    method : str
        ``"auto"`` (UMAP, else PCA with the reason), ``"umap"`` (an error when UMAP cannot
        run) or ``"pca"``.
    seed : int
        UMAP's random state.
    n_neighbors : int
        UMAP neighbours (at most ``n - 1``).

    Returns
    -------
    coords : numpy.ndarray
        ``(n, 2)`` float32.
    info : dict
        ``method``, ``key`` (``"X_umap"`` or ``"X_pca"``), ``seed``, ``note`` (and
        ``n_neighbors`` for UMAP).
    """
    if method not in METHODS:
        raise ValidationError(f"unknown layout {method!r}.", f"use one of {METHODS}.")
    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    if method != "pca":
        note = None
        if n < MIN_UMAP_POINTS:
            note = f"{n} points are too few for a UMAP neighbour graph (< {MIN_UMAP_POINTS})"
        else:
            try:
                import umap
            except ImportError:
                note = "umap-learn is not installed (pip install 'workbench[layout]')"
        if note is None:
            k = int(min(n_neighbors, n - 1))
            xy = umap.UMAP(n_components=2, n_neighbors=k, random_state=int(seed),
                           n_jobs=1).fit_transform(X).astype(np.float32)
            return xy, {"method": "umap", "key": "X_umap", "n_neighbors": k, "seed": int(seed),
                        "note": "UMAP of X"}
        if method == "umap":
            raise ValidationError(f"a UMAP layout was asked for, but {note}.",
                                  "install umap-learn or use --layout pca.")
    else:
        note = "PCA asked for"
    return pca_2d(X), {"method": "pca", "key": "X_pca", "seed": int(seed),
                       "note": f"first two principal axes of X ({note})"}
