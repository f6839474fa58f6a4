"""Benchmark: disjointness test on all 1,225 pairs of 50 genes, batched torch vs NumPy loops.

Every method computes the same statistic (the unbiased D over quadruples, additive
per-coordinate RBF kernel, bandwidths by the median heuristic on the pooled controls) and
the same 1,000 within-quadruple swap permutations per pair; the script checks that the
statistics and p-values agree. The methods:

- **workbench** ``disjointness_test``: all pairs in chunks; per chunk the quadruple Gram
  matrices come straight from the samples (10 of the 16 condition blocks, by symmetry) and
  all permutations of all pairs are one matmul against the outer products of the sign
  vectors.
- **per-pair NumPy loop (the peer)**: what a user would write first: for each pair, the
  pooled Gram matrix once, then for each permutation relabel the samples and recompute the
  statistic from the permuted Gram matrix. On the full problem this takes minutes, so by
  default it is timed on a random subset of pairs and scaled to 1,225 (``--full-peer``
  times all of them); the table says which.
- **per-pair NumPy, vectorised permutations** (an extra, smarter peer): the same loop over
  pairs, but all permutations of a pair as one quadratic form ``eps^T H eps``.

Each method runs in its own freshly spawned process, so that its peak resident memory
(ru_maxrss) is its own; the table also gives the RSS after imports, before any work.

    python benchmarks/bench_interactions.py [--quick] [--full-peer] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

import numpy as np

N_PER_CONDITION = 20
DIM = 16


def make_data(n_genes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_pairs = n_genes * (n_genes - 1) // 2
    ctrl, a, b, ab = (rng.normal(size=(n_pairs, N_PER_CONDITION, DIM)).astype(np.float32)
                      for _ in range(4))
    ab[: n_pairs // 10, :, 0] += 1.0  # a few interacting pairs, so that p-values vary
    return ctrl, a, b, ab


def _rss_mib() -> float:
    """Peak resident memory of this process so far (VmHWM: unlike ru_maxrss it starts
    afresh at exec, so a spawned child does not inherit its parent's peak)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bandwidths_numpy(reference: np.ndarray, seed: int = 0) -> np.ndarray:
    """The median heuristic of ``workbench.models.interaction_tests.median_bandwidths``
    (per coordinate), restated here so that the NumPy peers never import torch."""
    rng = np.random.default_rng(seed)
    ref = reference
    if len(ref) > 2000:
        ref = ref[rng.choice(len(ref), 2000, replace=False)]
    m = len(ref)
    if m * (m - 1) // 2 <= 50_000:
        i, j = np.triu_indices(m, 1)
    else:
        i = rng.integers(0, m, 50_000)
        j = (i + rng.integers(1, m, 50_000)) % m
    med = np.median((ref[i] - ref[j]) ** 2, axis=0)
    med[med <= 0] = 1.0
    return (med / 2.0).astype(np.float32)


def _signs(perms: int, n: int) -> np.ndarray:
    """The permutations of ``disjointness_test`` (same torch generator stream), as numpy."""
    import torch

    gen = torch.Generator().manual_seed(0)
    eps = torch.randint(0, 2, (perms + 1, n), generator=gen).float() * 2 - 1
    return eps[1:].numpy().astype(np.float64)


def ours(n_genes, perms, threads, out):
    import torch

    from workbench.models.interaction_tests import disjointness_test

    torch.set_num_threads(threads)
    data = make_data(n_genes)
    base = _rss_mib()
    t = time.perf_counter()
    r = disjointness_test(*data, n_permutations=perms, seed=0, device="auto")
    el = time.perf_counter() - t
    out.put({"time": el, "rss": _rss_mib(), "base": base, "stat": r.statistic,
             "p": r.p_value, "device": r.params["device"], "pairs_timed": len(r.statistic)})


def numpy_loop(n_genes, perms, eps, max_pairs, vectorised, out):
    """The peers. ``vectorised`` False: relabel and recompute per permutation."""
    ctrl, a, b, ab = make_data(n_genes)
    base = _rss_mib()
    n_pairs, n, d = ctrl.shape
    t0 = time.perf_counter()
    sig = _bandwidths_numpy(ctrl.reshape(-1, d))
    t_bw = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    todo = np.arange(n_pairs) if max_pairs >= n_pairs else np.sort(
        rng.choice(n_pairs, max_pairs, replace=False))
    sign = np.repeat([1.0, 1.0, -1.0, -1.0], n)
    quad = np.arange(4 * n).reshape(4, n)  # rows: ab, ctrl, a, b; column i = quadruple i
    norm = n * (n - 1)
    stats, pvals = np.full(n_pairs, np.nan), np.full(n_pairs, np.nan)
    t0 = time.perf_counter()
    for p in todo:
        z = np.concatenate([ab[p], ctrl[p], a[p], b[p]]).astype(np.float64)
        k = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2) / (2 * sig)).mean(-1)

        def statistic(order, k=k):
            kp = k[np.ix_(order, order)] * sign[:, None] * sign[None, :]
            h = kp.reshape(4, n, 4, n).sum((0, 2))
            return (h.sum() - np.trace(h)) / norm

        obs = statistic(quad.reshape(-1))
        if vectorised:
            kk = k * sign[:, None] * sign[None, :]
            h = kk.reshape(4, n, 4, n).sum((0, 2))
            np.fill_diagonal(h, 0.0)
            null = np.einsum("bi,ij,bj->b", eps, h, eps) / norm
        else:
            null = np.empty(len(eps))
            for s, e in enumerate(eps):
                # quadruples with e = -1 swap (ab, ctrl) with (a, b)
                order = np.where(e > 0, quad, quad[[2, 3, 0, 1]])
                null[s] = statistic(order.reshape(-1))
        stats[p] = obs
        pvals[p] = (1 + (null >= obs - 1e-12).sum()) / (1 + len(eps))
    el = (time.perf_counter() - t0) * n_pairs / len(todo) + t_bw
    out.put({"time": el, "rss": _rss_mib(), "base": base, "stat": stats, "p": pvals,
             "device": "cpu (numpy)", "pairs_timed": len(todo)})


def run(fn, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    while True:
        try:
            res = q.get(timeout=5)
            break
        except Exception:  # queue.Empty: is the child still alive?
            if not p.is_alive():
                raise RuntimeError(f"{fn.__name__} died (exit code {p.exitcode})") from None
    p.join()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 genes (45 pairs), 200 permutations")
    ap.add_argument("--full-peer", action="store_true",
                    help="time the per-permutation peer on every pair (minutes)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of the batched version (default 1, like the NumPy peers)")
    args = ap.parse_args()
    genes, perms = (10, 200) if args.quick else (50, 1000)
    n_pairs = genes * (genes - 1) // 2
    eps = _signs(perms, N_PER_CONDITION)
    sub = n_pairs if (args.full_peer or args.quick) else 60
    res = {
        "workbench disjointness_test (batched torch)": run(ours, genes, perms, args.threads),
        "per-pair NumPy loop, per-permutation statistic (peer)":
            run(numpy_loop, genes, perms, eps, sub, False),
        "per-pair NumPy loop, permutations vectorised (smarter peer)":
            run(numpy_loop, genes, perms, eps, n_pairs, True),
    }
    mine = res["workbench disjointness_test (batched torch)"]
    for name, r in res.items():
        ok = np.isfinite(r["stat"])
        assert np.allclose(mine["stat"][ok], r["stat"][ok], rtol=1e-3, atol=1e-5), name
        assert np.abs(mine["p"][ok] - r["p"][ok]).max() <= 2.0 / (perms + 1), name
    print(f"{n_pairs} pairs, {perms} permutations each, n = {N_PER_CONDITION} per condition, "
          f"d = {DIM}, additive per-coordinate RBF kernel; torch threads {args.threads}, "
          f"{os.cpu_count()} CPUs; statistics and p-values agree across methods\n")
    print("| method | device | pairs timed | time for all pairs (s) | peak RSS (MiB) | "
          "RSS after imports (MiB) | batched speed-up vs this |")
    print("|---|---|---|---|---|---|---|")
    for name, r in res.items():
        timed = f"{r['pairs_timed']}" + ("" if r["pairs_timed"] == n_pairs else " (scaled)")
        print(f"| {name} | {r['device']} | {timed} | {r['time']:.2f} | {r['rss']:.0f} | "
              f"{r['base']:.0f} | {r['time'] / mine['time']:.1f}x |")


if __name__ == "__main__":
    main()
