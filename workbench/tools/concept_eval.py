"""Held-out evaluation of a concept dictionary: how the samples are split, what is measured.

A dictionary's reconstruction and selectivity measured on the samples it was fitted on are
optimistic, the more so on a small plate. The concepts step therefore fits on one part of the
screen and reports on the other (held-out) part by default. The split follows the screen's
structure, chosen by the user and recorded in the provenance:

* ``"replicate"``: within every perturbation (controls included), half of its samples are
  held out, drawn with the step's seed; a ``replicate`` column in ``obs`` is used when
  present (odd replicates fit, even replicates held out);
* ``"dose"``: within every perturbation its doses are ranked and every second dose is held
  out (controls are split as replicates);
* ``"plate"``: the later half of the plates (sorted names) is held out; needs two plates;
* ``"none"``: fit and report on all samples (labelled in-sample).

What is measured on the held-out part (:func:`heldout_metrics`): reconstruction R^2 in the
prepared space, the dead fraction (atoms never active), the dense fraction (atoms active on
more than half of the samples), and for each label column the number of concepts with
selectivity above 0.5 and 0.2, the best selectivity per label and the number of labels with
an FDR-significant enrichment. Control samples are left out of every label set: a concept
that is merely "not the control" is not a finding, and the control label is not counted as
a mechanism.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

SPLITS = ("replicate", "dose", "plate", "none")
#: An atom active on more than this share of held-out samples counts as dense.
DENSE_SHARE = 0.5


def split_rows(obs: pd.DataFrame, how: str, seed: int = 0) -> np.ndarray:
    """Boolean mask of the *held-out* rows of ``obs`` for split ``how`` (see module doc).

    Parameters
    ----------
    obs : pandas.DataFrame
        The profiles' ``obs``: needs ``perturbation``; ``plate`` for ``"plate"``;
        ``is_control`` for ``"dose"`` and for ``"replicate"`` without a ``replicate``
        column; ``dose`` for ``"dose"``. A ``replicate`` column is used by
        ``"replicate"`` when present.
    how : str
        One of :data:`SPLITS`: ``"replicate"``, ``"dose"``, ``"plate"`` or ``"none"``.
    seed : int
        Seed of the random halves (``"replicate"`` without a replicate column, and the
        controls of ``"dose"``).

    Returns
    -------
    ndarray
        ``(len(obs),)`` bool, True for held-out rows (all False for ``"none"``).

    Raises
    ------
    ValidationError
        If ``how`` is unknown, or the columns it needs are missing (a single plate for
        ``"plate"``, no dose column for ``"dose"``).
    """
    n = len(obs)
    if how not in SPLITS:
        raise ValidationError(f"unknown held-out split {how!r}.",
                              f"use one of {', '.join(SPLITS)} (--holdout).")
    held = np.zeros(n, bool)
    if how == "none":
        return held
    rng = np.random.default_rng(seed)
    pert = obs["perturbation"].astype(str).to_numpy()
    if how == "plate":
        plates = obs["plate"].astype(str).to_numpy()
        names = sorted(set(plates))
        if len(names) < 2:
            raise ValidationError(
                f"the profiles come from one plate ({names[0] if names else 'none'}); a split "
                "by plate needs two or more.",
                "split by replicate or dose instead (--holdout replicate), or --holdout none.")
        return np.isin(plates, names[len(names) // 2:])
    if how == "replicate" and "replicate" in obs.columns:
        rep = pd.factorize(obs["replicate"].astype(str), sort=True)[0]
        return rep % 2 == 1
    use_dose = how == "dose"
    if use_dose and "dose" not in obs.columns:
        raise ValidationError("the profiles have no dose column; a split by dose needs one.",
                              "import with --dose-column, or split by replicate.")
    dose = pd.to_numeric(obs["dose"], errors="coerce").to_numpy() if use_dose else None
    ctrl = obs["is_control"].to_numpy(bool)
    for p in np.unique(pert):
        rows = np.flatnonzero(pert == p)
        if use_dose and not ctrl[rows].any():
            levels = np.unique(dose[rows][np.isfinite(dose[rows])])
            if len(levels) >= 2:
                odd = levels[1::2]
                held[rows] = np.isin(dose[rows], odd)
                continue
        order = rng.permutation(rows)
        held[order[: len(rows) // 2]] = True
    return held


def _selectivity_summary(active, labels: pd.Series, alpha: float) -> dict:
    from workbench.tools.concept_annotation import label_table

    if labels.astype(str).nunique() < 2:
        return {}
    t = label_table(active, labels.reset_index(drop=True))
    best = t["selectivity"].max(axis=1)
    return {"selective_0.5": int((best > 0.5).sum()), "selective_0.2": int((best > 0.2).sum()),
            "best_selectivity_per_label": float(np.mean(t["selectivity"].max(axis=0))),
            "labels_enriched": int(((t["q"] < alpha) & (t["selectivity"] > 0))
                                   .any(axis=0).sum()),
            "n_labels": int(len(t["levels"]))}


def heldout_metrics(x_prepared: np.ndarray, x_hat: np.ndarray, codes, obs: pd.DataFrame, *,
                    label_columns, alpha: float = 0.05) -> dict:
    """Quality of the codes of held-out samples (prepared inputs, reconstructions, codes).

    Label sets leave out the control samples (see module docstring).

    Parameters
    ----------
    x_prepared : ndarray
        ``(n, d)`` held-out samples in the prepared (whitened, unit-norm) space.
    x_hat : ndarray
        ``(n, d)`` their reconstructions by the dictionary.
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` their codes.
    obs : pandas.DataFrame
        Their ``obs`` rows (``is_control`` and the label columns).
    label_columns : list of str
        Columns to measure selectivity and enrichment for; missing ones are skipped.
    alpha : float
        FDR level of the enrichment counts.

    Returns
    -------
    dict
        ``n_samples``, ``r2`` (NaN for one sample), ``dead_fraction``, ``dense_fraction``
        and per label column ``<col>_selective_0.5``, ``<col>_selective_0.2``,
        ``<col>_best_selectivity_per_label``, ``<col>_labels_enriched``,
        ``<col>_n_labels``.
    """
    from workbench.models.dictionary import dead_fraction, r2_score
    from workbench.tools.concept_annotation import active_matrix

    act = active_matrix(codes)
    freq = np.asarray(act.mean(axis=0)).ravel()
    out = {"n_samples": int(x_prepared.shape[0]),
           "r2": float(r2_score(x_prepared, x_hat)) if len(x_prepared) > 1 else float("nan"),
           "dead_fraction": float(dead_fraction(codes)),
           "dense_fraction": float((freq > DENSE_SHARE).mean())}
    treated = ~obs["is_control"].to_numpy(bool)
    rows = np.flatnonzero(treated)
    for col in label_columns:
        if col not in obs.columns or rows.size < 2:
            continue
        vals = obs[col].iloc[rows]
        if isinstance(vals.dtype, pd.CategoricalDtype):
            vals = vals.astype(object)
        keep = vals.notna().to_numpy()
        if keep.sum() < 2:
            continue
        summ = _selectivity_summary(act[rows[keep]], vals[keep].astype(str), alpha)
        for k, v in summ.items():
            out[f"{col}_{k}"] = v
    return out


__all__ = ["SPLITS", "DENSE_SHARE", "heldout_metrics", "split_rows"]
