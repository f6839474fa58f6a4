"""Replay the knock-out planner on the demo world: knock out, refit, measure, repeat.

The demo world's network (:mod:`workbench.data.simulate.grn`) is observed along
trajectories as in the demo Study. Each round the planner chooses ``budget`` genes; each
chosen gene is knocked out in the simulator (its transcription rate set to zero and its
level started at zero, so ``x_g`` stays clamped at zero and its velocity at zero) and new
trajectories are sampled under that knock-out. The posterior is then refitted on all
cells so far with the exact bounded-parent posterior of the GRN step
(:mod:`workbench.models.gflownet.exact_posterior`), treating the knock-outs as
interventions: a knocked-out gene's own velocity is left out of the fit of its parents
(its mechanism was replaced), every other gene's mechanism uses every cell. The settings
(noise per gene from held-out residuals, independent observations per cell, edge prior and
weight prior by empirical Bayes) are chosen once on the observational cells and kept.

The demo worlds saturate: after 3 rounds every policy reaches an edge AUROC of 0.92-0.998,
so the choice of knock-out can hardly matter there. :func:`hard_world` draws a world where it
can: more genes (22), fewer cells (4 observational trajectories of 25 cells, 25 cells per
knock-out), and copy pairs: a few genes that receive exactly the inputs of a core gene of a
feedback loop but regulate nothing (a paralogue that tracks its original), so from
observational cells the original's children could as well be the copy's; knocking out the
original or the copy tells them apart. ``size="steady"`` is the same network observed the
way a screen sees it: cells near the steady state (starts scattered by a factor
``exp(0.2 z)`` around the fixed point, not uniformly between 0 and 2.5 times it), and each
knock-out started from that steady state, so its cells show the response spreading from the
knocked-out gene instead of a fresh scattered trajectory that informs every gene.

After each round the campaign records the posterior's mean edge entropy and the AUROC of
its edge probabilities against the true network (off-diagonal entries: the diagonal is
the decay every gene has), so policies are compared on the same worlds and seeds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["knockout_cells", "refit_posterior", "knockout_campaign", "hard_world",
           "near_steady_trajectories", "HARD_WORLD"]

#: The harder world of :func:`hard_world`: module sizes, extra genes and the cells observed.
HARD_WORLD = dict(modules=[5, 5, 5, 4], n_no_effect=3, n_cross=2, n_self_loops=2,
                  n_copies=3, trajectories=4, cells_per_trajectory=25, start_spread=None)


@dataclasses.dataclass
class KnockoutWorld:
    """A network and how it is observed: what :func:`knockout_campaign` needs of a world.

    Parameters
    ----------
    seed : int
        The seed it was drawn with.
    size : str
        Its name (``"hard"`` or ``"steady"`` for :func:`hard_world`).
    config : dict
        How it is observed: ``trajectories``, ``cells_per_trajectory``, ``start_spread``
        (and the entries of :data:`HARD_WORLD`).
    grn : GRN
        The network (:class:`~workbench.data.simulate.grn.GRN`).
    copies : list of tuple of int
        ``(original, copy)`` gene indices of the copy pairs.
    """

    seed: int
    size: str
    config: dict
    grn: object
    copies: list[tuple[int, int]]   # (original, copy) gene indices


def hard_world(seed: int = 0, **overrides) -> KnockoutWorld:
    """A world where the choice of knock-out matters (see the module docstring).

    ``overrides`` replace entries of :data:`HARD_WORLD`. The ``n_copies`` copy genes are
    the planted no-effect genes rewired: their own edges are removed and each receives the
    row of weights, bias and rates of a distinct core gene, so it follows that gene's level
    (from its own scattered start) and regulates nothing.

    Parameters
    ----------
    seed : int
        Seed of the network.
    **overrides
        Entries of :data:`HARD_WORLD` to replace.

    Returns
    -------
    KnockoutWorld
        Size ``"hard"`` (or ``"steady"`` when ``start_spread`` is given), with its copy pairs.
    """
    from workbench.data.simulate.grn import make_grn, sigmoid
    from workbench.errors import ValidationError

    cfg = {**HARD_WORLD, **overrides}
    rng = np.random.default_rng([seed, 20261201])
    grn = make_grn(rng, list(cfg["modules"]), cfg["n_no_effect"], n_cross=cfg["n_cross"],
                   n_self_loops=cfg["n_self_loops"])
    copy_genes = list(grn.no_effect)[: cfg["n_copies"]]
    cores = [c for core in grn.cores for c in core]
    if len(copy_genes) < cfg["n_copies"] or len(cores) < cfg["n_copies"]:
        raise ValidationError(f"n_copies={cfg['n_copies']} needs as many no-effect and core "
                              "genes.", "raise n_no_effect or lower n_copies.")
    w, bias = grn.weights.copy(), grn.bias.copy()
    alpha, gamma, beta = grn.alpha.copy(), grn.gamma.copy(), grn.beta.copy()
    w[copy_genes, :] = 0.0
    w[:, copy_genes] = 0.0
    originals = [int(a) for a in rng.choice(cores, size=len(copy_genes), replace=False)]
    for b, a in zip(copy_genes, originals, strict=True):
        w[b] = w[a]
        bias[b], alpha[b], gamma[b], beta[b] = bias[a], alpha[a], gamma[a], beta[a]
    grn = dataclasses.replace(grn, weights=w, bias=bias, alpha=alpha, gamma=gamma, beta=beta)
    x = np.full(grn.n_genes, 0.5)
    for _ in range(2000):
        x = alpha * sigmoid(w @ x + bias) / gamma
    grn.fixed_point = x
    return KnockoutWorld(seed=seed, size="hard" if cfg["start_spread"] is None else "steady",
                         config=cfg, grn=grn,
                         copies=list(zip(originals, copy_genes, strict=True)))


def knockout_cells(grn, genes, rng, n_trajectories: int, cells_per_trajectory: int,
                   start_spread: float | None = None) -> dict:
    """Cells sampled along trajectories of the network with ``genes`` knocked out.

    ``start_spread=None``: the demo's scattered starts; a number: starts near the
    unperturbed steady state (:func:`near_steady_trajectories`).

    Parameters
    ----------
    grn : GRN
        The network.
    genes : sequence of int
        Indices of the genes knocked out (empty: none).
    rng : numpy.random.Generator
        Source of the draws.
    n_trajectories : int
        Trajectories to sample.
    cells_per_trajectory : int
        Cells per trajectory.
    start_spread : float, optional
        See above.

    Returns
    -------
    dict
        What :func:`~workbench.data.simulate.grn.sample_trajectories` returns.
    """
    from workbench.data.simulate.grn import sample_trajectories

    alpha = grn.alpha.copy()
    start = grn.fixed_point.copy()
    alpha[list(genes)] = 0.0
    start[list(genes)] = 0.0
    ko = dataclasses.replace(grn, alpha=alpha, fixed_point=start)
    if start_spread is None:
        return sample_trajectories(ko, rng, n_trajectories, cells_per_trajectory)
    return near_steady_trajectories(ko, rng, n_trajectories, cells_per_trajectory,
                                    start_spread, scale=grn.fixed_point, clamp=list(genes))


def near_steady_trajectories(grn, rng, n_trajectories: int, cells_per_trajectory: int,
                             spread: float, *, scale=None, clamp=(), t_max: float = 4.0,
                             dt: float = 0.02, noise: float = 0.02) -> dict:
    """Like :func:`~workbench.data.simulate.grn.sample_trajectories`, from starts near the
    steady state: ``x0 = x* exp(spread z)`` (``z`` standard normal per gene and
    trajectory), ``clamp`` genes held at zero. ``scale`` sets the measurement noise
    (default ``x*``).

    Parameters
    ----------
    grn : GRN
        The network; its ``fixed_point`` is ``x*``.
    rng : numpy.random.Generator
        Source of the draws.
    n_trajectories : int
        Trajectories to sample.
    cells_per_trajectory : int
        Cells per trajectory.
    spread : float
        Log-scale spread of the starts around ``x*``.
    scale : array_like, optional
        Per-gene scale of the starts and of the measurement noise (default ``x*``).
    clamp : sequence of int
        Genes held at zero.
    t_max : float
        Length of each trajectory (simulation time).
    dt : float
        Integration step.
    noise : float
        Measurement noise, relative to ``scale``.

    Returns
    -------
    dict
        What :func:`~workbench.data.simulate.grn.sample_trajectories` returns, without
        unspliced counts, with the clamped genes' spliced levels at zero.
    """
    from workbench.data.simulate.grn import sample_trajectories

    scale = grn.fixed_point if scale is None else np.asarray(scale, np.float64)
    x = scale * np.exp(spread * rng.standard_normal((n_trajectories, grn.n_genes)))
    x[:, list(clamp)] = 0.0
    out = sample_trajectories(grn, rng, n_trajectories, cells_per_trajectory, t_max, dt, noise,
                              starts=x, scale=scale, unspliced=False)
    out["spliced"][:, list(clamp)] = 0.0
    return out


def refit_posterior(x, v, knocked, *, sigma2, ratio: float, edge_prior: float,
                    prior_sd: float, max_parents: int = 4, n_samples: int = 200,
                    seed: int = 0) -> dict:
    """Exact posterior over parent sets from observational and knock-out cells.

    Gene ``i``'s parent sets are scored on the cells where ``i`` was not knocked out, with
    ``n_eff = ratio * cells`` independent observations and the GRN step's reward.

    Parameters
    ----------
    x : array_like
        ``(n_cells, d)`` standardised expression.
    v : array_like
        ``(n_cells, d)`` velocities.
    knocked : array_like of int
        Per cell, the index of the gene knocked out in it (``-1``: none).
    sigma2 : array_like of float
        Noise variance of each gene's velocity.
    ratio : float
        Independent observations per cell.
    edge_prior : float
        Prior probability of an edge, in (0, 1).
    prior_sd : float
        Prior standard deviation of a mechanism weight.
    max_parents : int
        Largest parent set.
    n_samples : int
        Graphs drawn from the posterior.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``edge_probability`` ``(d, d)``, ``samples`` ``(n_samples, d, d)`` and their fitted
        ``weights``.
    """
    from workbench.models.gflownet import exact_posterior as ep

    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    knocked = np.asarray(knocked)
    d = x.shape[1]
    sigma2 = np.asarray(sigma2, np.float64)
    sets = ep.parent_sets(d, max_parents)
    member = np.concatenate([_rows(idx, d) for idx in sets])
    logit = math.log(edge_prior / (1.0 - edge_prior))
    hit = set(int(g) for g in np.unique(knocked) if g >= 0)
    groups = [(-1, [i for i in range(d) if i not in hit])] + [(g, [g]) for g in sorted(hit)]
    log_post = np.zeros((d, len(member)))
    fitted = []
    for g, rows in groups:
        if not rows:
            continue
        mask = knocked != g if g >= 0 else np.ones(len(x), bool)
        stats = ep.sufficient_statistics(x[mask], v[mask])
        n_eff = max(ratio * mask.sum(), 1.0)
        ridge = float(np.median(sigma2) / (n_eff * prior_sd ** 2))
        scores, _ = ep.score_parent_sets(stats, sets, temperature=np.sqrt(2 * sigma2 / n_eff),
                                         ridge=ridge)
        log_r = np.concatenate([s + k * logit for k, s in enumerate(scores)], axis=1)
        m = log_r.max(1, keepdims=True)
        lz = m + np.log(np.exp(log_r - m).sum(1, keepdims=True))
        log_post[rows] = (log_r - lz)[rows]
        fitted.append((rows, stats, ridge))
    post = np.exp(log_post)
    rng = np.random.default_rng([seed, 5])
    samples = np.zeros((n_samples, d, d), np.uint8)
    cdf = np.cumsum(post, axis=1)
    for i in range(d):
        pick = np.searchsorted(cdf[i], rng.random(n_samples) * cdf[i, -1], side="right")
        samples[:, i] = member[np.minimum(pick, len(member) - 1)]
    weights = np.zeros(samples.shape, np.float32)
    for rows, stats, ridge in fitted:
        weights[:, rows] = ep.parent_set_coefficients(stats, samples, ridge)[:, rows]
    return {"edge_probability": post @ member, "samples": samples, "weights": weights}


def _rows(idx: np.ndarray, d: int) -> np.ndarray:
    m = np.zeros((len(idx), d), np.uint8)
    if idx.shape[1]:
        np.put_along_axis(m, idx, 1, axis=1)
    return m


def _auroc(prob, truth) -> float:
    from sklearn.metrics import roc_auc_score

    off = ~np.eye(len(truth), dtype=bool)
    t = (np.asarray(truth) != 0)[off]
    if t.all() or not t.any():
        return float("nan")
    return float(roc_auc_score(t, np.asarray(prob)[off]))


def knockout_campaign(policy: str, *, seed: int = 0, size: str = "tiny", rounds: int = 3,
                      budget: int = 2, n_samples: int = 200, max_parents: int = 4,
                      trajectories_per_knockout: int = 1, world=None,
                      candidates=None) -> list[dict]:
    """Rounds of ``budget`` knock-outs chosen by ``policy`` on the demo world of ``seed``.

    Parameters
    ----------
    policy : str
        One of :data:`~workbench.tools.design.knockout.KNOCKOUT_POLICIES`, or
        ``"more_cells"``: the control that adds as many unperturbed cells instead.
    seed : int
        Seed of the world, the cells and the planner.
    size : str
        A demo size preset, ``"hard"`` or ``"steady"`` (:func:`hard_world`); ignored when
        ``world`` is given.
    rounds : int
        Rounds after the observational one.
    budget : int
        Knock-outs per round.
    n_samples : int
        Posterior graphs drawn per refit.
    max_parents : int
        Largest parent set of the posterior.
    trajectories_per_knockout : int
        Trajectories sampled per knock-out.
    world : KnockoutWorld or World, optional
        The world to use instead of the one ``size`` and ``seed`` name.
    candidates : sequence of int, optional
        Gene indices the knock-outs are restricted to.

    Returns
    -------
    list of dict
        One record per round (round 0 is the observational posterior): ``round``,
        ``entropy`` (mean edge entropy, nats), ``auroc``, ``chosen`` (genes knocked out that
        round), ``batch_gain`` (the planner's expected gain of that batch, nats) and
        ``copy_confusion``: on a world with copy pairs, the mean posterior probability of the
        false edges from each copy to its original's children (lower: the copies are told
        apart), else NaN.
    """
    from workbench.data.simulate import make_world
    from workbench.data.simulate.grn import sample_trajectories
    from workbench.models.gflownet import exact_posterior as ep
    from workbench.tools.design.knockout import knockout_setup, mean_edge_entropy, plan_knockouts

    if world is None:
        world = (hard_world(seed) if size == "hard" else
                 hard_world(seed, start_spread=0.2) if size == "steady" else
                 make_world(seed=seed, size=size))
    grn, cfg = world.grn, world.config
    rng = np.random.default_rng([seed, 3])
    spread = cfg.get("start_spread")
    if spread is None:
        obs = sample_trajectories(grn, rng, cfg["trajectories"], cfg["cells_per_trajectory"])
    else:
        obs = near_steady_trajectories(grn, rng, cfg["trajectories"],
                                       cfg["cells_per_trajectory"], spread)
    raw, vel = obs["spliced"], obs["velocity"]
    mean, sd = raw.mean(0), np.where(raw.std(0) > 0, raw.std(0), 1.0)
    x, v = (raw - mean) / sd, vel / sd
    groups = obs["trajectory"]
    knocked = np.full(len(x), -1)
    # settings from the observational cells, kept for every round
    res = ep.held_out_residuals(x, v, groups=groups, seed=seed)
    sigma2 = ep.noise_variance(res)
    n_eff = ep.effective_sample_size(x, res, groups=groups)
    eb = ep.empirical_bayes(ep.sufficient_statistics(x, v), ep.parent_sets(x.shape[1],
                            max_parents), sigma2, n_eff)
    hyper = dict(sigma2=sigma2, ratio=n_eff / len(x), edge_prior=eb["edge_prior"],
                 prior_sd=eb["prior_sd"], max_parents=max_parents, n_samples=n_samples)
    cells_ko = trajectories_per_knockout * cfg["cells_per_trajectory"]
    setup = knockout_setup(x, v, groups=groups, cells_per_knockout=cells_ko,
                           knocked_level=-mean / sd, seed=seed)
    post = refit_posterior(x, v, knocked, seed=seed, **hyper)
    truth = grn.adjacency
    false_edges = [(c, b) for a, b in getattr(world, "copies", [])
                   for c in np.flatnonzero(truth[:, a]) if c not in (a, b)]

    def confusion(prob) -> float:
        return float(np.mean([prob[c, b] for c, b in false_edges])) if false_edges \
            else float("nan")

    out = [{"round": 0, "entropy": mean_edge_entropy(post["edge_probability"]),
            "auroc": _auroc(post["edge_probability"], truth), "chosen": [],
            "batch_gain": float("nan"), "copy_confusion": confusion(post["edge_probability"])}]
    done: list[int] = []
    traj_id = int(groups.max()) + 1
    for r in range(1, rounds + 1):
        pool = range(grn.n_genes) if candidates is None else [int(g) for g in candidates]
        cand = [g for g in pool if g not in done]
        if policy == "more_cells":      # control: as many cells, no knock-out
            plan = {"pick": [-1] * budget, "batch_gain": float("nan")}
        else:
            plan = plan_knockouts(post["samples"], post["weights"], setup, budget, policy,
                                  candidates=cand, seed=seed * 100 + r)
        for g in plan["pick"]:
            ko = knockout_cells(grn, [g] if g >= 0 else [], rng, trajectories_per_knockout,
                                cfg["cells_per_trajectory"], start_spread=spread)
            x = np.vstack([x, (ko["spliced"] - mean) / sd])
            v = np.vstack([v, ko["velocity"] / sd])
            knocked = np.concatenate([knocked, np.full(len(ko["spliced"]), g)])
            groups = np.concatenate([groups, ko["trajectory"] + traj_id])
            traj_id += trajectories_per_knockout
            done.append(g)
        post = refit_posterior(x, v, knocked, seed=seed + r, **hyper)
        out.append({"round": r, "entropy": mean_edge_entropy(post["edge_probability"]),
                    "auroc": _auroc(post["edge_probability"], truth),
                    "chosen": [grn.genes[g] for g in plan["pick"] if g >= 0],
                    "batch_gain": float(plan["batch_gain"]),
                    "copy_confusion": confusion(post["edge_probability"])})
    return out
