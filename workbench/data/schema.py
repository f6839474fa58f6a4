"""The Study contract for screen tables, checked at the door.

Screen data (one row per crop, cell or well) carries these ``obs`` columns:

=============== ========= ===========================================================
column          dtype     meaning
=============== ========= ===========================================================
``perturbation`` string   what was done to the sample; controls carry the Study's
                          control label (``study.json: control_label``)
``is_control``  bool      whether the row is a control
``batch``       string    the unit of technical variation that controls align
``plate``       string    plate barcode
``well``        string    well name
=============== ========= ===========================================================

Optional: ``site``, ``cell_id``, ``dose``, ``perturbation_type``, ``genes`` (``"A+B"`` for a
double perturbation). The checks below raise :class:`~workbench.errors.ValidationError`
with a message that names the column, the rows and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from workbench.errors import UnknownGeneError, ValidationError

REQUIRED_OBS: tuple[str, ...] = ("perturbation", "is_control", "batch", "plate", "well")
OPTIONAL_OBS: tuple[str, ...] = ("site", "cell_id", "dose", "perturbation_type", "genes")


def _suggest(name: str, candidates: Iterable[str]) -> str:
    by_lower = {str(c).lower(): str(c) for c in candidates}
    close = [by_lower[c] for c in
             difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _show(values: Sequence, limit: int = 5) -> str:
    values = list(values)
    head = ", ".join(repr(v) for v in values[:limit])
    return head + (f" and {len(values) - limit} more" if len(values) > limit else "")


def validate_screen_obs(obs: pd.DataFrame, control_label: str, where: str = "obs") -> None:
    """Check the required screen columns, their dtypes, and that every batch has controls.

    Parameters
    ----------
    obs : pandas.DataFrame
        The screen table (one row per image, cell or well).
    control_label : str
        The control label, named in the message when there are no controls.
    where : str
        What the table is, for the message.

    Raises
    ------
    ValidationError
        When a required column is missing, ``is_control`` is not bool, a column holds missing
        values or non-strings, the ``genes`` column is malformed, there are no controls, or a
        batch has no controls.
    """
    missing = [c for c in REQUIRED_OBS if c not in obs.columns]
    if missing:
        hints = "".join(f"\n  - {c!r}{_suggest(c, obs.columns)}" for c in missing)
        raise ValidationError(
            f"{where} is missing required column(s):{hints}\n  present: {_show(obs.columns, 12)}",
            "rename your columns to the Study names (perturbation, is_control, batch, plate, "
            "well), e.g. df.rename(columns={'Metadata_Plate': 'plate'}); readers in "
            "workbench.data.readers do this for the formats they know.",
        )
    if not (pd.api.types.is_bool_dtype(obs["is_control"])):
        raise ValidationError(
            f"{where}['is_control'] has dtype {obs['is_control'].dtype}, expected bool.",
            "set it with obs['is_control'] = obs['perturbation'] == CONTROL_LABEL, "
            "or .astype(bool) when it holds 0/1.",
        )
    for col in ("perturbation", "batch", "plate", "well"):
        s = obs[col]
        if s.isna().any():
            rows = obs.index[s.isna().to_numpy()]
            raise ValidationError(
                f"{where}[{col!r}] has {int(s.isna().sum())} missing value(s), "
                f"in rows {_show(rows)}.",
                f"fill or drop those rows; every sample needs a {col}.",
            )
        if not (
            pd.api.types.is_string_dtype(s)
            or isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(s)
        ):
            raise ValidationError(
                f"{where}[{col!r}] has dtype {s.dtype}, expected strings.",
                f"convert it with obs[{col!r}] = obs[{col!r}].astype(str).",
            )
    if "genes" in obs.columns:
        _check_gene_sets(obs["genes"], where)
    is_ctrl = obs["is_control"].to_numpy(bool)
    if not is_ctrl.any():
        raise ValidationError(
            f"{where} has no control rows (is_control is False everywhere; control label "
            f"{control_label!r}).",
            "mark your control wells (e.g. DMSO, non-targeting guides) with is_control=True, "
            "or give the right control label when importing.",
        )
    batches = obs["batch"].astype(str).to_numpy()
    with_ctrl = set(batches[is_ctrl])
    lacking = sorted(set(batches) - with_ctrl)
    if lacking:
        raise ValidationError(
            f"{where}: batch(es) {_show(lacking)} have perturbed samples but no controls; "
            "normalisation on controls cannot align them.",
            "add the control wells of those batches, or merge the batches with the batch "
            "that holds their controls (obs['batch'] = ...).",
        )


def _check_gene_sets(genes: pd.Series, where: str) -> None:
    """``genes`` holds "" (controls), "A" (a single) or "A+B" (a double) in every row."""
    values = pd.Series(genes.astype(object).where(genes.notna(), "").astype(str).unique())
    parts = values.str.split("+")
    too_many = values[parts.map(len) > 2].tolist()
    if too_many:
        raise ValidationError(
            f"{where}['genes'] names more than two genes in {_show(too_many)}; the workbench "
            "analyses single and double perturbations.",
            "split higher-order combinations out of this table, or record them in another "
            "column (the genes column must be '', 'A' or 'A+B').")
    empty = values[parts.map(lambda p: len(p) == 2 and (not p[0].strip() or not p[1].strip()))]
    twice = values[parts.map(lambda p: len(p) == 2 and p[0].strip() == p[1].strip() != "")]
    for bad, what in ((empty.tolist(), "an empty gene name"), (twice.tolist(), "one gene twice")):
        if bad:
            raise ValidationError(
                f"{where}['genes'] has {what} in {_show(bad)}.",
                "write a double as 'A+B' with two different gene names, a single as 'A'.")


def coerce_screen_obs(obs: pd.DataFrame, control_label: str) -> pd.DataFrame:
    """Return a copy with string categories and a bool ``is_control`` derived if absent.

    Parameters
    ----------
    obs : pandas.DataFrame
        A screen table.
    control_label : str
        The perturbation label of controls, used to derive ``is_control``.

    Returns
    -------
    pandas.DataFrame
        The copy: the screen columns without missing values as categories of strings, and a
        string index.
    """
    obs = obs.copy()
    if "is_control" not in obs.columns and "perturbation" in obs.columns:
        obs["is_control"] = obs["perturbation"].astype(str) == control_label
    for col in ("perturbation", "batch", "plate", "well", "perturbation_type", "genes", "site"):
        if col in obs.columns and not obs[col].isna().any():
            obs[col] = obs[col].astype(str).astype("category")
    obs.index = obs.index.astype(str)
    return obs


def validate_matrix(x, where: str) -> None:
    """Check that an embedding or profile matrix is 2-D, numeric and finite.

    Parameters
    ----------
    x : array-like or scipy.sparse matrix
        The matrix (samples x features).
    where : str
        What it is, for the message.

    Raises
    ------
    ValidationError
        When it is not 2-D, not real-valued, or holds NaN or infinite values.
    """
    arr = np.asarray(x) if not hasattr(x, "toarray") else x.toarray()
    if arr.ndim != 2:
        raise ValidationError(
            f"{where} has shape {arr.shape}; expected a 2-D matrix (samples x features).",
            "reshape it to (n_samples, n_features).",
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValidationError(
            f"{where} has dtype {arr.dtype}; expected real numbers.",
            "convert it with .astype('float32') after removing non-numeric columns.",
        )
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            n_nan = int(np.isnan(arr).sum())
            raise ValidationError(
                f"{where} has {n_nan} NaN and {int(bad.sum()) - n_nan} infinite value(s) "
                f"in {rows.size} row(s), first rows {_show(rows.tolist())}.",
                "drop or impute those rows before writing (e.g. features with NaNs from "
                "failed segmentation), or re-run the embedding step on those images.",
            )


def check_names(
    names: Iterable[str], universe: Iterable[str], kind: str = "gene", where: str = "the data"
) -> list[str]:
    """Return ``names`` as a list if all are in ``universe``; else raise UnknownGeneError.

    Parameters
    ----------
    names : iterable of str
        The names asked for.
    universe : iterable of str
        The names the data holds.
    kind : str
        What the names are (``"gene"``, ``"perturbation"``), for the message.
    where : str
        Where they were looked up, for the message.

    Returns
    -------
    list of str
        ``names``, as strings.

    Raises
    ------
    UnknownGeneError
        Listing up to ten unknown names, each with the closest known name.
    """
    names = [str(n) for n in names]
    uni = {str(u) for u in universe}
    unknown = [n for n in names if n not in uni]
    if unknown:
        hints = "".join(f"\n  - {n!r}{_suggest(n, uni)}" for n in unknown[:10])
        raise UnknownGeneError(
            f"{len(unknown)} {kind} name(s) not in {where}:{hints}",
            f"check the spelling and case; the {kind}s present are listed by `workbench info`.",
        )
    return names
