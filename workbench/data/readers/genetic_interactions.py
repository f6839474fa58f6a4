"""Genetic-interaction (GI) maps: a square gene x gene score matrix into a tidy pair table.

A GI score says how far the phenotype of a double perturbation departs from what the two
single perturbations predict. Norman et al. 2019 (*Science* 365:786) measured growth of
K562 cells under CRISPRa of 112 genes alone and in pairs and published the gene-level
scores as a symmetric matrix (``processed_emap.csv``, an "E-MAP" in the sense of
Schuldiner et al. 2005), next to the double-perturbation fitnesses
(``processed_fitnesses.csv``) and the single fitnesses (``single_fitnesses.csv``).

:func:`read_gi_matrix` reads any such square matrix (first column = gene names), checks that
rows and columns name the same genes, and returns

* a tidy table, one row per unordered pair: ``gene_a``, ``gene_b`` (sorted), ``gi_score``,
  and when given ``phenotype_a``, ``phenotype_b`` (singles) and ``phenotype_ab`` (double);
* the square matrix itself (genes x genes, symmetrised).

The tidy table is the ``"gi_scores"`` artefact; the interaction tools and dashboards read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from workbench.data.readers._tables import PathLike, existing_dir, read_table, show
from workbench.data.readers._target import study_step
from workbench.errors import InputFormatError, ValidationError

#: File names of the Norman 2019 folder, used when a folder is given.
NORMAN_FILES = {"matrix": "processed_emap.csv", "singles": "single_fitnesses.csv",
                "doubles": "processed_fitnesses.csv"}
SINGLE_VALUE_COLUMNS = ("average_fitness", "phenotype", "fitness", "a.mean", "mean",
                        "chosen_guide_fitness", "b.mean")


class GIScores(NamedTuple):
    """Result of :func:`read_gi_matrix`: the tidy pair table and the square matrix.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per gene pair: ``gene_a``, ``gene_b``, ``gi_score``, and the single and
        double phenotypes when they were given.
    matrix : pandas.DataFrame
        The symmetric gene x gene score matrix.
    """

    table: pd.DataFrame
    matrix: pd.DataFrame


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in ("", ".gz"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def read_square_matrix(path: PathLike, what: str = "GI matrix") -> pd.DataFrame:
    """A gene x gene matrix with gene names in the first column and the header; checked to be
    square, numeric and over one gene list (columns reordered to the row order).

    Parameters
    ----------
    path : str or os.PathLike
        The matrix file.
    what : str
        What the matrix is, for the message.

    Returns
    -------
    pandas.DataFrame
        The matrix as floats, with the same gene order on both axes.
    """
    df = read_table(path, what, index_col=0)
    name = Path(path).name
    df.index = df.index.astype(str).str.strip()
    df.columns = df.columns.astype(str).str.strip()
    nonnum = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if nonnum:
        raise InputFormatError(
            f"{what} {name}: column(s) {show(nonnum, 5)} are not numeric.",
            "give a matrix with gene names in the first column and the header, numbers "
            "elsewhere (no extra annotation columns).")
    if df.index.duplicated().any() or df.columns.duplicated().any():
        dups = sorted(set(df.index[df.index.duplicated()]) | set(df.columns[df.columns.duplicated()]))
        raise ValidationError(f"{what} {name}: gene(s) {show(dups)} appear twice.",
                              "keep one row and one column per gene.")
    rows, cols = set(df.index), set(df.columns)
    if rows != cols:
        raise ValidationError(
            f"{what} {name} is {df.shape[0]} x {df.shape[1]} and its rows and columns name "
            f"different genes: only in rows {show(sorted(rows - cols), 5)}; only in columns "
            f"{show(sorted(cols - rows), 5)}.",
            "give a square matrix with the same genes, as rows and as columns.")
    return df[list(df.index)].astype(float)


def read_single_phenotypes(path: PathLike, value_column: str | None = None) -> pd.Series:
    """Single-perturbation phenotypes: the first column names the gene, ``value_column`` (or
    the first of average_fitness, phenotype, a.mean ...) holds the value.

    Parameters
    ----------
    path : str or os.PathLike
        The table (CSV/TSV/Parquet).
    value_column : str or None
        The column with the phenotype; None takes the first usual name present.

    Returns
    -------
    pandas.Series
        Phenotype by gene (numeric, non-numbers as NaN; a repeated gene keeps its first value).
    """
    df = read_table(path, "single phenotype table")
    name = Path(path).name
    gene_col = df.columns[0]
    if value_column is None:
        value_column = next((c for c in SINGLE_VALUE_COLUMNS if c in df.columns), None)
    if value_column is None or value_column not in df.columns:
        raise ValidationError(
            f"single phenotype table {name} has no value column "
            f"{value_column or ' / '.join(SINGLE_VALUE_COLUMNS[:4])}; columns: "
            f"{show(df.columns)}.", "name the column that holds the single phenotype.")
    s = pd.Series(pd.to_numeric(df[value_column], errors="coerce").to_numpy(),
                  index=df[gene_col].astype(str).str.strip(), name=value_column)
    return s[~s.index.duplicated()]


def read_gi_matrix(
    path: PathLike,
    *,
    singles: PathLike | None = None,
    doubles: PathLike | None = None,
    single_column: str | None = None,
    include_diagonal: bool = False,
    symmetry_tol: float = 1e-6,
) -> GIScores:
    """Read a square GI score matrix (and optional phenotypes) into a tidy pair table.

    Parameters
    ----------
    path : str or os.PathLike
        The score matrix (CSV/TSV, gzipped or not), or a folder laid out like the Norman 2019
        data (``processed_emap.csv[.gz]``, ``single_fitnesses.csv[.gz]``,
        ``processed_fitnesses.csv[.gz]``).
    singles : str or os.PathLike, optional
        Table of single phenotypes (gene, value); adds ``phenotype_a``/``phenotype_b``.
    doubles : str or os.PathLike, optional
        Square matrix of double-perturbation phenotypes; adds ``phenotype_ab``.
    single_column : str, optional
        Value column of ``singles`` (default: average_fitness, phenotype, a.mean ...).
    include_diagonal : bool
        Keep gene-with-itself entries (two guides against one gene); off by default.
    symmetry_tol : float
        An asymmetric matrix (``|S - S^T|`` above this) is averaged with its transpose, and the
        largest difference is recorded in ``table.attrs["max_asymmetry"]``.

    Returns
    -------
    GIScores(table, matrix). ``table`` columns: gene_a, gene_b, gi_score[, phenotype_a,
    phenotype_b][, phenotype_ab]; pairs with a missing score are dropped.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        folder = existing_dir(path, "GI folder")
        mpath = _find(folder, NORMAN_FILES["matrix"])
        if mpath is None:
            raise InputFormatError(f"folder {folder} has no {NORMAN_FILES['matrix']}[.gz].",
                                   "give the GI matrix file itself.")
        path = mpath
        singles = singles or _find(folder, NORMAN_FILES["singles"])
        doubles = doubles or _find(folder, NORMAN_FILES["doubles"])
    m = read_square_matrix(path)
    order = sorted(m.index)
    m = m.loc[order, order]  # so that gene_a < gene_b in every row
    if m.shape[0] < 2:
        raise ValidationError(f"GI matrix {path.name} has {m.shape[0]} gene(s).",
                              "give a matrix over at least two genes.")
    vals = m.to_numpy()
    asym = np.nanmax(np.abs(vals - vals.T)) if np.isfinite(vals).any() else 0.0
    if asym > symmetry_tol:
        vals = np.nanmean(np.stack([vals, vals.T]), axis=0)
    genes = m.index.to_numpy()
    iu, ju = np.triu_indices(len(genes), k=0 if include_diagonal else 1)
    table = pd.DataFrame({"gene_a": genes[iu], "gene_b": genes[ju], "gi_score": vals[iu, ju]})
    if singles is not None:
        sp = read_single_phenotypes(singles, single_column)
        absent = sorted(set(genes) - set(sp.index))
        if len(absent) == len(genes):
            raise ValidationError(
                f"single phenotype table {Path(singles).name} shares no gene with the GI "
                f"matrix (matrix genes e.g. {show(genes[:5])}; table e.g. {show(sp.index[:5])}).",
                "give the single phenotypes of the same screen.")
        table["phenotype_a"] = sp.reindex(table["gene_a"]).to_numpy()
        table["phenotype_b"] = sp.reindex(table["gene_b"]).to_numpy()
    if doubles is not None:
        dm = read_square_matrix(doubles, "double phenotype matrix")
        dm = dm.reindex(index=genes, columns=genes)
        table["phenotype_ab"] = dm.to_numpy()[iu, ju]
    table = table[np.isfinite(table["gi_score"])].reset_index(drop=True)
    table.attrs["max_asymmetry"] = float(asym)
    matrix = pd.DataFrame(vals, index=genes, columns=genes)
    return GIScores(table, matrix)


def import_gi(path: PathLike, out, *, overwrite: bool = False, **options):
    """Read a GI map (:func:`read_gi_matrix`) and write ``"gi_scores"`` (Parquet).

    Parameters
    ----------
    path : str or os.PathLike
        The GI matrix file.
    out : str, os.PathLike or Study
        The Study (or its path) to write into; created if absent.
    overwrite : bool
        Replace an existing Study at ``out``.
    **options
        Passed to :func:`read_gi_matrix` (``singles``, ``doubles``, ``single_column``,
        ``include_diagonal``, ``symmetry_tol``).

    Returns
    -------
    Study
        The Study, with ``"gi_scores"`` written.
    """
    scores = read_gi_matrix(path, **options)
    params = {"source": str(path), **{k: str(v) if isinstance(v, Path) else v
                                       for k, v in options.items()}}
    table = scores.table
    table.attrs = {}
    with study_step(out, "import_gi", params, overwrite=overwrite) as tx:
        tx.write_table("gi_scores", table, description="genetic-interaction scores per gene pair")
        tx.note(n_genes=int(scores.matrix.shape[0]), n_pairs=int(len(table)))
    return tx.study
