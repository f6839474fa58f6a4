"""Where an import writes: open or create the Study, keep its control label coherent.

An import parses and checks the user's files *before* it touches the Study, then writes
everything in one transaction (:meth:`workbench.data.study.Study.step`). If the Study did not
exist and the write fails, the new folder is removed again, so a failed import leaves
nothing behind and an existing Study exactly as it was. ``overwrite`` builds the new Study
beside the old one and swaps it in only when the import has succeeded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from workbench.data.study import STUDY_FILE, Study
from workbench.errors import ValidationError

#: Control labels recognised without being told (case-insensitive), most specific first.
COMMON_CONTROLS = ("DMSO", "WT", "wildtype", "wild-type", "wild_type", "negcon", "control",
                   "non-targeting", "nontargeting", "NTC", "EMPTY", "untreated", "mock", "vehicle")


def detect_control(values: pd.Series, given: str | None, where: str,
                   hint_rows: pd.Series | None = None) -> str:
    """The control label: the one given (checked to occur), else one found in the data.

    ``hint_rows`` (bool) marks rows a metadata column calls controls (e.g.
    ``Metadata_pert_type == "control"``); their single perturbation value wins.

    Parameters
    ----------
    values : pandas.Series
        The perturbation of every sample.
    given : str or None
        The control label the user gave; None to find one.
    where : str
        What the data is, for the message.
    hint_rows : pandas.Series of bool or None
        Rows that metadata marks as controls; None when there is no such column.

    Returns
    -------
    str
        The control label.

    Raises
    ------
    ValidationError
        When the given label occurs nowhere, or none can be found.
    """
    present = pd.Series(values.astype(str).unique())
    if given is not None:
        if not (values.astype(str) == given).any():
            raise ValidationError(
                f"{where}: no sample has the control label {given!r}; values present: "
                f"{', '.join(map(repr, present[:10]))}{' ...' if len(present) > 10 else ''}.",
                "give the label your control samples carry (--control), e.g. DMSO or WT.")
        return given
    if hint_rows is not None and hint_rows.any():
        labels = values[hint_rows.to_numpy(bool)].astype(str).unique()
        if len(labels) == 1:
            return str(labels[0])
    lower = {p.lower(): p for p in present}
    for cand in COMMON_CONTROLS:
        if cand.lower() in lower:
            return lower[cand.lower()]
    raise ValidationError(
        f"{where}: no control label given and none of the usual ones ({', '.join(COMMON_CONTROLS[:6])}"
        f", ...) occurs; values present: {', '.join(map(repr, present[:10]))}.",
        "name the control label (--control LABEL).")


def _screen_names(study: Study) -> list[str]:
    return [n for n in ("images", "profiles", "perturbations", "fields") if study.has(n)]


@contextlib.contextmanager
def study_step(out: str | Path | Study, tool: str, params: dict, *,
               control_label: str | None = None, title: str | None = None,
               overwrite: bool = False) -> Iterator:
    """Open (or create) the Study ``out`` and yield a transaction for ``tool``.

    ``control_label`` (screen imports): a new Study is created with it; an existing Study
    with no screen artefacts adopts it; an existing screen Study with another label is
    refused with a ValidationError, because its controls would no longer be found.

    Parameters
    ----------
    out : str, pathlib.Path or Study
        The Study (or its path) to write into; a path without a Study is created.
    tool : str
        The import step's name, recorded in provenance.
    params : dict
        Its parameters, recorded in provenance.
    control_label : str or None
        The control label of a screen import; None for data without controls.
    title : str or None
        Title of a newly created Study; None uses the folder's name.
    overwrite : bool
        Replace an existing Study at ``out``: the new one is built beside it and swapped in
        only when the import succeeds.

    Yields
    ------
    Transaction
        The step's transaction; ``tx.study`` is the Study, refreshed when the block ends.
    """
    created = False
    replace: Path | None = None  # the Study that --overwrite replaces, once this one lands
    if isinstance(out, Study):
        study = out
    else:
        path = Path(out)
        if (path / STUDY_FILE).is_file() and not overwrite:
            study = Study.open(path)
        elif overwrite and path.exists() and any(path.iterdir()):
            if not (path / STUDY_FILE).is_file():
                raise ValidationError(f"{path} is not a Study, so it will not be overwritten.",
                                      "give a new or empty folder, or the path of a Study.")
            # build the new Study beside the old one; the old one goes only on success
            replace = path
            fresh = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
            study = Study.create(fresh, title=title or path.stem,
                                 control_label=control_label or "control")
            created = True
        else:
            existed = path.exists()
            study = Study.create(path, title=title, control_label=control_label or "control",
                                 overwrite=overwrite)
            created = not existed
    if control_label is not None and control_label != study.control_label:
        screens = _screen_names(study)
        if screens:
            raise ValidationError(
                f"Study {study.path.name} uses the control label {study.control_label!r} "
                f"(artefacts {', '.join(screens)}), but this import's controls are "
                f"{control_label!r}.",
                "import into a new Study (--out NEW.study), or relabel the controls so that "
                "both use one label.")
    try:
        with study.step(tool, params=params) as tx:
            if control_label is not None and control_label != study.control_label:
                tx.set_meta("control_label", control_label)
            yield tx
    except BaseException:
        if created:
            shutil.rmtree(study.path, ignore_errors=True)
        raise
    if replace is not None:
        old = replace.with_name(f".{replace.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(replace, old)
        os.replace(study.path, replace)
        shutil.rmtree(old, ignore_errors=True)
        study.path = replace  # callers hold this object (tx.study): it now names the Study
    study.refresh()


def clean_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """Make a metadata table writable by AnnData: text columns become categories.

    AnnData refuses object columns that mix strings and NaN or numbers; categoricals keep
    missing values as missing.

    Parameters
    ----------
    obs : pandas.DataFrame
        The metadata table.

    Returns
    -------
    pandas.DataFrame
        A copy with string column names and index, text columns as categories, and columns
        whose names differ only in case dropped (when identical) or renamed with a suffix.
    """
    obs = obs.copy()
    obs.columns = [str(c) for c in obs.columns]
    # Zarr v3 consolidated metadata loses one of two keys that differ only in case
    # (e.g. LINCS' Metadata_plate_map_name and Metadata_Plate_Map_Name): drop exact copies,
    # rename the others.
    seen: dict[str, str] = {}
    for col in list(obs.columns):
        key = col.lower()
        if key in seen:
            first = seen[key]
            if obs[col].astype(str).equals(obs[first].astype(str)):
                obs = obs.drop(columns=col)
                continue
            k = 2
            while f"{key}_{k}" in seen or f"{col}_{k}" in obs.columns:
                k += 1
            obs = obs.rename(columns={col: f"{col}_{k}"})
            seen[f"{key}_{k}"] = f"{col}_{k}"
        else:
            seen[key] = col
    for col in obs.columns:
        s = obs[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            obs[col] = s.map(lambda v: v if pd.isna(v) else str(v)).astype("category")
    obs.index = obs.index.astype(str)
    obs.columns = [str(c) for c in obs.columns]
    return obs
