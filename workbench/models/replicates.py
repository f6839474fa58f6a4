"""Replicates as the unit of inference, and the input checks every interaction test shares.

Cells of one well share its seeding, staining and imaging, so they are not independent
replicates of their condition: a well-to-well spread of a third of the cell-to-cell spread
is enough for cell-level tests to reject a true null far more often than their level. The
tests of this module therefore summarise each *replicate unit* (a well, or any column the
user names) by cell-level statistics computed inside it, and compare conditions by the
spread of those summaries between units:

- :func:`unit_summaries` averages per-cell features inside each unit;
- :func:`contrast_test` tests the interaction contrast ``ab + ctrl - a - b`` of the unit
  means, feature by feature, with a t statistic whose variance combines a between-unit
  variance shared by the conditions and each condition's within-unit cell variance
  (``df = units - 4``; a one-way random-effects model of units within conditions);
- :func:`simes` combines the feature p-values into one per pair (Simes 1986; valid for
  independent and for positively dependent tests, which is what correlated embedding
  coordinates give);
- :func:`replicate_disjointness_test` is the disjointness test at the well level: under the
  disjointness null every coordinate of the observation is moved by at most one of A and B,
  so for any function ``h`` of one coordinate ``E_ab[h] + E_0[h] = E_a[h] + E_b[h]``. We
  use ``h = u`` and ``h = u^2 - 1`` per coordinate, ``u`` the coordinate's normal score
  against the controls (:func:`normal_scores`; invariant to monotone maps of a
  coordinate), which sees shifts and changes of spread; coordinates constant in the
  controls have no such score and are left out (and counted in ``params``);
- :func:`count_test` is the viability readout: the same contrast on ``log2`` cells per unit
  (synthetic lethality gives a negative contrast, rescue a positive one), with a
  between-unit variance plus each condition's Poisson variance of its log count.

A condition with a single unit leaves its between-unit spread unknown: no p-value is given
for such a pair, and the status says so.

The input checks (:func:`check_finite`, :func:`canonical_pairs`) raise
:class:`~workbench.errors.ValidationError` naming the pair, the condition and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as _st

from workbench.errors import ValidationError

__all__ = ["check_finite", "canonical_pairs", "unit_summaries", "unit_means", "contrast_test", "simes",
           "normal_scores",            "ReplicateResult", "replicate_disjointness_test", "count_test",
           "log_count_variance", "CONDITIONS"]

#: Condition names and their sign in the interaction contrast ``ab + ctrl - a - b``.
CONDITIONS = {"ab": 1.0, "ctrl": 1.0, "a": -1.0, "b": -1.0}


# ---------------------------------------------------------------------------- checks
def check_finite(x, what: str) -> np.ndarray:
    """Return ``x`` as float32, or raise naming ``what`` and the first bad row.

    Parameters
    ----------
    x : array_like
        Values to check (any shape).
    what : str
        What ``x`` is, as the error message should name it (e.g. ``"pair A+B: condition
        'ab'"``).

    Returns
    -------
    ndarray
        ``x`` as a float32 array of the same shape.

    Raises
    ------
    ValidationError
        If ``x`` holds a NaN or an infinite value; the message gives their number and the
        index of the first one.
    """
    arr = np.asarray(x, np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        flat = np.argwhere(bad)[0]
        raise ValidationError(
            f"{what} holds {int(bad.sum())} NaN/inf value(s) (first at index "
            f"{tuple(int(i) for i in flat)}); the tests would treat them as data.",
            "remove or impute the rows with missing values before testing (a NaN in a "
            "control row would otherwise make every pair look significant).")
    return arr


def canonical_pairs(labels) -> tuple[dict[str, tuple[str, str, list[str]]], list[str]]:
    """Parse double labels ``"A+B"``; merge a pair given in both orders; refuse ``"A+A"``.

    Parameters
    ----------
    labels : iterable of str
        Labels of the double perturbations, each two gene names joined by ``"+"``
        (whitespace around the names is ignored; repeats are allowed).

    Returns
    -------
    pairs : dict of str to tuple
        Canonical label -> ``(gene_a, gene_b, [labels merged into it])``. The canonical
        label is the order that comes first in the sorted labels.
    report : list of str
        One line per merge of two orders, to be shown to the user.

    Raises
    ------
    ValidationError
        If a label does not name exactly two genes, or names the same gene twice.
    """
    out: dict[str, tuple[str, str, list[str]]] = {}
    key_of: dict[frozenset, str] = {}
    report = []
    for lab in sorted({str(x) for x in labels}):
        parts = [p.strip() for p in lab.split("+") if p.strip()]
        if len(parts) != 2:
            raise ValidationError(f"double perturbation {lab!r} does not name two genes as 'A+B'.",
                                  "write obs['genes'] as 'A+B' for every double.")
        if parts[0] == parts[1]:
            raise ValidationError(
                f"double perturbation {lab!r} names the same gene twice; it has no pair of "
                "singles to be compared with.",
                "label it as the single perturbation (or a second guide of it), not a double.")
        key = frozenset(parts)
        if key in key_of:
            first = key_of[key]
            out[first][2].append(lab)
            report.append(f"{lab} and {first} are one pair in two orders: their samples "
                          f"were merged under {first}.")
            continue
        key_of[key] = lab
        out[lab] = (parts[0], parts[1], [lab])
    return out, report


# ---------------------------------------------------------------------------- units
def _unit_index(x: np.ndarray, units):
    names, inv = np.unique(np.asarray(units).astype(str), return_inverse=True)
    counts = np.bincount(inv, minlength=len(names)).astype(float)
    sums = np.zeros((len(names), x.shape[1]))
    np.add.at(sums, inv, x)
    return sums / counts[:, None], counts, names, inv


def unit_summaries(x: np.ndarray, units) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of the rows of ``x`` inside each replicate unit.

    Parameters
    ----------
    x : ndarray
        ``(n, F)`` per-cell features.
    units : array_like
        ``(n,)`` unit label of each row (compared as strings).

    Returns
    -------
    means : ndarray
        ``(U, F)`` mean of each unit, in the sorted order of the unit names.
    counts : ndarray
        ``(U,)`` rows per unit (float).
    names : ndarray
        ``(U,)`` the sorted unit names.
    """
    return _unit_index(np.asarray(x, float), units)[:3]


def unit_means(x: np.ndarray, units=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-unit means of the rows of ``x``, the cells per unit, and each row's residual.

    Parameters
    ----------
    x : ndarray
        ``(n, F)`` per-cell values.
    units : array_like, optional
        ``(n,)`` unit label of each row; ``None`` makes every row its own unit (means are
        the rows, counts 1, residuals 0).

    Returns
    -------
    means : ndarray
        ``(U, F)`` unit means, in the sorted order of the unit names.
    counts : ndarray
        ``(U,)`` rows per unit (float).
    residuals : ndarray
        ``(n, F)`` each row minus the mean of its unit, in the input order.
    """
    x = np.asarray(x, float)
    if units is None:
        return x.copy(), np.ones(len(x)), np.zeros_like(x)
    means, counts, _, inv = _unit_index(x, units)
    return means, counts, x - means[inv]


def contrast_test(cells: dict[str, np.ndarray], units: dict[str, np.ndarray] | None = None
                  ) -> dict[str, Any]:
    """t test of ``ab + ctrl - a - b`` on replicate-unit means, per feature.

    ``cells`` maps each condition to its ``(n_c, F)`` per-cell features and ``units`` to
    the unit of each cell (None: every row is its own unit, e.g. one count per well). The
    mean of unit ``w`` of condition ``c`` has variance ``tau^2 + sigma_c^2 / m_w``: a
    between-unit variance ``tau^2`` shared by all conditions (technical well effects) plus
    the within-unit cell variance of the condition over its ``m_w`` cells, so that a
    condition whose cells spread more (or whose wells hold fewer cells) counts as noisier.
    ``sigma_c^2`` comes from the cells, ``tau^2`` from the spread of the unit means by the
    method of moments (truncated at 0), and the t statistic has ``df = sum_c (U_c - 1)``,
    those of ``tau^2`` (as in the Knapp-Hartung test of meta-analysis). Giving it the
    larger Satterthwaite df of the cell variance when ``tau^2`` looks small rejected 14% of
    null pairs at alpha 0.05 with a well sd of a third of the cell sd (2 wells per
    condition, 100 cells), so the smaller df is kept: valid, conservative when wells do
    not differ.

    Parameters
    ----------
    cells : dict of str to ndarray
        Condition (``"ctrl"``, ``"a"``, ``"b"``, ``"ab"``) -> ``(n_c, F)`` per-cell
        features (or per-unit values when ``units`` is ``None``).
    units : dict of str to ndarray, optional
        Condition -> ``(n_c,)`` replicate unit of each row; ``None`` makes every row its
        own unit with no within-unit variance (e.g. one count per well).

    Returns
    -------
    dict
        ``"contrast"`` (``(F,)`` the contrast of the unit means), ``"se"``, ``"t"``,
        ``"p"`` (``(F,)``, two-sided; NaN when some condition has a single unit), ``"df"``
        (int, ``sum_c (U_c - 1)``) and ``"units"`` (dict, ``U_c`` per condition).
    """
    mean, var_in, inv_m, counts = {}, {}, {}, {}
    for c in CONDITIONS:
        x = np.asarray(cells[c], float)
        mu, m, resid = unit_means(x, None if units is None else units[c])
        dof_in = len(x) - len(m)
        mean[c] = mu
        var_in[c] = (resid ** 2).sum(0) / dof_in if dof_in > 0 else None
        inv_m[c] = (1.0 / m).sum()
        counts[c] = len(m)
    contrast = sum(CONDITIONS[c] * mean[c].mean(0) for c in CONDITIONS)
    df = sum(u - 1 for u in counts.values())
    nf = contrast.shape[-1]
    if min(counts.values()) < 2 or df < 1:
        nan = np.full(nf, np.nan)
        return {"contrast": contrast, "se": nan, "t": nan, "df": df, "p": nan.copy(),
                "units": counts}
    # conditions whose units hold one cell each have no within-unit variance: pool it
    known = [var_in[c] for c in CONDITIONS if var_in[c] is not None]
    fallback = np.mean(known, 0) if known else np.zeros(nf)
    sig2 = {c: var_in[c] if var_in[c] is not None else fallback for c in CONDITIONS}
    if units is None:
        sig2 = {c: np.zeros(nf) for c in CONDITIONS}
    excess = sum(((mean[c] - mean[c].mean(0)) ** 2).sum(0)
                 - (1 - 1 / counts[c]) * sig2[c] * inv_m[c] for c in CONDITIONS)
    tau2 = np.maximum(excess / df, 0.0)
    var = tau2 * sum(1.0 / counts[c] for c in CONDITIONS) \
        + sum(sig2[c] * inv_m[c] / counts[c] ** 2 for c in CONDITIONS)
    se = np.sqrt(var)
    df_eff = df  # that of tau^2: valid whatever the share of the cell variance
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, contrast / np.where(se > 0, se, 1.0), 0.0)
    p = 2 * _st.t.sf(np.abs(t), df_eff)
    return {"contrast": contrast, "se": se, "t": t, "df": df_eff, "p": p, "units": counts}


def normal_scores(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per coordinate, ``Phi^-1`` of the reference's (mid-rank) distribution function at x.

    A monotone map of a coordinate leaves these scores unchanged, and they are bounded
    (by about ``Phi^-1(1 - 1/(2 m))`` for ``m`` reference samples), so means over a few
    cells behave like means of Gaussians even when the embedding is skewed or heavy-tailed.

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` samples to score.
    reference : ndarray
        ``(m, d)`` samples whose per-coordinate distribution the scores are taken against
        (usually the controls); ties get the mid-rank.

    Returns
    -------
    ndarray
        ``(n, d)`` normal scores, ``Phi^-1((rank + 0.5) / (m + 1))``.
    """
    ref = np.sort(np.asarray(reference, float), axis=0)
    m = len(ref)
    out = np.empty(x.shape, float)
    for j in range(x.shape[1]):
        lo = np.searchsorted(ref[:, j], x[:, j], side="left")
        hi = np.searchsorted(ref[:, j], x[:, j], side="right")
        out[:, j] = (0.5 * (lo + hi) + 0.5) / (m + 1)
    return _st.norm.ppf(out)


def simes(p: np.ndarray) -> float:
    """Simes' combined p-value ``min_k m p_(k) / k`` of one family (Simes 1986).

    Valid for independent and for positively dependent p-values.

    Parameters
    ----------
    p : array_like
        The family's ``m`` p-values.

    Returns
    -------
    float
        The combined p-value, capped at 1; NaN when ``p`` is empty or holds a NaN.
    """
    p = np.sort(np.asarray(p, float))
    if p.size == 0 or not np.isfinite(p).all():
        return float("nan")
    return float(min(1.0, (p * p.size / np.arange(1, p.size + 1)).min()))


@dataclass
class ReplicateResult:
    """Per-pair outcome of a replicate-level test (arrays: one entry per pair).

    Parameters
    ----------
    test : str
        Which test made it: ``"disjointness"``, ``"additivity"`` or ``"viability"``.
    statistic : ndarray
        Disjointness: the mean squared t over the features; additivity: the Mahalanobis
        norm ``Q``; viability: the log2 count contrast.
    p_value : ndarray
        The p-values; NaN where the pair was not tested (see ``status``).
    effect_size : ndarray
        Disjointness: the largest ``|t|``; additivity: the debiased interaction norm;
        viability: t.
    ci_low, ci_high : ndarray
        95% interval of the effect (viability: of the contrast; additivity: of the
        interaction norm); NaN for the disjointness test, which gives none.
    status : list of str
        ``"tested"``, or why the pair has no p-value.
    units : list of dict of str to int
        Replicate units per condition, per pair.
    params : dict
        The test's settings and a description of its statistic and calibration, written
        into provenance.
    """

    test: str
    statistic: np.ndarray
    p_value: np.ndarray
    effect_size: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    status: list[str]
    units: list[dict[str, int]]
    params: dict[str, Any] = field(default_factory=dict)


def _one_unit_status(units: dict[str, int]) -> str:
    single = [c for c, u in units.items() if u < 2]
    return ("no p-value: one replicate unit for " + ", ".join(single) + " (the spread "
            "between replicates cannot be estimated; add replicate wells)")


def _groups_ok(groups, units, names):
    names = names or [f"pair {i}" for i in range(len(groups))]
    for name, g, u in zip(names, groups, units):
        for c in CONDITIONS:
            if c not in g or c not in u:
                raise ValidationError(f"{name}: condition {c!r} is missing.",
                                      "give ctrl, a, b and ab samples with their units.")
            check_finite(g[c], f"{name}: condition {c!r}")
            if len(g[c]) != len(u[c]):
                raise ValidationError(f"{name}: condition {c!r} has {len(g[c])} samples but "
                                      f"{len(u[c])} unit labels.", "give one unit per sample.")
    return names


def replicate_disjointness_test(groups: list[dict[str, np.ndarray]],
                                units: list[dict[str, np.ndarray]], *, reference=None,
                                names: list[str] | None = None) -> ReplicateResult:
    """Disjointness at the replicate level: additivity of per-unit feature means.

    Parameters
    ----------
    groups : list of dict of str to ndarray
        One dict per pair, mapping each condition (``"ctrl"``, ``"a"``, ``"b"``, ``"ab"``)
        to its ``(n_c, d)`` cell profiles.
    units : list of dict of str to ndarray
        Parallel to ``groups``: per condition, the ``(n_c,)`` replicate unit (well) of each
        cell.
    reference : array_like, optional
        ``(n, d)`` samples the normal scores are taken against; ``None`` pools the controls
        of every pair. Coordinates constant in it are left out.
    names : list of str, optional
        Pair names, used in the error messages only.

    Returns
    -------
    ReplicateResult
        ``p_value`` is Simes' combination over the ``2 d`` features ``u, u^2`` of the
        per-feature t tests of :func:`contrast_test`.
    """
    names = _groups_ok(groups, units, names)
    ref = (np.concatenate([g["ctrl"] for g in groups]) if reference is None
           else check_finite(reference, "reference"))
    # a coordinate constant in the reference (a dead embedding unit) has no distribution to
    # score against: every value off it maps to the same extreme score, so one unit that
    # all perturbations switch on rejects every pair at the same floor. Left out, counted.
    sd = np.asarray(ref, float).std(0)
    live = sd > 1e-6 * max(float(sd.max()), 1e-12)
    ref = np.asarray(ref)[:, live]
    stat, p, eff, status, ulist = [], [], [], [], []
    for g, u in zip(groups, units):
        empty = [c for c in CONDITIONS if len(g[c]) == 0]
        if empty:
            stat.append(np.nan)
            eff.append(np.nan)
            p.append(np.nan)
            status.append("no cells of " + ", ".join(empty) + " for morphology")
            ulist.append({c: len(set(map(str, u[c]))) for c in CONDITIONS})
            continue
        feats = {}
        for c in CONDITIONS:
            z = normal_scores(np.asarray(g[c], float)[:, live], ref)
            feats[c] = np.concatenate([z, z * z - 1.0], 1)
        r = contrast_test(feats, u)
        ulist.append(r["units"])
        if np.isfinite(r["p"]).all():
            stat.append(float(np.mean(r["t"] ** 2)))
            eff.append(float(np.max(np.abs(r["t"]))))
            p.append(simes(r["p"]))
            status.append("tested")
        else:
            stat.append(float(np.sum(r["contrast"] ** 2)))  # unscaled: a description only
            eff.append(np.nan)
            p.append(np.nan)
            status.append(_one_unit_status(r["units"]))
    nan = np.full(len(groups), np.nan)
    params = {"statistic": "mean over features of t^2, t the replicate-level t statistic of "
                           "ab + ctrl - a - b for the features u and u^2 of every coordinate",
              "calibration": "per-feature t tests on replicate-unit means (variance pooled "
                             "over conditions, df = units - 4), combined by Simes",
              "kernel": "none (replicate means of u and u^2 per coordinate)",
              "bandwidth_rule": "n/a", "dim": int(ref.shape[1]), "unit_level": True,
              "constant_in_reference_left_out": int((~live).sum())}
    return ReplicateResult("disjointness", np.array(stat), np.array(p), np.array(eff),
                           nan.copy(), nan.copy(), status, ulist, params)


def log_count_variance(lam, pseudo: float = 0.5) -> np.ndarray:
    """Variance of ``log2(N + pseudo)`` for ``N ~ Poisson(lam)``, computed from the pmf.

    The sampling part of the spread of a well's log count: a well expected to hold 30
    cells has a log2 count sd of about 0.27, one expected to hold 5 about 0.7, so
    conditions that kill (or add) cells have noisier log counts than the controls even
    without any well-to-well effect. Exact for small means, where the delta-method value
    ``1 / (lam ln^2 2)`` is not.

    Parameters
    ----------
    lam : float or array of float
        Poisson means (cells expected per well); 0 gives 0.
    pseudo : float
        The pseudo-count added before the log.

    Returns
    -------
    numpy.ndarray
        The variances, shaped like ``lam``.
    """
    lam = np.atleast_1d(np.asarray(lam, float))
    out = np.zeros(lam.shape)
    for i, m in enumerate(lam.ravel()):
        if m <= 0:
            continue
        k = np.arange(int(m + 12 * np.sqrt(m) + 30) + 1)
        w = _st.poisson.pmf(k, m)
        y = np.log2(k + pseudo)
        mu = (w * y).sum() / w.sum()
        out.ravel()[i] = (w * (y - mu) ** 2).sum() / w.sum()
    return out


def count_test(counts: list[dict[str, np.ndarray]], *, pseudo: float = 0.5,
               variance: str = "poisson_lognormal") -> ReplicateResult:
    """Viability: is the double's ``log2`` cell count per unit what its singles predict?

    The statistic is ``log2 ab + log2 ctrl - log2 a - log2 b`` of the unit means of
    ``log2(count + pseudo)``: 0 when the singles' fitness effects multiply (Bliss
    independence on the scale of survival); below 0 synthetic sickness/lethality, above 0
    rescue.

    The variance of a unit's log count is modelled as ``tau^2 + v(lam_c)``: a
    between-unit (overdispersion) variance ``tau^2`` shared by the conditions, plus the
    Poisson sampling variance :func:`log_count_variance` at the condition's mean count
    ``lam_c`` (a Poisson-lognormal model of counts); for the double, at the count the null
    predicts, ``lam_a lam_b / lam_ctrl`` (as a score test would, so a lethal double's few
    cells do not inflate the variance it is tested with). ``tau^2`` is estimated by the
    method of moments from the spread of the unit log counts around their condition means,
    less the Poisson part (truncated at 0); the variance of the contrast is then scaled by
    the weighted residual spread over its ``df = sum_c (U_c - 1)`` (Hartung & Knapp 2001,
    Stat. Med. 20, 3875), and the t statistic has those df.
    ``variance="pooled"`` is the former test: one variance pooled over the four
    conditions, which treats every condition's log counts as equally noisy. When a single
    or the double changes the count (an essential gene, a lethal pair), its log counts are
    noisier than the controls', whose many wells dominate the pooled estimate: on the
    realistic demo world an additive pair whose single keeps 8 cells per well against the
    controls' 32 was rejected at 0.19 by the pooled test at alpha 0.05.

    Parameters
    ----------
    counts : list of dict
        Per pair, condition (``ctrl``, ``a``, ``b``, ``ab``) -> cells per replicate unit
        ``(U_c,)``. Units that lost every cell are invisible when only cells are recorded:
        give them with count 0 where a plate map lists them.
    pseudo : float
        Added to every count before the log.
    variance : {"poisson_lognormal", "pooled"}
        The variance model of a unit's log count (see above).

    Returns
    -------
    ReplicateResult
        ``statistic`` the log2 contrast, ``p_value`` (NaN where a condition has one unit),
        ``effect_size`` the t statistic, ``ci_low``/``ci_high`` its 95% t interval.
    """
    if variance not in ("poisson_lognormal", "pooled"):
        raise ValidationError(f"variance={variance!r} is not a count variance model.",
                              "pass 'poisson_lognormal' (the default) or 'pooled'.")
    stat, p, eff, lo, hi, status, ulist = [], [], [], [], [], [], []
    for cnt in counts:
        for c in CONDITIONS:
            check_finite(np.asarray(cnt[c], float), f"cell counts of condition {c!r}")
        if variance == "pooled":
            summ = {c: np.log2(np.asarray(cnt[c], float) + pseudo)[:, None]
                    for c in CONDITIONS}
            r = contrast_test(summ, None)
        else:
            r = _poisson_lognormal_contrast(cnt, pseudo)
        ulist.append(r["units"])
        stat.append(float(r["contrast"][0]))
        if np.isfinite(r["p"]).all():
            q = _st.t.ppf(0.975, r["df"]) * r["se"][0]
            p.append(float(r["p"][0]))
            eff.append(float(r["t"][0]))
            lo.append(stat[-1] - q)
            hi.append(stat[-1] + q)
            status.append("tested")
        else:
            p.append(np.nan)
            eff.append(np.nan)
            lo.append(np.nan)
            hi.append(np.nan)
            status.append(_one_unit_status(r["units"]))
    calib = ("t test on replicate units: between-unit variance (method of moments) plus each "
             "condition's Poisson variance of the log count, df = units - 4"
             if variance == "poisson_lognormal" else
             "t test on replicate units, variance pooled over conditions")
    params = {"statistic": "log2 cells per unit: ab + ctrl - a - b (<0: synthetic "
                           "sickness/lethality, >0: rescue)",
              "calibration": calib, "variance": variance,
              "kernel": "none (cell counts)", "bandwidth_rule": "n/a", "pseudo_count": pseudo,
              "unit_level": True}
    return ReplicateResult("viability", np.array(stat), np.array(p), np.array(eff),
                           np.array(lo), np.array(hi), status, ulist, params)


def _poisson_lognormal_contrast(cnt: dict[str, np.ndarray], pseudo: float) -> dict[str, Any]:
    """The log2 count contrast with variance ``sum_c (tau^2 + v_c) / U_c`` (see count_test)."""
    y, lam, units = {}, {}, {}
    for c in CONDITIONS:
        n = np.asarray(cnt[c], float)
        y[c] = np.log2(n + pseudo)
        units[c] = len(n)
        lam[c] = n.mean() if len(n) else 0.0
    # the double's Poisson part at the count its singles predict (the null's), as a score
    # test would: a lethal double's few cells then do not inflate the variance it is
    # tested with
    if lam["ctrl"] > 0:
        lam["ab"] = lam["a"] * lam["b"] / lam["ctrl"]
    v = {c: float(log_count_variance(lam[c], pseudo)[0]) for c in CONDITIONS}
    contrast = np.array([sum(CONDITIONS[c] * y[c].mean() for c in CONDITIONS if units[c])])
    df = sum(u - 1 for u in units.values())
    if min(units.values()) < 2 or df < 1:
        nan = np.full(1, np.nan)
        return {"contrast": contrast, "se": nan, "t": nan, "df": df, "p": nan.copy(),
                "units": units}
    excess = sum(((y[c] - y[c].mean()) ** 2).sum() - (units[c] - 1) * v[c] for c in CONDITIONS)
    tau2 = max(excess / df, 0.0)
    w = {c: tau2 + v[c] for c in CONDITIONS}
    if min(w.values()) <= 0:  # no Poisson part and no spread: fall back to pooling
        w = dict.fromkeys(CONDITIONS, 1.0)
    # Hartung-Knapp scale: the weighted residual spread over its df (1 on average under
    # the model), so that t with df holds even where tau^2 was truncated at 0
    scale = sum(((y[c] - y[c].mean()) ** 2).sum() / w[c] for c in CONDITIONS) / df
    se = np.array([np.sqrt(scale * sum(w[c] / units[c] for c in CONDITIONS))])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, contrast / np.where(se > 0, se, 1.0), 0.0)
    p = 2 * _st.t.sf(np.abs(t), df)
    return {"contrast": contrast, "se": se, "t": t, "df": df, "p": p, "units": units}
