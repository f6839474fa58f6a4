"""The embedding step: images -> per-block features -> best block -> TVN -> perturbation map.

This is the EFAAR pipeline (Embed, Filter, Align, Aggregate, Relate; Celik et al. 2024)
with the block choice of ViTally Consistent (Kenyon-Dean et al. 2024):

1. **Embed.** A ViT masked autoencoder (:mod:`workbench.models.vit_mae`) reads the Study's
   chunked image store batch by batch and returns, in one forward pass, every block's mean
   patch token and class token. On a ``dask.distributed`` cluster (``scheduler=`` an
   address or a ``Client``) each worker embeds whole chunks of the store, which it reads
   itself, with the same code and batch boundaries as the local run.
2. **Choose the block.** A linear probe per block (:mod:`workbench.models.probe`), folds
   grouped by batch/plate (by ``field_id`` when that is all there is).
3. **Align.** TVN fitted on the controls (:mod:`workbench.tools.normalize`) gives ``X``.
4. **Aggregate and relate.** One profile per perturbation and their cosine similarities,
   written as ``"perturbations"``; :mod:`workbench.tools.map_benchmarks` scores the map.

Precomputed profiles (a ``"profiles"`` artefact with features in ``X`` and no images, e.g. a
CellProfiler table) enter at step 3 through :func:`normalize_study`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError
from workbench.data.uns import clean_uns  # noqa: F401  (used by the steps here)
from workbench.tools.normalize import normalized  # noqa: F401  (used by the steps here)
from workbench.tools.block_choice import (  # noqa: F401  (public names of this step)
    choose_block,
    probe_groups,
    relationship_labels,
)

ENCODER = "mae"
#: The demo's 2-D layout: PCA, so that building the demo does not wait for UMAP's
#: just-in-time compilation; ``workbench embed`` computes UMAP by default (``--layout``).
DEMO_LAYOUT = "pca"
#: Training settings of :func:`demo_step` per demo size (quick: well under a minute on CPU).
DEMO_TRAINING = {"tiny": dict(steps=40, batch_size=32), "quick": dict(steps=100, batch_size=64),
                 "realistic": dict(steps=200, batch_size=64)}


# ---------------------------------------------------------------------- encoder
def train_encoder(crops, *, size: str = "tiny", steps: int = 200, batch_size: int = 64,
                  device: str = "auto", seed: int = 0, checkpoint_dir=None,
                  progress: bool = True, **kw):
    """Pretrain a :class:`~workbench.models.vit_mae.MAEEncoder` on ``crops`` (n, C, H, W).

    Parameters
    ----------
    crops : array_like
        ``(n, C, H, W)`` crops (an array or a Zarr array).
    size : str
        The ViT size preset (:func:`~workbench.models.vit_arch.make_config`).
    steps : int
        Optimiser steps.
    batch_size : int
        Crops per step.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the initialisation, masks and batches.
    checkpoint_dir : str or pathlib.Path, optional
        Where to keep checkpoints, and resume from them.
    progress : bool
        Show a progress bar.
    **kw
        Further options of :class:`~workbench.models.vit_mae.MAEEncoder`.

    Returns
    -------
    MAEEncoder
        The fitted encoder.
    """
    from workbench.models.vit_mae import MAEEncoder

    return MAEEncoder(size, steps=steps, batch_size=batch_size, device=device, seed=seed,
                      checkpoint_dir=checkpoint_dir, progress=progress, **kw).fit(crops)


class _WorkerEncoder:
    """The encoder a dask worker rebuilt for the current embedding run, kept for that run.

    A worker embeds many chunks of one run; rebuilding the model from the weights for each
    chunk would dominate. So each worker holds at most one encoder, keyed by the run's
    token: a new run replaces it, and :func:`clear_worker_cache` drops it. Local runs never
    use it (they embed with the caller's encoder directly).
    """

    token: str | None = None
    encoder = None

    @classmethod
    def get(cls, token: str, config: dict, weights, bf16: bool, device: str):
        if cls.token != token:
            import torch

            from workbench.models.vit_mae import MAEEncoder, ViTConfig

            cls.token, cls.encoder = None, None
            state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
            cls.encoder = MAEEncoder.load(state, device=device, bf16=bf16,
                                          config=ViTConfig(**config))
            cls.token = token
        return cls.encoder


def clear_worker_cache() -> None:
    """Drop the encoder a worker process keeps for the current run (frees its memory)."""
    _WorkerEncoder.token, _WorkerEncoder.encoder = None, None


def _embed_chunks(enc, store_path: str, start: int, stop: int, batch_size: int,
                  max_block: int | None) -> dict[str, np.ndarray]:
    """Embed crops ``start:stop`` of an image store with ``enc``, batch by batch."""
    import zarr

    crops = zarr.open_group(store_path, mode="r")["crops"]
    out = {"mean": [], "cls": []}
    for s in range(start, stop, batch_size):     # same batch boundaries everywhere
        f = enc.extract(crops[s: min(s + batch_size, stop)], batch_size=batch_size,
                        max_block=max_block)
        out["mean"].append(f["mean"])
        out["cls"].append(f["cls"])
    return {k: np.concatenate(v) for k, v in out.items()}


def _embed_range(store_path: str, start: int, stop: int, config: dict, weights, token: str,
                 batch_size: int, max_block: int | None, bf16: bool, device: str):
    """Embed crops ``start:stop`` of an image store on a dask worker."""
    enc = _WorkerEncoder.get(token, config, weights, bf16, device)
    return _embed_chunks(enc, store_path, start, stop, batch_size, max_block)


def extract_features(images, encoder, *, batch_size: int = 256, scheduler=None,
                     max_block: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Per-block features of every crop of an image store: ``{"mean", "cls"}`` (n, L, D).

    Crops stream chunk by chunk; with ``scheduler`` the chunks are spread over the cluster's
    workers, which need to see the store's path (shared file system).

    Parameters
    ----------
    images : ImageStore
        An :class:`~workbench.data.images.ImageStore`.
    encoder : MAEEncoder
        A fitted encoder.
    batch_size : int
        Crops per forward pass (the same batch boundaries locally and on a cluster).
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` address or Client; ``None``: embed here.
    max_block : int, optional
        Run only the first ``max_block`` blocks (default: all).
    progress : bool
        Show a progress bar (local runs).

    Returns
    -------
    dict of numpy.ndarray
        ``mean`` (mean patch token) and ``cls`` (class token), each ``(n, L, D)`` for ``L``
        blocks.
    """
    import uuid
    from dataclasses import asdict

    from tqdm.auto import tqdm

    n = len(images)
    chunk = int(images.group["crops"].chunks[0])
    step = max(batch_size, chunk) // batch_size * batch_size   # whole batches per task
    ranges = [(s, min(s + step, n)) for s in range(0, n, step)]
    path = str(images.path)
    if scheduler is None:
        parts = [_embed_chunks(encoder, path, s, e, batch_size, max_block)
                 for s, e in tqdm(ranges, desc="embedding", disable=not progress, leave=False)]
    else:
        from distributed import Client

        cfg = asdict(encoder.config_)
        weights = encoder.state_arrays()
        token = uuid.uuid4().hex
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            w = client.scatter(weights, broadcast=True)
            futures = [client.submit(_embed_range, path, s, e, cfg, w, token, batch_size,
                                     max_block, encoder.bf16, "cpu" if encoder.device == "cpu"
                                     else encoder.device, pure=False) for s, e in ranges]
            parts = client.gather(futures)
        finally:
            if not isinstance(scheduler, Client):
                client.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in ("mean", "cls")}


# ---------------------------------------------------------------------- maps
def perturbation_map(X, obs: pd.DataFrame, control_label: str, *, label_key: str | None = None,
                     how: str = "mean", dose_key: str | None = None,
                     arm_correction: tuple[dict, set] | None = None):
    """AnnData of one profile per perturbation (controls dropped) with ``obsp["cosine"]``.

    Parameters
    ----------
    X : array_like
        ``(n, d)`` profiles (crops, cells or wells).
    obs : pandas.DataFrame
        Their metadata, with ``perturbation``.
    control_label : str
        The perturbation name of the controls, left out of the map.
    label_key : str, optional
        An obs column kept on the map (e.g. ``moa``).
    how : str
        ``"mean"`` or ``"median"`` over the rows of each perturbation.
    dose_key : str, optional
        An obs column: one row per perturbation and dose, named
        ``"<perturbation>@<dose>"``.
    arm_correction : tuple of (dict, set), optional
        ``(arms, unexpressed)``: the chromosome-arm correction of CRISPR maps
        (:func:`~workbench.tools.normalize.arm_centering`) applied to the gene profiles.

    Returns
    -------
    anndata.AnnData
        One row per perturbation: obs ``n_profiles`` (and ``n_wells``, ``perturbation_type``,
        ``genes``, the label and dose columns where present); ``obsp["cosine"]``; and under
        ``uns["workbench"]["arm_correction"]`` the arms centred, when asked.
    """
    import anndata as ad

    from workbench.tools.normalize import aggregate, cosine_matrix

    pert = obs["perturbation"].astype(str).to_numpy()
    key = pert
    if dose_key:
        if dose_key not in obs.columns:
            raise ValidationError(f"dose key {dose_key!r} is not a column of the screen table.",
                                  f"choose one of {list(obs.columns)[:12]}.")
        key = np.where(pert == str(control_label), pert,
                       pert + "@" + obs[dose_key].astype(str).to_numpy())
    names, P, counts = aggregate(X, key, how=how, drop=[control_label])
    if len(names) < 1:
        raise ValidationError("no non-control perturbation: there is no map.",
                              "check the perturbation column and the control label.")
    first = obs.assign(_p=key).drop_duplicates("_p").set_index("_p")
    pobs = pd.DataFrame(index=pd.Index(names, name="perturbation"))
    pobs["n_profiles"] = counts.astype(int)
    for col in ("perturbation_type", "genes", label_key, dose_key):
        if col and col in first.columns:
            pobs[col] = first.loc[names, col].astype(str).to_numpy()
    if dose_key:
        pobs["perturbation_name"] = first.loc[names, "perturbation"].astype(str).to_numpy()
    if "well" in obs.columns:
        pobs["n_wells"] = obs.groupby(key, observed=True)["well"] \
            .nunique().reindex(names).to_numpy().astype(int)
    arms_used = None
    if arm_correction is not None:
        from workbench.tools.normalize import arm_centering

        P, arms_used = arm_centering(P, names, *arm_correction)
    adata = ad.AnnData(X=P, obs=pobs)
    adata.obsp["cosine"] = cosine_matrix(P)
    if arms_used is not None:
        adata.uns["workbench"] = {"arm_correction": {
            "arms": sorted(arms_used), "n_unexpressed": [arms_used[a] for a in sorted(arms_used)]}}
    return adata


# ---------------------------------------------------------------------- steps on a Study
def embed_study(study, *, encoder=None, size: str = "tiny", train_steps: int = 200,
                train_batch_size: int = 64, label: str = "perturbation", block: int | None = None,
                scheduler=None, batch_size: int = 256, device: str = "auto", seed: int = 0,
                tvn_kw: dict | None = None, label_key: str | None = None,
                checkpoint_dir=None, progress: bool = True, channel_adapt: str | None = None,
                partial_weights: bool = False, input_norm: str = "auto",
                layout: str = "pca", level: str = "crop", aggregate: str = "mean",
                dose_key: str | None = None, qc: dict | None = None,
                arm_correction: tuple[dict, set] | None = None) -> dict:
    """Embed the Study's images and write ``profiles`` and ``perturbations``.

    Parameters
    ----------
    study : Study
        A Study with ``images``.
    encoder : MAEEncoder, str or pathlib.Path, optional
        An :class:`~workbench.models.vit_mae.MAEEncoder`, a weights file (safetensors,
        timm / MAE / HuggingFace checkpoints) or ``None`` to pretrain a new ``size`` encoder
        on the Study's crops for ``train_steps`` steps (resumable from ``checkpoint_dir``).
    size : str
        ViT size preset of a new encoder.
    train_steps : int
        Pretraining steps of a new encoder.
    train_batch_size : int
        Crops per pretraining step.
    label : str
        Probe task for the block choice: ``"perturbation"`` (identity), ``"relationship"``
        (the Study's known groups, :func:`relationship_labels`) or an ``obs`` column.
    block : int, optional
        The block to use (1-based); skips the choice.
    scheduler : str or distributed.Client, optional
        dask.distributed scheduler address or Client: embed on the cluster.
    batch_size : int
        Crops per forward pass.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the pretraining, the probe and the layout.
    tvn_kw : dict, optional
        TVN settings (:class:`~workbench.tools.normalize.TVN`; ``tvn=False`` keeps raw
        features).
    label_key : str, optional
        An ``obs`` column kept on the map (e.g. ``moa``).
    checkpoint_dir : str or pathlib.Path, optional
        Checkpoints of the pretraining (default: ``.checkpoints/embed`` in the Study).
    progress : bool
        Show progress bars.
    channel_adapt : str, optional
        For a weights file: how 3-channel weights meet the crops' channels (``"repeat"``,
        ``"average"``, ``"tokens"``); recorded in the provenance with the load report.
    partial_weights : bool
        For a weights file: allow keys that do not fit to be skipped.
    input_norm : str
        For outside weights: ``"auto"`` fits a per-channel mean/std on the crops when the
        weights carry no normalisation; ``"mean_std"``, ``"percentile"`` or ``"self"`` force
        one; ``"none"`` keeps the weights' own (or none). Recorded in the provenance.
    layout : str
        The 2-D layout stored in ``obsm`` for the views
        (:func:`~workbench.tools.layout.layout_2d`): ``"auto"`` (UMAP, PCA when umap-learn is
        absent or the points are few), ``"umap"``, ``"pca"``. The function defaults to
        ``"pca"`` (UMAP's first call compiles for tens of seconds); ``workbench embed``
        defaults to ``"auto"``.
    level : str
        The unit of ``profiles``, on which the probe and TVN run: ``"crop"``, ``"cell"``
        (needs ``cell_id``) or ``"well"`` (``plate`` + ``well``; EFAAR's unit for plates).
    aggregate : str
        ``"mean"`` or ``"median"``, to the level and from it to perturbations.
    dose_key : str, optional
        An obs column that splits a perturbation of the map by dose.
    qc : dict, optional
        Filters crops first, e.g. ``{"exclude_column": "no_cell", "max_intensity_z": 5}``
        (:func:`~workbench.tools.normalize.qc_mask`).
    arm_correction : tuple of (dict, set), optional
        ``(arms, unexpressed)``: the chromosome-arm correction of a CRISPR gene map
        (:func:`~workbench.tools.normalize.arm_centering`), applied to the map and
        recorded; ``workbench embed --arm-table`` reads it from a CSV.

    Returns
    -------
    dict
        ``block`` (the block used), ``probe`` (the block choice, ``None`` when ``block`` was
        given), ``encoder``, ``seconds_train`` and ``seconds_embed``.
    """
    from workbench.models.vit_mae import MAEEncoder

    study.require("images", why="the embedding step reads the crops")
    images = study.read("images")
    t0 = time.perf_counter()
    trained = False
    if encoder is None:
        ckpt = checkpoint_dir or (study.path / ".checkpoints" / "embed")
        encoder = train_encoder(images.crops, size=size, steps=train_steps,
                                batch_size=train_batch_size, device=device, seed=seed,
                                checkpoint_dir=ckpt, progress=progress)
        trained = True
    elif not isinstance(encoder, MAEEncoder):
        encoder = MAEEncoder.load(encoder, device=device, img_size=images.shape[2],
                                  in_chans=images.shape[1], channel_adapt=channel_adapt,
                                  partial=partial_weights)
    norm_rec = _input_norm(encoder, images.crops, input_norm, trained)
    t_train = time.perf_counter() - t0
    feats = extract_features(images, encoder, batch_size=batch_size, scheduler=scheduler,
                             progress=progress)
    t_embed = time.perf_counter() - t0 - t_train
    obs = images.obs.copy()
    feats, obs, agg_info = _to_level(feats, obs, images, level, aggregate, qc, batch_size)
    probe = None
    if block is None:
        task = relationship_labels(study) if label == "relationship" else label
        probe = choose_block(feats["mean"], obs, label=task, seed=seed, tvn_kw=tvn_kw)
        block = probe["best_block"]
    adata = profiles_from_features(feats, obs, block, study.control_label, tvn_kw=tvn_kw)
    info = {"encoder": ENCODER, "block": int(block), "n_blocks": int(feats["mean"].shape[1]),
            "embed_dim": int(feats["mean"].shape[2]), "source": f"X_{ENCODER}_b{block}",
            "normalization": _normalization_label(tvn_kw), "tvn": dict(tvn_kw or {}),
            "config": _cfg_dict(encoder), "trained_steps": int(getattr(encoder, "n_steps_", 0)),
            "probe": probe or {"skipped": f"block {int(block)} given"}, "input_norm": norm_rec,
            "weights_load": _load_summary(encoder), "aggregation": agg_info}
    info["layout"] = add_layout(adata, layout, seed)
    adata.uns["workbench"] = clean_uns({"embedding": info})
    pert = perturbation_map(adata.X, adata.obs, study.control_label, label_key=label_key,
                            how=aggregate, dose_key=dose_key, arm_correction=arm_correction)
    pert_layout = add_layout(pert, layout, seed)
    pert.uns["workbench"] = clean_uns({**pert.uns.get("workbench", {}),
                                       "source": info["source"], "normalization": "TVN",
                                       "control_label": study.control_label,
                                       "label_key": label_key or "", "layout": pert_layout})
    params = {"encoder": "trained" if trained else "given", "size": size,
              "train_steps": train_steps, "label": label, "block": int(block),
              "distributed": scheduler is not None, "batch_size": batch_size, "tvn": tvn_kw or {},
              "channel_adapt": channel_adapt or "none", "partial_weights": bool(partial_weights),
              "input_norm": norm_rec.get("method", "none"),
              "weights_load": _load_summary(encoder), "layout": layout, "level": level,
              "aggregate": aggregate, "dose_key": dose_key or "", "qc": qc or {},
              "arm_correction": _arm_param(pert)}
    with study.step("embed", params=params, seed=seed, inputs=["images"]) as tx:
        tx.write_anndata("profiles", adata, description=f"{ENCODER} per-block features; X = "
                         f"TVN of block {block}")
        tx.write_anndata("perturbations", pert, screen=False,
                         description="mean TVN profile per perturbation, obsp['cosine']")
        weights = tx.stage_path("encoder", "file", "encoder.safetensors")
        encoder.save(weights)
        tx.note(best_block=int(block), seconds_train=round(t_train, 2),
                seconds_embed=round(t_embed, 2), n_crops=int(len(obs)),
                probe_curve=(probe or {}).get("balanced_accuracy"))
    return {"block": int(block), "probe": probe, "encoder": encoder,
            "seconds_train": t_train, "seconds_embed": t_embed}


def _to_level(feats, obs, images, level: str, how: str, qc: dict | None, batch_size: int):
    """QC-filter the crops and aggregate their block features to ``level``."""
    from workbench.tools.normalize import aggregate_obs, aggregate_rows, qc_mask

    qc = dict(qc or {})
    intensity = None
    if qc.get("max_intensity_z") is not None:
        crops = images.group["crops"]
        intensity = np.concatenate([np.asarray(crops[s: s + batch_size], np.float64)
                                    .mean((1, 2, 3)) for s in range(0, len(obs), batch_size)])
    keep, report = qc_mask(obs, intensity, max_intensity_z=qc.get("max_intensity_z"),
                           exclude_column=qc.get("exclude_column"))
    if level == "perturbation":
        raise ValidationError("profiles are crops, cells or wells; the map aggregates them to "
                              "perturbations.", "use level='well' (or 'cell', 'crop').")
    if level == "crop" and keep.all():
        return feats, obs, {"level": "crop", "how": "none", "qc": report}
    codes, gobs = aggregate_obs(obs, level, keep=keep)
    out = {k: aggregate_rows(v, codes, len(gobs), how) for k, v in feats.items()}
    return out, gobs, {"level": level, "how": how if level != "crop" else "none",
                       "n_groups": int(len(gobs)), "qc": report}


def add_layout(adata, method: str, seed: int) -> dict:
    """Compute the 2-D layout of ``adata.X`` into ``obsm`` (``X_umap`` or ``X_pca``).

    Parameters
    ----------
    adata : anndata.AnnData
        Written in place.
    method : str
        ``"auto"``, ``"umap"`` or ``"pca"`` (:func:`~workbench.tools.layout.layout_2d`).
    seed : int
        UMAP's random state.

    Returns
    -------
    dict
        The layout's info (method, key, note).
    """
    from workbench.tools.layout import layout_2d

    xy, info = layout_2d(adata.X, method=method, seed=seed)
    adata.obsm[info["key"]] = xy
    return info


def _input_norm(encoder, crops, how: str, trained: bool) -> dict:
    """Set (or keep) the encoder's input normalisation and say what it is."""
    if trained:
        return {"method": "mean_std", "source": "fitted while pretraining"}
    if how == "none" or (how == "auto" and encoder.has_input_norm()):
        return {"method": encoder.config_.input_norm if encoder.has_input_norm() else "none",
                "source": "the weights" if encoder.has_input_norm() else "none"}
    rec = encoder.fit_input_norm(crops, "mean_std" if how == "auto" else how)
    return {**rec, "source": "fitted on this Study's crops"}


def _load_summary(encoder) -> dict:
    """The load report of outside weights, short enough for provenance."""
    rep = getattr(encoder, "load_report_", None)
    if not rep:
        return {"weights": "trained or given in memory"}
    out = {k: rep[k] for k in ("loaded", "partial", "channel_adapt", "input_norm",
                               "decoder_loaded")}
    for k in ("missing", "unknown", "shape_mismatch", "ignored"):
        out[k] = list(rep[k])[:20]
        out[f"n_{k}"] = len(rep[k])
    return out


def _normalization_label(tvn_kw: dict | None) -> str:
    """What ``X`` holds, as later steps read it (the concepts step whitens only raw input)."""
    return "TVN on controls" if (tvn_kw or {}).get("tvn", True) else "none (raw features)"


def _cfg_dict(encoder) -> dict:
    from dataclasses import asdict

    return asdict(encoder.config_)


def profiles_from_features(feats: dict, obs: pd.DataFrame, block: int, control_label: str,
                           *, tvn_kw: dict | None = None):
    """AnnData ``profiles``: every block in ``obsm``, ``X`` = TVN of the chosen block.

    Parameters
    ----------
    feats : dict of numpy.ndarray
        ``mean`` and ``cls`` features, ``(n, L, D)``.
    obs : pandas.DataFrame
        The samples' metadata (coerced to the screen contract).
    block : int
        The block of ``X`` (1-based).
    control_label : str
        The controls' perturbation name.
    tvn_kw : dict, optional
        TVN settings.

    Returns
    -------
    anndata.AnnData
        ``X`` plus ``obsm["X_mae_b<k>"]`` and ``obsm["X_mae_cls_b<k>"]`` for every block.
    """
    import anndata as ad

    from workbench.data.schema import coerce_screen_obs

    obs = coerce_screen_obs(obs, control_label)
    ctrl = obs["is_control"].to_numpy(bool)
    batch = obs["batch"].astype(str).to_numpy()
    X = normalized(feats["mean"][:, block - 1], ctrl, batch, **(tvn_kw or {}))
    adata = ad.AnnData(X=X, obs=obs)
    for b in range(feats["mean"].shape[1]):
        adata.obsm[f"X_{ENCODER}_b{b + 1}"] = feats["mean"][:, b].astype(np.float32)
        adata.obsm[f"X_{ENCODER}_cls_b{b + 1}"] = feats["cls"][:, b].astype(np.float32)
    return adata


def _arm_param(pert) -> dict | str:
    """What the arm correction did to the map, as the step records it."""
    rec = pert.uns.get("workbench", {}).get("arm_correction")
    return dict(rec) if rec else "none"


def normalize_study(study, *, source: str | None = None, label_key: str | None = None,
                    tvn_kw: dict | None = None, seed: int = 0, layout: str = "pca",
                    aggregate: str = "mean", dose_key: str | None = None,
                    arm_correction: tuple[dict, set] | None = None) -> dict:
    """TVN + aggregation for profiles that are already features (no images needed).

    Parameters
    ----------
    study : Study
        A Study with ``profiles``.
    source : str, optional
        An ``obsm`` key of ``profiles`` (e.g. ``X_mae_b3``); by default the untouched input
        features: ``obsm["X_features"]`` if present, else ``X`` (which is then kept as
        ``obsm["X_features"]``).
    label_key : str, optional
        An ``obs`` column kept on the map for retrieval mAP (e.g. ``moa``).
    tvn_kw : dict, optional
        TVN settings (``batch_center``, ``coral``, ``reg``; ``tvn=False`` keeps raw features).
    seed : int
        Seed of the layout.
    layout : str
        The 2-D layout stored for the views ("pca", "umap", "auto").
    aggregate, dose_key : str
        How profiles are aggregated to the map ("mean" or "median"), and an ``obs`` column
        that splits a perturbation by dose.
    arm_correction : tuple of (dict, set), optional
        ``(arms, unexpressed)`` for the chromosome-arm correction of a CRISPR gene map
        (:func:`~workbench.tools.normalize.arm_centering`).

    Returns
    -------
    dict
        ``{"source", "n_perturbations", "arm_correction"}``; ``X`` and the
        ``perturbations`` map are written to the Study.
    """
    study.require("profiles", why="normalisation reads the per-sample profiles")
    prof = study.read("profiles")
    if source is None:
        source = "X_features"
        if "X_features" not in prof.obsm:
            prof.obsm["X_features"] = np.asarray(prof.X, dtype=np.float32)
    if source not in prof.obsm:
        raise MissingArtefactError(f"profiles has no obsm[{source!r}].",
                                   f"use one of {sorted(prof.obsm.keys())}.")
    obs = prof.obs
    ctrl = obs["is_control"].to_numpy(bool)
    batch = obs["batch"].astype(str).to_numpy()
    X = normalized(prof.obsm[source], ctrl, batch, **(tvn_kw or {}))
    import anndata as ad

    out = ad.AnnData(X=X, obs=obs, obsm=dict(prof.obsm), uns=dict(prof.uns))
    wb = dict(out.uns.get("workbench", {}))
    wb["normalization"] = clean_uns({"source": source, "method": _normalization_label(tvn_kw),
                                     "tvn": tvn_kw or {}})
    for key in ("X_umap", "X_pca"):   # a layout of the previous X no longer fits
        out.obsm.pop(key, None)
    wb["layout"] = clean_uns(add_layout(out, layout, seed))
    out.uns["workbench"] = wb
    pert = perturbation_map(X, obs, study.control_label, label_key=label_key, how=aggregate,
                            dose_key=dose_key, arm_correction=arm_correction)
    pert.uns["workbench"] = clean_uns({**pert.uns.get("workbench", {}),
                                       "source": source, "normalization": "TVN",
                                       "control_label": study.control_label,
                                       "label_key": label_key or "",
                                       "layout": add_layout(pert, layout, seed)})
    arm = _arm_param(pert)
    with study.step("normalize", params={"source": source, "tvn": tvn_kw or {},
                                         "label_key": label_key, "layout": layout,
                                         "aggregate": aggregate, "dose_key": dose_key or "",
                                         "arm_correction": arm}, seed=seed,
                    inputs=["profiles"]) as tx:
        tx.write_anndata("profiles", out)
        tx.write_anndata("perturbations", pert, screen=False)
    return {"source": source, "n_perturbations": int(pert.n_obs), "arm_correction": arm}


# ---------------------------------------------------------------------- demo
def no_tvn_comparison(study, seed: int = 0) -> dict:
    """The benchmarks of the same block without TVN (raw features), beside the TVN ones.

    Parameters
    ----------
    study : Study
        A Study the embed step has run on.
    seed : int
        Seed of the benchmarks' permutations.

    Returns
    -------
    dict
        The :func:`~workbench.tools.map_benchmarks.summary` of the raw-feature map.
    """
    from workbench.tools.map_benchmarks import _groups_from_truth, map_benchmarks, summary

    prof = study.read("profiles")
    info = prof.uns["workbench"]["embedding"]
    raw = prof.copy()
    raw.uns.pop("workbench", None)   # raw features: there is no TVN fit to hold controls out of
    raw.X = np.asarray(prof.obsm[str(info["source"])], dtype=np.float32)
    pert = perturbation_map(raw.X, raw.obs, study.control_label)
    groups = _groups_from_truth(study.read("ground_truth")) if study.has("ground_truth") else None
    return summary(map_benchmarks(pert, raw, study.control_label, groups=groups, seed=seed,
                                  n_perm=200))


def demo_step(study, size: str = "quick", seed: int = 0) -> None:
    """Embedding view of the demo: train a tiny MAE, embed, probe, TVN, map, benchmarks.

    ``size`` follows the demo Study ("tiny", "quick" < ~40 s on CPU, "realistic"). The
    benchmarks, with the no-TVN comparison, land in ``perturbations.uns["workbench"]``.

    Parameters
    ----------
    study : Study
        A demo Study with ``images``.
    size : str
        The demo size, which sets the training steps.
    seed : int
        Seed of the training, the embedding and the benchmarks.
    """
    from workbench.tools.map_benchmarks import run_benchmarks

    train = DEMO_TRAINING.get(size, DEMO_TRAINING["quick"])
    embed_study(study, size="tiny", train_steps=train["steps"],
                train_batch_size=train["batch_size"], seed=seed, progress=False,
                layout=DEMO_LAYOUT)
    res = run_benchmarks(study, seed=seed, n_perm=200, write=False)
    res["without_tvn"] = no_tvn_comparison(study, seed=seed)
    pert = study.read("perturbations")
    pert.uns.setdefault("workbench", {})["benchmarks"] = clean_uns(res)
    from workbench.tools.map_benchmarks import summary

    with study.step("benchmark", params={"n_perm": 200, "demo": size}, seed=seed,
                    inputs=["perturbations", "profiles"]) as tx:
        tx.write_anndata("perturbations", pert, screen=False)
        tx.note(**summary(res), **{f"without_tvn_{k}": v for k, v in res["without_tvn"].items()})


def read_encoder_weights(study) -> Path:
    """Path of the encoder weights the embed step saved (``encoder.safetensors``).

    Parameters
    ----------
    study : Study
        A Study the embed step has run on.

    Returns
    -------
    pathlib.Path
        The weights file.
    """
    return study.artefact_path("encoder")
