"""Batch screen design for hits: which candidates to screen next to find the top movers.

Pool-based batch design after Gupta, Hartford and Liu, "LLMs for Bayesian Optimization in
Scientific Domains: Are We There Yet?" (arXiv 2509.21403). Each round proposes ``b``
unmeasured candidates, their phenotype comes back, and the policy updates. Policies
(:data:`HIT_POLICIES`):

``"thompson"``
    linear Thompson sampling: Bayesian linear regression on the features,
    ``Sigma = (lambda I + X'X / s2)^-1``, ``mu = Sigma X'y / s2``; draw ``theta ~ N(mu,
    Sigma)`` and take the top ``b`` of ``x'theta`` (Agrawal and Goyal 2013).
``"ucb"``
    linear UCB: ``x'mu + beta sqrt(x' Sigma x)`` (Li et al. 2010).
``"gp_ucb"``
    GP-UCB (Srinivas et al. 2010) with scikit-learn's exact Gaussian process (RBF plus
    white-noise kernel, hyper-parameters by marginal likelihood). scikit-learn is already a
    dependency and an exact GP on a few thousand measured items takes seconds on a CPU;
    BoTorch/GPyTorch would bring torch into this step for no gain at that size.
``"prior_nn"``
    prior-guided nearest neighbour: the first batch is the top of the user's ranked list;
    later batches are the unmeasured candidates most similar (cosine) to the 8 best measured
    ones (the paper's LLM-seeded nearest neighbour, with the user's own list as the prior).
``"random"``
    a uniform draw.

The bandit policies draw their first batch at random (nothing is known yet). Every policy
can be fed **permuted outcomes** (``permute=True``): the measured values are shuffled among
the measured candidates before each update. A policy that uses its feedback must fall
towards random under this control; one that does not is flagged by
:func:`feedback_flags`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.tools.design.screen import check_pool, prepare_features

__all__ = ["HIT_POLICIES", "score_candidates", "hit_campaign", "feedback_flags"]

HIT_POLICIES = ("thompson", "ucb", "gp_ucb", "prior_nn", "random")


def _blr(Z, y, lam: float = 1.0):
    A = np.hstack([Z, np.ones((len(Z), 1))])
    ys = (y - y.mean()) / (y.std() or 1.0)
    s2 = max(float(np.var(ys)) * 0.5, 1e-3)  # half the variance as noise: a stated default
    prec = lam * np.eye(A.shape[1]) + A.T @ A / s2
    cov = np.linalg.inv(prec)
    mu = cov @ A.T @ ys / s2
    return mu, cov


def score_candidates(policy: str, Z, meas_idx, y_meas, open_idx, rng, *, prior=None,
                     beta: float = 2.0, seed: int = 0) -> tuple[np.ndarray, str]:
    """A score for each of ``open_idx`` (larger = screen sooner) and what it means.

    Parameters
    ----------
    policy : str
        One of :data:`HIT_POLICIES`.
    Z : numpy.ndarray
        Prepared features of the whole pool, ``(n, k)`` (:func:`prepare_features`).
    meas_idx : array_like of int
        Rows of ``Z`` already measured.
    y_meas : array_like of float
        Their measured values, in the order of ``meas_idx``.
    open_idx : array_like of int
        Rows of ``Z`` still unmeasured, the ones scored.
    rng : numpy.random.Generator
        Draws the random policy, the Thompson sample and the first bandit batch.
    prior : array_like of float, optional
        One score per pool candidate (larger = more likely a hit); required by
        ``"prior_nn"``, ignored by the others.
    beta : float
        Weight of the standard deviation in the UCB and GP-UCB scores.
    seed : int
        Seed of the Gaussian process fit (``"gp_ucb"``).

    Returns
    -------
    scores : numpy.ndarray
        One score per entry of ``open_idx``.
    meaning : str
        What the score is, for the reason column.
    """
    if policy not in HIT_POLICIES:
        raise ValidationError(f"unknown hit policy {policy!r}.",
                              f"use one of {', '.join(HIT_POLICIES)}.")
    n_open = len(open_idx)
    if policy == "random" or (policy != "prior_nn" and len(meas_idx) < 2):
        return rng.random(n_open), "uniform draw"
    if policy == "prior_nn":
        if prior is None:
            raise ValidationError("policy 'prior_nn' needs a ranked list of candidates.",
                                  "pass prior= a score per candidate (larger = more likely a "
                                  "hit), e.g. from your own ranked gene list.")
        if len(meas_idx) == 0:
            return np.asarray(prior, float)[open_idx], "rank in your prior list"
        best = np.asarray(meas_idx)[np.argsort(-np.asarray(y_meas))[:8]]
        U = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        sim = U[open_idx] @ U[best].T
        return sim.max(1), "cosine similarity to a best measured candidate"
    Zm, Zo = Z[meas_idx], Z[open_idx]
    y = np.asarray(y_meas, float)
    if policy in ("thompson", "ucb"):
        mu, cov = _blr(Zm, y)
        Ao = np.hstack([Zo, np.ones((n_open, 1))])
        if policy == "thompson":
            theta = rng.multivariate_normal(mu, cov, method="cholesky")
            return Ao @ theta, "value under a posterior draw of the linear model"
        sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", Ao, cov, Ao), 0))
        return Ao @ mu + beta * sd, f"predicted value + {beta:g} sd (linear model)"
    import warnings

    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = ConstantKernel(1.0) * RBF(np.sqrt(Z.shape[1])) + WhiteKernel(0.5)
    gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on tiny early batches
        gp.fit(Zm, y)
    m, sd = gp.predict(Zo, return_std=True)
    return m + beta * sd, f"GP mean + {beta:g} sd"


def hit_campaign(X, score, hits, *, policy: str, batch_size: int, rounds: int = 5,
                 permute: bool = False, prior=None, seed: int = 0) -> pd.DataFrame:
    """Replay ``rounds`` batches of ``policy`` on a fully measured table.

    With ``permute=True`` the policy sees the measured outcomes shuffled.

    Parameters
    ----------
    X : array_like
        Features of the pool, one row per candidate.
    score : array_like of float
        The measured phenotype of every candidate (revealed once it is picked).
    hits : array_like of bool
        Which candidates count as hits.
    policy : str
        One of :data:`HIT_POLICIES`.
    batch_size : int
        Candidates picked per round.
    rounds : int
        Number of rounds; ``batch_size * rounds`` must not exceed the pool.
    permute : bool
        Shuffle the measured outcomes among the measured candidates before each update (the
        permuted-feedback control).
    prior : array_like of float, optional
        Prior score per candidate, for ``"prior_nn"``.
    seed : int
        Seeds the draws; the same with and without ``permute``.

    Returns
    -------
    pandas.DataFrame
        One row per round: ``round``, ``policy``, ``permuted``, ``measured``, ``hits_found``
        (cumulative) and ``hit_recall`` (found / all hits).
    """
    X = check_pool(X)
    score = np.asarray(score, float)
    hits = np.asarray(hits, bool)
    n = len(X)
    if len(score) != n or len(hits) != n:
        raise ValidationError(f"{len(score)} scores and {len(hits)} hit flags for {n} "
                              "candidates.", "give one score and one hit flag per candidate.")
    if batch_size * rounds > n:
        raise ValidationError(
            f"{rounds} rounds of {batch_size} ask for {batch_size * rounds} candidates, more "
            f"than the {n} in the pool.", "use fewer rounds or smaller batches.")
    if not hits.any():
        raise ValidationError("the table marks no candidate as a hit.",
                              "mark the top movers as hits (e.g. the top 5% of the score).")
    Z = prepare_features(X)
    rng = np.random.default_rng([seed, 41])  # the same draws with and without the control
    shuffle = np.random.default_rng([seed, 42])
    measured = np.zeros(n, bool)
    rows = []
    for r in range(1, rounds + 1):
        meas_idx = np.flatnonzero(measured)
        y = score[meas_idx]
        if permute and len(y):
            y = shuffle.permutation(y)
        open_idx = np.flatnonzero(~measured)
        s, _ = score_candidates(policy, Z, meas_idx, y, open_idx, rng, prior=prior, seed=seed)
        order = np.lexsort((rng.random(len(open_idx)), -s))[:batch_size]
        measured[open_idx[order]] = True
        found = int((measured & hits).sum())
        rows.append({"round": r, "policy": policy, "permuted": permute,
                     "measured": int(measured.sum()), "hits_found": found,
                     "hit_recall": found / hits.sum()})
    return pd.DataFrame(rows)


def feedback_flags(recall: pd.DataFrame, *, margin: float = 0.05) -> pd.DataFrame:
    """Per policy: final recall with real and with permuted outcomes, and a flag where the
    permuted control does not drop by more than ``margin`` (the policy ignores feedback).

    Parameters
    ----------
    recall : pandas.DataFrame
        Columns ``policy``, ``permuted``, ``hit_recall`` (final round, one row per seed).
    margin : float
        The drop in mean recall below which a policy is flagged.

    Returns
    -------
    pandas.DataFrame
        Indexed by policy: ``recall``, ``recall_permuted``, ``drop`` and
        ``ignores_feedback``.
    """
    m = recall.groupby(["policy", "permuted"]).hit_recall.mean().unstack("permuted")
    out = pd.DataFrame({"recall": m[False], "recall_permuted": m[True]})
    out["drop"] = out.recall - out.recall_permuted
    out["ignores_feedback"] = out["drop"] <= margin
    return out
