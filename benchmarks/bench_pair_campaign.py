"""Benchmark: pair planners on two complete real screens (Norman 2019, Parrish 2021).

Each campaign hides every double of the screen, reveals 2% at random (the same start for
every planner of a seed), then lets a planner choose batches (1% of the pairs per round)
until 20% of the pairs are revealed (``workbench.tools.campaign``). The target is the top
5% of pairs by |GI|; random choice finds, in expectation, the revealed share of them.
Planners: random, the two model-free rules (gene_mean, singles), soft-impute greedy, the
Bayesian low-rank model with IDS, the exchangeable model, and ``auto`` (the default of
``workbench plan-pairs``: the rule, the exchangeable model or their rank average, whichever
ranks held-out measured pairs best, cross-fitted) next to ``auto_rules`` (the earlier
default: the better rule only).

- Norman 2019 (CRISPRa, K562): the published GI map, 112 genes, 6,216 pairs; side features
  of a gene: single growth phenotype, replicate spread, fitness; singles = growth phenotype.
- Parrish 2021 (pgPEN paralog knockouts, HeLa): our additive GI of 1,030 paralog pairs
  (2,060 genes, each in one pair); side features: single log fold change and its replicate
  sd; singles = single lfc. Its top pairs are split into negative GI (synthetic-lethal
  side), positive GI whose double is no better than its stronger single plus 0.5 log2
  (saturation: the stronger single already drops the guide near the floor, and the
  additive expectation overshoots) and other positive GI (suppression).

    python benchmarks/bench_pair_campaign.py --screens norman --csv norman.csv
    python benchmarks/bench_pair_campaign.py --screens parrish --csv parrish.csv
    python benchmarks/bench_pair_campaign.py --report norman.csv,parrish.csv > results.md
    python benchmarks/bench_pair_campaign.py --scale 300 --chunk-size 4096   # memory row

The data folder is ``$WORKBENCH_SHARED_DATA`` or ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

PLANNERS = ("random", "gene_mean", "singles", "soft_impute", "bpmf_ids", "exchangeable",
            "auto_rules", "auto")
FRACTIONS = (0.05, 0.10, 0.20)
CATEGORIES = ("synthetic_lethal", "saturation", "suppression")


def data_folder() -> Path:
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_screen(name: str):
    """(|GI| matrix, side features, singles, candidate pairs or None, category per
    candidate or None) of a screen."""
    from workbench.tools.gi_scores import norman_gi, parrish_gi

    if name == "norman":
        s = norman_gi(data_folder() / "norman2019_perturbseq_gi")
        return np.abs(s.gi), s.side.to_numpy(), s.side.single_phenotype.to_numpy(), None, None
    s = parrish_gi(data_folder() / "parrish2021_pgpen_paralog_gi")
    pos = {g: i for i, g in enumerate(s.genes)}
    p = s.pairs
    cand = np.stack([p.gene_a.map(pos), p.gene_b.map(pos)], 1)
    stronger = np.minimum(p.lfc_a, p.lfc_b)
    cat = np.where(p.gi < 0, "synthetic_lethal",
                   np.where(p.lfc_double <= stronger + 0.5, "saturation", "suppression"))
    return np.abs(s.gi), s.side.to_numpy(), s.side.single_lfc.to_numpy(), cand, cat


def t_interval(x) -> tuple[float, float, float]:
    from scipy.stats import t

    x = np.asarray(x, float)
    m = x.mean()
    if len(x) < 2:
        return m, np.nan, np.nan
    half = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return m, m - half, m + half


def run_screen(screen: str, planners, seeds) -> pd.DataFrame:
    """One row per (planner, seed, budget): share of top pairs found (and per category)."""
    from workbench.tools.campaign import _candidates, run_campaign

    values, side, singles, cand, cat = load_screen(screen)
    cc = _candidates(values, cand)
    v = values[cc[:, 0], cc[:, 1]]
    m = len(cc)
    n_top = max(1, int(round(0.05 * m)))
    top_idx = np.argsort(-v, kind="stable")[:n_top]
    top_cat = None if cat is None else dict(zip(map(tuple, cc[top_idx]), cat[top_idx]))
    rows = []
    for planner in planners:
        t0 = time.perf_counter()
        for seed in seeds:
            h = run_campaign(values, planner=planner, side=side, singles=singles,
                             candidates=cand, seed=seed, budget=max(FRACTIONS), initial=0.02,
                             batch_size=max(1, m // 100), device="cpu")
            for f in FRACTIONS:
                sub = h[h.frac_revealed <= f + 1e-9]
                row = {"screen": screen, "planner": planner, "seed": seed, "budget": f,
                       "share": sub.is_top.sum() / n_top}
                ran = sub[sub.planner_used != "initial"].planner_used.value_counts()
                row["ran"] = ";".join(f"{k}={v}" for k, v in ran.items())  # pairs per planner
                if top_cat is not None:
                    found = [top_cat[(a, b)] for a, b, t in zip(sub.i, sub.j, sub.is_top) if t]
                    for c in CATEGORIES:
                        row[f"found_{c}"] = found.count(c)
                        row[f"n_{c}"] = list(top_cat.values()).count(c)
                rows.append(row)
        print(f"{screen} {planner}: {time.perf_counter() - t0:.0f} s (measured under load)",
              flush=True)
    return pd.DataFrame(rows)


def report(df: pd.DataFrame) -> str:
    out = []
    for screen, d in df.groupby("screen", sort=False):
        seeds = d.seed.nunique()
        out.append(f"\n### {screen}: share of the top-5% |GI| pairs found, mean [95% t-interval]"
                   f" over {seeds} seeds\n")
        out.append("| planner | " + " | ".join(f"{f:.0%} revealed" for f in FRACTIONS) + " |")
        out.append("|---" * (len(FRACTIONS) + 1) + "|")
        for planner, g in d.groupby("planner", sort=False):
            cells = []
            for f in FRACTIONS:
                mu, lo, hi = t_interval(g[np.isclose(g.budget, f)].share)
                cells.append(f"{mu:.3f} [{lo:.3f}, {hi:.3f}]")
            out.append(f"| {planner} | " + " | ".join(cells) + " |")
        if "auto" in set(d.planner):
            out.append(f"\n{screen}: auto minus each planner, paired over the same seeds and "
                       "starts, mean [95% t-interval]:\n")
            out.append("| auto minus | " + " | ".join(f"{f:.0%}" for f in FRACTIONS) + " |")
            out.append("|---" * (len(FRACTIONS) + 1) + "|")
            a = d[d.planner == "auto"].set_index(["seed", "budget"]).share
            for planner, g in d[d.planner != "auto"].groupby("planner", sort=False):
                diff = (a - g.set_index(["seed", "budget"]).share).dropna()
                cells = []
                for f in FRACTIONS:
                    x = diff[np.isclose(diff.index.get_level_values("budget"), f)]
                    mu, lo, hi = t_interval(x) if len(x) else (np.nan, np.nan, np.nan)
                    cells.append(f"{mu:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                out.append(f"| {planner} | " + " | ".join(cells) + " |")
            if "ran" in d:
                last = d[(d.planner == "auto") & np.isclose(d.budget, max(FRACTIONS))]
                count: dict[str, int] = {}
                for cell in last.ran.dropna():
                    for kv in str(cell).split(";"):
                        k, v = kv.split("=")
                        count[k] = count.get(k, 0) + int(v)
                total = sum(count.values()) or 1
                out.append(f"\n{screen}: pairs auto chose with each planner (all seeds): " +
                           ", ".join(f"{k} {v / total:.0%}" for k, v in
                                     sorted(count.items(), key=lambda kv: -kv[1])))
        if "found_synthetic_lethal" in d and d["found_synthetic_lethal"].notna().any():
            last = d[np.isclose(d.budget, max(FRACTIONS))]
            n = {c: int(last[f"n_{c}"].iloc[0]) for c in CATEGORIES}
            out.append(f"\n{screen} top pairs by kind at {max(FRACTIONS):.0%} revealed (mean found"
                       " of " + ", ".join(f"{n[c]} {c}" for c in CATEGORIES) + "):\n")
            out.append("| planner | " + " | ".join(CATEGORIES) + " |")
            out.append("|---" * (len(CATEGORIES) + 1) + "|")
            for planner, g in last.groupby("planner", sort=False):
                out.append(f"| {planner} | " + " | ".join(
                    f"{g[f'found_{c}'].mean():.1f} / {n[c]}" for c in CATEGORIES) + " |")
    return "\n".join(out)


def scale_row(n_genes: int = 300, chunk_size: int = 8192, scheduler=None) -> dict:
    """Plan over all pairs of ``n_genes`` planted genes: fit the exchangeable model on 5% of
    the pairs and score every other pair in chunks; peak resident memory of this process."""
    import resource

    from workbench.models.exchangeable import ExchangeablePairModel
    from workbench.tools.campaign import score_pairs

    rng = np.random.default_rng(0)
    s = rng.normal(size=(n_genes, 1))
    u = rng.normal(size=(n_genes, 2))
    R = np.abs(s) + np.abs(s).T + np.tanh(u @ u.T)
    iu = np.triu_indices(n_genes, 1)
    obs = rng.random(len(iu[0])) < 0.05
    t0 = time.perf_counter()
    m = ExchangeablePairModel(steps=100, seed=0, device="cpu")
    m.fit(iu[0][obs], iu[1][obs], R[iu][obs], side=s, n_items=n_genes)
    samples = score_pairs(m, iu[0][~obs], iu[1][~obs], chunk_size=chunk_size,
                          scheduler=scheduler)
    r = np.corrcoef(samples.mean(0), R[iu][~obs])[0, 1]
    return {"genes": n_genes, "pairs": len(iu[0]), "measured": int(obs.sum()),
            "chunk_size": chunk_size, "held_out_r": round(float(r), 3),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds_under_load": round(time.perf_counter() - t0, 1),
            "dask": scheduler is not None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--screens", default="norman,parrish")
    ap.add_argument("--planners", default=",".join(PLANNERS))
    ap.add_argument("--csv", default=None, help="write the per-seed results here")
    ap.add_argument("--report", default=None, help="comma-separated CSVs: print the tables")
    ap.add_argument("--scale", type=int, default=0, help="N genes: plan over all their pairs")
    ap.add_argument("--chunk-size", type=int, default=8192)
    ap.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    args = ap.parse_args()
    if args.scale:
        print(scale_row(args.scale, args.chunk_size, args.scheduler))
        return
    if args.report:
        print(report(pd.concat([pd.read_csv(p) for p in args.report.split(",")])))
        return
    from workbench.models._device import torch_threads

    with torch_threads(1):
        df = pd.concat([run_screen(s, args.planners.split(","), range(args.seeds))
                        for s in args.screens.split(",")])
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(report(df))


if __name__ == "__main__":
    main()
