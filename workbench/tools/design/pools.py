"""Fully measured pools and hit tables on which a planner can be replayed.

* :func:`demo_world_pool`: wells of the demo world's single knock-outs; features are a
  cheap noisy morphology readout (mean latent state of a few cells), the label is the
  knocked-out gene's pathway (``"none"`` for the planted no-effect genes).
* :func:`lincs_moa_pool`: the LINCS Cell Painting plate's treated wells, features from
  their profiles, label the compound's mechanism of action.
* :func:`demo_hit_table`: a demo-world perturbation library, score = phenotype strength
  (shift of nucleus size).
* :func:`norman_hit_table`: Norman et al. 2019 CRISPRa genes, features = each gene's row of
  the genetic-interaction map, score = the single-perturbation growth phenotype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

__all__ = ["demo_world_pool", "lincs_moa_pool", "demo_hit_table", "norman_hit_table"]


def demo_world_pool(seed: int = 0, size: str = "realistic", wells_per_gene: int = 40,
                    cells_per_well: int = 3, noise: float = 0.5):
    """(features, labels, names) for a pool of demo-world knock-out wells.

    Parameters
    ----------
    seed : int
        Seed of the demo world and of the wells drawn.
    size : str
        Demo world size preset.
    wells_per_gene : int
        Wells per knocked-out gene.
    cells_per_well : int
        Cells averaged into one well's readout.
    noise : float
        Standard deviation of the Gaussian noise added to each well's mean latent state.

    Returns
    -------
    features : numpy.ndarray
        ``(n_wells, n_latent)`` readouts.
    labels : numpy.ndarray
        The knocked-out gene's pathway per well (``"none"`` for no-effect genes).
    names : numpy.ndarray
        Well names, ``GENE_wNN``.
    """
    from workbench.data.simulate import make_world
    from workbench.data.simulate.morphology import sample_latents

    world = make_world(seed, size)
    gt = world.ground_truth()
    group = {g: name for name, members in gt["groups"].items() for g in members}
    rng = np.random.default_rng([seed, 31])
    X, y, names = [], [], []
    for gene in world.genes:
        for w in range(wells_per_gene):
            z = sample_latents(world.morphology, gene, cells_per_well, rng, survival=False)
            X.append(z.mean(0) + noise * rng.standard_normal(z.shape[1]))
            y.append(group.get(gene, "none") if gene not in gt["no_effect"] else "none")
            names.append(f"{gene}_w{w:02d}")
    return np.array(X), np.array(y), np.array(names)


def lincs_moa_pool(path: str | Path):
    """(features, labels, names): the plate's treated wells with a known mechanism.

    Parameters
    ----------
    path : str or pathlib.Path
        A profile table with a ``Metadata_moa`` column (read by
        :func:`~workbench.data.readers.read_profiles_table`).

    Returns
    -------
    features : numpy.ndarray
        The kept wells' profiles.
    labels : numpy.ndarray
        Their mechanism of action.
    names : numpy.ndarray
        Their well names.
    """
    from workbench.data.readers import read_profiles_table

    adata = read_profiles_table(path)
    obs = adata.obs
    keep = (~obs["is_control"].to_numpy(bool)) & obs["moa"].notna().to_numpy()
    if keep.sum() == 0:
        raise ValidationError(f"{Path(path).name} has no treated wells with a 'moa' label.",
                              "give a profile table with a Metadata_moa column.")
    X = np.asarray(adata.X, float)[keep]
    return X, obs["moa"].astype(str).to_numpy()[keep], obs_names(adata)[keep]


def obs_names(adata) -> np.ndarray:
    """The observation names of ``adata`` as a string array.

    Parameters
    ----------
    adata : anndata.AnnData
        Any AnnData.

    Returns
    -------
    numpy.ndarray
        ``adata.obs_names`` as ``str``.
    """
    return np.asarray(adata.obs_names, str)


def demo_hit_table(seed: int = 0, n_candidates: int = 1500, noise: float = 0.7,
                   hit_fraction: float = 0.05, phenotype: str = "nucleus_size"):
    """(features, score, hits, names): a demo-world library of perturbations for hit finding.

    Each candidate acts on a few of the demo world's genes with random strengths (like a
    library of compounds or guides hitting those genes); its latent shift is the mix of the
    genes' knock-out effects. Features are a noisy record of which genes it acts on (what a
    prior assay or annotation would give); the score is the phenotype strength, the shift
    of ``phenotype`` (default nucleus size) in control-sd units; the hits are the top
    ``hit_fraction``.

    Parameters
    ----------
    seed : int
        Seed of the (realistic) demo world and of the library drawn.
    n_candidates : int
        Number of candidate perturbations.
    noise : float
        Standard deviation of the noise on the features.
    hit_fraction : float
        Fraction of candidates, by score, marked as hits.
    phenotype : str
        The morphology property whose shift is the score (one of
        :data:`~workbench.data.simulate.PROPERTIES`).

    Returns
    -------
    features : numpy.ndarray
        ``(n_candidates, n_genes)`` noisy record of the genes each candidate acts on.
    score : numpy.ndarray
        Phenotype strength per candidate.
    hits : numpy.ndarray of bool
        The top ``hit_fraction`` by score.
    names : numpy.ndarray
        Candidate names ``P0000``, ``P0001``, ...
    """
    from workbench.data.simulate import PROPERTIES, make_world

    world = make_world(seed, "realistic")
    gt = world.ground_truth()
    effects = np.array([gt["effects"][g] for g in world.genes])
    rng = np.random.default_rng([seed, 37])
    n_genes = len(effects)
    w = rng.gamma(2.0, 0.5, (n_candidates, n_genes)) * (rng.random((n_candidates, n_genes)) < 0.15)
    shift = w @ effects
    score = shift[:, list(PROPERTIES).index(phenotype)]
    X = w + noise * rng.standard_normal(w.shape)
    hits = score >= np.quantile(score, 1 - hit_fraction)
    return X, score, hits, np.array([f"P{i:04d}" for i in range(n_candidates)])


def norman_hit_table(folder: str | Path, hit_fraction: float = 0.1):
    """(features, score, hits, names) from the Norman 2019 GI map and single phenotypes.

    The score is the negated single-perturbation growth phenotype (larger = stronger growth
    defect); the hits are the top ``hit_fraction`` of genes.

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder with ``processed_emap.csv.gz`` and ``single_fitnesses.csv.gz``.
    hit_fraction : float
        Fraction of genes, by score, marked as hits.

    Returns
    -------
    features : numpy.ndarray
        Each gene's row of the GI map (missing values as 0), restricted to genes with a
        single phenotype.
    score : numpy.ndarray
        Negated average single-perturbation fitness.
    hits : numpy.ndarray of bool
        The top ``hit_fraction`` by score.
    names : numpy.ndarray
        Gene names.
    """
    folder = Path(folder)
    emap = pd.read_csv(folder / "processed_emap.csv.gz", index_col=0)
    single = pd.read_csv(folder / "single_fitnesses.csv.gz").set_index("guide_target")
    genes = [g for g in emap.index if g in single.index]
    X = emap.loc[genes, genes].to_numpy(float)
    X = np.nan_to_num(X)
    score = -single.loc[genes, "average_fitness"].to_numpy(float)
    hits = score >= np.quantile(score, 1 - hit_fraction)
    return X, score, hits, np.array(genes)
