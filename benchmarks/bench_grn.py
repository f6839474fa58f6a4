"""Benchmark: DynGFN posterior quality and speed on the synthetic unidentifiable systems.

Rebuilds DynGFN's benchmark (17 variables + 3 negated copies, 1000 trajectories of 2
points, 80/10/10 split by trajectory) with an asymmetric system matrix, for the linear and
the sigmoid system. For each system it trains :class:`workbench.models.gflownet.DynGFN`
and, in the same run on the same training data, the bootstrap Lasso baseline, and prints:

- time per training step, and time until ``KL(P* || Q)`` first drops below thresholds
  (KL evaluated exactly every ``--eval-every`` steps);
- final AUROC/AUPRC of edge marginals on the identifiable entries, Bayes-SHD, KL and
  coverage of the admissible set, for DynGFN and the baseline.

With ``--reference DIR --reference-python PY`` it also runs the reference implementation
(``lazaratan/dyn-gfn``, installed outside this repository) for one training epoch of its
shipped l-DynGFN linear config in a subprocess right after ours, timing its training epoch
with an observe-only Lightning callback, and prints the per-step ratio.

Usage::

    python benchmarks/bench_grn.py [--quick] [--reference DIR --reference-python PY]

``--losses`` compares the training objectives instead (``bench_grn_losses.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {
    # noise-free linear system: the data are sharp, so a 15-nat edge price keeps the
    # posterior on the admissible set (with lambda = 100 the reward itself puts ~10 % of
    # each row's mass on one extra edge)
    "linear": dict(temperature=0.01, sparsity=300.0),
    "sigmoid": dict(temperature=0.01, sparsity=300.0),
}
COMMON = dict(n_envs=64, lr=3e-3, hidden=64, epsilon=0.25, temper_min=0.1, temper_period=50,
              device="cpu")
KL_THRESHOLDS = (150.0, 20.0, 5.0)

TIMER = '''
import json, os, time
from pytorch_lightning.callbacks import Callback
class EpochTimer(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()
    def on_train_epoch_end(self, trainer, pl_module):
        with open(os.environ["EPOCH_TIMER_OUT"], "a") as f:
            f.write(json.dumps({"epoch": trainer.current_epoch,
                                "seconds": time.perf_counter() - self.t0}) + "\\n")
'''


def run_system(system: str, n_steps: int, eval_every: int, n_samples: int, n_boot: int,
               seed: int = 0) -> dict:
    import torch

    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import BootstrapLassoPosterior
    from workbench.tools.grn import scale_for_grn
    from workbench.tools.grn_metrics import (AdmissibleSet, bernoulli_row_log_prob,
                                             kl_to_admissible, posterior_metrics)
    from workbench.tools.grn_synthetic import simulate_unidentifiable_system, split_by_trajectory

    torch.set_num_threads(1)
    sim = simulate_unidentifiable_system(system, seed=13)
    train, _, _ = split_by_trajectory(sim["trajectory"])
    x, v, _ = scale_for_grn(sim["x"][train], sim["v"][train])
    adm = AdmissibleSet.from_truth(sim["adjacency"], sim["groups"])
    model = DynGFN(n_steps=n_steps, seed=seed, **SETTINGS[system], **COMMON)
    curve, clock = [], {"train": 0.0, "last": time.perf_counter()}

    def on_step(m):
        now = time.perf_counter()
        clock["train"] += now - clock["last"]
        if m.step_ % eval_every == 0 or m.step_ == n_steps:
            kl = kl_to_admissible(m.log_prob_parent_set, adm)
            curve.append((m.step_, clock["train"], kl))
        clock["last"] = time.perf_counter()

    model.fit(x, v, callback=on_step)
    t_step = clock["train"] / n_steps
    samples = model.sample(n_samples, seed=seed + 1)
    dyn = posterior_metrics(samples, adm, log_q_row=model.log_prob_parent_set)
    t0 = time.perf_counter()
    base = BootstrapLassoPosterior(n_boot=n_boot, seed=seed).fit(x, v, groups=sim["trajectory"][train])
    t_base = time.perf_counter() - t0
    bl = posterior_metrics(base.samples_, adm,
                           log_q_row=bernoulli_row_log_prob(base.edge_probability_, n_boot))
    to_kl = {}
    for thr in KL_THRESHOLDS:
        hit = [(s, t) for s, t, kl in curve if kl <= thr]
        to_kl[thr] = hit[0] if hit else None
    return {"system": system, "t_step": t_step, "train_s": clock["train"], "curve": curve,
            "to_kl": to_kl, "dyngfn": dyn, "baseline": bl, "baseline_s": t_base,
            "admissible": adm.size, "n_train": int(train.sum())}


def run_reference(ref_dir: str, python: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "wb_epoch_timer.py").write_text(TIMER)
        out = Path(tmp, "epochs.jsonl")
        env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", EPOCH_TIMER_OUT=str(out),
                   PYTHONPATH=tmp, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        cmd = [python, "train.py", "experiment=linear_linsol_dyn_gfn", "trainer=cpu",
               "logger=csv", "trainer.max_epochs=1", "trainer.min_epochs=1",
               "+trainer.limit_val_batches=0", "test=False",
               "+callbacks.epoch_timer._target_=wb_epoch_timer.EpochTimer",
               f"hydra.run.dir={tmp}/run"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ref_dir, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            print(proc.stderr[-3000:], file=sys.stderr)
            return None
        epochs = [json.loads(line) for line in out.read_text().splitlines()]
        return {"epoch_s": epochs[0]["seconds"], "steps": 4, "envs": 1024, "wall_s": wall}


def run_demo_exact(size: str, seed: int = 0) -> dict:
    """The demo world's GRN step, exact posterior vs the bootstrap baseline (same run)."""
    import tempfile

    from workbench.data.simulate.build import velocity_anndata
    from workbench.data.simulate.world import make_world
    from workbench.data.study import Study
    from workbench.tools.grn import PRESETS, run_grn
    from workbench.tools.grn_metrics import edge_auc

    world = make_world(seed, size)
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.create(Path(tmp) / "demo.study", title="bench")
        with study.step("simulate", seed=seed) as tx:
            tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([seed, 3])),
                             screen=False)
            tx.write_json("ground_truth", world.ground_truth())
        genes = [str(g) for g in study.read("velocity").var_names]
        t0 = time.perf_counter()
        info = run_grn(study, genes=genes, size=size, seed=seed, device="cpu")
        wall = time.perf_counter() - t0
        grn = Study.open(study.path).read("grn")
    truth = (np.asarray(world.ground_truth()["adjacency"]) > 0) | np.eye(len(genes), dtype=bool)
    every = np.ones_like(truth)
    out = {"size": size, "genes": len(genes), "true_edges": int(truth.sum()), "step_s": wall,
           "n_boot": PRESETS[size]["n_boot"], "settings": info["settings"]}
    for who, key in (("exact", "edge_probability"), ("baseline", "baseline_edge_probability")):
        p = np.asarray(grn.varp[key], np.float64)
        auc = edge_auc(p, truth, every)
        out[who] = {**auc, "brier": float(np.mean((p - truth) ** 2)), "edges": float(p.sum()),
                    "reliability": reliability(p, truth),
                    "bayes_shd": info["metrics"][who]["bayes_shd"]}
    return out


def reliability(p, truth, bins=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)) -> list:
    """(bin, entries, mean probability, share true) for each non-empty probability bin."""
    rows = []
    for a, b in zip(bins[:-1], bins[1:]):
        m = (p >= a) & (p < b)
        if m.any():
            rows.append((f"[{a:.1f}, {min(b, 1):.1f}]", int(m.sum()), float(p[m].mean()),
                         float(truth[m].mean())))
    return rows


def run_kl_small(d: int, n_steps: int, seed: int = 0) -> dict:
    """KL(P_R || Q) of DynGFN and of the bootstrap baseline to the enumerated reward posterior."""
    from workbench.models.gflownet import DynGFN
    from workbench.models.gflownet.exact_posterior import ExactParentPosterior
    from workbench.models.grn_params import BootstrapLassoPosterior

    rng = np.random.default_rng(seed)
    w = np.zeros((d, d))
    for i in range(d):
        for j in rng.choice(d, size=1 + i % 2, replace=False):
            w[i, j] = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
    x = rng.normal(size=(300, d))
    v = x @ w.T + 0.7 * rng.normal(size=x.shape)
    x = (x - x.mean(0)) / x.std(0)
    temp, lam = 0.1, 3.0 * d
    pi = 1.0 / (1.0 + np.exp(lam / d))
    exact = ExactParentPosterior(d, temp, pi, 1e-4, occam=False).fit(x, v)
    t0 = time.perf_counter()
    model = DynGFN(temperature=temp, sparsity=lam, ridge=1e-4, n_steps=n_steps, n_envs=64,
                   device="cpu", seed=seed).fit(x, v)
    train_s = time.perf_counter() - t0
    base = BootstrapLassoPosterior(n_boot=50, seed=seed).fit(x, v)
    pb = (base.samples_.sum(0) + 0.5) / (base.n_boot + 1.0)

    def base_row(i, parents):
        g = np.zeros(d, bool)
        g[list(parents)] = True
        return float(np.where(g, np.log(pb[i]), np.log1p(-pb[i])).sum())

    kl_q = exact.kl_to(model.log_prob_parent_set)
    kl_b = exact.kl_to(base_row)
    mq = model.sample(2000, seed=seed + 1).mean(0)
    return {"d": d, "steps": n_steps, "train_s": train_s,
            "kl_dyngfn": float(kl_q.sum()), "kl_baseline": float(kl_b.sum()),
            "marg_err_dyngfn": float(np.abs(mq - exact.edge_probability_).max()),
            "marg_err_baseline": float(np.abs(base.edge_probability_ - exact.edge_probability_).max())}


def main_exact(args) -> int:
    rows = [run_demo_exact(sz) for sz in args.demo.split(",") if sz]
    if rows:
        print("\n| demo | genes | true edges | method | AUROC (all entries) | AUPRC | Brier | "
              "Bayes-SHD | mean edges / sample | step s (measured under load) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            for who, name in (("exact", "exact posterior (ours)"),
                              ("baseline", f"bootstrap Lasso ({r['n_boot']} resamples)")):
                m = r[who]
                print(f"| {r['size']} | {r['genes']} | {r['true_edges']} | {name} | "
                      f"{m['auroc']:.3f} | {m['auprc']:.3f} | {m['brier']:.4f} | "
                      f"{m['bayes_shd']:.2f} | {m['edges']:.1f} | "
                      f"{r['step_s']:.1f} (whole step) |")
        for r in rows:
            st = r["settings"]
            print(f"\n{r['size']}: chosen from the data: edge prior {st['edge_prior']:.3f}, "
                  f"prior sd {st['prior_sd']}, n_eff {st['n_effective']:.1f}, median T "
                  f"{np.median(st['temperature']):.3g}. Reliability (bin, entries, mean p, "
                  "share true):")
            for who in ("exact", "baseline"):
                print(f"  {who}: " + "; ".join(f"{b} n={n} p={mp:.2f} true={ft:.2f}"
                                               for b, n, mp, ft in r[who]["reliability"]))
    for d in [int(a) for a in args.kl_d.split(",") if a]:
        r = run_kl_small(d, args.steps or 300)
        print(f"\nd = {d}, every parent set: KL(P_R || Q) DynGFN {r['kl_dyngfn']:.3f} "
              f"({r['steps']} steps, {r['train_s']:.0f} s under load), bootstrap Lasso "
              f"{r['kl_baseline']:.3f}; max |edge marginal error| DynGFN "
              f"{r['marg_err_dyngfn']:.3f}, baseline {r['marg_err_baseline']:.3f}")
    return 0


# ------------------------------------------------------------------ headline benchmark
HEADLINE = ("noisy velocity", "few cells", "partially observed", "kinetic (steady-state path)",
            "demo world (quick)")
METHODS = (("exact", "exact posterior (ours)"),
           ("screened", "screened posterior (ours, 12 candidates, 6 parents)"),
           ("dyngfn", "DynGFN (ours)"),
           ("dyngfn-ftb", "DynGFN (ours, f-TB alpha 1, max 4 parents: the step's default)"),
           ("corr", "\\|corr(v_i, x_j)\\|"), ("ols", "\\|OLS\\|"),
           ("ridge", "\\|ridge\\| (RidgeCV)"),
           ("bootstrap", "bootstrap Lasso (50)"), ("trees", "GENIE3-style ExtraTrees"))


def headline_system(name: str, seed: int = 0) -> dict:
    """``x, v, trajectory, truth`` of one headline system (truth: j -> i, self-loops set)."""
    from workbench.tools import grn_synthetic as syn

    if name == "noisy velocity":
        sim = syn.simulate_panel("linear", p=10, n_traj=100, noise=3.0, seed=13 + seed)
    elif name == "few cells":
        sim = syn.simulate_panel("linear", p=10, n_traj=12, noise=0.6, seed=13 + seed)
    elif name == "partially observed":
        sim = syn.simulate_panel("linear", p=10, hidden=6, n_traj=100, noise=1.0, seed=13 + seed)
    elif name.startswith("kinetic"):
        from workbench.tools.velocity import steady_state_velocity

        sim = syn.simulate_kinetic(p=10, seed=13 + seed)
        vel = steady_state_velocity(sim["spliced"], sim["unspliced"], n_neighbors=15,
                                    normalize=False, seed=seed)
        sim = {**sim, "x": vel["Ms"], "v": vel["velocity"]}
    else:
        from workbench.data.simulate.build import velocity_anndata
        from workbench.data.simulate.world import make_world
        from workbench.tools.grn import prepare

        world = make_world(seed, "quick")
        adata = velocity_anndata(world, np.random.default_rng([seed, 3]))
        data = prepare(adata, genes=[str(g) for g in adata.var_names])
        adj = np.asarray(world.ground_truth()["adjacency"]) > 0
        sim = {"x": data["x"], "v": data["v"], "trajectory": data["trajectory"],
               "adjacency": adj | np.eye(len(adj), dtype=bool)}
    return {"x": sim["x"], "v": sim["v"], "trajectory": np.asarray(sim["trajectory"]),
            "truth": np.asarray(sim["adjacency"]) > 0}


def score_method(p, truth, samples=None, probability: bool = True) -> dict:
    """AUROC/AUPRC/Brier/reliability gap on off-diagonal entries; Bayes-SHD from samples."""
    from workbench.tools.grn_metrics import AdmissibleSet, bayes_shd, edge_auc

    off = ~np.eye(len(truth), dtype=bool)
    out = edge_auc(p, truth, off)
    out["brier"] = out["gap"] = out["bayes_shd"] = float("nan")
    if probability:
        out["brier"] = float(np.mean((p[off] - truth[off]) ** 2))
        rel = reliability(p[off], truth[off].astype(float))
        out["reliability"] = rel
        out["gap"] = max(abs(mp - ft) for _, n, mp, ft in rel if n >= 10)
    if samples is not None:
        out["bayes_shd"] = bayes_shd(samples, AdmissibleSet.from_truth(truth))
        out["edges"] = float(np.asarray(samples).sum((1, 2)).mean())
    return out


def run_headline(name: str, n_steps: int, seed: int = 0, dyngfn: bool = True) -> dict:
    """Every method of :data:`METHODS` on one system, same data, same run (DynGFN only
    with ``dyngfn``)."""
    import torch

    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import edge_scores
    from workbench.tools.grn import auto_temperature, fit_exact, scale_for_grn

    torch.set_num_threads(1)
    sysd = headline_system(name, seed)
    x, v, _ = scale_for_grn(sysd["x"], sysd["v"])
    traj, truth = sysd["trajectory"], sysd["truth"]
    rows, secs = {}, {}
    t0 = time.perf_counter()
    ex = fit_exact(x, v, max_parents=4, n_samples=1000, n_boot=50, groups=traj, seed=seed)
    secs["exact+bootstrap"] = time.perf_counter() - t0
    rows["exact"] = score_method(ex["edge_probability"], truth, ex["samples"])
    base = ex["baseline"]
    rows["bootstrap"] = score_method(base.edge_probability_, truth, base.samples_)
    t0 = time.perf_counter()
    from workbench.tools.grn import N_CANDIDATES, SCREEN_MAX_PARENTS

    sc = fit_exact(x, v, max_parents=SCREEN_MAX_PARENTS, n_samples=1000, n_boot=1, groups=traj,
                   seed=seed, n_candidates=N_CANDIDATES)
    secs["screened"] = time.perf_counter() - t0
    rows["screened"] = score_method(sc["edge_probability"], truth, sc["samples"])
    t0 = time.perf_counter()
    n_eff = len(np.unique(traj))
    if not dyngfn:
        n_steps = 0
    model = None if not n_steps else DynGFN(temperature=auto_temperature(x, v, n_eff), sparsity=70.0, n_steps=n_steps,
                   n_envs=32, device="cpu", seed=seed).fit(x, v)
    if model is not None:
        samples = model.sample(1000, seed=seed + 1)
        secs["dyngfn"] = time.perf_counter() - t0
        rows["dyngfn"] = score_method(samples.mean(0), truth, samples)
        t0 = time.perf_counter()          # as the GRN step now runs DynGFN
        model = DynGFN(temperature=auto_temperature(x, v, n_eff), sparsity=70.0,
                       n_steps=n_steps, n_envs=32, loss="ftb", ftb_alpha=1.0, max_parents=4,
                       device="cpu", seed=seed).fit(x, v)
        samples = model.sample(1000, seed=seed + 1)
        secs["dyngfn-ftb"] = time.perf_counter() - t0
        rows["dyngfn-ftb"] = score_method(samples.mean(0), truth, samples)
    for key in ("corr", "ols", "ridge", "trees"):
        t0 = time.perf_counter()
        rows[key] = score_method(edge_scores(x, v, key, seed=seed), truth, probability=False)
        secs[key] = time.perf_counter() - t0
    return {"system": name, "cells": len(x), "genes": x.shape[1],
            "true_edges": int(truth.sum() - np.trace(truth)), "rows": rows, "seconds": secs}


def main_headline(args) -> int:
    names = [n for n in HEADLINE if any(n.startswith(a.strip()) for a in args.systems.split(","))]
    results = [run_headline(n, args.steps or 150, dyngfn=not args.no_dyngfn) for n in names]
    print("\n| system | cells x genes | true edges (off-diag.) | method | AUROC | AUPRC | "
          "Brier | reliability gap | Bayes-SHD | mean edges / sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    f = lambda a, k: "n/a" if not np.isfinite(a.get(k, np.nan)) else f"{a[k]:.3f}"  # noqa: E731
    for r in results:
        best = max(m["auroc"] for m in r["rows"].values())
        for key, label in METHODS:
            if key not in r["rows"]:
                continue
            m = r["rows"][key]
            tag = " (best)" if round(m["auroc"], 3) == round(best, 3) else ""
            edges = f"{m['edges']:.1f}" if "edges" in m else "n/a"
            print(f"| {r['system']} | {r['cells']} x {r['genes']} | {r['true_edges']} | {label} "
                  f"| {m['auroc']:.3f}{tag} | {m['auprc']:.3f} | {f(m, 'brier')} | {f(m, 'gap')} "
                  f"| {f(m, 'bayes_shd')} | {edges} |")
    for r in results:
        print(f"\n{r['system']}: seconds (measured under load) " +
              ", ".join(f"{k} {t:.1f}" for k, t in r["seconds"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    return 0


def run_pancreas(data_dir: str, n_perm: int = 1000, seed: int = 0,
                 dyngfn_losses=(("db", 0.0),), dyngfn_size: str = "realistic",
                 n_genes: int = 26, n_regulators: int = 8) -> list:
    """Pancreas (739 cells) against DoRothEA A-C and BEELINE ChIP, one gene set per reference.

    The enumerated posterior is the one the GRN step's ``method="auto"`` picks for the panel
    (exact up to ``EXACT_LIMIT``, screened beyond: ``n_genes=60`` is screened). DynGFN runs
    as the step's ``method="dyngfn"`` runs it (automatic temperature with cells / 30 as the
    effective sample size, lambda 70, the ``dyngfn_size`` preset, at most 4 parents), once
    per ``(loss, alpha)`` of ``dyngfn_losses``; its score is the share of 1000 posterior
    samples holding each edge.
    """
    import torch

    from workbench.data.readers.velocity import read_velocity
    from workbench.models.gflownet import DynGFN
    from workbench.models.grn_params import edge_scores
    from workbench.models.gflownet.exact_posterior import n_parent_sets
    from workbench.tools.grn import (EXACT_LIMIT, N_CANDIDATES, PRESETS, SCREEN_MAX_PARENTS,
                                     auto_temperature, fit_exact, prepare, scale_for_grn)
    from workbench.tools.grn_metrics import (read_edge_list, reference_auc, reference_gene_set,
                                             reference_matrix)

    root = Path(data_dir)
    adata = read_velocity(root / "rna_velocity_small" / "pancreas_veloviz_739cells.h5ad")
    dense = lambda m: np.asarray(m.toarray() if hasattr(m, "toarray") else m)  # noqa: E731
    seen = ((dense(adata.layers["spliced"]) > 0).mean(0) >= 0.1) & (
        (dense(adata.layers["unspliced"]) > 0).mean(0) >= 0.1)
    candidates = list(np.asarray(adata.var_names)[np.asarray(seen).ravel()])
    refs = {"DoRothEA mouse A-C": read_edge_list(root / "dorothea_regulons" / "dorothea_mm.tsv.gz"),
            "BEELINE mouse non-specific ChIP": read_edge_list(
                root / "beeline_reference_networks" / "mouse" / "Non-Specific-ChIP-seq-network.csv.gz")}
    out = []
    for name, edges in refs.items():
        genes = reference_gene_set(edges, candidates, n_genes=n_genes,
                                   n_regulators=n_regulators)
        data = prepare(adata, genes=genes, n_top=len(genes), seed=seed)
        x, v, _ = scale_for_grn(data["x"], data["v"])
        ref = reference_matrix(edges, data["genes"])
        d = x.shape[1]
        if n_parent_sets(d, 4) * d <= EXACT_LIMIT:
            ex = fit_exact(x, v, max_parents=4, n_samples=500, n_boot=50, seed=seed)
        else:
            ex = fit_exact(x, v, max_parents=SCREEN_MAX_PARENTS, n_samples=500, n_boot=50,
                           seed=seed, n_candidates=N_CANDIDATES)
        scores = {ex["chosen"]["method"]: ex["edge_probability"],
                  "bootstrap": ex["baseline"].edge_probability_}
        torch.set_num_threads(1)
        preset = PRESETS[dyngfn_size]
        for loss, alpha in dyngfn_losses:
            model = DynGFN(temperature=auto_temperature(x, v, len(x) / 30.0), sparsity=70.0,
                           n_steps=preset["n_steps"], n_envs=preset["n_envs"], loss=loss,
                           ftb_alpha=alpha, max_parents=4, device="cpu", seed=seed).fit(x, v)
            scores[dyngfn_key(loss, alpha)] = model.sample(1000, seed=seed + 1).mean(0)
        for key in ("corr", "ols", "ridge", "trees"):
            scores[key] = edge_scores(x, v, key, seed=seed)
        rows = {k: reference_auc(p, ref, n_perm=n_perm, seed=seed) for k, p in scores.items()}
        out.append({"reference": name, "genes": data["genes"], "rows": rows,
                    "candidates": len(candidates), "edge_prior": ex["chosen"]["edge_prior"]})
    return out


def dyngfn_key(loss: str, alpha: float) -> str:
    return "dyngfn" if loss == "db" else f"dyngfn-{loss}-{alpha:g}"


def parse_losses(text: str) -> tuple:
    """``"db,ftb:1"`` -> ``(("db", 0.0), ("ftb", 1.0))``."""
    out = []
    for item in filter(None, (a.strip() for a in text.split(","))):
        loss, _, alpha = item.partition(":")
        out.append((loss, float(alpha or 0.0)))
    return tuple(out)


def main_pancreas(args) -> int:
    losses = parse_losses(args.pancreas_losses)
    res = run_pancreas(args.data, n_perm=args.n_perm, dyngfn_losses=losses,
                       n_genes=args.pancreas_genes, n_regulators=args.pancreas_regulators)
    labels = {dyngfn_key(lo, a): f"DynGFN (ours, {'modified DB' if lo == 'db' else f'f-TB alpha {a:g}'}"
              ", realistic preset)" for lo, a in losses}
    methods = [*METHODS[:2], *labels.items(), *METHODS[4:]]
    print("\n| reference | genes | reference edges / pairs | method | AUROC (p) | AUPRC (random) (p) |")
    print("|---|---|---|---|---|---|")
    for r in res:
        for key, label in methods:
            if key not in r["rows"]:
                continue
            m = r["rows"][key]
            print(f"| {r['reference']} | {len(r['genes'])} | {m['n_edges']} / {m['n_pairs']} | "
                  f"{label} | {m['auroc']:.3f} (p = {m['p_auroc']:.3f}) | {m['auprc']:.3f} "
                  f"({m['random_auprc']:.3f}) (p = {m['p_auprc']:.3f}) |")
    for r in res:
        print(f"\n{r['reference']} genes ({r['candidates']} candidates detected in >= 10 % of "
              f"cells, spliced and unspliced): {', '.join(r['genes'])}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exact", action="store_true",
                    help="the exact-posterior benchmarks (demo worlds, KL at small d)")
    ap.add_argument("--demo", default="quick,realistic", help="demo sizes for --exact")
    ap.add_argument("--kl-d", default="5", help="gene counts for KL(P_R || Q) with --exact")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--systems", default="linear,sigmoid")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--reference", help="checkout of lazaratan/dyn-gfn (outside this repo)")
    ap.add_argument("--reference-python", help="python of the reference's own venv")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--headline", action="store_true",
                    help="every method on the harder systems (noise, few cells, hidden genes, "
                         "kinetic, demo); --systems picks them by prefix")
    ap.add_argument("--pancreas", action="store_true",
                    help="pancreas against DoRothEA and BEELINE with permutation p-values")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared"
                                          / "data"), help="the shared data folder")
    ap.add_argument("--n-perm", type=int, default=1000)
    ap.add_argument("--no-dyngfn", action="store_true",
                    help="with --headline: leave DynGFN out (the enumerated posteriors and "
                         "the baselines only)")
    ap.add_argument("--pancreas-genes", type=int, default=26,
                    help="genes per reference panel (beyond 30 the screened posterior runs)")
    ap.add_argument("--pancreas-regulators", type=int, default=8,
                    help="regulators chosen first for each reference panel")
    ap.add_argument("--pancreas-losses", default="db,ftb:1",
                    help="DynGFN losses for --pancreas: db, ftb:ALPHA, comma-separated")
    ap.add_argument("--losses", action="store_true",
                    help="modified DB, TB and the f-TB members: mode coverage and KL to the "
                         "enumerated posterior (--loss-d genes, --n-seeds seeds, --steps)")
    ap.add_argument("--loss-d", type=int, default=5)
    ap.add_argument("--n-seeds", type=int, default=3)
    ap.add_argument("--loss-temperature", type=float, default=0.1)
    ap.add_argument("--loss-local-search", type=float, default=0.0)
    ap.add_argument("--losses-realistic", action="store_true",
                    help="modified DB and the f-TB members on the demo worlds (--loss-sizes), "
                         "judged against DynGFN's energy enumerated over every parent set of "
                         "at most 4 (exact KL, coverage, marginals, AUROC)")
    ap.add_argument("--loss-sizes", default="quick,realistic")
    args = ap.parse_args(argv)
    if args.losses or args.losses_realistic:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_grn_losses import main_losses, main_losses_realistic

        return main_losses_realistic(args) if args.losses_realistic else main_losses(args)
    if args.pancreas:
        return main_pancreas(args)
    if args.headline:
        if args.systems == "linear,sigmoid":
            args.systems = ",".join(HEADLINE)
        return main_headline(args)
    if args.exact:
        return main_exact(args)
    n_steps = args.steps or (60 if args.quick else 400)
    eval_every = 10 if args.quick else 25
    rows = [run_system(s, n_steps, eval_every, n_samples=300 if args.quick else 1000,
                       n_boot=10 if args.quick else 50)
            for s in args.systems.split(",")]
    ref = None
    if args.reference and args.reference_python:
        ref = run_reference(args.reference, args.reference_python)

    print(f"\n## DynGFN synthetic benchmark ({n_steps} steps, 64 roll-outs + 64 local-search "
          "trajectories per node per step, 2 CPU threads max, torch threads = 1)\n")
    print("| system | method | AUROC (identifiable) | AUPRC | Bayes-SHD | KL(P*‖Q) | coverage "
          "| share admissible | mean edges | fit time s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for who, m, t in (("DynGFN (ours)", r["dyngfn"], r["train_s"]),
                          ("bootstrap Lasso", r["baseline"], r["baseline_s"])):
            print(f"| {r['system']} | {who} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                  f"{m['bayes_shd']:.2f} | {m['kl_pstar_q']:.1f} | {m['coverage']:.3f} "
                  f"(of {r['admissible']}) | {m['share_admissible']:.3f} | "
                  f"{m['mean_edges']:.1f} | {t:.1f} |")
    print("\n| system | s / training step | " + " | ".join(
        f"time to KL ≤ {t:g} (s, step)" for t in KL_THRESHOLDS) + " |")
    print("|---|---|" + "---|" * len(KL_THRESHOLDS))
    for r in rows:
        cells = [f"{v[1]:.1f} s (step {v[0]})" if v else "not reached"
                 for v in r["to_kl"].values()]
        print(f"| {r['system']} | {r['t_step']:.3f} | " + " | ".join(cells) + " |")
    if ref is not None:
        lin = next((r for r in rows if r["system"] == "linear"), rows[0])
        ref_step = ref["epoch_s"] / ref["steps"]
        print("\n| implementation | s / training step | roll-outs per node per step | "
              "s per 1000 roll-outs per node | ratio (reference / ours) per step |")
        print("|---|---|---|---|---|")
        print(f"| reference lazaratan/dyn-gfn (l-DynGFN linear, same machine, same run) | "
              f"{ref_step:.2f} | 1024 | {ref_step / 1.024:.2f} | |")
        ours_per_k = lin["t_step"] / 0.128
        print(f"| ours | {lin['t_step']:.3f} | 64 + 64 | {ours_per_k:.2f} | "
              f"{ref_step / lin['t_step']:.1f}x per step, {ref_step / 1.024 / ours_per_k:.1f}x "
              "per roll-out |")
        print(f"\nreference whole process (1 epoch, no validation): {ref['wall_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "reference": ref}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
