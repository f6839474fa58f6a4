"""RNA velocity from spliced and unspliced counts (steady-state model), and gene selection.

**Velocity.** The steady-state ("deterministic") model of velocyto (La Manno et al. 2018,
*Nature* 560:494) and scVelo (Bergen et al. 2020, *Nat Biotechnol* 38:1408): unspliced
``u`` and spliced ``s`` mRNA obey ``ds/dt = beta u - gamma s``. Cells at steady state lie
on ``u = gamma' s`` (``gamma' = gamma / beta``); fitting that line on the cells at the
extremes of each gene's expression and reading each cell's distance from it gives the
velocity ``v = u - gamma' s``, in units of unspliced counts. The recipe here:

1. scale each cell's spliced and unspliced counts to the median library size (of each);
2. smooth both over the ``n_neighbors`` nearest cells in a PCA of ``log1p`` spliced
   expression ("first-order moments" ``Ms``, ``Mu``);
3. per gene, least squares through the origin of ``Mu`` on ``Ms`` over the cells in the
   lowest and highest ``quantile`` of ``Ms``;
4. ``velocity = Mu - gamma' Ms``.

**Gene selection.** Named genes (an unknown name raises
:class:`~workbench.errors.UnknownGeneError`), transcription-factor lists, or highly variable
genes by normalised dispersion of ``log1p`` expression.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import UnknownGeneError, ValidationError


def _dense(m) -> np.ndarray:
    return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=np.float64)


def _normalise(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(1, keepdims=True)
    target = np.median(totals[totals > 0]) if np.any(totals > 0) else 1.0
    return counts * (target / np.maximum(totals, 1e-12))


def smooth_moments(spliced: np.ndarray, unspliced: np.ndarray, n_neighbors: int = 30,
                   n_pcs: int = 30, seed: int = 0,
                   normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """kNN-averaged (library-size normalised) spliced and unspliced counts (``Ms``, ``Mu``).

    Parameters
    ----------
    spliced, unspliced : array_like
        Cells x genes counts (dense or sparse), the same shape.
    n_neighbors : int
        Cells averaged per cell, itself included (at most the number of cells; 1 or fewer:
        no smoothing).
    n_pcs : int
        Principal components of ``log1p`` spliced expression the neighbours are found in.
    seed : int
        PCA random state.
    normalize : bool
        Scale each layer to its median library size first.

    Returns
    -------
    Ms, Mu : numpy.ndarray
        Cells x genes smoothed spliced and unspliced counts.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    s, u = _dense(spliced), _dense(unspliced)
    if normalize:
        s, u = _normalise(s), _normalise(u)
    n = s.shape[0]
    k = int(min(n_neighbors, n))
    if k <= 1:
        return s, u
    logs = np.log1p(s)
    n_comp = int(min(n_pcs, n - 1, logs.shape[1]))
    emb = PCA(n_components=n_comp, random_state=seed).fit_transform(logs) if n_comp >= 1 else logs
    idx = NearestNeighbors(n_neighbors=k).fit(emb).kneighbors(emb, return_distance=False)
    from scipy.sparse import csr_matrix

    rows = np.repeat(np.arange(n), k)
    avg = csr_matrix((np.full(n * k, 1.0 / k), (rows, idx.ravel())), shape=(n, n))
    return np.asarray(avg @ s), np.asarray(avg @ u)


def steady_state_velocity(spliced, unspliced, *, n_neighbors: int = 30, n_pcs: int = 30,
                          quantile: float = 0.05, seed: int = 0,
                          normalize: bool = True) -> dict[str, np.ndarray]:
    """Steady-state velocity; returns ``velocity``, ``Ms``, ``Mu`` (cells x genes), ``gamma``.

    Parameters
    ----------
    spliced, unspliced : array_like
        Cells x genes counts, the same shape.
    n_neighbors : int
        Cells averaged per cell (:func:`smooth_moments`).
    n_pcs : int
        Principal components of the neighbour graph.
    quantile : float
        The fit of ``gamma'`` uses the cells in the lowest and highest ``quantile`` of each
        gene's ``Ms``.
    seed : int
        PCA random state.
    normalize : bool
        ``False`` skips library-size scaling (for counts that are already normalised).

    Returns
    -------
    dict
        ``velocity``, ``Ms``, ``Mu`` (float32, cells x genes; velocity in unspliced-count
        units) and ``gamma`` (one ratio ``gamma / beta`` per gene).
    """
    spliced, unspliced = _dense(spliced), _dense(unspliced)
    if spliced.shape != unspliced.shape:
        raise ValidationError(
            f"spliced {spliced.shape} and unspliced {unspliced.shape} counts differ in shape.",
            "give both layers for the same cells and genes.")
    ms, mu = smooth_moments(spliced, unspliced, n_neighbors, n_pcs, seed, normalize)
    gamma = np.zeros(ms.shape[1])
    for g in range(ms.shape[1]):
        s, u = ms[:, g], mu[:, g]
        lo, hi = np.quantile(s, [quantile, 1 - quantile])
        pick = (s <= lo) | (s >= hi)
        denom = float((s[pick] ** 2).sum())
        gamma[g] = float((s[pick] * u[pick]).sum() / denom) if denom > 0 else 0.0
    return {"velocity": (mu - gamma * ms).astype(np.float32), "Ms": ms.astype(np.float32),
            "Mu": mu.astype(np.float32), "gamma": gamma}


def highly_variable_genes(counts, n_top: int = 20, exclude=None) -> np.ndarray:
    """Indices of the ``n_top`` genes with the largest normalised dispersion of log1p expression.

    Dispersion (variance / mean) is given a robust z-score (median and MAD, as in the
    cell_ranger flavour of scanpy) within up to 20 bins of mean expression, so that highly
    expressed genes do not win by their mean alone.

    Parameters
    ----------
    counts : array_like
        Cells x genes counts.
    n_top : int
        Genes wanted (fewer when fewer have a finite dispersion).
    exclude : array_like of bool, optional
        Genes never chosen, one flag per gene.

    Returns
    -------
    numpy.ndarray
        Sorted gene indices.
    """
    x = np.log1p(_normalise(_dense(counts)))
    mean, var = x.mean(0), x.var(0)
    disp = np.where(mean > 0, var / np.maximum(mean, 1e-12), -np.inf)
    n_bins = max(1, min(20, len(mean) // 10))  # at least ~10 genes per bin
    bins = np.digitize(mean, np.quantile(mean, np.linspace(0, 1, n_bins + 1)[1:-1]))
    z = np.full_like(disp, -np.inf)
    for b in np.unique(bins):
        sel = (bins == b) & np.isfinite(disp)
        if sel.sum() > 1:
            med = np.median(disp[sel])
            mad = np.median(np.abs(disp[sel] - med)) * 1.4826
            z[sel] = (disp[sel] - med) / (mad if mad > 0 else 1.0)
        elif sel.sum() == 1:
            z[sel] = 0.0
    if exclude is not None:
        z[np.asarray(exclude, bool)] = -np.inf
    order = np.argsort(-z, kind="stable")
    return np.sort(order[: min(n_top, int(np.isfinite(z).sum()))])


def select_genes(var_names, *, genes=None, tf_list=None, counts=None, n_top: int = 20,
                 min_cells_frac: float = 0.0, detected=None) -> list[str]:
    """Choose the genes of the network.

    Named genes win over a TF list, which wins over highly variable genes.

    Parameters
    ----------
    var_names : sequence of str
        All gene names of the data.
    genes : sequence of str, optional
        Named genes (matched case-insensitively); every one must be present.
    tf_list : sequence of str, optional
        Transcription factors: the ones present in the data (and, when ``detected`` is given,
        detected in at least ``min_cells_frac`` of cells) are kept, ranked by dispersion
        when ``counts`` is given, up to ``n_top``.
    counts : array_like, optional
        Cells x genes counts for highly-variable-gene selection when neither list is given.
    n_top : int
        Genes kept from a TF list or by dispersion.
    min_cells_frac : float
        Smallest fraction of cells a transcription factor must be detected in.
    detected : array_like of float, optional
        Fraction of cells each gene is detected in, aligned to ``var_names``.

    Returns
    -------
    list of str
        The chosen gene names, spelled as in the data.

    Raises
    ------
    UnknownGeneError
        When a named gene is missing, or no transcription factor of the list is present.
    """
    names = [str(g) for g in var_names]
    upper = {n.upper(): n for n in names}
    if genes is not None:
        missing = [g for g in genes if str(g).upper() not in upper]
        if missing:
            raise UnknownGeneError(
                f"gene(s) {', '.join(map(str, missing[:10]))} are not in the data "
                f"({len(names)} genes).",
                "check the spelling (matching ignores case), or choose genes with --tf-list "
                "or --n-top highly variable genes.")
        return [upper[str(g).upper()] for g in genes]
    if tf_list is not None:
        present = [upper[str(t).upper()] for t in tf_list if str(t).upper() in upper]
        if detected is not None and min_cells_frac > 0:
            frac = dict(zip(names, np.asarray(detected, float)))
            present = [g for g in present if frac[g] >= min_cells_frac]
        if not present:
            raise UnknownGeneError("none of the transcription factors given is in the data.",
                                   "give a list that matches the data's gene names.")
        if counts is not None and len(present) > n_top:
            idx = [names.index(g) for g in present]
            keep = highly_variable_genes(_dense(counts)[:, idx], n_top=n_top)
            present = [present[k] for k in keep]
        return present
    if counts is None:
        raise ValidationError("no genes, transcription-factor list or counts to choose from.",
                              "name genes, give a TF list, or pass counts for HVG selection.")
    return [names[k] for k in highly_variable_genes(counts, n_top=n_top)]
