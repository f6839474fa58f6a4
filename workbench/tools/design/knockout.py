"""The next knock-outs for the GRN: which genes to knock out to learn the most about the graph.

Reads the GRN step's posterior (``grn_samples`` with their fitted mechanisms
``grn_sample_weights``, and the cells of ``grn`` the posterior was fitted on), estimates the
noise of each gene's velocity from held-out residuals and the effective number of
independent cells (:mod:`workbench.models.gflownet.exact_posterior`), and scores every
candidate knock-out by its expected information gain about the graph
(:mod:`workbench.models.knockout_eig`). Policies:

``"eig"``
    greedy joint information gain about the whole graph
    (:class:`~workbench.models.knockout_eig.GraphKnockoutScorer`): what the knock-out's
    cells would tell about every gene's parents, the clamp's step on the edges out of the
    gene (no larger than the cells' range, where the linear mechanisms were fitted) and the
    broken correlations of the gene with the others; each pick adds the most to
    what the batch already settles (the diverse batch);
``"edge_eig"``
    the earlier, narrower score (:class:`~workbench.models.knockout_eig.KnockoutScorer`):
    only what the clamp says about the edges out of the knocked-out gene, greedy batch;
``"uncertain_edges"``
    the simple baseline: the genes whose outgoing edges have the largest summed posterior
    entropy, no model of the experiment;
``"random"``
    uniform choice among the candidates.

Each pick's reason names the edges it informs most (``G03->G07 (p=0.48)``: the posterior
probability of the edge now) and its gain in nats. The stop recommendation is "stop" when
the best batch is expected to teach less than ``stop_gain`` nats.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError

__all__ = ["KNOCKOUT_POLICIES", "knockout_setup", "plan_knockouts", "study_knockout_inputs",
           "mean_edge_entropy"]

KNOCKOUT_POLICIES = ("eig", "edge_eig", "uncertain_edges", "random")


def mean_edge_entropy(prob) -> float:
    """Mean binary entropy (nats) of the off-diagonal edge probabilities.

    Parameters
    ----------
    prob : array_like
        ``(d, d)`` edge probabilities; the diagonal is ignored.

    Returns
    -------
    float
        The mean entropy in nats.
    """
    from workbench.models.knockout_eig import edge_entropy

    p = np.asarray(prob, np.float64)
    off = ~np.eye(len(p), dtype=bool)
    return float(edge_entropy(p[off]).mean())


def knockout_setup(x, v, *, groups=None, cells_per_knockout: int = 50,
                   knocked_level=None, clip_offset: bool = True, seed: int = 0) -> dict:
    """Noise and clamp size of a knock-out experiment on standardised ``x, v``.

    Parameters
    ----------
    x : array_like
        ``(n_cells, d)`` standardised expression.
    v : array_like
        ``(n_cells, d)`` velocities on the same scale.
    groups : array_like, optional
        A group (trajectory) per cell for the held-out residuals and the effective sample
        size; ``None`` treats the cells as one group.
    cells_per_knockout : int
        Cells measured per knock-out.
    knocked_level : array_like of float, optional
        The standardised value of a knocked-out gene, per gene (default 0: right only when
        zero expression is the mean; pass ``-mean / sd`` of the raw data).
    clip_offset : bool
        Clip ``offset`` to the cells' largest deviation from the mean, where the linear
        mechanisms were fitted.
    seed : int
        Seed of the held-out residual split.

    Returns
    -------
    dict
        ``shift`` (``D_g``, the root mean square of ``k_g - x_g``), ``gram`` (the centred
        second moment of ``x``), ``offset`` (``k_g - mean(x_g)``, clipped as above),
        ``noise_sd`` per gene (``sigma_i / sqrt(n_eff)`` for one knock-out's cells),
        ``noise_variance``, ``n_eff_ratio`` (independent observations per cell) and
        ``knocked_level``.
    """
    from workbench.models.gflownet import exact_posterior as ep

    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    res = ep.held_out_residuals(x, v, groups=groups, seed=seed)
    sigma2 = ep.noise_variance(res)
    ratio = ep.effective_sample_size(x, res, groups=groups) / len(x)
    k = np.zeros(x.shape[1]) if knocked_level is None else np.asarray(knocked_level, float)
    shift = np.sqrt(((k[None, :] - x) ** 2).mean(0))
    n_eff = max(ratio * cells_per_knockout, 1.0)
    xc = x - x.mean(0)
    offset = k - x.mean(0)
    if clip_offset:
        # the linear mechanisms are trusted only as far as the cells reach: a clamp far
        # outside their range counts as a step to the edge of that range
        reach = np.abs(xc).max(0)
        offset = np.sign(offset) * np.minimum(np.abs(offset), reach)
    return {"shift": shift, "gram": xc.T @ xc / len(x), "offset": offset,
            "noise_sd": np.sqrt(sigma2 / n_eff), "noise_variance": sigma2,
            "n_eff_ratio": float(ratio), "knocked_level": k}


def plan_knockouts(samples, weights, setup: dict, budget: int, policy: str = "eig", *,
                   genes=None, candidates=None, stop_gain: float = 0.05, n_draws: int = 256,
                   seed: int = 0) -> dict:
    """Choose ``budget`` knock-outs; returns picks, scores, reasons and every candidate's EIG.

    The single-knock-out gains and the reasons come from the whole-graph score for every
    policy except ``edge_eig``, so the policies are described on one scale.

    Parameters
    ----------
    samples : array_like
        ``(n_samples, d, d)`` posterior graph samples.
    weights : array_like
        Their fitted mechanism weights, the same shape.
    setup : dict
        What :func:`knockout_setup` returns (without ``gram`` and ``offset``, the cells are
        taken as uncorrelated with unit variance and ``offset = shift``).
    budget : int
        Number of knock-outs to choose, from 1 to the number of candidates.
    policy : str
        One of :data:`KNOCKOUT_POLICIES`.
    genes : sequence of str, optional
        Gene names for the reasons (default ``"gene 0"``, ...).
    candidates : sequence of int, optional
        Gene indices that may be chosen (default: every gene).
    stop_gain : float
        Recommend stopping when the batch's expected gain is below this (nats).
    n_draws : int
        Monte Carlo draws of the ``edge_eig`` scorer.
    seed : int
        Seed of the tie-breaks, the random policy and the scorer.

    Returns
    -------
    dict
        ``pick`` (gene indices), ``score`` and ``reason`` per pick, ``single_eig`` (every
        gene's own gain), ``batch_gain`` (nats), ``stop``, ``entropy`` (the posterior's mean
        edge entropy) and ``policy``.

    Raises
    ------
    ValidationError
        When the policy is unknown or the budget is below 1 or above the candidates.
    """
    from workbench.models.knockout_eig import (GraphKnockoutScorer, KnockoutScorer,
                                               edge_entropy, greedy_batch)

    if policy not in KNOCKOUT_POLICIES:
        raise ValidationError(f"unknown knock-out policy {policy!r}.",
                              f"use one of {', '.join(KNOCKOUT_POLICIES)}.")
    if policy == "edge_eig":
        scorer = KnockoutScorer(samples, weights, setup["shift"], setup["noise_sd"],
                                n_draws=n_draws, seed=seed)
    else:
        d0 = np.shape(samples)[-1]
        scorer = GraphKnockoutScorer(samples, weights, setup.get("gram", np.eye(d0)),
                                     setup.get("offset", setup["shift"]), setup["noise_sd"])
    d = scorer.n_genes
    genes = [f"gene {i}" for i in range(d)] if genes is None else list(genes)
    cand = list(range(d)) if candidates is None else [int(c) for c in candidates]
    if int(budget) < 1:
        raise ValidationError(f"budget {budget} asks for nothing: it must be at least 1.",
                              "give a budget of at least one knock-out.")
    if int(budget) > len(cand):
        raise ValidationError(f"budget {budget} is larger than the {len(cand)} candidate "
                              "knock-outs.", f"give a budget of at most {len(cand)}.")
    if hasattr(scorer, "single_scores"):
        single = np.asarray(scorer.single_scores(), float)
    else:
        single = np.array([scorer.score([g]) for g in range(d)])
    rng = np.random.default_rng([seed, 44])
    if policy in ("eig", "edge_eig"):
        order = list(rng.permutation(cand))       # random tie-breaks
        picked = greedy_batch(scorer, order, int(budget))
        pick, score = [g for g, _ in picked], [s for _, s in picked]
        what = "joint gain"
    elif policy == "uncertain_edges":
        p = scorer.edge_probability_
        out = edge_entropy(p) * (~np.eye(d, dtype=bool))
        ent = out.sum(0)                           # column g: edges g -> *
        c = np.asarray(cand)
        top = c[np.lexsort((rng.random(len(c)), -ent[c]))][: int(budget)]
        pick, score, what = [int(g) for g in top], [float(ent[g]) for g in top], \
            "outgoing edge entropy"
    else:
        pick = [int(g) for g in rng.choice(cand, size=int(budget), replace=False)]
        score, what = [float(single[g]) for g in pick], "random pick; its own gain"
    reasons = []
    for g, s in zip(pick, score, strict=True):
        edges = scorer.disambiguated(g)
        if policy == "edge_eig":
            settle = ", ".join(f"{genes[g]}->{genes[i]} (p={pe:.2f})" for i, _, pe in edges)
        else:
            settle = ", ".join(f"parents of {genes[i]} ({gi:.2g} nats; {genes[j]}->{genes[i]} "
                               f"p={pe:.2f})" for i, gi, j, pe in edges)
        reasons.append(f"{what} {s:.3g}" + (" nats" if policy != "uncertain_edges" else "")
                       + (f"; informs {settle}" if settle else "; informs no edge"))
    batch_gain = scorer.score(pick)
    return {"pick": pick, "score": score, "reason": reasons, "single_eig": single,
            "batch_gain": batch_gain, "stop": bool(batch_gain < stop_gain),
            "entropy": mean_edge_entropy(scorer.edge_probability_), "policy": policy}


def study_knockout_inputs(study) -> dict:
    """Posterior samples, weights and standardised cells of a Study's GRN step.

    Parameters
    ----------
    study : Study
        A Study with the ``grn``, ``grn_samples`` and ``grn_sample_weights`` artefacts.

    Returns
    -------
    dict
        ``genes``, ``samples``, ``weights``, standardised ``x`` and ``v``, ``groups`` (the
        trajectory per cell, or ``None``) and ``knocked_level`` (zero expression on the
        standardised scale).
    """
    from workbench.tools.grn import scale_for_grn

    for name in ("grn", "grn_samples", "grn_sample_weights"):
        study.require(name, why="the knock-out planner scores the GRN posterior")
    g = study.read("grn")
    samples = np.asarray(study.read("grn_samples"))
    weights = np.asarray(study.read("grn_sample_weights"))
    genes = [str(n) for n in g.var_names]
    if samples.shape[1:] != (len(genes), len(genes)) or samples.shape != weights.shape:
        raise ValidationError(
            f"grn_samples {samples.shape} and grn_sample_weights {weights.shape} do not match "
            f"the {len(genes)} genes of the grn artefact.",
            "run `workbench grn STUDY` again so that all three come from one step.")
    raw = np.asarray(g.X.toarray() if hasattr(g.X, "toarray") else g.X, np.float64)
    v = np.asarray(g.layers["velocity"], np.float64)
    x, vs, sd = scale_for_grn(raw, v)
    groups = g.obs["trajectory"].to_numpy() if "trajectory" in g.obs else None
    level = (0.0 - raw.mean(0)) / sd
    return {"genes": genes, "samples": samples, "weights": weights, "x": x, "v": vs,
            "groups": groups, "knocked_level": level}


def propose_knockouts(study, budget: int, policy: str = "eig", *, seed: int = 0,
                      write: bool = True, cells_per_knockout: int = 50,
                      stop_gain: float = 0.05, candidates=None):
    """``propose(study, budget, policy, kind="knockout")``: the next knock-outs of a Study.

    Writes ``design_plan`` with one row per gene of the GRN (``proposed`` or ``open``), the
    single-knock-out gain as ``score``, the posterior's mean edge entropy as ``entropy``, and
    ``stop`` when the chosen batch is expected to teach less than ``stop_gain`` nats.

    Parameters
    ----------
    study : Study
        A Study with the GRN step's posterior (:func:`study_knockout_inputs`).
    budget : int
        Number of knock-outs to propose.
    policy : str
        One of :data:`KNOCKOUT_POLICIES`.
    seed : int
        Seed of the noise estimate and the planner.
    write : bool
        Write ``design_plan`` and the step's provenance into the Study.
    cells_per_knockout : int
        Cells measured per knock-out.
    stop_gain : float
        The expected gain (nats) below which the plan says stop.
    candidates : sequence of str, optional
        Gene names that may be knocked out (default: every gene of the GRN).

    Returns
    -------
    Batch
        ``kind="knockout"``; the table of picks and ``info`` with ``batch_gain``, ``stop``,
        ``stop_gain``, ``entropy``, ``n_candidates`` and ``noise_sd``.
    """
    import pandas as pd

    from workbench.tools.design.batch import Batch

    inp = study_knockout_inputs(study)
    genes = inp["genes"]
    if candidates is not None:
        unknown = [c for c in candidates if c not in genes]
        if unknown:
            raise ValidationError(f"{len(unknown)} candidate knock-outs are not genes of the "
                                  f"GRN (e.g. {unknown[:3]}).",
                                  f"choose among {', '.join(genes[:10])}"
                                  f"{'...' if len(genes) > 10 else ''}.")
        candidates = [genes.index(c) for c in candidates]
    setup = knockout_setup(inp["x"], inp["v"], groups=inp["groups"],
                           cells_per_knockout=cells_per_knockout,
                           knocked_level=inp["knocked_level"], seed=seed)
    out = plan_knockouts(inp["samples"], inp["weights"], setup, budget, policy, genes=genes,
                         candidates=candidates, stop_gain=stop_gain, seed=seed)
    d = len(genes)
    pick = np.asarray(out["pick"], int)
    status = np.full(d, "open", object)
    status[pick] = "proposed"
    rank = np.full(d, np.nan)
    rank[pick] = np.arange(1, len(pick) + 1)
    reason = np.full(d, "", object)
    reason[pick] = out["reason"]
    plan = pd.DataFrame({
        "candidate": genes, "status": status, "rank": rank, "score": out["single_eig"],
        "reason": reason, "label": [None] * d, "predicted": [None] * d,
        "confidence": np.full(d, np.nan), "planner": "knockout", "policy": policy,
        "bound": np.nan, "stop": out["stop"], "entropy": out["entropy"]})
    table = plan.iloc[pick][["candidate", "rank", "score", "reason"]].reset_index(drop=True)
    table["score"] = out["score"]
    info = {"batch_gain": out["batch_gain"], "stop": out["stop"], "stop_gain": stop_gain,
            "entropy": out["entropy"], "n_candidates": d if candidates is None
            else len(candidates), "noise_sd": setup["noise_sd"].tolist()}
    if write:
        params = {"kind": "knockout", "budget": int(budget), "policy": policy,
                  "cells_per_knockout": int(cells_per_knockout), "stop_gain": stop_gain}
        with study.step("design", params=params, seed=seed,
                        inputs=["grn", "grn_samples", "grn_sample_weights"]) as tx:
            tx.write_table("design_plan", plan, description="candidate knock-outs, the next "
                           "batch by expected information gain about the graph, with reasons")
            tx.note(planner="knockout", entropy=out["entropy"],
                    batch_gain=out["batch_gain"], stop=out["stop"])
    return Batch("knockout", policy, table, info)
