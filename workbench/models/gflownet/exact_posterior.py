"""The exact per-gene posterior over bounded parent sets, by enumeration.

DynGFN's posterior factorises over genes (method card section 1.2), so the target of every
per-node GFlowNet is a distribution over the parent sets of one gene. With at most ``K``
parents per gene there are ``sum_{k <= K} C(d, k)`` sets (17,902 for ``d = 26``, ``K = 4``),
few enough to score every one of them and normalise: the reward posterior ``P_R`` itself,
with no sampler in between. It is the reference the GFlowNet is judged against
(``KL(P_R || Q)``), and a fast path wherever it fits in memory.

**Reward.** Bayesian linear regression of gene ``i``'s velocity on its parents, with weight
prior ``w ~ N(0, tau^2 I)`` and Gaussian noise of variance ``sigma_i^2`` on ``n_eff``
independent observations (Bishop 2006, section 3.5; the same marginal likelihood the BGe
and DiBS linear models use). On the per-sample statistics ``C = X^T X / n`` and
``c_i = X^T v_i / n`` (after centring)::

    log R_i(S) = - J_i(S) / T_i^2  -  1/2 log det(I + C_SS / r)  +  |S| log(pi / (1 - pi))

    J_i(S) = v_i^T v_i / n - c_iS^T (C_SS + r I)^{-1} c_iS,   T_i^2 = 2 sigma_i^2 / n_eff,
    r = sigma^2 / (n_eff tau^2)

The first term is DynGFN's ``MSE / T^2`` (the ridge error at its optimum); the second is the
Occam factor of the marginal likelihood, which a plug-in ridge fit lacks and which is what
keeps extra parents from being free; the third is an independent prior of ``pi`` per edge
(DynGFN's ``lambda / d = log((1 - pi) / pi)``). One ridge ``r`` (from the median noise) is
shared by all genes so that each set's inverse is computed once for every gene.

Because ``C_SS`` does not depend on the child gene, each parent set costs one small
``k x k`` inverse and log-determinant, and all ``d`` genes are scored from it at once.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def n_parent_sets(d: int, max_parents: int) -> int:
    """Number of parent sets of size at most ``max_parents`` over ``d`` candidates.

    Parameters
    ----------
    d : int
        Number of candidate parents.
    max_parents : int
        Largest set size counted (capped at ``d``).

    Returns
    -------
    int
        ``sum_{k <= max_parents} C(d, k)``, the empty set included.
    """
    return sum(math.comb(d, k) for k in range(min(max_parents, d) + 1))


def parent_sets(d: int, max_parents: int) -> list[np.ndarray]:
    """All parent sets, grouped by size: a list of ``(C(d, k), k)`` index arrays.

    Parameters
    ----------
    d : int
        Number of candidate parents.
    max_parents : int
        Largest set size listed (capped at ``d``).

    Returns
    -------
    list of numpy.ndarray
        Entry ``k`` holds every set of size ``k`` as sorted int64 indices, in
        lexicographic order; entry 0 is the empty set, shape ``(1, 0)``.
    """
    return [np.array(list(itertools.combinations(range(d), k)), dtype=np.int64).reshape(
        math.comb(d, k), k) for k in range(min(max_parents, d) + 1)]


def sufficient_statistics(x, v) -> dict:
    """Centred per-sample moments: ``gram`` ``(d, d)``, ``cross`` ``(d, d)`` (row ``i`` is
    ``X^T v_i / n``) and ``vv`` ``(d,)``.

    Parameters
    ----------
    x : array_like
        States ``(n, d)``; centred on their column means.
    v : array_like
        Velocities ``(n, d)``; centred on their column means.

    Returns
    -------
    dict
        ``gram`` (``X^T X / n``), ``cross`` (row ``i`` is ``X^T v_i / n``), ``vv`` (mean
        square of each centred velocity) and ``n`` (the number of rows).
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    x = x - x.mean(0)
    v = v - v.mean(0)
    n = len(x)
    return {"gram": x.T @ x / n, "cross": (x.T @ v / n).T.copy(), "vv": (v * v).mean(0), "n": n}


def score_parent_sets(stats: dict, sets: list[np.ndarray], *, temperature, ridge: float,
                      occam: bool = True,
                      candidates=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Data terms of every set for every gene: ``-J/T^2 - occam``, one ``(d, m_k)`` array per size.

    Parameters
    ----------
    stats : dict
        Moments from :func:`sufficient_statistics`.
    sets : list of numpy.ndarray
        Parent sets grouped by size, as :func:`parent_sets` returns them.
    temperature : float or array_like
        ``T`` of ``J / T^2``: a scalar or one value per gene.
    ridge : float
        ``r`` added to the diagonal of every ``C_SS``.
    occam : bool
        Subtract the Occam factor ``1/2 log det(I + C_SS / r)`` (default ``True``).
    candidates : array_like, optional
        ``(d, C)`` candidate parents per gene: ``sets`` then index into each gene's own
        candidates (row ``i`` of a set is ``candidates[i][set]``), as
        :class:`~workbench.models.gflownet.screened_posterior.ScreenedParentPosterior`
        scores them; ``None`` (default) indexes every gene directly.

    Returns
    -------
    scores : list of numpy.ndarray
        ``-J / T^2`` (less the Occam factor), one ``(d, m_k)`` array per set size; the edge
        prior is not included.
    errors : list of numpy.ndarray
        The penalised errors ``J``, floored at 0, same shapes.
    """
    gram, cross, vv = stats["gram"], stats["cross"], stats["vv"]
    t2 = np.broadcast_to(np.asarray(temperature, np.float64) ** 2, vv.shape)[:, None]
    if candidates is not None:
        return _score_candidate_sets(stats, sets, np.asarray(candidates, np.int64), t2,
                                     ridge, occam)
    scores, errors = [], []
    for idx in sets:
        m, k = idx.shape
        if k == 0:
            err = np.repeat(vv[:, None], m, axis=1)
            scores.append(-err / t2)
            errors.append(err)
            continue
        a = gram[idx[:, :, None], idx[:, None, :]] + ridge * np.eye(k)
        inv = np.linalg.inv(a)                                  # (m, k, k)
        c = cross[:, idx]                                       # (d, m, k)
        quad = np.einsum("gmk,mkl,gml->gm", c, inv, c)
        err = np.maximum(vv[:, None] - quad, 0.0)
        score = -err / t2
        if occam:
            _, logdet = np.linalg.slogdet(a)
            score = score - 0.5 * (logdet - k * math.log(ridge))[None, :]
        scores.append(score)
        errors.append(err)
    return scores, errors


def _score_candidate_sets(stats, sets, candidates, t2, ridge, occam):
    """:func:`score_parent_sets` over each gene's own candidates (one gene at a time)."""
    gram, cross, vv = stats["gram"], stats["cross"], stats["vv"]
    d = len(vv)
    scores = [np.empty((d, len(idx))) for idx in sets]
    errors = [np.empty((d, len(idx))) for idx in sets]
    for i in range(d):
        cand = candidates[i]
        g = gram[np.ix_(cand, cand)]
        ci = cross[i, cand]
        for size, idx in enumerate(sets):
            k = idx.shape[1]
            if k == 0:
                errors[size][i] = vv[i]
                scores[size][i] = -vv[i] / t2[i, 0]
                continue
            a = g[idx[:, :, None], idx[:, None, :]] + ridge * np.eye(k)
            c = ci[idx]                                             # (m, k)
            quad = np.einsum("mk,mk->m", c, np.linalg.solve(a, c[..., None])[..., 0])
            err = np.maximum(vv[i] - quad, 0.0)
            score = -err / t2[i, 0]
            if occam:
                _, logdet = np.linalg.slogdet(a)
                score = score - 0.5 * (logdet - k * math.log(ridge))
            scores[size][i] = score
            errors[size][i] = err
    return scores, errors


def _state_velocity_pairs(x, v) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``v`` as float64 ``(n, d)`` arrays of one shape, or a clear error."""
    from workbench.errors import ValidationError

    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    if x.shape != v.shape or x.ndim != 2:
        raise ValidationError(f"x and v must be (n, d) arrays of one shape, got "
                              f"{x.shape} and {v.shape}.", "pair each state with its velocity.")
    return x, v


def _edge_logit(edge_prior: float) -> float:
    """``log(pi / (1 - pi))`` of the edge prior, or a clear error outside ``(0, 1)``."""
    from workbench.errors import ValidationError

    if not 0.0 < edge_prior < 1.0:
        raise ValidationError(f"edge_prior must lie in (0, 1), got {edge_prior}.",
                              "give a prior probability per edge, such as 0.1.")
    return math.log(edge_prior / (1.0 - edge_prior))


def _membership(sets: list[np.ndarray], width: int) -> np.ndarray:
    """``(n_sets, width)`` 0/1 rows, one per set of ``sets`` (grouped by size), in order."""
    rows = []
    for idx in sets:
        m = np.zeros((len(idx), width))
        if idx.shape[1]:
            np.put_along_axis(m, idx, 1.0, axis=1)
        rows.append(m)
    return np.concatenate(rows)


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


class ExactParentPosterior:
    """Exact posterior over parent sets of at most ``max_parents`` genes, per gene.

    Parameters
    ----------
    max_parents : int
        Bound ``K`` on the parent-set size (self-loops count as parents).
    temperature : float or array_like
        ``T`` (scalar or one per gene) of ``J / T^2``.
    edge_prior : float
        Prior probability ``pi`` of each edge, in ``(0, 1)``.
    ridge : float
        ``r``: the noise-to-prior variance ratio per observation.
    occam : bool
        Include the marginal-likelihood Occam factor (``False``: DynGFN's plug-in energy).
    seed : int
        Seed of :meth:`sample` (each call may pass its own).
    """

    def __init__(self, max_parents: int = 4, temperature=0.01, edge_prior: float = 0.1,
                 ridge: float = 1e-3, occam: bool = True, seed: int = 0):
        self.max_parents = max_parents
        self.temperature = temperature
        self.edge_prior = edge_prior
        self.ridge = ridge
        self.occam = occam
        self.seed = seed

    def fit(self, x, v) -> ExactParentPosterior:
        """Score every bounded parent set of every gene on states ``x`` and velocities ``v``.

        Parameters
        ----------
        x : array_like
            States ``(n, d)``.
        v : array_like
            Velocities ``(n, d)``, row by row paired with ``x``.

        Returns
        -------
        ExactParentPosterior
            ``self``, fitted (see :meth:`fit_statistics`).

        Raises
        ------
        ValidationError
            When ``x`` and ``v`` are not 2-D arrays of one shape, or ``edge_prior`` is not
            in ``(0, 1)``.
        """
        x, v = _state_velocity_pairs(x, v)
        _edge_logit(self.edge_prior)
        return self.fit_statistics(sufficient_statistics(x, v))

    def fit_statistics(self, stats: dict) -> ExactParentPosterior:
        """Score every bounded parent set from precomputed moments and normalise per gene.

        Parameters
        ----------
        stats : dict
            Moments from :func:`sufficient_statistics`.

        Returns
        -------
        ExactParentPosterior
            ``self``, with ``log_reward_``, ``log_z_``, ``log_posterior_`` (genes x sets),
            ``error_``, ``sizes_``, ``membership_`` (sets x genes) and
            ``edge_probability_`` (``[i, j]`` for ``j -> i``) set.
        """
        d = stats["gram"].shape[0]
        self.n_genes_ = d
        self.stats_ = stats
        self.sets_ = parent_sets(d, self.max_parents)
        scores, errors = score_parent_sets(stats, self.sets_, temperature=self.temperature,
                                           ridge=self.ridge, occam=self.occam)
        logit = _edge_logit(self.edge_prior)
        log_r = np.concatenate([s + k * logit for k, s in enumerate(scores)], axis=1)
        self.log_reward_ = log_r                                  # (d, n_sets), unnormalised
        self.log_z_ = _logsumexp(log_r, axis=1)
        self.log_posterior_ = log_r - self.log_z_[:, None]
        self.error_ = np.concatenate(errors, axis=1)
        self.sizes_ = np.concatenate([np.full(len(s), k) for k, s in enumerate(self.sets_)])
        self.membership_ = _membership(self.sets_, d)            # (n_sets, d)
        post = np.exp(self.log_posterior_)
        self.edge_probability_ = post @ self.membership_          # (d, d)
        self._index = None
        return self

    def coefficients(self, graphs) -> np.ndarray:
        """Fitted weights ``(n, d, d)`` of each graph's parent sets (:func:`parent_set_coefficients`).

        Parameters
        ----------
    graphs : array_like
        Graphs ``(n, d, d)``; a positive ``G[i, j]`` makes ``j`` a parent of ``i``.

        Returns
        -------
        numpy.ndarray
            ``(n, d, d)`` float32 weights on the fitted statistics, with the fitted ridge.
        """
        return parent_set_coefficients(self.stats_, graphs, self.ridge)

    @property
    def n_sets(self) -> int:
        return self.membership_.shape[0]

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` graphs ``(n, d, d)`` uint8 drawn exactly from the posterior (``G[i, j]``: j -> i).

        Parameters
        ----------
        n : int
            Number of graphs; each gene's parent set is drawn independently.
        seed : int, optional
            Seed of this draw; ``None`` uses the constructor's ``seed``.

        Returns
        -------
        numpy.ndarray
            ``(n, d, d)`` uint8 graphs.
        """
        rng = np.random.default_rng(self.seed if seed is None else seed)
        d = self.n_genes_
        out = np.zeros((n, d, d), np.uint8)
        cdf = np.cumsum(np.exp(self.log_posterior_), axis=1)
        for i in range(d):
            pick = np.searchsorted(cdf[i], rng.random(n) * cdf[i, -1], side="right")
            out[:, i] = self.membership_[np.minimum(pick, self.n_sets - 1)].astype(np.uint8)
        return out

    def _set_index(self) -> dict:
        if self._index is None:
            self._index = {tuple(np.flatnonzero(row)): k for k, row in enumerate(self.membership_)}
        return self._index

    def log_prob_parent_set(self, node: int, parents) -> float:
        """``log P(S)`` of one parent set of ``node`` (``-inf`` beyond ``max_parents``).

        Parameters
        ----------
        node : int
            The child gene.
        parents : iterable of int
            Its parents, in any order.

        Returns
        -------
        float
            The log posterior probability of exactly that set.
        """
        key = tuple(sorted(int(p) for p in parents))
        k = self._set_index().get(key)
        return float("-inf") if k is None else float(self.log_posterior_[node, k])

    def log_prob(self, graphs) -> np.ndarray:
        """``log P(G) = sum_i log P_i(G_i)`` for each graph ``(n, d, d)``.

        Parameters
        ----------
    graphs : array_like
        Graphs ``(n, d, d)``; a positive ``G[i, j]`` makes ``j`` a parent of ``i``.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` log probabilities (``-inf`` for a graph with a row beyond
            ``max_parents``).
        """
        g = np.asarray(graphs) > 0
        return np.array([sum(self.log_prob_parent_set(i, np.flatnonzero(row))
                             for i, row in enumerate(graph)) for graph in g])

    def kl_to(self, log_q_row) -> np.ndarray:
        """``KL(P_R || Q)`` per gene, for a model with ``log_q_row(i, parents)``.

        Sums over every bounded parent set, so it is exact when ``Q`` puts no mass beyond
        ``max_parents`` (sets ``P_R`` gives no mass do not enter the forward KL).

        Parameters
        ----------
        log_q_row : callable
            ``log_q_row(i, parents) -> float``, the model's log-probability of gene ``i``
            having exactly ``parents`` (an index array).

        Returns
        -------
        numpy.ndarray
            ``(d,)`` KL in nats per gene, over the sets of posterior probability above
            ``1e-12``.
        """
        out = np.zeros(self.n_genes_)
        for i in range(self.n_genes_):
            p = np.exp(self.log_posterior_[i])
            keep = p > 1e-12
            lq = np.array([log_q_row(i, np.flatnonzero(self.membership_[k]))
                           for k in np.flatnonzero(keep)])
            out[i] = float(np.sum(p[keep] * (self.log_posterior_[i, keep] - lq)))
        return out


def parent_set_coefficients(stats: dict, graphs, ridge: float) -> np.ndarray:
    """Fitted weights of every graph's parent sets: ``(n, d, d)`` float32, zero off the graph.

    Row ``i`` of graph ``G`` gets the posterior mean of the Bayesian linear regression of
    ``v_i`` on its parents, ``w_S = (C_SS + r I)^{-1} c_iS`` (the ridge solution on the
    centred per-sample statistics), so each sample carries edge signs and strengths in the
    units of the data it was fitted on. Each distinct (gene, parent set) is solved once.

    Parameters
    ----------
    stats : dict
        Moments from :func:`sufficient_statistics`.
    graphs : array_like
        Graphs ``(n, d, d)``; a positive ``G[i, j]`` makes ``j`` a parent of ``i``.
    ridge : float
        ``r`` added to the diagonal of ``C_SS``.

    Returns
    -------
    numpy.ndarray
        ``(n, d, d)`` float32 weights, ``W[s, i, j]`` the weight of ``j`` in gene ``i``'s
        regression of sample ``s``; zero where the graph has no edge.
    """
    g = np.asarray(graphs) > 0
    n, d, _ = g.shape
    gram, cross = stats["gram"], stats["cross"]
    out = np.zeros((n, d, d), np.float32)
    for i in range(d):
        rows, inverse = np.unique(g[:, i], axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        for k, row in enumerate(rows):
            idx = np.flatnonzero(row)
            if not len(idx):
                continue
            a = gram[np.ix_(idx, idx)] + ridge * np.eye(len(idx))
            w = np.linalg.solve(a, cross[i, idx])
            sel = np.flatnonzero(inverse == k)
            out[np.ix_(sel, [i], idx)] = w.astype(np.float32)[None, None, :]
    return out


def edge_sign_summary(samples, weights) -> tuple[np.ndarray, np.ndarray]:
    """``(mean weight given the edge, share of those samples where it activates)``, each ``(d, d)``.

    Entries no sample holds get weight 0 and share ``NaN``.

    Parameters
    ----------
    samples : array_like
        Graphs ``(n, d, d)``; positive entries are edges.
    weights : array_like
        Weights ``(n, d, d)`` of the same samples (as :func:`parent_set_coefficients`
        returns them).

    Returns
    -------
    mean_weight : numpy.ndarray
        ``(d, d)`` mean weight over the samples that hold the edge.
    share_positive : numpy.ndarray
        ``(d, d)`` share of those samples whose weight is positive.
    """
    s = np.asarray(samples) > 0
    w = np.asarray(weights, np.float64)
    count = s.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_w = np.where(count > 0, (w * s).sum(0) / np.maximum(count, 1), 0.0)
        positive = np.where(count > 0, ((w > 0) & s).sum(0) / count, np.nan)
    return mean_w, positive


# ---------------------------------------------------------------- settings from the data
def held_out_residuals(x, v, *, groups=None, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Held-out velocity residuals ``(n, d)`` of a ridge fit of each gene on every gene.

    Folds split whole ``groups`` (trajectories) when given, so correlated points never sit
    on both sides. The ridge is small (``1e-3`` per sample) so the fit is close to OLS.
    Their mean square per gene is the noise variance ``sigma_i^2`` the reward uses.

    Parameters
    ----------
    x : array_like
        States ``(n, d)``.
    v : array_like
        Velocities ``(n, d)``.
    groups : array_like, optional
        Group label of each row (a trajectory); ``None`` folds single rows.
    n_folds : int
        Number of folds (default 5); folds are assigned at random from ``seed``.
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` held-out residuals; rows of a fold whose training part has no more rows
        than genes are left at 0.
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    n, d = x.shape
    rng = np.random.default_rng(seed)
    labels = np.arange(n) if groups is None else np.unique(groups, return_inverse=True)[1]
    fold_of = rng.permutation(int(labels.max()) + 1) % n_folds
    fold = fold_of[labels]
    res = np.zeros_like(v)
    for f in range(n_folds):
        test, train = fold == f, fold != f
        if not test.any() or train.sum() <= d:
            continue
        xm, vm = x[train].mean(0), v[train].mean(0)
        xt = x[train] - xm
        w = np.linalg.solve(xt.T @ xt + 1e-3 * train.sum() * np.eye(d), xt.T @ (v[train] - vm))
        res[test] = v[test] - vm - (x[test] - xm) @ w
    return res


def noise_variance(residuals) -> np.ndarray:
    """Per-gene mean square of held-out residuals (floored away from zero).

    Parameters
    ----------
    residuals : array_like
        Residuals ``(n, d)``, as :func:`held_out_residuals` returns them.

    Returns
    -------
    numpy.ndarray
        ``(d,)`` mean squares, at least ``1e-12``.
    """
    r = np.asarray(residuals, np.float64)
    return np.maximum((r ** 2).mean(0), 1e-12)


def effective_sample_size(x, residuals, *, groups=None, n_neighbors: int = 10) -> float:
    """Independent observations behind ``n`` cells, from how alike related residuals are.

    Kish's design effect (Kish 1965, *Survey Sampling*): ``n_eff = n / (1 + (m - 1) rho)``
    for clusters of ``m`` observations whose noise correlates by ``rho``. With ``groups``
    (trajectories) the clusters are the groups and ``rho`` is the intra-class correlation
    of the velocity residuals (``n_eff`` then lies between the number of groups and ``n``);
    without, the clusters are each cell's ``n_neighbors`` nearest cells in ``x``, since kNN
    smoothing (``Ms``) makes neighbours share noise.

    Parameters
    ----------
    x : array_like
        States ``(n, d)``; used for the nearest neighbours when ``groups`` is ``None``.
    residuals : array_like
        Velocity residuals ``(n, d)``; standardised per gene before ``rho`` is estimated.
    groups : array_like, optional
        Cluster label of each row; ``None`` uses nearest-neighbour clusters.
    n_neighbors : int
        Neighbours per cell without ``groups`` (default 10, at most ``n - 1``).

    Returns
    -------
    float
        ``n_eff``, with ``rho`` clipped to ``[0, 1]`` (at most ``n``; with groups, at
        least their number).
    """
    x = np.asarray(x, np.float64)
    e = np.asarray(residuals, np.float64)
    n = len(x)
    e = (e - e.mean(0)) / np.maximum(e.std(0), 1e-12)
    if groups is not None:
        _, lab, counts = np.unique(groups, return_inverse=True, return_counts=True)
        sums = np.zeros((len(counts), e.shape[1]))
        np.add.at(sums, lab, e)
        pairs = float((counts * (counts - 1)).sum())
        if pairs <= 0:
            return float(n)
        cross = float(((sums ** 2).sum(0) - (e ** 2).sum(0)).mean())  # sum over a != b
        rho = float(np.clip(cross / pairs, 0.0, 1.0))
        m = pairs / float(counts.sum())  # mean cluster size seen by a point, minus one
        return float(max(n / (1.0 + m * rho), len(counts)))
    from sklearn.neighbors import NearestNeighbors

    m = int(min(n_neighbors, n - 1))
    if m < 1:
        return float(n)
    idx = NearestNeighbors(n_neighbors=m + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    rho = float(np.clip(np.mean(e[:, None, :] * e[idx]), 0.0, 1.0))
    return float(n / (1.0 + (m - 1) * rho))


#: Multipliers of the held-out noise estimate searched by :func:`empirical_bayes`. The
#: held-out residuals of a fit on every gene overstate the noise when cells are few (the
#: fit's own estimation error is in them: about 5x at 24 cells and 10 genes), and slightly
#: when they are many; the evidence picks the multiplier.
NOISE_SCALES = tuple(float(s) for s in np.geomspace(0.05, 2.0, 9))


def empirical_bayes(stats: dict, sets, sigma2, n_eff: float, *, occam: bool = True,
                    edge_priors=None, prior_sds=(0.3, 1.0, 3.0),
                    noise_scales=NOISE_SCALES, candidates=None) -> dict:
    """Edge prior ``pi``, weight prior ``tau`` and noise level that maximise the evidence.

    The evidence of the data under ``(pi, tau, s)`` is ``sum_i log sum_S R_i(S)`` plus the
    Gaussian normaliser ``-n_eff / 2 * sum_i log(s sigma_i^2)``, exact here because every
    bounded set is enumerated; a grid over the three is searched (type-II maximum likelihood
    for variable-inclusion priors, Scott & Berger 2010, Ann. Statist. 38:2587; the noise
    scale as in Bishop 2006, section 3.5.2). ``sigma2`` (the held-out estimate) sets the
    noise's shape across genes and ``s`` (from ``noise_scales``) its overall level; pass
    ``noise_scales=(1.0,)`` to keep ``sigma2`` as given.

    Parameters
    ----------
    stats : dict
        Moments from :func:`sufficient_statistics`.
    sets : list of numpy.ndarray
        Parent sets grouped by size, as :func:`parent_sets` returns them.
    sigma2 : array_like
        Held-out noise variance per gene, ``(d,)`` (:func:`noise_variance`).
    n_eff : float
        Effective number of observations (:func:`effective_sample_size`).
    occam : bool
        Include the Occam factor in the reward (default ``True``).
    edge_priors : array_like, optional
        Grid of ``pi``; ``None`` takes 14 values from ``0.2 / d`` to 0.5 on a log scale.
    prior_sds : sequence of float
        Grid of the weight prior's standard deviation ``tau``.
    noise_scales : sequence of float
        Grid of multipliers ``s`` of ``sigma2`` (default :data:`NOISE_SCALES`).
    candidates : array_like, optional
        ``(d, C)`` candidate parents per gene (``sets`` then index into them, see
        :func:`score_parent_sets`); the evidence then sums over the candidates' sets only,
        with the prior still normalised over every bounded set of all ``d`` genes.

    Returns
    -------
    dict
        The best ``noise_scale``, ``prior_sd``, ``edge_prior`` and ``evidence``; the
        ``ridge``, per-gene ``temperature`` and ``noise_variance`` they imply;
        ``n_effective``; and ``grid``, one record per point searched.
    """
    sigma2_in = np.asarray(sigma2, np.float64)
    d = len(sigma2_in)
    if edge_priors is None:
        edge_priors = np.unique(np.clip(np.geomspace(0.2 / d, 0.5, 14), 1e-4, 0.5))
    best, grid = None, []
    for scale in noise_scales:
        s2 = sigma2_in * float(scale)
        temps = np.sqrt(2.0 * s2 / n_eff)
        normaliser = -0.5 * n_eff * float(np.log(s2).sum())
        for tau in prior_sds:
            ridge = float(np.median(s2) / (n_eff * tau ** 2))
            scores, _ = score_parent_sets(stats, sets, temperature=temps, ridge=ridge,
                                          occam=occam, candidates=candidates)
            for pi in edge_priors:
                logit = math.log(pi / (1.0 - pi))
                log_r = np.concatenate([s + k * logit for k, s in enumerate(scores)], axis=1)
                # normalised prior over the bounded sets: divide by sum_S prior(S)
                log_prior_z = _logsumexp(np.array([math.log(math.comb(d, k)) + k * logit
                                                   for k in range(len(sets))]), axis=0)
                evidence = float((_logsumexp(log_r, axis=1) - log_prior_z).sum()) + normaliser
                grid.append({"noise_scale": float(scale), "prior_sd": float(tau),
                             "edge_prior": float(pi), "evidence": evidence})
                if best is None or evidence > best["evidence"]:
                    best = {"noise_scale": float(scale), "prior_sd": float(tau),
                            "edge_prior": float(pi), "evidence": evidence, "ridge": ridge,
                            "temperature": temps, "noise_variance": s2}
    return {**best, "n_effective": float(n_eff), "grid": grid}
