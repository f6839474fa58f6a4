"""How the default pair planner (``"auto"``) chooses which planner to run.

Which planner finds interacting pairs depends on the screen: on Norman 2019 a gene's
measured pairs predict its other pairs (hub genes), and the exchangeable model finds more
top pairs than the gene-mean rule early in a campaign; on Parrish 2021 every gene is in one
pair, so nothing but the singles can rank the pairs, and the rule ``|single A| + |single
B|`` is the best planner we have. ``auto`` therefore checks, on the pairs measured so far,
how well each planner it may run ranks pairs it did not see, and takes the best.

The check (:func:`held_out_scores`) is cross-fitted: the measured pairs are split into
``n_folds`` folds by a hash of the pair (a pair keeps its fold as more pairs are
measured, so a fold's model never sees its own pairs, even when warm-started from an
earlier check), and every planner is fitted on the other folds and scored by the rank
correlation (Spearman) of its scores with the values of the held-out fold, averaged over
folds weighted by their size. The candidates:

- ``gene_mean``: the rule's gene means from the training folds;
- ``singles``: the rule's score (it never looks at measured values);
- ``exchangeable``: the exchangeable model fitted on the training folds (few steps, warm
  starts from the previous check);
- ``<rule>+exchangeable``: the rank average of the better rule and the model.

A model (or the rank average) is taken only when it ranks the held-out pairs better than
the best rule in at least ``model_confidence`` (80%) of paired bootstrap resamples of those
pairs (:func:`win_probability`): the rules cost nothing and their campaign record is known,
so the model has to earn its place.
In a campaign the check runs when the measured pairs have grown by half since the last
check (rounds in between keep the last choice), and the last choice is kept unless another
candidate is ahead by ``margin``: the pairs a planner chose are the ones it ranked high, so
its correlation on them falls as it succeeds (selection bias), and a noisy check should not
switch planners. With fewer than ``min_model_pairs`` measured pairs only the rules are
compared (:func:`rule_choice`: the gene-mean rule leave-one-out, the singles rule
directly), as the earlier default did.
"""

from __future__ import annotations

import numpy as np

__all__ = ["choose_planner", "rule_choice", "held_out_scores", "win_probability", "pair_folds",
           "rank_average", "gene_mean_scores", "singles_scores"]

MODEL = "exchangeable"
#: settings of the fold models of the check: fewer steps than a planning fit (a warm
#: start from the previous check runs max(30, steps // 4) steps)
FOLD_MODEL_KW = {"steps": 100}


# ---------------------------------------------------------------------- rule scores
def gene_mean_scores(n_items: int, obs_i, obs_j, obs_y, k: float = 2.0):
    """Shrunken mean value and number of measured pairs of every gene.

    Each gene's mean over its measured pairs is shrunk towards the mean of all pairs with the
    weight of ``k`` pseudo-pairs.

    Parameters
    ----------
    n_items : int
        Number of genes (pair indices run from 0 to ``n_items - 1``).
    obs_i, obs_j : array_like of int
        The genes of each measured pair.
    obs_y : array_like of float
        The measured value of each pair (larger = more interacting).
    k : float
        Pseudo-pairs of shrinkage.

    Returns
    -------
    means : numpy.ndarray
        ``(n_items,)`` shrunken means.
    counts : numpy.ndarray
        ``(n_items,)`` measured pairs per gene.
    """
    y = np.asarray(obs_y, float)
    tot, cnt = np.zeros(n_items), np.zeros(n_items)
    for a in (np.asarray(obs_i, int), np.asarray(obs_j, int)):
        np.add.at(tot, a, y)
        np.add.at(cnt, a, 1.0)
    overall = y.mean() if len(y) else 0.0
    return (tot + k * overall) / (cnt + k), cnt


def singles_scores(singles, cand_i, cand_j) -> np.ndarray:
    """``|single A| + |single B|`` of the candidate pairs.

    Parameters
    ----------
    singles : array_like of float
        Single effect of every gene.
    cand_i, cand_j : array_like of int
        The genes of each candidate pair.

    Returns
    -------
    numpy.ndarray
        One score per candidate.
    """
    s = np.abs(np.asarray(singles, float))
    return s[np.asarray(cand_i, int)] + s[np.asarray(cand_j, int)]


def _rank_corr(a, b) -> float:
    """Spearman correlation (0 when either side is constant)."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def rank_average(*scores) -> np.ndarray:
    """Mean of the within-list ranks (ties averaged) of several score vectors, in [0, 1].

    Parameters
    ----------
    *scores : array_like of float
        Score vectors of the same length.

    Returns
    -------
    numpy.ndarray
        The average normalised rank per entry.
    """
    from scipy.stats import rankdata

    out = np.zeros(len(scores[0]))
    for s in scores:
        out += (rankdata(np.asarray(s, float)) - 1) / max(len(out) - 1, 1)
    return out / len(scores)


def pair_folds(i, j, n_folds: int) -> np.ndarray:
    """Fold of each pair from a hash of the unordered pair: stable as pairs are added.

    Parameters
    ----------
    i, j : numpy.ndarray of int
        The genes of each pair (order does not matter).
    n_folds : int
        Number of folds.

    Returns
    -------
    numpy.ndarray of int
        Fold of each pair, in ``[0, n_folds)``.
    """
    a = np.minimum(i, j).astype(np.uint64)
    b = np.maximum(i, j).astype(np.uint64)
    h = a * np.uint64(0x9E3779B97F4A7C15) ^ (b + np.uint64(0x632BE59BD9B4E019))
    h = (h ^ (h >> np.uint64(29))) * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(32))
    return (h % np.uint64(n_folds)).astype(int)


def held_out_scores(n_items: int, obs_i, obs_j, obs_y, *, singles=None, side=None,
                    n_folds: int = 3, seed: int = 0, device: str = "auto",
                    fold_models: dict | None = None, model_kw: dict | None = None,
                    with_model: bool = True, held_out: list | None = None) -> tuple[dict, int]:
    """Cross-fitted held-out rank correlation of every candidate planner.

    Parameters
    ----------
    n_items : int
        Number of genes (pair indices run from 0 to ``n_items - 1``).
    obs_i, obs_j : array_like of int
        The genes of each measured pair.
    obs_y : array_like of float
        The measured value of each pair (larger = more interacting).
    singles : array_like of float, optional
        Single effect of every gene; without it the ``singles`` rule is not scored.
    side : numpy.ndarray, optional
        ``(n_items, p)`` side features of the exchangeable model.
    n_folds : int
        Folds of the cross-fit; folds with fewer than 3 test or training pairs are skipped.
    seed : int
        Seed of the fold models.
    device : str
        Torch device of the fold models.
    fold_models : dict, optional
        Filled in place: each fold's model, for warm starts at the next check.
    model_kw : dict, optional
        Options of :class:`~workbench.models.exchangeable.ExchangeablePairModel` over
        :data:`FOLD_MODEL_KW`.
    with_model : bool
        Score the exchangeable model and the rank averages too.
    held_out : list, optional
        Filled in place with ``(predictions, values)`` per fold.

    Returns
    -------
    scores : dict of str to float
        ``{planner: correlation}``, averaged over folds weighted by their size.
    n_evaluated : int
        Number of held-out pairs (0 and an empty dict when no fold could be scored).
    """
    oi, oj = np.asarray(obs_i, int), np.asarray(obs_j, int)
    y = np.asarray(obs_y, float)
    folds = pair_folds(oi, oj, n_folds)
    fold_models = {} if fold_models is None else fold_models
    kw = {**FOLD_MODEL_KW, **(model_kw or {})}
    corr: dict[str, list[float]] = {}
    weight = []
    kept = []
    for k in range(n_folds):
        te, tr = folds == k, folds != k
        if te.sum() < 3 or tr.sum() < 3:
            continue
        g, _ = gene_mean_scores(n_items, oi[tr], oj[tr], y[tr])
        pred = {"gene_mean": g[oi[te]] + g[oj[te]]}
        if singles is not None:
            pred["singles"] = singles_scores(singles, oi[te], oj[te])
        if with_model:
            from workbench.models.exchangeable import ExchangeablePairModel

            mdl = fold_models.get(k)
            warm = mdl is not None
            if mdl is None:
                mdl = ExchangeablePairModel(seed=seed * 31 + k, device=device, **kw)
            mdl.fit(oi[tr], oj[tr], y[tr], side=side, n_items=n_items, warm_start=warm)
            fold_models[k] = mdl
            pred[MODEL] = mdl.predict(oi[te], oj[te])[0]
            for rule in ("gene_mean", "singles"):
                if rule in pred:
                    pred[f"{rule}+{MODEL}"] = rank_average(pred[rule], pred[MODEL])
        for name, p in pred.items():
            corr.setdefault(name, []).append(_rank_corr(p, y[te]))
        weight.append(int(te.sum()))
        kept.append((pred, y[te]))
    if held_out is not None:
        held_out[:] = kept
    if not weight:
        return {}, 0
    w = np.asarray(weight, float)
    return {name: float(np.dot(c, w) / w.sum()) for name, c in corr.items()}, int(w.sum())


def win_probability(held_out: list, a: str, b: str, *, n_boot: int = 200,
                    seed: int = 0) -> float:
    """Share of bootstrap resamples of the held-out pairs (within folds, the same pairs for
    both) in which planner ``a`` ranks them better than planner ``b``: the correlations of
    two planners on the same pairs move together, so their difference is judged paired.

    Parameters
    ----------
    held_out : list
        ``(predictions, values)`` per fold, as :func:`held_out_scores` fills it.
    a, b : str
        The two planners compared (keys of the predictions).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resamples.

    Returns
    -------
    float
        The share of resamples in which ``a`` is ahead, in [0, 1].
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    diff = np.zeros(n_boot)
    total = sum(len(yy) for _, yy in held_out)
    for pred, yy in held_out:
        idx = rng.integers(0, len(yy), (n_boot, len(yy)))
        ry = rankdata(yy[idx], axis=1)
        for name, sign in ((a, 1.0), (b, -1.0)):
            rp = rankdata(np.asarray(pred[name], float)[idx], axis=1)
            rp, rc = rp - rp.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
            den = np.sqrt((rp ** 2).sum(1) * (rc ** 2).sum(1))
            r = np.where(den > 0, (rp * rc).sum(1) / np.where(den > 0, den, 1.0), 0.0)
            diff += sign * r * len(yy) / total
    return float((diff > 0).mean())


def rule_choice(n_items: int, obs_i, obs_j, obs_y, *, singles=None, min_pairs: int = 10,
                previous: str | None = None, margin: float = 0.1) -> tuple[str, str]:
    """The choice between the two model-free rules alone, with its reason.

    The gene-mean rule is scored leave-one-out (a pair's own value removed from its genes'
    means, on the pairs whose genes have other measured pairs), the singles rule directly.
    The rule with the higher rank correlation wins; with fewer than ``min_pairs`` measured
    pairs the singles rule is taken when singles are known. When neither correlation is
    above about two null standard errors, the gene-mean rule is taken if it could be
    evaluated on ``min_pairs`` pairs, else the singles rule. ``previous`` is kept unless
    the other rule is ahead by ``margin``.

    Parameters
    ----------
    n_items : int
        Number of genes (pair indices run from 0 to ``n_items - 1``).
    obs_i, obs_j : array_like of int
        The genes of each measured pair.
    obs_y : array_like of float
        The measured value of each pair (larger = more interacting).
    singles : array_like of float, optional
        Single effect of every gene; without it the gene-mean rule is taken.
    min_pairs : int
        Fewest measured pairs for the comparison.
    previous : str, optional
        The rule chosen last time.
    margin : float
        Rank-correlation lead the other rule needs to replace ``previous``.

    Returns
    -------
    planner : str
        ``"gene_mean"`` or ``"singles"``.
    reason : str
        Why, with the correlations.
    """
    y = np.asarray(obs_y, float)
    oi, oj = np.asarray(obs_i, int), np.asarray(obs_j, int)
    if len(y) < min_pairs:
        if singles is not None:
            return "singles", f"only {len(y)} measured pairs: too few to compare the rules"
        return "gene_mean", f"only {len(y)} measured pairs and no singles"
    kk = 2.0
    tot, cnt = np.zeros(n_items), np.zeros(n_items)
    for a in (oi, oj):
        np.add.at(tot, a, y)
        np.add.at(cnt, a, 1.0)
    # a pair's own value removed from its genes' sums; shrunk towards the overall mean of
    # all pairs (a constant: shrinking towards the leave-one-out mean would make the score
    # fall as the held-out value rises, a spurious negative correlation). Pairs whose
    # genes have no other measured pair carry no gene-mean information and are left out.
    ybar = y.mean()
    ni, nj = cnt[oi] - 1, cnt[oj] - 1
    gi = (tot[oi] - y + kk * ybar) / (ni + kk)
    gj = (tot[oj] - y + kk * ybar) / (nj + kk)
    informative = (ni + nj) > 0
    r_gene = _rank_corr((gi + gj)[informative], y[informative])
    if singles is None:
        return "gene_mean", f"no singles; gene-mean rule held-out rank correlation {r_gene:.2f}"
    r_single = _rank_corr(singles_scores(singles, oi, oj), y)
    scores = f"held-out rank correlation with the {len(y)} measured values: gene-mean " \
             f"{r_gene:.2f}, singles {r_single:.2f}"
    r = {"gene_mean": r_gene, "singles": r_single}
    n_eval = {"gene_mean": int(informative.sum()), "singles": len(y)}
    # evidence: a correlation above two standard errors of a null one (about 2 / sqrt(n))
    ahead = {k: r[k] > 2.0 / np.sqrt(max(n_eval[k], 1)) for k in r}
    best = max(r, key=r.get)
    if not any(ahead.values()):
        pick = "gene_mean" if n_eval["gene_mean"] >= min_pairs else "singles"
        return pick, f"{scores}; neither is clearly above zero, so the " + (
            "gene-mean rule (it uses the measured values of these genes)" if pick == "gene_mean"
            else "singles rule (too few genes with two measured pairs)")
    if previous in r and best != previous and r[best] < r[previous] + margin:
        return previous, f"{scores} (kept: the other rule is not ahead by {margin:g})"
    return best, scores


def choose_planner(n_items: int, obs_i, obs_j, obs_y, *, singles=None, side=None,
                   min_pairs: int = 10, min_model_pairs: int = 30, previous: str | None = None,
                   margin: float = 0.05, model_confidence: float = 0.8, n_folds: int = 3,
                   with_model: bool = True, state: dict | None = None, seed: int = 0,
                   device: str = "auto", model_kw: dict | None = None,
                   **_unused) -> tuple[str, str]:
    """The ``"auto"`` planner's choice, with its reason (see the module docstring).

    Parameters
    ----------
    n_items : int
        Number of genes (pair indices run from 0 to ``n_items - 1``).
    obs_i, obs_j : array_like of int
        The genes of each measured pair.
    obs_y : array_like of float
        The measured value of each pair (larger = more interacting).
    singles : array_like of float, optional
        Single effect of every gene.
    side : numpy.ndarray, optional
        ``(n_items, p)`` side features of the exchangeable model.
    min_pairs : int
        Fewest measured pairs for comparing the rules (:func:`rule_choice`).
    min_model_pairs : int
        Fewest measured pairs for checking the model; below it only the rules are compared.
    previous : str, optional
        The planner chosen last round.
    margin : float
        Held-out correlation lead another planner needs to replace ``previous``.
    model_confidence : float
        Share of paired resamples in which a model must beat the best rule to be taken.
    n_folds : int
        Folds of the cross-fitted check.
    with_model : bool
        Consider the exchangeable model at all.
    state : dict, optional
        Updated in place: carries the fold models and the size of the last check between the
        rounds of a campaign; without it every call runs the full check.
    seed : int
        Seed of the fold models and the resamples.
    device : str
        Torch device of the fold models.
    model_kw : dict, optional
        Options of the fold models.
    **_unused
        Ignored (lets callers pass planner options through).

    Returns
    -------
    planner : str
        The planner to run.
    reason : str
        Why, with the held-out scores.
    """
    y = np.asarray(obs_y, float)
    if not with_model or len(y) < min_model_pairs:
        prev = previous if previous in ("gene_mean", "singles") else None
        used, why = rule_choice(n_items, obs_i, obs_j, y, singles=singles, min_pairs=min_pairs,
                                previous=prev, margin=0.1)
        if with_model:
            why += f" (the model is checked from {min_model_pairs} measured pairs on)"
        return used, why
    if state is not None and previous is not None and state.get("auto_checked_n"):
        last = state["auto_checked_n"]
        if len(y) < 1.5 * last:
            return previous, state.get("auto_reason", "") + \
                f" [checked at {last} measured pairs; next check at {int(np.ceil(1.5 * last))}]"
    fold_models = state.setdefault("auto_fold_models", {}) if state is not None else None
    kept: list = []
    r, n_eval = held_out_scores(n_items, obs_i, obs_j, y, singles=singles, side=side,
                                n_folds=n_folds, seed=seed, device=device,
                                fold_models=fold_models, model_kw=model_kw, held_out=kept)
    rules = [k for k in ("gene_mean", "singles") if k in r]
    best_rule = max(rules, key=r.get)
    models = [MODEL, f"{best_rule}+{MODEL}"]
    best_model = max(models, key=r.get)
    text = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k in rules + models)
    why = f"cross-fitted ({n_folds} folds) rank correlation with {n_eval} held-out values: {text}"
    best = best_rule
    if r[best_model] > r[best_rule]:
        win = win_probability(kept, best_model, best_rule, seed=seed)
        why += f"; {best_model} ahead of the {best_rule} rule in {win:.0%} of resamples"
        if win >= model_confidence:
            best = best_model
        else:
            why += f" (below {model_confidence:.0%}: the rule is kept)"
    if r[best] <= 2.0 / np.sqrt(max(n_eval, 1)):
        # no evidence for any planner: the rule that costs nothing
        best = best_rule
        why += f"; none ranks clearly above zero, so the {best_rule} rule"
    elif previous in r and best != previous and r[best] < r[previous] + margin:
        best = previous
        why += f" (kept {previous}: the best is not ahead of it by {margin:g})"
    if state is not None:
        state["auto_checked_n"] = len(y)
        state["auto_reason"] = why
    return best, why
