"""Guided phenotype search: "find more cells like this one", with a certified prevalence.

Exemplar Guided Active Learning (Hartford, Leyton-Brown, Raviv, Padnos, Lev, Lenz, NeurIPS
2020) in the form a screen needs. A person shows one or more exemplar crops of a phenotype;
the search asks for yes/no labels of crops drawn near them in embedding space, and after
every batch reports an interval on the phenotype's prevalence in the whole pool that holds
at every look (so stopping when it decides is allowed), until the phenotype is

- **confirmed common**: the lower bound exceeds the user's threshold ``tau``, or
- **certified rare**: the upper bound falls below ``tau``,

each with confidence ``1 - delta``. Least-confidence active learning with epsilon-random
exploration then trains a phenotype classifier (scikit-learn logistic regression).

Sampling. Draw ``t`` picks item ``i`` with probability

    q_t(i) = (1 - a_t) * k_i / sum_j k_j + a_t / N,    k_i = exp(-d_i^2 / (2 sigma^2)),

where ``d_i`` is the embedding distance of item ``i`` to its nearest exemplar and the
uniform floor ``a_t`` keeps every item reachable. Draws are made *with replacement*: then
``X_t = y(i_t) / (N q_t(i_t))`` has conditional mean exactly the prevalence ``p`` whatever
``q_t`` the past chose, so the running mean is unbiased and the terms form a martingale
difference sequence, which is what the interval needs. A crop drawn twice is labelled once
(the oracle is not asked again), so repeats cost draws, not labels; with pools much larger
than the label budget they are rare. A without-replacement design would need the
Horvitz-Thompson inclusion probabilities of a sequential draw, which have no closed form.

Bandwidth. ``sigma`` is the smallest on a grid of distance quantiles whose proposal keeps
the effective sample size of the importance weights, ``1 / E_q[w^2]`` with ``w = 1/(N q)``
(Kong 1992; the fraction of draws worth uniform ones), at or above ``min_ess``. The floor
switches to 1 (a uniform survey) once the estimate falls below ``tau``: only uniform draws
can rule out positives far from the exemplars, and an upper bound is what a rare phenotype
needs. Both choices use only past draws, so the interval stays valid.

Interval. Confidence sequences by betting (Waudby-Smith and Ramdas, "Estimating means of
bounded random variables by betting", JRSS-B 2024): for a candidate prevalence ``m`` the
capital ``prod_t (1 + lam_t (X_t - m))`` with predictable bets ``lam_t`` is a nonnegative
supermartingale when ``p <= m`` (lower side, bets in ``[0, c/m]``, needs only ``X >= 0``);
``prod_t (1 - lam_t (X_t - m))`` is one when ``p >= m`` (upper side, bets in
``[0, 1/(R_t - m))`` with ``R_t = max_i 1/(N q_t(i))`` the range of draw ``t``). Ville's
inequality makes the set of ``m`` whose capital never reached ``2/delta`` a ``1 - delta``
interval uniformly over time. Baseline: uniform draws without replacement with the
Clopper-Pearson interval, ``delta`` split over looks as ``delta / (k (k + 1))``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nearest_exemplar_distance", "guided_proposal", "ess_fraction", "choose_bandwidth",
           "betting_interval", "clopper_pearson_interval", "SearchState", "PhenotypeSearch",
           "PhenotypeClassifier", "POLICIES", "BET_FRACTIONS", "BettingBounds", "simulate_search"]

POLICIES = ("guided", "random", "least_confidence")


def nearest_exemplar_distance(X: np.ndarray, exemplars) -> np.ndarray:
    """Euclidean distance of every row of ``X`` to its nearest exemplar row.

    Parameters
    ----------
    X : numpy.ndarray
        ``(n, d)`` embedding.
    exemplars : array_like of int
        Row indices of the exemplars.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` distances (0 for the exemplars).
    """
    X = np.asarray(X, float)
    E = X[np.asarray(exemplars, int)]
    d2 = (X ** 2).sum(1)[:, None] - 2 * X @ E.T + (E ** 2).sum(1)[None, :]
    return np.sqrt(np.clip(d2.min(1), 0, None))


def guided_proposal(d: np.ndarray, sigma: float, floor: float) -> np.ndarray:
    """Sampling probabilities: Gaussian kernel on ``d`` mixed with a uniform ``floor``.

    Parameters
    ----------
    d : numpy.ndarray
        Distance of every item to its nearest exemplar.
    sigma : float
        Kernel bandwidth; not finite: uniform.
    floor : float
        Uniform share of the mixture (1 or more: uniform).

    Returns
    -------
    numpy.ndarray
        Probabilities summing to 1.
    """
    n = len(d)
    if not np.isfinite(sigma) or floor >= 1:
        return np.full(n, 1.0 / n)
    logk = -(d ** 2) / (2 * sigma ** 2)
    k = np.exp(logk - logk.max())
    return (1 - floor) * k / k.sum() + floor / n


def ess_fraction(q: np.ndarray) -> float:
    """``1 / E_q[w^2]`` for ``w = 1/(N q)``: the share of draws worth uniform ones.

    Parameters
    ----------
    q : numpy.ndarray
        Sampling probabilities over the ``N`` items.

    Returns
    -------
    float
        In (0, 1]; 1 for uniform draws.
    """
    n = len(q)
    return float(1.0 / np.sum(1.0 / (n * n * q)))


def choose_bandwidth(d: np.ndarray, floor: float, min_ess: float) -> float:
    """Smallest distance-quantile bandwidth whose proposal has ESS fraction >= ``min_ess``
    (``inf``, i.e. uniform draws, when none has).

    Parameters
    ----------
    d : numpy.ndarray
        Distance of every item to its nearest exemplar.
    floor : float
        Uniform share of the proposal.
    min_ess : float
        The ESS fraction the proposal must keep.

    Returns
    -------
    float
        The bandwidth, or ``inf``.
    """
    pos = d[d > 0]
    if len(pos) == 0:
        return float("inf")
    for s in np.quantile(pos, np.linspace(0.005, 1.0, 60)):
        if s > 0 and ess_fraction(guided_proposal(d, s, floor)) >= min_ess:
            return float(s)
    return float("inf")


#: Bet fractions of the diversified mixture: each is a fixed share of the largest bet the
#: side allows, so every component is predictable and their average is a martingale too.
BET_FRACTIONS = np.geomspace(1e-3, 0.5, 12)


def _grid() -> np.ndarray:
    return np.unique(np.concatenate([np.geomspace(1e-6, 1.0, 481), np.linspace(0.0, 1.0, 201)]))


class BettingBounds:
    """Time-uniform ``1 - delta`` interval on the mean of nonnegative terms, updated as
    terms arrive.

    Each term comes with its range ``R_t``, the largest value it could have taken (known
    before it was drawn). For each candidate mean ``m`` on a grid (steps of 3 % from 1e-6,
    and of 0.005 on [0, 1]) the lower side bets ``lam = c / m`` and the upper side
    ``lam = min(c / m, 1 / (2 (R_t - m)))`` for every ``c`` of :data:`BET_FRACTIONS`, and
    the capitals are averaged (a diversified-Kelly mixture, Waudby-Smith and Ramdas 2024,
    section 5). ``m`` is excluded once its mixed capital has reached ``2 / delta`` on
    either side at any look; the bounds are rounded outward to the grid.

    Parameters
    ----------
    delta : float
        Error probability of the interval, in (0, 1).
    grid : numpy.ndarray, optional
        Candidate means (default: the grid described above).
    """

    def __init__(self, delta: float, grid: np.ndarray | None = None):
        self.delta = delta
        self.grid = _grid() if grid is None else np.asarray(grid, float)
        shape = (len(self.grid), len(BET_FRACTIONS))
        self.log_lo = np.zeros(shape)
        self.log_hi = np.zeros(shape)
        self.max_lo = np.full(len(self.grid), -np.inf)
        self.max_hi = np.full(len(self.grid), -np.inf)
        self.n = 0
        self.total = 0.0

    def update(self, x, ranges) -> BettingBounds:
        """Add terms, in the order drawn.

        Parameters
        ----------
        x : array_like of float
            Nonnegative terms.
        ranges : array_like of float
            The range ``R_t`` of each term, known before it was drawn.

        Returns
        -------
        BettingBounds
            ``self``.
        """
        x = np.asarray(x, float)
        if len(x) == 0:
            return self
        r = np.asarray(ranges, float)
        m = self.grid[None, :, None]
        inv_m = 1.0 / np.maximum(m, 1e-12)
        c = BET_FRACTIONS[None, None, :]
        xx = x[:, None, None]
        lo = self.log_lo + np.cumsum(np.log1p(c * inv_m * (xx - m)), 0)
        lam_hi = np.minimum(c * inv_m, 0.5 / np.maximum(r[:, None, None] - m, 1e-12))
        hi = self.log_hi + np.cumsum(np.log1p(-lam_hi * (xx - m)), 0)
        self.max_lo = np.maximum(self.max_lo, np.logaddexp.reduce(lo, axis=2).max(0))
        self.max_hi = np.maximum(self.max_hi, np.logaddexp.reduce(hi, axis=2).max(0))
        self.log_lo, self.log_hi = lo[-1], hi[-1]
        self.n += len(x)
        self.total += float(x.sum())
        return self

    def interval(self) -> tuple[float, float]:
        """The current interval, rounded outward to the grid.

        Returns
        -------
        tuple of float
            ``(lower, upper)``; ``(0, 1)`` before any term.
        """
        if self.n == 0:
            return 0.0, 1.0
        thresh = np.log(2 / self.delta) + np.log(len(BET_FRACTIONS))  # mixture's sum
        kept = (self.max_lo < thresh) & (self.max_hi < thresh)
        g = self.grid
        if not kept.any():  # the two sides disagree only by grid rounding
            j = int(np.argmin(np.abs(g - self.total / self.n)))
            return float(g[max(j - 1, 0)]), float(g[min(j + 1, len(g) - 1)])
        idx = np.flatnonzero(kept)
        lo = g[idx[0] - 1] if idx[0] > 0 else 0.0
        hi = g[idx[-1] + 1] if idx[-1] + 1 < len(g) else 1.0
        return float(lo), float(hi)


def betting_interval(x, ranges, delta: float) -> tuple[float, float]:
    """:class:`BettingBounds` over all terms at once: ``(lower, upper)`` after the last.

    Parameters
    ----------
    x : array_like of float
        Nonnegative terms, in the order drawn.
    ranges : array_like of float
        The range ``R_t`` of each term.
    delta : float
        Error probability.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.
    """
    return BettingBounds(delta).update(x, ranges).interval()


def clopper_pearson_interval(k: int, n: int, delta: float) -> tuple[float, float]:
    """Two-sided exact binomial interval with ``delta / 2`` in each tail.

    Parameters
    ----------
    k : int
        Positives.
    n : int
        Labels (``0``: the interval is ``(0, 1)``).
    delta : float
        Total error probability.

    Returns
    -------
    tuple of float
        ``(lower, upper)``.
    """
    from scipy.stats import beta

    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(beta.ppf(delta / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - delta / 2, k + 1, n - k))
    return lo, hi


class SearchState:
    """What a search has seen: draws (item, its probability, the draw's range, policy,
    round) and the labels of the distinct items labelled. Plain arrays, so that a step can
    store it and a later call resume it.

    Parameters
    ----------
    n_items : int
        Size of the pool.
    """

    def __init__(self, n_items: int):
        self.n_items = n_items
        self.item: list[int] = []
        self.prob: list[float] = []
        self.range: list[float] = []
        self.round: list[int] = []
        self.policy: list[str] = []
        self.labels: dict[int, bool] = {}

    @property
    def n_rounds(self) -> int:
        return max(self.round) + 1 if self.round else 0

    def sampled(self) -> np.ndarray:
        """Positions of the draws made with a known probability (not active learning).

        Returns
        -------
        numpy.ndarray of int
            Positions in the draw lists.
        """
        return np.flatnonzero(np.isfinite(np.asarray(self.prob, float)))

    def terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Importance-weighted terms ``y / (N q)`` of the sampled draws, and their ranges.

        Returns
        -------
        terms : numpy.ndarray
            ``y / (N q)`` per sampled draw.
        ranges : numpy.ndarray
            The range of each draw.
        """
        k = self.sampled()
        item = np.asarray(self.item, int)[k]
        y = np.array([self.labels.get(int(i), False) for i in item], float)
        q = np.asarray(self.prob, float)[k]
        return y / (self.n_items * q), np.asarray(self.range, float)[k]


class PhenotypeSearch:
    """Guided search around exemplars, then active learning of a phenotype classifier.

    Parameters
    ----------
    X : array_like
        ``(n, d)`` embedding of the pool.
    exemplars : sequence of int
        Row indices of the exemplars.
    tau : float
        The prevalence threshold of the stop.
    delta : float
        The allowed error of the stop.
    batch : int
        Draws per round.
    policy : str
        One of :data:`POLICIES` (``"guided"`` ours; ``"random"`` and ``"least_confidence"``
        the baselines).
    floor : float
        The uniform share of the guided proposal.
    min_ess : float
        The ESS fraction the bandwidth must keep.
    epsilon : float
        The random share of active-learning picks.
    seed : int
        Seed of the draws (per round).
    """

    def __init__(self, X, exemplars, *, tau: float = 0.01, delta: float = 0.05,
                 batch: int = 20, policy: str = "guided", floor: float = 0.05,
                 min_ess: float = 0.1, epsilon: float = 0.2, seed: int = 0):
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r} is not one of {POLICIES}")
        self.X = np.asarray(X, float)
        self.exemplars = [int(e) for e in exemplars]
        self.tau, self.delta, self.batch, self.policy = tau, delta, batch, policy
        self.floor, self.min_ess, self.epsilon, self.seed = floor, min_ess, epsilon, seed
        self.d_ = nearest_exemplar_distance(self.X, self.exemplars)
        self.sigma_ = choose_bandwidth(self.d_, floor, min_ess)
        self.state = SearchState(len(self.X))
        self._bounds = BettingBounds(delta)
        self._seen = 0

    def _sync_bounds(self) -> BettingBounds:
        x, r = self.state.terms()
        if len(x) > self._seen:
            self._bounds.update(x[self._seen:], r[self._seen:])
            self._seen = len(x)
        return self._bounds

    # ------------------------------------------------------------------ interval
    def interval(self) -> tuple[float, float]:
        """Current ``1 - delta`` interval on the prevalence (NaN for least confidence,
        whose picks have no known probability).

        For the random baseline it is the Clopper-Pearson interval with ``delta`` split over
        the looks.

        Returns
        -------
        tuple of float
            ``(lower, upper)``.
        """
        st = self.state
        if self.policy == "least_confidence":
            return float("nan"), float("nan")
        if self.policy == "random":
            n, k = len(st.labels), int(sum(st.labels.values()))
            looks = max(st.n_rounds, 1)
            return clopper_pearson_interval(k, n, self.delta / (looks * (looks + 1)))
        return self._sync_bounds().interval()

    def estimate(self) -> float:
        """The prevalence estimate: the mean importance-weighted term (guided), else the share of
        positive labels.

        Returns
        -------
        float
            NaN before any label.
        """
        st = self.state
        if not st.labels:
            return float("nan")
        if self.policy == "guided":
            x, _ = st.terms()
            return float(x.mean()) if len(x) else float("nan")
        return float(np.mean(list(st.labels.values())))

    def status(self) -> str:
        """``"confirmed_common"``, ``"certified_rare"`` or ``"open"`` against ``tau``.

        Returns
        -------
        str
            The status.
        """
        lo, hi = self.interval()
        if lo > self.tau:
            return "confirmed_common"
        if hi < self.tau:
            return "certified_rare"
        return "open"

    # ------------------------------------------------------------------ proposals
    def _rng(self):
        return np.random.default_rng([self.seed, self.state.n_rounds, 23])

    def proposal(self) -> np.ndarray:
        """The guided proposal of the next round (uniform in survey mode).

        Returns
        -------
        numpy.ndarray
            Sampling probabilities over the pool.
        """
        est = self.estimate()
        floor = 1.0 if (np.isfinite(est) and est < self.tau) else self.floor
        return guided_proposal(self.d_, self.sigma_, floor)

    def propose(self, classifier: PhenotypeClassifier | None = None) -> np.ndarray:
        """Items to show next (repeats allowed for guided draws; labelled ones are reused).

        While the status is open, guided or random draws; once decided (or for the
        least-confidence baseline) least-confidence picks among unlabelled items with an
        ``epsilon`` share of uniform ones.

        Parameters
        ----------
        classifier : PhenotypeClassifier, optional
            The current classifier, for the least-confidence picks.

        Returns
        -------
        numpy.ndarray of int
            Row indices of the items.
        """
        rng = self._rng()
        st = self.state
        decided = self.status() != "open"
        if self.policy == "least_confidence" or (decided and classifier is not None):
            return self._least_confident(classifier, rng)
        if self.policy == "random":
            free = np.setdiff1d(np.arange(st.n_items), list(st.labels))
            return rng.choice(free, size=min(self.batch, len(free)), replace=False)
        q = self.proposal()
        return rng.choice(st.n_items, size=self.batch, p=q)

    def _least_confident(self, classifier, rng) -> np.ndarray:
        st = self.state
        free = np.setdiff1d(np.arange(st.n_items), list(st.labels))
        b = min(self.batch, len(free))
        if classifier is None or not classifier.trained_:
            return rng.choice(free, size=b, replace=False)
        s = classifier.scores(self.X[free])
        order = free[np.lexsort((rng.random(len(free)), np.abs(s - 0.5)))]
        n_rand = int(rng.binomial(b, self.epsilon))
        pick = list(order[: b - n_rand])
        rest = np.setdiff1d(free, pick)
        pick += list(rng.choice(rest, size=min(n_rand, len(rest)), replace=False))
        return np.asarray(pick, int)

    def record(self, items, labels, *, sampled: bool | None = None) -> None:
        """Record the answers of one round; ``sampled`` draws count in the interval
        (default: while the status was open under a guided or random policy).

        Parameters
        ----------
        items : array_like of int
            The items shown, as proposed.
        labels : sequence of bool
            Their answers (an item already labelled keeps its first answer).
        sampled : bool, optional
            Whether the draws count in the interval.
        """
        st = self.state
        items = np.asarray(items, int)
        if sampled is None:
            sampled = self.policy != "least_confidence" and self.status() == "open"
        rnd = st.n_rounds
        if sampled:
            q = self.proposal() if self.policy == "guided" else None
            for i in items:
                st.item.append(int(i))
                st.prob.append(float(q[i]) if q is not None else 1.0 / st.n_items)
                st.range.append(float(1.0 / (st.n_items * q.min())) if q is not None else 1.0)
                st.round.append(rnd)
                st.policy.append(self.policy)
        else:
            for i in items:
                st.item.append(int(i))
                st.prob.append(float("nan"))
                st.range.append(float("nan"))
                st.round.append(rnd)
                st.policy.append("active_learning")
        for i, y in zip(items, labels):
            st.labels.setdefault(int(i), bool(y))

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Labelled items and their labels, exemplars included as positives.

        Returns
        -------
        items : numpy.ndarray of int
            Labelled rows.
        labels : numpy.ndarray of bool
            Their labels.
        """
        lab = dict(self.state.labels)
        for e in self.exemplars:
            lab.setdefault(e, True)
        idx = np.fromiter(lab.keys(), int)
        return idx, np.fromiter(lab.values(), bool)


class PhenotypeClassifier:
    """Logistic regression (scikit-learn, balanced classes) on standardised embeddings,
    scoring every crop with its probability of showing the phenotype.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    """

    def __init__(self, C: float = 1.0):
        self.C = C
        self.trained_ = False

    def fit(self, X, y) -> PhenotypeClassifier:
        """Fit on labelled rows; with one class only it scores every crop with its share.

        Parameters
        ----------
        X : array_like
            ``(n, d)`` embeddings of the labelled items.
        y : array_like of bool
            Their labels.

        Returns
        -------
        PhenotypeClassifier
            ``self``.
        """
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, float)
        y = np.asarray(y, bool)
        self.mean_, sd = X.mean(0), X.std(0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        self.trained_ = bool(y.any() and (~y).any())
        if self.trained_:
            self.model_ = LogisticRegression(C=self.C, class_weight="balanced", max_iter=1000)
            self.model_.fit((X - self.mean_) / self.sd_, y)
        else:
            self.constant_ = float(y.mean()) if len(y) else 0.5
        return self

    def scores(self, X) -> np.ndarray:
        """The probability of showing the phenotype, per row.

        Parameters
        ----------
        X : array_like
            ``(n, d)`` embeddings.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` in [0, 1].
        """
        X = np.asarray(X, float)
        if not self.trained_:
            return np.full(len(X), self.constant_)
        return self.model_.predict_proba((X - self.mean_) / self.sd_)[:, 1]


def simulate_search(X, y, exemplars, *, policy: str = "guided", tau: float = 0.01,
                    delta: float = 0.05, batch: int = 20, max_labels: int = 2000,
                    stop_at_decision: bool = True, seed: int = 0, **kw) -> dict:
    """Replay a search with the truth ``y`` as the oracle (for tests and benchmarks).

    Parameters
    ----------
    X : array_like
        ``(n, d)`` embedding.
    y : array_like of bool
        The truth per item.
    exemplars : sequence of int
        Row indices of the exemplars.
    policy : str
        One of :data:`POLICIES`.
    tau : float
        Prevalence threshold.
    delta : float
        Error of the stop.
    batch : int
        Draws per round.
    max_labels : int
        Label budget (draws are capped at 20 times it).
    stop_at_decision : bool
        Stop when the status is first decided; ``False`` goes on to active learning.
    seed : int
        Seed of the draws.
    **kw
        Further options of :class:`PhenotypeSearch`.

    Returns
    -------
    dict
        ``history`` (per round: labels spent, draws, positives found, estimate, interval,
        status), ``labels_to_decision`` (``None`` if never decided), ``decision``,
        ``scores`` (the final classifier's) and ``search``.
    """
    y = np.asarray(y, bool)
    search = PhenotypeSearch(X, exemplars, tau=tau, delta=delta, batch=batch, policy=policy,
                             seed=seed, **kw)
    clf = None
    rows, decided_at, decision = [], None, "open"
    while len(search.state.labels) < max_labels and len(search.state.item) < 20 * max_labels:
        if policy == "least_confidence" or (decided_at is not None):
            idx, lab = search.labelled()
            clf = PhenotypeClassifier().fit(search.X[idx], lab)
        items = search.propose(clf)
        if len(items) == 0:
            break
        search.record(items, y[items])
        lo, hi = search.interval()
        status = search.status()
        n_lab = len(search.state.labels)
        rows.append({"round": search.state.n_rounds, "labels": n_lab,
                     "draws": len(search.state.item),
                     "positives": int(sum(search.state.labels.values())),
                     "estimate": search.estimate(), "lower": lo, "upper": hi,
                     "status": status})
        if decided_at is None and status != "open":
            decided_at, decision = n_lab, status
            if stop_at_decision:
                break
    idx, lab = search.labelled()
    clf = PhenotypeClassifier().fit(search.X[idx], lab)
    return {"history": rows, "labels_to_decision": decided_at, "decision": decision,
            "scores": clf.scores(search.X), "search": search}
