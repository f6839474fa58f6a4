"""Benchmark: disjointness test on all 1,225 pairs of 50 genes, batched torch vs a NumPy loop.

Both compute the same statistic (unbiased D over quadruples, additive per-coordinate RBF
kernel, the same sign-flip permutations); the peer loops over pairs in Python and
vectorises over permutations with NumPy, as a careful user would write it. Each runs in its
own child process so that peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_interactions.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np


def make_data(n_genes=50, n=20, d=16, seed=0):
    rng = np.random.default_rng(seed)
    n_pairs = n_genes * (n_genes - 1) // 2
    return [rng.normal(size=(n_pairs, n, d)).astype(np.float32) for _ in range(4)]


def ours(data, perms, out):
    from workbench.models.interaction_tests import disjointness_test

    t = time.perf_counter()
    r = disjointness_test(*data, n_permutations=perms, seed=0, device="auto")
    out.put((time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             r.statistic[:5].tolist(), r.params["device"]))


def numpy_loop(data, perms, out, max_pairs=None):
    from workbench.models.interaction_tests import median_bandwidths

    ctrl, a, b, ab = data
    n_pairs, n, d = ctrl.shape
    t = time.perf_counter()
    sig = median_bandwidths(ctrl.reshape(-1, d), np.eye(d, dtype=np.float32))
    t_bw = time.perf_counter() - t
    gen = np.random.default_rng(0)
    eps = gen.integers(0, 2, size=(perms, n)) * 2.0 - 1
    sign = np.repeat([1.0, 1.0, -1.0, -1.0], n)
    todo = n_pairs if max_pairs is None else min(max_pairs, n_pairs)
    t = time.perf_counter()
    stats = []
    for p in range(todo):
        z = np.concatenate([ab[p], ctrl[p], a[p], b[p]])
        k = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2) / (2 * sig)).mean(-1)
        k = k * sign[:, None] * sign[None, :]
        h = k.reshape(4, n, 4, n).sum((0, 2))
        np.fill_diagonal(h, 0.0)
        obs = h.sum() / (n * (n - 1))
        null = np.einsum("bi,ij,bj->b", eps, h, eps) / (n * (n - 1))
        stats.append(obs)
        _ = (1 + (null >= obs).sum()) / (1 + perms)
    el = (time.perf_counter() - t) * n_pairs / todo + t_bw
    out.put((el, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, stats[:5], "cpu numpy"))


def run(fn, *args):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=fn, args=(*args, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 genes (45 pairs), 200 permutations")
    args = ap.parse_args()
    genes, perms = (10, 200) if args.quick else (50, 1000)
    data = make_data(genes)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_o, m_o, s_o, dev = run(ours, data, perms)
    t_n, m_n, s_n, _ = run(numpy_loop, data, perms)
    assert np.allclose(s_o, s_n, rtol=1e-3, atol=1e-5), (s_o, s_n)
    n_pairs = len(data[0])
    print(f"pairs {n_pairs}, permutations {perms}, n=20 per condition, d=16, "
          f"additive RBF kernel (parent RSS {base_rss / 1024:.0f} MiB)\n")
    print("| method | device | time (s) | peak RSS (MiB) | speed-up |")
    print("|---|---|---|---|---|")
    print(f"| workbench disjointness_test (batched torch) | {dev} | {t_o:.2f} | {m_o / 1024:.0f} | {t_n / t_o:.1f}x |")
    print(f"| per-pair NumPy loop | cpu | {t_n:.2f} | {m_n / 1024:.0f} | 1.0x |")


if __name__ == "__main__":
    main()
