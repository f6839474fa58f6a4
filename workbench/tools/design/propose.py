"""One shape for every planner: ``propose(study, budget, policy) -> Batch``.

The candidates of a Study are the rows of its ``perturbations`` artefact (controls left
out), with the aggregated embedding as features; what has been measured comes from a table
the user brings (``labels``: a DataFrame or CSV/TSV/Parquet path with a ``perturbation``
column and a value column; empty for what is not measured yet).

``kind="screen"`` (:mod:`.screen`) proposes what to measure so the rest can be predicted.
When the Study holds an earlier plan whose proposed candidates are now labelled, their
labels are compared with what that plan predicted for them *before* they were measured,
which gives the certified lower bound on the system accuracy and the stop recommendation.

``kind="hits"`` (:mod:`.hits`) proposes what to screen next to find hits.

``kind="knockout"`` (:mod:`.knockout`) proposes the next gene knock-outs for the GRN, by
expected information gain about the graph.

``kind="pairs"`` hands over to :func:`workbench.tools.pair_planning.plan_pairs`.

The screen and hit planners write ``"design_plan"`` (Parquet): one row per candidate with
its status (``measured``, ``proposed`` or ``predicted``), rank, score, reason, the label if
measured and the model's prediction and confidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.tools.design.batch import Batch

__all__ = ["Batch", "propose", "study_pool", "KINDS"]

KINDS = ("screen", "hits", "pairs", "knockout")


def _read_labels(labels, column: str) -> pd.Series:
    if isinstance(labels, (str, Path)):
        from workbench.data.readers._tables import read_table

        labels = read_table(labels, "labels table")
    if isinstance(labels, pd.Series):
        return labels
    if not isinstance(labels, pd.DataFrame):
        raise ValidationError(f"labels must be a table, got {type(labels).__name__}.",
                              "pass a DataFrame or the path of a CSV file.")
    for col in ("perturbation", column):
        if col not in labels.columns:
            raise ValidationError(f"the labels table has no column {col!r} "
                                  f"(it has {', '.join(map(str, labels.columns))}).",
                                  f"give a table with columns 'perturbation' and {column!r}.")
    if labels.perturbation.duplicated().any():
        dup = labels.perturbation[labels.perturbation.duplicated()].iloc[0]
        raise ValidationError(f"perturbation {dup!r} appears twice in the labels table.",
                              "give one row per perturbation.")
    return labels.set_index("perturbation")[column]


def study_pool(study, labels=None, column: str = "label"):
    """(names, features, labels aligned to them) from the Study's ``perturbations``.

    Controls (``perturbation_type == "control"`` and the Study's control label) are left out.

    Parameters
    ----------
    study : Study
        A Study with the ``perturbations`` artefact.
    labels : pandas.DataFrame, pandas.Series, str or pathlib.Path, optional
        The measured values: a table (or CSV/TSV/Parquet path) with a ``perturbation`` column
        and ``column``, or a Series indexed by perturbation; ``None``: nothing measured.
    column : str
        The value column of the labels table.

    Returns
    -------
    names : numpy.ndarray
        The candidate perturbations.
    features : numpy.ndarray
        Their aggregated embeddings, one row each.
    labels : pandas.Series
        Indexed by ``names``; ``None`` where not measured.
    """
    study.require("perturbations", why="its embeddings are the candidates' features")
    pert = study.read("perturbations")
    obs = pert.obs
    keep = np.ones(pert.n_obs, bool)
    if "perturbation_type" in obs:
        keep &= obs["perturbation_type"].astype(str).to_numpy() != "control"
    ctrl = study.meta.get("control_label")
    if ctrl is not None:
        keep &= np.asarray(pert.obs_names) != ctrl
    names = np.asarray(pert.obs_names, str)[keep]
    X = pert.X[keep]
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
    y = pd.Series([None] * len(names), index=names, dtype=object)
    if labels is not None:
        lab = _read_labels(labels, column)
        unknown = [p for p in lab.index if p not in set(names)]
        if unknown:
            raise ValidationError(
                f"{len(unknown)} perturbations of the labels table are not candidates of the "
                f"Study (e.g. {unknown[:3]}).", "use the names in the Study's perturbations.")
        y.loc[lab.index] = lab.where(lab.notna(), None).astype(object).to_numpy()
    return names, X, y


def _previous_certificate(study, y: pd.Series, delta: float, n: int):
    """Bound from the last plan's proposed items that now carry labels (None if none)."""
    from workbench.models.design_bounds import kl_lower_bound, system_accuracy_bound

    if not study.has("design_plan"):
        return None
    old = study.read("design_plan")
    old = old[(old.status == "proposed") & (old.planner == "screen")]
    old = old[old.candidate.isin(y.index)]
    # only items that had a prediction (a first batch chosen before any label has none)
    done = old[y.loc[old.candidate].notna().to_numpy() & old.predicted.notna().to_numpy()]
    if done.empty:
        return None
    k = int((done.predicted.astype(str).to_numpy()
             == y.loc[done.candidate].astype(str).to_numpy()).sum())
    low = kl_lower_bound(k, len(done), delta)
    n_meas = int(y.notna().sum())
    return {"batch_correct": k, "batch_size": len(done), "model_lower": low,
            "bound": system_accuracy_bound(n_meas, n - n_meas, low)}


def propose(study, budget: int, policy: str, *, kind: str = "screen", labels=None,
            column: str = "label", gamma: float = 0.9, delta: float = 0.05, prior=None,
            seed: int = 0, write: bool = True, **kw) -> Batch:
    """Propose the next ``budget`` candidates of ``study`` with ``policy``; see the module.

    Parameters
    ----------
    study : Study
        The Study to plan for.
    budget : int
        Number of candidates to propose.
    policy : str
        The planner's policy (:data:`~workbench.tools.design.screen.SCREEN_POLICIES`,
        :data:`~workbench.tools.design.hits.HIT_POLICIES`,
        :data:`~workbench.tools.design.knockout.KNOCKOUT_POLICIES`, or a pair planner).
    kind : str
        One of :data:`KINDS`.
    labels : pandas.DataFrame, str or pathlib.Path, optional
        What has been measured (:func:`study_pool`); for ``"hits"`` the values are numeric.
    column : str
        The value column of ``labels``.
    gamma : float
        Target system accuracy: a screen recommends stopping once the certified bound
        reaches it.
    delta : float
        Error probability of the certified bound.
    prior : mapping or pandas.Series, optional
        Prior score per candidate name, for the ``"prior_nn"`` hit policy (missing names rank
        last).
    seed : int
        Seed of the planner's draws.
    write : bool
        Write ``design_plan`` and the step's provenance into the Study.
    **kw
        Passed to :func:`~workbench.tools.design.knockout.propose_knockouts` or
        :func:`~workbench.tools.pair_planning.plan_pairs`.

    Returns
    -------
    Batch
        The proposed candidates; ``info`` holds ``bound``, ``stop``, ``gamma``, ``delta``,
        ``n_measured``, ``n_candidates`` (and the certificate's counts when there is one).
    """
    if kind not in KINDS:
        raise ValidationError(f"unknown planner kind {kind!r}.", f"use one of {', '.join(KINDS)}.")
    if kind == "knockout":
        from workbench.tools.design.knockout import propose_knockouts

        return propose_knockouts(study, budget, policy, seed=seed, write=write, **kw)
    if kind == "pairs":
        from workbench.tools.pair_planning import plan_pairs

        res = plan_pairs(study, budget=budget, planner=policy, seed=seed, **kw)
        prop = res[res.status == "proposed"]
        table = pd.DataFrame({"candidate": prop.pair.to_numpy(), "rank": prop["rank"].to_numpy(),
                              "score": prop.predicted.to_numpy(), "reason": prop.reason.to_numpy()})
        return Batch("pairs", str(prop.planner.iloc[0]), table,
                     {"planner_reason": str(prop.planner_reason.iloc[0])})
    names, X, y = study_pool(study, labels, column)
    from workbench.tools.design.screen import check_pool

    X = check_pool(X, y.to_numpy(), budget=budget, name="Study's perturbation pool")
    if kind == "screen":
        from workbench.tools.design.screen import screen_round

        cert = _previous_certificate(study, y, delta, len(names))
        out = screen_round(X, y.to_numpy(), budget=budget, policy=policy, seed=seed)
        pred, conf, score = out["predicted"], out["confidence"], np.full(len(names), np.nan)
    else:
        from workbench.tools.design.hits import HIT_POLICIES, score_candidates
        from workbench.tools.design.screen import prepare_features

        if policy not in HIT_POLICIES:
            raise ValidationError(f"unknown hit policy {policy!r}.",
                                  f"use one of {', '.join(HIT_POLICIES)}.")
        meas = y.notna().to_numpy()
        try:
            vals = y[meas].astype(float).to_numpy()
        except (TypeError, ValueError):
            raise ValidationError(f"column {column!r} of the labels is not numeric.",
                                  "the hit planner needs a phenotype value per measured "
                                  "candidate.") from None
        if prior is not None:
            prior = pd.Series(prior).reindex(names).fillna(-np.inf).to_numpy(float)
        rng = np.random.default_rng([seed, 43])
        open_idx = np.flatnonzero(~meas)
        s, what = score_candidates(policy, prepare_features(X), np.flatnonzero(meas), vals,
                                   open_idx, rng, prior=prior, seed=seed)
        order = np.lexsort((rng.random(len(open_idx)), -s))[:budget]
        out = {"pick": open_idx[order], "score": s[order],
               "reason": [f"{what}: {v:.3g}" for v in s[order]], "policy": policy}
        cert, pred, conf = None, np.full(len(names), None, object), np.full(len(names), np.nan)
        score = np.full(len(names), np.nan)
    pick = np.asarray(out["pick"])
    status = np.where(y.notna().to_numpy(), "measured", "predicted").astype(object)
    status[pick] = "proposed"
    rank = np.full(len(names), np.nan)
    rank[pick] = np.arange(1, len(pick) + 1)
    score[pick] = out["score"]
    reason = np.full(len(names), "", object)
    reason[pick] = out["reason"]
    bound = np.nan if cert is None else cert["bound"]
    stop = bool(cert is not None and cert["bound"] >= gamma)
    plan = pd.DataFrame({
        "candidate": names, "status": status, "rank": rank, "score": score, "reason": reason,
        "label": [None if v is None else str(v) for v in y.to_numpy()],
        "predicted": [None if v is None else str(v) for v in pred],
        "confidence": np.asarray(conf, float), "planner": kind, "policy": out["policy"],
        "bound": bound, "stop": stop})
    table = plan.iloc[pick][["candidate", "rank", "score", "reason"]].reset_index(drop=True)
    info = {"bound": bound, "stop": stop, "gamma": gamma, "delta": delta,
            "n_measured": int(y.notna().sum()), "n_candidates": len(names)}
    if cert:
        info.update(cert)
    if write:
        params = {"kind": kind, "budget": int(budget), "policy": policy, "gamma": gamma,
                  "delta": delta, "column": column, "n_candidates": len(names)}
        inputs = ["perturbations"] + (["design_plan"] if cert is not None else [])
        with study.step("design", params=params, seed=seed, inputs=inputs) as tx:
            tx.write_table("design_plan", plan, description="candidates measured, proposed "
                           "next and predicted, with reasons and the certified bound")
            # the campaign so far, one point per design step (read by the Plan view)
            notes = {"planner": kind, "n_measured": int(y.notna().sum())}
            if kind == "screen" and cert is not None:
                notes["bound"] = float(bound)
            if kind == "hits" and meas.any():
                notes["best_value"] = float(np.max(vals))
            tx.note(**notes)
    return Batch(kind, out["policy"], table, info)
