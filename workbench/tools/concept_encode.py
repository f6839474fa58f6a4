"""Encode a Study's profiles with a concept model saved in another Study.

The concepts step (:mod:`workbench.tools.concepts`) fits a dictionary and saves it as the
``concept_model`` artefact (:mod:`workbench.tools.concept_model` reads and writes that
format). :func:`encode_study` applies such a saved model to the profiles of a second Study:
features aligned by name, the whitener fitted on the first Study's controls, and the model's
concept ids, so concept ``c007`` means the same direction in both Studies.
"""

from __future__ import annotations

import shutil

import numpy as np

from workbench.errors import ValidationError
from workbench.models.dictionary import dead_fraction
from workbench.tools.concept_model import align_features, load_model
from workbench.tools.concept_stream import CHUNK_ROWS, check_chunk_size, encode_chunked
from workbench.tools.concepts import (
    DEFAULT_LABELS,
    ConceptFit,
    _store_codes,
    concepts_anndata,
    select_representation,
    summarise,
)

__all__ = ["encode_study"]


def encode_study(study, model_study, *, run: str | None = None, use_rep: str | None = None,
                 labels: list[str] | None = None, alpha: float = 0.05,
                 device: str = "auto", scheduler=None,
                 chunk_size: int = CHUNK_ROWS) -> dict:
    """Encode ``study``'s profiles with the concept model saved in ``model_study``.

    Writes ``profiles.obsm["concepts_<run>"]`` (run: the model's run name unless given), a
    ``concepts`` artefact annotated on this Study's samples with the model's concept ids
    (``uns["workbench"]["source_model"]`` names where the model came from), its
    ``concept_pages`` and a copy of the model. Returns the summary.

    Parameters
    ----------
    study, model_study : Study
        The Study whose profiles are encoded, and the Study that holds the concept model.
    run : str, optional
        Run name; ``None`` uses the model's.
    use_rep : str, optional
        The representation: ``None`` or ``"X"``, or an ``obsm`` key of the profiles.
    labels : list of str, optional
        Extra ``obs`` columns to annotate.
    alpha : float
        FDR level of the enrichment calls.
    device : str
        Where the dictionary encodes ("auto", "cpu", "cuda"...).
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` scheduler address or ``Client``: the chunks are encoded on
        its workers (:func:`~workbench.tools.concept_stream.encode_chunked`); the codes
        equal the local run's.
    chunk_size : int
        Profiles whitened and encoded at a time (per task with ``scheduler``).

    Returns
    -------
    dict
        The summary noted in the provenance (R^2, dead fraction, selectivity counts...).
    """
    study.require("profiles", why="the profiles are what gets encoded")
    cm = load_model(model_study, device=device)
    run = run or str(cm.doc.get("run") or cm.doc.get("method") or "icfl")
    if not run.replace("_", "").replace("-", "").isalnum():
        raise ValidationError(f"run name {run!r} must be letters, digits, - or _.",
                              "give another --run name.")
    method = str(cm.doc.get("method", "icfl"))
    chunk_size = check_chunk_size(chunk_size)
    params = {"model_study": model_study.path.name, "model_study_id": model_study.id,
              "run": run, "use_rep": use_rep or "X", "alpha": alpha, "method": method,
              "chunk_size": int(chunk_size),
              "scheduler": scheduler if scheduler is None or isinstance(scheduler, str)
              else "a dask.distributed Client"}
    outputs = ["profiles", "concepts", "concept_model", "concept_pages"]
    with study.step("concepts_encode", params=params, inputs=["profiles"],
                    outputs=outputs) as tx:
        profiles = study.read("profiles")
        obs = profiles.obs
        x, names = select_representation(profiles, use_rep)
        x = align_features(x, names, cm.features, f"profiles of {study.path.name}")
        if not np.isfinite(x).all():
            raise ValidationError(f"profiles of {study.path.name} hold NaN/infinite values.",
                                  "impute or drop them before encoding.")
        codes, stats = encode_chunked(cm.model, cm.whitener, x, chunk_size=chunk_size,
                                      scheduler=scheduler)
        metrics = {"r2": float(stats["r2"]),
                   "dead_fraction": float(dead_fraction(codes)),
                   "mean_active_per_sample": float((codes != 0).sum(axis=1).mean()),
                   "n_chunks": int(stats["n_chunks"])}
        fit = ConceptFit(cm.model, cm.whitener, np.asarray(cm.features, dtype=object), codes,
                         None, metrics)
        label_columns = ["perturbation"] + [c for c in DEFAULT_LABELS if c in obs.columns]
        label_columns += [c for c in labels or [] if c in obs.columns and c not in label_columns]
        params["labels"] = label_columns
        adata, pages = concepts_anndata(
            fit, obs, is_control=obs["is_control"].to_numpy(bool),
            control_label=study.control_label, label_columns=label_columns, run=run,
            method=method, params={**cm.doc.get("params", {}), **params}, alpha=alpha,
            names=cm.concept_ids)
        adata.uns["workbench"]["source_model"] = {
            "study": model_study.path.name, "study_id": str(model_study.id),
            "run": str(cm.doc.get("run", "")), "format_version": int(cm.doc["version"])}
        _store_codes(profiles, run, codes)
        tx.write_anndata("profiles", profiles)
        tx.write_anndata("concepts", adata, screen=False,
                         description=f"concepts of {model_study.path.name}'s model "
                                     f"(run {run!r}) on these profiles")
        dst = tx.stage_path("concept_model", "file", "concept_model")
        shutil.copytree(model_study.artefact_path("concept_model"), dst)
        tx.write_json("concept_pages", pages)
        summary = {**summarise(adata, label_columns, study.control_label), **metrics}
        tx.note(**{k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
    return summary
