"""Profile tables into a Study: well-level CellProfiler tables and DeepProfiler single cells.

Well-level tables (pycytominer output, e.g. the LINCS Cell Painting plates of Way et al.
2022, *Cell Systems*) carry ``Metadata_*`` columns beside numeric features. We map the
metadata to the Study's screen contract (``perturbation``, ``is_control``, ``batch``,
``plate``, ``well``, optional ``dose``), keep every other ``Metadata_`` column verbatim in
``obs`` (MOA, target, concentration ...), and put the features in ``X``.

DeepProfiler (Moshkov et al. 2024, *Nat Commun*) writes one ``.npz`` per site with
``features`` (cells x dims), ``locations`` (cell centres) and a ``metadata`` dict; an index
CSV lists plate, well, site and treatment per site. We read both into one AnnData of cells.

Both are written as the ``"profiles"`` artefact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.readers._safe_npz import load_npz
from workbench.data.readers._tables import PathLike, existing_file, pick_column, read_table, show
from workbench.data.readers._target import clean_obs, detect_control, study_step
from workbench.data.schema import coerce_screen_obs
from workbench.errors import InputFormatError, ValidationError

PERTURBATION_COLUMNS = ("Metadata_perturbation", "Metadata_pert_iname", "Metadata_broad_sample",
                        "Metadata_compound", "Metadata_Treatment", "Metadata_pert_id",
                        "Metadata_gene", "Metadata_Gene", "Metadata_Symbol", "Metadata_genotype")
PLATE_COLUMNS = ("Metadata_Plate", "Metadata_plate", "Metadata_Assay_Plate_Barcode")
WELL_COLUMNS = ("Metadata_Well", "Metadata_well", "Metadata_well_position", "Metadata_pert_well")
DOSE_COLUMNS = ("Metadata_dose", "Metadata_mmoles_per_liter", "Metadata_Concentration",
                "Metadata_concentration")
CONTROL_HINT_COLUMNS = ("Metadata_control_type", "Metadata_pert_type",
                        "Metadata_broad_sample_type")
ALIASES = {"moa": ("Metadata_moa", "Metadata_MOA"), "target": ("Metadata_target",)}


def read_profiles_table(
    path: PathLike,
    *,
    perturbation_column: str | None = None,
    control: str | None = None,
    plate_column: str | None = None,
    well_column: str | None = None,
    batch_column: str | None = None,
    dose_column: str | None = None,
    metadata_prefix: str = "Metadata_",
    nan_policy: str = "error",
) -> anndata.AnnData:  # noqa: F821
    """Read a well-level profile table (CSV/TSV, gzipped or not, or Parquet) into AnnData.

    Parameters
    ----------
    path : str or os.PathLike
        The table: one row per well, ``Metadata_*`` columns plus numeric features.
    perturbation_column, plate_column, well_column, dose_column : str, optional
        Columns that hold these fields; by default the usual pycytominer names are looked
        for (``Metadata_broad_sample``, ``Metadata_Plate``, ``Metadata_Well``,
        ``Metadata_mmoles_per_liter`` ...).
    control : str, optional
        The control label (e.g. ``"DMSO"``). By default it is found from a
        ``Metadata_pert_type``/``Metadata_control_type`` column or the usual names.
    batch_column : str, optional
        Column for ``batch``; by default ``batch = plate``.
    metadata_prefix : str
        Prefix of the metadata columns; every other column is a feature and must be numeric.
    nan_policy : str
        ``"error"`` (default), ``"drop_features"`` (drop feature columns with NaN) or
        ``"drop_rows"`` (drop wells with NaN).

    Returns
    -------
    AnnData with wells x features in ``X`` (float32), the contract columns and every
    metadata column in ``obs``, and ``uns["workbench"]`` recording the source and mapping.
    """
    import anndata as ad

    path = existing_file(path, "profile table")
    df = read_table(path, "profile table")
    where = f"profile table {path.name}"
    meta_cols = [c for c in df.columns if str(c).startswith(metadata_prefix)]
    if not meta_cols:
        raise InputFormatError(
            f"{where} has no {metadata_prefix}* columns (first columns: {show(df.columns, 6)}).",
            f"prefix the metadata columns with {metadata_prefix!r} (pycytominer does), or give "
            "the prefix your table uses (--metadata-prefix).")
    feat_cols = [c for c in df.columns if c not in meta_cols]
    bad = [c for c in feat_cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise InputFormatError(
            f"{where}: feature column(s) {show(bad)} are not numeric.",
            f"rename metadata columns to start with {metadata_prefix!r}, or drop them.")
    if not feat_cols:
        raise InputFormatError(f"{where} has metadata columns but no feature columns.",
                               "give a table with numeric feature columns beside the metadata.")
    pcol = pick_column(df, perturbation_column, PERTURBATION_COLUMNS, "perturbation", where,
                       "perturbation-column")
    plcol = pick_column(df, plate_column, PLATE_COLUMNS, "plate", where, "plate-column")
    wcol = pick_column(df, well_column, WELL_COLUMNS, "well", where, "well-column")
    bcol = pick_column(df, batch_column, (), "batch", where, "batch-column", required=False) \
        if batch_column else None
    dcol = pick_column(df, dose_column, DOSE_COLUMNS, "dose", where, "dose-column",
                       required=False)
    if df[pcol].isna().any():
        rows = df.index[df[pcol].isna()].tolist()
        raise ValidationError(
            f"{where}: column {pcol!r} (the perturbation) is empty in {len(rows)} row(s), "
            f"e.g. rows {show(rows, 5)}.",
            "fill those rows, or name another perturbation column (--perturbation-column).")
    hint = None
    for hc in CONTROL_HINT_COLUMNS:
        if hc in df.columns:
            hint = df[hc].astype(str).str.lower().isin(["control", "negcon", "negative_control"])
            break
    control = detect_control(df[pcol], control, where, hint_rows=hint)

    X = df[feat_cols].to_numpy(np.float32)
    bad_vals = ~np.isfinite(X)
    keep_rows = np.ones(len(df), bool)
    if bad_vals.any():
        if nan_policy == "drop_features":
            keep_f = ~bad_vals.any(axis=0)
            feat_cols = [c for c, k in zip(feat_cols, keep_f) if k]
            X = X[:, keep_f]
        elif nan_policy == "drop_rows":
            keep_rows = ~bad_vals.any(axis=1)
            X = X[keep_rows]
        else:
            cols = [c for c, b in zip(feat_cols, bad_vals.any(axis=0)) if b]
            raise ValidationError(
                f"{where}: {int(bad_vals.sum())} NaN/infinite value(s) in feature column(s) "
                f"{show(cols, 5)}.",
                "impute them, or pass nan_policy='drop_features' / 'drop_rows' "
                "(--nan drop-features / drop-rows).")
    meta = df.loc[keep_rows, meta_cols].reset_index(drop=True)
    obs = pd.DataFrame(index=pd.RangeIndex(len(meta)))
    obs["perturbation"] = meta[pcol].astype(str).to_numpy()
    obs["is_control"] = (obs["perturbation"] == control).to_numpy(bool)
    obs["plate"] = meta[plcol].astype(str).to_numpy()
    obs["well"] = meta[wcol].astype(str).to_numpy()
    obs["batch"] = (meta[bcol] if bcol else meta[plcol]).astype(str).to_numpy()
    if dcol:
        obs["dose"] = pd.to_numeric(meta[dcol], errors="coerce").to_numpy()
    for alias, cands in ALIASES.items():
        for c in cands:
            if c in meta.columns:
                obs[alias] = meta[c].to_numpy()
                break
    for c in meta_cols:
        obs[c] = meta[c].to_numpy()
    obs.index = (obs["plate"].astype(str) + "_" + obs["well"].astype(str)).to_numpy()
    if obs.index.duplicated().any():
        obs.index = [f"{i}_{k}" for k, i in enumerate(obs.index)]
    obs = coerce_screen_obs(clean_obs(obs), control)
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[str(c) for c in feat_cols]))
    adata.uns["workbench"] = {
        "source": str(path), "reader": "read_profiles_table", "control_label": control,
        "columns": {"perturbation": pcol, "plate": plcol, "well": wcol,
                    "batch": bcol or plcol, "dose": dcol},
        "n_dropped_rows": int((~keep_rows).sum()),
    }
    return adata


def _npz_files(path: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path, (str, Path)) and Path(path).is_dir():
        files = sorted(Path(path).glob("*.npz"))
        if not files:
            raise InputFormatError(f"folder {path} holds no DeepProfiler .npz files.",
                                   "give the folder DeepProfiler wrote its features into.")
        return files
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    return [existing_file(p, "DeepProfiler file") for p in paths]


def read_deepprofiler(
    path: PathLike | Sequence[PathLike],
    index: PathLike | None = None,
    *,
    perturbation_key: str = "Compound",
    control: str | None = None,
) -> anndata.AnnData:  # noqa: F821
    """Read DeepProfiler single-cell features (``.npz`` per site) into AnnData.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        One ``.npz`` file, a list of them, or a folder of them. Each holds ``features``
        (cells x dims), ``locations`` (cells x 2, x then y) and ``metadata`` (a dict with
        ``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site`` and the treatment).
    index : str or os.PathLike, optional
        Optional DeepProfiler index CSV; when given, every site must be listed in it and the
        perturbation comes from its ``perturbation_key`` column.
    perturbation_key : str
        Metadata key (and index column) that names the perturbation.
    control : str, optional
        Control label; by default found among the usual names (DMSO, ...).

    Returns
    -------
    anndata.AnnData
        Cells x DeepProfiler features (float32); ``obs`` holds perturbation, plate, well,
        site, batch (= plate), ``is_control``, ``cell_id`` and the cell locations;
        ``uns["workbench"]`` records the source files and the control label.
    """
    import anndata as ad

    files = _npz_files(path)
    idx = None
    if index is not None:
        idx = read_table(index, "DeepProfiler index")
        for col in ("Metadata_Plate", "Metadata_Well", "Metadata_Site", perturbation_key):
            pick_column(idx, col, (), col, f"DeepProfiler index {Path(index).name}")
        idx = idx.assign(_key=idx["Metadata_Plate"].astype(str) + "/" +
                         idx["Metadata_Well"].astype(str) + "/" + idx["Metadata_Site"].astype(str))
        idx = idx.drop_duplicates("_key").set_index("_key")
    blocks, obs_parts = [], []
    dim = None
    for f in files:
        try:
            z = load_npz(f)
            names = set(z)
            missing = {"features", "metadata"} - names
            if missing:
                raise InputFormatError(
                    f"DeepProfiler file {f.name} lacks {sorted(missing)} (has "
                    f"{sorted(names)}).", "give the .npz files DeepProfiler's profile step "
                    "writes (features, locations, metadata).")
            feats = np.asarray(z["features"], np.float32)
            locs = np.asarray(z["locations"], float) if "locations" in names else None
            meta = z["metadata"]
            if not isinstance(meta, dict):
                raise InputFormatError(f"DeepProfiler file {f.name}: metadata is a "
                                       f"{type(meta).__name__}, expected a dict.",
                                       "give the .npz files DeepProfiler's profile step writes.")
        except InputFormatError:
            raise
        except Exception as exc:
            raise InputFormatError(f"DeepProfiler file {f} cannot be read: "
                                   f"{type(exc).__name__}: {exc}",
                                   "the file may be truncated; export it again.") from exc
        if feats.ndim != 2:
            raise InputFormatError(f"{f.name}: features have shape {feats.shape}, expected "
                                   "(cells, dims).", "give DeepProfiler single-cell features.")
        if dim is not None and feats.shape[1] != dim:
            raise ValidationError(f"{f.name} has {feats.shape[1]} feature dims, the files "
                                  f"before it {dim}.", "import files from one model only.")
        dim = feats.shape[1]
        plate, well = str(meta.get("Metadata_Plate")), str(meta.get("Metadata_Well"))
        site = str(meta.get("Metadata_Site"))
        key = f"{plate}/{well}/{site}"
        if idx is not None:
            if key not in idx.index:
                raise ValidationError(f"{f.name}: site {key} is not in the index file.",
                                      "give the index CSV of the same DeepProfiler project.")
            pert = idx.loc[key, perturbation_key]
        else:
            if perturbation_key not in meta:
                raise InputFormatError(
                    f"{f.name}: metadata has no {perturbation_key!r} (keys: {show(meta)}).",
                    "name the metadata key of the perturbation (--perturbation-column), or "
                    "give the index CSV.")
            pert = meta[perturbation_key]
        n = feats.shape[0]
        part = pd.DataFrame({
            "perturbation": [str(pert)] * n, "plate": plate, "well": well, "site": site,
            "batch": plate, "treatment": str(meta.get("Treatment", pert)),
            "model": str(meta.get("Metadata_Model", "")),
        })
        if locs is not None and len(locs) == n:
            part["location_x"], part["location_y"] = locs[:, 0], locs[:, 1]
        part.index = [f"{plate}_{well}_s{site}_c{k}" for k in range(n)]
        blocks.append(feats)
        obs_parts.append(part)
    obs = pd.concat(obs_parts)
    control = detect_control(obs["perturbation"], control, "DeepProfiler features")
    obs["is_control"] = (obs["perturbation"] == control).to_numpy(bool)
    obs["cell_id"] = obs.index.astype(str)
    obs = coerce_screen_obs(clean_obs(obs), control)
    adata = ad.AnnData(X=np.concatenate(blocks), obs=obs,
                       var=pd.DataFrame(index=[f"dp_{k}" for k in range(dim)]))
    adata.uns["workbench"] = {"source": [str(f) for f in files], "reader": "read_deepprofiler",
                              "index": str(index) if index else None, "control_label": control}
    return adata


def import_profiles(
    path: PathLike | Sequence[PathLike],
    out,
    *,
    kind: str = "auto",
    index: PathLike | None = None,
    control: str | None = None,
    overwrite: bool = False,
    **options,
):
    """Read profiles (a well-level table or DeepProfiler ``.npz``) and write ``"profiles"``.

    ``kind`` is ``"table"``, ``"deepprofiler"`` or ``"auto"`` (``.npz`` files or folders
    are DeepProfiler). ``out`` is a Study path (created if needed) or an open Study.
    Options go to :func:`read_profiles_table` / :func:`read_deepprofiler`. Returns the Study.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        The table, or the DeepProfiler ``.npz`` file(s) or folder.
    out : str, os.PathLike or Study
        The Study (or its path) to write into.
    kind : str
        ``"table"``, ``"deepprofiler"`` or ``"auto"``.
    index : str, os.PathLike or None
        DeepProfiler index CSV; None without one.
    control : str or None
        The control label; None finds it.
    overwrite : bool
        Replace an existing Study at ``out``.
    **options
        Passed to the reader.

    Returns
    -------
    Study
        The Study, with ``"profiles"`` written.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if kind == "auto":
        p0 = Path(paths[0])
        kind = "deepprofiler" if (p0.suffix == ".npz" or p0.is_dir()) else "table"
    if kind == "deepprofiler":
        adata = read_deepprofiler(paths if len(paths) > 1 else paths[0], index, control=control,
                                  **options)
    elif kind == "table":
        if len(paths) != 1:
            raise InputFormatError("a profile table import takes one file.",
                                   "import tables one at a time, or concatenate them first.")
        adata = read_profiles_table(paths[0], control=control, **options)
    else:
        raise InputFormatError(f"unknown profiles kind {kind!r}.",
                               "use 'table', 'deepprofiler' or 'auto'.")
    wb = adata.uns["workbench"]
    params = {"source": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
              "kind": kind, "index": str(index) if index else None, **options}
    with study_step(out, "import_profiles", params, control_label=wb["control_label"],
                    overwrite=overwrite) as tx:
        tx.write_anndata("profiles", adata, screen=True,
                         description=f"{kind} profiles from {Path(paths[0]).name}")
        tx.note(n_obs=int(adata.n_obs), n_features=int(adata.n_vars),
                n_controls=int(adata.obs["is_control"].sum()),
                n_perturbations=int(adata.obs["perturbation"].nunique()))
    return tx.study
