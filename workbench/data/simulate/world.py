"""The demo world: one gene universe shared by the network, the morphology and the screen.

:func:`make_world` draws, deterministically from a seed, a :class:`World` that holds the
gene-regulatory network (:mod:`.grn`), the morphology model with planted pair types
(:mod:`.morphology`), and the screen design sizes (:data:`SIZES`). :meth:`World.ground_truth`
is the JSON document saved in the Study; :meth:`World.relationships` is the EFAAR-style
annotation table of gene groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import pandas as pd

from workbench.data.simulate.grn import GRN, make_grn
from workbench.data.simulate.morphology import (
    CHANNEL_EFFECTS, CHANNELS, DEATH, LETHAL_NOISE, LETHAL_SURVIVAL, PROPERTIES,
    SYNERGY_GAIN, Morphology, make_morphology,
)

#: Size presets. ``modules`` lists one MODULE_TEMPLATES index per module and its size.
SIZES: dict[str, dict] = {
    "tiny": dict(modules=[(0, 4), (3, 4)], n_no_effect=2, n_cross=1, n_self_loops=2,
                 pairs={"buffering": 1, "synergy": 1, "synthetic_lethal": 1},
                 n_additive=(2, 2), crop_size=32, batches=2, plates_per_batch=1,
                 cells_per_well=6, control_wells=2, trajectories=4, cells_per_trajectory=40),
    "quick": dict(modules=[(0, 4), (1, 4), (2, 4)], n_no_effect=2, n_cross=1, n_self_loops=2,
                  pairs={"buffering": 2, "synergy": 2, "synthetic_lethal": 2},
                  n_additive=(3, 3), crop_size=32, batches=2, plates_per_batch=1,
                  cells_per_well=9, control_wells=3, trajectories=8, cells_per_trajectory=50),
    "realistic": dict(modules=[(0, 5), (1, 5), (2, 5), (3, 4), (4, 4)], n_no_effect=3,
                      n_cross=2, n_self_loops=3,
                      pairs={"buffering": 3, "synergy": 3, "synthetic_lethal": 3},
                      n_additive=(6, 6), crop_size=64, batches=2, plates_per_batch=2,
                      cells_per_well=32, control_wells=8, trajectories=24,
                      cells_per_trajectory=100),
}


@dataclass
class World:
    """Everything drawn for one seed and size. ``doubles`` are the pairs in the screen.

    Parameters
    ----------
    seed : int
        The seed it was drawn with.
    size : str
        Its size preset (a key of :data:`SIZES`).
    config : dict
        The preset's settings.
    grn : GRN
        The gene-regulatory network.
    morphology : Morphology
        Programs, effects and planted pair types.
    doubles : list of tuple of int
        The gene index pairs in the screen.
    """

    seed: int
    size: str
    config: dict
    grn: GRN
    morphology: Morphology
    doubles: list[tuple[int, int]]

    @property
    def genes(self) -> list[str]:
        return self.grn.genes

    def pair_name(self, a: int, b: int) -> str:
        """The condition name ``"A+B"`` of a gene pair.

        Parameters
        ----------
        a, b : int
            Gene indices.

        Returns
        -------
        str
            The name.
        """
        return f"{self.genes[a]}+{self.genes[b]}"

    def groups(self) -> dict[str, list[str]]:
        """Module name -> member genes (the "complexes" of the annotation file).

        Returns
        -------
        dict of str to list of str
            Members of each module.
        """
        return {name: [self.genes[g] for g in mod]
                for name, mod in zip(self.morphology.module_names, self.grn.modules)}

    def relationships(self) -> pd.DataFrame:
        """EFAAR-format table: ``entity1, entity2`` for every ordered pair within a group.

        Returns
        -------
        pandas.DataFrame
            ``entity1``, ``entity2``, both directions.
        """
        rows = [(a, b) for members in self.groups().values() for a, b in permutations(members, 2)]
        return pd.DataFrame(rows, columns=["entity1", "entity2"])

    def ground_truth(self) -> dict:
        """The JSON document documented in :mod:`workbench.data.simulate`.

        Returns
        -------
        dict
            JSON-ready.
        """
        g, m = self.grn, self.morphology
        pairs: dict[str, list] = {"interacting": [], "additive_disjoint": [],
                                  "additive_shared": [], "network": []}
        for a, b in self.doubles:
            kind = m.pair_type(a, b)
            entry = {"pair": self.pair_name(a, b), "type": kind}
            pairs["interacting" if kind in ("buffering", "synergy", "synthetic_lethal")
                  else kind].append(entry)
        mean_effect = {self.pair_name(a, b): m.condition_params((g.genes[a], g.genes[b]))[0]
                       for a, b in self.doubles}
        return {
            "seed": self.seed,
            "size": self.size,
            "genes": list(g.genes),
            "properties": list(PROPERTIES),
            "channels": list(CHANNELS),
            "adjacency": g.adjacency.tolist(),
            "adjacency_convention": "adjacency[i][j] = 1 iff gene j regulates dx_i/dt "
                                    "(child-major rows); decay is not an edge",
            "grn_weights": g.weights.tolist(),
            "grn_bias": g.bias.tolist(),
            "grn_alpha": g.alpha.tolist(),
            "grn_gamma": g.gamma.tolist(),
            "grn_beta": g.beta.tolist(),
            "fixed_point": g.fixed_point.tolist(),
            "dynamics": "dx_i/dt = alpha_i * sigmoid(sum_j W[i][j] x_j + bias_i) - gamma_i x_i",
            "programs": {gene: m.programs[i].tolist() for i, gene in enumerate(g.genes)},
            "effects": {gene: m.effects[i].tolist() for i, gene in enumerate(g.genes)},
            "no_effect": [g.genes[i] for i in g.no_effect],
            "effect_genes": [gene for i, gene in enumerate(g.genes)
                             if np.any(m.effects[i] != 0)],
            "groups": self.groups(),
            "group_properties": dict(zip(m.module_names, m.module_properties)),
            "pairs": pairs,
            "double_effects": {k: v.tolist() for k, v in mean_effect.items()},
            "all_pairs": m.all_pairs(),
            "interaction_params": {"synergy_gain": SYNERGY_GAIN,
                                   "lethal_survival": LETHAL_SURVIVAL,
                                   "lethal_noise_sd": LETHAL_NOISE, "death_shift": DEATH},
            "channel_effects": {k: list(v) for k, v in CHANNEL_EFFECTS.items()},
            "control_label": "control",
        }


def make_world(seed: int = 0, size: str = "quick") -> World:
    """Draw the world of ``seed`` at a size preset (``"tiny"``, ``"quick"``, ``"realistic"``).

    Parameters
    ----------
    seed : int
        Everything is deterministic per seed.
    size : str
        A key of :data:`SIZES`.

    Returns
    -------
    World
        With the planted interacting pairs and the additive pairs of the preset as doubles.
    """
    if size not in SIZES:
        from workbench.errors import ValidationError

        raise ValidationError(f"unknown demo size {size!r}.",
                              f"use one of {', '.join(SIZES)}.")
    cfg = SIZES[size]
    rng = np.random.default_rng([seed, 20240917])
    grn = make_grn(rng, [s for _, s in cfg["modules"]], cfg["n_no_effect"],
                   n_cross=cfg["n_cross"], n_self_loops=cfg["n_self_loops"])
    morph = make_morphology(grn, rng, [t for t, _ in cfg["modules"]], cfg["pairs"])
    doubles = sorted(morph.planted)
    # additive pairs: unlinked pairs of effect genes, disjoint and shared
    all_pairs = [(a, b) for a in range(grn.n_genes) for b in range(a + 1, grn.n_genes)
                 if a not in grn.no_effect and b not in grn.no_effect]
    order = rng.permutation(len(all_pairs))
    want = {"additive_disjoint": cfg["n_additive"][0], "additive_shared": cfg["n_additive"][1]}
    for i in order:
        a, b = all_pairs[i]
        kind = morph.pair_type(a, b)
        if want.get(kind, 0) > 0:
            doubles.append((a, b))
            want[kind] -= 1
    return World(seed=seed, size=size, config=cfg, grn=grn, morphology=morph,
                 doubles=sorted(doubles))
