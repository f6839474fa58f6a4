"""Paired-guide (pgRNA) count tables into a tidy table for genetic-interaction scoring.

In a paired-guide screen every construct carries two sgRNAs: against two genes (a double
knockout), against one gene and a non-targeting control (a single), or two non-targeting
controls. The pgPEN library of Parrish et al. 2021 (*Cell Reports* 36:109597) targets 1,030
paralog pairs this way; read counts per construct and sample (time points, replicates,
treatments) are the raw data from which fitness and GI scores are computed (e.g. by the
``gimap`` R package).

:func:`read_guide_counts` joins a count table (``id`` + one integer column per sample) with
the library annotation (``pgRNA_ID``, ``target1``, ``target2``, ``target_type``) and returns
one row per construct and sample::

    pgrna_id  gene1  gene2  guide_type  target_type  paralog_pair  sample  timepoint  replicate  count

``guide_type`` is ``"double"`` (gene_gene), ``"single_ntc"`` (gene_ntc / ntc_gene) or
``"ntc_ntc"``; ``gene1``/``gene2`` are empty for the non-targeting positions. Scoring is left
to the interaction tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.readers._tables import PathLike, existing_file, pick_column, read_table, show
from workbench.data.readers._target import study_step
from workbench.errors import InputFormatError, ValidationError

GUIDE_TYPES = {"gene_gene": "double", "gene_ntc": "single_ntc", "ntc_gene": "single_ntc",
               "ntc_ntc": "ntc_ntc"}
ID_COLUMNS = ("id", "pgRNA_ID", "pgrna_id", "construct", "guide_id")
NON_SAMPLE = {"id", "gene", "seq_1", "seq_2", "pgRNA_ID", "pgrna_id", "construct", "guide_id",
              "paralog_pair", "target1", "target2", "target_type", "sequence"}
_TIME = re.compile(r"(?:day|d|t)_?(\d+)", re.I)
_REP = re.compile(r"rep_?([A-Za-z0-9]+)$", re.I)


def read_library(path: PathLike) -> pd.DataFrame:
    """The library annotation: pgRNA_ID, target1, target2, target_type (a title line above the
    header, as in the pgPEN supplement, is skipped).

    Parameters
    ----------
    path : str or os.PathLike
        The annotation table.

    Returns
    -------
    pandas.DataFrame
        The table, checked: the four columns present, ``target_type`` one of ``gene_gene``,
        ``gene_ntc``, ``ntc_gene``, ``ntc_ntc``, one row per construct.
    """
    path = existing_file(path, "library annotation")
    lib = read_table(path, "library annotation")
    if "pgRNA_ID" not in lib.columns and "target_type" not in lib.columns:
        lib = read_table(path, "library annotation", skiprows=1)
    lib.columns = [str(c).strip().lstrip("\ufeff") for c in lib.columns]
    missing = [c for c in ("pgRNA_ID", "target1", "target2", "target_type")
               if c not in lib.columns]
    if missing:
        raise ValidationError(
            f"library annotation {path.name} lacks column(s) {missing}; columns: "
            f"{show(lib.columns)}.",
            "give the library composition table (pgRNA_ID, target1, target2, target_type "
            "with gene_gene / gene_ntc / ntc_gene / ntc_ntc).")
    unknown = sorted(set(lib["target_type"].dropna().astype(str)) - set(GUIDE_TYPES))
    if unknown:
        raise ValidationError(
            f"library annotation {path.name}: target_type value(s) {show(unknown)} are not "
            f"one of {sorted(GUIDE_TYPES)}.", "use gene_gene, gene_ntc, ntc_gene or ntc_ntc.")
    if lib["pgRNA_ID"].duplicated().any():
        dups = lib.loc[lib["pgRNA_ID"].duplicated(), "pgRNA_ID"].tolist()
        raise ValidationError(f"library annotation {path.name}: pgRNA id(s) {show(dups)} repeat.",
                              "keep one row per construct.")
    return lib


def _sample_info(sample: str) -> tuple[float, str]:
    t = _TIME.search(sample)
    r = _REP.search(sample)
    if t is None and sample.lower().startswith(("pre", "plasmid", "t0")):
        return 0.0, r.group(1) if r else ""
    return (float(t.group(1)) if t else np.nan), (r.group(1) if r else "")


def read_guide_counts(
    counts: PathLike,
    library: PathLike,
    *,
    id_column: str | None = None,
    samples: list[str] | None = None,
    max_unmatched_fraction: float = 0.01,
) -> pd.DataFrame:
    """Join a pgRNA count table with its library into a long, tidy table.

    Parameters
    ----------
    counts : str or os.PathLike
        Count table (TSV/CSV, gzipped or not): an id column (``id``) and one integer column
        per sample; sequence and gene columns are recognised and left out.
    library : str or os.PathLike
        Library annotation (see :func:`read_library`).
    id_column : str, optional
        Name of the id column of ``counts`` (default: id, pgRNA_ID, ...).
    samples : list of str, optional
        Sample columns to keep (default: every numeric column).
    max_unmatched_fraction : float
        Constructs whose id is not in the library are dropped (recorded in
        ``attrs["unmatched_ids"]``); more than this fraction is an error (wrong library).

    Returns
    -------
    DataFrame, one row per construct x sample: pgrna_id, gene1, gene2, guide_type,
    target_type, paralog_pair, sample, timepoint (days; NaN when the name has none),
    replicate, count (int64). ``attrs`` holds ``unmatched_ids`` and ``samples``.
    """
    cpath = existing_file(counts, "count table")
    df = read_table(cpath, "count table")
    where = f"count table {cpath.name}"
    idc = pick_column(df, id_column, ID_COLUMNS, "pgRNA id", where, "id-column")
    if samples is None:
        samples = [c for c in df.columns if c not in NON_SAMPLE and c != idc
                   and pd.api.types.is_numeric_dtype(df[c])]
    else:
        for s in samples:
            pick_column(df, s, (), "sample", where)
    if not samples:
        raise InputFormatError(f"{where} has no numeric sample columns (columns: "
                               f"{show(df.columns)}).", "give one count column per sample.")
    vals = df[samples]
    bad = [s for s in samples if not pd.api.types.is_numeric_dtype(vals[s])]
    if bad or vals.isna().any().any():
        raise ValidationError(f"{where}: sample column(s) {show(bad or samples)} hold missing or "
                              "non-numeric counts.", "fill missing counts with 0.")
    arr = vals.to_numpy()
    if (arr < 0).any() or not np.all(arr == np.round(arr)):
        raise ValidationError(f"{where}: counts must be non-negative integers (raw reads).",
                              "give raw read counts, not normalised values.")
    lib = read_library(library)
    ids = df[idc].astype(str)
    known = ids.isin(set(lib["pgRNA_ID"].astype(str)))
    unmatched = ids[~known].tolist()
    if len(unmatched) > max_unmatched_fraction * len(ids):
        raise ValidationError(
            f"{where}: {len(unmatched)} of {len(ids)} pgRNA ids are not in library "
            f"{Path(library).name} (e.g. {show(unmatched, 4)}).",
            "give the library annotation of the same screen (ids must match pgRNA_ID).")
    df = df.loc[known.to_numpy()]
    ann = lib.set_index(lib["pgRNA_ID"].astype(str)).reindex(df[idc].astype(str))
    n, k = len(df), len(samples)
    tt = ann["target_type"].astype(str).to_numpy()
    g1 = ann["target1"].where(ann["target_type"].isin(["gene_gene", "gene_ntc"]), "")
    g2 = ann["target2"].where(ann["target_type"].isin(["gene_gene", "ntc_gene"]), "")
    times, reps = zip(*(_sample_info(s) for s in samples))
    long = pd.DataFrame({
        "pgrna_id": np.repeat(df[idc].astype(str).to_numpy(), k),
        "gene1": np.repeat(g1.fillna("").astype(str).to_numpy(), k),
        "gene2": np.repeat(g2.fillna("").astype(str).to_numpy(), k),
        "guide_type": np.repeat(pd.Series(tt).map(GUIDE_TYPES).to_numpy(), k),
        "target_type": np.repeat(tt, k),
        "paralog_pair": np.repeat(ann.get("paralog_pair", pd.Series([""] * n))
                                  .fillna("").astype(str).to_numpy(), k),
        "sample": np.tile(np.asarray(samples, dtype=object), n),
        "timepoint": np.tile(np.asarray(times, float), n),
        "replicate": np.tile(np.asarray(reps, dtype=object), n),
        "count": df[samples].to_numpy(np.int64).reshape(-1),
    })
    for c in ("gene1", "gene2", "guide_type", "target_type", "paralog_pair", "sample",
              "replicate"):
        long[c] = long[c].astype("category")
    long.attrs = {"unmatched_ids": unmatched, "samples": list(samples)}
    return long


def guide_counts_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Back to one row per construct and one count column per sample.

    Parameters
    ----------
    long : pandas.DataFrame
        The long table :func:`read_guide_counts` returns (one row per construct x sample).

    Returns
    -------
    pandas.DataFrame
        The construct columns (``pgrna_id``, ``gene1``, ``gene2``, ``guide_type``,
        ``target_type``, ``paralog_pair``) and one count column per sample.
    """
    keys = ["pgrna_id", "gene1", "gene2", "guide_type", "target_type", "paralog_pair"]
    wide = long.pivot_table(index=keys, columns="sample", values="count", observed=True,
                            aggfunc="sum")
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index()


def import_guide_counts(counts: PathLike, out, *, library: PathLike, overwrite: bool = False,
                        **options):
    """Read counts + library (:func:`read_guide_counts`) and write ``"guide_counts"``.

    Parameters
    ----------
    counts : str or os.PathLike
        The count table.
    out : str, os.PathLike or Study
        The Study (or its path) to write into; created if absent.
    library : str or os.PathLike
        The library annotation (see :func:`read_library`).
    overwrite : bool
        Replace an existing Study at ``out``.
    **options
        Passed to :func:`read_guide_counts` (``id_column``, ``samples``,
        ``max_unmatched_fraction``).

    Returns
    -------
    Study
        The Study, with ``"guide_counts"`` written.
    """
    long = read_guide_counts(counts, library, **options)
    unmatched, samples = long.attrs["unmatched_ids"], long.attrs["samples"]
    long.attrs = {}
    params = {"source": str(counts), "library": str(library), **options}
    with study_step(out, "import_guides", params, overwrite=overwrite) as tx:
        tx.write_table("guide_counts", long,
                       description="paired-guide read counts, one row per construct x sample")
        tx.note(n_constructs=int(long["pgrna_id"].nunique()), samples=samples,
                unmatched_ids=unmatched,
                guide_types={str(k): int(v) // len(samples) for k, v in
                             long["guide_type"].value_counts().items()})
    return tx.study
