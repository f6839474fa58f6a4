"""Expected information gain of gene knock-outs about a regulatory graph (numpy only).

Two scores live here. :class:`GraphKnockoutScorer` (the planner's ``eig``) counts what the
cells of a knock-out tell about every gene's parents, through the whole fitted mechanism
and the correlations the clamp breaks; its docstring gives the model. :class:`KnockoutScorer`
(``edge_eig``), described below, counts only what the clamp says about the edges out of the
knocked-out gene; it is kept as the narrower comparison.

The posterior over graphs is given as ``S`` samples ``G_s`` (``G[i, j] = 1``: gene ``j``
regulates the velocity of gene ``i``) with their fitted linear mechanisms ``W_s`` (the
ridge weights of each gene's velocity on its parents, as the GRN step stores them in
``grn_sample_weights``, in standardised units).

**The experiment.** Knocking out gene ``g`` clamps ``x_g`` to its knocked-out level ``k_g``
while the cells keep their other states; the velocity of every other gene ``i`` then moves
by ``W[i, g] (k_g - x_g)``. Over ``n`` measured cells, the likelihood ratio between two
mechanisms that differ only in ``W[i, g]`` depends on the data through one number: the
response ``y_ig = W[i, g] * D_g`` with ``D_g`` the root mean square of ``k_g - x_g`` over the
cells, observed with noise of sd ``sigma_i / sqrt(n_eff)``, where ``sigma_i^2`` is the noise
variance of gene ``i``'s velocity (from held-out residuals of the data) and ``n_eff`` the
effective number of independent cells of the experiment. So a knock-out of ``g`` is scored
by what it says about the edges out of ``g``; a batch ``B`` observes ``y_i = (y_ig)_{g in B}``
for each gene ``i`` not in ``B``.

**The score** (BALD; Houlsby et al. 2011, "Bayesian active learning for classification and
preference learning"; for interventions, the expected information gain of Jain et al. 2023,
"GFlowNets for AI-driven scientific discovery", and Tong & Koller 2001) is the mutual
information between the responses and the graph::

    EIG(B) = H[ sum_s pi_s N(mu_s(B), s^2) ] - sum_s pi_s H[ N(mu_s(B), s^2) ]

summed over the regulated genes ``i``, since the posterior of the GRN step factorises over
genes (each gene's parent set is independent of the others'). The samples of one gene are
first merged into distinct components (same predicted response, weight ``pi`` = share of the
samples); the mixture entropy is estimated by Monte Carlo with fixed standard-normal draws
(common random numbers, so that candidates are compared on the same draws). When every sample
predicts the same response the score is exactly zero; it never exceeds the entropy of the
components' weights.

**Batches.** :func:`greedy_batch` adds, one at a time, the knock-out whose joint gain with
those already chosen is largest, so two knock-outs that settle the same edges are not both
taken (submodular greedy selection; Krause & Guestrin 2005).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mixture_information", "pairwise_information", "KnockoutScorer",
           "GraphKnockoutScorer", "greedy_batch", "edge_entropy"]


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _check_posterior(samples, weights) -> tuple[np.ndarray, np.ndarray]:
    from workbench.errors import ValidationError

    s = np.asarray(samples) > 0
    w = np.asarray(weights, np.float64)
    if s.ndim != 3 or s.shape != w.shape or s.shape[1] != s.shape[2]:
        raise ValidationError(f"samples and weights must both be (samples, d, d), got "
                              f"{s.shape} and {w.shape}.",
                              "pass grn_samples and grn_sample_weights of one GRN step.")
    if len(s) < 2:
        raise ValidationError(
            f"the GRN posterior has {len(s)} sample: one graph carries no uncertainty, "
            "so no knock-out can be scored by what it would teach.",
            "draw more posterior samples (workbench grn STUDY with n_samples >= 2, "
            "e.g. the default of the size preset).")
    return s, w


def mixture_information(mu, pi, sd: float, eps) -> float:
    """Mutual information (nats) between ``y ~ sum_u pi_u N(mu_u, sd^2 I)`` and the component.

    ``mu`` is ``(U, k)``, ``pi`` ``(U,)`` (summing to one), ``eps`` ``(M, k)`` standard-normal
    draws. With ``z_ut = (mu_u - mu_t) / sd`` the estimate is
    ``sum_u pi_u mean_m [-log sum_t pi_t exp(-|z_ut|^2 / 2 - z_ut . eps_m)]``, clipped to
    ``[0, H(pi)]`` (the bounds the exact value obeys).

    Parameters
    ----------
    mu : array_like
        ``(U, k)`` component means (a 1-D array is one response per component).
    pi : array_like
        ``(U,)`` component weights.
    sd : float
        The shared noise sd.
    eps : array_like
        ``(M, k')`` standard-normal draws, ``k' >= k`` (the first ``k`` columns are used).

    Returns
    -------
    float
        The estimate, in nats.
    """
    mu = np.asarray(mu, np.float64)
    pi = np.asarray(pi, np.float64)
    if mu.ndim == 1:
        mu = mu[:, None]
    if len(pi) <= 1:
        return 0.0
    z = (mu[:, None, :] - mu[None, :, :]) / float(sd)                   # (U, U, k)
    eps = np.asarray(eps, np.float64)[:, : mu.shape[1]]
    q = 0.5 * (z ** 2).sum(-1)[:, :, None] + np.einsum("utk,mk->utm", z, eps)
    lse = _logsumexp(np.log(pi)[None, :, None] - q, axis=1)              # (U, M)
    info = float(-(pi[:, None] * lse).sum() / eps.shape[0])
    h = float(-(pi * np.log(pi)).sum())
    return min(max(info, 0.0), h)


def pairwise_information(dist, pi, c: float = 0.125) -> np.ndarray:
    """``-sum_u pi_u log sum_t pi_t exp(-c D_ut)`` over the last two axes of ``dist``.

    With ``D`` the squared Mahalanobis distances between the means of equal-covariance
    Gaussian components, ``c = 1/8`` (Bhattacharyya) gives a lower and ``c = 1/2``
    (Kullback-Leibler) an upper bound on the mutual information between a draw of the
    mixture and its component (Kolchinsky & Tracey 2017); both lie in ``[0, H(pi)]``.

    Parameters
    ----------
    dist : array_like
        ``(..., U, U)`` squared Mahalanobis distances between component means.
    pi : array_like
        ``(U,)`` component weights.
    c : float
        ``1/8`` for the lower (Bhattacharyya) bound, ``1/2`` for the upper (KL) one.

    Returns
    -------
    numpy.ndarray
        The bound over the leading axes of ``dist``, in nats.
    """
    pi = np.asarray(pi, np.float64)
    if len(pi) <= 1:
        return np.zeros(np.shape(dist)[:-2])
    a = np.log(pi) - c * np.asarray(dist, np.float64)
    return -(_logsumexp(a, axis=-1) * pi).sum(-1)


def edge_entropy(prob) -> np.ndarray:
    """Binary entropy (nats) of each edge probability.

    Parameters
    ----------
    prob : array_like
        Edge probabilities.

    Returns
    -------
    numpy.ndarray
        Entropies, the shape of ``prob``.
    """
    p = np.clip(np.asarray(prob, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


class KnockoutScorer:
    """Score knock-outs (single genes or batches) by their information about the graph.

    Parameters
    ----------
    samples, weights : array_like
        ``(S, d, d)`` posterior graphs and their fitted weights (row = regulated gene).
    shift : array_like of float
        ``(d,)`` ``D_g``: root-mean-square change of ``x_g`` that the knock-out imposes on
        the cells (standardised units).
    noise_sd : array_like of float
        ``(d,)`` sd of the observed mean velocity response of each gene in one knock-out
        experiment (``sigma_i / sqrt(n_eff)``).
    n_draws : int
        Monte Carlo draws of the mixture entropy.
    seed : int
        Seed of those draws.
    """

    def __init__(self, samples, weights, shift, noise_sd, n_draws: int = 256, seed: int = 0):
        s, w = _check_posterior(samples, weights)
        self.weights_ = np.where(s, w, 0.0)
        self.samples_ = s
        self.n_genes = s.shape[1]
        self.shift = np.broadcast_to(np.asarray(shift, np.float64), (self.n_genes,))
        self.noise_sd = np.broadcast_to(np.asarray(noise_sd, np.float64), (self.n_genes,))
        self.eps_ = np.random.default_rng([seed, 7]).standard_normal((n_draws, self.n_genes))
        self.edge_probability_ = s.mean(0)

    def _components(self, i: int, batch) -> tuple[np.ndarray, np.ndarray]:
        """Distinct predicted responses of gene ``i`` to ``batch`` and their weights."""
        mu = self.weights_[:, i, list(batch)] * self.shift[list(batch)]        # (S, k)
        key = np.round(mu / self.noise_sd[i], 6)
        _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
        return mu[first], counts / counts.sum()

    def gene_gain(self, i: int, batch) -> float:
        """Information (nats) of the knock-outs ``batch`` about gene ``i``'s parents.

        Parameters
        ----------
        i : int
            The regulated gene.
        batch : sequence of int
            Genes knocked out (``i`` itself is left out).

        Returns
        -------
        float
            Nats.
        """
        batch = [g for g in batch if g != i]
        if not batch:
            return 0.0
        mu, pi = self._components(i, batch)
        return mixture_information(mu, pi, self.noise_sd[i], self.eps_)

    def gains(self, batch) -> np.ndarray:
        """Per-gene information ``(d,)`` of a batch of knock-outs.

        Parameters
        ----------
        batch : sequence of int
            Genes knocked out.

        Returns
        -------
        numpy.ndarray
            Nats per gene.
        """
        return np.array([self.gene_gain(i, batch) for i in range(self.n_genes)])

    def score(self, batch) -> float:
        """Expected information gain (nats) of the batch about the whole graph.

        Parameters
        ----------
        batch : sequence of int
            Genes knocked out.

        Returns
        -------
        float
            Nats.
        """
        return float(self.gains(batch).sum())

    def disambiguated(self, g: int, top: int = 3, min_gain: float = 0.01) -> list[tuple]:
        """Edges ``g -> i`` that knocking out ``g`` informs most: ``(i, gain, P(edge))``.

        Parameters
        ----------
        g : int
            The knocked-out gene.
        top : int
            Most entries returned.
        min_gain : float
            Smallest gain (nats) reported.

        Returns
        -------
        list of tuple
            ``(i, gain, P(g -> i))``, largest gain first.
        """
        gain = self.gains([g])
        order = [i for i in np.argsort(-gain) if gain[i] > min_gain and i != g][:top]
        return [(int(i), float(gain[i]), float(self.edge_probability_[i, g])) for i in order]


class GraphKnockoutScorer:
    """Whole-graph information of knock-outs: what their cells tell about every gene's parents.

    The cells of a knock-out of ``g`` are modelled as the cells the posterior was fitted on
    with ``x_g`` clamped at its knocked-out level ``k_g``. Every other gene ``i`` keeps its
    mechanism and the intercept it shares with the earlier cells, so two posterior samples
    ``u, t`` of gene ``i``'s parent set (weights ``w_u, w_t``) predict responses on those
    cells that differ by ``(x - xbar) . q`` with ``q = w_u - w_t``. Over ``n_eff``
    independent cells the squared Mahalanobis distance between the two predictions is::

        D_ut(g) = q^T M(g) q / s_i^2,      s_i^2 = sigma_i^2 / n_eff,

    where ``M(g)`` is the centred second moment ``C`` of the cells with row and column ``g``
    set to zero and ``M(g)_gg = (k_g - xbar_g)^2``: the clamp removes ``x_g``'s natural
    variation and puts in its one large step. So the score counts the edges out of ``g``
    (through the step), the parents of every gene that any new cells inform (the rest of
    ``C``), and the parents that only the broken correlation of ``x_g`` with the others can
    tell apart (a copy of ``g`` regulating a child instead of ``g``). A batch pools its cells,
    ``D(B) = sum_g D(g)``; gene ``g``'s own velocity is not used in the cells that knock it
    out (its mechanism was replaced), so ``D_ut(g) = 0`` for ``i = g``.

    The information about gene ``i``'s parent set is that of a mixture of Gaussians with one
    covariance, bounded by the pairwise distances (Kolchinsky & Tracey 2017, "Estimating
    mixture entropy with pairwise distances")::

        -sum_u pi_u log sum_t pi_t exp(-D_ut / 8)  <=  I  <=  -sum_u pi_u log sum_t pi_t exp(-D_ut / 2)

    (Bhattacharyya and Kullback-Leibler distances). The score is the lower bound
    (``bound="upper"`` for the other), summed over genes: the posterior of the GRN step
    factorises over genes. Components are the distinct parent sets of the samples, weighted
    by their share. Everything is precomputed as one ``(candidates, U_i, U_i)`` array per
    gene, so single scores and greedy batch steps are vectorised over candidates.

    Parameters
    ----------
    samples, weights : array_like
        ``(S, d, d)`` posterior graphs and their fitted weights (row = regulated gene).
    gram : array_like
        ``(d, d)`` centred second moment of the cells (standardised units).
    offset : array_like of float
        ``(d,)`` ``k_g - xbar_g``: knocked-out level minus the cells' mean. A linear
        mechanism extrapolated far beyond the cells it was fitted on promises a decisive
        step from every clamp; :func:`~workbench.tools.design.knockout.knockout_setup`
        clips the step to the cells' range by default.
    noise_sd : array_like of float
        ``(d,)`` ``s_i``: sd of the noise on gene ``i``'s velocity divided by the square root
        of the independent observations one knock-out experiment gives.
    bound : str
        ``"lower"`` (Bhattacharyya) or ``"upper"`` (Kullback-Leibler).
    """

    def __init__(self, samples, weights, gram, offset, noise_sd, bound: str = "lower"):
        from workbench.errors import ValidationError

        s, w = _check_posterior(samples, weights)
        if bound not in ("lower", "upper"):
            raise ValidationError(f"unknown bound {bound!r}.", "use 'lower' or 'upper'.")
        d = s.shape[1]
        gram = np.asarray(gram, np.float64)
        if gram.shape != (d, d):
            raise ValidationError(f"gram is {gram.shape}, the posterior has {d} genes.",
                                  "pass the centred second moment of the GRN's cells.")
        offset = np.broadcast_to(np.asarray(offset, np.float64), (d,))
        noise = np.broadcast_to(np.asarray(noise_sd, np.float64), (d,))
        if not np.all(noise > 0):
            raise ValidationError("noise_sd must be positive for every gene.",
                                  "estimate it from held-out residuals (knockout_setup).")
        self.n_genes, self.bound = d, bound
        self.samples_ = s
        self.edge_probability_ = s.mean(0)
        self._c = 0.125 if bound == "lower" else 0.5
        wts = np.where(s, w, 0.0)
        step = np.diag(gram) + offset ** 2
        self.pi_, self.dist_ = [], []
        for i in range(d):
            _, first, counts = np.unique(s[:, i], axis=0, return_index=True,
                                         return_counts=True)
            wu = wts[first, i, :]                                        # (U, d)
            q = wu[:, None, :] - wu[None, :, :]                          # (U, U, d)
            cq = q @ gram
            base = np.einsum("utj,utj->ut", cq, q)
            per = base[..., None] - 2.0 * q * cq + q * q * step          # (U, U, g)
            per[..., i] = 0.0
            per = np.maximum(per, 0.0) / noise[i] ** 2
            self.pi_.append(counts / counts.sum())
            self.dist_.append(np.ascontiguousarray(per.transpose(2, 0, 1), np.float32))

    def _info(self, i: int, dist) -> np.ndarray:
        return pairwise_information(dist, self.pi_[i], c=self._c)

    def gains(self, batch) -> np.ndarray:
        """Per-gene information ``(d,)`` of the pooled cells of a batch of knock-outs.

        Parameters
        ----------
        batch : sequence of int
            Genes knocked out.

        Returns
        -------
        numpy.ndarray
            Nats per gene.
        """
        batch = [int(g) for g in batch]
        if not batch:
            return np.zeros(self.n_genes)
        return np.array([float(self._info(i, self.dist_[i][batch].sum(0, dtype=np.float64)))
                         for i in range(self.n_genes)])

    def score(self, batch) -> float:
        """Expected information (nats) of the batch about the whole graph.

        Parameters
        ----------
        batch : sequence of int
            Genes knocked out.

        Returns
        -------
        float
            Nats.
        """
        return float(self.gains(batch).sum())

    def single_scores(self, candidates=None) -> np.ndarray:
        """Score of each single knock-out, vectorised over ``candidates`` (default: all).

        Parameters
        ----------
        candidates : array_like of int, optional
            Genes to score.

        Returns
        -------
        numpy.ndarray
            Nats per candidate.
        """
        cand = np.arange(self.n_genes) if candidates is None else np.asarray(candidates, int)
        return sum(self._info(i, self.dist_[i][cand].astype(np.float64))
                   for i in range(self.n_genes))

    def greedy(self, candidates, budget: int) -> list[tuple[int, float]]:
        """``budget`` knock-outs by greedy joint gain (first of ``candidates`` wins ties).

        Parameters
        ----------
        candidates : sequence of int
            Genes that may be chosen (duplicates dropped), in tie-break order.
        budget : int
            Knock-outs to choose.

        Returns
        -------
        list of tuple
            ``(gene, marginal gain in nats)`` in the order chosen.
        """
        cand = list(dict.fromkeys(int(g) for g in candidates))      # each gene once
        acc = [np.zeros(p.shape * 2) for p in self.pi_]
        base, out, free = 0.0, [], np.ones(len(cand), bool)
        for _ in range(min(int(budget), len(cand))):
            tot = np.zeros(len(cand))
            for i in range(self.n_genes):
                tot += self._info(i, acc[i][None] + self.dist_[i][cand])
            gain = np.where(free, tot - base, -np.inf)
            k = int(np.argmax(gain))
            free[k] = False
            for i in range(self.n_genes):
                acc[i] = acc[i] + self.dist_[i][cand[k]]
            base = float(tot[k])
            out.append((cand[k], float(gain[k])))
        return out

    def disambiguated(self, g: int, top: int = 3, min_gain: float = 0.01) -> list[tuple]:
        """Genes whose parents knocking out ``g`` informs most, each with the most uncertain
        edge into it: ``(i, gain, j, P(j -> i))``.

        Parameters
        ----------
        g : int
            The knocked-out gene.
        top : int
            Most entries returned.
        min_gain : float
            Smallest gain (nats) reported.

        Returns
        -------
        list of tuple
            ``(i, gain, j, P(j -> i))``, largest gain first.
        """
        gain = self.gains([g])
        order = [i for i in np.argsort(-gain) if gain[i] > min_gain][:top]
        out = []
        for i in order:
            p = self.edge_probability_[i].copy()
            p[i] = 0.0
            j = int(np.argmin(np.abs(p - 0.5)))
            out.append((int(i), float(gain[i]), j, float(p[j])))
        return out


def greedy_batch(scorer: KnockoutScorer, candidates, budget: int) -> list[tuple[int, float]]:
    """``budget`` knock-outs by greedy joint gain: ``[(gene, marginal gain), ...]``.

    Ties are broken by the candidate order given (shuffle it for random tie-breaks). A scorer
    with its own vectorised ``greedy`` (:class:`GraphKnockoutScorer`) uses it.

    Parameters
    ----------
    scorer : KnockoutScorer or GraphKnockoutScorer
        The scorer.
    candidates : sequence of int
        Gene indices that may be chosen, in tie-break order.
    budget : int
        Knock-outs to choose.

    Returns
    -------
    list of tuple
        ``(gene, marginal gain in nats)`` in the order chosen.
    """
    if hasattr(scorer, "greedy"):
        return scorer.greedy(candidates, budget)
    chosen: list[int] = []
    out: list[tuple[int, float]] = []
    base = 0.0
    per_gene = np.zeros(scorer.n_genes)
    for _ in range(budget):
        best, best_gain, best_genes = None, -np.inf, None
        for g in candidates:
            if g in chosen:
                continue
            batch = chosen + [g]
            # only genes whose responses change need recomputing: all of them see g
            genes = scorer.gains(batch)
            gain = float(genes.sum()) - base
            if gain > best_gain + 1e-12:
                best, best_gain, best_genes = g, gain, genes
        if best is None:
            break
        chosen.append(best)
        per_gene = best_genes
        base = float(per_gene.sum())
        out.append((int(best), best_gain))
    return out
