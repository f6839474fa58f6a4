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
    """(features, labels, names) for a pool of demo-world knock-out wells."""
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
    """(features, labels, names): the plate's treated wells with a known mechanism."""
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
