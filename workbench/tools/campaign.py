"""Pair planners and the campaigns that compare them on complete screens.

A *planner* chooses which unmeasured double perturbations to run next from the measured
ones. Every planner has the same shape (:func:`propose`): candidates, measured pairs with
their values (larger = more wanted, e.g. |GI|), optional per-gene side features and single
effects, a batch size and a seed in; the chosen candidates, a predicted value for every
candidate and, for the chosen ones, the reason out. The planners (:data:`PLANNERS`):

- ``"random"``: uniform choice (the floor every planner must clear);
- ``"gene_mean"``: model-free rule: rank a pair by the shrunken mean value of the measured
  pairs of each of its two genes (``(sum + k * overall mean) / (n + k)``, k = 2), summed;
- ``"singles"``: model-free rule: rank a pair by ``|single A| + |single B|``;
- ``"soft_impute"``: soft-thresholded SVD completion (Mazumder et al. 2010), greedy;
- ``"bpmf_ids"`` (and ``bpmf_greedy``, ``bpmf_ucb``, ``bpmf_thompson``): the Bayesian
  low-rank model with side features and an acquisition
  (:mod:`workbench.models.pair_selection`; Xu et al. 2024, arXiv 2409.07594);
- ``"exchangeable"``: the exchangeable matrix model (Hartford et al. 2018;
  :mod:`workbench.models.exchangeable`), upper confidence bound over its ensemble;
- ``"gene_mean+exchangeable"``, ``"singles+exchangeable"``: the rank average of a rule's
  score and the model's upper bound;
- ``"auto"`` (the default of ``plan-pairs``): each round the planner among the two rules,
  the model and the rank average that ranks held-out measured pairs best, cross-fitted
  (:mod:`workbench.tools.planner_choice`); ``"auto_rules"``: the earlier default, the
  better of the two rules only.

For the rules, the predicted value is a least-squares line from the rule's score to the
measured values, and its interval comes from bootstrapping the measured pairs and their
residuals; for the models it is the model's mean with its spread plus its noise.

The models score the candidates chunk by chunk (:func:`score_pairs`), so memory does not
grow with the number of candidates, and on a ``dask.distributed`` cluster when
``scheduler=`` is given (same result as the local run).

A *campaign* (:func:`run_campaign`) replays a planner on a screen whose doubles are all
known: it reveals a small random set, lets the planner choose batches among the hidden pairs
until the budget is spent, and records the share of the top pairs (top 5% by value) found so
far. Random choice finds, in expectation, the share of pairs revealed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.tools.planner_choice import (choose_planner, gene_mean_scores, rank_average,
                                            rule_choice, singles_scores)

__all__ = ["PLANNERS", "propose", "choose_planner", "propose_batch", "run_campaign", "top_share_curve",
           "campaign_summary", "gene_mean_scores", "singles_scores", "score_pairs"]

#: planner name -> one-line description (shown by ``plan-pairs`` and in the artefact)
PLANNERS = {
    "random": "uniform random choice",
    "gene_mean": "rule: shrunken mean value of each gene's measured pairs, summed",
    "singles": "rule: |single effect A| + |single effect B|",
    "soft_impute": "soft-impute low-rank completion, highest predicted value",
    "bpmf_ids": "Bayesian low-rank model with side features, information-directed sampling",
    "bpmf_greedy": "Bayesian low-rank model with side features, highest posterior mean",
    "bpmf_ucb": "Bayesian low-rank model with side features, upper confidence bound",
    "bpmf_thompson": "Bayesian low-rank model with side features, Thompson sampling",
    "exchangeable": "exchangeable matrix model (ensemble), upper confidence bound",
    "gene_mean+exchangeable": "rank average of the gene-mean rule and the exchangeable model",
    "singles+exchangeable": "rank average of the singles rule and the exchangeable model",
    "auto": "the planner (rule, exchangeable model or their rank average) that ranks the "
            "measured pairs best, cross-fitted",
    "auto_rules": "the model-free rule that ranks the measured pairs best (held out), each "
                  "round (the earlier default)",
}
Z90 = 1.6449  # two-sided 90% normal interval


def _rank(score, k: int, seed: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, ties broken at random (not by list order)."""
    tie = np.random.default_rng(seed).random(len(score))
    return np.lexsort((tie, -np.asarray(score, float)))[:k]


# ---------------------------------------------------------------------- rule scores
def _rule_scores(rule, n_items, cand_i, cand_j, obs_i, obs_j, y, singles):
    """A rule's score of the candidates and of the measured pairs."""
    if rule == "gene_mean":
        g, _ = gene_mean_scores(n_items, obs_i, obs_j, y)
        return g[cand_i] + g[cand_j], g[obs_i] + g[obs_j]
    if singles is None:
        raise ValidationError("the singles rule needs each gene's single effect.",
                              "give singles=... (one value per gene).")
    return singles_scores(singles, cand_i, cand_j), singles_scores(singles, obs_i, obs_j)


def _calibrate(score_obs, y_obs, score_cand, pick, seed: int, n_boot: int = 200):
    if n_boot == 0:
        return _calibrate_mean(score_obs, y_obs, score_cand), np.full(len(pick), np.nan), \
            np.full(len(pick), np.nan)
    return _calibrate_boot(score_obs, y_obs, score_cand, pick, seed, n_boot)


def _calibrate_mean(score_obs, y_obs, score_cand):
    x, y = np.asarray(score_obs, float), np.asarray(y_obs, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return np.full(len(score_cand), y.mean())
    b, a = np.polyfit(x, y, 1)
    return a + b * np.asarray(score_cand, float)


def _calibrate_boot(score_obs, y_obs, score_cand, pick, seed: int, n_boot: int):
    """Line from a rule's score to the values; mean for all candidates, a 90% predictive
    interval (bootstrap of the measured pairs plus a resampled residual) for ``pick``."""
    x, y = np.asarray(score_obs, float), np.asarray(y_obs, float)
    xc = np.asarray(score_cand, float)

    def line(xx, yy):
        if len(xx) < 2 or np.ptp(xx) == 0:
            return yy.mean() if len(yy) else 0.0, 0.0
        b, a = np.polyfit(xx, yy, 1)
        return a, b

    a, b = line(x, y)
    mean = a + b * xc
    lo = np.full(len(pick), np.nan)
    hi = np.full(len(pick), np.nan)
    if len(y) >= 3:
        rng = np.random.default_rng(seed)
        res = y - (a + b * x)
        draws = np.empty((n_boot, len(pick)))
        for t in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            ab = line(x[idx], y[idx])
            draws[t] = ab[0] + ab[1] * xc[pick] + res[rng.integers(0, len(y), len(pick))]
        lo, hi = np.percentile(draws, [5, 95], axis=0)
    return mean, lo, hi


# ---------------------------------------------------------------------- propose
def propose(planner: str, n_items: int, cand_i, cand_j, obs_i, obs_j, obs_y, *, side=None,
            singles=None, batch_size: int = 10, seed: int = 0, device: str = "auto",
            state: dict | None = None, names=None, beta: float = 1.0,
            model_kw: dict | None = None, intervals: bool = True, scheduler=None,
            chunk_size: int = 8192) -> dict:
    """Choose ``batch_size`` of the candidate pairs with ``planner``.

    Parameters
    ----------
    planner : str
        A name in :data:`PLANNERS`.
    n_items : int
        Number of genes; pairs are index pairs into ``range(n_items)``.
    cand_i, cand_j : array_like of int
        The unmeasured candidate pairs.
    obs_i, obs_j : array_like of int
        The measured pairs.
    obs_y : array_like of float
        Their values (larger = more wanted); with none, every planner but the rank averages
        picks at random.
    side : numpy.ndarray, optional
        ``(n_items, p)`` per-gene side features for the models.
    singles : array_like of float, optional
        ``(n_items,)`` single-perturbation effects (0 = like control), for ``"singles"``.
    batch_size : int
        Pairs to choose (at most the candidates).
    seed : int
        Seed of the tie-breaks, the random choice, the models and the bootstrap.
    device : str
        Torch device of the models (``"auto"``: a GPU when there is one).
    state : dict, optional
        What a previous call returned under ``"state"`` (warm starts in campaigns).
    names : sequence of str, optional
        Gene names, used in the reasons (default: indices).
    beta : float
        Width of the exchangeable model's upper confidence bound, in model sds.
    model_kw : dict, optional
        Options of the model's constructor.
    intervals : bool
        ``False`` skips the rules' bootstrap intervals (campaigns only rank).
    scheduler : str or dask.distributed.Client, optional
        A ``dask.distributed`` address or Client: the models score the candidates there,
        chunk by chunk (:func:`score_pairs`); same result as the local run.
    chunk_size : int
        Candidates per chunk (per task on a cluster).

    Returns
    -------
    dict
        ``pick`` (positions in the candidates, best first), ``mean`` (predicted value of every
        candidate; NaN for random choice), ``low``/``high`` (90% interval of the picked ones),
        ``reason`` (one string per picked pair) and ``state``; ``auto`` adds ``planner`` and
        ``planner_reason``, the models ``sd`` and ``noise``.
    """
    from scipy.stats import rankdata

    from workbench.models.pair_selection import select_batch

    if planner not in PLANNERS:
        raise ValidationError(f"unknown planner {planner!r}.",
                              f"use one of {', '.join(PLANNERS)}.")
    cand_i, cand_j = np.asarray(cand_i, int), np.asarray(cand_j, int)
    obs_i, obs_j = np.asarray(obs_i, int), np.asarray(obs_j, int)
    y = np.asarray(obs_y, float)
    m = len(cand_i)
    k = min(int(batch_size), m)
    state = dict(state or {})
    names = list(names) if names is not None else [str(g) for g in range(n_items)]
    nan = np.full(k, np.nan)
    if planner in ("auto", "auto_rules"):
        prev = state.get("auto_choice")
        if planner == "auto_rules":
            used, why = rule_choice(n_items, obs_i, obs_j, y, singles=singles, previous=prev)
        else:
            used, why = choose_planner(n_items, obs_i, obs_j, y, singles=singles, side=side,
                                       previous=prev, state=state, seed=seed, device=device,
                                       model_kw=model_kw)
        state["auto_choice"] = used
        out = propose(used, n_items, cand_i, cand_j, obs_i, obs_j, y, side=side,
                      singles=singles, batch_size=batch_size, seed=seed, device=device,
                      state=state, names=names, beta=beta, model_kw=model_kw,
                      intervals=intervals, scheduler=scheduler, chunk_size=chunk_size)
        out["planner"], out["planner_reason"] = used, why
        return out
    if planner.endswith("+exchangeable") and len(y) > 0:
        rule = planner.split("+")[0]
        rule_score = _rule_scores(rule, n_items, cand_i, cand_j, obs_i, obs_j, y, singles)[0]
        b = propose("exchangeable", n_items, cand_i, cand_j, obs_i, obs_j, y, side=side,
                    batch_size=k, seed=seed, device=device, state=state, names=names,
                    beta=beta, model_kw=model_kw, scheduler=scheduler, chunk_size=chunk_size)
        model_score = b["mean"] + beta * b["sd"]  # the model's own acquisition (UCB)
        pick = _rank(rank_average(rule_score, model_score), k, seed)
        half = Z90 * np.sqrt(b["sd"][pick] ** 2 + b["noise"] ** 2)
        rr = (m + 1 - rankdata(rule_score, "max")).astype(int)
        mr = (m + 1 - rankdata(model_score, "max")).astype(int)
        reason = [f"rank average: {rule.replace('_', '-')} rule rank {rr[p]}, exchangeable "
                  f"model rank {mr[p]} (predicted {b['mean'][p]:.3g} +- {b['sd'][p]:.2g}) "
                  f"of {m}" for p in pick]
        return {"pick": pick, "mean": b["mean"], "low": b["mean"][pick] - half,
                "high": b["mean"][pick] + half, "reason": reason, "state": b["state"]}
    if planner == "random" or len(y) == 0:
        pick = np.random.default_rng(seed).choice(m, k, replace=False)
        why = "random choice" if planner == "random" else "no measured pair yet: random choice"
        return {"pick": pick, "mean": np.full(m, np.nan), "low": nan, "high": nan,
                "reason": [why] * k, "state": state}
    if planner in ("gene_mean", "singles"):
        score_c, score_o = _rule_scores(planner, n_items, cand_i, cand_j, obs_i, obs_j, y,
                                        singles)
        if planner == "gene_mean":
            g, cnt = gene_mean_scores(n_items, obs_i, obs_j, y)
        else:
            s = np.abs(np.asarray(singles, float))
        pick = _rank(score_c, k, seed)
        mean, lo, hi = _calibrate(score_o, y, score_c, pick, seed, 200 if intervals else 0)
        reason = []
        for p in pick:
            a, b = cand_i[p], cand_j[p]
            if planner == "gene_mean":
                reason.append(f"gene-mean rule: {names[a]}'s measured pairs average "
                              f"{g[a]:.3g} (n={cnt[a]:.0f}), {names[b]}'s {g[b]:.3g} "
                              f"(n={cnt[b]:.0f}, shrunk to the overall mean)")
            else:
                reason.append(f"singles rule: |{names[a]}| = {s[a]:.3g}, "
                              f"|{names[b]}| = {s[b]:.3g}, sum {score_c[p]:.3g}")
        return {"pick": pick, "mean": mean, "low": lo, "high": hi, "reason": reason,
                "state": state}
    if planner == "soft_impute":
        from workbench.models.pair_selection import soft_impute, soft_impute_entries

        # factored (sparse + low rank) above 400 genes: memory grows with the pairs, not n^2
        F = soft_impute(n_items, obs_i, obs_j, y, init=state.get("Z"), seed=seed,
                        iters=20 if state.get("Z") is None else 8, factors=n_items > 400)
        state["Z"] = F
        if isinstance(F, tuple):
            mean, fit = soft_impute_entries(F, cand_i, cand_j), soft_impute_entries(F, obs_i, obs_j)
        else:
            mean, fit = F[cand_i, cand_j], F[obs_i, obs_j]
        pick = _rank(mean, k, seed)
        res = (fit - y).std() if len(y) > 1 else np.nan
        return {"pick": pick, "mean": mean, "low": mean[pick] - Z90 * res,
                "high": mean[pick] + Z90 * res,
                "reason": [f"soft-impute completion predicts {mean[p]:.3g} (rank "
                           f"{r + 1} of {m})" for r, p in enumerate(pick)], "state": state}
    # model planners
    kw = dict(model_kw or {})
    model = state.get("model")
    warm = model is not None
    if planner == "exchangeable":
        from workbench.models.exchangeable import ExchangeablePairModel

        model = model or ExchangeablePairModel(seed=seed, device=device, **kw)
        model.fit(obs_i, obs_j, y, side=side, n_items=n_items, warm_start=warm)
        samples = score_pairs(model, cand_i, cand_j, scheduler=scheduler,
                              chunk_size=chunk_size)
        noise = model.residual_sd_
        acq = "ucb"
    else:
        from workbench.models.pair_selection import LowRankPairModel

        model = model or LowRankPairModel(seed=seed, device=device, **kw)
        model.fit(obs_i, obs_j, y, side=side, n_items=n_items, warm_start=warm)
        samples = score_pairs(model, cand_i, cand_j, scheduler=scheduler,
                              chunk_size=chunk_size)
        noise = model.noise_ * model.y_scale_
        acq = planner.split("_", 1)[1]
    state["model"] = model
    pick = select_batch(samples, acq, k, beta=beta, seed=seed)
    mean, sd = samples.mean(0), samples.std(0)
    half = Z90 * np.sqrt(sd[pick] ** 2 + noise ** 2)
    what = {"ucb": f"upper bound mean + {beta:g} sd", "ids": "information-directed sampling",
            "greedy": "highest posterior mean", "thompson": "Thompson sample"}[acq]
    reason = [f"{what}: predicted {mean[p]:.3g} +- {sd[p]:.2g} (model spread), "
              f"rank {r + 1} of {m}" for r, p in enumerate(pick)]
    return {"pick": pick, "mean": mean, "low": mean[pick] - half, "high": mean[pick] + half,
            "reason": reason, "state": state, "sd": sd, "noise": noise}


def propose_batch(n_items: int, cand_i, cand_j, obs_i, obs_j, obs_y, *, side=None,
                  acquisition: str = "ids", batch_size: int = 10, seed: int = 0,
                  device: str = "auto", model=None, **model_kw) -> tuple[np.ndarray, dict]:
    """The Bayesian low-rank planner with an acquisition (kept for older callers; new code
    uses :func:`propose`). Returns the chosen positions and ``{"mean", "sd", "model"}``.

    Parameters
    ----------
    n_items : int
        Number of genes.
    cand_i, cand_j : array_like of int
        The candidate pairs.
    obs_i, obs_j : array_like of int
        The measured pairs.
    obs_y : array_like of float
        Their values.
    side : numpy.ndarray, optional
        ``(n_items, p)`` side features.
    acquisition : str
        ``"ids"``, ``"greedy"``, ``"ucb"``, ``"thompson"`` or ``"random"``.
    batch_size : int
        Pairs to choose.
    seed : int
        Seed of the model and the choice.
    device : str
        Torch device.
    model : LowRankPairModel, optional
        A model to warm-start from.
    **model_kw
        Options of :class:`~workbench.models.pair_selection.LowRankPairModel`.

    Returns
    -------
    pick : numpy.ndarray
        Chosen positions in the candidates.
    info : dict
        ``mean`` and ``sd`` per candidate and the fitted ``model`` (``None`` for random).
    """
    planner = "random" if acquisition == "random" else f"bpmf_{acquisition}"
    out = propose(planner, n_items, cand_i, cand_j, obs_i, obs_j, obs_y, side=side,
                  batch_size=batch_size, seed=seed, device=device,
                  state={"model": model} if model is not None else None, model_kw=model_kw)
    mod = out["state"].get("model")
    if mod is None:
        sd = np.full(len(out["mean"]), np.nan)
    else:
        sd = mod.sample(cand_i, cand_j).std(0)
    return out["pick"], {"mean": out["mean"], "sd": sd, "model": mod}


def score_pairs(model, i, j, *, chunk_size: int = 8192, scheduler=None) -> np.ndarray:
    """Posterior samples (E, m) of a fitted pair model on many pairs, chunk by chunk.

    A fitted model scores each pair from the measured ones only, so the candidates split
    into independent chunks: locally they run one after another (memory bounded by one
    chunk); with ``scheduler`` (a ``dask.distributed`` address or ``Client``) the model is
    sent to the workers once and the chunks run there. Both give the same numbers.

    Parameters
    ----------
    model : ExchangeablePairModel or LowRankPairModel
        A fitted pair model (anything with ``sample(i, j)``).
    i, j : array_like of int
        The pairs to score.
    chunk_size : int
        Pairs per chunk.
    scheduler : str or dask.distributed.Client, optional
        Where to run the chunks; ``None``: here.

    Returns
    -------
    numpy.ndarray
        ``(E, m)`` samples, one column per pair.
    """
    i, j = np.ascontiguousarray(i, int), np.ascontiguousarray(j, int)
    step = max(1, int(chunk_size))
    bounds = [(a, min(a + step, len(i))) for a in range(0, len(i), step)]
    if scheduler is None:
        parts = [model.sample(i[a:b], j[a:b]) for a, b in bounds]
    else:
        from distributed import Client

        if isinstance(scheduler, Client):
            client = scheduler
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ValidationError(
                    f"could not reach a dask scheduler at {scheduler!r} ({exc}).",
                    "start one (`dask scheduler`, then `dask worker ADDRESS`) and give its "
                    "address, e.g. tcp://127.0.0.1:8786, or leave out --scheduler to score "
                    "locally.") from exc
        try:
            remote = client.scatter(model, broadcast=True)
            futures = [client.submit(_score_chunk, remote, i[a:b], j[a:b], pure=False)
                       for a, b in bounds]
            parts = client.gather(futures)
        finally:
            if not isinstance(scheduler, Client):
                client.close()
    return np.concatenate(parts, 1) if parts else np.zeros((0, 0))


def _score_chunk(model, i, j):
    return model.sample(i, j)


# ---------------------------------------------------------------------- campaigns
def _candidates(values, candidates):
    n = values.shape[0]
    if candidates is None:
        iu = np.triu_indices(n, 1)
        ok = np.isfinite(values[iu])
        return np.stack([iu[0][ok], iu[1][ok]], 1)
    return np.asarray(candidates, int)


def run_campaign(values: np.ndarray, *, planner: str | None = None, side=None, singles=None,
                 candidates=None, acquisition: str = "ids", budget: float = 0.2,
                 initial: float = 0.02, batch_size: int | None = None,
                 top_fraction: float = 0.05, seed: int = 0, device: str = "auto",
                 **model_kw) -> pd.DataFrame:
    """Run one campaign of ``planner`` on a complete matrix of pair values.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n, n)`` symmetric matrix (NaN where a pair does not exist); larger = wanted.
    planner : str, optional
        A name in :data:`PLANNERS`; default ``"bpmf_" + acquisition`` (older callers).
    side : numpy.ndarray, optional
        Per-gene side features, as in :func:`propose`.
    singles : array_like of float, optional
        Per-gene single effects, as in :func:`propose`.
    candidates : array_like of int, optional
        ``(m, 2)`` index pairs; default every ``i < j`` with a finite value.
    acquisition : str
        Used only to name the default planner.
    budget : float
        Fraction of the candidates revealed at the end (initial ones included).
    initial : float
        Fraction revealed at random before the first choice (same for every planner of a
        seed, so planners are compared on the same start).
    batch_size : int, optional
        Pairs per round; default ``max(1, m // 100)``.
    top_fraction : float
        The top pairs the campaign tries to find.
    seed : int
        Seed of the start and of every round's planner.
    device : str
        Torch device of the models.
    **model_kw
        Options of the planner's model.

    Returns
    -------
    pandas.DataFrame
        One row per revealed pair, in order: ``round, i, j, value, is_top, acquisition,
        planner, planner_used`` (the planner ``auto`` ran that round; ``initial`` for the
        random start), ``seed, n_revealed, frac_revealed, top_found_share``.
    """
    if planner is None:
        planner = "random" if acquisition == "random" else f"bpmf_{acquisition}"
    values = np.asarray(values, float)
    n = values.shape[0]
    cand = _candidates(values, candidates)
    m = len(cand)
    v = values[cand[:, 0], cand[:, 1]]
    n_top = max(1, int(round(top_fraction * m)))
    top = np.zeros(m, bool)
    top[np.argsort(-v, kind="stable")[:n_top]] = True
    batch_size = batch_size or max(1, m // 100)
    total = int(round(budget * m))
    rng = np.random.default_rng(seed)
    revealed = np.zeros(m, bool)
    first = rng.choice(m, max(1, int(round(initial * m))), replace=False)
    revealed[first] = True
    order: list[tuple[int, int]] = [(int(c), 0) for c in first]
    used: list[str] = ["initial"] * len(first)
    state: dict = {}
    rnd = 0
    while revealed.sum() < total:
        rnd += 1
        hidden = np.flatnonzero(~revealed)
        obs = np.flatnonzero(revealed)
        k = min(batch_size, total - int(revealed.sum()))
        out = propose(planner, n, cand[hidden, 0], cand[hidden, 1], cand[obs, 0], cand[obs, 1],
                      v[obs], side=side, singles=singles, batch_size=k,
                      seed=seed * 7919 + rnd, device=device, state=state, model_kw=model_kw,
                      intervals=False)
        state = out["state"]
        chosen = hidden[out["pick"]]
        revealed[chosen] = True
        order += [(int(c), rnd) for c in chosen]
        used += [out.get("planner", planner)] * len(chosen)
    idx = np.array([c for c, _ in order])
    hist = pd.DataFrame({"round": [r for _, r in order], "i": cand[idx, 0], "j": cand[idx, 1],
                         "value": v[idx], "is_top": top[idx]})
    hist["acquisition"] = planner
    hist["planner"] = planner
    hist["planner_used"] = used
    hist["seed"] = seed
    hist["n_revealed"] = np.arange(1, len(hist) + 1)
    hist["frac_revealed"] = hist.n_revealed / m
    hist["top_found_share"] = hist.is_top.cumsum() / n_top
    return hist


def top_share_curve(histories: pd.DataFrame, fractions=(0.05, 0.1, 0.15, 0.2)) -> pd.DataFrame:
    """Top share found at each budget fraction, one row per (acquisition, seed, budget).

    Parameters
    ----------
    histories : pandas.DataFrame
        Concatenated :func:`run_campaign` histories.
    fractions : sequence of float
        Budget fractions to read the curve at.

    Returns
    -------
    pandas.DataFrame
        ``acquisition``, ``seed``, ``budget``, ``top_found_share``.
    """
    rows = []
    for (acq, seed), h in histories.groupby(["acquisition", "seed"]):
        for f in fractions:
            sub = h[h.frac_revealed <= f + 1e-9]
            rows.append({"acquisition": acq, "seed": seed, "budget": f,
                         "top_found_share": float(sub.top_found_share.iloc[-1]) if len(sub) else 0.0})
    return pd.DataFrame(rows)


def campaign_summary(histories: pd.DataFrame, fractions=(0.05, 0.1, 0.15, 0.2)) -> pd.DataFrame:
    """Mean and 95% interval (over seeds) of the top share found at each budget fraction.

    The interval is the normal one, ``mean +- 1.96 sd / sqrt(n_seeds)``.

    Parameters
    ----------
    histories : pandas.DataFrame
        Concatenated :func:`run_campaign` histories.
    fractions : sequence of float
        Budget fractions.

    Returns
    -------
    pandas.DataFrame
        ``acquisition``, ``budget``, ``mean``, ``std``, ``count``, ``ci_low``, ``ci_high``.
    """
    df = top_share_curve(histories, fractions)
    out = df.groupby(["acquisition", "budget"]).top_found_share.agg(["mean", "std", "count"])
    half = 1.96 * out["std"].fillna(0) / np.sqrt(out["count"])
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out.reset_index()
