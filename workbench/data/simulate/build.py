"""Write a demo world into a Study in one transaction (see :func:`build_demo_study`)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.simulate.grn import sample_trajectories
from workbench.data.simulate.morphology import CHANNELS
from workbench.data.simulate.render import TextureBank, render_cells
from workbench.data.simulate.screen import layout, technical_effects
from workbench.data.simulate.world import World, make_world

CONTROL_LABEL = "control"


def velocity_anndata(world: World, rng: np.random.Generator):
    """Cells x genes AnnData of expression and RNA velocity sampled from the GRN.

    Parameters
    ----------
    world : World
        The demo world; its config gives the trajectories and cells per trajectory.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    anndata.AnnData
        ``X`` = spliced expression; layers ``spliced``, ``unspliced``, ``velocity``; obs
        ``trajectory`` and ``time``; var ``no_effect``; varp ``true_adjacency`` and
        ``true_weights``.
    """
    import anndata as ad

    cfg = world.config
    d = sample_trajectories(world.grn, rng, cfg["trajectories"], cfg["cells_per_trajectory"])
    obs = pd.DataFrame({"trajectory": pd.Categorical([f"T{t:02d}" for t in d["trajectory"]]),
                        "time": d["time"].astype(np.float32)},
                       index=[f"v{i:05d}" for i in range(len(d["time"]))])
    var = pd.DataFrame(index=pd.Index(world.genes, name="gene"))
    var["no_effect"] = [i in world.grn.no_effect for i in range(len(world.genes))]
    adata = ad.AnnData(X=d["spliced"].astype(np.float32), obs=obs, var=var)
    adata.layers["spliced"] = d["spliced"].astype(np.float32)
    adata.layers["unspliced"] = d["unspliced"].astype(np.float32)
    adata.layers["velocity"] = d["velocity"].astype(np.float32)
    adata.varp["true_adjacency"] = world.grn.adjacency.astype(np.float32)
    adata.varp["true_weights"] = world.grn.weights.astype(np.float32)
    adata.uns["workbench"] = {
        "simulated": True,
        "adjacency_convention": "varp['true_adjacency'][i, j] = 1 iff gene j regulates "
                                "the velocity of gene i",
        "velocity": "exact drift dx/dt at the noise-free state; equals beta*u - gamma*s "
                    "for the noise-free unspliced u and spliced s",
    }
    return adata


def render_screen(world: World, seed: int, crop_size: int | None = None, batch_size: int = 512):
    """Layout, latent states, technical effects and a lazy iterator of crop batches.

    Parameters
    ----------
    world : World
        The demo world.
    seed : int
        Seed of the layout, the technical effects, the textures and the rendering.
    crop_size : int, optional
        Crop side in pixels (default: the world's preset).
    batch_size : int
        Crops per yielded batch.

    Returns
    -------
    obs : pandas.DataFrame
        One row per crop (:func:`~workbench.data.simulate.screen.layout`).
    z : numpy.ndarray
        ``(n_crops, n_properties)`` latent states.
    tech : dict
        The technical effects (:func:`~workbench.data.simulate.screen.technical_effects`).
    batches : callable
        Called with no argument, yields uint16 crop batches ``(b, 5, H, W)`` in ``obs`` order.
    """
    rng = np.random.default_rng([seed, 1])
    obs, z = layout(world, rng)
    tech = technical_effects(obs, rng)
    bank = TextureBank(crop_size or world.config["crop_size"], seed=seed)
    render_rng = np.random.default_rng([seed, 2])

    def batches():
        for s in range(0, len(obs), batch_size):
            sl = slice(s, s + batch_size)
            yield render_cells(z[sl], render_rng, bank, gain=tech["gain"][sl],
                               background=tech["background"][sl],
                               illumination=tech["illumination"][sl])

    return obs, z, tech, batches


def build_demo_study(path: str | os.PathLike, size: str = "quick", seed: int = 0,
                     overwrite: bool = False):
    """Build the demo Study of :mod:`workbench.data.simulate` at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Folder of the new Study (e.g. ``"demo.study"``).
    size : str
        ``"tiny"`` (unit tests), ``"quick"`` (tests, a few seconds) or ``"realistic"``
        (the demo: 64 x 64 crops, thousands per plate).
    seed : int
        Everything is deterministic per seed.
    overwrite : bool
        Replace an existing Study at ``path``.

    Returns
    -------
    Study
        The :class:`~workbench.data.study.Study`, holding ``images``, ``velocity``,
        ``relationships`` and ``ground_truth``, written in one ``simulate`` step.
    """
    from workbench.data.study import Study

    t0 = time.perf_counter()
    world = make_world(seed, size)
    study = Study.create(path, title=f"demo world ({size}, seed {seed})",
                         control_label=CONTROL_LABEL, overwrite=overwrite)
    obs, z, tech, batches = render_screen(world, seed)
    truth = world.ground_truth()
    truth["technical"] = {k: v for k, v in tech.items()
                          if k not in ("gain", "background", "illumination")}
    truth["n_crops"] = int(len(obs))
    params = {"size": size, "seed": seed, "n_genes": len(world.genes),
              "crop_size": world.config["crop_size"], "n_crops": int(len(obs))}
    with study.step("simulate", params=params, seed=seed) as tx:
        tx.write_images("images", batches(), obs, CHANNELS, pixel_size_um=0.65)
        tx.describe("images", description="simulated Cell-Painting-like single-cell crops "
                    "(uint16); obs latent_<property> columns hold each cell's true state")
        tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([seed, 3])),
                         screen=False, description="simulated expression and RNA velocity")
        with tempfile.TemporaryDirectory() as tmp:
            rel = Path(tmp) / "relationships.csv"
            world.relationships().to_csv(rel, index=False)
            tx.write_file("relationships", rel, "relationships.csv")
        tx.write_json("ground_truth", truth)
        tx.set_meta("simulated", True)
        tx.note(n_crops=int(len(obs)), n_genes=len(world.genes),
                seconds=round(time.perf_counter() - t0, 2))
    return study
