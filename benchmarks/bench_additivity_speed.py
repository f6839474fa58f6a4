"""Benchmark: the additivity test on all 1,225 pairs of 50 genes, batched vs a NumPy loop.

Both compute the same statistic, the Mahalanobis norm ``Q`` of the well-level interaction
contrast with shrunken cell covariances and a method-of-moments well covariance
(:mod:`workbench.models.additivity`), and the same parametric bootstrap null (Wishart
redraws of the cell and well covariances, a Gaussian contrast), ``--bootstrap`` draws per
pair:

- **workbench** ``additivity_test``: pairs in chunks, every bootstrap draw of every pair of
  a chunk as one batched torch computation;
- **per-pair NumPy loop, bootstrap vectorised (the peer)**: what a careful user writes: a
  loop over pairs, all bootstrap draws of a pair at once (batched ``np.linalg.solve``).

The two draw their random numbers in a different order, so the statistics must agree to
rounding and the p-values within Monte Carlo error (the script checks both). Each method
runs in its own freshly spawned process on one thread, so its peak resident memory is its
own; the peer never imports torch.

    python benchmarks/bench_additivity_speed.py [--genes 50] [--bootstrap 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

CELLS, WELLS, DIM = 20, 2, 16
MAX_DF = 128


def make_data(n_genes: int, seed: int = 0):
    """Cells of the controls, every single and every double, two wells each, with a well
    effect (sd a third of the cell sd) and a tenth of the doubles interacting."""
    rng = np.random.default_rng(seed)

    def cond(shift):
        wells = rng.normal(0, 1 / 3, (WELLS, DIM))
        x = shift + np.repeat(wells, CELLS, 0) + rng.normal(size=(WELLS * CELLS, DIM))
        return x.astype(np.float64), np.repeat(np.arange(WELLS), CELLS)

    ctrl = cond(0.0)
    eff = rng.normal(0, 0.5, (n_genes, DIM))
    singles = [cond(eff[g]) for g in range(n_genes)]
    groups, units = [], []
    k = 0
    n_pairs = n_genes * (n_genes - 1) // 2
    for i in range(n_genes):
        for j in range(i + 1, n_genes):
            extra = np.r_[1.5, np.zeros(DIM - 1)] if k < n_pairs // 10 else 0.0
            ab = cond(eff[i] + eff[j] + extra)
            groups.append({"ctrl": ctrl[0], "a": singles[i][0], "b": singles[j][0],
                           "ab": ab[0]})
            units.append({"ctrl": ctrl[1], "a": singles[i][1], "b": singles[j][1],
                          "ab": ab[1]})
            k += 1
    return groups, units


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ours(n_genes, b, out):
    import torch

    from workbench.models.additivity import additivity_test

    torch.set_num_threads(1)
    groups, units = make_data(n_genes)
    base = _rss_mib()
    t = time.perf_counter()
    r = additivity_test(groups, units, n_bootstrap=b, seed=0, device="cpu")
    out.put({"time": time.perf_counter() - t, "rss": _rss_mib(), "base": base,
             "stat": r.statistic, "p": r.p_value})


def _summ(x, u):
    keys, inv = np.unique(u, return_inverse=True)
    m = np.bincount(inv).astype(float)
    means = np.zeros((len(keys), x.shape[1]))
    np.add.at(means, inv, x)
    means /= m[:, None]
    resid = x - means[inv]
    return {"means": means, "m": m, "scatter": resid.T @ resid, "nu": len(x) - len(keys)}


def _shrink(s, nu):
    lam = s.shape[0] / (s.shape[0] + max(nu, 1))
    return (1 - lam) * s + lam * np.diag(np.diag(s)), lam


def _wishart(chol, df, b, rng, cap):
    k = int(min(cap, df))
    z = rng.standard_normal((b, k, chol.shape[0])) @ chol.T
    return np.einsum("bkd,bke->bde", z, z) / k


def numpy_loop(n_genes, b, out):
    groups, units = make_data(n_genes)
    base = _rss_mib()
    t = time.perf_counter()
    rng = np.random.default_rng(1)
    ctrl = np.concatenate([g["ctrl"] for g in groups[:1]])
    scale = 1.0 / ctrl.std(0)
    cache, rows = {}, []
    for g, u in zip(groups, units):
        row = {}
        for c in ("ab", "ctrl", "a", "b"):
            key = id(g[c])
            if key not in cache:
                cache[key] = _summ(g[c] * scale, u[c])
            row[c] = cache[key]
        rows.append(row)
    uniq = list(cache.values())
    nu_all = sum(s["nu"] for s in uniq)
    pooled = sum(s["scatter"] for s in uniq) / nu_all
    num, df_t = np.zeros((DIM, DIM)), 0
    for s in uniq:
        if len(s["m"]) >= 2:
            c = s["scatter"] / s["nu"] if s["nu"] >= 3 else pooled
            r = s["means"] - s["means"].mean(0)
            num += r.T @ r - (1 - 1 / len(s["m"])) * c * (1.0 / s["m"]).sum()
            df_t += len(s["m"]) - 1
    w, v = np.linalg.eigh(num / df_t)
    t_hat = (v * np.clip(w, 0, None)) @ v.T
    t_chol = np.linalg.cholesky(t_hat + 1e-9 * np.eye(DIM))
    sign = {"ab": 1.0, "ctrl": 1.0, "a": -1.0, "b": -1.0}
    stat, pval = np.zeros(len(rows)), np.zeros(len(rows))
    for k, row in enumerate(rows):
        delta = sum(sign[c] * row[c]["means"].mean(0) for c in sign)
        cov = np.zeros((DIM, DIM))
        covstar = np.zeros((b, DIM, DIM))
        kt = 0.0
        for c in sign:
            s = row[c]
            cc, lam = _shrink(s["scatter"] / s["nu"], s["nu"])
            hw = (1.0 / s["m"]).sum() / len(s["m"]) ** 2
            kt += 1.0 / len(s["m"])
            cov += hw * cc
            cs = _wishart(np.linalg.cholesky(cc), s["nu"], b, rng, MAX_DF)
            diag = np.einsum("bii->bi", cs)
            covstar += hw * ((1 - lam) * cs + lam * np.einsum("bi,ij->bij", diag, np.eye(DIM)))
        cov += kt * t_hat
        covstar += kt * _wishart(t_chol, df_t, b, rng, 4 * MAX_DF)
        q = float(delta @ np.linalg.solve(cov, delta))
        e = rng.standard_normal((b, DIM)) @ np.linalg.cholesky(cov).T
        qn = np.einsum("bd,bd->b", e, np.linalg.solve(covstar, e[..., None])[..., 0])
        stat[k] = q
        pval[k] = (1 + (qn >= q * (1 - 1e-9)).sum()) / (1 + b)
    out.put({"time": time.perf_counter() - t, "rss": _rss_mib(), "base": base,
             "stat": stat, "p": pval})


def run(fn, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genes", type=int, default=50)
    ap.add_argument("--bootstrap", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3, help="rows interleaved, median shown")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    n_pairs = args.genes * (args.genes - 1) // 2
    times = {"ours": [], "peer": []}
    last = {}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):      # interleaved, so that load drift hits both alike
        last["ours"] = run(ours, args.genes, args.bootstrap)
        times["ours"].append(last["ours"]["time"])
        last["peer"] = run(numpy_loop, args.genes, args.bootstrap)
        times["peer"].append(last["peer"]["time"])
    a, b = last["ours"], last["peer"]
    assert np.allclose(a["stat"], b["stat"], rtol=1e-8), "the statistics differ"
    se = np.sqrt(np.clip(a["p"] * (1 - a["p"]), 1e-4, None) / args.bootstrap)
    worst = float(np.max(np.abs(a["p"] - b["p"]) / (2 * se + 2 / args.bootstrap)))
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{n_pairs} pairs, {DIM} features, {WELLS} wells x {CELLS} cells, "
          f"{args.bootstrap} bootstrap draws; one thread each; load average at start "
          f"{load:.1f}, at end {os.getloadavg()[0]:.1f}")
    print(f"statistics equal (rtol 1e-8); p-values: max |diff| / (2 se + 2/B) = {worst:.2f}, "
          f"correlation {np.corrcoef(a['p'], b['p'])[0, 1]:.3f}")
    print("| method | time for all pairs (s), median of "
          f"{args.repeats} | each run (s) | peak RSS (MiB) | RSS after imports (MiB) | "
          "speed-up of ours |")
    print("|---|---|---|---|---|---|")
    for k, name in (("ours", "workbench additivity_test (batched torch)"),
                    ("peer", "per-pair NumPy loop, bootstrap vectorised (**the peer**)")):
        r = last[k]
        print(f"| {name} | {med[k]:.2f} | {', '.join(f'{t:.2f}' for t in times[k])} | "
              f"{r['rss']:.0f} | {r['base']:.0f} | {med[k] / med['ours']:.2f}x |")


if __name__ == "__main__":
    main()
