"""The concepts step: a sparse dictionary over the profiles, annotated for a biologist.

Reads the ``profiles`` artefact (``X``, the normalised embedding, or any ``obsm`` key), and:

1. prepares the data as Donhauser et al. (ICML 2025, arXiv:2412.16247, section 4) do:
   subtract the control mean, whiten with the covariance of the controls only, scale every
   sample to unit norm (:class:`~workbench.models.dictionary.ControlWhitener`; regularised so
   that it works with fewer controls than features);
2. learns a dictionary (:class:`~workbench.models.icfl.ICFL`, or the
   :class:`~workbench.models.topk_sae.TopKSAE` baseline);
3. encodes every sample into sparse codes, written to ``profiles.obsm["concepts_<run>"]``;
4. annotates each concept (:mod:`workbench.tools.concept_annotation`: activation frequency,
   selectivity and FDR-controlled enrichment for perturbations and any label column, driving
   perturbations, batch/plate flags, exemplar pages) and writes the ``concepts`` AnnData:
   ``X`` holds the atoms in the whitened space, which has the input's coordinates (the
   whitening is the symmetric ZCA form), ``layers["input_space"]`` the same directions mapped
   back to input features, ``obs`` the annotation, ``varm``/``var`` what is needed to encode
   new samples (control mean, whitening vectors, bias).

The same code path serves well-level profiles (a LINCS plate: 384 wells x 454 features) and
single cells (DeepProfiler: 158 cells x 6400 dimensions). Heavy imports happen inside
functions so that ``import workbench`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

#: Label columns annotated by default when present (besides ``perturbation``).
DEFAULT_LABELS = ("moa", "target", "genes", "perturbation_type")
#: Above this many code entries (samples x concepts) the codes are stored sparse (CSR).
DENSE_LIMIT = 20_000_000
#: Extra seeds the step fits to score each concept's stability (one more fit of the same
#: size: about the main fit's time again, roughly 10 s on the realistic demo).
STABILITY_SEEDS = 1
#: Demo sizes: concepts, sparsity, steps.
DEMO = {"tiny": dict(n_concepts=16, sparsity=2, max_steps=200),
        "quick": dict(n_concepts=16, sparsity=2, max_steps=300),
        "realistic": dict(n_concepts=64, sparsity=4, max_steps=2000)}


@dataclass
class ConceptFit:
    """What :func:`learn_concepts` returns: the fitted parts and the codes.

    Parameters
    ----------
    model : SparseDictionary
        The fitted dictionary (ICFL or TopK SAE).
    whitener : ControlWhitener
        The control whitener fitted on the training controls.
    features : ndarray
        Names of the features kept (constant ones dropped), in column order.
    codes : scipy.sparse.csr_matrix
        Codes, samples x concepts (the concepts step replaces them with the codes of every
        sample of the screen).
    x : ndarray, optional
        The prepared (whitened, unit-norm) training samples.
    metrics : dict
        Training figures: fit time, dead fraction, R^2, steps, resamples, active atoms per
        sample, features used and dropped (and the ICFL pursuit).
    keep : ndarray, optional
        Boolean mask of the input features used.
    """

    model: Any
    whitener: Any
    features: np.ndarray  # names of the features kept (constant ones dropped)
    codes: Any  # CSR, samples x concepts
    x: np.ndarray | None  # prepared (whitened, unit-norm) training samples
    metrics: dict = field(default_factory=dict)
    keep: np.ndarray | None = None  # mask of the input features used


# ---------------------------------------------------------------------------- inputs
def select_representation(profiles, use_rep: str | None = None) -> tuple[np.ndarray, list[str]]:
    """The matrix to learn concepts on: ``X`` (default) or ``obsm[use_rep]``, with names.

    Parameters
    ----------
    profiles : anndata.AnnData
        The ``profiles`` artefact.
    use_rep : str, optional
        ``None`` or ``"X"`` for ``X``; otherwise an ``obsm`` key (a DataFrame gives its
        column names, an array is named ``<use_rep>_<i>``).

    Returns
    -------
    x : ndarray
        ``(n, d)`` float32 dense matrix.
    names : list of str
        The ``d`` feature names.

    Raises
    ------
    ValidationError
        If ``obsm`` has no such key, or the matrix is not 2-D with at least one column.
    """
    if use_rep in (None, "X"):
        x = profiles.X
        names = [str(v) for v in profiles.var_names]
    else:
        if use_rep not in profiles.obsm:
            raise ValidationError(
                f"profiles has no obsm[{use_rep!r}]; it holds {sorted(profiles.obsm.keys())}.",
                "pick one of those with --use-rep, or leave it out to use X (the normalised "
                "embedding).")
        x = profiles.obsm[use_rep]
        if isinstance(x, pd.DataFrame):
            names = [str(c) for c in x.columns]
            x = x.to_numpy()
        else:
            names = [f"{use_rep}_{i}" for i in range(np.shape(x)[1])]
    if hasattr(x, "toarray"):
        x = x.toarray()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValidationError(f"the representation {use_rep or 'X'} has shape {x.shape}.",
                              "give a samples x features matrix (--use-rep).")
    return x, names


def check_inputs(x: np.ndarray, is_control: np.ndarray, n_concepts: int, *,
                 whiten: bool = True, drop_constant: bool = True,
                 where: str = "profiles") -> np.ndarray:
    """Raise :class:`ValidationError` on inputs the step cannot use; return kept features.

    Checks: finite values; at least one control (two with whitening); no more concepts than
    samples; features that are constant over all samples are dropped (or refused with
    ``drop_constant=False``), and at least one must vary.

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` samples.
    is_control : ndarray
        ``(n,)`` bool, the control samples.
    n_concepts : int
        Dictionary size asked for (1 to ``n``).
    whiten : bool
        Whether the step will whiten (then two controls are needed).
    drop_constant : bool
        Drop constant features (True) or refuse them (False).
    where : str
        What ``x`` is, as the errors should name it.

    Returns
    -------
    ndarray
        ``(d,)`` bool mask of the features kept.
    """
    n, d = x.shape
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValidationError(
            f"{where} holds {int(bad.sum())} NaN/infinite value(s) in {rows.size} sample(s) "
            f"(first rows {rows[:5].tolist()}).",
            "impute or drop them before the concepts step (e.g. re-import with --nan "
            "drop-features).")
    n_ctrl = int(np.asarray(is_control, bool).sum())
    if n_ctrl == 0:
        raise ValidationError(
            f"{where} has no control samples (is_control is False everywhere).",
            "the concepts step centres and whitens on controls: mark the control samples "
            "(is_control=True), or import with the right control label.")
    if whiten and n_ctrl < 2:
        raise ValidationError(
            f"{where} has only {n_ctrl} control sample; whitening needs at least 2.",
            "add control samples, or run without whitening (--no-whiten).")
    if n_concepts > n:
        raise ValidationError(
            f"{n_concepts} concepts were asked for, but {where} has only {n} samples: a "
            "dictionary larger than the data cannot be learned.",
            f"ask for at most {n} concepts (--n-concepts), typically far fewer (n/4).")
    if n_concepts < 1:
        raise ValidationError(f"n_concepts must be positive, got {n_concepts}.",
                              "give --n-concepts 1 or more.")
    spread = x.max(axis=0) - x.min(axis=0)
    const = spread <= 1e-8 * np.maximum(np.abs(x).max(axis=0), 1.0)
    if const.all():
        raise ValidationError(
            f"every one of the {d} features of {where} is constant across samples: there "
            "is nothing to learn concepts from.",
            "check the representation (--use-rep) and the import; a failed embedding often "
            "gives constant vectors.")
    if const.any() and not drop_constant:
        raise ValidationError(
            f"{int(const.sum())} feature(s) of {where} are constant across samples "
            f"(first: {np.flatnonzero(const)[:5].tolist()}).",
            "drop them, or allow the step to drop them (drop_constant=True).")
    return ~const


# ---------------------------------------------------------------------------- learning
PURSUITS = ("signed", "abs_refit")


def make_model(method: str, n_concepts: int, sparsity: int, *, atoms_per_round: int | None = None,
               pursuit: str = "signed", max_steps: int = 1000, batch_size: int = 1024,
               lr: float = 3e-3, device: str = "auto", seed: int = 0, progress: bool = True):
    """An unfitted ICFL (``method="icfl"``) or TopK SAE (``"topk"``) of the given size.

    Both give exactly ``sparsity`` nonzeros per sample: ICFL's last pursuit round is partial
    when ``sparsity`` is not a multiple of ``atoms_per_round``.

    Parameters
    ----------
    method : str
        ``"icfl"`` or ``"topk"`` (also ``"topk_sae"``).
    n_concepts : int
        Number of atoms.
    sparsity : int
        Nonzeros per code.
    atoms_per_round : int, optional
        ICFL atoms chosen per pursuit round; ``None`` takes ``min(5, sparsity)``.
    pursuit : str
        ICFL's pursuit: ``"signed"`` (the paper's) or ``"abs_refit"`` (absolute selection
        and a joint re-fit). Ignored by TopK.
    max_steps : int
        Optimiser steps.
    batch_size : int
        Samples per step.
    lr : float
        Adam learning rate.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the model's generator.
    progress : bool
        Show a progress bar while fitting.

    Returns
    -------
    SparseDictionary
        The unfitted model.

    Raises
    ------
    ValidationError
        If ``method`` or ``pursuit`` is unknown.
    """
    if method == "icfl":
        from workbench.models.icfl import ICFL

        if pursuit not in PURSUITS:
            raise ValidationError(f"unknown ICFL pursuit {pursuit!r}.",
                                  f"use one of {', '.join(PURSUITS)} (--pursuit).")
        per = atoms_per_round or min(5, sparsity)
        return ICFL(n_concepts, atoms_per_round=per, n_nonzero=sparsity, pursuit=pursuit,
                    max_steps=max_steps, batch_size=batch_size, lr=lr, device=device, seed=seed,
                    progress=progress)
    if method in ("topk", "topk_sae"):
        from workbench.models.topk_sae import TopKSAE

        return TopKSAE(n_concepts, k=sparsity, max_steps=max_steps, batch_size=batch_size,
                       lr=lr, device=device, seed=seed, progress=progress)
    raise ValidationError(f"unknown concept method {method!r}.", "use 'icfl' or 'topk'.")


def default_steps(n: int, batch_size: int) -> int:
    """About 60 passes over the data, between 300 and 3000 optimiser steps.

    Parameters
    ----------
    n : int
        Number of training samples.
    batch_size : int
        Samples per step (at most ``n`` count).

    Returns
    -------
    int
        The number of optimiser steps.
    """
    return int(np.clip(60 * n / max(min(batch_size, n), 1), 300, 3000))


def learn_concepts(x: np.ndarray, is_control: np.ndarray, *, method: str = "icfl",
                   n_concepts: int | None = None, sparsity: int = 8,
                   atoms_per_round: int | None = None, pursuit: str = "signed",
                   whiten: bool = True,
                   shrinkage: float = 0.1, feature_names=None, max_steps: int | None = None,
                   batch_size: int = 1024, lr: float = 3e-3, device: str = "auto",
                   seed: int = 0, checkpoint=None, progress: bool = True) -> ConceptFit:
    """Whiten on controls, fit the dictionary, encode every sample (arrays in, no Study).

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` training samples (checked by :func:`check_inputs`; constant features
        dropped).
    is_control : ndarray
        ``(n,)`` bool, the controls the whitener is fitted on.
    method : str
        ``"icfl"`` or ``"topk"``.
    n_concepts : int, optional
        Number of concepts; ``None`` takes ``n // 4``, between 2 and 256.
    sparsity : int
        Nonzeros per code (capped at ``n_concepts``).
    atoms_per_round : int, optional
        ICFL atoms per pursuit round (see :func:`make_model`).
    pursuit : str
        ICFL's pursuit, ``"signed"`` or ``"abs_refit"``.
    whiten : bool
        Whiten on the controls; False only centres on them and scales to unit norm.
    shrinkage : float
        Ridge of the whitener, as a fraction of the mean control eigenvalue.
    feature_names : list of str, optional
        Names of the ``d`` features; ``None`` numbers them.
    max_steps : int, optional
        Optimiser steps; ``None`` uses :func:`default_steps`.
    batch_size : int
        Samples per step.
    lr : float
        Adam learning rate.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the dictionary.
    checkpoint : str or Path, optional
        Training checkpoint file (resumed when it exists).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ConceptFit
        The fitted model and whitener, the kept feature names and mask, the codes of the
        training samples and the training metrics.
    """
    from workbench.models.dictionary import dead_fraction, r2_score
    from workbench.tools.concept_stream import fit_whitener

    n = x.shape[0]
    if n_concepts is None:
        n_concepts = int(min(256, max(2, n // 4)))
    keep = check_inputs(x, is_control, n_concepts, whiten=whiten)
    names = np.asarray(feature_names if feature_names is not None
                       else [str(i) for i in range(x.shape[1])], dtype=object)[keep]
    x = x[:, keep]
    is_control = np.asarray(is_control, bool)
    sparsity = int(min(sparsity, n_concepts))
    whitener = fit_whitener(x, is_control, whiten=whiten, shrinkage=shrinkage)
    xw = whitener.transform(x)
    steps = max_steps or default_steps(n, batch_size)
    model = make_model(method, n_concepts, sparsity, atoms_per_round=atoms_per_round,
                       pursuit=pursuit, max_steps=steps, batch_size=batch_size, lr=lr, device=device, seed=seed,
                       progress=progress)
    t0 = time.perf_counter()
    model.fit(xw, checkpoint=checkpoint)
    codes = model.transform(xw)
    metrics = {"seconds_fit": round(time.perf_counter() - t0, 2),
               "dead_fraction": dead_fraction(codes),
               "r2": r2_score(xw, model.reconstruct(xw)),
               "n_steps": int(model.n_steps_), "n_resampled": int(model.n_resampled_),
               "mean_active_per_sample": float((codes != 0).sum(axis=1).mean()),
               "n_features_used": int(keep.sum()), "n_features_dropped": int((~keep).sum())}
    if method == "icfl":
        metrics["pursuit"] = model.pursuit_name
    return ConceptFit(model, whitener, names, codes, xw, metrics, keep)


def _top_features(directions: np.ndarray, names: np.ndarray, n: int = 3) -> list[str]:
    out = []
    for row in directions:
        idx = np.argsort(-np.abs(row))[:n]
        out.append("; ".join(f"{'+' if row[i] >= 0 else '-'}{names[i]}" for i in idx))
    return out


def concept_ids(m: int) -> list[str]:
    """Stable concept ids: ``c000``, ``c001``... (the atom's row in the dictionary).

    Parameters
    ----------
    m : int
        Number of concepts.

    Returns
    -------
    list of str
        ``m`` ids, zero-padded to at least three digits.
    """
    width = max(3, len(str(m - 1)))
    return [f"c{i:0{width}d}" for i in range(m)]


def concepts_anndata(fit: ConceptFit, profiles_obs: pd.DataFrame, *, is_control, control_label,
                     label_columns, run: str, method: str, params: dict, alpha: float = 0.05,
                     names: list[str] | None = None, stability=None):
    """The ``concepts`` AnnData (concepts x features) with its annotation, and the pages.

    Parameters
    ----------
    fit : ConceptFit
        The fitted model, whitener and the codes of every sample of ``profiles_obs``.
    profiles_obs : pandas.DataFrame
        The profiles' ``obs`` (labels, batch and plate columns), one row per code.
    is_control : ndarray
        ``(n,)`` bool, the control samples.
    control_label : str
        The control perturbation's name (not counted as a mechanism).
    label_columns : list of str
        ``obs`` columns to annotate (selectivity, enrichment).
    run : str
        The run name (``obsm["concepts_<run>"]``).
    method : str
        The concept method, recorded.
    params : dict
        The step's parameters, recorded in ``uns["workbench"]``.
    alpha : float
        FDR level of the enrichment calls.
    names : list of str, optional
        Concept ids; ``None`` uses :func:`concept_ids`.
    stability : ndarray, optional
        Per-concept stability scores for the pages; ``None`` leaves them out.

    Returns
    -------
    adata : anndata.AnnData
        The ``concepts`` AnnData (concepts x features).
    pages : dict
        The ``concept_pages`` document (:func:`workbench.tools.concept_pages.build_pages`).
    """
    import anndata as ad

    from workbench.tools.concept_annotation import annotate
    from workbench.tools.concept_pages import build_pages

    model, wh = fit.model, fit.whitener
    m = model.components_.shape[0]
    names = list(names) if names is not None else concept_ids(m)
    table, obsm, uns = annotate(fit.codes, profiles_obs, is_control=is_control,
                                control_label=control_label, label_columns=label_columns,
                                alpha=alpha)
    input_dirs = wh.inverse_direction(model.components_)
    table["top_features"] = _top_features(input_dirs, fit.features)
    table.index = names
    var = pd.DataFrame(index=[str(f) for f in fit.features])
    var["control_mean"] = wh.mean_.astype(np.float32)
    var["bias"] = model.bias_.astype(np.float32)
    adata = ad.AnnData(X=model.components_.astype(np.float32), obs=table, var=var)
    adata.layers["input_space"] = input_dirs
    adata.varm["whitening_components"] = wh.components_.T.astype(np.float32)
    for k, v in obsm.items():
        adata.obsm[k] = v
    crop_ids = np.asarray(profiles_obs.index.astype(str))
    top = obsm["exemplar_top_index"]
    exemplars = {}
    if m <= 1024:
        for i, nm in enumerate(names):
            rows = top[i][top[i] >= 0]
            exemplars[nm] = crop_ids[rows].tolist()
    space = ("whitened (ZCA form of control-PCA whitening: same coordinates as the input "
             "features; unit-norm samples)" if wh.whiten else
             "control-centred, unit-norm input features (no whitening)")
    pages = build_pages(fit.codes, profiles_obs, names, model.components_, table, obsm,
                        uns["labels"], control_label=control_label, alpha=alpha,
                        stability=stability)
    adata.uns["workbench"] = {
        "run": run, "method": method, "params": params, "space": space,
        "profiles_key": f"concepts_{run}",
        "metrics": {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                    for k, v in fit.metrics.items()},
        "whitening": {"whiten": bool(wh.whiten), "shrinkage": float(wh.shrinkage),
                      "delta": float(wh.delta_), "n_controls": int(wh.n_controls_),
                      "eigenvalues": wh.eigenvalues_.astype(np.float32)},
        "labels": uns["labels"], "alpha": alpha, "pages": uns["pages"],
        "exemplars": exemplars,
        "encode": "x -> whiten (var control_mean, varm whitening_components, eigenvalues, "
                  "delta) -> unit norm -> pursuit against X with bias var['bias']",
    }
    if "pursuit" in fit.metrics:
        adata.uns["workbench"]["pursuit"] = str(fit.metrics["pursuit"])
    return adata, pages


def summarise(adata, label_columns, control_label: str | None = None) -> dict:
    """Headline numbers of a concepts AnnData (for provenance notes and reports).

    ``<col>_labels_enriched`` counts the labels (other than the control label) with an
    FDR-significant enrichment in some concept.

    Parameters
    ----------
    adata : anndata.AnnData
        A ``concepts`` AnnData, as :func:`concepts_anndata` makes it.
    label_columns : list of str
        The label columns it was annotated for.
    control_label : str, optional
        The control perturbation, left out of the enriched-label counts.

    Returns
    -------
    dict
        ``n_concepts``, ``dead_fraction``, ``n_technical`` and per label column
        ``<col>_selective_0.5``, ``<col>_selective_0.2``, ``<col>_concepts_enriched`` and
        ``<col>_labels_enriched``.
    """
    obs = adata.obs
    out = {"n_concepts": int(adata.n_obs), "dead_fraction": float(obs["dead"].mean()),
           "n_technical": int(obs["technical"].sum())}
    for col in label_columns:
        key = f"{col}_best_selectivity"
        if key in obs:
            sel = obs[key].to_numpy()
            out[f"{col}_selective_0.5"] = int((sel > 0.5).sum())
            out[f"{col}_selective_0.2"] = int((sel > 0.2).sum())
            out[f"{col}_concepts_enriched"] = int((obs[f"{col}_n_enriched"] > 0).sum())
            levels = np.asarray(adata.uns["workbench"]["labels"][col]["levels"], dtype=str)
            sig = (adata.obsm[f"enrichment_q_{col}"] < adata.uns["workbench"]["alpha"]) & (
                adata.obsm[f"selectivity_{col}"] > 0)
            out[f"{col}_labels_enriched"] = int(sig.any(axis=0)[levels != control_label].sum())
    return out


# ---------------------------------------------------------------------------- the step
#: What the concepts step writes; locked when the step starts, before any fitting.
OUTPUTS = ("profiles", "concepts", "concept_model", "concept_pages")


def _store_codes(profiles, run: str, codes) -> None:
    n, m = codes.shape
    profiles.obsm[f"concepts_{run}"] = (codes.toarray().astype(np.float32)
                                        if n * m <= DENSE_LIMIT else codes.astype(np.float32))


def _write_outputs(tx, profiles, adata, pages, fit, *, run: str, method: str, split: dict,
                   description: str) -> None:
    from workbench.tools.concept_model import save_model

    tx.write_anndata("profiles", profiles)
    tx.write_anndata("concepts", adata, screen=False, description=description)
    save_model(tx.stage_path("concept_model", "file", "concept_model"), fit,
               concept_ids=list(adata.obs_names), method=method, run=run, split=split)
    tx.write_json("concept_pages", pages)


def run_concepts(study, *, method: str = "icfl", n_concepts: int | None = None,
                 sparsity: int = 8, atoms_per_round: int | None = None,
                 pursuit: str = "signed", whiten: bool | None = None, shrinkage: float = 0.1,
                 use_rep: str | None = None, labels: list[str] | None = None,
                 run: str | None = None, holdout: str = "replicate",
                 max_steps: int | None = None, batch_size: int = 1024, lr: float = 3e-3,
                 alpha: float = 0.05, device: str = "auto", seed: int = 0,
                 stability_seeds: int = STABILITY_SEEDS, progress: bool = True,
                 resume: bool = True) -> dict:
    """Learn, encode and annotate concepts of a Study's profiles; write them back.

    The step locks its outputs (:data:`OUTPUTS`) before it reads or fits anything, so a
    second concepts run on the same Study is refused at once. The samples are split
    (``holdout``: "replicate" by default, "dose", "plate" or "none";
    :mod:`workbench.tools.concept_eval`): the whitener and the dictionary are fitted on the
    training part only, every sample is encoded, and reconstruction, dead and dense
    fractions, selectivity and enrichment are measured on the held-out part
    (``concepts.uns["workbench"]["heldout"]``). Writes ``profiles`` (with
    ``obsm["concepts_<run>"]``: dense float32 codes, or CSR when the matrix would exceed
    :data:`DENSE_LIMIT` entries), ``concepts``, ``concept_model`` (whitener, dictionary,
    settings: :mod:`workbench.tools.concept_model`) and ``concept_pages``
    (:mod:`workbench.tools.concept_pages`) in one transaction, and returns the summary (also
    noted in the provenance). Training checkpoints go to ``<study>/.checkpoints/concepts/``
    and an interrupted run resumes from them.

    ``whiten=None`` (the default) whitens on the controls unless the representation was
    already whitened on them by an earlier step: ``X`` written by ``workbench embed`` or
    the normalisation of imported profiles holds TVN output (a control-PCA whitening), and
    whitening it a second time on the same few controls only adds estimation noise. The
    decision, and why, is recorded in the provenance (``params["whiten"]``,
    ``params["whitened_by"]``). ``True``/``False`` force it.

    ``stability_seeds`` more dictionaries are fitted on the same training samples with the
    same settings and seeds ``seed + 1, seed + 2, ...``; each concept's stability is the
    mean atom cosine of its Hungarian partner in those runs
    (:func:`~workbench.tools.concept_model.seed_stability`), written to
    ``concepts.obs["stability"]`` and every concept page (0 skips it; the seeds are
    recorded in ``uns["workbench"]["stability"]``).

    Parameters
    ----------
    study : Study
        The Study; it must hold ``profiles``.
    method : str
        ``"icfl"`` (default) or ``"topk"`` (the TopK SAE baseline).
    n_concepts : int, optional
        Number of concepts; ``None`` takes a quarter of the samples, between 2 and 256.
    sparsity : int
        Nonzeros per code.
    atoms_per_round : int, optional
        ICFL atoms per pursuit round; ``None`` takes ``min(5, sparsity)``.
    pursuit : str
        ICFL's pursuit, ``"signed"`` or ``"abs_refit"``.
    whiten : bool, optional
        ``None`` decides as described above; True or False forces it.
    shrinkage : float
        Ridge of the whitener, as a fraction of the mean control eigenvalue.
    use_rep : str, optional
        The representation: ``None`` or ``"X"``, or an ``obsm`` key of the profiles.
    labels : list of str, optional
        Extra ``obs`` columns to annotate, besides ``perturbation`` and those of
        :data:`DEFAULT_LABELS` that are present.
    run : str, optional
        Run name (letters, digits, - or _); ``None`` uses ``method``.
    holdout : str
        The held-out split: ``"replicate"``, ``"dose"``, ``"plate"`` or ``"none"``.
    max_steps : int, optional
        Optimiser steps; ``None`` uses :func:`default_steps`.
    batch_size : int
        Samples per step.
    lr : float
        Adam learning rate.
    alpha : float
        FDR level of the enrichment calls.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the split and the main dictionary.
    stability_seeds : int
        Extra dictionaries fitted for the stability score, 0 to 20.
    progress : bool
        Show a progress bar.
    resume : bool
        Resume from a matching training checkpoint; False deletes it first.

    Returns
    -------
    dict
        The summary: :func:`summarise`'s numbers, the training metrics, the held-out
        metrics (``heldout_*``) and the split.

    Raises
    ------
    ValidationError
        On an unknown method, pursuit or split, a bad run name, a label column not in
        ``obs``, a split that leaves too few training controls, or inputs
        :func:`check_inputs` refuses.
    """
    from workbench.tools.concept_eval import SPLITS, heldout_metrics, split_rows
    from workbench.tools.concept_stream import encode_chunked

    study.require("profiles", why="the concepts step learns from the profiles")
    run = run or method
    if not run.replace("_", "").replace("-", "").isalnum():
        raise ValidationError(f"run name {run!r} must be letters, digits, - or _.",
                              "give another --run name.")
    if method not in ("icfl", "topk", "topk_sae"):
        raise ValidationError(f"unknown concept method {method!r}.", "use 'icfl' or 'topk'.")
    if method == "icfl" and pursuit not in PURSUITS:
        raise ValidationError(f"unknown ICFL pursuit {pursuit!r}.",
                              f"use one of {', '.join(PURSUITS)} (--pursuit).")
    if holdout not in SPLITS:
        raise ValidationError(f"unknown held-out split {holdout!r}.",
                              f"use one of {', '.join(SPLITS)} (--holdout).")
    if int(stability_seeds) != stability_seeds or not 0 <= stability_seeds <= 20:
        raise ValidationError(f"stability_seeds must be a whole number from 0 to 20, got "
                              f"{stability_seeds!r}.",
                              "give --stability-seeds 0 (skip), 1 (default) or a few more.")
    params = {"method": method, "n_concepts": n_concepts, "sparsity": sparsity,
              "atoms_per_round": atoms_per_round,
              "pursuit": pursuit if method == "icfl" else "", "holdout": holdout,
              "shrinkage": shrinkage, "use_rep": use_rep or "X", "run": run,
              "max_steps": max_steps, "batch_size": batch_size, "lr": lr, "alpha": alpha,
              "stability_seeds": int(stability_seeds)}
    with study.step("concepts", params=params, seed=seed, inputs=["profiles"],
                    outputs=list(OUTPUTS)) as tx:
        profiles = study.read("profiles")
        obs = profiles.obs
        x, names = select_representation(profiles, use_rep)
        is_control = obs["is_control"].to_numpy(bool)
        whitened_by = control_whitened_by(profiles, use_rep)
        whiten_asked = "auto" if whiten is None else bool(whiten)
        whiten = bool(whitened_by is None if whiten is None else whiten)
        label_columns = ["perturbation"] + [c for c in DEFAULT_LABELS if c in obs.columns]
        for col in labels or []:
            if col not in obs.columns:
                raise ValidationError(
                    f"label column {col!r} is not in profiles.obs "
                    f"(columns: {', '.join(map(str, obs.columns[:20]))}).",
                    "name an existing obs column with --labels.")
            if col not in label_columns:
                label_columns.append(col)
        held = split_rows(obs, holdout, seed)
        train = ~held
        params.update({"whiten": whiten, "whiten_asked": whiten_asked,
                       "whitened_by": whitened_by or "", "labels": label_columns})
        tag = hashlib.sha256(json.dumps({**params, "seed": seed, "n": x.shape},
                                        sort_keys=True, default=str).encode()).hexdigest()[:12]
        ckpt = study.path / ".checkpoints" / "concepts" / f"concepts-{tag}.pt"
        if not resume and ckpt.exists():
            ckpt.unlink()
        where = "the training part of the profiles" if held.any() else "profiles"
        n_c = n_concepts if n_concepts is not None else int(min(256, max(2, x.shape[0] // 4)))
        if held.any() and (is_control & train).sum() < (2 if whiten else 1):
            raise ValidationError(
                f"the {holdout} split leaves {int((is_control & train).sum())} control(s) in "
                "the training part; the whitener is fitted on training controls.",
                "split another way (--holdout), or fit on all samples (--holdout none).")
        check_inputs(x[train], is_control[train], n_c, whiten=whiten, where=where)
        fit = learn_concepts(x[train], is_control[train], method=method, n_concepts=n_c,
                             sparsity=sparsity, atoms_per_round=atoms_per_round,
                             pursuit=pursuit, whiten=whiten, shrinkage=shrinkage,
                             feature_names=names, max_steps=max_steps, batch_size=batch_size,
                             lr=lr, device=device, seed=seed, checkpoint=ckpt,
                             progress=progress)
        # every sample, training whitener, chunk by chunk (no whitened copy of the screen)
        fit.codes, _ = encode_chunked(fit.model, fit.whitener, x,
                                      columns=np.flatnonzero(fit.keep))
        split = {"split": holdout, "n_train": int(train.sum()), "n_heldout": int(held.sum()),
                 "rows": np.flatnonzero(held).astype(np.int64)}
        if held.any():
            h = np.flatnonzero(held)
            xh = fit.whitener.transform(x[h][:, fit.keep])
            split["metrics"] = heldout_metrics(
                xh, fit.model.reconstruct(xh), fit.codes[h], obs.iloc[h],
                label_columns=label_columns, alpha=alpha)
        stability, stab = _stability(fit, seed, int(stability_seeds))
        adata, pages = concepts_anndata(fit, obs, is_control=is_control,
                                        control_label=study.control_label,
                                        label_columns=label_columns, run=run, method=method,
                                        params=params, alpha=alpha, stability=stability)
        adata.uns["workbench"]["heldout"] = split
        if stability is not None:
            adata.obs["stability"] = stability
            adata.uns["workbench"]["stability"] = stab
            pages["stability"] = stab
        _store_codes(profiles, run, fit.codes)
        summary = {**summarise(adata, label_columns, study.control_label), **fit.metrics,
                   **{f"heldout_{k}": v for k, v in split.get("metrics", {}).items()},
                   "holdout": holdout}
        _write_outputs(tx, profiles, adata, pages, fit, run=run, method=method,
                       split={k: v for k, v in split.items() if k != "rows"} | {
                           "rows": split["rows"].tolist()},
                       description=f"{method} concepts (run {run!r}): X atoms in "
                                   f"{'whitened' if whiten else 'input'} space, obs annotation")
        tx.note(**{k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    if ckpt.exists():
        ckpt.unlink()
    return summary


def _stability(fit: ConceptFit, seed: int, n_seeds: int):
    """Fit ``n_seeds`` more dictionaries like ``fit.model`` on ``fit.x``; score each concept.

    Returns ``(scores, record)``, or ``(None, {})`` when ``n_seeds`` is 0.
    """
    from workbench.tools.concept_model import seed_stability

    if n_seeds < 1:
        return None, {}
    seeds = [int(seed) + 1 + i for i in range(n_seeds)]
    params = {**fit.model.get_params(), "progress": False}
    others = []
    for s in seeds:
        other = type(fit.model)(**{**params, "seed": s}).fit(fit.x)
        others.append(other.components_)
    signed = getattr(fit.model, "selection", "signed") == "signed"
    scores = seed_stability(fit.model.components_, others, signed=signed)
    return scores, {"seeds": seeds, "signed": bool(signed),
                    "match": "Hungarian assignment on atom cosine, mean over the seeds",
                    "median": float(np.median(scores))}


def control_whitened_by(profiles, use_rep: str | None = None) -> str | None:
    """The step that already whitened the representation on controls, or None.

    Read from what the steps record: ``uns["workbench"]["embedding"]["normalization"]``
    (``workbench embed``) and ``uns["workbench"]["normalization"]["method"]`` (the
    normalisation of imported profiles). Both describe ``X`` only; ``obsm`` keys hold the
    raw features and are never whitened.

    Parameters
    ----------
    profiles : anndata.AnnData
        The ``profiles`` artefact.
    use_rep : str, optional
        The representation the concepts would be learned on (``None`` or ``"X"``, or an
        ``obsm`` key).

    Returns
    -------
    str or None
        A description of the step (``"embed (TVN ...)"``, ``"normalize (TVN ...)"``), or
        ``None`` when the representation was not whitened on controls.
    """
    if use_rep not in (None, "X"):
        return None
    wb = profiles.uns.get("workbench", {}) if hasattr(profiles, "uns") else {}
    wb = wb if isinstance(wb, dict) else {}
    norm = wb.get("normalization", {})
    if isinstance(norm, dict) and "TVN" in str(norm.get("method", "")):
        return f"normalize ({norm.get('method')})"
    emb = wb.get("embedding", {})
    if isinstance(emb, dict) and "TVN" in str(emb.get("normalization", "")):
        return f"embed ({emb.get('normalization')})"
    return None


def already_control_whitened(profiles) -> bool:
    """Whether ``X`` was already normalised by TVN (control PCA whitening) in a step.

    Parameters
    ----------
    profiles : anndata.AnnData
        The ``profiles`` artefact.

    Returns
    -------
    bool
        True when :func:`control_whitened_by` names a step.
    """
    return control_whitened_by(profiles) is not None
