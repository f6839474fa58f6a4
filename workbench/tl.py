"""The analysis steps, one verb each: ``wb.tl.embed(study)``, ``wb.tl.concepts(study)``, ...

Every function takes a :class:`~workbench.data.study.Study` (or the path of a
``NAME.study`` folder), runs the real step of :mod:`workbench.tools`, which validates what
it writes against the artefact's schema and appends a provenance entry (parameters,
version, seed, input checksums), and returns the Study, refreshed. Each docstring names
the artefacts written and how to read them back.

The shared parameters have one spelling everywhere:

``seed``
    seed of every random generator the step uses (the step makes its own generators).
``device``
    ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
``n_permutations``
    permutations (or null data sets) of a permutation test.
``budget``
    how many candidates a planner proposes.
``progress``
    show progress bars.

Names use American spelling (``normalize``, ``color``), as numpy and scanpy do; ``size``
is never overloaded: the demo world's size is ``wb.datasets.demo(size=...)``, the encoder
preset is ``encoder_size`` and the GRN training preset is ``preset``.

Defaults run on the ``"tiny"`` and ``"quick"`` demo worlds as they are: the concepts
step decides by itself whether the profiles still need whitening (TVN output does not),
and pairs with too few cells are kept as rows with a status instead of stopping the run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

from workbench.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from workbench.data.study import Study

__all__ = [
    "benchmark", "concepts", "design_hits", "design_knockout", "design_screen", "embed",
    "find", "grn", "interactions", "plan_pairs",
]


# ---------------------------------------------------------------------- argument checks
def as_study(study: Any) -> Study:
    """``study`` as an open Study: a Study is returned as is, a path is opened.

    Parameters
    ----------
    study : Study, str or os.PathLike
        An open Study, or the path of a ``NAME.study`` folder.

    Returns
    -------
    Study
        The Study itself, or the folder opened.

    Raises
    ------
    ValidationError
        When ``study`` is neither.
    """
    from workbench.data.study import Study

    if isinstance(study, Study):
        return study
    if isinstance(study, (str, os.PathLike)):
        return Study.open(study)
    raise ValidationError(
        f"expected a Study or the path of a NAME.study folder, got {type(study).__name__}.",
        "pass the object wb.datasets.demo() or wb.open_study() returned, or its path.")


def check_int(name: str, value: Any, *, minimum: int | None = None,
              optional: bool = False) -> int | None:
    """``value`` as an int (``None`` allowed when ``optional``); a clear error otherwise.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check; booleans are refused.
    minimum : int or None
        The smallest value allowed; None for no bound.
    optional : bool
        Whether None is accepted (and returned).

    Returns
    -------
    int or None
        ``value`` as an int, or None when it is None and ``optional``.

    Raises
    ------
    ValidationError
        When ``value`` is not an integer or is below ``minimum``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValidationError(f"{name} must be an integer, got {value!r} "
                              f"({type(value).__name__}).", f"pass {name}=<int>.")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{name} must be at least {minimum}, got {value}.",
                              f"pass {name} >= {minimum}.")
    return int(value)


def check_float(name: str, value: Any) -> float:
    """``value`` as a float; a clear error for strings, booleans and other types.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check: any real number (booleans are refused).

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ValidationError
        When ``value`` is not a real number.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValidationError(f"{name} must be a number, got {value!r} "
                              f"({type(value).__name__}).", f"pass {name}=<float>.")
    return float(value)


def check_str(name: str, value: Any, *, optional: bool = False,
              choices: Sequence[str] | None = None) -> str | None:
    """``value`` as a string (``None`` allowed when ``optional``), one of ``choices``.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    optional : bool
        Whether None is accepted (and returned).
    choices : sequence of str or None
        The values allowed; None allows any string.

    Returns
    -------
    str or None
        ``value`` unchanged, or None when it is None and ``optional``.

    Raises
    ------
    ValidationError
        When ``value`` is not a string or not one of ``choices``.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {value!r} "
                              f"({type(value).__name__}).", f"pass {name}='...'.")
    if choices is not None and value not in choices:
        raise ValidationError(f"unknown {name} {value!r}.", f"use one of {', '.join(choices)}.")
    return value


def _common(seed: Any, device: Any = "auto") -> tuple[int, str]:
    return check_int("seed", seed, minimum=0), check_str("device", device)


def _names(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationError(f"{name} must be a list of strings, got {value!r}.",
                          f"pass {name}=['A', 'B'].")


# ---------------------------------------------------------------------- steps
def embed(study: Study | str | os.PathLike, *, weights: str | os.PathLike | None = None,
          encoder_size: str = "tiny", train_steps: int = 200, train_batch_size: int = 64,
          block: int | None = None, label: str = "perturbation", map_label: str | None = None,
          coral: bool = False, batch_center: bool = True, scheduler: Any = None,
          batch_size: int = 256, device: str = "auto", seed: int = 0,
          progress: bool = False, arm_table: str | os.PathLike | None = None) -> Study:
    """Embed the images (ViT-MAE), choose a block, normalize on controls (TVN), map.

    A Study with images gets a masked autoencoder (trained on its crops, or loaded from
    ``weights``), every block's features, the block a linear probe ranks best (folds
    grouped by batch/plate/field), TVN on the controls and the perturbation map. A Study
    with precomputed profiles and no images (an imported CellProfiler table) is only
    normalized and mapped.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or the path of its folder.
    weights : str or os.PathLike, optional
        Encoder weights to load instead of training (safetensors, timm, MAE or HuggingFace
        ViTMAE checkpoints).
    encoder_size : str
        ViT preset when training: ``"tiny"`` (CPU friendly), ``"small"``, ``"base"``,
        ``"large"``.
    train_steps, train_batch_size : int
        Pretraining steps and crops per step.
    block : int or None
        Use this block (1-based) and skip the probe; None lets the probe choose.
    label : str
        ``obs`` column the block probe predicts.
    map_label : str, optional
        ``obs`` column kept on the map for retrieval mAP (e.g. ``"moa"``).
    coral, batch_center : bool
        TVN options: add the per-batch covariance (CORAL) step; centre and scale per batch
        (``False``: on all controls together).
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` scheduler address or Client: embed on that cluster.
    batch_size : int
        Crops per embedding batch.
    device : str
        See the module docstring.
    seed : int
        See the module docstring.
    progress : bool
        See the module docstring.
    arm_table : str or os.PathLike, optional
        CSV with columns ``gene``, ``arm`` and ``expressed``: the chromosome-arm correction
        of a CRISPR gene map (each arm with enough unexpressed genes is centred on them),
        applied to the map and recorded.

    Returns
    -------
    Study
        With ``profiles`` (``X`` the TVN profile, ``obsm["X_mae_b<k>"]`` per block,
        ``uns["workbench"]["embedding"]``), ``perturbations`` (mean profiles,
        ``obsp["cosine"]``) and ``encoder`` (the weights); provenance step ``"embed"`` (or
        ``"normalize"`` for profiles without images).
    """
    study = as_study(study)
    seed, device = _common(seed, device)
    tvn_kw: dict[str, Any] = {"coral": bool(coral)}
    if not batch_center:
        tvn_kw["batch_center"] = False
    map_label = check_str("map_label", map_label, optional=True)
    arms = None
    if arm_table is not None:
        from workbench.data.readers.arms import read_arm_table

        arms = read_arm_table(arm_table)
    if not study.has("images") and study.has("profiles"):
        from workbench.tools.embed import normalize_study

        normalize_study(study, label_key=map_label, tvn_kw=tvn_kw, seed=seed,
                        arm_correction=arms)
        return study.refresh()
    from workbench.tools.embed import embed_study

    embed_study(study, encoder=weights, size=check_str("encoder_size", encoder_size),
                train_steps=check_int("train_steps", train_steps, minimum=1),
                train_batch_size=check_int("train_batch_size", train_batch_size, minimum=1),
                label=check_str("label", label),
                block=check_int("block", block, minimum=1, optional=True),
                scheduler=scheduler, batch_size=check_int("batch_size", batch_size, minimum=1),
                device=device, seed=seed, tvn_kw=tvn_kw, label_key=map_label,
                progress=bool(progress), arm_correction=arms)
    return study.refresh()


def benchmark(study: Study | str | os.PathLike, *,
              relationships: Sequence[str | os.PathLike] = (), map_label: str | None = None,
              n_permutations: int = 1000, seed: int = 0) -> Study:
    """Benchmark the perturbation map: replicate consistency, known-relationship recall,
    retrieval mAP, each next to its random baseline (Celik et al. 2024, EFAAR).

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after :func:`embed`), or its path.
    relationships : str, os.PathLike or sequence of them
        EFAAR-format annotation files (``entity1,entity2`` CSV or cluster TSV), in addition
        to the Study's own ``relationships`` artefact and a demo world's planted groups.
    map_label : str, optional
        ``perturbations.obs`` column for same-label retrieval mAP; default: the one the map
        was built with.
    n_permutations : int
        Permutations of the retrieval-mAP null.
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With the results in ``perturbations.uns["workbench"]["benchmarks"]``
        (``study.read_uns("perturbations", "benchmarks")``); provenance step
        ``"benchmark"``.
    """
    study = as_study(study)
    seed, _ = _common(seed)
    if isinstance(relationships, (str, os.PathLike)):
        relationships = [relationships]
    from workbench.tools.map_benchmarks import run_benchmarks

    run_benchmarks(study, relationships=list(relationships),
                   label_key=check_str("map_label", map_label, optional=True),
                   n_perm=check_int("n_permutations", n_permutations, minimum=1), seed=seed,
                   write=True)
    return study.refresh()


def concepts(study: Study | str | os.PathLike, *, method: str = "icfl",
             n_concepts: int | None = None, sparsity: int = 8, whiten: bool | None = None,
             use_rep: str | None = None, labels: Sequence[str] | None = None,
             run: str | None = None, max_steps: int | None = None, batch_size: int = 1024,
             learning_rate: float = 3e-3, alpha: float = 0.05, resume: bool = True,
             device: str = "auto", seed: int = 0, progress: bool = False) -> Study:
    """Learn sparse concepts of the profiles (ICFL, or the TopK SAE baseline) and annotate them.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``profiles``), or its path.
    method : str
        ``"icfl"`` (dictionary learning with PCA whitening fitted on controls) or ``"topk"``
        (TopK sparse autoencoder, the baseline).
    n_concepts : int, optional
        Dictionary size (default: samples / 4, at most 256).
    sparsity : int
        Nonzero codes per sample.
    whiten : bool or None
        ``None`` whitens on the controls unless the profiles are TVN output already
        (recorded in the provenance); ``True``/``False`` force it.
    use_rep : str, optional
        ``obsm`` key of ``profiles`` to use instead of ``X``.
    labels : sequence of str, optional
        Extra ``obs`` columns to test for enrichment (``moa``, ``target``, ``genes`` are
        taken when present).
    run : str, optional
        Run name: codes go to ``profiles.obsm["concepts_<run>"]`` (default: the method).
    max_steps : int, optional
        Optimizer steps (default: about 60 passes over the samples, 300 to 3000 steps).
    batch_size : int
        Samples per optimizer step.
    learning_rate : float
        Learning rate of the optimizer.
    alpha : float
        FDR level of the enrichment tests.
    resume : bool
        Resume from the checkpoint an interrupted run left.
    device : str
        See the module docstring.
    seed : int
        See the module docstring.
    progress : bool
        See the module docstring.

    Returns
    -------
    Study
        With ``concepts`` (atoms in ``X``; per concept its activation frequency,
        selectivity, enrichment, driving perturbations and exemplars in ``obs``) and
        ``profiles.obsm["concepts_<run>"]``; provenance step ``"concepts"``.
    """
    study = as_study(study)
    seed, device = _common(seed, device)
    if whiten is not None and not isinstance(whiten, bool):
        raise ValidationError(f"whiten must be None, True or False, got {whiten!r}.",
                              "leave it None to let the step decide.")
    from workbench.tools.concepts import run_concepts

    run_concepts(study, method=check_str("method", method, choices=("icfl", "topk")),
                 n_concepts=check_int("n_concepts", n_concepts, minimum=2, optional=True),
                 sparsity=check_int("sparsity", sparsity, minimum=1), whiten=whiten,
                 use_rep=check_str("use_rep", use_rep, optional=True),
                 labels=_names("labels", labels) or [],
                 run=check_str("run", run, optional=True),
                 max_steps=check_int("max_steps", max_steps, minimum=1, optional=True),
                 batch_size=check_int("batch_size", batch_size, minimum=1),
                 lr=check_float("learning_rate", learning_rate),
                 alpha=check_float("alpha", alpha), device=device, seed=seed,
                 progress=bool(progress), resume=bool(resume))
    return study.refresh()


def interactions(study: Study | str | os.PathLike, *, use: str | None = None,
                 tests: Sequence[str] = ("additivity", "disjointness", "separability",
                                         "viability"),
                 unit: str | None = "well", kernel: str = "additive_rbf",
                 separability: str = "classifier", n_permutations: int = 1000,
                 n_bootstrap: int = 100, min_samples: int = 5, on_small: str = "skip",
                 cross_batch: str = "status", additivity_target: str = "diagonal",
                 device: str = "auto", seed: int = 0) -> Study:
    """Test every double perturbation against its singles and controls.

    The additivity test asks whether the double's mean shift is the sum of the singles'
    shifts (well level, parametric bootstrap); the disjointness test whether the singles
    act on disjoint coordinates; the separability score grades how far the double sits
    from the additive prediction (a graded score, no p-value, when replicates are wells);
    viability compares cell counts. With additivity and viability both run, the combined
    call ``additivity_or_viability`` (their Bonferroni minimum, with its BH q) is written
    too.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``profiles``), or its path.
    use : str, optional
        Profiles matrix: ``None`` (``X``), an ``obsm`` key, or ``"latent"`` (the
        simulator's true states: a truth check only).
    tests : str or sequence of str
        Any of ``"additivity"``, ``"disjointness"``, ``"separability"``, ``"viability"``
        (all four by default, as the step runs them).
    unit : str or None
        ``obs`` column of the replicate unit (within its plate); ``None`` treats cells as
        replicates (not valid under well effects).
    kernel : str
        ``"additive_rbf"``, ``"linear"`` or ``"rbf"``.
    separability : str
        Estimator with ``unit=None``: ``"classifier"`` (graded score) or ``"gaussian"``
        (p-value valid for Gaussian latents only).
    n_permutations, n_bootstrap : int
        Permutations of the disjointness test (and null data sets of separability);
        bootstrap resamples of the effect-size intervals.
    min_samples : int
        Fewest units per condition for a pair to be tested.
    on_small : str
        ``"skip"`` keeps pairs with too few cells as rows with a status; ``"error"`` stops.
    cross_batch : str
        A double whose singles ran only in other batches: ``"status"`` (reported untested),
        ``"pool"`` (tested against those singles; batch effects enter) or ``"error"``.
    additivity_target : str
        Shrinkage target of the additivity test's covariances: ``"diagonal"`` (the
        default) or ``"pooled"`` (each condition's variances joined by the pooled
        within-well correlation; more power on wide, correlated embeddings).
    device : str
        See the module docstring.
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``interactions`` (one row per pair and test: statistic, p, q, effect size,
        interval, sample sizes, status; ``study.read("interactions")``) and
        ``pair_details``; provenance step ``"interactions"``.
    """
    study = as_study(study)
    seed, device = _common(seed, device)
    tests = _names("tests", tests)
    if not tests:
        raise ValidationError("tests is empty.", "name at least one of additivity, "
                              "disjointness, separability, viability.")
    from workbench.tools.interactions import run_interactions

    run_interactions(study, use=check_str("use", use, optional=True), tests=tuple(tests),
                     unit=check_str("unit", unit, optional=True),
                     kernel=check_str("kernel", kernel, choices=("additive_rbf", "linear", "rbf")),
                     n_permutations=check_int("n_permutations", n_permutations, minimum=1),
                     n_bootstrap=check_int("n_bootstrap", n_bootstrap, minimum=1),
                     min_samples=check_int("min_samples", min_samples, minimum=2),
                     on_small=check_str("on_small", on_small, choices=("skip", "error")),
                     seed=seed, device=device,
                     separability=check_str("separability", separability,
                                            choices=("classifier", "gaussian")),
                     cross_batch=check_str("cross_batch", cross_batch,
                                           choices=("status", "pool", "error")),
                     additivity_target=check_str("additivity_target", additivity_target,
                                                 choices=("diagonal", "pooled")))
    return study.refresh()


def plan_pairs(study: Study | str | os.PathLike, *, budget: int = 5, planner: str = "auto",
               test: str = "disjointness", value: str = "effect_size",
               genes: Sequence[str] | None = None, use: str | None = None,
               scheduler: Any = None, chunk_size: int = 8192,
               device: str = "auto", seed: int = 0) -> Study:
    """Propose the next double perturbations from the tested ones, each with a reason.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after :func:`interactions`), or its path.
    budget : int
        Pairs to propose (1 .. the number of untested pairs).
    planner : str
        ``"auto"`` (of the two model-free rules, the exchangeable model and a rank average of
        the better rule with the model, the one that ranks held-out measured pairs best;
        cross-fitted) or a name of :data:`workbench.tools.campaign.PLANNERS`.
    test, value : str
        Which test's rows of ``interactions`` and which column to model (larger = more
        interacting).
    genes : sequence of str, optional
        Genes to plan over (default: every single perturbation of the screen).
    use : str, optional
        Profiles matrix whose singles give the side information.
    scheduler : str or distributed.Client, optional
        A ``dask.distributed`` scheduler address or Client: a model planner scores the candidate
        pairs in chunks on its workers (the same numbers as the local run).
    chunk_size : int
        Candidate pairs scored per chunk (per task with a scheduler).
    device : str
        See the module docstring.
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``pair_selection`` (the proposed pairs with rank, prediction, interval and
        reason, beside the measured ones; ``study.read("pair_selection")``); provenance
        step ``"plan_pairs"``.
    """
    study = as_study(study)
    seed, device = _common(seed, device)
    from workbench.tools.pair_planning import plan_pairs as _plan

    _plan(study, budget=check_int("budget", budget, minimum=1),
          planner=check_str("planner", planner), test=check_str("test", test),
          value=check_str("value", value), genes=_names("genes", genes),
          use=check_str("use", use, optional=True),
          scheduler=scheduler,
          chunk_size=check_int("chunk_size", chunk_size, minimum=1), seed=seed, device=device)
    return study.refresh()


def grn(study: Study | str | os.PathLike, *, genes: Sequence[str] | None = None,
        tf_list: Sequence[str] | None = None, n_top: int = 20, preset: str = "quick",
        method: str = "auto", max_parents: int | None = None, n_candidates: int = 12,
        n_steps: int | None = None,
        n_samples: int | None = None, temperature: float | str = "auto",
        sparsity: float = 70.0, reward: str = "linear", loss: str = "ftb",
        ftb_alpha: float | str = 1.0, warm_start: int = 0, warm_start_fit: int = 0,
        references: dict[str, Any] | None = None,
        device: str = "auto", seed: int = 0, progress: bool = False) -> Study:
    """Posterior over gene-regulatory networks, cycles allowed, from RNA velocity.

    Exact enumeration of bounded parent sets where it fits, the same over each gene's
    screened candidate parents beyond, or DynGFN (Atanackovic et al. 2023), next to a
    bootstrap sparse-regression baseline.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``velocity``), or its path.
    genes, tf_list : sequence of str, optional
        Genes to model, or transcription factors of which those present are used;
        default: the ``n_top`` most variable genes.
    n_top : int
        Number of genes picked when ``genes`` is not given.
    preset : str
        Training preset: ``"tiny"``, ``"quick"`` (CPU friendly), ``"realistic"``, ``"full"``.
    method : str
        ``"auto"`` (exact where it fits, screened beyond), ``"exact"``, ``"screened"``
        (enumeration over each gene's screened candidates) or ``"dyngfn"``.
    max_parents : int, optional
        Largest parent set per gene (exact posterior and DynGFN, default 4; for
        ``"screened"`` the largest set of candidates, default 6, its one-step edges on top).
    n_candidates : int
        Candidate parents per gene of the screened posterior.
    n_steps, n_samples : int, optional
        Training steps and posterior samples (override the preset).
    temperature : float or str
        ``"auto"`` (Gaussian likelihood) or the T of the reward MSE / T^2.
    sparsity : float
        Lambda of the edge prior ``lambda * |parents| / n_genes``.
    reward : str
        ``"linear"`` or ``"hyper"``.
    loss : str
        DynGFN's training loss: ``"ftb"`` (f-trajectory balance, Fawkes & Hartford, the
        default) or ``"db"`` (modified detailed balance); ``benchmarks/results_grn.md``
        compares them at 5-26 genes.
    ftb_alpha : float or str
        The divergence ``"ftb"`` minimises: 1 or ``"forward_kl"`` (the default), 0 or
        ``"reverse_kl"``, 0.5 (Hellinger), or any other alpha.
    warm_start, warm_start_fit : int
        With ``reward="hyper"``: steps of linear DynGFN before the hypernetwork reward
        takes over from that policy, and hypernetwork updates at the switch (0: none).
    references : dict of str to pandas.DataFrame, optional
        ``{name: edge list}`` of reference networks to score against
        (:func:`workbench.tools.grn_metrics.read_edge_list` reads them).
    device : str
        See the module docstring.
    seed : int
        See the module docstring.
    progress : bool
        See the module docstring.

    Returns
    -------
    Study
        With ``grn`` (``varp["edge_probability"]``: probability that gene j regulates gene
        i, metrics in ``uns["workbench"]``) and ``grn_samples`` (the posterior sample
        stack); provenance step ``"grn"``.
    """
    study = as_study(study)
    seed, device = _common(seed, device)
    if not (temperature == "auto" or (isinstance(temperature, Real)
                                      and not isinstance(temperature, bool))):
        raise ValidationError(f"temperature must be 'auto' or a number, got {temperature!r}.",
                              "leave it 'auto' unless you know the noise level.")
    from workbench.tools.grn import run_grn

    run_grn(study, genes=_names("genes", genes), tf_list=_names("tf_list", tf_list),
            n_top=check_int("n_top", n_top, minimum=2), size=check_str("preset", preset),
            n_steps=check_int("n_steps", n_steps, minimum=1, optional=True),
            n_samples=check_int("n_samples", n_samples, minimum=1, optional=True),
            temperature=temperature, sparsity=check_float("sparsity", sparsity),
            reward=check_str("reward", reward, choices=("linear", "hyper")),
            method=check_str("method", method,
                             choices=("auto", "exact", "screened", "dyngfn")),
            max_parents=check_int("max_parents", max_parents, minimum=1, optional=True),
            n_candidates=check_int("n_candidates", n_candidates, minimum=1),
            loss=check_str("loss", loss, choices=("db", "ftb")), ftb_alpha=ftb_alpha,
            warm_start=check_int("warm_start", warm_start, minimum=0),
            warm_start_fit=check_int("warm_start_fit", warm_start_fit, minimum=0),
            references=references, seed=seed, device=device, progress=bool(progress))
    return study.refresh()


def design_screen(study: Study | str | os.PathLike, *, budget: int = 10,
                  policy: str = "hardest", labels: Any = None, column: str = "label",
                  gamma: float = 0.9, delta: float = 0.05, seed: int = 0) -> Study:
    """Propose which perturbations to measure so that the rest can be predicted, with a
    certified stop (Inference Set Design).

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``perturbations``), or its path.
    budget : int
        Candidates to propose.
    policy : str
        A name of :data:`workbench.tools.design.screen.SCREEN_POLICIES`.
    labels : str, pathlib.Path, pandas.DataFrame or pandas.Series, optional
        A table (path, DataFrame or Series) with a ``perturbation`` column and the label
        of each measured candidate; ``None`` before anything is measured.
    column : str
        Column of ``labels`` to use.
    gamma, delta : float
        Target accuracy of the measured-plus-predicted table, and the allowed probability
        that the certified bound is wrong.
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``design_plan`` (the proposed batch with ranks and reasons, and the
        certificate once a proposed batch has come back labelled); provenance step of the
        design layer.
    """
    return _design(study, "screen", budget, policy, labels, column, seed,
                   gamma=check_float("gamma", gamma), delta=check_float("delta", delta))


def design_hits(study: Study | str | os.PathLike, *, budget: int = 10, policy: str = "ucb",
                labels: Any = None, column: str = "value", prior: Any = None,
                seed: int = 0) -> Study:
    """Propose the next perturbations to screen to find the most hits (linear Thompson
    sampling / UCB, GP-UCB, prior-guided nearest neighbour).

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``perturbations``), or its path.
    budget : int
        Candidates to propose.
    policy : str
        A name of :data:`workbench.tools.design.hits.HIT_POLICIES`.
    labels : str, pathlib.Path, pandas.DataFrame or pandas.Series, optional
        A table with a ``perturbation`` column and the phenotype value of each measured
        candidate; ``None`` before anything is measured.
    column : str
        Column of ``labels`` to use.
    prior : pandas.Series, optional
        A ``pandas.Series`` of prior scores indexed by perturbation (needed by
        ``policy="prior_nn"``).
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``design_plan`` (the proposed batch with scores and reasons).
    """
    kw = {} if prior is None else {"prior": prior}
    return _design(study, "hits", budget, policy, labels, column, seed, **kw)


def design_knockout(study: Study | str | os.PathLike, *, budget: int = 2, policy: str = "eig",
                    candidates: Sequence[str] | None = None, cells_per_knockout: int = 50,
                    seed: int = 0) -> Study:
    """Propose the next knock-outs that would teach most about the GRN posterior.

    Scores each candidate gene by the expected information gain about the graph over the
    Study's GRN posterior samples (BALD-style), and picks a batch by joint gain.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``grn``, ``grn_samples`` and ``grn_sample_weights``: run
        :func:`grn` first), or its path.
    budget : int
        Knock-outs to propose.
    policy : str
        ``"eig"`` (expected information gain), ``"uncertain_edges"`` (summed entropy of a
        gene's outgoing edges) or ``"random"``; see
        :data:`workbench.tools.design.knockout.KNOCKOUT_POLICIES`.
    candidates : sequence of str, optional
        Genes allowed as knock-outs (default every gene of the GRN).
    cells_per_knockout : int
        Cells the experiment would measure per knock-out (sets the expected noise).
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``design_plan`` (one row per gene: proposed or open, its gain and the edges it
        would inform).
    """
    study = as_study(study)
    seed, _ = _common(seed)
    from workbench.tools.design import propose

    propose(study, check_int("budget", budget, minimum=1), check_str("policy", policy),
            kind="knockout", seed=seed, candidates=_names("candidates", candidates),
            cells_per_knockout=check_int("cells_per_knockout", cells_per_knockout, minimum=1))
    return study.refresh()


def find(study: Study | str | os.PathLike, exemplars: str | Sequence[str], *,
         tau: float = 0.01, label_column: str | None = None, oracle: Any = None,
         positive: Any = None, budget: int = 200, batch: int = 20, delta: float = 0.05,
         policy: str = "guided", restart: bool = False, seed: int = 0) -> Study:
    """Search the screen for more crops like the exemplars, with a certified prevalence.

    Exemplar-guided sampling (Hartford et al. 2020) with an importance-weighted prevalence
    and a confidence sequence valid at every look: the search stops once the phenotype is
    confirmed above ``tau`` or certified below it (confidence ``1 - delta``), or after
    ``budget`` answers. Running it again on the same exemplars continues the kept search.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with profiles holding an embedding), or its path.
    exemplars : str or sequence of str
        Crop id(s) showing the phenotype.
    tau : float
        Prevalence threshold, in (0, 1).
    label_column : str, optional
        A profiles column that answers the questions (demo data, or a label the data
        carries); give this or ``oracle``.
    oracle : callable, optional
        A callable taking a list of crop ids and returning one yes/no answer for each
        (a person's answers in a notebook).
    positive : object, optional
        The value of ``label_column`` that means yes (default: the exemplars' value).
    budget : int
        New answers to ask for in this call.
    batch : int
        Crops per round.
    delta : float
        Allowed probability that the stop decision is wrong.
    policy : str
        ``"guided"`` (ours), ``"random"`` or ``"least_confidence"`` (the baselines).
    restart : bool
        Replace a kept search instead of continuing it.
    seed : int
        See the module docstring.

    Returns
    -------
    Study
        With ``phenotype_search`` (answers, draws with their probabilities, the interval
        and status per round, classifier scores, enriched perturbations).
    """
    study = as_study(study)
    seed, _ = _common(seed)
    from workbench.tools.find import run_find

    run_find(study, _names("exemplars", exemplars), tau=check_float("tau", tau),
             oracle=oracle, label_column=check_str("label_column", label_column, optional=True),
             positive=positive, batch=check_int("batch", batch, minimum=1),
             budget=check_int("budget", budget, minimum=1),
             delta=check_float("delta", delta), policy=check_str("policy", policy),
             seed=seed, restart=bool(restart))
    return study.refresh()


def _design(study, kind: str, budget, policy, labels, column, seed, **kw) -> Study:
    study = as_study(study)
    seed, _ = _common(seed)
    from workbench.tools.design import propose

    propose(study, check_int("budget", budget, minimum=1), check_str("policy", policy),
            kind=kind, labels=labels, column=check_str("column", column), seed=seed, **kw)
    return study.refresh()
