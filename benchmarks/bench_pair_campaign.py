"""Benchmark: active pair selection on two complete real screens (Norman 2019, Parrish 2021).

Each campaign hides every double of the screen, reveals 2% at random, then lets an
acquisition choose batches (1% of the pairs per round) with the Bayesian low-rank model
refitted each round, until 20% of the pairs are revealed (``workbench.tools.campaign``). The
target is the top 5% of pairs by |GI|. Random choice finds, in expectation, the revealed
share of them (20% at 20%).

- Norman 2019 (CRISPRa, K562): the published GI map, 112 genes, 6,216 pairs; side features
  of a gene: its single growth phenotype, replicate spread and fitness.
- Parrish 2021 (pgPEN paralog knockouts, HeLa): our additive GI of 1,030 paralog pairs
  (2,060 genes, each in one pair, so the low-rank part learns nothing across pairs and the
  model must rely on the side features); side features: single log fold change, its
  absolute value (synthetic lethality shows as a strong double with weak singles) and its
  replicate sd.

For every screen, acquisition and seed the script records the share of top pairs found at
each budget; it prints the curve (mean and 95% t-interval over seeds) and the ratio to
random at 20% revealed (mean of ratios per seed, with a bootstrap interval over seeds).

    python benchmarks/bench_pair_campaign.py [--quick] [--seeds 10] [--screens norman,parrish]

The data folder is ``$WORKBENCH_SHARED_DATA`` or ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.tools.campaign import top_share_curve

ACQS = ("ids", "thompson", "ucb", "greedy", "random")
FRACTIONS = (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20)


def data_folder() -> Path:
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_screen(name: str):
    """(values matrix, side features, candidate pairs or None) of a screen."""
    from workbench.tools.gi_scores import norman_gi, parrish_gi

    if name == "norman":
        s = norman_gi(data_folder() / "norman2019_perturbseq_gi")
        return np.abs(s.gi), s.side.to_numpy(), None
    s = parrish_gi(data_folder() / "parrish2021_pgpen_paralog_gi")
    pos = {g: i for i, g in enumerate(s.genes)}
    cand = np.stack([s.pairs.gene_a.map(pos), s.pairs.gene_b.map(pos)], 1)
    side = s.side.assign(abs_single_lfc=s.side.single_lfc.abs()).to_numpy()
    return np.abs(s.gi), side, cand


def curve(hist: pd.DataFrame, fractions=FRACTIONS) -> pd.DataFrame:
    """Top share found at each budget fraction, one row per (acquisition, seed, budget)."""
    return top_share_curve(hist, fractions).rename(columns={"top_found_share": "share"})


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    from scipy.stats import t

    x = np.asarray(x, float)
    m = x.mean()
    if len(x) < 2:
        return m, np.nan, np.nan
    half = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return m, m - half, m + half


def ratio_to_random(c: pd.DataFrame, acq: str, budget: float = 0.2, n_boot: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean share of ``acq`` over mean share of random at ``budget``, with a bootstrap
    95% interval over seeds (seeds resampled jointly for both)."""
    a = c[(c.acquisition == acq) & np.isclose(c.budget, budget)].set_index("seed").share
    r = c[(c.acquisition == "random") & np.isclose(c.budget, budget)].set_index("seed").share
    seeds = a.index.intersection(r.index).to_numpy()
    a, r = a.loc[seeds].to_numpy(), r.loc[seeds].to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(seeds), (n_boot, len(seeds)))
    boot = a[idx].mean(1) / np.maximum(r[idx].mean(1), 1e-12)
    return a.mean() / r.mean(), *np.percentile(boot, [2.5, 97.5])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 seeds, greedy and random only")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--screens", default="norman,parrish")
    ap.add_argument("--acquisitions", default=",".join(ACQS))
    ap.add_argument("--csv", default=None, help="also write the per-seed curves here")
    args = ap.parse_args()
    import torch

    from workbench.tools.campaign import run_campaign

    torch.set_num_threads(1)
    seeds = range(2 if args.quick else args.seeds)
    acqs = ("greedy", "random") if args.quick else tuple(args.acquisitions.split(","))
    curves = []
    for screen in args.screens.split(","):
        values, side, cand = load_screen(screen)
        m = len(cand) if cand is not None else int(np.isfinite(values[np.triu_indices(len(values), 1)]).sum())
        batch = max(1, m // 100)
        t0 = time.perf_counter()
        hist = [run_campaign(values, side=side, candidates=cand, acquisition=a, seed=s,
                             budget=0.2, initial=0.02, batch_size=batch)
                for s in seeds for a in acqs]
        c = curve(pd.concat(hist)).assign(screen=screen)
        curves.append(c)
        print(f"\n### {screen}: {m} pairs, top 5% = {max(1, round(0.05 * m))} pairs, batches of "
              f"{batch}, {len(seeds)} seeds ({time.perf_counter() - t0:.0f} s)\n")
        print("share of the top-5% pairs found (mean [95% t-interval over seeds]):\n")
        print("| revealed | " + " | ".join(acqs) + " |")
        print("|---" * (len(acqs) + 1) + "|")
        for f in FRACTIONS:
            cells = []
            for a in acqs:
                mu, lo, hi = t_interval(c[(c.acquisition == a) & np.isclose(c.budget, f)].share)
                cells.append(f"{mu:.3f} [{lo:.3f}, {hi:.3f}]")
            print(f"| {f:.0%} | " + " | ".join(cells) + " |")
        if "random" in acqs:
            print("\nratio to random at 20% revealed (95% bootstrap interval over seeds):\n")
            print("| acquisition | ratio | interval | >= 2x |")
            print("|---|---|---|---|")
            for a in acqs:
                if a != "random":
                    r, lo, hi = ratio_to_random(c, a)
                    print(f"| {a} | {r:.2f} | [{lo:.2f}, {hi:.2f}] | {'yes' if r >= 2 else 'no'} |")
    if args.csv:
        pd.concat(curves).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
