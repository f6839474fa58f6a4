"""Microscope fields into a Study: single-cell crops with masks, and the whole fields.

Image encoders (a ViT masked autoencoder, DeepProfiler's EfficientNet) take fixed-size
crops, one cell each, as in Kraus et al. 2024 (*CVPR*, "Masked autoencoders for microscopy
are scalable learners of cellular biology") and Moshkov et al. 2024 (*Nat Commun*). So each
field is tiled into ``crop_size`` x ``crop_size`` crops:

* with a nucleus mask, one crop per nucleus, centred on its centroid (the window is shifted
  inward at the field border, and the shift is recorded);
* without masks, a regular grid of non-overlapping tiles.

Each crop keeps its mask (the nucleus labels inside the window) and a table row following
the screen contract (``perturbation``, ``is_control``, ``batch``, ``plate``, ``well``,
``site``), plus ``field_id`` (so that later steps can keep the crops of one field in one
fold), the crop centre, the nucleus centroid, label and area, and every plate-map column.
This is the ``"images"`` artefact. The whole fields, with every label image, are kept as a
second image store, ``"fields"``, for napari.

Fields are read one at a time: memory stays at one field plus one batch of crops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.data.readers._tables import PathLike
from workbench.data.readers._target import clean_obs, study_step
from workbench.data.readers.image_fields import (  # noqa: F401  (re-exported)
    JUMP_PATTERN, NF1_PATTERN, PRESETS, ImageFields, scan_fields,
)
from workbench.data.schema import coerce_screen_obs
from workbench.errors import ValidationError

SCAN_OPTIONS = ("pattern", "channels", "perturbation_column", "well_column", "control",
                "perturbation", "plate", "batch")


@dataclass
class ImageCrops:
    """Crops of a set of fields, in memory (see :func:`read_images`).

    Parameters
    ----------
    crops : numpy.ndarray
        The crops, ``(n, C, h, w)``.
    masks : numpy.ndarray or None
        Integer labels of the object each crop is centred on, ``(n, h, w)``; None for grid
        tiling.
    obs : pandas.DataFrame
        One row per crop, following the screen contract.
    channel_names : list of str
        One name per channel.
    fields : ImageFields
        The fields the crops were cut from.
    """

    crops: np.ndarray            # (n, C, h, w)
    masks: np.ndarray | None     # (n, h, w) integer labels, or None
    obs: pd.DataFrame            # one row per crop
    channel_names: list[str]
    fields: ImageFields


def plan_crops(labels: np.ndarray | None, shape: tuple[int, int], crop_size: int,
               min_area: int = 50) -> pd.DataFrame:
    """Where the crops of one field go: a row per crop with the window's top-left corner.

    With ``labels``: one crop per object of at least ``min_area`` pixels, centred on its
    centroid and shifted inside the field; without: a centred regular grid.

    Parameters
    ----------
    labels : numpy.ndarray or None
        Integer label image of the field (0 is background); None tiles a grid.
    shape : tuple of int
        Height and width of the field, in pixels.
    crop_size : int
        Side of a crop, in pixels; at most the field's smaller side.
    min_area : int
        Smallest object, in pixels, that gets a crop.

    Returns
    -------
    pandas.DataFrame
        ``y0``, ``x0``, ``nucleus_label``, ``nucleus_area``, ``nucleus_y``, ``nucleus_x``
        (NaN for a grid) and ``shifted`` (whether the window was moved to fit in the field).
    """
    h, w = shape
    if crop_size > min(h, w):
        raise ValidationError(f"crop size {crop_size} px is larger than the field "
                              f"({h} x {w} px).", "choose a smaller --crop-size.")
    if labels is None:
        ny, nx = h // crop_size, w // crop_size
        oy, ox = (h - ny * crop_size) // 2, (w - nx * crop_size) // 2
        ys, xs = np.meshgrid(oy + crop_size * np.arange(ny), ox + crop_size * np.arange(nx),
                             indexing="ij")
        n = ys.size
        return pd.DataFrame({
            "y0": ys.ravel(), "x0": xs.ravel(), "nucleus_label": np.zeros(n, int),
            "nucleus_area": np.zeros(n, int), "nucleus_y": np.full(n, np.nan),
            "nucleus_x": np.full(n, np.nan), "shifted": np.zeros(n, bool)})
    flat = labels.ravel().astype(np.int64)
    areas_all = np.bincount(flat)
    yy, xx = np.divmod(np.arange(flat.size), w)
    sum_y, sum_x = np.bincount(flat, weights=yy), np.bincount(flat, weights=xx)
    ids = np.flatnonzero(areas_all >= max(min_area, 1))
    ids = ids[ids > 0]
    areas = areas_all[ids].astype(int)
    cents = np.stack([sum_y[ids] / areas, sum_x[ids] / areas], axis=1).reshape(-1, 2)
    half = crop_size // 2
    y0 = np.round(cents[:, 0]).astype(int) - half
    x0 = np.round(cents[:, 1]).astype(int) - half
    cy0, cx0 = np.clip(y0, 0, h - crop_size), np.clip(x0, 0, w - crop_size)
    return pd.DataFrame({
        "y0": cy0, "x0": cx0, "nucleus_label": ids.astype(int), "nucleus_area": areas,
        "nucleus_y": cents[:, 0], "nucleus_x": cents[:, 1],
        "shifted": (cy0 != y0) | (cx0 != x0)})


def _center_kind(fields: ImageFields, center_on: str | None) -> str | None:
    kinds = fields.mask_kinds
    if center_on is not None:
        if center_on not in kinds:
            raise ValidationError(
                f"no {center_on!r} masks found (mask kinds present: {kinds or 'none'}).",
                "name a mask kind that exists (file names end in _Mask<Kind>.tiff), or "
                "leave it out to tile a grid.")
        return center_on
    if "nuclei" in kinds:
        return "nuclei"
    return kinds[0] if kinds else None


def crop_table(fields: ImageFields, crop_size: int = 96, *, center_on: str | None = None,
               min_area: int = 50) -> pd.DataFrame:
    """Pass one: the crop plan of every field joined with the field's metadata.

    Parameters
    ----------
    fields : ImageFields
        The fields (see :func:`scan_fields`).
    crop_size : int
        Side of a crop, in pixels.
    center_on : str or None
        The mask kind to centre crops on; None takes nuclei, else the first mask kind
        present, else tiles a grid.
    min_area : int
        Smallest object, in pixels, that gets a crop.

    Returns
    -------
    pandas.DataFrame
        One row per crop, indexed by cell id: the field's metadata, the window's corner
        (``y0``, ``x0``), its centre and the object's label, area and centroid;
        ``attrs["center_on"]`` is the mask kind used (None for a grid).
    """
    kind = _center_kind(fields, center_on)
    parts = []
    for i in range(len(fields)):
        labels = None
        if kind is not None:
            lab = fields.read_labels(i)
            if kind not in lab:
                raise ValidationError(
                    f"field {fields.obs.index[i]} has no {kind!r} mask while others do.",
                    "give a mask for every field, or none (grid tiling).")
            labels = lab[kind]
        plan = plan_crops(labels, fields.shape, crop_size, min_area)
        plan.insert(0, "field_index", i)
        parts.append(plan)
    plan = pd.concat(parts, ignore_index=True)
    meta = fields.obs.reset_index(drop=True).iloc[plan["field_index"].to_numpy()]
    obs = pd.concat([meta.reset_index(drop=True), plan.reset_index(drop=True)], axis=1)
    half = crop_size / 2
    obs["center_y"] = obs["y0"] + half
    obs["center_x"] = obs["x0"] + half
    obs["crop_in_field"] = obs.groupby("field_index").cumcount()
    obs["cell_id"] = [f"{f}_c{k:04d}" for f, k in zip(obs["field_id"], obs["crop_in_field"])]
    obs.index = obs["cell_id"].to_numpy()
    obs.attrs["center_on"] = kind
    return obs


def iter_crops(fields: ImageFields, obs: pd.DataFrame, crop_size: int
               ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Pass two: per field, ``(crops (k, C, h, w), masks (k, h, w) or None)``.

    Parameters
    ----------
    fields : ImageFields
        The fields.
    obs : pandas.DataFrame
        The crop plan from :func:`crop_table`.
    crop_size : int
        Side of a crop, in pixels (as planned).

    Yields
    ------
    tuple of numpy.ndarray
        The crops of one field and their masks (None for a grid), in field order.
    """
    kind = obs.attrs.get("center_on")
    for i, rows in obs.groupby("field_index", sort=True):
        img = fields.read_field(int(i))
        lab = fields.read_labels(int(i))[kind] if kind else None
        y0, x0 = rows["y0"].to_numpy(), rows["x0"].to_numpy()
        crops = np.stack([img[:, y: y + crop_size, x: x + crop_size] for y, x in zip(y0, x0)])
        masks = None if lab is None else np.stack(
            [lab[y: y + crop_size, x: x + crop_size] for y, x in zip(y0, x0)])
        yield crops, masks


def read_images(folder: PathLike, platemap: PathLike | pd.DataFrame | None = None, *,
                crop_size: int = 96, center_on: str | None = None, min_area: int = 50,
                **scan_options) -> ImageCrops:
    """Read a folder of fields (see :func:`scan_fields` for the options) into crops, in memory.

    Returns an :class:`ImageCrops` whose ``obs`` follows the screen contract. For large
    plates use :func:`import_images`, which streams field by field into a Study.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder with the TIFF fields.
    platemap : str, os.PathLike, pandas.DataFrame or None
        The plate map (see :func:`scan_fields`); None with ``perturbation=`` for one
        perturbation everywhere.
    crop_size : int
        Side of a crop, in pixels.
    center_on : str or None
        The mask kind to centre crops on; None takes nuclei, else the first mask kind
        present, else tiles a grid.
    min_area : int
        Smallest object, in pixels, that gets a crop.
    **scan_options
        Passed to :func:`scan_fields`.

    Returns
    -------
    ImageCrops
        The crops, their masks, table and channel names, and the fields.
    """
    fields = scan_fields(folder, platemap, **scan_options)
    obs = crop_table(fields, crop_size, center_on=center_on, min_area=min_area)
    if obs.empty:
        raise ValidationError(f"no crop in {folder}: the masks hold no object of at least "
                              f"{min_area} px.", "lower min_area, or tile a grid (no masks).")
    crops, masks = zip(*iter_crops(fields, obs, crop_size))
    m = None if masks[0] is None else np.concatenate(masks)
    return ImageCrops(np.concatenate(crops), m, _crop_obs(obs, fields), fields.channel_names,
                      fields)


def _crop_obs(obs: pd.DataFrame, fields: ImageFields) -> pd.DataFrame:
    out = obs.drop(columns=["field_index", "y0", "x0"])
    out["crop_y0"], out["crop_x0"] = obs["y0"].to_numpy(), obs["x0"].to_numpy()
    return coerce_screen_obs(clean_obs(out), fields.control)


def import_images(
    folder: PathLike,
    out,
    platemap: PathLike | pd.DataFrame | None = None,
    *,
    crop_size: int = 96,
    center_on: str | None = None,
    min_area: int = 50,
    keep_fields: bool = True,
    pixel_size_um: float | None = None,
    overwrite: bool = False,
    **scan_options,
):
    """Tile a folder of fields into crops and write ``"images"`` (and ``"fields"``).

    Everything is checked (file names, channels, plate map, controls, mask objects) before
    the Study is touched; pixels are then streamed one field at a time inside one
    transaction. ``out`` is a Study path (created with the control label if new) or a Study.
    Options: see :func:`scan_fields`. Returns the Study.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder with the TIFF fields.
    out : str, os.PathLike or Study
        The Study (or its path) to write into.
    platemap : str, os.PathLike, pandas.DataFrame or None
        The plate map (see :func:`scan_fields`); None with ``perturbation=`` for one
        perturbation everywhere.
    crop_size : int
        Side of a crop, in pixels.
    center_on : str or None
        The mask kind to centre crops on; None takes nuclei, else the first mask kind
        present, else tiles a grid.
    min_area : int
        Smallest object, in pixels, that gets a crop.
    keep_fields : bool
        Also write the whole fields as ``"fields"``.
    pixel_size_um : float or None
        Pixel size in micrometres, stored with the images; None when unknown.
    overwrite : bool
        Replace an existing Study at ``out``.
    **scan_options
        Passed to :func:`scan_fields` (``pattern``, ``channels``, ``perturbation_column``,
        ``well_column``, ``control``, ``perturbation``, ``plate``, ``batch``).

    Returns
    -------
    Study
        The Study, with ``"images"`` (and ``"fields"``) written.
    """
    unknown = set(scan_options) - set(SCAN_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}")
    fields = scan_fields(folder, platemap, **scan_options)
    plan = crop_table(fields, crop_size, center_on=center_on, min_area=min_area)
    if plan.empty:
        raise ValidationError(f"no crop in {folder}: the masks hold no object of at least "
                              f"{min_area} px.", "lower --min-area, or tile a grid (no masks).")
    obs = _crop_obs(plan, fields)
    params = {"source": str(folder), "platemap": None if platemap is None or
              isinstance(platemap, pd.DataFrame) else str(platemap),
              "crop_size": crop_size, "center_on": plan.attrs["center_on"],
              "min_area": min_area, "keep_fields": keep_fields,
              **{k: (dict(v) if hasattr(v, "items") else v) for k, v in scan_options.items()},
              "pattern": fields.info["pattern"]}
    pending: list = []

    def crops_gen():
        for c, m in iter_crops(fields, plan, crop_size):
            pending.append(m)
            yield c

    with study_step(out, "import_images", params, control_label=fields.control,
                    overwrite=overwrite) as tx:
        has_masks = plan.attrs["center_on"] is not None
        tx.write_images("images", crops_gen(), obs, fields.channel_names,
                        masks=_Queue(pending) if has_masks else None,
                        pixel_size_um=pixel_size_um)
        if keep_fields:
            _write_fields(tx, fields, pixel_size_um)
        tx.note(n_crops=int(len(obs)), n_fields=int(len(fields)),
                crops_per_field=obs.groupby("field_id", observed=True).size().astype(int)
                .to_dict(), channel_names=fields.channel_names,
                mask_kinds=fields.mask_kinds, n_controls=int(obs["is_control"].sum()))
    return tx.study


class _Queue:
    """Iterator over mask batches that the crop generator queues as it goes (the image
    store asks for a field's masks right after that field's crops)."""

    def __init__(self, queue: list):
        self.queue = queue

    def __iter__(self):
        return self

    def __next__(self):
        if not self.queue:
            raise StopIteration
        return self.queue.pop(0)


def _write_fields(tx, fields: ImageFields, pixel_size_um) -> None:
    import zarr

    kinds = fields.mask_kinds
    primary = "nuclei" if "nuclei" in kinds else (kinds[0] if kinds else None)
    fobs = coerce_screen_obs(clean_obs(fields.obs), fields.control)

    def field_batches():
        for i in range(len(fields)):
            yield fields.read_field(i)[None]

    def mask_batches():
        for i in range(len(fields)):
            yield fields.read_labels(i)[primary][None]

    p = tx.write_images("fields", field_batches(), fobs, fields.channel_names,
                        masks=mask_batches() if primary else None, chunk_size=1,
                        pixel_size_um=pixel_size_um)
    if kinds:
        group = zarr.open_group(str(p), mode="a")
        labels = group.require_group("labels")
        first = fields.read_labels(0)
        arrays = {k: labels.create_array(k, shape=(len(fields), *fields.shape),
                                         dtype=first[k].dtype if k in first else "int32",
                                         chunks=(1, *fields.shape)) for k in kinds}
        for i in range(len(fields)):
            for k, lab in fields.read_labels(i).items():
                arrays[k][i] = lab
        labels.attrs["labels"] = kinds
        group.attrs["label_kinds"] = kinds
    tx.describe("fields", label_kinds=kinds)
