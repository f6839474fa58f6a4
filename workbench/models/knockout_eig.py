"""Expected information gain of gene knock-outs about a regulatory graph (numpy only).

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

__all__ = ["mixture_information", "KnockoutScorer", "greedy_batch", "edge_entropy"]


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def mixture_information(mu, pi, sd: float, eps) -> float:
    """Mutual information (nats) between ``y ~ sum_u pi_u N(mu_u, sd^2 I)`` and the component.

    ``mu`` is ``(U, k)``, ``pi`` ``(U,)`` (summing to one), ``eps`` ``(M, k)`` standard-normal
    draws. With ``z_ut = (mu_u - mu_t) / sd`` the estimate is
    ``sum_u pi_u mean_m [-log sum_t pi_t exp(-|z_ut|^2 / 2 - z_ut . eps_m)]``, clipped to
    ``[0, H(pi)]`` (the bounds the exact value obeys).
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


def edge_entropy(prob) -> np.ndarray:
    """Binary entropy (nats) of each edge probability."""
    p = np.clip(np.asarray(prob, np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


class KnockoutScorer:
    """Score knock-outs (single genes or batches) by their information about the graph.

    Parameters
    ----------
    samples, weights
        ``(S, d, d)`` posterior graphs and their fitted weights (row = regulated gene).
    shift
        ``(d,)`` ``D_g``: root-mean-square change of ``x_g`` that the knock-out imposes on
        the cells (standardised units).
    noise_sd
        ``(d,)`` sd of the observed mean velocity response of each gene in one knock-out
        experiment (``sigma_i / sqrt(n_eff)``).
    n_draws
        Monte Carlo draws of the mixture entropy.
    seed
        Seed of those draws.
    """

    def __init__(self, samples, weights, shift, noise_sd, n_draws: int = 256, seed: int = 0):
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
        """Information (nats) of the knock-outs ``batch`` about gene ``i``'s parents."""
        batch = [g for g in batch if g != i]
        if not batch:
            return 0.0
        mu, pi = self._components(i, batch)
        return mixture_information(mu, pi, self.noise_sd[i], self.eps_)

    def gains(self, batch) -> np.ndarray:
        """Per-gene information ``(d,)`` of a batch of knock-outs."""
        return np.array([self.gene_gain(i, batch) for i in range(self.n_genes)])

    def score(self, batch) -> float:
        """Expected information gain (nats) of the batch about the whole graph."""
        return float(self.gains(batch).sum())

    def disambiguated(self, g: int, top: int = 3, min_gain: float = 0.01) -> list[tuple]:
        """Edges ``g -> i`` that knocking out ``g`` informs most: ``(i, gain, P(edge))``."""
        gain = self.gains([g])
        order = [i for i in np.argsort(-gain) if gain[i] > min_gain and i != g][:top]
        return [(int(i), float(gain[i]), float(self.edge_probability_[i, g])) for i in order]


def greedy_batch(scorer: KnockoutScorer, candidates, budget: int) -> list[tuple[int, float]]:
    """``budget`` knock-outs by greedy joint gain: ``[(gene, marginal gain), ...]``.

    Ties are broken by the candidate order given (shuffle it for random tie-breaks).
    """
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
