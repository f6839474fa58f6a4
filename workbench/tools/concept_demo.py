"""The concept view of the demo world: ICFL on the demo profiles, checked against the truth.

:func:`program_recovery` asks, for each planted morphology program, which concept is most
selective for the perturbations that drive it; :func:`demo_step` runs the concepts step on
the demo Study and stores that table (and the TopK SAE's dead fraction at the same size) in
the provenance and ``concepts.uns["workbench"]["demo"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.tools.concepts import DEMO, learn_concepts, run_concepts, select_representation


def probe_accuracy(x: np.ndarray, mask: np.ndarray, seed: int = 0, folds: int = 3) -> float:
    """Cross-validated balanced accuracy of a linear probe for ``mask`` on features ``x``.

    A class-balanced logistic regression (stratified folds). Near 0.5 means the program is
    not linearly visible in the features at all, so no concept over them can pick it out.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n, d)`` features.
    mask : numpy.ndarray
        ``(n,)`` booleans: the samples of the program.
    seed : int
        Seed of the fold split.
    folds : int
        Cross-validation folds (fewer when the smaller class has fewer samples).

    Returns
    -------
    float
        Balanced accuracy of the out-of-fold predictions; NaN when a class has fewer than
        two samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(mask, int)
    k = int(min(folds, np.bincount(y, minlength=2).min()))
    if k < 2:
        return float("nan")
    probe = LogisticRegression(class_weight="balanced", max_iter=500, C=1.0)
    pred = cross_val_predict(probe, x, y, cv=StratifiedKFold(k, shuffle=True,
                                                             random_state=seed))
    return float(balanced_accuracy_score(y, pred))


def program_recovery(concepts, profiles_obs: pd.DataFrame, codes, ground_truth: dict,
                     threshold: float = 0.2, features: np.ndarray | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """For each planted module program: the concept most selective for its perturbations.

    The perturbations driving a program are the knockouts (single, or double "A+B") that hit a
    gene of the module which moves cell properties (``ground_truth["groups"]`` and
    ``"effect_genes"``). A concept's selectivity for the module is
    ``P(active | those perturbations) - P(active | the rest)``.
    Returns one row per module: best concept, its selectivity, whether it passes
    ``threshold``, and that concept's own top driver. With ``features`` (the representation
    the concepts were learned on), ``probe_balanced_accuracy`` says whether the program is
    visible in it at all (:func:`probe_accuracy`): a program missed by every concept *and* by
    the probe is invisible in the features, not missed by the dictionary.

    Parameters
    ----------
    concepts : anndata.AnnData
        The ``concepts`` artefact (one row per concept, ``obs["drivers"]``).
    profiles_obs : pandas.DataFrame
        ``profiles.obs`` (its ``perturbation`` column).
    codes : array_like
        ``(n_samples, n_concepts)`` concept activations of the profiles.
    ground_truth : dict
        The demo's ``ground_truth`` (``groups``, ``effect_genes``).
    threshold : float
        Selectivity at which a program counts as recovered.
    features : numpy.ndarray, optional
        The representation the concepts were learned on, for the probe column.
    seed : int
        Seed of the probe's folds.

    Returns
    -------
    pandas.DataFrame
        One row per module: ``module``, ``drivers``, ``best_concept``, ``selectivity``,
        ``recovered``, ``concept_drivers`` (and ``probe_balanced_accuracy`` with
        ``features``).
    """
    from workbench.tools.concept_annotation import active_matrix

    act = active_matrix(codes)
    pert = profiles_obs["perturbation"].astype(str).to_numpy()
    effect = set(ground_truth.get("effect_genes", []))
    rows = []
    for module, genes in ground_truth["groups"].items():
        drivers = [g for g in genes if g in effect] or list(genes)
        hit = {str(g) for g in drivers}
        mask = np.array([bool(hit & set(p.split("+"))) for p in pert])
        if not mask.any() or mask.all():
            continue
        p_in = np.asarray(act[np.flatnonzero(mask)].mean(axis=0)).ravel()
        p_out = np.asarray(act[np.flatnonzero(~mask)].mean(axis=0)).ravel()
        sel = p_in - p_out
        best = int(np.argmax(sel))
        rows.append({"module": module, "drivers": ";".join(drivers),
                     "best_concept": str(concepts.obs_names[best]),
                     "selectivity": float(sel[best]), "recovered": bool(sel[best] >= threshold),
                     "concept_drivers": str(concepts.obs["drivers"].iloc[best]),
                     **({"probe_balanced_accuracy": probe_accuracy(features, mask, seed)}
                        if features is not None else {})})
    return pd.DataFrame(rows)


def _table_arrays(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A table as one typed numpy array per column (what AnnData ``uns`` stores as arrays)."""
    out = {}
    for col in frame.columns:
        v = frame[col]
        if pd.api.types.is_bool_dtype(v):
            out[str(col)] = v.to_numpy(bool)
        elif pd.api.types.is_numeric_dtype(v):
            out[str(col)] = v.to_numpy(np.float64 if pd.api.types.is_float_dtype(v)
                                       else np.int64)
        else:
            out[str(col)] = np.asarray([str(x) for x in v], dtype=str)
    return out


def demo_step(study, size: str = "quick", seed: int = 0) -> None:
    """Concept view of the demo: ICFL on the demo profiles (quick: a few seconds on CPU).

    Runs after the embedding step (``profiles`` with ``X`` = normalised embedding) with the
    library's default whitening choice: the embed step's TVN already whitened ``X`` on the
    controls, so :func:`run_concepts` centres on controls and unit-normalises without a
    second whitening (recorded in the provenance). When the Study holds ground truth, the
    program recovery of ICFL and the dead fraction of a TopK SAE of the same size (and
    the same preparation) are added to the provenance notes and
    ``concepts.uns["workbench"]["demo"]`` (the recovery table as one array per column).

    Parameters
    ----------
    study : Study
        A demo Study after ``embed``.
    size : str
        The demo size, which sets the dictionary size and training steps (:data:`DEMO`).
    seed : int
        Seed of the dictionary and of the checks.

    Returns
    -------
    None
        Writes ``concepts`` (and the concept model and pages) through the concepts step,
        and the demo's check as a step of its own.
    """
    cfg = DEMO.get(size, DEMO["quick"])
    profiles = study.read("profiles")
    n = profiles.n_obs
    n_concepts = int(min(cfg["n_concepts"], max(2, n // 4)))
    kw = dict(n_concepts=n_concepts, sparsity=cfg["sparsity"], max_steps=cfg["max_steps"],
              batch_size=512, lr=1e-2, seed=seed, progress=False)
    summary = run_concepts(study, method="icfl", **kw)
    if not study.has("ground_truth"):
        return
    concepts = study.read("concepts")
    whiten = bool(concepts.uns["workbench"]["whitening"]["whiten"])
    profiles = study.read("profiles")
    codes = profiles.obsm[f"concepts_{concepts.uns['workbench']['run']}"]
    x, _ = select_representation(profiles)
    rec = program_recovery(concepts, profiles.obs, codes, study.read("ground_truth"),
                           features=x, seed=seed)
    kw.pop("seed"), kw.pop("progress")
    topk = learn_concepts(x, profiles.obs["is_control"].to_numpy(bool), method="topk",
                          seed=seed, progress=False, whiten=whiten, **kw)
    demo = {"program_recovery": _table_arrays(rec) if len(rec) else {},
            "programs_recovered": int(rec["recovered"].sum()) if len(rec) else 0,
            "programs": int(len(rec)),
            "dead_fraction_icfl": float(summary["dead_fraction"]),
            "dead_fraction_topk": float(topk.metrics["dead_fraction"]),
            "whitened_by": str(concepts.uns["workbench"]["params"].get("whitened_by", "")),
            "second_whitening": bool(whiten and concepts.uns["workbench"]["params"]
                                     .get("whitened_by", ""))}
    concepts.uns["workbench"]["demo"] = demo
    with study.step("concepts_demo_check", params={"size": size}, seed=seed,
                    inputs=["concepts", "ground_truth"]) as tx:
        tx.write_anndata("concepts", concepts, screen=False)
        tx.note(**{k: v for k, v in demo.items() if not isinstance(v, dict)})
