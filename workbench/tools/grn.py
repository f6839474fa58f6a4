"""The GRN step: a posterior over regulatory graphs (exact, screened or DynGFN), with a bootstrap baseline.

Reads the ``"velocity"`` artefact (cells x genes with layers ``spliced``, ``unspliced`` and
optionally ``velocity``; ``obs["trajectory"]`` when the cells come in trajectories),
chooses genes, computes steady-state velocity where none is given, scales the data
(``x`` standardised; velocity divided by the same ``sigma_x`` and *not* centred, since a
velocity is a rate of change of ``x``), trains :class:`~workbench.models.gflownet.DynGFN`
with checkpoints, draws posterior samples, and runs a bootstrap sparse-regression
ensemble on the same data as the baseline posterior. It writes:

- ``"grn"``: AnnData cells x selected genes, layers ``spliced``/``unspliced``/``velocity``,
  ``varp["edge_probability"]`` (DynGFN) and ``varp["baseline_edge_probability"]``
  (bootstrap), and in ``uns["workbench"]`` the settings, metrics against the ground
  truth or reference networks when available, and the most frequent cycles;
- ``"grn_samples"``: Zarr array samples x genes x genes (uint8).

Orientation: ``edge_probability[i, j]`` is the posterior probability that gene ``j``
regulates the velocity of gene ``i``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.errors import ValidationError, WorkbenchError

#: Quick settings used by the demo and tests; "full" trains longer.
PRESETS = {
    "tiny": dict(n_steps=40, n_envs=16, n_samples=200, n_boot=5),
    "quick": dict(n_steps=100, n_envs=32, n_samples=500, n_boot=10),
    "realistic": dict(n_steps=300, n_envs=64, n_samples=1000, n_boot=50),
    "full": dict(n_steps=1500, n_envs=128, n_samples=2000, n_boot=100),
}


def scale_for_grn(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise ``x``; divide ``v`` by the same per-gene ``sigma_x`` (no centring).

    Parameters
    ----------
    x : numpy.ndarray
        States, cells x genes.
    v : numpy.ndarray
        Velocities, cells x genes.

    Returns
    -------
    x : numpy.ndarray
        Centred ``x`` divided by ``sigma_x``, float32.
    v : numpy.ndarray
        ``v / sigma_x``, float32.
    sigma_x : numpy.ndarray
        Per-gene standard deviation of ``x`` (1 for a constant gene), float64.
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    sd = x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return ((x - x.mean(0)) / sd).astype(np.float32), (v / sd).astype(np.float32), sd


def auto_temperature(x: np.ndarray, v: np.ndarray, n_effective: float) -> float:
    """Gaussian-likelihood temperature ``T = sqrt(2 s^2 / n_eff)``.

    ``MSE / T^2`` equals the log-likelihood ``n_eff * MSE / (2 s^2)`` when ``s^2`` is the noise
    variance; ``s^2`` is estimated as the median residual variance of a regression of each
    gene's velocity on all genes. ``n_eff`` counts independent observations (trajectories,
    or cells divided by the smoothing neighbourhood).

    Parameters
    ----------
    x : numpy.ndarray
        States, cells x genes (as scaled by :func:`scale_for_grn`).
    v : numpy.ndarray
        Velocities, cells x genes.
    n_effective : float
        Independent observations ``n_eff`` (floored at 1).

    Returns
    -------
    float
        The temperature ``T``.
    """
    xc, vc = x - x.mean(0), v - v.mean(0)
    coef, *_ = np.linalg.lstsq(xc, vc, rcond=None)
    s2 = float(np.median(((vc - xc @ coef) ** 2).mean(0)))
    return float(np.sqrt(2.0 * max(s2, 1e-12) / max(n_effective, 1.0)))


def prepare(adata, *, genes=None, tf_list=None, n_top: int = 20, n_neighbors: int = 30,
            recompute_velocity: bool = False, seed: int = 0) -> dict:
    """Select genes and get ``x`` (states) and ``v`` (velocity) from a velocity AnnData.

    A ``velocity`` layer of the data is used as given (``recompute_velocity=True`` ignores
    it), paired with the smoothed spliced counts ``Ms`` when the data have them (scVelo
    computes its velocity on ``Ms``), else with ``spliced``. Without one, steady-state
    velocity is computed and paired with its own ``Ms``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells x genes with layers ``spliced`` and ``unspliced`` (optionally ``velocity``,
        ``Ms``) and optionally ``obs["trajectory"]``.
    genes : sequence of str, optional
        Named genes; they win over ``tf_list``.
    tf_list : sequence of str, optional
        Transcription factors; those present are kept, ranked by dispersion.
    n_top : int
        Genes kept from ``tf_list`` or, when neither list is given, by dispersion.
    n_neighbors : int
        Cells averaged per cell when steady-state velocity is computed.
    recompute_velocity : bool
        Ignore a ``velocity`` layer of the data and compute steady-state velocity.
    seed : int
        Seed of the steady-state computation.

    Returns
    -------
    dict
        ``genes`` (the names chosen), ``x`` and ``v`` (cells x genes, float64),
        ``spliced`` and ``unspliced`` (the selected genes' counts), ``trajectory`` (the
        ``obs`` column as an array, or ``None``) and ``velocity_source`` (where ``v`` came
        from).

    Raises
    ------
    ValidationError
        When a layer is missing, fewer than 2 genes are selected, or the data's own
        velocity is not finite for a selected gene.
    """
    from workbench.tools.velocity import select_genes, steady_state_velocity

    for layer in ("spliced", "unspliced"):
        if layer not in adata.layers:
            raise ValidationError(f"the velocity data have no layers[{layer!r}].",
                                  "import spliced and unspliced counts (`workbench import "
                                  "velocity FILE`).")
    spliced_all = adata.layers["spliced"]
    names = select_genes(adata.var_names, genes=genes, tf_list=tf_list,
                         counts=spliced_all, n_top=n_top)
    if len(names) < 2:
        raise ValidationError(f"only {len(names)} gene selected.", "select at least 2 genes.")
    idx = [list(adata.var_names).index(g) for g in names]
    dense = lambda m: np.asarray(m.toarray() if hasattr(m, "toarray") else m, np.float64)  # noqa: E731
    if "velocity" in adata.layers and not recompute_velocity:
        paired = "Ms" if "Ms" in adata.layers else "spliced"
        x = dense(adata.layers[paired][:, idx])
        v = dense(adata.layers["velocity"][:, idx])
        bad = [g for g, ok in zip(names, np.isfinite(v).all(0), strict=True) if not ok]
        if bad:
            raise ValidationError(
                f"the data's own velocity is NaN or infinite for {len(bad)} selected gene(s): "
                f"{', '.join(bad[:8])}{'...' if len(bad) > 8 else ''}.",
                "select genes with a fitted velocity, or recompute it from spliced and "
                "unspliced counts (recompute_velocity=True).")
        source = f"given (paired with {paired})"
        s, u = dense(adata.layers["spliced"][:, idx]), dense(adata.layers["unspliced"][:, idx])
    else:
        # smooth on all genes' neighbourhoods, then keep the selected ones
        vel = steady_state_velocity(adata.layers["spliced"], adata.layers["unspliced"],
                                    n_neighbors=n_neighbors, seed=seed)
        x, v = vel["Ms"][:, idx].astype(np.float64), vel["velocity"][:, idx].astype(np.float64)
        s = dense(adata.layers["spliced"][:, idx])
        u = dense(adata.layers["unspliced"][:, idx])
        source = "steady_state"
    traj = adata.obs["trajectory"].to_numpy() if "trajectory" in adata.obs else None
    return {"genes": names, "x": x, "v": v, "spliced": s, "unspliced": u,
            "trajectory": traj, "velocity_source": source}


def truth_from_study(study, genes) -> np.ndarray | None:
    """The demo world's dependency graph on ``genes``: its adjacency plus decay self-loops.

    Parameters
    ----------
    study : Study
        The Study; its ``"ground_truth"`` artefact is read when present.
    genes : sequence of str
        Genes of the network, in the order of the result's rows and columns.

    Returns
    -------
    numpy.ndarray or None
        ``(d, d)`` uint8, ``[i, j] = 1`` where gene ``j`` acts on gene ``i`` (the diagonal
        set); ``None`` when the Study has no ground truth with ``adjacency`` and ``genes``,
        or it lacks one of ``genes``.
    """
    if not study.has("ground_truth"):
        return None
    gt = study.read("ground_truth")
    if "adjacency" not in gt or "genes" not in gt:
        return None
    order = {g: k for k, g in enumerate(gt["genes"])}
    if not all(g in order for g in genes):
        return None
    idx = [order[g] for g in genes]
    adj = (np.asarray(gt["adjacency"])[np.ix_(idx, idx)] > 0).astype(np.uint8)
    return adj | np.eye(len(genes), dtype=np.uint8)  # decay makes x_i a parent of dx_i/dt


def fit_posteriors(x, v, *, n_steps: int, n_envs: int, n_samples: int, n_boot: int,
                   temperature: float, sparsity: float, reward: str = "linear",
                   groups=None, seed: int = 0, device: str = "auto",
                   checkpoint_path=None, progress: bool = False, **dyngfn_kw) -> dict:
    """Train DynGFN and the bootstrap baseline on scaled ``x, v``; return both posteriors.

    Parameters
    ----------
    x, v : numpy.ndarray
        Scaled states and velocities, cells x genes (:func:`scale_for_grn`).
    n_steps : int
        DynGFN training steps.
    n_envs : int
        Graphs rolled out per training step.
    n_samples : int
        Posterior samples drawn from the trained sampler.
    n_boot : int
        Bootstrap resamples of the baseline.
    temperature : float
        ``T`` of the reward ``MSE / T^2``.
    sparsity : float
        ``lambda`` of the edge prior ``lambda * |parents| / n_genes``.
    reward : str
        ``"linear"`` or ``"hyper"`` (hypernetwork) reward model.
    groups : array_like, optional
        Trajectory of each cell; the baseline resamples whole groups.
    seed : int
        Seed of training, sampling (``seed + 1``) and the bootstrap.
    device : str
        Torch device for DynGFN (``"auto"`` picks one).
    checkpoint_path : str or pathlib.Path, optional
        Training checkpoint file, for resuming; ``None`` keeps none.
    progress : bool
        Show a progress bar.
    **dyngfn_kw
        Further arguments of :class:`~workbench.models.gflownet.DynGFN` (loss,
        ``ftb_alpha``, ``max_parents``, ...).

    Returns
    -------
    dict
        ``model`` (the fitted DynGFN), ``samples`` (graphs, samples x genes x genes),
        ``edge_probability`` (their mean), ``baseline`` (the fitted
        ``BootstrapLassoPosterior``) and ``weights`` (each sample's fitted edge weights).
    """
    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import BootstrapLassoPosterior

    model = DynGFN(reward=reward, temperature=temperature, sparsity=sparsity, n_steps=n_steps,
                   n_envs=n_envs, seed=seed, device=device, checkpoint_path=checkpoint_path,
                   progress=progress, **dyngfn_kw)
    model.fit(x, v)
    samples = model.sample(n_samples, seed=seed + 1)
    baseline = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(x, v, groups=groups)
    from workbench.models.gflownet.exact_posterior import (parent_set_coefficients,
                                                           sufficient_statistics)

    weights = parent_set_coefficients(sufficient_statistics(x, v), samples, model.ridge)
    return {"model": model, "samples": samples, "edge_probability": samples.mean(0),
            "baseline": baseline, "weights": weights}


def evaluate(result: dict, truth: np.ndarray, groups=None, name: str = "dyngfn") -> dict:
    """Metrics of DynGFN and the baseline against a ground truth (same run, same data).

    Parameters
    ----------
    result : dict
        Output of :func:`fit_posteriors` or :func:`fit_exact`.
    truth : numpy.ndarray
        ``(d, d)`` true graph (:func:`truth_from_study`).
    groups : array_like, optional
        Group label of each gene: genes of one group are interchangeable as parents in the
        admissible set (:meth:`~workbench.tools.grn_metrics.AdmissibleSet.from_truth`);
        ``None`` puts every gene in a group of its own.
    name : str
        Key of the sampler's metrics in the result.

    Returns
    -------
    dict
        ``{name: metrics, "baseline": metrics, "kl_direction": text}``, each metrics dict
        from :func:`~workbench.tools.grn_metrics.posterior_metrics` (KL included).
    """
    from workbench.tools.grn_metrics import (AdmissibleSet, bernoulli_row_log_prob,
                                             posterior_metrics)

    adm = AdmissibleSet.from_truth(truth, groups)
    model, base = result["model"], result["baseline"]
    dyn = posterior_metrics(result["samples"], adm,
                            log_q_row=lambda i, p: model.log_prob_parent_set(i, p))
    bl = posterior_metrics(base.samples_, adm,
                           log_q_row=bernoulli_row_log_prob(base.edge_probability_,
                                                            base.n_boot))
    return {name: dyn, "baseline": bl,
            "kl_direction": "KL(P* || Q), P* uniform over the admissible graphs"}


def reference_metrics(edge_probability, genes, references: dict, n_perm: int = 1000,
                      seed: int = 0) -> dict:
    """AUROC/AUPRC against named edge tables ``{name: DataFrame(source, target)}``.

    Parameters
    ----------
    edge_probability : array_like
        ``(d, d)`` edge probabilities, ``[i, j]`` for ``j -> i``.
    genes : sequence of str
        Gene names of the rows and columns.
    references : dict
        Name to edge table with ``source`` and ``target`` columns.
    n_perm : int
        Permutations of the null of each AUROC.
    seed : int
        Seed of the permutations.

    Returns
    -------
    dict
        Name to the result of :func:`~workbench.tools.grn_metrics.reference_auc`.
    """
    from workbench.tools.grn_metrics import reference_auc, reference_matrix

    out = {}
    for name, edges in references.items():
        ref = reference_matrix(edges, genes)
        out[name] = reference_auc(edge_probability, ref, n_perm=n_perm, seed=seed)
    return out


#: ``method="auto"`` enumerates every bounded parent set (the exact posterior) while that is
#: at most this many (gene, parent set) pairs (26 genes with 4 parents: 465,452), and
#: screens candidates beyond (``"screened"``): at 50 genes the screened posterior ranked
#: edges better than full enumeration with 4 parents (AUROC 0.987 vs 0.967 over three
#: systems, 5.3 s vs 155 s; ``benchmarks/results_grn_scale.md``), since it allows sets of 6
#: candidates and one-step edges on top.
EXACT_LIMIT = 2_000_000

#: Candidate parents per gene of the screened posterior.
N_CANDIDATES = 12

#: Default bound on a screened set's candidate parents: 6, not the exact posterior's 4, since
#: a cap below a gene's true in-degree costs the screened posterior its lead over ``|OLS|``
#: (one 30-gene panel: 0.926 with 4, 0.992 with 6, |OLS| 0.993; "How the screened defaults
#: were chosen" in ``benchmarks/results_grn_scale.md``), and 6 of 12 candidates is 2,510
#: sets per gene.
SCREEN_MAX_PARENTS = 6


def fit_exact(x, v, *, max_parents: int, n_samples: int, n_boot: int, groups=None,
              seed: int = 0, n_candidates: int | None = None) -> dict:
    """The exact bounded-parent posterior, its settings chosen from the data, and the baseline.

    Noise per gene from held-out residuals (its overall level rescaled by the evidence),
    effective sample size from their correlation (Kish's design effect), edge prior and
    weight prior by maximising the exact evidence;
    see :mod:`workbench.models.gflownet.exact_posterior`. With ``n_candidates`` the sets are
    those of each gene's screened candidates, and genes outside them get a one-step
    inclusion probability (:mod:`workbench.models.gflownet.screened_posterior`).

    Parameters
    ----------
    x, v : numpy.ndarray
        Scaled states and velocities, cells x genes (:func:`scale_for_grn`).
    max_parents : int
        Largest parent set per gene.
    n_samples : int
        Graphs drawn exactly from the posterior.
    n_boot : int
        Bootstrap resamples of the baseline.
    groups : array_like, optional
        Trajectory of each cell: held-out folds, the design effect and the baseline's
        bootstrap use whole groups.
    seed : int
        Seed of the folds, the samples (``seed + 1``) and the bootstrap.
    n_candidates : int, optional
        Candidate parents per gene (the screened posterior); ``None`` enumerates every gene.

    Returns
    -------
    dict
        ``model`` (the fitted ``ExactParentPosterior`` or ``ScreenedParentPosterior``),
        ``samples``, ``edge_probability``
        (exact), ``baseline``, ``chosen`` (the settings chosen from the data and the log
        evidence) and ``weights`` (each sample's fitted edge weights).
    """
    from workbench.models.gflownet import exact_posterior as ep
    from workbench.models.grn_params import BootstrapLassoPosterior

    res = ep.held_out_residuals(x, v, groups=groups, seed=seed)
    sigma2 = ep.noise_variance(res)
    n_eff = ep.effective_sample_size(x, res, groups=groups)
    stats = ep.sufficient_statistics(x, v)
    extra = {}
    if n_candidates is None:
        sets = ep.parent_sets(x.shape[1], max_parents)
        eb = ep.empirical_bayes(stats, sets, sigma2, n_eff)
        model = ep.ExactParentPosterior(max_parents, eb["temperature"], eb["edge_prior"],
                                        eb["ridge"], seed=seed).fit_statistics(stats)
    else:
        from workbench.models.gflownet import screened_posterior as sp

        cand = sp.screen_candidates(stats, n_candidates)
        sets = ep.parent_sets(cand.shape[1], max_parents)
        eb = ep.empirical_bayes(stats, sets, sigma2, n_eff, candidates=cand)
        model = sp.ScreenedParentPosterior(max_parents, cand.shape[1], eb["temperature"],
                                           eb["edge_prior"], eb["ridge"],
                                           seed=seed).fit_statistics(stats, cand)
        extra = {"n_candidates": int(cand.shape[1]), "outside_mass": model.outside_mass_}
    samples = model.sample(n_samples, seed=seed + 1)
    baseline = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(x, v, groups=groups)
    chosen = {"method": "exact" if n_candidates is None else "screened", **extra,
              "max_parents": max_parents,
              "temperature": eb["temperature"].tolist(),
              "noise_variance": eb["noise_variance"].tolist(),
              "noise_scale": eb["noise_scale"],
              "n_effective": eb["n_effective"], "edge_prior": eb["edge_prior"],
              "prior_sd": eb["prior_sd"], "ridge": eb["ridge"], "log_evidence": eb["evidence"],
              "n_parent_sets": model.n_sets}
    return {"model": model, "samples": samples, "edge_probability": model.edge_probability_,
            "baseline": baseline, "chosen": chosen, "weights": model.coefficients(samples)}


def run_grn(study, *, genes=None, tf_list=None, n_top: int = 20, size: str = "quick",
            n_steps: int | None = None, n_envs: int | None = None,
            n_samples: int | None = None, n_boot: int | None = None,
            temperature: float | str = "auto", sparsity: float = 70.0,
            reward: str = "linear", method: str = "auto", max_parents: int | None = None,
            n_candidates: int = N_CANDIDATES, loss: str = "ftb", ftb_alpha: float | str = 1.0,
            warm_start: int = 0, warm_start_fit: int = 0,
            recompute_velocity: bool = False, references: dict | None = None, seed: int = 0,
            device: str = "auto", checkpoint_dir=None, progress: bool = False) -> dict:
    """Run the GRN step on a Study's ``"velocity"`` artefact; returns the metrics written.

    ``method="exact"`` enumerates every parent set of at most ``max_parents`` genes and
    normalises the reward exactly (:func:`fit_exact`; temperature, edge prior and weight
    prior are chosen from the data and recorded); ``"dyngfn"`` trains the GFlowNet sampler;
    ``"screened"`` does the same over each gene's ``n_candidates`` screened candidate
    parents, with a one-step inclusion probability for the other genes
    (:mod:`workbench.models.gflownet.screened_posterior`); ``"auto"`` takes the exact
    posterior while it has at most :data:`EXACT_LIMIT` (gene, set) pairs, the screened one
    beyond, and DynGFN for the hypernetwork reward.

    For DynGFN, ``temperature="auto"`` uses :func:`auto_temperature` with the number of
    trajectories (or cells / 30) as the effective sample size, and each gene has at most
    ``max_parents`` parents. ``loss`` (``"db"``, ``"tb"`` or ``"ftb"`` with ``ftb_alpha``,
    see :class:`~workbench.models.gflownet.DynGFN`) is the training objective; the default,
    f-trajectory balance with the forward KL (``ftb_alpha=1``), reached a KL to the
    enumerated reward posterior 2.5 and 17 times smaller than modified detailed balance on
    the 14- and 26-gene demo worlds at the same budget, with a higher edge AUROC
    (``benchmarks/results_grn.md``, "Loss family at realistic sizes"). Loss, alpha and
    parent cap are recorded in the step's params. Training checkpoints go to
    ``checkpoint_dir`` (default: ``<study>/.checkpoints/grn``); running the step again after
    an interrupt resumes from there with the same settings.

    Parameters
    ----------
    study : Study
        The Study; needs ``"velocity"``, writes ``"grn"``, ``"grn_samples"`` and
        ``"grn_sample_weights"``.
    genes : sequence of str, optional
        Named genes; they win over ``tf_list``.
    tf_list : sequence of str, optional
        Transcription factors; those present are kept, ranked by dispersion.
    n_top : int
        Genes kept from ``tf_list`` or, when neither list is given, by dispersion.
    size : str
        Preset of :data:`PRESETS`: ``"tiny"``, ``"quick"``, ``"realistic"`` or ``"full"``.
    n_steps, n_envs, n_samples, n_boot : int, optional
        Override the preset's training steps, roll-outs per step, posterior samples and
        bootstrap resamples; ``None`` keeps the preset's.
    temperature : float or str
        DynGFN's ``T``, or ``"auto"`` (:func:`auto_temperature`); the exact method chooses
        its own.
    sparsity : float
        DynGFN's edge prior ``lambda``.
    reward : str
        DynGFN's reward model, ``"linear"`` or ``"hyper"``; ``method="auto"`` with
        ``"hyper"`` trains DynGFN (the exact method scores the linear model only).
    method : str
        ``"auto"``, ``"exact"``, ``"screened"`` or ``"dyngfn"``.
    max_parents : int, optional
        Largest parent set per gene (at least 1); for ``"screened"``, the largest set of
        candidates (its one-step edges come on top). ``None``: 4 for the exact posterior and
        DynGFN, :data:`SCREEN_MAX_PARENTS` for the screened one.
    n_candidates : int
        Candidate parents per gene of the screened posterior (at least 1).
    loss : str
        DynGFN's objective: ``"db"``, ``"tb"`` or ``"ftb"``.
    ftb_alpha : float or str
        The f-divergence of ``loss="ftb"`` (a number, or a name of
        :data:`~workbench.models.gflownet.f_losses.DIVERGENCES`).
    warm_start, warm_start_fit : int
        With ``reward="hyper"``: train ``warm_start`` steps of linear DynGFN first, then
        switch to the hypernetwork reward from that policy, fitting the hypernetwork
        ``warm_start_fit`` times at the switch (DynGFN's linear-to-hyper pipeline; 0: no
        warm start). Recorded in the step's params.
    recompute_velocity : bool
        Ignore the data's own velocity layer and compute steady-state velocity.
    references : dict, optional
        Name to edge table (``source``, ``target``) to score both posteriors against.
    seed : int
        Seed of every random step.
    device : str
        Torch device for DynGFN.
    checkpoint_dir : str or pathlib.Path, optional
        Folder of DynGFN's checkpoints; ``None`` uses ``<study>/.checkpoints/grn``.
    progress : bool
        Show a progress bar while training.

    Returns
    -------
    dict
        ``settings``, ``orientation``, ``kl_direction``, ``cycles``,
        ``self_loop_probability`` and ``mean_edges_per_sample``; ``history`` (DynGFN),
        ``metrics`` and ``true_edges`` (when the Study has a ground truth) and
        ``reference_metrics`` (with ``references``).

    Raises
    ------
    WorkbenchError
        For an unknown size, method, loss or alpha, or ``max_parents`` below 1.
    """
    from workbench.models.gflownet.exact_posterior import n_parent_sets
    from workbench.tools.grn_metrics import cycle_frequencies, cycle_table

    study.require("velocity", why="the grn step reads it")
    if size not in PRESETS:
        raise WorkbenchError(f"unknown GRN size {size!r}.",
                             f"use one of {', '.join(PRESETS)}, or set n_steps/n_envs yourself.")
    if method not in ("auto", "exact", "screened", "dyngfn"):
        raise WorkbenchError(f"unknown GRN method {method!r}.",
                             "use 'auto', 'exact' (enumerated posterior), 'screened' "
                             "(enumerated over screened candidates) or 'dyngfn'.")
    if int(n_candidates) < 1:
        raise WorkbenchError(f"n_candidates must be at least 1, got {n_candidates}.",
                             f"keep a few candidate parents per gene ({N_CANDIDATES} is the "
                             "default).")
    if loss not in ("db", "tb", "ftb"):
        raise WorkbenchError(f"unknown GFlowNet loss {loss!r}.",
                             "use 'db' (detailed balance), 'tb' (trajectory balance) or 'ftb' "
                             "(f-trajectory balance, with ftb_alpha).")
    if loss == "ftb":
        from workbench.models.gflownet.f_losses import resolve_alpha

        resolve_alpha(ftb_alpha)
    if max_parents is not None and int(max_parents) < 1:
        raise WorkbenchError(f"max_parents must be at least 1, got {max_parents}.",
                             "allow each gene at least one parent (4 is the default).")
    preset = dict(PRESETS[size])
    for key, val in dict(n_steps=n_steps, n_envs=n_envs, n_samples=n_samples,
                         n_boot=n_boot).items():
        if val is not None:
            preset[key] = val
    adata = study.read("velocity")
    data = prepare(adata, genes=genes, tf_list=tf_list, n_top=n_top,
                   recompute_velocity=recompute_velocity, seed=seed)
    x, v, sd = scale_for_grn(data["x"], data["v"])
    traj = data["trajectory"]
    d = x.shape[1]
    if (warm_start or warm_start_fit) and reward != "hyper":
        raise ValidationError("warm_start trains the linear reward before the hypernetwork "
                              f"one, so it needs reward='hyper' (got {reward!r}).",
                              "pass reward='hyper' (--reward hyper), or leave warm_start at 0.")
    if method == "auto":
        if reward != "linear":
            method = "dyngfn"
        else:
            fits = n_parent_sets(d, 4 if max_parents is None else max_parents) * d <= EXACT_LIMIT
            method = "exact" if fits else "screened"
    if max_parents is None:
        max_parents = SCREEN_MAX_PARENTS if method == "screened" else 4
    if method in ("exact", "screened"):
        screened = method == "screened"
        params = {"genes": data["genes"], "size": size, "n_samples": preset["n_samples"],
                  "n_boot": preset["n_boot"], "method": method, "max_parents": int(max_parents),
                  **({"n_candidates": int(n_candidates)} if screened else {}),
                  "velocity_source": data["velocity_source"]}
        result = fit_exact(x, v, max_parents=int(max_parents), n_samples=preset["n_samples"],
                           n_boot=preset["n_boot"], groups=traj, seed=seed,
                           n_candidates=int(n_candidates) if screened else None)
        settings = {**params, **result["chosen"]}
    else:
        n_eff = len(np.unique(traj)) if traj is not None else len(x) / 30.0
        temp = auto_temperature(x, v, n_eff) if temperature == "auto" else float(temperature)
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else study.path / ".checkpoints" / "grn"
        params = {"genes": data["genes"], "size": size, **preset, "temperature": temp,
                  "sparsity": sparsity, "reward": reward, "method": "dyngfn", "loss": loss,
                  **({"ftb_alpha": ftb_alpha} if loss == "ftb" else {}),
                  "max_parents": int(max_parents), "velocity_source": data["velocity_source"],
                  **({"warm_start": int(warm_start), "warm_start_fit": int(warm_start_fit)}
                     if reward == "hyper" else {})}
        ckpt = ckpt_dir / f"dyngfn-{_settings_key(params, seed)}.pt"
        result = fit_posteriors(x, v, temperature=temp, sparsity=sparsity, reward=reward,
                                groups=traj, seed=seed, device=device, checkpoint_path=ckpt,
                                progress=progress, loss=loss, ftb_alpha=ftb_alpha,
                                max_parents=int(max_parents),
                                **({"warm_start": int(warm_start),
                                    "warm_start_fit": int(warm_start_fit)}
                                   if reward == "hyper" else {}), **preset)
        settings = params
    genes_sel = data["genes"]
    info = {"settings": settings, "orientation": "edge_probability[i, j]: gene j regulates "
            "the velocity of gene i", "kl_direction": "KL(P* || Q)",
            "cycles": cycle_frequencies(result["samples"], genes_sel),
            "self_loop_probability": np.diag(result["edge_probability"]).tolist(),
            "mean_edges_per_sample": float(result["samples"].sum((1, 2)).mean())}
    if hasattr(result["model"], "history_"):
        info["history"] = {k: [float(a) for a in vals[-50:]]
                           for k, vals in result["model"].history_.items()}
    truth = truth_from_study(study, genes_sel)
    if truth is not None:
        info["metrics"] = evaluate(result, truth, name=settings["method"])
        info["true_edges"] = int(truth.sum())
    if references:
        info["reference_metrics"] = {
            settings["method"]: reference_metrics(result["edge_probability"], genes_sel,
                                                  references, seed=seed),
            "baseline": reference_metrics(result["baseline"].edge_probability_, genes_sel,
                                          references, seed=seed)}
    out = _grn_anndata(adata, data, x, v, sd, result,
                       {**info, "cycles": cycle_table(info["cycles"])})
    with study.step("grn", params=params, seed=seed, inputs=["velocity"]) as tx:
        tx.write_anndata("grn", out, screen=False,
                         description=f"posterior over regulatory graphs ({settings['method']})")
        tx.write_array("grn_samples", result["samples"],
                       attrs={"genes": genes_sel, "orientation": info["orientation"]})
        tx.write_array("grn_sample_weights", result["weights"],
                       attrs={"genes": genes_sel, "orientation": info["orientation"],
                              "units": WEIGHT_UNITS})
        tx.note(**_flat_metrics(info))
    return info


def density_warnings(info: dict) -> list[str]:
    """What a user should know before reading a dense posterior (empty when nothing).

    Two signs, from the step's returned ``info``: most genes fill the parent cap (the data
    supports many parents at once: on kNN-smoothed real data the linear velocity model is
    then predicting velocity from co-expression, not identifying regulators), and, for the
    screened posterior, a large share of each sample's edges coming from the one-step
    approximation outside the candidates.

    Parameters
    ----------
    info : dict
        What :func:`run_grn` returns.

    Returns
    -------
    list of str
        One sentence per warning.
    """
    s = info.get("settings", {})
    d = len(s.get("genes", []))
    out = []
    if not d or s.get("method") not in ("exact", "screened"):
        return out
    per_gene = info["mean_edges_per_sample"] / d
    cap = int(s["max_parents"])
    outside = float(s.get("outside_mass", 0.0)) / d
    inside = per_gene - outside
    if inside >= 0.8 * cap:
        out.append(f"most genes fill the parent cap ({inside:.1f} of {cap} parents per gene in "
                   "each sample): the data supports many parents at once, which on smoothed "
                   "real data usually means co-expression rather than regulation; read the "
                   "edges as a ranking and check them against a reference network")
    if s.get("method") == "screened" and outside >= 0.25 * per_gene and outside > 0.5:
        out.append(f"{outside:.1f} of the {per_gene:.1f} edges per gene in each sample lie "
                   "outside the screened candidates (one-step approximation); raise "
                   "--candidates to enumerate more of them")
    return out


#: What the stored per-sample weights mean.
WEIGHT_UNITS = ("change in the velocity of gene i, in sds of x_i per unit time, per sd of "
                "x_j (both genes standardised as the GRN step fits them); sign > 0 activates")


def effect_label(share: float) -> str:
    """``activates`` / ``represses`` when at least 90 % of the samples holding an edge agree on
    its sign, ``mixed`` otherwise, ``unknown`` where no sample holds it.

    Parameters
    ----------
    share : float
        Share of the samples holding the edge whose weight is positive (``NaN``: none
        holds it).

    Returns
    -------
    str
        ``"activates"``, ``"represses"``, ``"mixed"`` or ``"unknown"``.
    """
    share = float(share)
    if not np.isfinite(share):
        return "unknown"
    return "activates" if share >= 0.9 else "represses" if share <= 0.1 else "mixed"


def edge_frame(names, prob, weight=None, positive_share=None, threshold: float = 0.5):
    """Edges ``source -> target`` with probability at least ``threshold`` (self-loops left
    out), most probable first, with the mean fitted weight and effect when given.

    Parameters
    ----------
    names : sequence of str
        Gene names of the rows and columns.
    prob : array_like
        ``(d, d)`` edge probabilities, ``[i, j]`` for ``j -> i``.
    weight : array_like, optional
        ``(d, d)`` mean fitted weight given the edge.
    positive_share : array_like, optional
        ``(d, d)`` share of samples in which the edge activates; the ``weight`` and
        ``effect`` columns are added only when both this and ``weight`` are given.
    threshold : float
        Smallest probability kept.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``target``, ``probability`` (and ``weight``, ``effect``).
    """
    import pandas as pd

    prob = np.asarray(prob)
    i, j = np.nonzero(prob >= threshold)
    keep = i != j
    i, j = i[keep], j[keep]
    df = pd.DataFrame({"source": np.asarray(names, dtype=object)[j],
                       "target": np.asarray(names, dtype=object)[i], "probability": prob[i, j]})
    if weight is not None and positive_share is not None:
        df["weight"] = np.asarray(weight, np.float64)[i, j]
        df["effect"] = pd.Series([effect_label(v) for v in np.asarray(positive_share)[i, j]],
                                 dtype=object)
    return df.sort_values("probability", ascending=False, ignore_index=True)


def export_edges(study, path, threshold: float = 0.5):
    """Write the GRN step's likely edges (probability, weight, effect) to a CSV file.

    Parameters
    ----------
    study : Study
        A Study on which the GRN step has run.
    path : str or pathlib.Path
        CSV file to write.
    threshold : float
        Smallest edge probability kept.

    Returns
    -------
    pandas.DataFrame
        The edges written (:func:`edge_frame`); ``weight`` and ``effect`` only when the
        step stored them.
    """
    study.require("grn", why="the edges come from the GRN step")
    g = study.read("grn")
    has = "edge_weight" in g.varp and "edge_positive_share" in g.varp
    df = edge_frame(list(map(str, g.var_names)), g.varp["edge_probability"],
                    g.varp["edge_weight"] if has else None,
                    g.varp["edge_positive_share"] if has else None, threshold)
    df.to_csv(path, index=False)
    return df


def _grn_anndata(adata, data, x, v, sd, result, info):
    import anndata as ad
    import pandas as pd

    from workbench.models.gflownet.exact_posterior import edge_sign_summary

    genes = data["genes"]
    obs = adata.obs.copy()
    var = pd.DataFrame({"sigma_x": sd}, index=pd.Index(genes, name="gene"))
    out = ad.AnnData(X=np.asarray(data["x"], np.float32), obs=obs, var=var)
    out.layers["spliced"] = np.asarray(data["spliced"], np.float32)
    out.layers["unspliced"] = np.asarray(data["unspliced"], np.float32)
    out.layers["velocity"] = np.asarray(data["v"], np.float32)
    out.varp["edge_probability"] = result["edge_probability"].astype(np.float32)
    out.varp["baseline_edge_probability"] = result["baseline"].edge_probability_.astype(np.float32)
    mean_w, positive = edge_sign_summary(result["samples"], result["weights"])
    out.varp["edge_weight"] = mean_w.astype(np.float32)
    out.varp["edge_positive_share"] = positive.astype(np.float32)
    out.uns["workbench"] = _jsonable(info)
    return out


def _flat_metrics(info: dict) -> dict:
    flat = {}
    for who, m in info.get("metrics", {}).items():
        if isinstance(m, dict):
            for k, val in m.items():
                flat[f"{who}_{k}"] = val
    return flat


def _jsonable(obj):
    """Make nested metrics storable in ``uns`` (no None, plain floats and strings)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        if any(isinstance(o, dict) for o in obj):
            raise TypeError("a list of mappings cannot be stored in uns; store a table")
        return [_jsonable(o) for o in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer, int)) and not isinstance(obj, bool):
        return int(obj)
    return obj


def _settings_key(params: dict, seed: int) -> str:
    import hashlib
    import json

    blob = json.dumps({**params, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def demo_step(study, size: str = "quick", seed: int = 0) -> None:
    """The GRN view of the demo world: all simulated genes, quick training, metrics vs truth.

    Parameters
    ----------
    study : Study
        The demo Study, with ``"velocity"``.
    size : str
        Preset of :data:`PRESETS`; ``"tiny"`` and ``"quick"`` train on the CPU.
    seed : int
        Seed of the step.
    """
    genes = [str(g) for g in study.read("velocity").var_names]  # every gene of the world
    run_grn(study, genes=genes, size=size, seed=seed,
            device="cpu" if size in ("tiny", "quick") else "auto")
