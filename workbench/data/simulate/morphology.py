"""Latent cell properties, knockout programs through the network, and pair interactions.

Each cell has a latent state ``z`` over named morphological properties (:data:`PROPERTIES`).
Control cells draw ``z ~ N(0, I)``: the properties are independent, so a perturbation that
moves one set of properties and a perturbation that moves a disjoint set are *separable* in
the sense of Xu et al. (arXiv 2409.07594, card 3 of the method notes).

Every gene ``k`` owns a *program* ``P[k]``: the latent shift caused by losing it. Genes of one
module ("complex" / "pathway") share a program direction over the module's properties, which
is what the relationship annotation file records. A knockout of gene ``g`` moves the
expression of the genes downstream of it (:meth:`GRN.knockout_response`, relative changes
``r``), and the latent shift is the sum of the programs weighted by the loss of each gene::

    effect(g) = sum_k (-r_k) P[k]          (r_g = -1: the knocked-out gene itself)

with entries below :data:`EFFECT_TOL` set to exactly zero so that "disjoint" is exact. A
double knockout clamps both genes in the network; when neither gene is upstream of the other
the linear response is additive, and the double's shift is exactly
``effect(a) + effect(b)``: an *additive* pair, on disjoint or on shared properties. Planted *interacting* pairs replace the additive double by

* ``buffering``: the double equals the stronger single (the other effect is masked);
* ``synergy``: the double is :data:`SYNERGY_GAIN` times the additive sum;
* ``synthetic_lethal``: few cells survive (:data:`LETHAL_SURVIVAL`) and the survivors are
  shrunken, condensed and variable (the additive sum plus :data:`DEATH` and wider noise).

Pairs in which one gene is upstream of the other are labelled ``network``: clamping both
genes is not additive, through the network alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from workbench.data.simulate.grn import GRN

#: Latent properties, in the column order of every latent array.
PROPERTIES: list[str] = [
    "nucleus_size", "dna_intensity", "er_intensity", "er_texture", "rna_intensity",
    "mito_intensity", "mito_texture", "cell_area", "cell_elongation", "actin_intensity",
    "cell_count",
]
#: Channels (Cell Painting order) and which properties show in which channel.
CHANNELS: list[str] = ["DNA", "ER", "RNA", "AGP", "Mito"]
CHANNEL_EFFECTS: dict[str, list[str]] = {
    "nucleus_size": ["DNA", "ER", "RNA", "Mito"],  # a larger nucleus leaves less cytoplasm
    "dna_intensity": ["DNA"],
    "er_intensity": ["ER"],
    "er_texture": ["ER"],
    "rna_intensity": ["RNA"],
    "mito_intensity": ["Mito"],
    "mito_texture": ["Mito"],
    "cell_area": ["ER", "RNA", "AGP", "Mito"],
    "cell_elongation": ["ER", "RNA", "AGP", "Mito"],
    "actin_intensity": ["AGP"],
    "cell_count": ["DNA", "ER", "RNA", "AGP", "Mito"],
}
#: Module templates: a name and the properties its program moves. Modules 1-4 and 2-4
#: overlap (cell_area, nucleus_size), so some cross-module pairs share properties.
MODULE_TEMPLATES: list[tuple[str, list[str]]] = [
    ("secretory", ["er_intensity", "er_texture", "cell_area"]),
    ("cytoskeleton", ["actin_intensity", "cell_elongation", "cell_area"]),
    ("chromatin", ["nucleus_size", "dna_intensity", "rna_intensity"]),
    ("mitochondria", ["mito_intensity", "mito_texture"]),
    ("proliferation", ["cell_count", "nucleus_size"]),
]
EFFECT_TOL = 0.05
SYNERGY_GAIN = 2.0
LETHAL_SURVIVAL = 0.2
LETHAL_NOISE = 1.6
DEATH: dict[str, float] = {"nucleus_size": -2.5, "dna_intensity": 2.5, "cell_area": -2.0,
                           "mito_intensity": -1.5, "cell_count": -2.5}
INTERACTION_TYPES = ("buffering", "synergy", "synthetic_lethal")


@dataclass
class Morphology:
    """Programs, single-knockout effects and planted pair types of one world.

    Parameters
    ----------
    grn : GRN
        The world's network.
    module_names : list of str
        Name of each module's template.
    module_properties : list of list of str
        The properties each module's program moves.
    programs : numpy.ndarray
        ``(genes, properties)`` latent shift of losing each gene alone.
    effects : numpy.ndarray
        ``(genes, properties)`` total single-knockout shift through the network.
    planted : dict
        ``{(a, b): type}`` for the planted interacting pairs (gene indices, ``a < b``).
    """

    grn: GRN
    module_names: list[str]
    module_properties: list[list[str]]
    programs: np.ndarray                 # (genes, properties)
    effects: np.ndarray                  # (genes, properties): total single-knockout shift
    planted: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def genes(self) -> list[str]:
        return self.grn.genes

    def index(self, gene: str) -> int:
        """The index of a gene, with an error naming the unknown gene.

        Parameters
        ----------
        gene : str
            A gene name.

        Returns
        -------
        int
            Its position in :attr:`genes`.
        """
        from workbench.data.schema import check_names

        check_names([gene], self.genes, where="the simulated world")
        return self.genes.index(gene)

    # ------------------------------------------------------------------ conditions
    def parse(self, condition: str | tuple | list) -> tuple[int, ...]:
        """``"control"`` -> (), ``"A"`` -> (a,), ``"A+B"`` -> (a, b); also lists of names.

        Parameters
        ----------
        condition : str or sequence of str
            A condition name or gene names.

        Returns
        -------
        tuple of int
            Sorted, distinct gene indices.
        """
        if isinstance(condition, str):
            names = [] if condition in ("control", "") else condition.split("+")
        else:
            names = list(condition)
        idx = tuple(sorted({self.index(str(n).strip()) for n in names}))
        return idx

    def knockout_shift(self, idx: tuple[int, ...]) -> np.ndarray:
        """Latent shift of knocking out ``idx`` through the network, before interactions.

        Parameters
        ----------
        idx : tuple of int
            Knocked-out gene indices (none, one or two).

        Returns
        -------
        numpy.ndarray
            ``(len(PROPERTIES),)`` shift.
        """
        if not idx:
            return np.zeros(len(PROPERTIES))
        if len(idx) == 1:
            return self.effects[idx[0]].copy()
        anc = self.grn.ancestors()
        a, b = idx
        if not (anc[a, b] or anc[b, a]):  # unlinked: the network response is additive
            return self.effects[a] + self.effects[b]
        r = self.grn.knockout_response(list(idx))
        shift = (-r) @ self.programs
        shift[np.abs(shift) < EFFECT_TOL] = 0.0
        return shift

    def pair_type(self, a: int, b: int) -> str:
        """Ground-truth type of the pair (see the module docstring).

        Parameters
        ----------
        a, b : int
            Gene indices.

        Returns
        -------
        str
            A planted interaction type, ``network``, ``additive_shared`` or
            ``additive_disjoint``.
        """
        key = (min(a, b), max(a, b))
        if key in self.planted:
            return self.planted[key]
        anc = self.grn.ancestors()
        if anc[a, b] or anc[b, a]:
            return "network"
        shared = (self.effects[a] != 0) & (self.effects[b] != 0)
        return "additive_shared" if shared.any() else "additive_disjoint"

    def condition_params(self, condition) -> tuple[np.ndarray, float, float]:
        """``(mean shift, noise sd, survival)`` of a condition's latent distribution.

        Parameters
        ----------
        condition : str or sequence of str
            ``"control"``, a gene, or a double (at most two genes).

        Returns
        -------
        tuple
            ``(mean shift, noise sd, survival)``.
        """
        idx = self.parse(condition)
        if len(idx) > 2:
            raise ValueError("only control, single and double knockouts are modelled")
        if len(idx) < 2:
            return self.knockout_shift(idx), 1.0, 1.0
        a, b = idx
        kind = self.planted.get((a, b))
        if kind == "buffering":
            strong = a if np.linalg.norm(self.effects[a]) >= np.linalg.norm(self.effects[b]) else b
            return self.effects[strong].copy(), 1.0, 1.0
        if kind == "synergy":
            return SYNERGY_GAIN * (self.effects[a] + self.effects[b]), 1.0, 1.0
        if kind == "synthetic_lethal":
            death = np.array([DEATH.get(p, 0.0) for p in PROPERTIES])
            return self.effects[a] + self.effects[b] + death, LETHAL_NOISE, LETHAL_SURVIVAL
        return self.knockout_shift(idx), 1.0, 1.0

    def all_pairs(self) -> list[dict]:
        """Every unordered gene pair with its type and its deviation from additivity.

        Returns
        -------
        list of dict
            ``pair``, ``type``, ``deviation``, ``survival`` per pair.
        """
        out = []
        for a, b in combinations(range(len(self.genes)), 2):
            mean, sd, surv = self.condition_params((self.genes[a], self.genes[b]))
            dev = mean - self.effects[a] - self.effects[b]
            out.append({"pair": f"{self.genes[a]}+{self.genes[b]}", "type": self.pair_type(a, b),
                        "deviation": float(np.linalg.norm(dev)), "survival": surv})
        return out


def make_morphology(grn: GRN, rng: np.random.Generator, module_templates: list[int],
                    n_pairs: dict[str, int]) -> Morphology:
    """Draw programs per module, propagate single knockouts, plant pair types.

    Parameters
    ----------
    grn : GRN
        The network; its modules get the programs.
    rng : numpy.random.Generator
        Source of the draws.
    module_templates : list of int
        One index into :data:`MODULE_TEMPLATES` per GRN module.
    n_pairs : dict of str to int
        How many pairs of each interaction type to plant, e.g.
        ``{"buffering": 2, "synergy": 2, "synthetic_lethal": 2}`` (additive pairs are not
        planted: they are whatever unlinked pairs remain).

    Returns
    -------
    Morphology
        With programs, effects (entries below :data:`EFFECT_TOL` set to zero) and the planted
        pairs.
    """
    n_g, n_p = grn.n_genes, len(PROPERTIES)
    programs = np.zeros((n_g, n_p))
    names, props = [], []
    for module, t in zip(grn.modules, module_templates):
        name, support = MODULE_TEMPLATES[t]
        cols = [PROPERTIES.index(p) for p in support]
        direction = rng.choice([-1.0, 1.0], len(cols)) * rng.uniform(0.8, 1.3, len(cols))
        for g in module:
            programs[g, cols] = rng.uniform(0.7, 1.3) * direction + rng.normal(0, 0.15, len(cols))
        names.append(name)
        props.append(list(support))
    effects = np.zeros((n_g, n_p))
    for g in range(n_g):
        effects[g] = (-grn.knockout_response([g])) @ programs
    effects[np.abs(effects) < EFFECT_TOL] = 0.0
    morph = Morphology(grn=grn, module_names=names, module_properties=props,
                       programs=programs, effects=effects)
    _plant_pairs(morph, rng, n_pairs)
    return morph


def _plant_pairs(morph: Morphology, rng: np.random.Generator, n_pairs: dict[str, int]) -> None:
    """Choose unlinked pairs of effect genes for each interaction type; each gene is used
    in at most two planted pairs, and lethal pairs prefer genes with mild single effects."""
    grn = morph.grn
    anc = grn.ancestors()
    effect_genes = [g for g in range(grn.n_genes) if g not in grn.no_effect]
    cand = [(a, b) for a, b in combinations(effect_genes, 2) if not (anc[a, b] or anc[b, a])]
    order = rng.permutation(len(cand))
    cand = [cand[i] for i in order]
    used: dict[int, int] = {}
    for kind in INTERACTION_TYPES:
        want = n_pairs.get(kind, 0)
        pool = cand
        if kind == "synthetic_lethal":
            norm = np.linalg.norm(morph.effects, axis=1)
            pool = sorted(cand, key=lambda p: norm[p[0]] + norm[p[1]])
        for a, b in pool:
            if want == 0:
                break
            if (a, b) in morph.planted or used.get(a, 0) >= 2 or used.get(b, 0) >= 2:
                continue
            morph.planted[(a, b)] = kind
            used[a] = used.get(a, 0) + 1
            used[b] = used.get(b, 0) + 1
            want -= 1


def sample_latents(morph: Morphology, condition, n: int, rng: np.random.Generator,
                   survival: bool = True) -> np.ndarray:
    """Latent states of ``n`` cells of one condition, without rendering.

    Parameters
    ----------
    morph : Morphology or World
        The world's morphology (``world.morphology``) or a :class:`World`.
    condition : str or list of str
        ``"control"``, a gene ``"G03"``, or a double ``"G03+G07"`` (or a list of names).
    n : int
        Cells seeded.
    rng : numpy.random.Generator
        Repeated calls give independent replicates, so one pair can be drawn many times to
        build a null distribution.
    survival : bool
        Apply the condition's survival: a synthetic-lethal double then keeps only about
        :data:`LETHAL_SURVIVAL` of the cells (binomial), so fewer rows come back.

    Returns
    -------
    numpy.ndarray
        ``(n_kept, len(PROPERTIES))`` float64; columns follow :data:`PROPERTIES`.
    """
    morph = getattr(morph, "morphology", morph)
    mean, sd, surv = morph.condition_params(condition)
    if survival and surv < 1.0:
        n = int(rng.binomial(n, surv))
    return mean + sd * rng.standard_normal((n, len(PROPERTIES)))
