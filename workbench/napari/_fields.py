"""Whole fields of view with their segmentation masks, as napari layers.

A field folder holds one TIFF per field and channel (e.g. the Way Lab NF1 plate:
``images/{well}_01_{c}_{site}_{DAPI|GFP|RFP}_001.tif``) and, optionally, CellProfiler masks
(``masks/{stem}_MaskNuclei.tiff``, ``_MaskCells``, ``_MaskCytoplasm``). The plugin stacks
the fields along a first axis (napari shows a slider to step through them), gives each
channel its own image layer and colormap, and turns each mask kind into a labels layer.
Binary masks (0/255, as CellProfiler saves them) are split into one label per connected
object, so each nucleus or cell gets its own colour and id. Finding and decoding the files
is the job of :mod:`workbench.data.readers.image_fields` (the same code that imports fields
into a Study); this module only arranges them as layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRESET_ORDER = ("nf1", "jump")


def _platemap(folder: Path) -> Path | None:
    maps = sorted(p for p in folder.iterdir() if p.is_file() and "platemap" in p.name.lower()
                  and p.suffix.lower() in (".csv", ".tsv", ".txt", ".parquet"))
    return maps[0] if len(maps) == 1 else None


def _has_tiffs(folder: Path) -> bool:
    """TIFFs in the folder or one level down (cheap: a large tree is not walked)."""
    try:
        for p in folder.iterdir():
            if p.is_file() and p.suffix.lower() in (".tif", ".tiff"):
                return True
            if p.is_dir() and not p.name.startswith("."):
                if any(q.suffix.lower() in (".tif", ".tiff") for q in p.iterdir()):
                    return True
    except OSError:
        return False
    return False


def scan_field_folder(path: str | Path):
    """The fields of a folder as :class:`workbench.data.readers.image_fields.ImageFields`,
    trying the known file-name layouts (NF1, JUMP/Phenix); None when none matches.

    A plate map beside the images (``*platemap*.csv``) is joined when it fits, so each
    field knows its perturbation; without one the fields are labelled "unknown".

    Parameters
    ----------
    path : str or pathlib.Path
        The folder.

    Returns
    -------
    ImageFields or None
        The fields, or None.
    """
    from workbench.data.readers.image_fields import scan_fields
    from workbench.errors import WorkbenchError

    path = Path(path)
    if not path.is_dir() or not _has_tiffs(path):
        return None
    pm = _platemap(path)
    for preset in PRESET_ORDER:
        for platemap in ([pm, None] if pm is not None else [None]):
            try:
                return scan_fields(path, platemap, pattern=preset,
                                   perturbation=None if platemap is not None else "unknown")
            except WorkbenchError:
                continue
    return None


#: Colours for the fluorophores of field folders (Cell Painting names: images.CHANNEL_COLORS).
FLUOR_COLORS = {"DAPI": "blue", "Hoechst": "blue", "DNA": "blue", "GFP": "green",
                "RFP": "magenta", "mCherry": "magenta", "Cy5": "red"}


def channel_colors(channels: list[str]) -> list[str]:
    """Colormap names for channels: fluorophore and channel names we know, else a palette.

    Parameters
    ----------
    channels : list of str
        The channel names.

    Returns
    -------
    list of str
        One colour per channel.
    """
    from workbench.data.images import CHANNEL_COLORS, PALETTE

    out = []
    for i, c in enumerate(channels):
        out.append(FLUOR_COLORS.get(c) or CHANNEL_COLORS.get(c) or PALETTE[i % len(PALETTE)])
    return out


def instance_labels(mask: np.ndarray) -> np.ndarray:
    """Labels from a mask: binary masks become one id per connected object (per plane).

    Parameters
    ----------
    mask : numpy.ndarray
        A mask, 2-D or a stack of planes; at most two distinct values make it binary.

    Returns
    -------
    numpy.ndarray
        int32 labels (a label mask is kept as it is).
    """
    mask = np.asarray(mask)
    if np.unique(mask).size <= 2:
        from scipy import ndimage

        if mask.ndim == 3:
            return np.stack([instance_labels(m) for m in mask])
        lab, _ = ndimage.label(mask > 0)
        return lab.astype(np.int32)
    return mask.astype(np.int32)


def _kind_order(kind: str):
    order = ["nuclei", "cells", "cytoplasm"]
    return (order.index(kind) if kind in order else len(order), kind)


def _contrast(sample: np.ndarray) -> list[list[float]]:
    """Display range per channel from a ``(n, C, H, W)`` sample (0.5 and 99.8 percentiles)."""
    sample = np.asarray(sample)[:, :, ::4, ::4].astype(np.float32)
    lo = np.percentile(sample, 0.5, axis=(0, 2, 3))
    hi = np.percentile(sample, 99.8, axis=(0, 2, 3))
    return [[float(a), float(max(b, a + 1))] for a, b in zip(lo, hi)]


def field_layers(fields, *, source: str = "") -> list[tuple]:
    """Image layers (fields stacked on axis 0, one layer per channel) and one labels layer
    per mask kind, from an ``ImageFields`` (see :func:`scan_field_folder`).

    Parameters
    ----------
    fields : ImageFields
        The fields.
    source : str
        Where they came from, recorded in the layers' metadata.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` napari layer data tuples (the pixels read into memory).
    """
    n = len(fields)
    stack = np.stack([fields.read_field(i) for i in range(n)])
    names = list(fields.channel_names)
    meta = {"workbench": {"kind": "fields", "source": str(source),
                          "fields": fields.obs.index.astype(str).tolist(),
                          "perturbation": fields.obs["perturbation"].astype(str).tolist()}}
    layers = [(stack, {
        "name": names, "channel_axis": 1, "colormap": channel_colors(names),
        "blending": "additive", "metadata": meta, "contrast_limits": _contrast(stack),
    }, "image")]
    kinds = sorted(fields.mask_kinds, key=_kind_order)
    if kinds:
        labels = {k: np.zeros((n, *fields.shape), np.int32) for k in kinds}
        for i in range(n):
            for k, lab in fields.read_labels(i).items():
                labels[k][i] = lab
        for k in kinds:
            layers.append((labels[k], {"name": f"{k} mask", "opacity": 0.35,
                                       "visible": k != "cytoplasm", "metadata": meta},
                           "labels"))
    return layers


def study_field_layers(source) -> list[tuple]:
    """Fields of a Study's ``fields`` artefact (written by ``workbench import images``): an
    image store whose items are whole fields, with a ``labels/{kind}`` array per mask kind.
    Pixels stay lazy (dask), so a whole plate opens without loading it.

    Parameters
    ----------
    source : StudySource
        The opened Study (it holds ``fields``).

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` napari layer data tuples.
    """
    import dask.array as da

    store = source.study.read("fields")
    data = store.crops
    names = list(store.channel_names)
    obs = store.obs
    meta = {"workbench": {"kind": "fields", "study": str(source.path),
                          "fields": obs.index.astype(str).tolist(),
                          "perturbation": obs["perturbation"].astype(str).tolist()}}
    layers = [(data, {"name": names, "channel_axis": 1, "colormap": channel_colors(names),
                      "blending": "additive", "metadata": meta,
                      "contrast_limits": _contrast(store.get([0]))}, "image")]
    group = store.group
    for k in sorted(group.attrs.get("label_kinds") or [], key=_kind_order):
        layers.append((da.from_zarr(group["labels"][k]),
                       {"name": f"{k} mask", "opacity": 0.35,
                        "visible": k != "cytoplasm", "metadata": meta}, "labels"))
    return layers
