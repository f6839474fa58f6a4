"""Benchmark: the design layer's planners replayed on fully measured tables.

Screen planner with a certified stop (``workbench.tools.design.screen``): on each pool a
campaign starts from one random batch (5% of the pool), then acquires 5% of the pool a
round with a policy until the Chernoff/KL bound on system accuracy (from the model's
accuracy on each new batch, measured items counted right) reaches gamma = 0.9 with
delta = 0.05. Reported per policy over seeds: the fraction of the pool measured at the
certified stop, the realised system accuracy of the certified table at that point, the
share of seeds where it is at least gamma (must be >= 1 - delta), and the fraction at which
the realised accuracy first reached gamma (what an oracle stop would have needed).

- LINCS Cell Painting plate SQ00015054: 342 treated wells, 454 profile features, label =
  mechanism of action (50 classes).
- Demo world: 1,040 knock-out wells (26 genes x 40), features = noisy mean latent state of
  3 cells, label = the gene's pathway (6 classes, "none" for the planted no-effect genes).

Batch hit designer (``workbench.tools.design.hits``): 5 rounds, every policy also fed
permuted outcomes. Reported: cumulative hit recall per round (mean and 95% interval over
seeds) and a flag where the permuted control does not drop by more than 0.05.

- Demo world: 1,000 perturbations acting on random gene sets, score = nucleus-size shift,
  hits = top 5%, batches of 24.
- Norman 2019 CRISPRa: 112 genes, features = the gene's row of the GI map, score = single
  growth defect, hits = top 10%, batches of 8.
The prior list for ``prior_nn`` is simulated: the true score plus noise (rank correlation
with the score about 0.45), standing in for a user's ranked gene list.

GRN knock-out planner (``workbench.tools.design.knockout``, ``--knockout``): on the demo
world of each seed (tiny: 10 genes, quick: 14 genes), 3 rounds of 2 knock-outs, each
knock-out one new trajectory of cells sampled in the simulator with the gene clamped at
zero; after each round the exact posterior is refitted with the knock-outs as
interventions. Reported per policy: the posterior's mean edge entropy and its edge AUROC
against the true network (off-diagonal), mean and 95% interval over seeds, and the paired
difference to random choice. ``more_cells`` is the control that adds as many cells without a
knock-out (is it the intervention or just more data that helps?).

Pool size (``--part scale``, code for a quiet machine; no figures are kept from a loaded
one): one planning round of the screen planner (``hardest``) and the hit designer (``ucb``,
``gp_ucb``) at 1e3, 1e4 and 1e5 candidates with 32 features and 1,000 measured, timed and
with its peak traced memory, next to a plain scikit-learn loop doing the same round
(LogisticRegression / BayesianRidge / GaussianProcessRegressor, fit, predict the pool, top-b).

    python benchmarks/bench_design.py --seeds 10 > benchmarks/results_design.md
    python benchmarks/bench_design.py --part scale --sizes 1000,10000,100000

The data folder is ``$WORKBENCH_SHARED_DATA`` or ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

GAMMA, DELTA = 0.9, 0.05


def data_dir() -> Path:
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def ci(x) -> str:
    x = np.asarray(x, float)
    h = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0
    return f"{x.mean():.3f} ± {h:.3f}"


def screen_section(seeds: int) -> list[str]:
    from workbench.tools.design.pools import demo_world_pool, lincs_moa_pool
    from workbench.tools.design.screen import SCREEN_POLICIES, screen_campaign

    pools = {"LINCS plate MOA (342 wells, 50 classes)": lincs_moa_pool(
        data_dir() / "lincs_cellpainting_profiles" / "SQ00015054_normalized_feature_select.csv.gz"),
        "demo world pathways (1,040 wells, 6 classes)": demo_world_pool(0)}
    out = ["## Screen planner: certified stop at gamma = 0.9, delta = 0.05", "",
           f"{seeds} seeds; batches of 5% of the pool; mean ± 95% interval over seeds. "
           "`hardest` is the Inference Set Design policy; `random` and `uncertainty` "
           "(bootstrap-ensemble disagreement, model-improving) are the baselines.", "",
           "| pool | policy | fraction measured at certified stop | realised system accuracy "
           "at stop | seeds with realised >= gamma | fraction where realised first >= gamma "
           "| time per campaign (s, measured under load) |",
           "|---|---|---|---|---|---|---|"]
    for name, (X, y, _) in pools.items():
        for pol in SCREEN_POLICIES:
            res, t0 = [], time.perf_counter()
            for s in range(seeds):
                res.append(screen_campaign(X, y, policy=pol, seed=s, gamma=GAMMA, delta=DELTA))
            dt = (time.perf_counter() - t0) / seeds
            acc = [r["stop_accuracy"] for r in res]
            ok = np.mean(np.array(acc) >= GAMMA)
            out.append(f"| {name} | {pol} | {ci([r['stop_fraction'] for r in res])} | "
                       f"{ci(acc)} (min {min(acc):.3f}) | {ok:.0%} | "
                       f"{ci([r['oracle_fraction'] for r in res])} | {dt:.1f} |")
            print(out[-1], file=sys.stderr)
    return out


def hit_section(seeds: int) -> list[str]:
    from workbench.tools.design.hits import HIT_POLICIES, feedback_flags, hit_campaign
    from workbench.tools.design.pools import demo_hit_table, norman_hit_table

    tables = {"demo world nucleus size (1,000, top 5%)": (demo_hit_table(0, n_candidates=1000), 24),
              "Norman 2019 growth (112 genes, top 10%)": (
                  norman_hit_table(data_dir() / "norman2019_perturbseq_gi"), 8)}
    out = ["", "## Batch hit designer: cumulative hit recall over 5 rounds", "",
           f"{seeds} seeds; mean ± 95% interval of the recall after each round; `perm` = the "
           "same policy fed permuted outcomes (it must fall towards random if the policy uses "
           "its feedback).", ""]
    for name, ((X, score, hits, _), b) in tables.items():
        out += [f"### {name}, batches of {b}", "",
                "| policy | outcomes | round 1 | round 2 | round 3 | round 4 | round 5 |",
                "|---|---|---|---|---|---|---|"]
        finals = []
        for pol in HIT_POLICIES:
            for perm in (False, True):
                curves = []
                for s in range(seeds):
                    rng = np.random.default_rng([s, 99])
                    prior = score + 2.0 * score.std() * rng.standard_normal(len(score))
                    r = hit_campaign(X, score, hits, policy=pol, batch_size=b, permute=perm,
                                     prior=prior, seed=s)
                    curves.append(r.hit_recall.to_numpy())
                    finals.append({"policy": pol, "permuted": perm,
                                   "hit_recall": r.hit_recall.iloc[-1]})
                c = np.array(curves)
                out.append(f"| {pol} | {'permuted' if perm else 'real'} | "
                           + " | ".join(ci(c[:, k]) for k in range(c.shape[1])) + " |")
                print(name, out[-1], file=sys.stderr)
        flags = feedback_flags(pd.DataFrame(finals))
        out += ["", "| policy | recall (real) | recall (permuted) | drop | flag |",
                "|---|---|---|---|---|"]
        for pol, r in flags.iterrows():
            flag = ("does not drop under permutation (expected for random)" if pol == "random"
                    else "**does not drop under permutation: insensitive to feedback**") \
                if r.ignores_feedback else ""
            out.append(f"| {pol} | {r.recall:.3f} | {r.recall_permuted:.3f} | "
                       f"{r['drop']:+.3f} | {flag} |")
        out.append("")
    return out


def knockout_section(seeds: int, sizes=("tiny", "quick", "hard", "steady"), rounds: int = 3,
                     budget: int = 2, policies=None) -> list[str]:
    from workbench.tools.design.knockout import KNOCKOUT_POLICIES
    from workbench.tools.design.knockout_campaign import knockout_campaign

    policies = (*KNOCKOUT_POLICIES, "more_cells") if policies is None else tuple(policies)
    if "random" not in policies:
        policies = (*policies, "random")
    out = ["## GRN knock-out planner: posterior after rounds of knock-outs", "",
           f"{rounds} rounds of {budget} knock-outs, {seeds} seeds (one demo world per seed); "
           "entropy = mean binary entropy of the off-diagonal edge probabilities (nats, lower "
           "is more certain); AUROC of those probabilities against the true edges. "
           "Paired differences are to `random` on the same worlds (negative entropy "
           "difference / positive AUROC difference favour the policy).", ""]
    for size in sizes:
        rec, secs = {}, {}
        for p in policies:
            t0 = time.perf_counter()
            rec[p] = [knockout_campaign(p, seed=s, size=size, rounds=rounds, budget=budget)
                      for s in range(seeds)]
            secs[p] = (time.perf_counter() - t0) / seeds
            print(size, p, f"{secs[p]:.1f} s per campaign", file=sys.stderr)
        title = {"hard": "Harder world (22 genes, 3 copy pairs, 100 observational cells, 25 "
                         "cells per knock-out), scattered starts",
                 "steady": "Harder world near steady state (the same networks; cells and "
                           "knock-outs start near the steady state)"}.get(
            size, f"Demo world, size {size}")
        out += [f"### {title}", "",
                "| policy | " + " | ".join(f"entropy r{r}" for r in range(rounds + 1))
                + f" | AUROC r0 | AUROC r{rounds} | Δ entropy r{rounds} vs random "
                  f"| Δ AUROC r{rounds} vs random | s per campaign (measured under load) |",
                "|---" * (rounds + 7) + "|"]
        last = {p: np.array([[c[-1]["entropy"], c[-1]["auroc"]] for c in rec[p]])
                for p in policies}
        for p in policies:
            ent = [ci([c[r]["entropy"] for c in rec[p]]) for r in range(rounds + 1)]
            au0 = ci([c[0]["auroc"] for c in rec[p]])
            diff = last[p] - last["random"]
            dcol = ["—", "—"] if p == "random" else [ci(diff[:, 0]), ci(diff[:, 1])]
            out.append(f"| {p} | " + " | ".join(ent) + f" | {au0} | {ci(last[p][:, 1])} | "
                       + " | ".join(dcol) + f" | {secs[p]:.1f} |")
        out.append("")
    return out + knockout_plan_timing()


def knockout_plan_timing(seed: int = 0, budget: int = 2, repeats: int = 3) -> list[str]:
    """Seconds of one planning call, whole-graph ``eig`` vs edge-only ``edge_eig``, on the
    observational posterior of the harder world (22 genes, 200 samples)."""
    from workbench.data.simulate.grn import sample_trajectories
    from workbench.models.gflownet import exact_posterior as ep
    from workbench.tools.design.knockout import knockout_setup, plan_knockouts
    from workbench.tools.design.knockout_campaign import hard_world, refit_posterior

    world = hard_world(seed)
    cfg = world.config
    obs = sample_trajectories(world.grn, np.random.default_rng([seed, 3]), cfg["trajectories"],
                              cfg["cells_per_trajectory"])
    raw, vel, groups = obs["spliced"], obs["velocity"], obs["trajectory"]
    mean, sd = raw.mean(0), raw.std(0)
    x, v = (raw - mean) / sd, vel / sd
    res = ep.held_out_residuals(x, v, groups=groups, seed=seed)
    sigma2 = ep.noise_variance(res)
    n_eff = ep.effective_sample_size(x, res, groups=groups)
    eb = ep.empirical_bayes(ep.sufficient_statistics(x, v), ep.parent_sets(x.shape[1], 4),
                            sigma2, n_eff)
    post = refit_posterior(x, v, np.full(len(x), -1), sigma2=sigma2, ratio=n_eff / len(x),
                           edge_prior=eb["edge_prior"], prior_sd=eb["prior_sd"], seed=seed)
    setup = knockout_setup(x, v, groups=groups, cells_per_knockout=cfg["cells_per_trajectory"],
                           knocked_level=-mean / sd, seed=seed)
    out = ["", f"One planning call (batch of {budget}, 22 candidates, 200 posterior samples, "
           "harder world seed 0), best of 3, measured under load:", ""]
    for pol in ("eig", "edge_eig"):
        best = min(_measure(lambda p=pol: plan_knockouts(post["samples"], post["weights"],
                                                         setup, budget, p, seed=seed))[0]
                   for _ in range(repeats))
        out.append(f"- `{pol}`: {best:.2f} s")
    return out


def _measure(fn) -> tuple[float, float]:
    """(seconds, peak traced MiB) of one call."""
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return dt, peak


def scale_pool(n: int, d: int = 32, n_measured: int = 1000, seed: int = 0):
    """A synthetic pool: features, a 4-class label and a value, ``n_measured`` measured."""
    rng = np.random.default_rng([seed, n])
    X = rng.standard_normal((n, d))
    w = rng.standard_normal((d, 4))
    y = np.argmax(X @ w + rng.gumbel(size=(n, 4)), 1).astype(str)
    value = X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)
    meas = rng.choice(n, size=min(n_measured, n // 2), replace=False)
    return X, y, value, meas


def _round_ours_screen(p, budget):
    from workbench.tools.design.screen import screen_round

    screen_round(p["X"], p["labels"], budget=budget, policy="hardest")


def _round_plain_screen(p, budget):
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(max_iter=500).fit(p["X"][p["meas"]], p["y"][p["meas"]])
    prob = m.predict_proba(p["X"][p["open"]])
    return p["open"][np.argsort(prob.max(1))[:budget]]


def _round_ours_hits(p, budget, policy):
    from workbench.tools.design.hits import score_candidates
    from workbench.tools.design.screen import prepare_features

    s, _ = score_candidates(policy, prepare_features(p["X"]), p["meas"],
                            p["value"][p["meas"]], p["open"], np.random.default_rng(0))
    return p["open"][np.argsort(-s)[:budget]]


def _round_plain_hits(p, budget, policy):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model import BayesianRidge

    if policy == "ucb":
        m = BayesianRidge()
    else:
        k = ConstantKernel(1.0) * RBF(np.sqrt(p["X"].shape[1])) + WhiteKernel(0.5)
        m = GaussianProcessRegressor(k, normalize_y=True, random_state=0)
    m.fit(p["X"][p["meas"]], p["value"][p["meas"]])
    mu, sd = m.predict(p["X"][p["open"]], return_std=True)
    return p["open"][np.argsort(-(mu + 2 * sd))[:budget]]


def scale_section(sizes, budget: int = 96) -> list[str]:
    from functools import partial

    # import what the rounds use before anything is timed
    import sklearn.gaussian_process  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    import workbench.tools.design.hits  # noqa: F401
    import workbench.tools.design.screen  # noqa: F401

    out = ["## One planning round against pool size", "",
           f"32 features, 1,000 measured, batch of {budget}; time (s) and peak traced memory "
           "(MiB) of one round. Timings depend on the machine and its load: record them only "
           "from a quiet one.", "",
           "| candidates | planner | ours: s | ours: MiB | plain scikit-learn: s | "
           "plain scikit-learn: MiB |", "|---|---|---|---|---|---|"]
    for n in sizes:
        X, y, value, meas = scale_pool(n)
        labels = np.full(n, None, object)
        labels[meas] = y[meas]
        p = {"X": X, "y": y, "value": value, "meas": meas, "labels": labels,
             "open": np.setdiff1d(np.arange(n), meas)}
        for name, ours, plain in (
                ("screen (hardest)", partial(_round_ours_screen, p, budget),
                 partial(_round_plain_screen, p, budget)),
                ("hits (ucb)", partial(_round_ours_hits, p, budget, "ucb"),
                 partial(_round_plain_hits, p, budget, "ucb")),
                ("hits (gp_ucb)", partial(_round_ours_hits, p, budget, "gp_ucb"),
                 partial(_round_plain_hits, p, budget, "gp_ucb"))):
            t1, m1 = _measure(ours)
            t2, m2 = _measure(plain)
            out.append(f"| {n:,} | {name} | {t1:.2f} | {m1:.0f} | {t2:.2f} | {m2:.0f} |")
            print(out[-1], file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--part", choices=("all", "screen", "hits", "knockout", "scale"),
                    default="all")
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="pool sizes of --part scale (comma-separated)")
    ap.add_argument("--ko-worlds", default="tiny,quick,hard,steady",
                    help="worlds of the knock-out part (comma-separated: tiny, quick, hard, "
                    "steady)")
    ap.add_argument("--ko-policies", default=None,
                    help="policies of the knock-out part (default: all, and more_cells)")
    ap.add_argument("--knockout", action="store_true", help="only the knock-out planner "
                    "(same as --part knockout; 5 seeds unless --seeds is given)")
    args = ap.parse_args(argv)
    if args.knockout:
        args.part = "knockout"
        if "--seeds" not in (argv if argv is not None else sys.argv):
            args.seeds = 5
    cmd = ("--knockout" if args.part == "knockout" else
           f"--part scale --sizes {args.sizes}" if args.part == "scale"
           else f"--seeds {args.seeds}")
    lines = ["# Design layer: campaign replays", "",
             f"Command: `python benchmarks/bench_design.py {cmd}`", ""]
    if args.part in ("all", "screen"):
        lines += screen_section(args.seeds)
    if args.part in ("all", "hits"):
        lines += hit_section(args.seeds)
    if args.part == "scale":  # timings: never part of "all", run on a quiet machine
        lines += scale_section([int(v) for v in args.sizes.split(",") if v.strip()])
    if args.part in ("all", "knockout"):
        lines += knockout_section(args.seeds if args.part == "knockout" else 5,
                                  sizes=tuple(args.ko_worlds.split(",")),
                                  policies=None if args.ko_policies is None
                                  else tuple(args.ko_policies.split(",")))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
