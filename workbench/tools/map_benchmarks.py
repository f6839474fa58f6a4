"""Benchmarks of a perturbation map: is it consistent, and does it know known biology?

Three questions, following the EFAAR benchmarks (Celik et al. 2024, PLoS Comput Biol;
code `recursionpharma/EFAAR_benchmarking`) and ViTally Consistent (Kenyon-Dean et al. 2024):

* **Replicate consistency.** Replicates of one perturbation (wells, plates) should look
  more alike than profiles of two different perturbations. Per perturbation, the cosine
  similarities among its replicates are compared with a null of random pairs of different
  perturbations: a one-sided two-sample Kolmogorov-Smirnov statistic and p-value, and a
  permutation p-value for the mean replicate cosine. Overall: the same KS on all pairs.
* **Known-relationship recall.** Take every pairwise cosine between perturbations (upper
  triangle) as the null; a known pair (same complex, pathway ...) is "recalled" when its
  cosine falls in either tail (at most the 5th or at least the 95th percentile: related
  genes can also be anti-correlated). Random recall is 10 % at (0.05, 0.95).
* **Against the controls** (:mod:`workbench.tools.efaar_benchmarks`): replicate
  consistency with the negative-control null (KS and Cramer-von Mises, with and without
  same-batch pairs), per-query mAP of each perturbation's replicates among the control
  replicates with p and BH q, and the energy-distance magnitude, under
  ``"control_null"``. The random-pair consistency above is kept beside it as the simple
  baseline.
* **Retrieval mAP.** Each perturbation with a label shared by another (e.g. the same
  mechanism of action) ranks all others by cosine; average precision over its same-label
  hits, averaged over queries. The p-value comes from shuffling the labels.

:func:`run_benchmarks` reads a Study (``perturbations``, ``profiles``, ``ground_truth``
and relationship files) and writes the results under ``perturbations.uns["workbench"]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.tools.normalize import aggregate, cosine_matrix

#: Fewest control replicates (wells) for the control-null benchmarks.
MIN_CONTROL_REPLICATES = 8
#: Percentile thresholds (lower, upper) of the recall benchmark, as in EFAAR.
RECALL_THRESHOLDS = ((0.05, 0.95), (0.1, 0.9))


# ---------------------------------------------------------------------- relationships
def read_relationships(path: str | os.PathLike) -> pd.DataFrame:
    """Read an EFAAR-format annotation file (pairs CSV or cluster TSV, gzip allowed) into
    unique undirected pairs (reading is :func:`workbench.data.readers.relationships.read_relationships`).

    Parameters
    ----------
    path : str or os.PathLike
        The annotation file.

    Returns
    -------
    pandas.DataFrame
        ``entity1``, ``entity2`` with ``entity1 < entity2``, unique.
    """
    from workbench.data.readers.relationships import read_relationships as _read

    df = _read(path)
    return undirected_pairs(df["entity1"], df["entity2"])


def undirected_pairs(a, b) -> pd.DataFrame:
    """Sort each pair, drop self-pairs and duplicates.

    Parameters
    ----------
    a, b : array_like of str
        The two sides of each pair.

    Returns
    -------
    pandas.DataFrame
        ``entity1``, ``entity2`` with ``entity1 < entity2``, unique, without self-pairs.
    """
    a, b = np.asarray(a).astype(str), np.asarray(b).astype(str)
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    df = pd.DataFrame({"entity1": lo, "entity2": hi})
    return df[df.entity1 != df.entity2].drop_duplicates().reset_index(drop=True)


def pairs_from_groups(groups: dict[str, list[str]]) -> pd.DataFrame:
    """All within-group pairs of a ``{group: [genes]}`` mapping, undirected and unique.

    Parameters
    ----------
    groups : dict of str to list of str
        Members of each group.

    Returns
    -------
    pandas.DataFrame
        ``entity1``, ``entity2`` (:func:`undirected_pairs`).
    """
    a, b = [], []
    for genes in groups.values():
        genes = sorted(set(map(str, genes)))
        for i, g in enumerate(genes):
            for h in genes[i + 1:]:
                a.append(g)
                b.append(h)
    return undirected_pairs(a, b)


def relationship_recall(cos, names, pairs: pd.DataFrame,
                        thresholds=RECALL_THRESHOLDS) -> dict:
    """Recall of known pairs in the tails of the map's cosine distribution (two-sided).

    Ties count in the query's favour.

    Parameters
    ----------
    cos : array_like
        ``(n, n)`` cosine similarities of the map.
    names : array_like of str
        The map's perturbations, in the order of ``cos``.
    pairs : pandas.DataFrame
        Known pairs, ``entity1`` and ``entity2``; pairs not in the map are skipped.
    thresholds : sequence of tuple of float
        ``(lower, upper)`` percentile thresholds of the two tails.

    Returns
    -------
    dict
        ``n_pairs_given``, ``n_pairs_in_map``, ``n_null`` and, per threshold ``"lo_hi"``,
        ``recall``, ``random_baseline`` (``lo + 1 - hi``) and ``max_attainable`` (the best
        any map of this size could score).
    """
    cos = np.asarray(cos, dtype=np.float64)
    names = np.asarray(names).astype(str)
    if cos.shape != (len(names), len(names)):
        raise ValidationError(f"cosine matrix {cos.shape} does not match {len(names)} names.")
    pos = {n: i for i, n in enumerate(names)}
    iu = np.triu_indices(len(names), 1)
    null = np.sort(cos[iu])
    ok = pairs.entity1.isin(pos) & pairs.entity2.isin(pos)
    found = pairs[ok]
    out = {"n_pairs_given": int(len(pairs)), "n_pairs_in_map": int(len(found)),
           "n_null": int(null.size), "recall": {}, "random_baseline": {}}
    if len(found) == 0 or null.size == 0:
        return out
    q = cos[found.entity1.map(pos).to_numpy(), found.entity2.map(pos).to_numpy()]
    # ties count in the query's favour: left tail uses the right rank and vice versa
    left = np.searchsorted(null, q, side="right") / null.size
    right = np.searchsorted(null, q, side="left") / null.size
    for lo, hi in thresholds:
        key = f"{lo:g}_{hi:g}"
        out["recall"][key] = float(np.mean((left <= lo) | (right >= hi)))
        out["random_baseline"][key] = float(lo + 1 - hi)
        # in a small map the tails hold few pairs: the best any map could score
        slots = int(np.floor(lo * null.size)) + int(np.floor((1 - hi) * null.size)) + 2
        out.setdefault("max_attainable", {})[key] = float(min(1.0, slots / len(found)))
    return out


# ---------------------------------------------------------------------- consistency
def replicate_consistency(R, perturbation, *, exclude=(), distinct=None, n_null: int = 20000,
                          n_perm: int = 1000, seed: int = 0):
    """Per-perturbation replicate consistency of replicate-level profiles ``R``.

    The null is random pairs of profiles of different perturbations. With ``distinct``
    (e.g. the well of each profile) only pairs from different groups count: cells of one well
    are not independent replicates.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate profiles.
    perturbation : array_like of str
        The perturbation of each profile.
    exclude : sequence of str
        Perturbations left out (e.g. the controls).
    distinct : array_like, optional
        A group per profile; replicate pairs within one group are not counted.
    n_null : int
        Random pairs in the null.
    n_perm : int
        Random replicate sets per perturbation for the permutation p-value.
    seed : int
        Seed of the null and the permutations.

    Returns
    -------
    table : pandas.DataFrame
        One row per perturbation with at least two replicates: ``perturbation``,
        ``n_replicates``, ``mean_cosine``, ``ks``, ``ks_p``, ``perm_p``.
    overall : dict
        ``n_perturbations``, ``null_mean_cosine`` and, when any pair counted, the KS of all
        replicate pairs against the null (``ks``, ``ks_p``), ``replicate_mean_cosine`` and
        ``fraction_consistent_p05`` (permutation p < 0.05).
    """
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(seed)
    pert = np.asarray(perturbation).astype(str)
    keep = ~np.isin(pert, [str(e) for e in exclude])
    R, pert = np.asarray(R)[keep], pert[keep]
    bat = np.asarray(distinct).astype(str)[keep] if distinct is not None else None
    cos = cosine_matrix(R).astype(np.float64)
    m = len(pert)
    if m < 3:
        raise ValidationError(f"only {m} replicate profiles; consistency needs more.")
    i, j = rng.integers(0, m, (2, n_null * 2))
    diff = pert[i] != pert[j]
    null = cos[i[diff], j[diff]][:n_null]
    rows, all_rep = [], []
    codes, uniq = pd.factorize(pert)
    for k, p in enumerate(uniq):
        idx = np.flatnonzero(codes == k)
        if len(idx) < 2:
            continue
        a, b = np.triu_indices(len(idx), 1)
        if bat is not None:
            sel = bat[idx[a]] != bat[idx[b]]
            a, b = a[sel], b[sel]
            if len(a) == 0:
                continue
        rep = cos[idx[a], idx[b]]
        all_rep.append(rep)
        ks = ks_2samp(rep, null, alternative="less")
        others = np.flatnonzero(codes != k)
        # permutation null: mean cosine among len(idx) random profiles of other perturbations
        draws = np.stack([rng.choice(others, len(idx), replace=False) for _ in range(n_perm)])
        sub = cos[draws[:, :, None], draws[:, None, :]][:, a, b].mean(1)
        obs = rep.mean()
        rows.append({"perturbation": p, "n_replicates": int(len(idx)), "mean_cosine": float(obs),
                     "ks": float(ks.statistic), "ks_p": float(ks.pvalue),
                     "perm_p": float((1 + np.sum(sub >= obs)) / (1 + n_perm))})
    table = pd.DataFrame(rows, columns=["perturbation", "n_replicates", "mean_cosine", "ks",
                                        "ks_p", "perm_p"])
    overall = {"n_perturbations": int(len(table)), "null_mean_cosine": float(null.mean())}
    if len(all_rep):
        rep = np.concatenate(all_rep)
        ks = ks_2samp(rep, null, alternative="less")
        overall.update({"ks": float(ks.statistic), "ks_p": float(ks.pvalue),
                        "replicate_mean_cosine": float(rep.mean()),
                        "fraction_consistent_p05": float((table.perm_p < 0.05).mean())})
    return table, overall


# ---------------------------------------------------------------------- retrieval
def retrieval_map(profiles, labels, *, n_perm: int = 1000, seed: int = 0, sep: str | None = None,
                  cos=None) -> dict:
    """Mean average precision for retrieving same-label items, with a permutation p-value.

    The null shuffles the labels among the labelled items.

    Parameters
    ----------
    profiles : array_like or None
        ``(n, d)`` profiles (unused when ``cos`` is given).
    labels : sequence
        A label per item; missing values (those items are ranked but never queried or
        counted as hits) are allowed.
    n_perm : int
        Label shuffles of the null.
    seed : int
        Seed of the shuffles.
    sep : str, optional
        With a separator (e.g. ``"|"``) labels are sets and sharing any member counts as a
        hit.
    cos : array_like, optional
        ``(n, n)`` precomputed similarities.

    Returns
    -------
    dict
        ``map``, ``n_queries``, ``n_items``, ``null_mean``, ``null_sd``, ``p_value``,
        ``n_perm`` and ``ap`` (the average precision per item, NaN for non-queries).
    """
    rng = np.random.default_rng(seed)
    labels = pd.Series(list(labels), dtype=object)
    cos = cosine_matrix(profiles) if cos is None else np.asarray(cos, dtype=np.float64)
    n = len(labels)
    missing = {"", "nan", "none", "na", "<na>"}
    has = labels.notna().to_numpy() & ~labels.astype(str).str.lower().isin(missing).to_numpy()
    sets = [str(v).split(sep) if sep else [str(v)] for v in labels]
    vocab = {t: k for k, t in enumerate(sorted({t for i in np.flatnonzero(has) for t in sets[i]}))}
    M = np.zeros((n, max(len(vocab), 1)), dtype=np.float32)
    for i in np.flatnonzero(has):
        M[i, [vocab[t] for t in sets[i]]] = 1
    order = np.argsort(-(cos - np.eye(n) * 1e9), axis=1)[:, : n - 1]   # self ranked last, cut
    ranks = np.arange(1, n)[None]

    def score(M):
        rel = (M @ M.T) > 0
        np.fill_diagonal(rel, False)
        hits = np.take_along_axis(rel, order, 1)
        q = hits.any(1) & has
        if not q.any():
            return np.nan, q, np.full(n, np.nan)
        prec = np.cumsum(hits, 1) / ranks
        ap = np.where(hits, prec, 0).sum(1) / np.maximum(hits.sum(1), 1)
        return float(ap[q].mean()), q, np.where(q, ap, np.nan)

    obs, queries, ap = score(M)
    if np.isnan(obs):
        raise ValidationError("no item shares its label with another, so retrieval is undefined.",
                              "give labels (e.g. MOA) that at least two perturbations share.")
    lab_idx = np.flatnonzero(has)
    null = np.empty(n_perm)
    for t in range(n_perm):
        P = M.copy()
        P[lab_idx] = M[rng.permutation(lab_idx)]
        null[t] = score(P)[0]
    return {"map": obs, "n_queries": int(queries.sum()), "n_items": int(n),
            "null_mean": float(np.nanmean(null)), "null_sd": float(np.nanstd(null)),
            "p_value": float((1 + np.sum(null >= obs)) / (1 + n_perm)), "n_perm": int(n_perm),
            "ap": ap}


# ---------------------------------------------------------------------- batch effect
def batch_effect(R, perturbation, batch, *, exclude=()) -> dict:
    """Same-batch minus cross-batch cosine between profiles of *different* perturbations.

    Two unrelated perturbations should be no more alike when they sit in the same batch;
    a positive ``gap`` is the batch effect left in the map (0 when it is gone). Use it on
    replicate-level (well) profiles. Controls are excluded: per-batch normalisation centres
    them by construction.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate profiles.
    perturbation : array_like of str
        The perturbation of each profile.
    batch : array_like
        The batch of each profile.
    exclude : sequence of str
        Perturbations left out (the controls).

    Returns
    -------
    dict
        ``same_batch_cosine``, ``cross_batch_cosine``, ``gap`` (NaN when either kind of pair
        is missing) and ``n_batches``.
    """
    pert = np.asarray(perturbation).astype(str)
    batch = np.asarray(batch).astype(str)
    keep = ~np.isin(pert, [str(e) for e in exclude])
    cos = cosine_matrix(np.asarray(R)[keep]).astype(np.float64)
    pert, batch = pert[keep], batch[keep]
    iu = np.triu_indices(len(pert), 1)
    diff = pert[iu[0]] != pert[iu[1]]
    same = (batch[iu[0]] == batch[iu[1]]) & diff
    cross = (batch[iu[0]] != batch[iu[1]]) & diff
    c = cos[iu]
    if not same.any() or not cross.any():
        return {"same_batch_cosine": float("nan"), "cross_batch_cosine": float("nan"),
                "gap": float("nan"), "n_batches": int(len(np.unique(batch)))}
    return {"same_batch_cosine": float(c[same].mean()), "cross_batch_cosine": float(c[cross].mean()),
            "gap": float(c[same].mean() - c[cross].mean()), "n_batches": int(len(np.unique(batch)))}


# ---------------------------------------------------------------------- on a Study
def map_benchmarks(perturbations, profiles, control_label: str, *, relationships=None,
                   groups: dict | None = None, known: dict | None = None,
                   replicate_key: str = "well", max_profiles: int = 5000,
                   label_key: str | None = None, label_sep: str | None = "|",
                   n_perm: int = 1000, seed: int = 0) -> dict:
    """All benchmarks for AnnData ``perturbations`` (X, obsp["cosine"]) and ``profiles``.

    Replicates are ``replicate_key`` aggregates (wells) of ``profiles.X`` when the median
    perturbation has at least 3 of them, else single profiles paired across wells.

    Parameters
    ----------
    perturbations : anndata.AnnData
        The map: one row per perturbation.
    profiles : anndata.AnnData
        The per-sample profiles, with ``perturbation`` (and ``batch``) in obs.
    control_label : str
        The controls' perturbation name.
    relationships : sequence of str or os.PathLike, optional
        Annotation files of known pairs.
    groups : dict, optional
        ``{name: genes}`` relationship groups given in memory.
    known : dict, optional
        ``{source: pair table}`` known pairs given in memory.
    replicate_key : str
        The obs column of the replicate unit.
    max_profiles : int
        Profiles drawn for the consistency when single profiles are the replicates.
    label_key : str, optional
        A ``perturbations.obs`` column for retrieval mAP (e.g. ``moa``).
    label_sep : str, optional
        With it, a label ``"A|B"`` is a set and sharing any member counts as a hit.
    n_perm : int
        Permutations (and null draws) of the tests.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``n_perturbations`` and, where they apply, ``replicate_consistency``,
        ``control_null``, ``batch_effect``, ``relationship_recall``,
        ``planted_group_retrieval`` and ``retrieval_map``.
    """
    names = np.asarray(perturbations.obs_names).astype(str)
    cos = perturbations.obsp["cosine"] if "cosine" in perturbations.obsp else cosine_matrix(
        perturbations.X)
    out: dict = {"n_perturbations": int(len(names))}
    obs = profiles.obs
    X = np.asarray(profiles.X)
    pert = obs["perturbation"].astype(str).to_numpy()
    if replicate_key in obs.columns:
        key = pert + "|" + obs[replicate_key].astype(str).to_numpy()
        keys, R, _ = aggregate(X, key)
        rep_pert = np.array([k.rsplit("|", 1)[0] for k in keys])
        lookup = pd.Series(obs["batch"].astype(str).to_numpy() if "batch" in obs else "all",
                           index=key)
        rep_batch = lookup[~lookup.index.duplicated()].loc[keys].to_numpy()
        n_rep = pd.Series(rep_pert[rep_pert != control_label]).value_counts()
        if len(n_rep) and n_rep.median() >= 3:      # enough wells: wells are the replicates
            table, overall = replicate_consistency(R, rep_pert, exclude=[control_label],
                                                   seed=seed, n_perm=n_perm)
            overall["replicate_unit"] = replicate_key
        else:                                       # few wells: cells from different wells
            rng = np.random.default_rng(seed)
            idx = np.arange(len(X)) if len(X) <= max_profiles else np.sort(
                rng.choice(len(X), max_profiles, replace=False))
            table, overall = replicate_consistency(X[idx], pert[idx], exclude=[control_label],
                                                   distinct=obs[replicate_key].astype(str)
                                                   .to_numpy()[idx], seed=seed, n_perm=n_perm)
            overall["replicate_unit"] = f"profile (pairs across {replicate_key}s)"
        out["replicate_consistency"] = {**overall, "per_perturbation": table.to_dict("list")}
        out.update(control_benchmarks(R, rep_pert, rep_batch, control_label, n_perm=n_perm,
                                      seed=seed))
        if "consistency" in out.get("control_null", {}):
            out["control_null"]["held_out_tvn"] = held_out_tvn_check(
                profiles, control_label, replicate_key=replicate_key, n_perm=min(n_perm, 300),
                n_splits=3, seed=seed)
        if len(np.unique(rep_batch)) > 1:
            out["batch_effect"] = batch_effect(R, rep_pert, rep_batch, exclude=[control_label])
    rel = {}
    # gene relationships are scored on the map of single perturbations (doubles "A+B" are
    # not genes, and their similarity to their own singles would crowd the upper tail)
    single = np.ones(len(names), bool)
    if "perturbation_type" in perturbations.obs.columns:
        single = perturbations.obs["perturbation_type"].astype(str).to_numpy() != "double"
    gcos, gnames = np.asarray(cos)[np.ix_(single, single)], names[single]
    if groups:
        rel["planted_groups"] = relationship_recall(gcos, gnames, pairs_from_groups(groups))
        member = {g: k for k, gs in groups.items() for g in gs}
        glab = [member.get(n) for n in gnames]
        if sum(v is not None for v in glab) >= 2:
            r = retrieval_map(None, glab, cos=gcos, n_perm=n_perm, seed=seed)
            r.pop("ap")
            out["planted_group_retrieval"] = r
    for src, pairs in (known or {}).items():
        rel[src] = relationship_recall(gcos, gnames, pairs)
    for path in relationships or []:
        rel[Path(path).name.split(".")[0]] = relationship_recall(gcos, gnames,
                                                                 read_relationships(path))
    if rel:
        out["relationship_recall"] = rel
    if label_key and label_key in perturbations.obs.columns:
        res = retrieval_map(perturbations.X, perturbations.obs[label_key], n_perm=n_perm,
                            seed=seed, cos=cos, sep=label_sep)
        res.pop("ap")
        out["retrieval_map"] = {"label": label_key, **res}
        from workbench.tools.efaar_benchmarks import relationship_map

        per = relationship_map(perturbations.X, names, perturbations.obs[label_key],
                               n_null=max(n_perm, 1000), seed=seed, sep=label_sep)
        out["retrieval_map"]["per_query"] = {
            "n_queries": int(len(per)), "fraction_q05": float(np.mean(per["q"] < 0.05))
            if len(per) else float("nan"), "table": per.to_dict("list")}
    return out


def raw_features(profiles) -> tuple[str | None, dict]:
    """The ``obsm`` key of the features ``profiles.X`` was normalised from, and the TVN
    settings used (``(None, {})`` when the Study does not record them).

    Parameters
    ----------
    profiles : anndata.AnnData
        The Study's ``profiles``.

    Returns
    -------
    source : str or None
        The obsm key of the raw features.
    tvn_kw : dict
        The TVN settings recorded with them.
    """
    wb = profiles.uns.get("workbench", {}) if hasattr(profiles, "uns") else {}
    for part in ("normalization", "embedding"):
        rec = wb.get(part)
        if isinstance(rec, dict) and rec.get("source") and str(rec["source"]) in profiles.obsm:
            return str(rec["source"]), dict(rec.get("tvn") or {})
    return None, {}


def held_out_tvn_check(profiles, control_label: str, *, replicate_key: str = "well",
                       n_perm: int = 1000, n_splits: int = 3, seed: int = 0) -> dict:
    """:func:`~workbench.tools.efaar_benchmarks.held_out_tvn_consistency` on a Study's
    ``profiles`` (the raw features and TVN settings it records), over ``n_splits`` random
    splits of the control wells, or why it was skipped.

    One split of a few control wells can land unevenly (all edge wells in one half), so
    the numbers are given per split and as their median.

    Parameters
    ----------
    profiles : AnnData
        The Study's ``profiles`` (``X`` normalised, the raw features in ``obsm``).
    control_label : str
        The negative-control perturbation.
    replicate_key : str
        The ``obs`` column of the replicate unit (wells).
    n_perm : int
        Random control sets per perturbation.
    n_splits : int
        Random halvings of the control wells (seeds ``seed`` .. ``seed + n_splits - 1``).
    seed : int
        Seed of the first split (and of the null draws).

    Returns
    -------
    dict
        For each side (``in_sample``, ``in_sample_half``, ``held_out``) the per-split
        ``fraction_q05``, ``ks`` and ``null_mean_cosine`` lists and their medians, or
        ``{"skipped": reason}``.
    """
    from workbench.tools.efaar_benchmarks import held_out_tvn_consistency

    source, tvn_kw = raw_features(profiles)
    if source is None:
        return {"skipped": "the profiles do not record the raw features TVN was fitted on"}
    obs = profiles.obs
    args = (profiles.obsm[source], obs["perturbation"].astype(str).to_numpy(),
            obs[replicate_key].astype(str).to_numpy(),
            obs["batch"].astype(str).to_numpy() if "batch" in obs else None, control_label)
    try:
        runs = [held_out_tvn_consistency(*args, tvn_kw=tvn_kw, n_null=n_perm, seed=seed + k)
                for k in range(n_splits)]
    except ValidationError as exc:
        return {"skipped": exc.problem}
    out: dict = {"source": source, "n_splits": n_splits, "n_fit_wells": runs[0]["n_fit_wells"],
                 "n_null_wells": runs[0]["n_null_wells"]}
    for side in ("in_sample", "in_sample_half", "held_out"):
        rec = {}
        for key in ("fraction_q05", "ks", "null_mean_cosine"):
            vals = [float(r[side].get(key, np.nan)) for r in runs]
            rec[key] = float(np.median(vals))
            rec[f"{key}_per_split"] = vals
        out[side] = rec
    return out


def control_benchmarks(R, rep_pert, rep_batch, control_label: str, *, n_perm: int = 1000,
                       seed: int = 0) -> dict:
    """The control-null benchmarks of :mod:`workbench.tools.efaar_benchmarks` on
    replicate (well) profiles: consistency with and without same-batch pairs, per-query
    mAP against the controls, energy-distance magnitude. Skipped (with the reason) when
    the screen has fewer than :data:`MIN_CONTROL_REPLICATES` control replicates (a null
    of a handful of control pairs calls everything consistent) or no perturbation with 2.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate (well) profiles.
    rep_pert : array_like of str
        The perturbation of each replicate.
    rep_batch : array_like
        The batch of each replicate.
    control_label : str
        The controls' perturbation name.
    n_perm : int
        Null draws of the tests.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``{"control_null": ...}`` with ``consistency``, ``consistency_cross_batch``,
        ``replicate_map`` and ``energy``, or ``{"skipped": reason}``.
    """
    from workbench.tools.efaar_benchmarks import (
        control_null_consistency, energy_magnitude, replicate_map)

    pert = np.asarray(rep_pert).astype(str)
    n_ctrl = int(np.sum(pert == str(control_label)))
    counts = pd.Series(pert[pert != str(control_label)]).value_counts()
    if n_ctrl < MIN_CONTROL_REPLICATES or not len(counts) or counts.max() < 2:
        return {"control_null": {"skipped": f"{n_ctrl} control replicate(s), at most "
                                 f"{int(counts.max()) if len(counts) else 0} replicate(s) "
                                 f"per perturbation: the control null needs "
                                 f"{MIN_CONTROL_REPLICATES} and 2"}}
    out: dict = {"control_null": {}}
    for cross in (False, True):
        key = "consistency_cross_batch" if cross else "consistency"
        try:
            res = control_null_consistency(R, pert, rep_batch, control_label,
                                           exclude_same_batch=cross, n_null=n_perm, seed=seed)
        except ValidationError as exc:
            out["control_null"][key] = {"skipped": exc.problem}
            continue
        out["control_null"][key] = {**res["overall"],
                                    "per_perturbation": res["per_perturbation"].to_dict("list")}
    m = replicate_map(R, pert, control_label, n_null=max(n_perm, 1000), seed=seed)
    out["control_null"]["replicate_map"] = {
        "n_perturbations": int(len(m)), "mean_map": float(m["map"].mean()) if len(m) else
        float("nan"), "fraction_q05": float(np.mean(m["q"] < 0.05)) if len(m) else float("nan"),
        "per_perturbation": m.to_dict("list")}
    e = energy_magnitude(R, pert, rep_batch, control_label, n_perm=min(n_perm, 200), seed=seed)
    out["control_null"]["energy"] = {
        "n_perturbations": int(len(e)),
        "fraction_q05": float(np.mean(e["q"] < 0.05)) if len(e) else float("nan"),
        "per_perturbation": e.to_dict("list")}
    return out


def run_benchmarks(study, *, relationships=None, label_key: str | None = None,
                   n_perm: int = 1000, seed: int = 0, write: bool = True) -> dict:
    """Benchmark the Study's map and store the results in ``perturbations.uns``.

    Planted gene groups of a simulated Study (``ground_truth``) are used automatically, as
    is a ``relationships`` artefact; extra annotation files come from ``relationships``.

    Parameters
    ----------
    study : Study
        A Study with ``perturbations`` and ``profiles``.
    relationships : sequence of str or os.PathLike, optional
        Extra annotation files.
    label_key : str, optional
        A map obs column for retrieval mAP (default: the one the map records).
    n_perm : int
        Permutations of the tests.
    seed : int
        Seed of the draws.
    write : bool
        Store the results in ``perturbations.uns["workbench"]["benchmarks"]`` in a
        ``benchmark`` step.

    Returns
    -------
    dict
        What :func:`map_benchmarks` returns.
    """
    study.require("perturbations", why="the benchmarks score the perturbation map")
    study.require("profiles", why="replicate consistency needs per-sample profiles")
    pert = study.read("perturbations")
    prof = study.read("profiles")
    groups = None
    if study.has("ground_truth"):
        groups = _groups_from_truth(study.read("ground_truth"))
    files = list(relationships or [])
    known = {}
    if study.has("relationships"):
        from workbench.data.readers.relationships import load_relationships

        rel = load_relationships(study)
        parts = rel.groupby("source") if "source" in rel.columns else [("relationships", rel)]
        for src, df in parts:
            known[str(src)] = undirected_pairs(df["entity1"], df["entity2"])
    label_key = label_key or pert.uns.get("workbench", {}).get("label_key") or None
    res = map_benchmarks(pert, prof, study.control_label, relationships=files, groups=groups,
                         known=known, label_key=label_key, n_perm=n_perm, seed=seed)
    if write:
        from workbench.data.uns import clean_uns

        pert.uns.setdefault("workbench", {})["benchmarks"] = clean_uns(res)
        with study.step("benchmark", params={"relationships": [str(f) for f in files],
                                             "label_key": label_key, "n_perm": n_perm},
                        seed=seed, inputs=["perturbations", "profiles"]) as tx:
            tx.write_anndata("perturbations", pert, screen=False)
            tx.note(**summary(res))
    return res


def _groups_from_truth(truth: dict) -> dict | None:
    for key in ("gene_groups", "groups", "complexes"):
        if isinstance(truth.get(key), dict):
            return {str(k): list(v) for k, v in truth[key].items()}
    return None


def summary(res: dict) -> dict:
    """The headline numbers of :func:`map_benchmarks` as a flat dict.

    Parameters
    ----------
    res : dict
        What :func:`map_benchmarks` returns.

    Returns
    -------
    dict
        Headline numbers, e.g. ``replicate_ks``, ``recall_<source>_<threshold>``, ``map``,
        ``batch_gap``, ``replicate_fraction_q05_control``; keys whose benchmark did not run
        are absent.
    """
    out = {}
    rc = res.get("replicate_consistency", {})
    for k in ("ks", "ks_p", "fraction_consistent_p05"):
        if k in rc:
            out[f"replicate_{k}"] = rc[k]
    for src, r in res.get("relationship_recall", {}).items():
        for thr, v in r.get("recall", {}).items():
            out[f"recall_{src}_{thr}"] = v
    if "planted_group_retrieval" in res:
        out["planted_group_map"] = res["planted_group_retrieval"]["map"]
        out["planted_group_map_p"] = res["planted_group_retrieval"]["p_value"]
    if "retrieval_map" in res:
        out["map"] = res["retrieval_map"]["map"]
        out["map_p"] = res["retrieval_map"]["p_value"]
    if "batch_effect" in res:
        out["batch_gap"] = res["batch_effect"]["gap"]
    cn = res.get("control_null", {})
    for part, tag in (("consistency", "control"), ("consistency_cross_batch", "control_cross_batch")):
        for k in ("ks", "cvm", "fraction_q05"):
            if k in cn.get(part, {}):
                out[f"replicate_{k}_{tag}"] = cn[part][k]
    for side in ("in_sample", "in_sample_half", "held_out"):
        if "fraction_q05" in cn.get("held_out_tvn", {}).get(side, {}):
            out[f"replicate_fraction_q05_tvn_{side}"] = cn["held_out_tvn"][side]["fraction_q05"]
    if "fraction_q05" in cn.get("replicate_map", {}):
        out["replicate_map_fraction_q05"] = cn["replicate_map"]["fraction_q05"]
        out["replicate_map_mean"] = cn["replicate_map"]["mean_map"]
    if "fraction_q05" in cn.get("energy", {}):
        out["energy_fraction_q05"] = cn["energy"]["fraction_q05"]
    if "per_query" in res.get("retrieval_map", {}):
        out["map_per_query_fraction_q05"] = res["retrieval_map"]["per_query"]["fraction_q05"]
    return out
