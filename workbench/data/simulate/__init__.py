"""The demo world: one simulated screen with ground truth for every view of the workbench.

One gene universe (``G01``, ``G02``, ...) is shared by

* a cyclic gene-regulatory network with known dynamics, from which expression and RNA
  velocity are sampled along trajectories (:mod:`.grn`);
* a morphology model in which knocking out a gene moves named latent cell properties, through
  the network, with gene groups ("pathways") that share a program direction and planted
  no-effect genes (:mod:`.morphology`);
* single and double knockouts, with planted interacting pairs (buffering, synergy, synthetic
  lethality) beside additive pairs on disjoint and on shared properties (:mod:`.morphology`);
* a procedural renderer of 5-channel Cell-Painting-like crops (:mod:`.render`) and a plate
  screen with batch, plate, well and illumination effects (:mod:`.screen`).

Entry points
------------
``build_demo_study(path, size="quick", seed=0, overwrite=False) -> Study``
    Writes, in one ``simulate`` step, the artefacts

    * ``"images"``: image store of uint16 crops ``(n, 5, H, W)``, channels
      ``["DNA", "ER", "RNA", "AGP", "Mito"]``; ``obs`` has the screen contract columns
      ``perturbation`` (gene, ``"A+B"`` for doubles, ``"control"``), ``is_control``,
      ``batch``, ``plate``, ``well``, ``site``, ``cell_id``, ``genes`` (``"A"``, ``"A+B"``,
      ``""`` for controls), ``perturbation_type`` (``"control"``/``"single"``/``"double"``),
      and the true latent state ``latent_<property>`` for every property;
    * ``"velocity"``: AnnData cells x genes, ``X`` = spliced expression, layers
      ``"spliced"``, ``"unspliced"``, ``"velocity"``, obs ``"trajectory"`` and ``"time"``,
      var index = gene names, varp ``"true_adjacency"`` and ``"true_weights"``;
    * ``"relationships"``: ``relationships.csv``, EFAAR format (``entity1,entity2``, both
      directions, every pair within a gene group);
    * ``"ground_truth"``: the JSON document below; and ``study.json`` gets ``simulated: true``.

    Sizes: ``"tiny"`` (10 genes, 32 px, ~200 crops), ``"quick"`` (14 genes, 32 px, 2
    batches of 1 plate, ~18 crops per perturbation, 12 doubles, ~490 crops; a few seconds),
    ``"realistic"`` (26 genes, 64 px, 4 plates in 2 batches, ~64 crops per perturbation,
    ~1,900 crops per plate, 21 doubles; ~11 s of CPU).
``make_world(seed=0, size="quick") -> World``
    The world without rendering (fast): ``world.genes``, ``world.grn``,
    ``world.morphology``, ``world.doubles``, ``world.ground_truth()``,
    ``world.relationships()``.
``sample_latents(world, condition, n, rng, survival=True) -> ndarray (n_kept, n_properties)``
    Latent states of any condition (``"control"``, ``"G03"``, ``"G03+G07"``), so that many
    null and interacting pairs can be drawn cheaply without images. Columns follow
    ``PROPERTIES``. Synthetic-lethal doubles keep ~20% of the cells when ``survival``.
``pair_type(world, a, b) -> str``
    Ground-truth type of any gene pair (names).
``render_cells(z, rng, bank, ...)`` / ``TextureBank(size, seed)``
    Draw crops for arbitrary latent states.

Ground-truth JSON keys (``study.read("ground_truth")``)
--------------------------------------------------------
``seed``, ``size``
    How the world was drawn.
``genes``
    Gene names, in the order of every matrix below.
``properties``
    Latent property names (order of every program / effect vector), currently
    ``nucleus_size, dna_intensity, er_intensity, er_texture, rna_intensity, mito_intensity,
    mito_texture, cell_area, cell_elongation, actin_intensity, cell_count``.
``channels``
    ``["DNA", "ER", "RNA", "AGP", "Mito"]``.
``adjacency``
    genes x genes 0/1 list of lists; ``adjacency[i][j] = 1`` iff gene ``j`` regulates the
    velocity of gene ``i`` (child-major). Asymmetric, with cycles and a few self-loops
    (non-zero diagonal). Decay is not an edge. ``adjacency_convention`` says this in words.
``grn_weights``, ``grn_bias``, ``grn_alpha``, ``grn_gamma``, ``grn_beta``, ``fixed_point``,
``dynamics``
    The ODE ``dx_i/dt = alpha_i sigmoid(sum_j W[i][j] x_j + bias_i) - gamma_i x_i``
    (``W`` = ``grn_weights``, same orientation as ``adjacency``), splicing rates and the
    stable fixed point.
``programs``
    ``{gene: [one float per property]}``: the latent shift (in control-sd units) caused by
    losing that gene alone, before the network spreads it.
``effects``
    ``{gene: [...]}``: the total expected latent shift of the single knockout (program plus
    the downstream genes' programs weighted by their loss); entries below 0.05 are exactly 0.
    This is what the mean ``latent_*`` shift of a knockout estimates.
``no_effect``
    Genes planted with no effect (zero program, upstream of nothing with an effect).
``effect_genes``
    Genes whose ``effects`` vector is non-zero.
``groups``
    ``{group name: [genes]}``: modules ("complexes"/"pathways") sharing a program
    direction; the pairs within a group are the ``relationships`` file.
``group_properties``
    ``{group name: [properties its program moves]}``.
``pairs``
    The doubles in the screen, by kind: ``{"interacting": [{"pair": "A+B", "type":
    "buffering"|"synergy"|"synthetic_lethal"}, ...], "additive_disjoint": [{"pair", "type"}],
    "additive_shared": [...], "network": [...]}`` (``network`` is empty in the presets).
    Additive pairs are exactly additive in latent mean; disjoint ones also act on disjoint
    properties (separable), shared ones overlap (additive in mean, not separable).
``double_effects``
    ``{"A+B": [...]}``: expected latent shift of each screened double.
``all_pairs``
    Every unordered gene pair ``[{"pair", "type", "deviation", "survival"}]``; ``type`` in
    ``additive_disjoint``, ``additive_shared``, ``network`` (one gene upstream of the other:
    not additive through the network), ``buffering``, ``synergy``, ``synthetic_lethal``;
    ``deviation`` = norm of (double shift - sum of single shifts). Pairs with a no-effect gene
    are ``additive_disjoint`` null pairs unless linked.
``interaction_params``
    ``synergy_gain``, ``lethal_survival``, ``lethal_noise_sd``, ``death_shift``.
``channel_effects``
    ``{property: [channels it shows in]}``.
``control_label``
    ``"control"``.
``technical``
    ``batch_gain``, ``batch_background`` (per channel), ``plate_gain``,
    ``plate_vignetting`` (``centre``, ``strength``): the image-level batch and plate effects.
``n_crops``
    Number of crops in ``images``.
"""

from __future__ import annotations

from workbench.data.simulate.build import build_demo_study, velocity_anndata
from workbench.data.simulate.morphology import (
    CHANNEL_EFFECTS, CHANNELS, PROPERTIES, sample_latents,
)
from workbench.data.simulate.render import TextureBank, render_cells
from workbench.data.simulate.world import SIZES, World, make_world


def pair_type(world: World, a: str, b: str) -> str:
    """Ground-truth type of the gene pair ``a``, ``b`` (see ``all_pairs`` above).

    Parameters
    ----------
    world : World
        The demo world.
    a, b : str
        Gene names.

    Returns
    -------
    str
        One of ``additive_disjoint``, ``additive_shared``, ``network``, ``buffering``,
        ``synergy``, ``synthetic_lethal``.
    """
    m = world.morphology
    return m.pair_type(m.index(a), m.index(b))


__all__ = [
    "build_demo_study", "make_world", "sample_latents", "pair_type", "render_cells",
    "TextureBank", "velocity_anndata", "World", "SIZES", "PROPERTIES", "CHANNELS",
    "CHANNEL_EFFECTS",
]
