"""Whole fields of view with their segmentation masks, as napari layers.

A field folder holds one TIFF per field and channel (e.g. the Way Lab NF1 plate:
``images/{well}_01_{c}_{site}_{DAPI|GFP|RFP}_001.tif``) and, optionally, CellProfiler masks
(``masks/{stem}_MaskNuclei.tiff``, ``_MaskCells``, ``_MaskCytoplasm``). The plugin stacks
the fields along a first axis (napari shows a slider to step through them), gives each
channel its own image layer and colormap, and turns each mask kind into a labels layer.
Binary masks (0/255, as CellProfiler saves them) are split into one label per connected
object, so each nucleus or cell gets its own colour and id.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from workbench.errors import InputFormatError

TIFF = (".tif", ".tiff")
#: ``B7_01_1_3_DAPI_001``: well, field counter, channel number, site, channel name, z.
_WAY = re.compile(r"^(?P<well>[A-Za-z]+\d+)_(?P<f>\d+)_(?P<c>\d+)_(?P<site>\d+)_"
                  r"(?P<channel>[A-Za-z0-9]+)_(?P<z>\d+)$")
#: ``r03c03f03p01-ch1sk1fk1fl1`` (Opera Phenix / Harmony export).
_PHENIX = re.compile(r"^(?P<field>r\d+c\d+f\d+p\d+)-ch(?P<channel>\d+)\w*$")
_MASK = re.compile(r"^(?P<stem>.+)_Mask(?P<kind>[A-Za-z]+)$")


def _parse(stem: str) -> tuple[str, str] | None:
    """(field key, channel) of an image file name, or None when it is not recognised."""
    m = _WAY.match(stem)
    if m:
        return f"{m['well']}_s{m['site']}", m["channel"]
    m = _PHENIX.match(stem)
    if m:
        return m["field"], f"ch{m['channel']}"
    return None


def _tiffs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF)


def scan_field_folder(path: str | Path) -> dict | None:
    """Find the fields, channels and masks of a folder; None when it holds no such TIFFs.

    Returns ``{"fields": [key...], "channels": [name...], "images": {(field, channel):
    path}, "masks": {kind: {field: path}}}``.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    img_dir = path / "images" if (path / "images").is_dir() else path
    images: dict[tuple[str, str], Path] = {}
    for f in _tiffs(img_dir):
        if _MASK.match(f.stem):
            continue
        parsed = _parse(f.stem)
        if parsed:
            images[parsed] = f
    if not images:
        return None
    fields = sorted({k for k, _ in images})
    channels = sorted({c for _, c in images}, key=_channel_order)
    masks: dict[str, dict[str, Path]] = defaultdict(dict)
    mask_dir = path / "masks" if (path / "masks").is_dir() else img_dir
    for f in _tiffs(mask_dir):
        m = _MASK.match(f.stem)
        parsed = _parse(m["stem"]) if m else None
        if parsed:
            masks[m["kind"]][parsed[0]] = f
    return {"fields": fields, "channels": channels, "images": images, "masks": dict(masks)}


def _channel_order(name: str):
    order = ["DAPI", "DNA", "Hoechst", "GFP", "ER", "RNA", "AGP", "RFP", "Mito"]
    return (order.index(name) if name in order else len(order), name)


#: Colours for the fluorophores of field folders (Cell Painting names: images.CHANNEL_COLORS).
FLUOR_COLORS = {"DAPI": "blue", "Hoechst": "blue", "DNA": "blue", "GFP": "green",
                "RFP": "magenta", "mCherry": "magenta", "Cy5": "red"}


def channel_colors(channels: list[str]) -> list[str]:
    from workbench.data.images import CHANNEL_COLORS, PALETTE

    out = []
    for i, c in enumerate(channels):
        out.append(FLUOR_COLORS.get(c) or CHANNEL_COLORS.get(c) or PALETTE[i % len(PALETTE)])
    return out


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except ValueError as exc:  # e.g. LZW without imagecodecs
        try:
            from PIL import Image

            return np.asarray(Image.open(path))
        except Exception:
            raise InputFormatError(
                f"{path.name} cannot be decoded: {exc}",
                "install imagecodecs (pip install imagecodecs) to read compressed TIFFs.",
            ) from exc


def instance_labels(mask: np.ndarray) -> np.ndarray:
    """Labels from a mask: binary masks become one id per connected object."""
    mask = np.asarray(mask)
    if np.unique(mask).size <= 2:
        from scipy import ndimage

        lab, _ = ndimage.label(mask > 0)
        return lab.astype(np.int32)
    return mask.astype(np.int32)


def field_layers(scan: dict, *, source: str = "") -> list[tuple]:
    """Image layers (fields stacked on axis 0, one per channel) and one labels layer per
    mask kind."""
    fields, channels = scan["fields"], scan["channels"]
    first = _read_tiff(next(iter(scan["images"].values())))
    stack = np.zeros((len(fields), len(channels), *first.shape), first.dtype)
    for (fk, ch), p in scan["images"].items():
        stack[fields.index(fk), channels.index(ch)] = _read_tiff(p)
    meta = {"workbench": {"kind": "fields", "source": str(source), "fields": fields}}
    layers = []
    lo = np.percentile(stack[:, :, ::4, ::4], 0.5, axis=(0, 2, 3))
    hi = np.percentile(stack[:, :, ::4, ::4], 99.8, axis=(0, 2, 3))
    layers.append((stack, {
        "name": channels, "channel_axis": 1, "colormap": channel_colors(channels),
        "blending": "additive", "metadata": meta,
        "contrast_limits": [[float(a), float(max(b, a + 1))] for a, b in zip(lo, hi)],
    }, "image"))
    for kind in sorted(scan["masks"], key=lambda k: ["Nuclei", "Cells"].index(k)
                       if k in ("Nuclei", "Cells") else 2):
        lab = np.zeros((len(fields), *first.shape), np.int32)
        for fk, p in scan["masks"][kind].items():
            if fk in fields:
                lab[fields.index(fk)] = instance_labels(_read_tiff(p))
        layers.append((lab, {"name": f"{kind.lower()} mask", "opacity": 0.35,
                             "visible": kind != "Cytoplasm", "metadata": meta}, "labels"))
    return layers


def study_field_layers(source) -> list[tuple]:
    """Fields of a Study's ``fields`` artefact: an image store of whole fields (crops =
    fields) with masks, or a folder reference written by the image import."""
    study = source.study
    obj = study.read("fields")
    if hasattr(obj, "channel_names"):  # an ImageStore of whole fields
        data = np.asarray(obj.crops)
        meta = {"workbench": {"kind": "fields", "source": str(source.path),
                              "fields": obj.obs.index.astype(str).tolist()}}
        layers = [(data, {"name": obj.channel_names, "channel_axis": 1,
                          "colormap": channel_colors(obj.channel_names),
                          "blending": "additive", "metadata": meta}, "image")]
        if obj.has_masks:
            layers.append((instance_labels(obj.get_masks(np.arange(len(obj)))),
                           {"name": "masks", "opacity": 0.35, "metadata": meta}, "labels"))
        return layers
    folder = obj.get("folder") if isinstance(obj, dict) else obj
    scan = scan_field_folder(folder) if folder else None
    if scan is None:
        raise InputFormatError(f"the 'fields' artefact of {study.path.name} points to no "
                               "readable TIFF fields.", "re-run the image import.")
    return field_layers(scan, source=str(source.path))
