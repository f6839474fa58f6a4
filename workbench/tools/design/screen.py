"""Screen planning with a certified stop (Inference Set Design).

A pool of ``N`` candidates, each with features, is split into what is measured (the
observation set) and what a model predicts (the inference set). Each round the model is
fitted on the measured items, predicts the label of every other one with a confidence, and
the planner proposes the next batch to measure. When the batch's labels come back, the
model's accuracy on it gives a Chernoff/KL lower bound ``L`` on its accuracy over the items
it still predicts (:mod:`workbench.models.design_bounds`), hence a bound on the accuracy of
the whole hybrid table, ``(n_measured + L * n_predicted) / N``; the screen can stop when
that bound exceeds the target ``gamma`` (Neporozhnii, Roy, Bengio, Hartford, "Efficient
Biological Data Acquisition through Inference Set Design", ICLR 2025).

Policies (:data:`SCREEN_POLICIES`):

``"hardest"``
    the ``b`` items the model is least sure of, ``u = K/(K-1) * (1 - max_c p_c)`` (the
    paper's choice: measuring hard items leaves an easy inference set).
``"uncertainty"``
    model-improving acquisition: the items where a bootstrap ensemble of the model
    disagrees most (BALD mutual information; Houlsby et al. 2011), i.e. what would teach the
    model most, not what it would get wrong.
``"random"``
    a uniform draw from the unmeasured items.

What the certificate rests on. With ``audit=0`` the bound comes from the acquired batch
itself. For ``"random"`` the batch is a uniform sample of the inference set and the bound
holds as stated. For ``"hardest"`` the batch is the model's least confident items, so the
bound is a guarantee only if the model is no less accurate on the rest than on its hardest
items (the paper's pessimistic reading). With ``audit=m > 0`` each round also measures ``m``
uniform picks from the inference set and the bound comes from them: valid for every
policy, at the price of ``m`` extra measurements a round. In both cases a stop taken at the
first round that passes is checked with a fixed ``delta`` per round; the campaign simulator
(:func:`screen_campaign`) reports how often the realised accuracy fell short.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.models.design_bounds import kl_lower_bound, system_accuracy_bound

__all__ = ["SCREEN_POLICIES", "prepare_features", "ScreenModel", "acquire", "screen_round",
           "screen_campaign", "check_pool"]

SCREEN_POLICIES = ("hardest", "uncertainty", "random")


def check_pool(X, labels=None, *, budget=None, name: str = "pool"):
    """The pool's features as a float matrix, with clear errors for what cannot be planned.

    Parameters
    ----------
    X : array_like
        Features, one row per candidate.
    labels : array_like, optional
        Measured labels (``None``/NaN for the unmeasured); counts the open candidates for the
        budget check.
    budget : int, optional
        Candidates to propose; checked to be a whole number from 1 to the open candidates.
    name : str
        What the pool is called in the error messages.

    Returns
    -------
    numpy.ndarray
        ``X`` as floats.

    Raises
    ------
    ValidationError
        For an empty pool, no features, non-numeric or non-finite features, or a budget out of
        range.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValidationError(f"the {name} has no candidates (features of shape {X.shape}).",
                              "give one row of features per candidate.")
    if X.shape[1] == 0:
        raise ValidationError(f"the {name}'s {X.shape[0]} candidates have no features.",
                              "give feature columns (e.g. the Study's perturbation embeddings, "
                              "or a table with numeric columns per candidate).")
    if not np.issubdtype(X.dtype, np.number):
        raise ValidationError(f"the {name}'s features are not numeric (dtype {X.dtype}).",
                              "pass numeric feature columns only.")
    X = X.astype(float)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(1).sum())
        raise ValidationError(f"{bad} candidates of the {name} have NaN or infinite features.",
                              "drop or impute those rows before planning.")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValidationError(f"budget must be a whole number >= 1, got {budget!r}.",
                                  "give --budget N with N >= 1 (items to measure next).")
        n_open = X.shape[0] if labels is None else int(pd.isna(np.asarray(labels, object)).sum())
        if budget > n_open:
            raise ValidationError(
                f"budget {budget} is larger than the {n_open} unmeasured candidates of the "
                f"{name} ({X.shape[0]} in all).",
                f"give a budget of at most {n_open}, or add candidates to the pool.")
    return X


def prepare_features(X, max_dims: int = 32) -> np.ndarray:
    """Standardise the pool's features and keep at most ``max_dims`` principal components
    (fitted on the whole pool: features of unmeasured items are known, labels are not).

    Parameters
    ----------
    X : array_like
        Features, one row per candidate.
    max_dims : int
        Largest number of components kept.

    Returns
    -------
    numpy.ndarray
        ``(n, min(k, max_dims))``: the standardised features, or their principal component
        scores when there are more than ``max_dims`` columns.
    """
    X = np.asarray(X, float)
    sd = X.std(0)
    Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
    if Z.shape[1] <= max_dims:
        return Z
    u, s, _ = np.linalg.svd(Z, full_matrices=False)
    return u[:, :max_dims] * s[:max_dims] / np.sqrt(len(Z))


class ScreenModel:
    """Multinomial logistic regression (scikit-learn) with its class probabilities.

    With a single class among the measured items it predicts that class for every item
    and reports every item as maximally uncertain, so that acquisition treats them alike.
    ``n_members > 0`` also fits that many bootstrap copies for :meth:`disagreement`.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    n_members : int
        Bootstrap copies fitted for :meth:`disagreement` (0: none).
    seed : int
        Seed of the bootstrap resamples.
    """

    def __init__(self, C: float = 1.0, n_members: int = 0, seed: int = 0):
        self.C = C
        self.n_members = n_members
        self.seed = seed

    def _one(self, X, y):
        import warnings

        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():  # few items per class early in a screen
            warnings.simplefilter("ignore", UserWarning)
            return LogisticRegression(C=self.C, max_iter=500).fit(X, y)

    def fit(self, X, y):
        """Fit on the measured items (and the bootstrap members, when asked).

        Parameters
        ----------
        X : array_like
            ``(n, k)`` features of the measured items.
        y : array_like
            Their labels.

        Returns
        -------
        ScreenModel
            ``self``, with ``classes_``, ``model_`` (``None`` for one class) and ``members_``.
        """
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        self.model_ = self._one(X, y) if len(self.classes_) > 1 else None
        self.members_ = []
        rng = np.random.default_rng([self.seed, 7])
        for _ in range(self.n_members):
            idx = rng.integers(0, len(y), len(y))
            if len(np.unique(y[idx])) < 2:
                continue
            m = self._one(X[idx], y[idx])
            self.members_.append(m)
        return self

    def _proba(self, model, X):
        p = np.zeros((len(X), len(self.classes_)))
        cols = np.searchsorted(self.classes_, model.classes_)
        p[:, cols] = model.predict_proba(X)
        return p

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array_like
            ``(n, k)`` features.

        Returns
        -------
        numpy.ndarray
            ``(n, K)``; ``(n, 1)`` of 0.5 for a one-class model.
        """
        if self.model_ is None:
            return np.full((len(X), 1), 0.5)
        return self._proba(self.model_, X)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each item.

        Parameters
        ----------
        X : array_like
            ``(n, k)`` features.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` labels.
        """
        return self.classes_[np.argmax(self.predict_proba(X), 1)]

    def uncertainty(self, X) -> np.ndarray:
        """Least-confidence ``K/(K-1) (1 - max p)`` in [0, 1] (1 for a one-class model).

        Parameters
        ----------
        X : array_like
            ``(n, k)`` features.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` in [0, 1].
        """
        p = self.predict_proba(X)
        k = max(p.shape[1], 2)
        if self.model_ is None:
            return np.ones(len(X))
        return np.clip(k / (k - 1) * (1 - p.max(1)), 0, 1)

    def disagreement(self, X) -> np.ndarray:
        """BALD mutual information over the bootstrap members (without members: :meth:`uncertainty`).

        Parameters
        ----------
        X : array_like
            ``(n, k)`` features.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` in nats.
        """
        if not self.members_:
            return self.uncertainty(X)
        ps = np.stack([self._proba(m, X) for m in self.members_])
        ent = lambda p: -(p * np.log(np.clip(p, 1e-12, 1))).sum(-1)  # noqa: E731
        return ent(ps.mean(0)) - ent(ps).mean(0)


def acquire(policy: str, model: ScreenModel, X, open_idx, b: int, rng) -> tuple:
    """Pick ``b`` of ``open_idx``: returns (chosen indices, their scores, one reason each).

    Parameters
    ----------
    policy : str
        One of :data:`SCREEN_POLICIES`.
    model : ScreenModel
        The fitted model (unused by ``"random"``).
    X : numpy.ndarray
        Prepared features of the pool.
    open_idx : array_like of int
        Rows still unmeasured.
    b : int
        Batch size.
    rng : numpy.random.Generator
        Draws the random pick and the tie-breaks.

    Returns
    -------
    tuple
        ``(chosen indices, scores, reasons)``; scores are zero for ``"random"``.
    """
    if policy not in SCREEN_POLICIES:
        raise ValidationError(f"unknown screen policy {policy!r}.",
                              f"use one of {', '.join(SCREEN_POLICIES)}.")
    open_idx = np.asarray(open_idx)
    if policy == "random":
        pick = rng.choice(open_idx, size=b, replace=False)
        return pick, np.zeros(b), ["uniform draw from the unmeasured candidates"] * b
    score = (model.uncertainty(X[open_idx]) if policy == "hardest"
             else model.disagreement(X[open_idx]))
    order = np.lexsort((rng.random(len(open_idx)), -score))[:b]
    what = ("least confident prediction: uncertainty" if policy == "hardest"
            else "largest disagreement of the bootstrap models: mutual information")
    return open_idx[order], score[order], [f"{what} {s:.2f}" for s in score[order]]


def screen_round(X, labels, *, budget: int, policy: str = "hardest", seed: int = 0,
                 C: float = 1.0) -> dict:
    """One planning round on a pool: fit on the measured items, propose ``budget`` more.

    With nothing measured yet the batch is drawn at random, whatever ``policy``.

    Parameters
    ----------
    X : array_like
        Features, one row per candidate.
    labels : array_like
        The measured labels and ``None``/NaN for the rest.
    budget : int
        Candidates to propose.
    policy : str
        One of :data:`SCREEN_POLICIES`.
    seed : int
        Seed of the draws and the bootstrap.
    C : float
        Inverse regularisation strength of the model.

    Returns
    -------
    dict
        ``pick`` (proposed indices), ``score`` and ``reason`` per pick, ``predicted`` and
        ``confidence`` for every candidate (``None``/NaN when nothing is measured) and
        ``policy`` (the one used).
    """
    X = check_pool(X, labels, budget=budget)
    labels = pd.Series(np.asarray(labels, object))
    meas = ~labels.isna().to_numpy()
    policy_used = policy if meas.any() else "random"  # nothing to learn from yet
    Z = prepare_features(X)
    rng = np.random.default_rng([seed, 11])
    model = ScreenModel(C=C, n_members=5 if policy_used == "uncertainty" else 0, seed=seed)
    if meas.any():
        y = labels[meas].astype(str).to_numpy()
        if len(np.unique(y)) < 2 and policy_used != "random":
            raise ValidationError(
                f"the measured labels hold one class only ({y[0]!r}, {len(y)} items): a model "
                "cannot learn to tell classes apart.",
                "measure a first batch with policy 'random' (or add labelled items of another "
                "class), then plan with this policy.")
        model.fit(Z[meas], y)
    open_idx = np.flatnonzero(~meas)
    pick, score, reason = acquire(policy_used, model, Z, open_idx, budget, rng)
    if policy_used != policy:
        reason = [r + " (nothing measured yet: first batch drawn at random)" for r in reason]
    if meas.any():
        pred, conf = model.predict(Z), model.predict_proba(Z).max(1)
    else:
        pred, conf = np.full(len(Z), None, object), np.full(len(Z), np.nan)
    return {"pick": pick, "score": score, "reason": reason, "predicted": pred,
            "confidence": conf, "policy": policy_used}


def screen_campaign(X, y, *, policy: str = "hardest", batch_size: int | None = None,
                    gamma: float = 0.9, delta: float = 0.05, audit: int = 0,
                    n_init: int | None = None, seed: int = 0, C: float = 1.0) -> dict:
    """Replay a screen on a fully labelled pool until the certified bound passes ``gamma``.

    Each round: fit on the measured items, acquire a batch by ``policy``, score the model on
    the batch (or on ``audit`` uniform picks of the inference set) before it is refitted,
    bound the system accuracy, and stop when the bound reaches ``gamma``.

    Parameters
    ----------
    X : array_like
        Features, one row per candidate.
    y : array_like
        Every candidate's label (at least two classes).
    policy : str
        One of :data:`SCREEN_POLICIES`.
    batch_size : int, optional
        Candidates per round (default 5% of the pool, at least 1).
    gamma : float
        Target system accuracy.
    delta : float
        Error probability of each round's bound.
    audit : int
        Uniform picks of the inference set measured each round to certify the model (0: the
        acquired batch certifies it).
    n_init : int, optional
        Candidates measured at random before the first round (default ``batch_size``).
    seed : int
        Seed of the draws.
    C : float
        Inverse regularisation strength of the model.

    Returns
    -------
    dict
        ``history`` (a DataFrame per round: ``fraction_measured``, ``batch_accuracy``,
        ``model_lower``, ``bound``, ``system_accuracy``), ``stop_fraction``,
        ``stop_accuracy`` (the realised system accuracy at the stop, measured items right),
        ``stop_round``, ``oracle_fraction`` (the first fraction whose realised accuracy
        reached ``gamma``), ``batch_size`` and ``policy``.
    """
    X = check_pool(X)
    y = np.asarray(y).astype(str)
    if len(y) != len(X):
        raise ValidationError(f"{len(y)} labels for {len(X)} candidates.",
                              "give one label per row of features.")
    if len(np.unique(y)) < 2:
        raise ValidationError(f"the label column has one class only ({y[0]!r}).",
                              "a screen planner needs at least two label classes.")
    n = len(y)
    b = int(batch_size or max(1, round(0.05 * n)))
    n_init = int(b if n_init is None else n_init)
    Z = prepare_features(X)
    rng = np.random.default_rng([seed, 13])
    measured = np.zeros(n, bool)
    measured[rng.choice(n, size=min(n_init, n), replace=False)] = True
    rows, stop = [], None
    while not measured.all():
        model = ScreenModel(C=C, n_members=5 if policy == "uncertainty" else 0, seed=seed)
        ym = y[measured]
        pol = policy if len(np.unique(ym)) > 1 else "random"  # one class seen: no model yet
        model.fit(Z[measured], ym)
        pred = model.predict(Z)
        open_idx = np.flatnonzero(~measured)
        pick, _, _ = acquire(pol, model, Z, open_idx, min(b, len(open_idx)), rng)
        measured[pick] = True
        if audit > 0 and not measured.all():
            rest = np.flatnonzero(~measured)
            check = rng.choice(rest, size=min(audit, len(rest)), replace=False)
            measured[check] = True
        else:
            check = pick
        k = int((pred[check] == y[check]).sum())
        low = kl_lower_bound(k, len(check), delta)
        n_meas = int(measured.sum())
        bound = system_accuracy_bound(n_meas, n - n_meas, low)
        realised = (n_meas + int((pred[~measured] == y[~measured]).sum())) / n
        rows.append({"round": len(rows) + 1, "fraction_measured": n_meas / n,
                     "batch_accuracy": k / len(check), "model_lower": low, "bound": bound,
                     "system_accuracy": realised})
        if bound >= gamma:
            stop = rows[-1]
            break
    hist = pd.DataFrame(rows)
    if stop is None:
        stop = {"fraction_measured": 1.0, "system_accuracy": 1.0, "bound": 1.0,
                "round": len(rows)}
    first_true = hist.fraction_measured[hist.system_accuracy >= gamma]
    return {"history": hist, "stop_fraction": float(stop["fraction_measured"]),
            "stop_accuracy": float(stop["system_accuracy"]), "stop_round": int(stop["round"]),
            "oracle_fraction": float(first_true.iloc[0]) if len(first_true) else 1.0,
            "batch_size": b, "policy": policy}
