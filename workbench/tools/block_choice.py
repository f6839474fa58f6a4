"""Choosing the transformer block: a grouped linear probe per block, on a chosen task.

The idea and the protocol are ViTally Consistent's (Kenyon-Dean et al. 2024, arXiv
2411.02572; :mod:`workbench.models.probe` holds the probe): folds grouped by batch, plate
or field so that a probe cannot win by recognising them; TVN on the controls before
probing, as after. The task is perturbation identity, a user label column, or a known
relationship (the group of each perturbation's gene).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError


def probe_groups(obs: pd.DataFrame) -> tuple[str, np.ndarray]:
    """The grouping of probe folds: batch, else plate, else field_id (>= 2 groups).

    Parameters
    ----------
    obs : pandas.DataFrame
        The samples' metadata.

    Returns
    -------
    key : str
        The column used.
    groups : numpy.ndarray
        Its values as strings, one per sample.

    Raises
    ------
    ValidationError
        When none of the three columns has two values.
    """
    for key in ("batch", "plate", "field_id"):
        if key in obs.columns and obs[key].astype(str).nunique() >= 2:
            return key, obs[key].astype(str).to_numpy()
    raise ValidationError(
        "the probe needs at least two batches, plates or fields to group its folds by.",
        "add a 'field_id' column (fields of view) or data from a second plate.")


def choose_block(features: np.ndarray, obs: pd.DataFrame, *, label="perturbation",
                 max_samples: int = 3000, n_splits: int = 5, seed: int = 0,
                 tvn_kw: dict | None = None) -> dict:
    """Linear-probe every block (TVN first) and return the curve and the best block.

    Samples without a label are normalised with the rest (TVN needs the controls) but left
    out of the probe.

    Parameters
    ----------
    features : numpy.ndarray
        ``(n, n_blocks, dim)`` features of every block.
    obs : pandas.DataFrame
        The samples' metadata, with ``is_control`` (and ``batch``, ``plate`` or
        ``field_id`` for the folds).
    label : str or mapping
        The probe task: ``"perturbation"`` (perturbation identity), any other ``obs`` column
        (a user label such as a mechanism), or a mapping ``{perturbation: label}`` (a known
        relationship, e.g. the complex of each gene; see :func:`relationship_labels`).
    max_samples : int
        Samples drawn at random (with ``seed``) when there are more.
    n_splits : int
        Grouped folds of the probe.
    seed : int
        Seed of the subsample and the probe.
    tvn_kw : dict, optional
        Options passed to :func:`~workbench.tools.normalize.normalized`.

    Returns
    -------
    dict
        ``label``, ``task``, ``group_key``, ``n_samples``, ``blocks`` (1-based),
        ``balanced_accuracy`` per block, ``best_block``, ``chance`` and ``reduction``.
    """
    from workbench.models.probe import probe_blocks

    if isinstance(label, str):
        if label not in obs.columns:
            raise ValidationError(f"probe label {label!r} is not a column of the profiles' obs.",
                                  f"choose one of {list(obs.columns)[:12]}.")
        task, y_all = ("perturbation identity" if label == "perturbation" else
                       f"user label {label!r}"), obs[label].astype(str).to_numpy()
    else:
        mapping = {str(k): str(v) for k, v in dict(label).items()}
        task = "known relationship"
        y_all = obs["perturbation"].astype(str).map(mapping).fillna("").to_numpy()
        label = "relationship"
    key, groups = probe_groups(obs)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(obs))
    if len(idx) > max_samples:
        idx = np.sort(rng.choice(idx, max_samples, replace=False))
    sub = obs.iloc[idx]
    ctrl = sub["is_control"].to_numpy(bool)
    batch = sub["batch"].astype(str).to_numpy() if "batch" in sub else None
    y = y_all[idx]
    keep = ~pd.Series(y).str.lower().isin(["", "nan", "none"]).to_numpy()
    if len(np.unique(y[keep])) < 2:
        raise ValidationError(f"the probe task ({task}) has fewer than two labels on the "
                              "profiles.", "choose a label column with at least two values, "
                              "or relationships that cover the screen's perturbations.")

    from workbench.tools.normalize import normalized

    def prepare(X):
        return normalized(X, ctrl, batch, **(tvn_kw or {}))[keep]

    res = probe_blocks(features[idx], y[keep], groups[idx][keep], prepare=prepare,
                       n_splits=n_splits, seed=seed)
    return {"label": label, "task": task, "group_key": key, "n_samples": int(keep.sum()),
            "blocks": res["blocks"].tolist(), "balanced_accuracy": res["balanced_accuracy"].tolist(),
            "best_block": res["best_block"], "chance": res["chance"],
            "reduction": res["reduction"]}


def relationship_labels(study) -> dict[str, str]:
    """``{perturbation: group}`` from the Study's known relationships, for the probe.

    Planted gene groups of a simulated Study, else the clusters of a ``relationships``
    artefact (a gene in several groups keeps the first, in sorted order).

    Parameters
    ----------
    study : Study
        A Study with ``ground_truth`` or ``relationships``.

    Returns
    -------
    dict of str to str
        The group of each perturbation.

    Raises
    ------
    MissingArtefactError
        When the Study holds neither.
    """
    from workbench.tools.map_benchmarks import _groups_from_truth

    groups = _groups_from_truth(study.read("ground_truth")) if study.has("ground_truth") else None
    if not groups and study.has("relationships"):
        from workbench.data.readers.relationships import load_relationships

        rel = load_relationships(study)
        col = next((c for c in ("cluster", "complex", "group") if c in rel.columns), None)
        if col is not None:
            groups = {str(g): list(pd.unique(pd.concat([d["entity1"], d["entity2"]])))
                      for g, d in rel.groupby(col)}
    if not groups:
        raise MissingArtefactError("the Study holds no known relationships to probe on.",
                                   "import relationships first, or probe on a label column.")
    out: dict[str, str] = {}
    for g in sorted(groups):
        for gene in groups[g]:
            out.setdefault(str(gene), str(g))
    return out
