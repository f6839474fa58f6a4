"""Known gene-gene relationships (complexes, pathways, interactions) for recall benchmarks.

A perturbation map is judged by how many known relationships it recovers (Celik et al.
2024, *PLoS Comput Biol*, the EFAAR benchmark). The annotation sets come in two shapes:

* pair files with a header ``entity1,entity2`` (CORUM, hu.MAP, Reactome, SIGNOR, StringDB
  as shipped by ``EFAAR_benchmarking``), some listing each pair in both orientations, some
  in one, some with duplicate rows;
* cluster files (``CORUM_clusters.tsv``): a complex name, a TAB, and its space-separated
  gene symbols, no header; every two members of a complex are related.

:func:`read_relationships` turns either into one clean, symmetric pair table: both
orientations present exactly once, self-pairs dropped, so that a lookup of (A, B) or (B, A)
gives the same answer and counting undirected pairs is ``len(df) // 2``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from workbench.data.readers._tables import PathLike, existing_file, read_table, show
from workbench.data.readers._target import study_step
from workbench.errors import InputFormatError, ValidationError


def _source_name(path: Path) -> str:
    name = path.name
    for suf in (".gz", ".bz2", ".txt", ".tsv", ".csv", ".parquet"):
        name = name.removesuffix(suf)
    return name


def _looks_like_clusters(path: Path) -> bool:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", errors="replace") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise InputFormatError(f"relationship file {path} cannot be read: {exc}.",
                               "it may be truncated; download it again.") from exc
    parts = first.rstrip("\n").split("\t")
    return len(parts) == 2 and " " in parts[1] and "entity1" not in first


def _cluster_pairs(path: Path) -> pd.DataFrame:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    try:
        with opener(path, "rt") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                if "\t" not in line:
                    raise InputFormatError(
                        f"cluster file {path.name}, line {lineno}: no TAB between the cluster "
                        "name and its genes.",
                        "write one cluster per line: NAME<TAB>GENE1 GENE2 ...")
                name, genes = line.split("\t", 1)
                members = sorted(set(genes.split()))
                rows.extend((a, b, name) for a, b in itertools.combinations(members, 2))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cluster file {path} cannot be read: {exc}.",
                               "it may be truncated; download it again.") from exc
    return pd.DataFrame(rows, columns=["entity1", "entity2", "cluster"])


def symmetrise(pairs: pd.DataFrame) -> pd.DataFrame:
    """Both orientations of every pair, once each, without self-pairs (extra columns dropped
    except ``source``, which is joined with ``;`` when a pair comes from several sources).

    Parameters
    ----------
    pairs : pandas.DataFrame
        Pairs in ``entity1`` and ``entity2`` (optionally ``source``).

    Returns
    -------
    pandas.DataFrame
        The pairs in both orientations, sorted, with a fresh index.
    """
    a = pairs["entity1"].astype(str).str.strip()
    b = pairs["entity2"].astype(str).str.strip()
    keep = (a != b) & (a != "") & (b != "") & pairs["entity1"].notna() & pairs["entity2"].notna()
    lo = a.where(a < b, b)[keep]
    hi = b.where(a < b, a)[keep]
    und = pd.DataFrame({"entity1": lo.to_numpy(), "entity2": hi.to_numpy()})
    if "source" in pairs.columns:
        und["source"] = pairs.loc[keep, "source"].astype(str).to_numpy()
        und = (und.groupby(["entity1", "entity2"], sort=True)["source"]
               .agg(lambda s: ";".join(sorted(set(s)))).reset_index())
    else:
        und = und.drop_duplicates().sort_values(["entity1", "entity2"])
    rev = und.rename(columns={"entity1": "entity2", "entity2": "entity1"})
    out = pd.concat([und, rev[und.columns]], ignore_index=True)
    return out.sort_values(["entity1", "entity2"]).reset_index(drop=True)


def read_relationships(
    path: PathLike | Sequence[PathLike],
    *,
    sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read relationship annotation file(s) into a symmetric pair table.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        One file or a list. Pair files: CSV/TSV with ``entity1`` and ``entity2`` columns
        (gzipped or not). Cluster files: ``NAME<TAB>GENE GENE ...`` lines, no header.
    sources : sequence of str, optional
        Names for the files (default: the file names without extensions, e.g. ``CORUM``).

    Returns
    -------
    DataFrame with ``entity1``, ``entity2`` (both orientations, deduplicated, no self-pairs)
    and, when several files are given, ``source`` (``;``-joined where sources agree).
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise InputFormatError("no relationship file given.", "give at least one file.")
    if sources is not None and len(sources) != len(paths):
        raise ValidationError(f"{len(sources)} source names for {len(paths)} files.",
                              "give one source name per file.")
    parts = []
    for k, p in enumerate(paths):
        p = existing_file(p, "relationship file")
        if _looks_like_clusters(p):
            df = _cluster_pairs(p)
        else:
            df = read_table(p, "relationship file", dtype=str, keep_default_na=False)
            missing = [c for c in ("entity1", "entity2") if c not in df.columns]
            if missing:
                raise ValidationError(
                    f"relationship file {p.name} has no column(s) {missing}; columns: "
                    f"{show(df.columns)}.",
                    "give a CSV with a header entity1,entity2 (EFAAR format), or a cluster "
                    "file with lines NAME<TAB>GENE GENE ...")
        if df.empty:
            raise ValidationError(f"relationship file {p.name} holds no pairs.",
                                  "give a file with at least one pair.")
        df = df[["entity1", "entity2"]].copy()
        df["source"] = sources[k] if sources else _source_name(p)
        parts.append(df)
    pairs = symmetrise(pd.concat(parts, ignore_index=True))
    if pairs.empty:
        raise ValidationError(f"{show([Path(p).name for p in paths])}: only self-pairs.",
                              "give pairs of two different genes.")
    if len(paths) == 1:
        pairs = pairs.drop(columns="source")
    return pairs


def load_relationships(study) -> pd.DataFrame:
    """The ``"relationships"`` artefact of a Study as a pair table, whether it was written
    as Parquet (by :func:`import_relationships`) or as a plain EFAAR file.

    Parameters
    ----------
    study : Study
        A Study holding ``"relationships"``.

    Returns
    -------
    pandas.DataFrame
        ``entity1`` and ``entity2`` (and ``source`` when recorded), both orientations of
        every pair.
    """
    obj = study.read("relationships")
    if isinstance(obj, pd.DataFrame):
        return obj
    return read_relationships(obj)


def import_relationships(
    path: PathLike | Sequence[PathLike],
    out,
    *,
    sources: Sequence[str] | None = None,
    overwrite: bool = False,
):
    """Read annotation file(s) (:func:`read_relationships`) and write ``"relationships"``
    (Parquet: entity1, entity2, source).

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        The annotation file(s).
    out : str, os.PathLike or Study
        The Study (or its path) to write into.
    sources : sequence of str or None
        A source name per file; None names each source after its file.
    overwrite : bool
        Replace an existing Study at ``out``.

    Returns
    -------
    Study
        The Study, with ``"relationships"`` written.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    pairs = read_relationships(paths, sources=sources)
    if "source" not in pairs.columns:
        pairs["source"] = sources[0] if sources else _source_name(Path(paths[0]))
    params = {"source": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
              "sources": list(sources) if sources else None}
    with study_step(out, "import_relationships", params, overwrite=overwrite) as tx:
        tx.write_table("relationships", pairs,
                       description="known gene-gene relationships, both orientations")
        tx.note(n_pairs_undirected=int(len(pairs) // 2),
                n_entities=int(pd.unique(pairs["entity1"]).size))
    return tx.study
