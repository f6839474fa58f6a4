"""Benchmark: DynGFN's cost per training step at 10 to 100 genes, next to its baselines.

For each number of genes ``d`` a sparse stable linear system (``grn_synthetic.simulate_panel``,
about two regulators per gene besides the decay self-loop, 200 trajectories of 2 points,
velocity noise of 2 velocity sds) is fitted by

- DynGFN with the GRN step's linear reward, automatic temperature from the number of
  trajectories and edge price 70, DynGFN's default loss (modified DB with local search;
  the GRN step itself now defaults to f-TB, ``loss="ftb", ftb_alpha=1``, which has no
  local search), with ``max_parents=4`` and 64 roll-outs per step;
- the bootstrap LassoLarsIC baseline (``BootstrapLassoPosterior``, 50 trajectory
  resamples) and ``|OLS|``, on the same data in the same process.

It reports, per ``d``: seconds per training step (the mean over the timed steps, the first
step excluded as warm-up), the process's peak resident memory (``getrusage`` maximum RSS of
a fresh subprocess per ``d``, so torch's allocations are included), the number of steps
and training seconds until the off-diagonal edge AUROC of 200 posterior samples first
reaches a threshold (evaluated every ``--eval-every`` steps, evaluation time excluded), and
the final AUROC; then the log-log growth exponent of time per step against ``d``.

Where every parent set of at most 4 genes can be enumerated (``--kl-max-d``), the final
``KL(P_R || Q)`` to DynGFN's own plug-in reward posterior (``ExactParentPosterior`` with
``occam=False`` and the edge price read as a prior, as ``bench_grn_losses`` does) is
estimated by Monte Carlo: ``E_{S ~ P_R}[log P_R(S) - log Q(S)]`` over 200 exact draws per
gene, summed over genes.

``--hyper`` runs the second benchmark instead: on DynGFN's sigmoid system
(``simulate_unidentifiable_system("sigmoid")``: 17 variables and 3 negated copies, 80/10/10
split by trajectory, ``bench_grn``'s settings for it, ``max_parents=4``) it trains, with
the same seed and the same number of steps, the linear reward, the hypernetwork reward
from scratch, and the hypernetwork reward after a linear warm start of half the steps
(with and without fitting the hypernetwork at the switch), and reports edge AUROC/AUPRC on
the identifiable entries, Bayes-SHD, ``KL(P* || Q)`` to the admissible set, held-out
velocity MSE of the posterior samples (linear: each sampled graph's ridge fit on the
training cells; hyper: the hypernetwork's prediction for the sampled graph) and the
training time, next to ``|OLS|`` and the bootstrap Lasso on the same split.

``--posteriors`` runs the third: on the same systems (several seeds), the GRN step's
enumerated posteriors, the exact one (every set of at most 4 parents, up to
``--exact-max-d`` genes) and the screened one (``ScreenedParentPosterior``: 12 candidates
per gene, sets of at most 6 of them, one-step edges outside; what ``method="auto"`` runs
beyond ``EXACT_LIMIT``), each with its settings chosen from the data by ``fit_exact``, next
to the bootstrap Lasso (50 resamples), ``|OLS|``, ``|ridge|`` and ``|corr|`` on the same data
in the same process, methods interleaved per system. It reports off-diagonal edge
AUROC/AUPRC, Brier score and reliability gap (the largest ``|mean p - share true|`` over
probability bins of at least 20 entries) of the posteriors, mean edges per sample, the
probability mass outside the candidates and the fit time.

Usage::

    python benchmarks/bench_grn_scale.py [--d 10 25 50 100] [--steps 150] [--json out.json]
    python benchmarks/bench_grn_scale.py --hyper [--steps 100]
    python benchmarks/bench_grn_scale.py --posteriors [--d 10 25 50 100] [--seeds 13 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DYNGFN = dict(sparsity=70.0, n_envs=64, max_parents=4, device="cpu")
AUROC_TARGET = 0.9


def reliability_gap(p, truth, bins=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0001), min_entries=20) -> float:
    """Largest ``|mean probability - share true|`` over bins with at least ``min_entries``."""
    gaps = []
    for a, b in zip(bins[:-1], bins[1:]):
        m = (p >= a) & (p < b)
        if m.sum() >= min_entries:
            gaps.append(abs(float(p[m].mean()) - float(truth[m].mean())))
    return max(gaps) if gaps else float("nan")


def run_posteriors(d: int, seed: int, n_boot: int, exact_max_d: int) -> list[dict]:
    """Every enumerated posterior and baseline on one system, interleaved, one process."""
    from workbench.models.grn_params import BootstrapLassoPosterior, edge_scores
    from workbench.tools.grn import N_CANDIDATES, SCREEN_MAX_PARENTS, fit_exact

    data = system(d, seed)
    x, v, truth, traj = data["x"], data["v"], data["truth"] > 0, data["trajectory"]
    off = ~np.eye(d, dtype=bool)
    rows = []

    def add(method, prob, fit_s, samples=None, extra=None):
        auc = off_diagonal_auc(prob, truth)
        row = {"d": d, "seed": seed, "method": method, "auroc": auc["auroc"],
               "auprc": auc["auprc"], "fit_s": fit_s,
               "true_edges_offdiag": int(truth[off].sum())}
        if samples is not None:
            p = np.asarray(prob, np.float64)
            row.update(brier=float(np.mean((p[off] - truth[off]) ** 2)),
                       reliability_gap=reliability_gap(p[off], truth[off]),
                       mean_edges_offdiag=float((samples * off).sum((1, 2)).mean()))
        rows.append({**row, **(extra or {})})

    if d <= exact_max_d:
        t0 = time.perf_counter()
        r = fit_exact(x, v, max_parents=4, n_samples=500, n_boot=1, groups=traj, seed=0)
        add("exact (4 parents)", r["edge_probability"], time.perf_counter() - t0, r["samples"])
    t0 = time.perf_counter()
    r = fit_exact(x, v, max_parents=SCREEN_MAX_PARENTS, n_samples=500, n_boot=1, groups=traj,
                  seed=0, n_candidates=N_CANDIDATES)
    add(f"screened ({N_CANDIDATES} candidates, {SCREEN_MAX_PARENTS} parents)",
        r["edge_probability"], time.perf_counter() - t0, r["samples"],
        {"outside_mass": r["chosen"]["outside_mass"]})
    t0 = time.perf_counter()
    base = BootstrapLassoPosterior(n_boot=n_boot, seed=0).fit(x, v, groups=traj)
    add(f"bootstrap Lasso ({n_boot})", base.edge_probability_, time.perf_counter() - t0,
        base.samples_)
    for name in ("ols", "ridge", "corr"):
        t0 = time.perf_counter()
        score = edge_scores(x, v, name)
        add(f"|{name}|", score, time.perf_counter() - t0)
    return rows


def main_posteriors(args) -> int:
    rows = []
    for d in args.d:
        for seed in args.seeds:
            rows += run_posteriors(d, seed, args.n_boot, args.exact_max_d)
            print(f"d={d} seed={seed} done", file=sys.stderr)
            if args.json:
                from pathlib import Path

                Path(args.json).write_text(json.dumps({"rows": rows}, default=float))
    load = os.getloadavg()[0]
    print(f"\n## Enumerated posteriors and baselines, {len(args.seeds)} systems per size "
          f"(seeds {', '.join(map(str, args.seeds))}; load average {load:.1f})\n")
    print("Mean over seeds [min, max]. Brier, reliability gap and edges per sample are for "
          "the posteriors only (the others are rankings).\n")
    print("| genes | true edges (off-diag., mean) | method | AUROC | AUPRC | Brier | "
          "reliability gap | edges / sample (off-diag.) | mass outside candidates | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def cell(vals, fmt):
        vals = [x for x in vals if x is not None and np.isfinite(x)]
        if not vals:
            return "n/a"
        if len(vals) == 1:
            return f"{vals[0]:{fmt}}"
        return f"{np.mean(vals):{fmt}} [{min(vals):{fmt}}, {max(vals):{fmt}}]"

    for d in args.d:
        methods = list(dict.fromkeys(r["method"] for r in rows if r["d"] == d))
        best = max(np.mean([r["auroc"] for r in rows if r["d"] == d and r["method"] == m])
                   for m in methods)
        for m in methods:
            rs = [r for r in rows if r["d"] == d and r["method"] == m]
            auc = np.mean([r["auroc"] for r in rs])
            tag = " (best)" if auc == best else ""
            print(f"| {d} | {np.mean([r['true_edges_offdiag'] for r in rs]):.0f} | "
                  f"{m.replace('|', chr(92) + '|')} | {cell([r['auroc'] for r in rs], '.3f')}{tag} | "
                  f"{cell([r['auprc'] for r in rs], '.3f')} | "
                  f"{cell([r.get('brier') for r in rs], '.4f')} | "
                  f"{cell([r.get('reliability_gap') for r in rs], '.3f')} | "
                  f"{cell([r.get('mean_edges_offdiag') for r in rs], '.1f')} | "
                  f"{cell([r.get('outside_mass') for r in rs], '.1f')} | "
                  f"{cell([r['fit_s'] for r in rs], '.1f')} |")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps({"rows": rows, "load": load}, default=float))
    return 0


def system(d: int, seed: int = 13) -> dict:
    from workbench.tools.grn import scale_for_grn
    from workbench.tools.grn_synthetic import simulate_panel

    sim = simulate_panel("linear", p=d, n_traj=200, noise=2.0,
                         sparsity=1.0 - 2.0 / max(d - 1, 1), seed=seed)
    x, v, _ = scale_for_grn(sim["x"], sim["v"])
    return {"x": x, "v": v, "truth": sim["adjacency"], "trajectory": sim["trajectory"]}


def off_diagonal_auc(prob, truth) -> dict:
    from workbench.tools.grn_metrics import edge_auc

    return edge_auc(prob, truth, ~np.eye(len(truth), dtype=bool))


def mc_kl(model, x, v, temperature: float, d: int, n_draws: int = 200, seed: int = 0) -> float:
    """Monte Carlo ``KL(P_R || Q)`` summed over genes, ``P_R`` the enumerated plug-in posterior."""
    from workbench.models.gflownet.exact_posterior import ExactParentPosterior

    lam = DYNGFN["sparsity"]
    pi = 1.0 / (1.0 + np.exp(lam / d))
    exact = ExactParentPosterior(DYNGFN["max_parents"], temperature, pi, model.ridge,
                                 occam=False, seed=seed).fit(x, v)
    draws = exact.sample(n_draws, seed=seed + 7) > 0
    total = 0.0
    for i in range(d):
        cache = {}
        for row in draws[:, i]:
            key = tuple(np.flatnonzero(row))
            if key not in cache:
                cache[key] = (exact.log_prob_parent_set(i, key)
                              - model.log_prob_parent_set(i, key))
            total += cache[key] / n_draws
    return float(total)


def run_one(d: int, n_steps: int, eval_every: int, n_boot: int, kl_max_d: int,
            seed: int = 0) -> dict:
    import torch

    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import BootstrapLassoPosterior, edge_scores
    from workbench.tools.grn import auto_temperature

    torch.set_num_threads(1)
    data = system(d)
    x, v, truth = data["x"], data["v"], data["truth"]
    temperature = auto_temperature(x, v, len(np.unique(data["trajectory"])))
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    model = DynGFN(temperature=temperature, n_steps=n_steps, seed=seed, **DYNGFN)
    clock = {"train": 0.0, "steps": [], "last": None}
    curve = []

    def on_step(m):
        now = time.perf_counter()
        clock["steps"].append(now - clock["last"])
        if m.step_ % eval_every == 0 or m.step_ == n_steps:
            prob = m.sample(200, seed=seed + 1).mean(0)
            curve.append((m.step_, float(np.sum(clock["steps"])),
                          off_diagonal_auc(prob, truth)["auroc"]))
        clock["last"] = time.perf_counter()

    clock["last"] = time.perf_counter()
    model.fit(x, v, callback=on_step)
    steps = np.array(clock["steps"])
    t_step = float(steps[1:].mean()) if len(steps) > 1 else float(steps[0])
    hit = [(s, t) for s, t, a in curve if a >= AUROC_TARGET]
    out = {"d": d, "n_steps": n_steps, "temperature": temperature, "t_step": t_step,
           "t_step_median": float(np.median(steps[1:])) if len(steps) > 1 else t_step,
           "train_s": float(steps.sum()), "curve": curve,
           "to_target": hit[0] if hit else None, "auroc": curve[-1][2],
           "true_edges_offdiag": int(truth.sum() - np.trace(truth)),
           "mean_edges": float(np.mean(model.history_["mean_edges"][-5:]))}
    out["rss_train_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if d <= kl_max_d:
        t0 = time.perf_counter()
        out["kl"] = mc_kl(model, x, v, temperature, d, seed=seed)
        out["kl_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(x, v, groups=data["trajectory"])
    out["boot_s"] = time.perf_counter() - t0
    out["boot_auroc"] = off_diagonal_auc(base.edge_probability_, truth)["auroc"]
    t0 = time.perf_counter()
    ols = edge_scores(x, v, "ols")
    out["ols_s"] = time.perf_counter() - t0
    out["ols_auroc"] = off_diagonal_auc(ols, truth)["auroc"]
    out["rss_setup_mb"] = rss_setup
    out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def run_hyper(n_steps: int, n_samples: int = 300, n_boot: int = 50, seed: int = 0) -> dict:
    """Linear vs hypernetwork reward (with and without the warm start) on the sigmoid system."""
    import torch

    from bench_grn import COMMON, SETTINGS
    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import BootstrapLassoPosterior, fit_linear_parents
    from workbench.tools.grn import scale_for_grn
    from workbench.tools.grn_metrics import (AdmissibleSet, bernoulli_row_log_prob,
                                             posterior_metrics)
    from workbench.tools.grn_synthetic import simulate_unidentifiable_system, split_by_trajectory

    torch.set_num_threads(1)
    sim = simulate_unidentifiable_system("sigmoid", seed=13)
    train, _, test = split_by_trajectory(sim["trajectory"])
    x, v, sd = scale_for_grn(sim["x"][train], sim["v"][train])
    mu = sim["x"][train].mean(0)
    xt = ((sim["x"][test] - mu) / sd).astype(np.float32)
    vt = (sim["v"][test] / sd).astype(np.float32)
    adm = AdmissibleSet.from_truth(sim["adjacency"], sim["groups"])
    half = n_steps // 2
    variants = [("linear reward", dict(reward="linear")),
                ("hyper reward", dict(reward="hyper")),
                (f"hyper, linear warm start ({half} steps)", dict(reward="hyper", warm_start=half)),
                (f"hyper, warm start ({half}) + {half} hypernetwork fits at the switch",
                 dict(reward="hyper", warm_start=half, warm_start_fit=half))]
    rows = []
    for label, kw in variants:
        t0 = time.perf_counter()
        model = DynGFN(n_steps=n_steps, seed=seed, max_parents=4, **SETTINGS["sigmoid"],
                       **COMMON, **kw).fit(x, v)
        fit_s = time.perf_counter() - t0
        samples = model.sample(n_samples, seed=seed + 1)
        m = posterior_metrics(samples, adm, log_q_row=model.log_prob_parent_set)
        if kw["reward"] == "linear":
            mse = [float(np.mean((xt @ fit_linear_parents(x, v, g).T
                                  + (v.mean(0) - x.mean(0) @ fit_linear_parents(x, v, g).T)
                                  - vt) ** 2)) for g in samples[:100]]
        else:
            with torch.no_grad():
                g = torch.as_tensor(samples[:100], dtype=torch.float32)
                pred = model.hyper_.predict(g, torch.as_tensor(xt)).numpy()
            mse = list(((pred - vt[None]) ** 2).mean((1, 2)))
        rows.append({"method": label, **m, "heldout_mse": float(np.mean(mse)), "fit_s": fit_s})
    xc, vc = x - x.mean(0), v - v.mean(0)
    coef, *_ = np.linalg.lstsq(xc, vc, rcond=None)
    ols_mse = float(np.mean(((xt - x.mean(0)) @ coef + v.mean(0) - vt) ** 2))
    from workbench.models.grn_params import edge_scores
    from workbench.tools.grn_metrics import edge_auc

    ols_auc = edge_auc(edge_scores(x, v, "ols"), adm.truth, adm.identifiable)
    rows.append({"method": "|OLS| (all genes)", "auroc": ols_auc["auroc"],
                 "auprc": ols_auc["auprc"], "heldout_mse": ols_mse})
    t0 = time.perf_counter()
    base = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(
        x, v, groups=sim["trajectory"][train])
    bs = posterior_metrics(base.samples_, adm,
                           log_q_row=bernoulli_row_log_prob(base.edge_probability_, n_boot))
    rows.append({"method": f"bootstrap Lasso ({n_boot})", **bs, "fit_s": time.perf_counter() - t0})
    return {"rows": rows, "n_steps": n_steps, "admissible": adm.size,
            "n_train": int(train.sum()), "n_test": int(test.sum())}


def main_hyper(args) -> int:
    r = run_hyper(args.steps, n_boot=args.n_boot)
    load = os.getloadavg()[0]
    print(f"\n## Sigmoid system: linear vs hypernetwork reward, {r['n_steps']} steps each "
          f"({r['n_train']} training / {r['n_test']} held-out cells, {r['admissible']} "
          f"admissible graphs; load average {load:.1f})\n")
    print("| method | AUROC | AUPRC | Bayes-SHD | KL(P* ‖ Q) | mean edges / sample | "
          "held-out velocity MSE | fit s (under load) |")
    print("|---|---|---|---|---|---|---|---|")

    def f(row, key, fmt):
        return f"{row[key]:{fmt}}" if key in row else "n/a"

    for row in r["rows"]:
        print(f"| {row['method'].replace('|', chr(92) + '|')} | {f(row, 'auroc', '.3f')} | "
              f"{f(row, 'auprc', '.3f')} | {f(row, 'bayes_shd', '.2f')} | "
              f"{f(row, 'kl_pstar_q', '.1f')} | {f(row, 'mean_edges', '.1f')} | "
              f"{f(row, 'heldout_mse', '.4f')} | {f(row, 'fit_s', '.0f')} |")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(r, default=float))
    return 0


def growth_exponent(ds, times) -> float:
    """Slope of ``log(time per step)`` against ``log(d)`` (least squares)."""
    if len(ds) < 2:
        return float("nan")
    return float(np.polyfit(np.log(ds), np.log(times), 1)[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, nargs="+", default=[10, 25, 50, 100])
    ap.add_argument("--steps", type=int, default=150, help="training steps per d")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--n-boot", type=int, default=50)
    ap.add_argument("--kl-max-d", type=int, default=25,
                    help="largest d for the Monte Carlo KL to the enumerated posterior")
    ap.add_argument("--hyper", action="store_true",
                    help="linear vs hypernetwork reward on the sigmoid system")
    ap.add_argument("--posteriors", action="store_true",
                    help="the enumerated posteriors (exact, screened) against the baselines")
    ap.add_argument("--seeds", type=int, nargs="+", default=[13, 1, 2],
                    help="systems per size, with --posteriors")
    ap.add_argument("--exact-max-d", type=int, default=50,
                    help="largest d for the full enumeration, with --posteriors")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.hyper:
        return main_hyper(args)
    if args.posteriors:
        return main_posteriors(args)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.steps, args.eval_every, args.n_boot,
                                 args.kl_max_d)))
        return 0
    rows = []
    for d in args.d:
        cmd = [sys.executable, __file__, "--one", str(d), "--steps", str(args.steps),
               "--eval-every", str(args.eval_every), "--n-boot", str(args.n_boot),
               "--kl-max-d", str(args.kl_max_d)]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"d={d}: {rows[-1]['t_step']:.3f} s/step", file=sys.stderr)
        if args.json:  # partial results survive an interrupted run
            from pathlib import Path

            Path(args.json).write_text(json.dumps({"rows": rows}, default=float))
    load = os.getloadavg()[0]
    print(f"\n## DynGFN per-step cost and quality by number of genes (load average {load:.1f})\n")
    print("| genes | true edges (off-diag.) | s / step | peak RSS MB (after setup) | "
          f"steps (train s) to AUROC >= {AUROC_TARGET} | DynGFN AUROC at {args.steps} steps | "
          "KL(P_R ‖ Q) (MC) | mean edges / sample | bootstrap Lasso AUROC (s) | "
          "\\|OLS\\| AUROC (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        hit = r["to_target"]
        reach = f"{hit[0]} ({hit[1]:.1f})" if hit else f"not in {r['n_steps']}"
        kl = f"{r['kl']:.2f}" if "kl" in r else "n/a"
        print(f"| {r['d']} | {r['true_edges_offdiag']} | {r['t_step']:.3f} | "
              f"{r['rss_peak_mb']:.0f} ({r['rss_setup_mb']:.0f}) | {reach} | {r['auroc']:.3f} | "
              f"{kl} | {r['mean_edges']:.1f} | {r['boot_auroc']:.3f} ({r['boot_s']:.1f}) | "
              f"{r['ols_auroc']:.3f} ({r['ols_s']:.2f}) |")
    ds = [r["d"] for r in rows]
    ts = [r["t_step"] for r in rows]
    print(f"\nGrowth exponent of s/step in d (log-log fit over d = {ds}): "
          f"{growth_exponent(ds, ts):.2f}")
    if len(ds) >= 3:
        print(f"Over the two largest d ({ds[-2]}, {ds[-1]}): "
              f"{growth_exponent(ds[-2:], ts[-2:]):.2f}")
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps({"rows": rows, "load": load}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
