"""Guided phenotype search against random and least-confidence sampling (quality numbers).

Pool: Gaussian clusters in 32-d (Hartford et al. 2020's synthetic check), one compact class
planted at ``--common`` (default 1 %) and, separately, one at ``--rare`` (0.1 %), an exemplar
from the class. For each seed and policy the search runs until its stop rule decides
(guided: betting interval on importance-weighted draws; random: Clopper-Pearson, delta split
over looks; least confidence has no valid interval) or the label budget is spent.

Printed: labels to confirm the common class (lower bound > tau), labels to find 10 of its
crops, and for the rare class the share of seeds certified below tau with the labels used.
Median and inter-quartile range over seeds.

    python benchmarks/bench_find.py --seeds 10 --n 10000
"""

from __future__ import annotations

import argparse

import numpy as np

from workbench.models.guided_search import simulate_search


def pool(n, prev, seed, dim=32):
    rng = np.random.default_rng([seed, 99])
    centers = rng.normal(0, 3, (8, dim))
    X = centers[rng.integers(0, 8, n)] + rng.normal(0, 1, (n, dim))
    k = max(1, int(round(prev * n)))
    pos = rng.choice(n, k, replace=False)
    X[pos] = rng.normal(0, 3, dim) + rng.normal(0, 1, (k, dim))
    y = np.zeros(n, bool)
    y[pos] = True
    return X, y, int(pos[0])


def first_positives(hist, k=10):
    for h in hist:
        if h["positives"] >= k:
            return h["labels"]
    return None


def summary(values, cap):
    v = np.array([cap if x is None else x for x in values], float)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    more = sum(x is None for x in values)
    tail = f" ({more} not within {cap})" if more else ""
    return f"{med:.0f} [{q1:.0f}, {q3:.0f}]{tail}"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--common", type=float, default=0.01)
    ap.add_argument("--rare", type=float, default=0.001)
    ap.add_argument("--tau", type=float, default=0.005)
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--budget", type=int, default=4000)
    ap.add_argument("--lc-budget", type=int, default=600)
    a = ap.parse_args(argv)
    print(f"pool {a.n} crops, tau {a.tau}, delta {a.delta}, batch {a.batch}, "
          f"{a.seeds} seeds; median [IQR]\n")
    print(f"| policy | labels to confirm {a.common:.1%} | labels to find 10 | "
          f"{a.rare:.1%} certified rare | labels to certify |")
    print("|---|---|---|---|---|")
    for pol in ("guided", "random", "least_confidence"):
        budget = a.budget if pol != "least_confidence" else a.lc_budget
        conf, find, cert, cert_n = [], [], 0, []
        for s in range(a.seeds):
            X, y, ex = pool(a.n, a.common, s)
            r = simulate_search(X, y, [ex], policy=pol, tau=a.tau, delta=a.delta,
                                batch=a.batch, max_labels=budget, seed=s,
                                stop_at_decision=True)
            conf.append(r["labels_to_decision"] if r["decision"] == "confirmed_common"
                        else None)
            find.append(first_positives(r["history"]))
            if pol == "least_confidence":
                continue
            X, y, ex = pool(a.n, a.rare, s + 1000)
            r = simulate_search(X, y, [ex], policy=pol, tau=a.tau, delta=a.delta,
                                batch=a.batch, max_labels=budget, seed=s)
            cert += r["decision"] == "certified_rare"
            cert_n.append(r["labels_to_decision"] if r["decision"] == "certified_rare"
                          else None)
        rare = ("no valid interval", "-") if pol == "least_confidence" else \
            (f"{cert}/{a.seeds}", summary(cert_n, budget))
        c = "no valid interval" if pol == "least_confidence" else summary(conf, budget)
        print(f"| {pol} | {c} | {summary(find, budget)} | {rare[0]} | {rare[1]} |",
              flush=True)


if __name__ == "__main__":
    main()
