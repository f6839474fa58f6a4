"""The screen: batches, plates, wells and sites, with the technical effects of each.

Every batch holds ``plates_per_batch`` plates; every plate holds one well of each single and
double knockout of the world (so each perturbation has one replicate well per plate) and
``control_wells`` control wells, placed at shuffled positions of a 384-well layout. The
number of cells imaged in a well follows the biology: synthetic-lethal doubles keep few
cells, and knockouts that change ``cell_count`` (crowding) change it a little too.

Technical effects are image-level only (the latent states stay the biology): per-batch and
per-plate channel gains and backgrounds, a small per-well gain, and per-plate vignetting
(each crop sits somewhere in its field; the illumination at that spot and its gradient
across the crop come from the plate's radial fall-off). Normalising to each batch's
controls therefore matters, as in real screens.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.data.simulate.morphology import CHANNELS, PROPERTIES, sample_latents

ROWS = "ABCDEFGHIJKLMNOP"
SITES_PER_WELL = 4
CROP_FRACTION = 0.12  # crop width as a fraction of the field width


def conditions(world) -> list[str]:
    """``"control"``, then every single knockout, then the screened doubles.

    Parameters
    ----------
    world : World
        The demo world.

    Returns
    -------
    list of str
        Condition names (doubles as ``"A+B"``).
    """
    return ["control", *world.genes, *(world.pair_name(a, b) for a, b in world.doubles)]


def layout(world, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per crop (the screen obs contract) and the latent states ``(n, P)``.

    Parameters
    ----------
    world : World
        The demo world; its config sets batches, plates, control wells and cells per well.
    rng : numpy.random.Generator
        Source of the well positions, cell counts, sites and latent states.

    Returns
    -------
    obs : pandas.DataFrame
        ``perturbation``, ``is_control``, ``batch``, ``plate``, ``well``, ``site``,
        ``cell_id``, ``genes``, ``perturbation_type`` and ``latent_<property>`` per crop.
    z : numpy.ndarray
        ``(n, len(PROPERTIES))`` float32 latent states, in ``obs`` order.
    """
    cfg = world.config
    conds = conditions(world)
    morph = world.morphology
    rows, latents = [], []
    wells_all = [f"{r}{c:02d}" for r in ROWS for c in range(1, 25)]
    count_col = PROPERTIES.index("cell_count")
    for b in range(cfg["batches"]):
        for p in range(cfg["plates_per_batch"]):
            plate = f"P{b + 1}{p + 1:02d}"
            batch = f"B{b + 1}"
            entries = [c for c in conds[1:]] + ["control"] * cfg["control_wells"]
            wells = rng.permutation(len(wells_all))[: len(entries)]
            for cond, w in zip(entries, sorted(wells)):
                mean, _, surv = morph.condition_params(cond)
                expected = cfg["cells_per_well"] * surv * np.exp(0.3 * mean[count_col])
                n = max(1, int(rng.poisson(expected)))
                z = sample_latents(morph, cond, n, rng, survival=False)
                latents.append(z)
                genes = "" if cond == "control" else cond
                kind = "control" if cond == "control" else ("double" if "+" in cond else "single")
                site = rng.integers(1, SITES_PER_WELL + 1, n)
                for k in range(n):
                    rows.append((cond, cond == "control", batch, plate, wells_all[w],
                                 f"s{site[k]}", f"{plate}-{wells_all[w]}-{k:03d}", genes, kind))
    obs = pd.DataFrame(rows, columns=["perturbation", "is_control", "batch", "plate", "well",
                                      "site", "cell_id", "genes", "perturbation_type"])
    z = np.concatenate(latents).astype(np.float32)
    for i, name in enumerate(PROPERTIES):
        obs[f"latent_{name}"] = z[:, i]
    obs.index = [f"c{i:06d}" for i in range(len(obs))]
    obs["is_control"] = obs["is_control"].astype(bool)
    for col in ("perturbation", "batch", "plate", "well", "site", "genes", "perturbation_type"):
        obs[col] = obs[col].astype("category")
    return obs, z


def technical_effects(obs: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-crop ``gain`` and ``background`` ``(n, 5)`` and ``illumination`` ``(n, 3)``, plus
    the per-batch and per-plate parameters (for the ground truth).

    Parameters
    ----------
    obs : pandas.DataFrame
        The crops, with ``batch``, ``plate`` and ``well`` columns.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    dict
        ``gain``, ``background``, ``illumination`` (arrays, one row per crop) and
        ``batch_gain``, ``batch_background``, ``plate_gain``, ``plate_vignetting`` (lists,
        JSON-ready).
    """
    c = len(CHANNELS)
    batches = sorted(obs["batch"].astype(str).unique())
    plates = sorted(obs["plate"].astype(str).unique())
    b_gain = {b: np.exp(rng.normal(0, 0.2, c)) for b in batches}
    b_bg = {b: 0.03 * np.exp(rng.normal(0, 0.3, c)) for b in batches}
    p_gain = {p: np.exp(rng.normal(0, 0.05, c)) for p in plates}
    p_vig = {p: (rng.normal(0, 0.3, 2), rng.uniform(0.2, 0.45)) for p in plates}
    wells = (obs["plate"].astype(str) + "/" + obs["well"].astype(str)).to_numpy()
    uw, inv = np.unique(wells, return_inverse=True)
    w_gain = np.exp(rng.normal(0, 0.03, len(uw)))[inv]
    bt = obs["batch"].astype(str).to_numpy()
    pl = obs["plate"].astype(str).to_numpy()
    gain = np.stack([b_gain[b] * p_gain[p] for b, p in zip(bt, pl)]) * w_gain[:, None]
    background = np.stack([b_bg[b] for b in bt])
    pos = rng.uniform(-1, 1, (len(obs), 2))
    centre = np.stack([p_vig[p][0] for p in pl])
    strength = np.array([p_vig[p][1] for p in pl])
    rel = pos - centre
    level = 1.0 - 0.5 * strength * (rel ** 2).sum(1)
    grad = -strength[:, None] * rel * CROP_FRACTION
    illumination = np.column_stack([level, grad])
    return {
        "gain": gain, "background": background, "illumination": illumination,
        "batch_gain": {b: v.tolist() for b, v in b_gain.items()},
        "batch_background": {b: v.tolist() for b, v in b_bg.items()},
        "plate_gain": {p: v.tolist() for p, v in p_gain.items()},
        "plate_vignetting": {p: {"centre": v[0].tolist(), "strength": float(v[1])}
                             for p, v in p_vig.items()},
    }
