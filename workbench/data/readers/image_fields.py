"""Finding microscope fields in a folder of TIFFs and joining them to a plate map.

A high-content screen writes one TIFF per field of view and channel, with the well, site
and channel in the file name, and segmentation masks beside them. Layouts differ between
instruments, so the file name is parsed with a regular expression that has named groups:

* ``well`` (e.g. ``D6``), or ``row`` and ``col`` (numbers: ``r03c03`` -> ``C03``);
* ``site`` (the field of view within the well);
* ``channel`` (a channel key: a dye name such as ``DAPI`` or a number such as ``5``).

The pattern is matched against the file name without its ``.tif``/``.tiff`` extension.
Masks are files whose name is an image name followed by ``_Mask<Kind>`` (CellProfiler's
``_MaskNuclei``, ``_MaskCells``); binary masks are split into objects by connected
components. Two presets ship: :data:`NF1_PATTERN` (Way lab NF1 Schwann cell plates,
``D6_01_1_2_DAPI_001.tif``) and :data:`JUMP_PATTERN` (Phenix / JUMP Cell Painting,
``r03c03f03p01-ch5sk1fk1fl1.tiff``).

:func:`scan_fields` only lists and checks files (no pixels are decoded), so a whole plate is
validated before anything is written; :meth:`ImageFields.read_field` and
:meth:`ImageFields.read_labels` decode one field at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.readers._tables import PathLike, existing_dir, pick_column, read_table, show
from workbench.data.readers._target import detect_control
from workbench.errors import InputFormatError, ValidationError

NF1_PATTERN = r"(?P<well>[A-P]\d{1,2})_\d+_\d+_(?P<site>\d+)_(?P<channel>[A-Za-z0-9]+)_\d+"
JUMP_PATTERN = r"r(?P<row>\d+)c(?P<col>\d+)f(?P<site>\d+)p\d+-ch(?P<channel>\d+)sk\d+fk\d+fl\d+"
PRESETS = {"nf1": NF1_PATTERN, "jump": JUMP_PATTERN}
MASK_SUFFIX = re.compile(r"^(?P<stem>.+)_Mask(?P<kind>[A-Za-z]+)$")
WELL_COLUMNS = ("well", "well_position", "Metadata_Well", "Well", "WellPosition",
                "Metadata_well_position", "well_id")
PERTURBATION_COLUMNS = ("perturbation", "genotype", "Metadata_genotype", "treatment",
                        "Metadata_Treatment", "compound", "gene", "Metadata_gene")
TIFF_EXT = (".tif", ".tiff")


def well_key(well: str) -> str:
    """Canonical well name for matching: ``"C03"``, ``"c3"`` and ``"C3"`` -> ``"C3"``.

    Parameters
    ----------
    well : str
        A well name such as ``"C03"``.

    Returns
    -------
    str
        Row letters in upper case and the column without leading zeros; a name that is not
        letters then digits is returned stripped.
    """
    m = re.fullmatch(r"\s*([A-Za-z]+)0*(\d+)\s*", str(well))
    return f"{m.group(1).upper()}{int(m.group(2))}" if m else str(well).strip()


def _natural(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def read_tiff(path: Path) -> np.ndarray:
    """Decode one TIFF (2-D). LZW and other codecs need ``imagecodecs``; without it we fall
    back on Pillow, which reads LZW too. Errors name the file.

    Parameters
    ----------
    path : pathlib.Path
        The TIFF file.

    Returns
    -------
    numpy.ndarray
        The 2-D plane (size-1 axes squeezed out).
    """
    import tifffile

    try:
        arr = tifffile.imread(path)
    except ValueError as exc:
        if "imagecodecs" not in str(exc):
            raise InputFormatError(f"image {path} cannot be decoded: {exc}",
                                   "the file may be truncated; copy it again.") from exc
        try:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.array(im)
        except Exception as exc2:
            raise InputFormatError(
                f"image {path} is compressed with a codec tifffile cannot decode without "
                f"imagecodecs, and Pillow failed too ({exc2}).",
                "pip install imagecodecs") from exc2
    except Exception as exc:
        raise InputFormatError(f"image {path} cannot be read: {type(exc).__name__}: {exc}",
                               "the file may be truncated or not a TIFF; copy it again.") from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise InputFormatError(f"image {path} has shape {arr.shape}; expected one 2-D plane "
                               "per file.", "split multi-plane TIFFs into one file per channel.")
    return arr


def tiff_shape(path: Path) -> tuple[int, ...]:
    """Shape from the TIFF header, without decoding pixels.

    Parameters
    ----------
    path : pathlib.Path
        The TIFF file.

    Returns
    -------
    tuple of int
        The shape without its size-1 axes.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            full = tf.series[0].shape if tf.series else tf.pages[0].shape  # all pages of a stack
            return tuple(int(s) for s in full if int(s) != 1)
    except Exception as exc:
        raise InputFormatError(f"image {path} is not a readable TIFF: {type(exc).__name__}: {exc}",
                               "the file may be truncated or misnamed; copy it again.") from exc


@dataclass
class ImageFields:
    """The fields of a plate: one ``obs`` row per field plus the files behind it.

    Parameters
    ----------
    obs : pandas.DataFrame
        One row per field (indexed by field id): screen columns and plate-map columns.
    channel_keys : list of str
        The channel keys as they appear in the file names, in channel order.
    channel_names : list of str
        The name of each channel, in the same order.
    files : list of dict
        Per field: channel key to its TIFF file.
    mask_files : list of dict
        Per field: mask kind (``"nuclei"``, ``"cells"``, ...) to its mask file; empty without
        masks.
    shape : tuple of int
        Height and width of every field, in pixels.
    dtype : str
        Pixel dtype of the fields.
    control : str
        The control label.
    info : dict
        Notes from the scan: the pattern used, the plate-map column, unmatched files, channels
        found.
    """

    obs: pd.DataFrame
    channel_keys: list[str]
    channel_names: list[str]
    files: list[dict[str, Path]]
    mask_files: list[dict[str, Path]]
    shape: tuple[int, int]
    dtype: str = "uint16"
    control: str = "control"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def mask_kinds(self) -> list[str]:
        return sorted({k for m in self.mask_files for k in m})

    def read_field(self, i: int) -> np.ndarray:
        """Field ``i`` as ``(C, H, W)`` in channel order.

        Parameters
        ----------
        i : int
            The field's position in ``obs``.

        Returns
        -------
        numpy.ndarray
            The channel planes, stacked.

        Raises
        ------
        ValidationError
            When a plane's size differs from the fields' shape.
        """
        planes = [read_tiff(self.files[i][k]) for k in self.channel_keys]
        for k, p in zip(self.channel_keys, planes):
            if p.shape != self.shape:
                raise ValidationError(
                    f"image {self.files[i][k].name} is {p.shape}, the other fields "
                    f"{self.shape}.", "give fields of one size (one instrument setting).")
        return np.stack(planes)

    def read_labels(self, i: int) -> dict[str, np.ndarray]:
        """Label images of field ``i`` by kind (e.g. ``{"nuclei": ..., "cells": ...}``);
        binary masks are split into objects by connected components (8-connected). Labels are
        uint16 when they fit, else int32.

        Parameters
        ----------
        i : int
            The field's position in ``obs``.

        Returns
        -------
        dict
            Mask kind to label image (empty without masks).
        """
        from scipy import ndimage as ndi

        out = {}
        for kind, path in self.mask_files[i].items():
            m = read_tiff(path)
            if m.shape != self.shape:
                raise ValidationError(f"mask {path.name} is {m.shape}, its field {self.shape}.",
                                      "give masks of the same size as the images.")
            top = m.max(initial=0)
            if not np.any((m != 0) & (m != top)):  # binary: 0 / 255 or 0 / 1
                lab, _ = ndi.label(m > 0, structure=np.ones((3, 3), bool))
            else:
                lab = m
            out[kind] = lab.astype(np.uint16 if lab.max(initial=0) < 65535 else np.int32)
        return out


def _parse_channels(channels) -> dict[str, str] | None:
    if channels is None:
        return None
    if isinstance(channels, Mapping):
        return {str(k): str(v) for k, v in channels.items()}
    return {str(c): str(c) for c in channels}


def scan_fields(
    folder: PathLike,
    platemap: PathLike | pd.DataFrame | None = None,
    *,
    pattern: str = NF1_PATTERN,
    channels: Mapping[str, str] | Sequence[str] | None = None,
    perturbation_column: str | None = None,
    well_column: str | None = None,
    control: str | None = None,
    perturbation: str | None = None,
    plate: str | None = None,
    batch: str | None = None,
) -> ImageFields:
    """List the fields of ``folder`` (recursively), check them and join the plate map.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder with the TIFFs (sub-folders such as ``images/`` and ``masks/`` are searched).
    platemap : str, os.PathLike or pandas.DataFrame, optional
        CSV/TSV/Parquet (or DataFrame) with a well column and a perturbation column; its
        other columns are kept in ``obs``.
    pattern : str
        Regular expression with named groups ``well`` (or ``row`` + ``col``), ``site`` and
        ``channel``; or a preset name: ``"nf1"`` (default) or ``"jump"``.
    channels : mapping of str to str or sequence of str, optional
        Which channel keys to use and what to call them, in order: a mapping
        ``{"5": "DNA", "2": "ER", ...}`` or a list of keys. Default: every key found, sorted.
    perturbation_column, well_column : str, optional
        Plate-map columns (default: ``genotype``/``perturbation``/... and ``well_position``...).
    control : str, optional
        Control label (e.g. ``"WT"``); default: a usual name found in the plate map.
    perturbation : str, optional
        Without a plate map: the perturbation of every field (then it is also the control
        unless ``control`` says otherwise).
    plate, batch : str, optional
        Plate name (default: the folder's name) and batch (default: the plate).

    Returns
    -------
    ImageFields
        The fields, their files and their metadata; no pixels are read.
    """
    folder = existing_dir(folder, "image folder")
    pattern = PRESETS.get(pattern, pattern)
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise InputFormatError(f"file-name pattern {pattern!r} is not a valid regular "
                               f"expression: {exc}.", "fix the pattern (Python re syntax).") \
            from exc
    groups = set(rx.groupindex)
    if not ({"site", "channel"} <= groups and ("well" in groups or {"row", "col"} <= groups)):
        raise InputFormatError(
            f"file-name pattern {pattern!r} has groups {sorted(groups)}; it needs named "
            "groups well (or row and col), site and channel.",
            "write them as (?P<well>...), (?P<site>...), (?P<channel>...).")
    tiffs = sorted(p for p in folder.rglob("*") if p.suffix.lower() in TIFF_EXT and p.is_file())
    if not tiffs:
        raise InputFormatError(f"image folder {folder} holds no .tif/.tiff files.",
                               "give the folder with the field images.")

    def _key(m: re.Match) -> tuple[str, str]:
        d = m.groupdict()
        well = d.get("well") or f"{chr(64 + int(d['row']))}{int(d['col']):02d}"
        return well, str(int(d["site"])) if d["site"].isdigit() else d["site"]

    images: dict[tuple[str, str], dict[str, Path]] = {}
    masks: dict[tuple[str, str], dict[str, Path]] = {}
    unmatched = []
    for p in tiffs:
        stem = p.name[: -len(p.suffix)]
        mm = MASK_SUFFIX.match(stem)
        target = mm.group("stem") if mm else stem
        m = rx.fullmatch(target)
        if m is None:
            unmatched.append(p.name)
            continue
        key = _key(m)
        if mm:
            masks.setdefault(key, {})[mm.group("kind").lower()] = p
        else:
            ch = m.group("channel")
            if ch in images.setdefault(key, {}):
                raise ValidationError(
                    f"two files for well {key[0]}, site {key[1]}, channel {ch}: "
                    f"{images[key][ch].name} and {p.name}.",
                    "keep one plate per folder, or make the pattern tell the files apart.")
            images[key][ch] = p
    if not images:
        raise InputFormatError(
            f"no file in {folder} matches the file-name pattern {pattern!r} (e.g. "
            f"{show(unmatched, 3)}).",
            "give --pattern nf1, --pattern jump or your own regular expression with groups "
            "well, site and channel (matched against the name without .tif).")
    found = sorted({c for chans in images.values() for c in chans}, key=_natural)
    cmap = _parse_channels(channels) or {c: c for c in found}
    absent = [k for k in cmap if k not in found]
    if absent:
        raise ValidationError(f"channel(s) {absent} not found in {folder}; channels found: "
                              f"{found}.", "name channels that the file names carry.")
    keys = sorted(images)
    for key in keys:
        lacking = [c for c in cmap if c not in images[key]]
        if lacking:
            raise ValidationError(
                f"field well {key[0]} site {key[1]} has {len(images[key])} channel file(s) "
                f"({', '.join(sorted(images[key], key=_natural))}) but lacks {lacking}; "
                f"every field needs all {len(cmap)} channels ({', '.join(cmap)}).",
                "add the missing files, or choose the channels to import (--channels).")
    shapes = {tiff_shape(images[k][c]) for k in keys[:1] for c in cmap}
    shape = next(iter(shapes))
    planes = {c: tiff_shape(images[keys[0]][c]) for c in cmap}
    stacks = {c: s for c, s in planes.items() if len(s) != 2}
    if stacks:
        c, s = next(iter(stacks.items()))
        raise ValidationError(
            f"{images[keys[0]][c].name} (field {keys[0]}, channel {c}) holds a {len(s)}-D "
            f"image of shape {s}; this reader takes one 2-D plane per channel file.",
            "export one plane per channel (a maximum projection for z-stacks, one file per "
            "time point), or split the stack into single-plane TIFFs before importing.")
    if len(shapes) != 1 or len(shape) != 2:
        raise ValidationError(f"the channels of field {keys[0]} differ in shape: {shapes}.",
                              "give one 2-D plane per channel, all of one size.")
    obs = pd.DataFrame({"well": [k[0] for k in keys], "site": [k[1] for k in keys]})
    plate = plate or folder.name
    obs["plate"] = plate
    obs["batch"] = batch or plate
    obs["_wk"] = obs["well"].map(well_key)
    if platemap is not None:
        pm = platemap if isinstance(platemap, pd.DataFrame) else read_table(platemap, "plate map")
        where = "plate map" if isinstance(platemap, pd.DataFrame) else \
            f"plate map {Path(platemap).name}"
        if well_column is None and well_column not in pm.columns and \
                not any(c in pm.columns for c in WELL_COLUMNS) and \
                {"WellRow", "WellCol"} <= set(pm.columns):
            pm = pm.assign(well=pm["WellRow"].astype(str) + pm["WellCol"].astype(str))
        wcol = pick_column(pm, well_column, WELL_COLUMNS, "well", where, "well-column")
        pcol = pick_column(pm, perturbation_column, PERTURBATION_COLUMNS, "perturbation", where,
                           "perturbation-column")
        pm = pm.assign(_wk=pm[wcol].map(well_key))
        dup = pm[pm["_wk"].duplicated(keep=False)]
        clash = dup.groupby("_wk")[pcol].nunique(dropna=False)
        clash = clash[clash > 1]
        if len(clash):
            w = clash.index[0]
            values = dup.loc[dup["_wk"] == w, pcol].astype(str).unique().tolist()
            raise ValidationError(
                f"{where} lists well(s) {show(list(clash.index))} more than once with different "
                f"perturbations (well {w}: {', '.join(map(repr, values))}).",
                "keep one row per well in the plate map (or give --perturbation-column if "
                "another column is meant).")
        pm = pm.drop_duplicates("_wk")
        lacking = sorted(set(obs["_wk"]) - set(pm["_wk"]))
        if lacking:
            raise ValidationError(f"{where} has no row for well(s) {show(lacking)} of the images.",
                                  "give the plate map of this plate (or check --well-column).")
        extra = pm.drop(columns=[c for c in ("well", "site", "plate", "batch") if c in pm.columns])
        obs = obs.merge(extra, on="_wk", how="left")
        if obs[pcol].isna().any():
            bad = obs.loc[obs[pcol].isna(), "well"].unique().tolist()
            raise ValidationError(f"{where}: column {pcol!r} is empty for well(s) {show(bad)}.",
                                  "fill in the perturbation of every imaged well.")
        obs["perturbation"] = obs[pcol].astype(str)
        control = detect_control(obs["perturbation"], control,
                                 f"{where} (column {pcol!r}, imaged wells)")
    else:
        if perturbation is None:
            raise ValidationError(
                f"no plate map given for {folder}, so the fields have no perturbation.",
                "give --platemap FILE (well and perturbation columns), or --perturbation LABEL "
                "when every field has the same one.")
        obs["perturbation"] = perturbation
        control = control or perturbation
        pcol = None
    obs["is_control"] = (obs["perturbation"] == control).to_numpy(bool)
    obs = obs.drop(columns="_wk")
    obs["field_id"] = [f"{plate}_{w}_s{s}" for w, s in zip(obs["well"], obs["site"])]
    obs.index = obs["field_id"].to_numpy()
    names = list(cmap.values())
    if len(set(names)) != len(names):
        raise ValidationError(f"channel names repeat: {names}.", "give each channel its own name.")
    return ImageFields(
        obs=obs, channel_keys=list(cmap), channel_names=names,
        files=[{c: images[k][c] for c in cmap} for k in keys],
        mask_files=[masks.get(k, {}) for k in keys], shape=shape, control=control,
        info={"pattern": pattern, "perturbation_column": pcol, "n_unmatched_files":
              len(unmatched), "channels_found": found},
    )
