"""Genetic-interaction (GI) scores from two real double-perturbation screens.

A genetic interaction is a double phenotype that the singles do not predict. With
phenotypes on a log scale (growth rates, log fold changes of guide abundance) the simplest
expectation is additivity: ``expected(A+B) = phi(A) + phi(B)`` (relative to control), and
``GI(A, B) = phi(A+B) - expected(A+B)``. Replicates give the noise of each score.

- :func:`norman_gi` - Norman et al. 2019 (Science 365:786), CRISPRa in K562: the published
  GI map (``processed_emap``: the authors' scores, which use a fitted, not a purely
  additive, expectation) and our additive GI from the sgRNA-level double phenotypes of the
  two biological replicates, with their replicate noise.
- :func:`parrish_gi` - Parrish et al. 2021 (Cell Reports 36:109597), paired-guide pgPEN
  paralog knockouts: log2 fold changes of guide-pair counts (late vs early time point),
  centred on the non-targeting/non-targeting pairs; single-gene effects from gene + non-
  targeting guide pairs; additive expectation; replicate noise. Our scores are simpler than
  the paper's (no guide-level regression of the expected double, no copy-number
  correction).
- :func:`gi_profile_map` - the GI-profile map: genes are similar when their rows of the GI
  matrix correlate (Norman 2019 built their map this way).

Functions take the screen's folder (the format of the public files; see each folder's
README) and return plain pandas / numpy objects. The published Norman map and the Parrish
counts are read through ``workbench.data.readers`` (``read_gi_matrix``,
``read_guide_counts``), which check the files; the Norman replicate phenotype matrices, which
no reader covers, are parsed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InputFormatError

__all__ = ["GIMatrix", "norman_gi", "parrish_gi", "gi_profile_map"]


@dataclass
class GIMatrix:
    """A gene x gene GI screen.

    Parameters
    ----------
    genes : list of str
        Gene names, in the order of the matrices.
    gi : numpy.ndarray
        ``(n, n)`` symmetric GI scores, NaN where the pair was not measured; diagonal NaN.
    noise : numpy.ndarray
        ``(n, n)`` standard error of each score (NaN where unknown).
    side : pandas.DataFrame
        ``(n, p)`` single-perturbation features (index = genes).
    pairs : pandas.DataFrame
        Long table, one row per measured pair (``gene_a``, ``gene_b``, ``gi``, ``gi_se``, ...).
    source : str
        Short provenance string.
    extra : dict
        Further screen-specific results (e.g. ``additive_gi``); empty by default.
    """

    genes: list[str]
    gi: np.ndarray
    noise: np.ndarray
    side: pd.DataFrame
    pairs: pd.DataFrame
    source: str
    extra: dict = field(default_factory=dict)


def _need(path: Path, name: str) -> Path:
    p = Path(path) / name
    if not p.is_file():
        raise InputFormatError(f"{p} not found.",
                               f"give the folder that holds {name} (see the screen's README).")
    return p


def _to_matrix(genes, a, b, values) -> np.ndarray:
    pos = {g: i for i, g in enumerate(genes)}
    m = np.full((len(genes), len(genes)), np.nan)
    ia = np.array([pos[x] for x in a])
    ib = np.array([pos[x] for x in b])
    m[ia, ib] = values
    m[ib, ia] = values
    np.fill_diagonal(m, np.nan)
    return m


# ---------------------------------------------------------------------------- Norman 2019
def norman_gi(folder: str | os.PathLike) -> GIMatrix:
    """GI map of Norman et al. 2019 plus additive replicate GIs and their noise.

    ``gi`` is the published map (processed_emap, 112 genes). ``extra["additive_gi"]`` holds
    our additive scores from the two sgRNA-level replicates (gene level: mean over the
    guide pairs of two genes; ``phi`` relative to the negative-control guides), and
    ``noise`` their standard error ``|rep1 - rep2| / 2``. ``side`` holds the single growth
    phenotype and its replicate spread.

    Parameters
    ----------
    folder : str or os.PathLike
        The Norman 2019 folder: ``processed_emap``, the sgRNA-to-gene table, the two
        replicates' phenotype matrices and ``single_fitnesses.csv.gz``.

    Returns
    -------
    GIMatrix
        112 genes; ``side`` has ``single_phenotype``, ``single_replicate_diff`` and
        ``single_fitness``; ``pairs`` has ``gi``, ``gi_additive`` and ``gi_se``.
    """
    from workbench.data.readers.genetic_interactions import read_gi_matrix

    folder = Path(folder)
    emap = read_gi_matrix(folder).matrix  # processed_emap, genes sorted, symmetric
    genes = [str(g) for g in emap.index]
    gi = emap.to_numpy(float).copy()
    np.fill_diagonal(gi, np.nan)
    guide_gene = pd.read_csv(_need(folder, "CRISPRa_K562_sgRNA_to_gene.txt.gz"), sep="\t",
                             index_col=0)["gene"].astype(str)
    reps = []
    for r in (1, 2):
        dbl = pd.read_csv(_need(folder, f"CRISPRa_K562_replicate{r}_phenotypeMatrix_abbaAveraged.txt.gz"),
                          sep="\t", index_col=0)
        sgl = pd.read_csv(_need(folder, f"CRISPRa_K562_replicate{r}_singlePhenotypes_abbaAveraged.txt.gz"),
                          sep="\t", index_col=0)
        ctrl = guide_gene.reindex(dbl.index) == "negative"
        # phenotype of a guide = its pairing with the negative-control guides (row mean)
        single = dbl.loc[:, ctrl.to_numpy()].mean(1)
        expected = single.to_numpy()[:, None] + single.to_numpy()[None, :]
        g_sg = dbl.to_numpy(float) - expected
        g_of = guide_gene.reindex(dbl.index).to_numpy()
        df = pd.DataFrame(g_sg, index=g_of, columns=g_of)
        gene_level = df.T.groupby(level=0).mean().T.groupby(level=0).mean()
        reps.append((gene_level, single.groupby(g_of).mean(), sgl))
    common = [g for g in genes if g in reps[0][0].index and g in reps[1][0].index]
    r1 = reps[0][0].loc[common, common].to_numpy()
    r2 = reps[1][0].loc[common, common].to_numpy()
    add = np.full_like(gi, np.nan)
    noise = np.full_like(gi, np.nan)
    idx = [genes.index(g) for g in common]
    add[np.ix_(idx, idx)] = (r1 + r2) / 2
    noise[np.ix_(idx, idx)] = np.abs(r1 - r2) / 2
    np.fill_diagonal(add, np.nan)
    np.fill_diagonal(noise, np.nan)
    s1 = reps[0][1].reindex(genes)
    s2 = reps[1][1].reindex(genes)
    fit = pd.read_csv(_need(folder, "single_fitnesses.csv.gz")).set_index("guide_target")
    side = pd.DataFrame({"single_phenotype": ((s1 + s2) / 2).to_numpy(),
                         "single_replicate_diff": (s1 - s2).abs().to_numpy(),
                         "single_fitness": fit["average_fitness"].reindex(genes).to_numpy()},
                        index=genes).fillna(0.0)
    iu = np.triu_indices(len(genes), 1)
    pairs = pd.DataFrame({"gene_a": np.array(genes)[iu[0]], "gene_b": np.array(genes)[iu[1]],
                          "gi": gi[iu], "gi_additive": add[iu], "gi_se": noise[iu]})
    return GIMatrix(genes, gi, noise, side, pairs, "Norman 2019 CRISPRa K562 GI map",
                    {"additive_gi": add})


# ---------------------------------------------------------------------------- Parrish 2021
def _log2_cpm(counts: pd.Series) -> pd.Series:
    return np.log2((counts + 0.5) / (counts.sum() + 1.0) * 1e6)


def parrish_gi(folder: str | os.PathLike, cell_line: str = "HeLa",
               min_count: int = 50) -> GIMatrix:
    """Additive GI scores of the pgPEN paralog double-knockout screen.

    For each replicate r: ``lfc = log2 CPM(late_r) - log2 CPM(early)`` per guide pair,
    minus the median lfc of the non-targeting/non-targeting pairs. Single effect of gene g
    = mean lfc of its gene+non-targeting pairs; double = mean lfc of the pair's
    gene+gene pgRNAs; ``GI = double - (single_a + single_b)``. The score is the mean over
    replicates; its standard error the replicate sd / sqrt(n_rep).

    Parameters
    ----------
    folder : str or os.PathLike
        The Parrish 2021 folder: the pgPEN library table and the counts of ``cell_line``.
    cell_line : str
        ``"HeLa"`` (Day00 vs Day22 replicates A, B, C) or ``"PC9"`` (pretreatment vs DMSO A,
        B).
    min_count : int
        Guide pairs with fewer early-time-point reads are dropped.

    Returns
    -------
    GIMatrix
        ``pairs`` has ``lfc_double``, ``lfc_a``, ``lfc_b``, ``expected``, ``gi``, ``gi_se``
        and ``z``; ``side`` has ``single_lfc`` and ``single_lfc_sd``; ``extra`` holds
        ``singles_per_replicate`` and ``n_replicates``.
    """
    from workbench.data.readers.guide_counts import guide_counts_wide, read_guide_counts

    folder = Path(folder)
    library = _need(folder, "pgRNA_ID_pgPEN_library_comp.csv.gz")
    if cell_line == "HeLa":
        counts = _need(folder, "PP_pgPEN_HeLa_counts.txt.gz")
        early, late = "Day00_RepA", ["Day22_RepA", "Day22_RepB", "Day22_RepC"]
    elif cell_line == "PC9":
        counts = _need(folder, "counts_pgPEN_PC9_example.tsv.gz")
        early, late = "pretreatment", ["dmsoA", "dmsoB"]
    else:
        raise InputFormatError(f"unknown cell line {cell_line!r}.", "use 'HeLa' or 'PC9'.")
    # tidy reader (checks ids against the library), back to one row per construct;
    # gene1/gene2 are empty at non-targeting positions
    df = guide_counts_wide(read_guide_counts(counts, library, samples=[early, *late]))
    df = df.rename(columns={"gene1": "target1", "gene2": "target2"})
    for c in ("target1", "target2", "target_type"):
        df[c] = df[c].astype(str)
    e = _log2_cpm(df[early].astype(float))
    keep = df[early].to_numpy() >= min_count
    lfc = pd.DataFrame({c: _log2_cpm(df[c].astype(float)) - e for c in late})[keep]
    df = df[keep]
    ntc = (df.target_type == "ntc_ntc").to_numpy()
    lfc = lfc - lfc[ntc].median()
    single_gene = np.where(df.target_type == "gene_ntc", df.target1,
                           np.where(df.target_type == "ntc_gene", df.target2, None))
    is_single = pd.notna(single_gene)
    singles = lfc[is_single].groupby(single_gene[is_single]).mean()  # gene x rep
    dbl_mask = (df.target_type == "gene_gene").to_numpy()
    dd = df[dbl_mask]
    a = np.minimum(dd.target1.astype(str), dd.target2.astype(str))
    b = np.maximum(dd.target1.astype(str), dd.target2.astype(str))
    key = pd.MultiIndex.from_arrays([a, b], names=["gene_a", "gene_b"])
    doubles = lfc[dbl_mask].set_axis(key).groupby(level=[0, 1]).mean()
    ga = doubles.index.get_level_values(0)
    gb = doubles.index.get_level_values(1)
    ok = ga.isin(singles.index) & gb.isin(singles.index)
    doubles = doubles[ok]
    ga, gb = ga[ok], gb[ok]
    sa = singles.reindex(ga).to_numpy()
    sb = singles.reindex(gb).to_numpy()
    gi_rep = doubles.to_numpy() - sa - sb
    n_rep = gi_rep.shape[1]
    pairs = pd.DataFrame({
        "gene_a": ga.astype(str), "gene_b": gb.astype(str),
        "lfc_double": doubles.mean(1).to_numpy(), "lfc_a": sa.mean(1), "lfc_b": sb.mean(1),
        "expected": sa.mean(1) + sb.mean(1), "gi": gi_rep.mean(1),
        "gi_se": gi_rep.std(1, ddof=1) / np.sqrt(n_rep),
    })
    pairs["z"] = pairs.gi / pairs.gi_se.clip(lower=1e-3)
    genes = sorted(set(pairs.gene_a) | set(pairs.gene_b))
    gi = _to_matrix(genes, pairs.gene_a, pairs.gene_b, pairs.gi.to_numpy())
    noise = _to_matrix(genes, pairs.gene_a, pairs.gene_b, pairs.gi_se.to_numpy())
    side = pd.DataFrame({"single_lfc": singles.mean(1).reindex(genes).to_numpy(),
                         "single_lfc_sd": singles.std(1).reindex(genes).to_numpy()},
                        index=genes).fillna(0.0)
    return GIMatrix(genes, gi, noise, side, pairs.reset_index(drop=True),
                    f"Parrish 2021 pgPEN paralog screen ({cell_line})",
                    {"singles_per_replicate": singles, "n_replicates": n_rep})


def gi_profile_map(gi: np.ndarray) -> np.ndarray:
    """Gene-gene similarity of GI profiles: Pearson correlation of the rows of ``gi``.

    Missing entries (and each pair's own entries) are skipped pairwise by centring rows on
    their observed mean and treating NaN as 0 after centring.

    Parameters
    ----------
    gi : numpy.ndarray
        ``(n, n)`` GI scores, NaN where unmeasured.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` correlations, diagonal 1.
    """
    g = np.array(gi, float)
    mask = np.isfinite(g)
    g = np.where(mask, g, 0.0)
    mean = g.sum(1, keepdims=True) / np.maximum(mask.sum(1, keepdims=True), 1)
    c = np.where(mask, g - mean, 0.0)
    norm = np.sqrt((c ** 2).sum(1, keepdims=True))
    c = c / np.where(norm > 0, norm, 1)
    out = c @ c.T
    np.fill_diagonal(out, 1.0)
    return out
