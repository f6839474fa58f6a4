"""The pair-planning step: propose the next double perturbations of a Study.

:func:`plan_pairs` reads the tested pairs (``"interactions"``), takes each gene's single
effect from ``profiles`` (its mean shift from the controls), and asks a planner of
:mod:`workbench.tools.campaign` for the next ``budget`` doubles among the untested pairs of
the screen's genes. It writes ``"pair_selection"`` (Parquet): the measured pairs (status
``"measured"``, round 0) and the proposed ones (status ``"proposed"``, round 1), each
proposed pair with

- ``predicted`` and its 90% interval ``predicted_low``/``predicted_high`` (the planner's
  predicted value of the pair statistic; for the model-free rules a line from the rule's
  score to the measured values, with a bootstrap interval),
- ``reason``: why the planner chose it,
- ``planner`` and ``planner_reason``: which planner ran and why it was the one.

The default planner is ``"auto"`` (:mod:`workbench.tools.planner_choice`): it scores the
two model-free rules, the exchangeable model and the rank average of the better rule and
the model by how well each ranks measured pairs it did not see (cross-fitted folds), and
runs the best; a model has to beat the best rule in most paired resamples of the held-out
pairs to be taken, because which planner works depends on the screen. Soft-impute and
BPMF are named options that auto does not weigh (neither was ahead of the better rule on
Norman or Parrish). The campaign benchmark (``benchmarks/results_pair_campaign.md``) holds
the evidence for this choice.

With ``scheduler`` (a ``dask.distributed`` address or Client) the models score the
candidates on that cluster in chunks; the result equals the local run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

__all__ = ["plan_pairs", "check_budget"]


def check_budget(budget, n_candidates: int) -> int:
    """The budget as an int, or a :class:`ValidationError` that says what to give.

    Parameters
    ----------
    budget : int
        Pairs asked for.
    n_candidates : int
        Untested pairs available.

    Returns
    -------
    int
        ``budget``, once it is a whole number from 1 to ``n_candidates``.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise ValidationError(f"budget must be a whole number of pairs, got {budget!r}.",
                              "give --budget N with N >= 1.")
    if budget < 1:
        raise ValidationError(f"budget {budget} asks for no pairs: it must be at least 1.",
                              "give --budget N with N >= 1 (the number of doubles to run next).")
    if budget > n_candidates:
        raise ValidationError(
            f"budget {budget} is larger than the {n_candidates} untested pairs of the screen's "
            "genes.", f"give --budget {n_candidates} or less, or plan over more genes.")
    return int(budget)


def _singles(study, use, genes_hint=None):
    from workbench.tools.screen_profiles import load_profiles

    X, obs, _ = load_profiles(study, use)
    ctrl = obs["is_control"].to_numpy(bool)
    pert = obs["perturbation"].astype(str).to_numpy()
    is_single = ~ctrl & ~pd.Series(pert).str.contains("+", regex=False).to_numpy()
    genes = sorted(set(pert[is_single])) if genes_hint is None else list(genes_hint)
    missing = [g for g in genes if not (is_single & (pert == g)).any()]
    if missing:
        raise ValidationError(f"no single-perturbation samples for {missing[:5]} in profiles.",
                              "plan over genes whose singles were screened (genes=...).")
    base = X[ctrl].mean(0)
    shift = np.stack([X[is_single & (pert == g)].mean(0) - base for g in genes])
    return genes, shift


def _side_features(shift: np.ndarray, k: int = 8) -> np.ndarray:
    """At most ``k`` principal directions of the singles' shifts, plus their length."""
    norm = np.linalg.norm(shift, axis=1, keepdims=True)
    if shift.shape[1] <= k:
        return np.hstack([shift, norm])
    u, s, _ = np.linalg.svd(shift - shift.mean(0), full_matrices=False)
    return np.hstack([u[:, :k] * s[:k], norm])


def plan_pairs(study, *, budget: int = 10, planner: str = "auto", test: str = "disjointness",
               value: str = "effect_size", genes=None, use: str | None = None, seed: int = 0,
               device: str = "auto", scheduler=None, chunk_size: int = 8192) -> pd.DataFrame:
    """Propose the next ``budget`` doubles from the tested ones; write ``"pair_selection"``.

    Parameters
    ----------
    study : Study
        A Study with ``interactions`` and ``profiles``.
    budget : int
        Number of pairs to propose (1 .. the number of untested pairs).
    planner : str
        ``"auto"`` or a name in :data:`workbench.tools.campaign.PLANNERS`.
    test : str
        Which test's rows of ``interactions`` to learn from.
    value : str
        Which column of those rows to model (larger = more interacting).
    genes : sequence of str, optional
        Genes to plan over (default every single perturbation of the screen).
    use : str, optional
        Profiles matrix whose singles give the side information
        (:func:`~workbench.tools.screen_profiles.load_profiles`).
    seed : int
        Seed of the planner and of its choice.
    device : str
        Torch device of the models (``"auto"``: a GPU when there is one).
    scheduler : str or dask.distributed.Client, optional
        A ``dask.distributed`` scheduler address (or Client): the models score the
        candidates there (same result as the local run).
    chunk_size : int
        Candidate pairs per task on the scheduler.

    Returns
    -------
    pandas.DataFrame
        The ``pair_selection`` table: the measured pairs (round 0) and the proposed ones
        (round 1) with ``predicted``, ``predicted_low``/``predicted_high``, ``rank``,
        ``reason``, ``planner`` and ``planner_reason``.
    """
    from workbench.tools.campaign import PLANNERS, choose_planner, propose

    if planner != "auto" and planner not in PLANNERS:
        raise ValidationError(f"unknown planner {planner!r}.",
                              f"use auto or one of {', '.join(PLANNERS)}.")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        check_budget(budget, 0)  # raises with the message for this kind of budget
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValidationError(f"chunk size must be a whole number of pairs >= 1, got "
                              f"{chunk_size!r}.", "give --chunk-size N with N >= 1 (default "
                              "8192).")
    study.require("interactions", why="planning learns from the tested pairs")
    tab = study.read("interactions")
    tab = tab[(tab.test == test) & tab.status.isin(("tested", "scored (no p-value)"))]
    if tab.empty:
        raise ValidationError(f"interactions holds no tested pairs for test {test!r}.",
                              "run `workbench interactions STUDY` with that test first.")
    if value not in tab.columns:
        raise ValidationError(f"interactions has no column {value!r}.",
                              f"use one of {', '.join(map(str, tab.columns))}.")
    genes, shift = _singles(study, use, genes)
    pos = {g: i for i, g in enumerate(genes)}
    tab = tab[tab.gene_a.isin(pos) & tab.gene_b.isin(pos)]
    y = tab[value].to_numpy(float)
    ok = np.isfinite(y)
    tab, y = tab[ok], y[ok]
    oi, oj = tab.gene_a.map(pos).to_numpy(), tab.gene_b.map(pos).to_numpy()
    done = {frozenset(p) for p in zip(oi, oj)}
    cand = [(i, j) for i in range(len(genes)) for j in range(i + 1, len(genes))
            if frozenset((i, j)) not in done]
    budget = check_budget(budget, len(cand))
    ci, cj = np.array(cand, int).reshape(-1, 2).T
    side = _side_features(shift)
    singles = np.linalg.norm(shift, axis=1)
    if planner == "auto":
        used, why = choose_planner(len(genes), oi, oj, y, side=side, singles=singles, seed=seed,
                                   device=device)
    else:
        used, why = planner, "chosen by the user"
    out = propose(used, len(genes), ci, cj, oi, oj, y, side=side, singles=singles,
                  batch_size=budget, seed=seed, device=device, names=genes,
                  scheduler=scheduler, chunk_size=chunk_size)
    pick = out["pick"]
    hist = pd.DataFrame({"round": 0, "gene_a": tab.gene_a.to_numpy(), "gene_b": tab.gene_b.to_numpy(),
                         "pair": tab.pair.to_numpy(), "status": "measured", "value": y,
                         "predicted": np.nan, "predicted_low": np.nan, "predicted_high": np.nan,
                         "rank": np.nan, "reason": ""})
    prop = pd.DataFrame({"round": 1, "gene_a": [genes[i] for i in ci[pick]],
                         "gene_b": [genes[j] for j in cj[pick]], "status": "proposed",
                         "value": np.nan, "predicted": out["mean"][pick],
                         "predicted_low": out["low"], "predicted_high": out["high"],
                         "rank": np.arange(1, len(pick) + 1), "reason": out["reason"]})
    prop["pair"] = prop.gene_a + "+" + prop.gene_b
    res = pd.concat([hist, prop[hist.columns]], ignore_index=True)
    # the names older readers of this artefact use
    res["posterior_mean"] = res["predicted"]
    res["posterior_sd"] = (res["predicted_high"] - res["predicted_low"]) / (2 * 1.6449)
    res["planner"] = used
    res["planner_reason"] = why
    res["acquisition"] = used
    res["test"] = test
    res["seed"] = seed
    params = {"budget": budget, "planner": planner, "planner_used": used, "test": test,
              "value": value, "n_genes": len(genes), "n_candidates": len(cand),
              "scheduler": scheduler if scheduler is None or isinstance(scheduler, str)
              else "a dask.distributed Client"}
    with study.step("plan_pairs", params=params, seed=seed, inputs=["interactions"]) as tx:
        tx.note(planner=used, planner_reason=why)
        tx.write_table("pair_selection", res, description="measured pairs and the next batch, "
                       "with predicted values, intervals and reasons")
    return res
