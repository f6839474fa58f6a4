"""Confidence bounds behind a certified stop of a screen (numpy only).

After each acquired batch of ``n`` items the model's predictions are compared with the
labels that come back: ``k`` of ``n`` were right. If the batch is a sample of the items the
model still has to predict, the model's accuracy ``q`` there is bounded from below, with
confidence ``1 - delta``, by the Chernoff (relative-entropy) bound

    L = min { q <= k/n : n * KL(k/n || q) <= log(1/delta) },

because ``P(Bin(n, q) >= k) <= exp(-n KL(k/n || q))`` for ``q <= k/n`` (Chernoff 1952;
Hoeffding 1963, eq. 2.1). The system accuracy of the hybrid table (measured items are right,
the rest are predicted) is then at least ``(n_measured + L * n_inferred) / n_total``
(Inference Set Design, Neporozhnii et al., ICLR 2025).

The exact binomial (Clopper-Pearson) lower bound is given too: it is never below the
Chernoff one, and the tests check both against direct binomial tail sums.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kl_bernoulli", "kl_lower_bound", "binomial_tail_ge", "clopper_pearson_lower",
           "system_accuracy_bound"]


def _check(k, n, delta) -> tuple[int, int, float]:
    from workbench.errors import ValidationError

    if isinstance(k, bool) or isinstance(n, bool):
        raise ValidationError("k and n must be counts, not booleans.", "pass whole numbers.")
    if int(n) != n or n < 1:
        raise ValidationError(f"batch size n={n!r} must be a whole number >= 1.",
                              "bound the accuracy from a batch of at least one labelled item.")
    if int(k) != k or not 0 <= k <= n:
        raise ValidationError(f"k={k!r} correct out of n={n} is not a count in 0..n.",
                              "pass the number of correct predictions in the batch.")
    if not 0.0 < float(delta) < 1.0:
        raise ValidationError(f"delta={delta!r} must lie strictly between 0 and 1.",
                              "give the allowed failure probability, e.g. delta=0.05.")
    return int(k), int(n), float(delta)


def kl_bernoulli(p, q):
    """KL(Bernoulli(p) || Bernoulli(q)) in nats, elementwise; ``0 log 0 = 0``.

    Parameters
    ----------
    p : array_like of float
        Success probabilities of the first distribution, in [0, 1].
    q : array_like of float
        Those of the second (clipped away from 0 and 1).

    Returns
    -------
    numpy.ndarray
        The divergence, broadcast over ``p`` and ``q``.
    """
    p = np.asarray(p, float)
    q = np.clip(np.asarray(q, float), 1e-300, 1 - 1e-16)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log(np.where(p < 1, 1 - p, 1.0) / (1 - q)), 0.0)
    return a + b


def kl_lower_bound(k: int, n: int, delta: float, *, tol: float = 1e-12) -> float:
    """Chernoff/KL lower confidence bound on a success rate from ``k`` of ``n`` (bisection).

    With ``k = 0`` it is 0; with ``k = n`` it is ``delta ** (1/n)``.

    Parameters
    ----------
    k : int
        Successes (correct predictions), in ``0..n``.
    n : int
        Trials (labelled items in the batch), at least 1.
    delta : float
        Failure probability, in (0, 1).
    tol : float
        Bisection tolerance.

    Returns
    -------
    float
        The smallest ``q`` in ``[0, k/n]`` with ``n * KL(k/n || q) <= log(1/delta)``.
    """
    k, n, delta = _check(k, n, delta)
    if k == 0:
        return 0.0
    p = k / n
    level = math.log(1.0 / delta) / n
    lo, hi = 0.0, p  # KL(p || q) decreases in q on [0, p]; KL(p||lo) > level >= KL(p||hi)=0
    if float(kl_bernoulli(p, 1e-300)) <= level:
        return 0.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if float(kl_bernoulli(p, mid)) > level:
            lo = mid
        else:
            hi = mid
    return hi


def binomial_tail_ge(k: int, n: int, q: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, q)``, summed in log space.

    Parameters
    ----------
    k : int
        The threshold.
    n : int
        Trials.
    q : float
        Success probability.

    Returns
    -------
    float
        The tail probability, in [0, 1].
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    j = np.arange(k, n + 1)
    logc = (math.lgamma(n + 1) - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1)
                                           for i in j]))
    terms = logc + j * math.log(q) + (n - j) * math.log1p(-q)
    m = terms.max()
    return float(min(1.0, math.exp(m) * np.exp(terms - m).sum()))


def clopper_pearson_lower(k: int, n: int, delta: float, *, tol: float = 1e-12) -> float:
    """Exact one-sided lower bound: the ``q`` with ``P(Bin(n, q) >= k) = delta``.

    Parameters
    ----------
    k : int
        Successes, in ``0..n``.
    n : int
        Trials, at least 1.
    delta : float
        Failure probability, in (0, 1).
    tol : float
        Bisection tolerance.

    Returns
    -------
    float
        The lower bound (0 when ``k = 0``).
    """
    k, n, delta = _check(k, n, delta)
    if k == 0:
        return 0.0
    lo, hi = 0.0, k / n  # the tail grows with q
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if binomial_tail_ge(k, n, mid) < delta:
            lo = mid
        else:
            hi = mid
    return lo


def system_accuracy_bound(n_measured: int, n_inferred: int, model_lower: float) -> float:
    """Lower bound on the hybrid table's accuracy: measured items right, the rest at
    ``model_lower``.

    Parameters
    ----------
    n_measured : int
        Items measured (counted as right).
    n_inferred : int
        Items the model predicts.
    model_lower : float
        Lower bound on the model's accuracy on them.

    Returns
    -------
    float
        ``(n_measured + model_lower * n_inferred) / (n_measured + n_inferred)``.
    """
    total = n_measured + n_inferred
    if total <= 0:
        from workbench.errors import ValidationError

        raise ValidationError("the pool is empty.", "give a pool with at least one candidate.")
    return (n_measured + model_lower * n_inferred) / total
