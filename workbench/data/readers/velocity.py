"""Spliced / unspliced count matrices into a Study, for RNA velocity and GRN inference.

RNA velocity (La Manno et al. 2018, *Nature*; Bergen et al. 2020, *Nat Biotechnol*) compares
each gene's unspliced (nascent) and spliced (mature) mRNA in every cell. Velocyto, STARsolo
and kb-python write them as ``layers["spliced"]`` and ``layers["unspliced"]`` of an AnnData.
We check that both are there, of one shape and (by default) raw integer counts, and write the
``"velocity"`` artefact: cells x genes with those two layers, ``X`` = spliced counts, the cell
annotation (clusters, cell types, time) and embeddings kept; later steps (``workbench grn``)
add velocity and the network posterior in the ``"grn"`` artefact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.readers._tables import PathLike, show
from workbench.data.readers._target import clean_obs, study_step
from workbench.errors import InputFormatError, ValidationError

CELL_TYPE_KEYS = ("cell_type", "celltype", "CellType", "clusters", "cluster", "leiden",
                  "louvain", "annotation")
LAYERS = ("spliced", "unspliced")


#: Layers of a file's own velocity analysis (scVelo's names) that are kept by default.
OWN_VELOCITY_LAYERS = ("velocity", "Ms", "Mu")


def _read_any(path: Path):
    import anndata as ad

    if not path.exists():
        raise InputFormatError(f"velocity file {path} does not exist.", "check the path.")
    try:
        if path.suffix == ".zarr" or path.is_dir():
            return ad.read_zarr(path)
        if path.suffix == ".h5ad":
            return ad.read_h5ad(path)
    except Exception as exc:
        raise InputFormatError(
            f"velocity file {path} cannot be read as AnnData: {type(exc).__name__}: {exc}",
            "the file may be truncated or corrupted; write it again (adata.write_h5ad).",
        ) from exc
    raise InputFormatError(f"velocity file {path} is neither .h5ad nor .zarr.",
                           "save the AnnData with adata.write_h5ad('cells.h5ad') and give that.")


def _is_integer(m) -> bool:
    data = m.data if hasattr(m, "data") and hasattr(m, "indptr") else np.asarray(m)
    data = np.asarray(data)
    if data.dtype.kind in "iu":
        return True
    return bool(np.all(np.isfinite(data)) and np.all(data == np.round(data)) and
                (data.size == 0 or data.min() >= 0))


def read_velocity(
    path: PathLike,
    *,
    require_integer: bool = True,
    cell_type_key: str | None = None,
    keep_layers: tuple[str, ...] = (),
    own_velocity: bool = True,
) -> anndata.AnnData:  # noqa: F821
    """Read an AnnData with spliced/unspliced layers and check it.

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5ad`` or ``.zarr`` AnnData with ``layers["spliced"]`` and ``layers["unspliced"]``.
    require_integer : bool
        Refuse layers that are not non-negative integer counts (normalised or smoothed data
        gives wrong velocities). Pass ``False`` for pre-processed data (e.g. scVelo outputs).
    cell_type_key : str, optional
        ``obs`` column with the cell types; by default ``clusters``, ``cell_type`` ... if
        present. Recorded in ``uns["workbench"]["cell_type_key"]``.
    keep_layers : tuple of str
        Other layers to carry over (e.g. ``("ambiguous",)``).
    own_velocity : bool
        Keep the file's own ``velocity``, ``Ms`` and ``Mu`` layers (scVelo's names) when
        present, so the GRN step uses them; ``False`` drops them and velocity is recomputed.

    Returns
    -------
    AnnData (cells x genes): ``X`` and ``layers["spliced"]`` the spliced counts,
    ``layers["unspliced"]``, ``obs``/``var`` as given, ``obsm`` embeddings kept.
    """
    import anndata as ad
    import scipy.sparse as sp

    path = Path(path).expanduser()
    src = _read_any(path)
    missing = [k for k in LAYERS if k not in src.layers]
    if missing:
        found = sorted(src.layers.keys())
        raise ValidationError(
            f"velocity file {path.name} has no layer(s) {missing}; layers found: "
            f"{show(found) if found else 'none'}.",
            "give an AnnData from velocyto / STARsolo (Velocyto) / kb-python with "
            "layers['spliced'] and layers['unspliced'], or rename yours "
            "(adata.layers['spliced'] = adata.layers['<name>']).")
    for extra in keep_layers:
        if extra not in src.layers:
            raise ValidationError(f"velocity file {path.name} has no layer {extra!r}.",
                                  f"layers present: {show(sorted(src.layers.keys()))}.")
    for k in LAYERS:
        if src.layers[k].shape != src.shape:
            raise ValidationError(f"{path.name}: layer {k!r} has shape {src.layers[k].shape}, "
                                  f"the data {src.shape}.", "write the layers cells x genes.")
    if require_integer:
        for k in LAYERS:
            if not _is_integer(src.layers[k]):
                raise ValidationError(
                    f"{path.name}: layer {k!r} holds non-integer or negative values; it looks "
                    "normalised, not raw counts.",
                    "give the raw count layers, or pass require_integer=False "
                    "(--allow-normalized) if you know the data are pre-processed.")
    for k in LAYERS:
        m = src.layers[k]
        data = m.data if sp.issparse(m) else np.asarray(m)
        if not np.all(np.isfinite(data)):
            raise ValidationError(f"{path.name}: layer {k!r} has NaN or infinite values.",
                                  "fill or drop those genes before importing.")
    own = tuple(k for k in OWN_VELOCITY_LAYERS if own_velocity and k in src.layers
                and k not in keep_layers and src.layers[k].shape == src.shape)
    # scVelo leaves NaN velocity for genes it did not fit: kept as is, refused by the GRN
    # step only if such a gene is selected
    layers = {k: (sp.csr_matrix(src.layers[k]) if sp.issparse(src.layers[k])
                  else np.asarray(src.layers[k])) for k in (*LAYERS, *keep_layers, *own)}
    key = cell_type_key
    if key is not None and key not in src.obs.columns:
        raise ValidationError(f"{path.name}: obs has no column {key!r} for cell types; columns: "
                              f"{show(src.obs.columns)}.", "name one of these (--cell-type-key).")
    if key is None:
        key = next((k for k in CELL_TYPE_KEYS if k in src.obs.columns), None)
    obsm = {k: np.asarray(v) for k, v in src.obsm.items()
            if not isinstance(v, pd.DataFrame) and np.all(np.isfinite(np.asarray(v)))}
    var = src.var.copy()
    var.index = var.index.astype(str)
    if var.index.duplicated().any():
        dups = var.index[var.index.duplicated()].unique().tolist()
        raise ValidationError(f"{path.name}: gene names repeat ({show(dups)}).",
                              "make them unique (adata.var_names_make_unique()).")
    adata = ad.AnnData(X=layers["spliced"].copy(), obs=clean_obs(src.obs), var=clean_obs(var),
                       layers=layers, obsm=obsm)
    adata.uns["workbench"] = {
        "source": str(path), "reader": "read_velocity", "cell_type_key": key,
        "integer_counts": bool(all(_is_integer(layers[k]) for k in LAYERS)),
        "total_spliced": float(layers["spliced"].sum()),
        "total_unspliced": float(layers["unspliced"].sum()),
    }
    return adata


def import_velocity(path: PathLike, out, *, overwrite: bool = False, **options):
    """Read spliced/unspliced data (:func:`read_velocity`) and write ``"velocity"``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.h5ad`` or ``.zarr`` AnnData.
    out : str, os.PathLike or Study
        The Study (or its path) to write into.
    overwrite : bool
        Replace an existing Study at ``out``.
    **options
        Passed to :func:`read_velocity` (``require_integer``, ``cell_type_key``,
        ``keep_layers``, ``own_velocity``).

    Returns
    -------
    Study
        The Study, with ``"velocity"`` written.
    """
    adata = read_velocity(path, **options)
    params = {"source": str(path), **{k: list(v) if isinstance(v, tuple) else v
                                       for k, v in options.items()}}
    with study_step(out, "import_velocity", params, overwrite=overwrite) as tx:
        tx.write_anndata("velocity", adata, screen=False,
                         description=f"spliced/unspliced counts from {Path(path).name}")
        tx.note(n_cells=int(adata.n_obs), n_genes=int(adata.n_vars),
                cell_type_key=adata.uns["workbench"]["cell_type_key"])
    return tx.study
