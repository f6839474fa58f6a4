"""Which crops to show for a perturbation, a pair or a concept, and how to lay them out.

This module is the Qt-free half of the napari plugin: it turns a choice ("perturbation
KRAS", "pair A+B", "concept 7") into *conditions* (a title and the crops that belong to it),
reads those crops from the Study's image store and assembles them into one mosaic per
channel, with the conditions side by side. One image layer per channel, rather than one per
condition and channel, is deliberate: a single contrast slider per channel then moves every
condition at once, so what the eye compares stays comparable. The contrast limits come from
the control crops (low and high percentiles per channel), the way a microscopist sets the
display range on untreated wells before looking at the treated ones.

Everything here returns napari *layer data tuples* ``(data, kwargs, layer_type)`` and plain
numpy arrays, so it can be tested without a viewer.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import UnknownGeneError, ValidationError

#: Key under which every layer made by the plugin keeps its facts in ``layer.metadata``.
META_KEY = "workbench"
#: Pixels of background between crops, and between condition blocks (times 3).
GAP = 2


@dataclass
class Condition:
    """One block of the comparison grid: a title and the image-store rows it shows.

    Parameters
    ----------
    title : str
        The block's title (``"control"``, a perturbation, a quantile).
    positions : numpy.ndarray
        Row positions in the image store of the crops it shows.
    note : str
        A short note shown after the title (for example how many crops the condition has).
    extra : dict
        Further per-block data (a concept's activations).
    """

    title: str
    positions: np.ndarray
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- obs helpers
def _suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def gene_set(label: Any) -> frozenset[str]:
    """Genes targeted by a perturbation label: ``"A+B"`` -> {A, B}; ``"A"`` -> {A}.

    Parameters
    ----------
    label : object
        A perturbation label (converted to a string).

    Returns
    -------
    frozenset of str
        The genes, stripped; empty parts dropped.
    """
    parts = [p.strip() for p in str(label).split("+")]
    return frozenset(p for p in parts if p)


def _targets(obs: pd.DataFrame) -> pd.Series:
    """Per crop, the set of genes perturbed (from ``genes`` when present, else
    ``perturbation``); controls get the empty set."""
    pert = obs["perturbation"].astype(str).tolist()
    genes = obs["genes"].astype(object).tolist() if "genes" in obs.columns else [None] * len(obs)
    ctrl = control_mask(obs)
    sets = [frozenset() if c else gene_set(g if isinstance(g, str) and g else p)
            for p, g, c in zip(pert, genes, ctrl)]
    return pd.Series(sets, index=obs.index, dtype=object)


def control_mask(obs: pd.DataFrame) -> np.ndarray:
    """Boolean mask of control crops: the screen table's ``is_control`` column.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.

    Returns
    -------
    numpy.ndarray of bool
        True for control crops.

    Raises
    ------
    ValidationError
        When the table has no ``is_control`` column.
    """
    if "is_control" not in obs.columns:
        raise ValidationError(
            "the crops' table has no 'is_control' column, so controls cannot be shown.",
            "import the images with a plate map that names the control "
            "(`workbench import images FOLDER --out STUDY`).",
        )
    return obs["is_control"].to_numpy(bool)


def perturbation_names(obs: pd.DataFrame) -> list[str]:
    """Perturbations in the store, controls excluded, singles before doubles.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.

    Returns
    -------
    list of str
        The names, sorted by gene count then name.
    """
    names = obs.loc[~control_mask(obs), "perturbation"].astype(str).unique().tolist()
    return sorted(names, key=lambda n: (len(gene_set(n)), n))


def pair_names(obs: pd.DataFrame) -> list[str]:
    """Double perturbations ``"A+B"`` whose singles A and B are also in the store.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.

    Returns
    -------
    list of str
        The pairs, genes sorted within each.
    """
    sets = set(_targets(obs))
    out = []
    for s in sorted(sets, key=lambda s: sorted(s)):
        if len(s) == 2 and all(frozenset([g]) in sets for g in s):
            out.append("+".join(sorted(s)))
    return out


def choose(positions: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` of ``positions``, drawn reproducibly, returned sorted.

    Parameters
    ----------
    positions : numpy.ndarray
        Candidate positions.
    n : int
        Most positions to keep.
    seed : int
        Seed of the draw.

    Returns
    -------
    numpy.ndarray
        The kept positions, sorted (all of them when there are at most ``n``).
    """
    positions = np.asarray(positions, dtype=int)
    if len(positions) > n:
        positions = np.random.default_rng(seed).choice(positions, size=n, replace=False)
    return np.sort(positions)


# ---------------------------------------------------------------------- conditions
def perturbation_conditions(obs: pd.DataFrame, name: str, n: int = 9,
                            seed: int = 0) -> list[Condition]:
    """Controls beside the crops of perturbation ``name``.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.
    name : str
        The perturbation (a double may be spelled in either gene order).
    n : int
        Most crops per condition.
    seed : int
        Seed of the choice of crops.

    Returns
    -------
    list of Condition
        Controls (when there are any), then the perturbation.

    Raises
    ------
    UnknownGeneError
        When the perturbation has no crops.
    """
    pert = obs["perturbation"].astype(str).to_numpy()
    hit = np.flatnonzero(pert == str(name))
    if hit.size == 0:
        # allow the gene spelling of a double ("B+A" for "A+B")
        want = gene_set(name)
        hit = np.flatnonzero(_targets(obs).map(lambda s: s == want).to_numpy() & (len(want) > 0))
    if hit.size == 0:
        raise UnknownGeneError(
            f"perturbation {name!r} has no crops in the image store"
            f"{_suggest(str(name), perturbation_names(obs))}.",
            "pick one of the perturbations listed in the browser (or `workbench info STUDY`).",
        )
    ctrl = np.flatnonzero(control_mask(obs))
    out = []
    if ctrl.size:
        out.append(Condition("control", choose(ctrl, n, seed), f"{ctrl.size} crops"))
    out.append(Condition(str(name), choose(hit, n, seed), f"{hit.size} crops"))
    return out


def pair_conditions(obs: pd.DataFrame, pair: str, n: int = 9, seed: int = 0) -> list[Condition]:
    """The four conditions of a pair, side by side: control, A, B and A+B.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.
    pair : str
        The pair, ``"A+B"``.
    n : int
        Most crops per condition.
    seed : int
        Seed of the choice of crops.

    Returns
    -------
    list of Condition
        Control, A, B and A+B.

    Raises
    ------
    ValidationError
        When ``pair`` does not name two genes.
    UnknownGeneError
        When the double, or more than one condition, has no crops.
    """
    genes = sorted(gene_set(pair))
    if len(genes) != 2:
        raise ValidationError(
            f"{pair!r} is not a pair of two genes.",
            "write a pair as A+B, e.g. --pair KRAS+TP53.",
        )
    a, b = (pair.split("+")[0].strip(), pair.split("+")[1].strip())
    targets = _targets(obs)
    ctrl = np.flatnonzero(control_mask(obs))
    wanted = [("control", None), (a, frozenset([a])), (b, frozenset([b])),
              (f"{a}+{b}", frozenset([a, b]))]
    out, missing = [], []
    for title, s in wanted:
        pos = ctrl if s is None else np.flatnonzero(targets.map(lambda t, s=s: t == s).to_numpy())
        if pos.size == 0:
            missing.append(title)
        out.append(Condition(title, choose(pos, n, seed), f"{pos.size} crops"))
    if missing == [f"{a}+{b}"] or len(missing) > 1:
        raise UnknownGeneError(
            f"pair {pair!r}: no crops for {', '.join(repr(m) for m in missing)} in the image "
            f"store{_suggest(pair, pair_names(obs))}.",
            "pick a pair whose double and singles were imaged (listed in the browser).",
        )
    return out


def concept_conditions(activations: np.ndarray, positions: np.ndarray, *, n: int = 4,
                       quantiles=(0.5, 0.9, 0.99, 1.0)) -> list[Condition]:
    """Exemplars of one concept at activation quantiles.

    For each quantile q the block shows the ``n`` active crops (nonzero activation) whose
    activation is closest to the q-quantile of the concept's activations over the active
    crops (q = 1 is the top ``n``), the way the concepts step builds its pages; sparse codes
    are zero on most crops, so quantiles over all crops would show inactive ones. Seeing
    typical, strong and maximal exemplars side by side tells whether a concept grades a
    phenotype or fires on a few outliers (the practice of dictionary-learning
    interpretability work, e.g. Bricken et al. 2023, "Towards monosemanticity"). A concept
    active nowhere (dead) shows crops of activation zero.

    Parameters
    ----------
    activations : numpy.ndarray
        The concept's activation on each candidate crop.
    positions : numpy.ndarray
        The image-store position of each candidate crop, aligned with ``activations``.
    n : int
        Crops per quantile.
    quantiles : sequence of float
        The quantiles shown, in order; 1 shows the top ``n``.

    Returns
    -------
    list of Condition
        One block per quantile, its note giving the activation range shown.
    """
    act = np.asarray(activations, dtype=float)
    positions = np.asarray(positions, dtype=int)
    active = np.flatnonzero(act != 0)
    pool = active if active.size else np.arange(act.size)
    a = act[pool]
    order = np.argsort(a, kind="stable")
    out = []
    for q in quantiles:
        if q >= 1.0:
            pick = order[::-1][:n]
            title = "top"
        else:
            target = np.quantile(a, q)
            pick = np.argsort(np.abs(a - target), kind="stable")[:n]
            title = f"q{round(q * 100):g}"
        rows = pool[np.sort(pick)]
        out.append(Condition(title, positions[rows],
                             f"activation {act[rows].min():.3g}..{act[rows].max():.3g}",
                             extra={"activation": act[rows].tolist()}))
    return out


# ---------------------------------------------------------------------- layout
def grid_shape(k: int) -> tuple[int, int]:
    """Rows and columns for ``k`` crops in a near-square block.

    Parameters
    ----------
    k : int
        Number of crops (at least one cell is laid out).

    Returns
    -------
    tuple of int
        ``(rows, columns)``.
    """
    cols = max(1, math.ceil(math.sqrt(max(k, 1))))
    return max(1, math.ceil(max(k, 1) / cols)), cols


def layout(conditions: list[Condition], crop_hw: tuple[int, int], gap: int = GAP):
    """Where each crop goes: a table of cells (top, left, condition, position) and the
    mosaic size. Blocks sit side by side, ``3 * gap`` apart, all with the same grid.

    Parameters
    ----------
    conditions : list of Condition
        The blocks, left to right.
    crop_hw : tuple of int
        Height and width of one crop, in pixels.
    gap : int
        Pixels between crops.

    Returns
    -------
    cells : list of tuple
        ``(top, left, condition index, store position)`` per crop.
    size : tuple of int
        Height and width of the mosaic.
    blocks : list of tuple
        ``(title, top, left, height, width)`` per block.
    """
    h, w = crop_hw
    k = max((len(c.positions) for c in conditions), default=1)
    rows, cols = grid_shape(k)
    block_w = cols * (w + gap) - gap
    block_h = rows * (h + gap) - gap
    cells = []
    blocks = []
    for ci, cond in enumerate(conditions):
        x0 = ci * (block_w + 3 * gap)
        blocks.append((cond.title, 0, x0, block_h, block_w))
        for j, pos in enumerate(cond.positions):
            r, c = divmod(j, cols)
            cells.append((r * (h + gap), x0 + c * (w + gap), ci, int(pos)))
    width = len(conditions) * (block_w + 3 * gap) - 3 * gap
    return cells, (block_h, max(width, 1)), blocks


def contrast_from_controls(store, obs: pd.DataFrame, *, n: int = 64, seed: int = 0,
                           percentiles=(1.0, 99.8)) -> list[tuple[float, float]]:
    """Per channel display range from control crops (all crops when there are none).

    Parameters
    ----------
    store : ImageStore
        The image store.
    obs : pandas.DataFrame
        Its crop table (with ``is_control``).
    n : int
        Crops sampled to set the range.
    seed : int
        Seed of the sample.
    percentiles : tuple of float
        The percentiles mapped to black and to full colour.

    Returns
    -------
    list of tuple of float
        ``(low, high)`` per channel (``high > low``).
    """
    ctrl = np.flatnonzero(control_mask(obs))
    pool = ctrl if ctrl.size else np.arange(len(obs))
    crops = np.asarray(store.get(choose(pool, n, seed)), dtype=np.float32)
    out = []
    for c in range(crops.shape[1]):
        lo, hi = np.percentile(crops[:, c], percentiles)
        if not hi > lo:
            hi = lo + (1.0 if crops.dtype.kind == "f" else 1)
        out.append((float(lo), float(hi)))
    return out


def crop_layers(store, conditions: list[Condition], *, label: str, study_path: str = "",
                contrast: list[tuple[float, float]] | None = None, gap: int = GAP,
                masks: bool = True) -> list[tuple]:
    """Layer data tuples for a comparison grid.

    Returns one image layer per channel (named ``"{label}: {channel}"``, the channel's
    colormap, additive blending), a labels layer with the crops' masks when the store has
    them (hidden at first), and a points layer whose text names each condition block.
    Every layer's ``metadata["workbench"]`` holds the crop table used by
    :func:`crop_at` to say which crop lies under the cursor.

    Parameters
    ----------
    store : ImageStore
        The image store.
    conditions : list of Condition
        The blocks, left to right.
    label : str
        Prefix of the layer names.
    study_path : str
        The Study's path, recorded in the layers' metadata.
    contrast : list of tuple of float or None
        Display range per channel; None lets napari choose.
    gap : int
        Pixels between crops (blocks are ``3 * gap`` apart).
    masks : bool
        Add the labels layer when the store has masks.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` napari layer data tuples.
    """
    n_total, n_ch, h, w = store.shape
    cells, (mh, mw), blocks = layout(conditions, (h, w), gap)
    positions = np.array([c[3] for c in cells], dtype=int)
    uniq, inverse = np.unique(positions, return_inverse=True)
    crops = np.asarray(store.get(uniq)) if uniq.size else np.zeros((0, n_ch, h, w))
    mosaic = np.zeros((n_ch, mh, mw), dtype=crops.dtype if crops.size else np.float32)
    for (y, x, _, _), i in zip(cells, inverse):
        mosaic[:, y:y + h, x:x + w] = crops[i]
    obs = store.obs
    crop_ids = [str(obs.index[p]) for p in positions]
    meta = {META_KEY: {
        "study": str(study_path), "kind": "crops", "label": label,
        "crop_hw": [h, w],
        "cells": [[y, x, ci, cid] for (y, x, ci, _), cid in zip(cells, crop_ids)],
        "conditions": [{"title": c.title, "note": c.note, "n": int(len(c.positions))}
                       for c in conditions],
    }}
    names = list(store.channel_names)
    colors = list(store.channel_colors)
    kwargs: dict[str, Any] = {
        "name": [f"{label}: {c}" for c in names],
        "channel_axis": 0,
        "colormap": colors,
        "blending": "additive",
        "metadata": meta,
    }
    if contrast:
        kwargs["contrast_limits"] = [list(c) for c in contrast]
    layers = [(mosaic, kwargs, "image")]
    if masks and getattr(store, "has_masks", False) and uniq.size:
        m = np.asarray(store.get_masks(uniq)).astype(np.int32)
        lab = np.zeros((mh, mw), np.int32)
        offset = 0
        for (y, x, _, _), i in zip(cells, inverse):
            block = m[i]
            lab[y:y + h, x:x + w] = np.where(block > 0, block + offset, 0)
            offset += int(block.max()) if block.size else 0
        layers.append((lab, {"name": f"{label}: masks", "visible": False, "opacity": 0.4,
                             "metadata": meta}, "labels"))
    pts = np.array([[-max(4, h // 6), x0 + bw / 2] for (_, _, x0, _, bw) in blocks], float)
    titles = [f"{c.title} ({c.note})" if c.note else c.title for c in conditions]
    layers.append((pts, {
        "name": f"{label}: conditions", "size": 0.0, "face_color": "transparent",
        "border_width": 0, "features": {"title": titles},
        "text": {"string": "{title}", "color": "white", "size": 10, "anchor": "center"},
        "metadata": meta,
    }, "points"))
    return layers


def crop_at(metadata: dict, yx) -> dict | None:
    """The crop (id, condition) at data coordinates ``yx`` of a layer made here, or None.

    Parameters
    ----------
    metadata : dict
        A layer's metadata.
    yx : sequence of float
        Data coordinates; the last two are y and x.

    Returns
    -------
    dict or None
        ``crop_id`` and ``condition``, or None off the crops or for another layer.
    """
    info = (metadata or {}).get(META_KEY)
    if not info or info.get("kind") != "crops":
        return None
    y, x = float(yx[-2]), float(yx[-1])
    h, w = info["crop_hw"]
    for y0, x0, ci, cid in info["cells"]:
        if y0 <= y < y0 + h and x0 <= x < x0 + w:
            return {"crop_id": cid, "condition": info["conditions"][ci]["title"]}
    return None


def describe_crop(obs: pd.DataFrame, crop_id: str, condition: str = "") -> str:
    """One line about a crop for the status label: id, condition and its obs fields.

    Parameters
    ----------
    obs : pandas.DataFrame
        The crop table.
    crop_id : str
        The crop.
    condition : str
        The block it sits in, or an empty string.

    Returns
    -------
    str
        The line (only the id and condition for an unknown crop).
    """
    head = f"crop {crop_id}" + (f" [{condition}]" if condition else "")
    if crop_id not in obs.index:
        return head
    row = obs.loc[crop_id]
    keys = ["perturbation", "genes", "plate", "well", "site", "batch", "is_control"]
    keys += [k for k in obs.columns if k not in keys][:6]
    parts = [f"{k}={row[k]}" for k in keys if k in obs.columns and pd.notna(row[k])]
    return head + ": " + ", ".join(parts)
