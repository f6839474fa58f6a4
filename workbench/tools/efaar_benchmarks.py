"""Perturbation-signal benchmarks against the negative controls, as EFAAR and copairs do.

Three questions about replicate-level profiles (wells), each answered against the
controls of the same screen rather than against other perturbations:

* **Replicate consistency with the control null** (Celik et al. 2024, "Building,
  benchmarking, and exploring perturbative maps", PLoS Comput Biol; code
  ``recursionpharma/EFAAR_benchmarking``; the KS and Cramer-von Mises statistics of
  Kenyon-Dean et al. 2024, "ViTally Consistent"). The cosines between replicates of the
  same perturbation are compared with the cosines between pairs of control replicates:
  a one-sided two-sample Kolmogorov-Smirnov statistic (replicates more alike than
  controls) and the two-sample Cramer-von Mises statistic. With
  ``exclude_same_batch=True`` only pairs from different batches count, on both sides
  (two wells of one batch share its batch effect). Per perturbation, the mean replicate
  cosine is ranked against the mean cosine of random control sets with the same batch
  composition (EFAAR's per-perturbation consistency, on cosines instead of angles:
  arccos is monotone, so the ranks agree).
* **Per-query mAP** (Kalinin et al. 2025, "A versatile information retrieval framework
  for evaluating profile strength and similarity", Nat Commun; code ``cytomining/copairs``).
  Each replicate of a perturbation ranks the other replicates (positives) among the
  control replicates (negatives) by cosine; its average precision, averaged over the
  perturbation's replicates, is that perturbation's mAP. The p-value compares it with
  the mAP of random rankings with the same numbers of positives and negatives, and
  Benjamini-Hochberg gives q-values. For relationships (a mechanism, a complex) the
  query is a perturbation's profile, the positives the perturbations that share its
  label and the negatives the others.
* **Energy-distance magnitude** (EFAAR's ``univariate_distance_benchmark``): the energy
  distance between a perturbation's replicates and as many control replicates drawn from
  the same batches, with a permutation null over the pooled samples.

Every p-value here is a rank against a null built from the data themselves; their level
under a null screen (controls relabelled as perturbations) is checked in the tests.
numpy and scipy only; the per-perturbation means use the sum-of-unit-vectors identity,
so memory stays linear in the replicates (250+ per perturbation is fine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError


def _unit(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n > 0, n, 1.0)


def _pairs(idx: np.ndarray, batch: np.ndarray | None, cross_only: bool):
    a, b = np.triu_indices(len(idx), 1)
    if cross_only and batch is not None:
        keep = batch[idx[a]] != batch[idx[b]]
        a, b = a[keep], b[keep]
    return idx[a], idx[b]


def _pair_cos(U: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Cosines of the unit-row pairs ``(a[i], b[i])``, a chunk of pairs at a time."""
    out = np.empty(len(a))
    for s in range(0, len(a), chunk):
        out[s: s + chunk] = np.einsum("ij,ij->i", U[a[s: s + chunk]], U[b[s: s + chunk]])
    return out


def _mean_pair_cosine(U: np.ndarray, batch: np.ndarray | None, cross_only: bool) -> float:
    """Mean cosine over pairs of the unit rows ``U`` (cross-batch pairs only if asked),
    from sums of unit vectors: no pair matrix is formed."""
    k = len(U)
    s = U.sum(0)
    total, count = (s @ s - k) / 2.0, k * (k - 1) / 2.0
    if cross_only and batch is not None:
        for b in np.unique(batch):
            Ub = U[batch == b]
            sb = Ub.sum(0)
            total -= (sb @ sb - len(Ub)) / 2.0
            count -= len(Ub) * (len(Ub) - 1) / 2.0
    return float(total / count) if count > 0 else float("nan")


def bh_fdr(p) -> np.ndarray:
    """Benjamini-Hochberg q-values (NaN p-values stay NaN).

    Parameters
    ----------
    p : array_like of float
        p-values.

    Returns
    -------
    numpy.ndarray
        q-values, the shape of ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return q
    order = ok[np.argsort(p[ok])]
    m = ok.size
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


# ---------------------------------------------------------------------- consistency
def control_null_consistency(R, perturbation, batch, control_label: str, *,
                             exclude_same_batch: bool = False, n_null: int = 1000,
                             max_null_pairs: int = 200_000, seed: int = 0) -> dict:
    """Replicate consistency of replicate profiles ``R`` against the control null.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate (well) profiles.
    perturbation : array_like of str
        The perturbation of each replicate.
    batch : array_like, optional
        The batch of each replicate (``None``: one batch).
    control_label : str
        The controls' perturbation name (at least 3 control replicates).
    exclude_same_batch : bool
        Count only pairs from different batches, on both sides.
    n_null : int
        Random control sets per perturbation for its p-value.
    max_null_pairs : int
        Control pairs kept for the null distribution (drawn at random beyond it).
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``overall``: the KS statistic and p-value (one-sided: replicate cosines larger), the
        Cramer-von Mises statistic and p-value, the numbers of pairs, the null mean cosine
        and the fraction of perturbations with q < 0.05; ``per_perturbation``: a DataFrame
        with ``perturbation, n_replicates, n_pairs, mean_cosine, p, q``.
    """
    from scipy.stats import cramervonmises_2samp, ks_2samp

    rng = np.random.default_rng(seed)
    pert = np.asarray(perturbation).astype(str)
    bat = np.asarray(batch).astype(str) if batch is not None else np.zeros(len(pert), str)
    U = _unit(R)
    ctrl = np.flatnonzero(pert == str(control_label))
    if len(ctrl) < 3:
        raise ValidationError(f"only {len(ctrl)} control replicate(s); the control null needs "
                              "at least 3.", "benchmark at the well level of a screen with "
                              "control wells (is_control=True).")
    ca, cb = _pairs(ctrl, bat, exclude_same_batch)
    if len(ca) == 0:
        raise ValidationError("no pair of control replicates from different batches.",
                              "use exclude_same_batch=False on a single-batch screen.")
    if len(ca) > max_null_pairs:
        pick = np.sort(rng.choice(len(ca), max_null_pairs, replace=False))
        ca, cb = ca[pick], cb[pick]
    null = _pair_cos(U, ca, cb)
    rows, reps = [], []
    ctrl_by_batch = {b: ctrl[bat[ctrl] == b] for b in np.unique(bat[ctrl])}
    for p in pd.unique(pert[pert != str(control_label)]):
        idx = np.flatnonzero(pert == p)
        a, b = _pairs(idx, bat, exclude_same_batch)
        if len(idx) < 2 or len(a) == 0:
            continue
        rep = _pair_cos(U, a, b)
        reps.append(rep)
        obs = _mean_pair_cosine(U[idx], bat[idx], exclude_same_batch)
        draws = _control_sets(rng, ctrl, ctrl_by_batch, bat[idx], n_null)
        null_means = np.array([_mean_pair_cosine(U[d], bat[d], exclude_same_batch)
                               for d in draws])
        null_means = null_means[np.isfinite(null_means)]
        pv = float((1 + np.sum(null_means >= obs - 1e-12)) / (1 + len(null_means)))
        rows.append({"perturbation": p, "n_replicates": int(len(idx)), "n_pairs": int(len(a)),
                     "mean_cosine": obs, "p": pv})
    table = pd.DataFrame(rows, columns=["perturbation", "n_replicates", "n_pairs",
                                        "mean_cosine", "p"])
    table["q"] = bh_fdr(table["p"].to_numpy()) if len(table) else []
    overall = {"exclude_same_batch": bool(exclude_same_batch), "n_null_pairs": int(len(null)),
               "null_mean_cosine": float(null.mean()), "n_perturbations": int(len(table))}
    if reps:
        rep = np.concatenate(reps)
        ks = ks_2samp(rep, null, alternative="less")
        cvm = cramervonmises_2samp(rep, null)
        overall.update({"n_replicate_pairs": int(len(rep)),
                        "replicate_mean_cosine": float(rep.mean()),
                        "ks": float(ks.statistic), "ks_p": float(ks.pvalue),
                        "cvm": float(cvm.statistic), "cvm_p": float(cvm.pvalue),
                        "fraction_q05": float(np.mean(table["q"] < 0.05))})
    return {"overall": overall, "per_perturbation": table}


def _control_sets(rng, ctrl, ctrl_by_batch, batches, n: int) -> list[np.ndarray]:
    """``n`` random control sets with the batch composition of ``batches`` (controls of
    the same batch; the whole control pool for a batch without controls)."""
    comp = pd.Series(batches).value_counts()
    parts = []
    for b, c in comp.items():
        pool = ctrl_by_batch.get(b, ctrl)
        parts.append(np.stack([rng.choice(pool, int(c), replace=len(pool) < c)
                               for _ in range(n)]))
    return list(np.concatenate(parts, 1))


# ---------------------------------------------------------------------- mAP
def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of ranking by ``scores`` (descending; ties broken by position).

    Parameters
    ----------
    scores : numpy.ndarray
        A score per candidate.
    positive : numpy.ndarray of bool
        Which candidates are positives.

    Returns
    -------
    float
        The average precision (NaN without positives).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(positive, bool)[order]
    if not hits.any():
        return float("nan")
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(prec[hits].mean())


def _random_map(rng, n_pos: int, n_total: int, n_queries: int, n: int) -> np.ndarray:
    """mAP of ``n_queries`` random rankings (``n_pos`` positives among ``n_total``), n times."""
    ranks = np.sort(rng.random((n * n_queries, n_total)).argsort(1)[:, :n_pos], 1) + 1
    ap = (np.arange(1, n_pos + 1) / ranks).mean(1)
    return ap.reshape(n, n_queries).mean(1)


def replicate_map(R, perturbation, control_label: str, *, n_null: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Per-perturbation mAP of retrieving its replicates among the control replicates.

    The null is the mAP of random rankings with the same counts (copairs' null), q by
    Benjamini-Hochberg.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate profiles.
    perturbation : array_like of str
        The perturbation of each replicate.
    control_label : str
        The controls' perturbation name.
    n_null : int
        Random rankings per count combination.
    seed : int
        Seed of the null.

    Returns
    -------
    pandas.DataFrame
        ``perturbation, n_replicates, n_controls, map, p, q``, for perturbations with at
        least two replicates.
    """
    rng = np.random.default_rng(seed)
    pert = np.asarray(perturbation).astype(str)
    U = _unit(R)
    ctrl = np.flatnonzero(pert == str(control_label))
    if len(ctrl) < 1:
        raise ValidationError("no control replicates: the replicate mAP ranks a "
                              "perturbation's replicates among the controls.",
                              "benchmark at the well level of a screen with control wells.")
    rows, nulls = [], {}
    for p in pd.unique(pert[pert != str(control_label)]):
        idx = np.flatnonzero(pert == p)
        if len(idx) < 2:
            continue
        aps = []
        for i in idx:
            cand = np.concatenate([idx[idx != i], ctrl])
            pos = np.zeros(len(cand), bool)
            pos[: len(idx) - 1] = True
            aps.append(average_precision(U[cand] @ U[i], pos))
        obs = float(np.mean(aps))
        key = (len(idx) - 1, len(idx) - 1 + len(ctrl), len(idx))
        if key not in nulls:
            nulls[key] = _random_map(rng, *key, n_null)
        rows.append({"perturbation": p, "n_replicates": int(len(idx)),
                     "n_controls": int(len(ctrl)), "map": obs,
                     "p": float((1 + np.sum(nulls[key] >= obs - 1e-12)) / (1 + n_null))})
    table = pd.DataFrame(rows, columns=["perturbation", "n_replicates", "n_controls", "map", "p"])
    table["q"] = bh_fdr(table["p"].to_numpy()) if len(table) else []
    return table


def relationship_map(P, names, labels, *, n_null: int = 2000, seed: int = 0,
                     sep: str | None = "|") -> pd.DataFrame:
    """Per-query mAP of retrieving perturbations that share a label (e.g. a mechanism).

    A query is a labelled perturbation whose label another shares; the positives are those,
    the negatives every other perturbation (unlabelled ones included).

    Parameters
    ----------
    P : array_like
        ``(n, d)`` one profile per perturbation.
    names : array_like of str
        The perturbations.
    labels : sequence
        A label per perturbation (missing values allowed).
    n_null : int
        Random rankings per count combination.
    seed : int
        Seed of the null.
    sep : str, optional
        With it, a label ``"A|B"`` is a set and sharing any member counts.

    Returns
    -------
    pandas.DataFrame
        ``perturbation, label, n_positives, ap, p, q``.
    """
    rng = np.random.default_rng(seed)
    names = np.asarray(names).astype(str)
    U = _unit(P)
    lab = ["" if v is None or str(v).lower() in {"", "nan", "none", "na", "<na>"} else str(v)
           for v in labels]
    sets = [set(v.split(sep)) if (v and sep) else ({v} if v else set()) for v in lab]
    rows, nulls = [], {}
    n = len(names)
    for i in range(n):
        if not sets[i]:
            continue
        others = np.array([j for j in range(n) if j != i])
        pos = np.array([bool(sets[i] & sets[j]) for j in others])
        if not pos.any():
            continue
        ap = average_precision(U[others] @ U[i], pos)
        key = (int(pos.sum()), len(others), 1)
        if key not in nulls:
            nulls[key] = _random_map(rng, *key, n_null)
        rows.append({"perturbation": names[i], "label": lab[i], "n_positives": int(pos.sum()),
                     "ap": ap, "p": float((1 + np.sum(nulls[key] >= ap - 1e-12)) / (1 + n_null))})
    table = pd.DataFrame(rows, columns=["perturbation", "label", "n_positives", "ap", "p"])
    table["q"] = bh_fdr(table["p"].to_numpy()) if len(table) else []
    return table


# ---------------------------------------------------------------------- magnitude
def energy_distance(A, B) -> float:
    """Energy distance ``2 E|a-b| - E|a-a'| - E|b-b'|`` (V-statistics, Euclidean).

    Parameters
    ----------
    A : array_like
        ``(n, d)`` samples.
    B : array_like
        ``(m, d)`` samples.

    Returns
    -------
    float
        The energy distance.
    """
    from scipy.spatial.distance import cdist

    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    return float(2 * cdist(A, B).mean() - cdist(A, A).mean() - cdist(B, B).mean())


def energy_magnitude(R, perturbation, batch, control_label: str, *, n_perm: int = 200,
                     min_replicates: int = 3, seed: int = 0) -> pd.DataFrame:
    """Per-perturbation energy distance to as many same-batch controls, with a p-value.

    EFAAR requires 10 replicates; ``min_replicates`` (3 here) is the floor, and the
    table reports ``n_replicates`` so a reader can filter.

    Parameters
    ----------
    R : array_like
        ``(m, d)`` replicate profiles.
    perturbation : array_like of str
        The perturbation of each replicate.
    batch : array_like, optional
        The batch of each replicate.
    control_label : str
        The controls' perturbation name.
    n_perm : int
        Permutations of the pooled samples.
    min_replicates : int
        Perturbations with fewer replicates are skipped.
    seed : int
        Seed of the control draw and the permutations.

    Returns
    -------
    pandas.DataFrame
        ``perturbation, n_replicates, energy, p, q``.
    """
    rng = np.random.default_rng(seed)
    pert = np.asarray(perturbation).astype(str)
    bat = np.asarray(batch).astype(str) if batch is not None else np.zeros(len(pert), str)
    R = np.asarray(R, np.float64)
    ctrl = np.flatnonzero(pert == str(control_label))
    by_batch = {b: ctrl[bat[ctrl] == b] for b in np.unique(bat[ctrl])}
    rows = []
    for p in pd.unique(pert[pert != str(control_label)]):
        idx = np.flatnonzero(pert == p)
        if len(idx) < min_replicates:
            continue
        cidx = _control_sets(rng, ctrl, by_batch, bat[idx], 1)[0]
        obs = energy_distance(R[idx], R[cidx])
        pool = np.concatenate([idx, cidx])
        null = np.empty(n_perm)
        for t in range(n_perm):
            perm = rng.permutation(pool)
            null[t] = energy_distance(R[perm[: len(idx)]], R[perm[len(idx):]])
        rows.append({"perturbation": p, "n_replicates": int(len(idx)), "energy": obs,
                     "p": float((1 + np.sum(null >= obs - 1e-12)) / (1 + n_perm))})
    table = pd.DataFrame(rows, columns=["perturbation", "n_replicates", "energy", "p"])
    table["q"] = bh_fdr(table["p"].to_numpy()) if len(table) else []
    return table


def held_out_tvn_consistency(raw, perturbation, replicate, batch, control_label: str, *,
                             tvn_kw: dict | None = None, n_null: int = 1000,
                             seed: int = 0) -> dict:
    """Control-null consistency with the null's control wells held out of TVN.

    TVN is fitted on the controls, and the control null of
    :func:`control_null_consistency` is made of those same controls. In-sample controls
    are whitened onto the sample they were fitted on, so their pairwise cosines are pulled
    below those of rows the normaliser never saw (the perturbation wells), which makes
    perturbations look more consistent than they are; the smaller the control set against
    the feature count, the larger the pull. This check splits each batch's control wells
    into two halves A and B at random and scores three nulls:

    * ``in_sample``: TVN fitted on every control (as the embedding step fits it), null
      from half B;
    * ``in_sample_half``: TVN fitted on half A, null from half A (in-sample, with the
      held-out side's fit size);
    * ``held_out``: TVN fitted on half A, null from half B, which TVN never saw, like
      the perturbation wells: under the null of no effect, null and perturbation wells
      are exchangeable, so this is the side whose p-values hold their level.

    ``held_out`` against ``in_sample_half`` (same TVN, same fit size) is the in-sample
    optimism of the reported consistency.

    Parameters
    ----------
    raw : array (n, p)
        The features before TVN (cells, crops or wells), one row per profile.
    perturbation, replicate, batch : array (n,)
        Each row's perturbation, replicate unit (well) and batch. ``batch`` may be None.
    control_label : str
        The negative-control perturbation.
    tvn_kw : dict, optional
        The TVN settings the Study used (``batch_center``, ``coral``, ``reg``); the
        ``tvn`` switch itself must not be False (there is then no TVN to hold out).
    n_null : int
        Random control sets per perturbation for the per-perturbation p-values.
    seed : int
        Seed of the split and of the null draws.

    Returns
    -------
    dict
        ``{"in_sample": {...}, "in_sample_half": {...}, "held_out": {...}, "n_fit_wells",
        "n_null_wells", "n_batches"}``, each side holding the ``overall`` numbers of
        :func:`control_null_consistency` (KS, CvM, null mean cosine, fraction q < 0.05).

    Raises
    ------
    ValidationError
        When TVN is switched off, or a batch has fewer than 2 control wells (it cannot
        give one to each half), or either half has fewer than 3 wells.
    """
    from workbench.tools.normalize import TVN, aggregate

    kw = dict(tvn_kw or {})
    if kw.pop("tvn", True) is False:
        raise ValidationError("the profiles were not normalised with TVN, so there is no "
                              "TVN fit to hold the controls out of.",
                              "run the check on TVN-normalised profiles.")
    kw.setdefault("batch_center", batch is not None)
    raw = np.asarray(raw, dtype=np.float64)
    pert = np.asarray(perturbation).astype(str)
    bat = np.asarray(batch).astype(str) if batch is not None else np.zeros(len(pert), str)
    unit = np.char.add(np.char.add(bat, "|"), np.asarray(replicate).astype(str))
    ctrl = pert == str(control_label)
    rng = np.random.default_rng(seed)
    fit_units, null_units = set(), set()
    for b in np.unique(bat):
        units = np.unique(unit[ctrl & (bat == b)])
        if len(units) < 2:
            raise ValidationError(
                f"batch {b!r} has {len(units)} control well(s); holding controls out of TVN "
                "needs at least 2 in every batch (one half fits, the other is the null).",
                "merge small batches, or skip the held-out check on this screen.")
        units = rng.permutation(units)
        half = len(units) // 2
        fit_units.update(units[:half])
        null_units.update(units[half:])
    if len(fit_units) < 3 or len(null_units) < 3:
        raise ValidationError(f"{len(fit_units) + len(null_units)} control wells are too few "
                              "to split into a TVN half and a null half of 3 or more each.",
                              "the check needs at least 6 control wells.")
    in_fit = ctrl & np.isin(unit, sorted(fit_units))
    in_null = ctrl & np.isin(unit, sorted(null_units))
    b_arg = bat if batch is not None else None
    out: dict = {"n_fit_wells": len(fit_units), "n_null_wells": len(null_units),
                 "n_batches": int(len(np.unique(bat)))}
    sides = (("in_sample", ctrl, in_null), ("in_sample_half", in_fit, in_fit),
             ("held_out", in_fit, in_null))
    for name, fit_mask, null_mask in sides:
        X = TVN(**kw).fit(raw, fit_mask, b_arg).transform(raw, b_arg)
        keep = ~ctrl | null_mask
        keys, R, _ = aggregate(X[keep], unit[keep] + "#" + pert[keep])
        rep_pert = np.array([k.rsplit("#", 1)[1] for k in keys])
        rep_batch = np.array([k.split("|", 1)[0] for k in keys])
        res = control_null_consistency(R, rep_pert, rep_batch, control_label,
                                       n_null=n_null, seed=seed)
        out[name] = res["overall"]
    return out
