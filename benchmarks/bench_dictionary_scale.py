"""Time and memory of the concepts step's streaming passes at screen scale, beside scikit-learn.

``python benchmarks/bench_dictionary.py --scale`` (this module does the work) writes a
synthetic screen to chunked Zarr on disk (``--sizes`` rows x ``--dims`` features, float32,
10 % controls; a strong low-rank nuisance shared by every row, and perturbed rows moved
along sparse combinations of planted directions), fits one ICFL dictionary on a 20,000-row
whitened sample, and then measures, for every size, rows interleaved:

* fitting the control whitener: ours streams the control rows of each Zarr chunk
  (:func:`workbench.tools.concept_stream.fit_whitener`); the peer gathers the controls and
  fits scikit-learn's ``PCA(whiten=True)``;
* encoding every row with the fitted dictionary: ours whitens and encodes chunk by chunk
  (:func:`~workbench.tools.concept_stream.encode_chunked`, the paper's signed pursuit, k
  nonzeros); the peer is scikit-learn's ``sparse_encode`` (OMP, the same k) on the same
  whitened rows. OMP loops over samples in Python (about 6 ms a row under load here), so
  it encodes the first ``--peer-rows`` rows in memory and its time is scaled linearly to
  all rows; the table says so in each such row.

Each measurement runs in a fresh process; its memory figure is the peak resident set size
(sampled every 5 ms from ``/proc/self/statm``) above the size after imports and loading
the model, so it counts numpy, torch and scikit-learn allocations alike. One BLAS/torch
thread for both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHASES = ("whiten_ours", "whiten_sklearn", "encode_ours", "encode_sklearn")


def _rss_mib() -> float:
    """This process's current resident set size (Linux ``/proc/self/statm``), MiB."""
    import os

    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakRSS:
    """Samples the resident set size every 5 ms in a thread; ``peak`` is the largest seen."""

    def __enter__(self):
        import threading

        self.peak = _rss_mib()
        self._stop = threading.Event()

        def watch():
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, _rss_mib())

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def write_store(folder: Path, n: int, d: int, *, chunk: int, seed: int = 0) -> None:
    """A synthetic screen of ``n x d`` float32 rows in chunked Zarr, written chunk by chunk."""
    import zarr

    rng = np.random.default_rng(seed)
    nuisance = rng.normal(size=(16, d)) * 3.0
    programs = rng.normal(size=(64, d))
    programs /= np.linalg.norm(programs, axis=1, keepdims=True)
    z = zarr.create_array(folder / f"x_{n}.zarr", shape=(n, d), chunks=(chunk, d),
                          dtype="float32", overwrite=True)
    ctrl = rng.random(n) < 0.1
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        blk = rng.normal(size=(b - a, 16)) @ nuisance + 0.5 * rng.normal(size=(b - a, d))
        hit = ~ctrl[a:b]
        support = np.argpartition(rng.random((hit.sum(), 64)), 3, axis=1)[:, :3]
        coef = rng.uniform(1.0, 3.0, size=support.shape)
        blk[hit] += np.einsum("nk,nkd->nd", coef, programs[support])
        z[a:b] = blk.astype(np.float32)
    np.save(folder / f"ctrl_{n}.npy", ctrl)


def fit_model(folder: Path, n: int, *, atoms: int, k: int, steps: int) -> None:
    """One ICFL dictionary (signed pursuit, exactly ``k``) fitted on 20,000 whitened rows."""
    import zarr

    from workbench.models.icfl import ICFL
    from workbench.tools.concept_stream import fit_whitener

    z = zarr.open_array(folder / f"x_{n}.zarr", mode="r")
    ctrl = np.load(folder / f"ctrl_{n}.npy")
    m = min(20_000, n)
    wh = fit_whitener(z[:m], ctrl[:m])
    model = ICFL(atoms, n_nonzero=k, atoms_per_round=min(5, k), pursuit="signed",
                 max_steps=steps, batch_size=1024, lr=3e-3, device="cpu", seed=0,
                 progress=False).fit(wh.transform(z[:m]))
    arrays = model.state_arrays()
    np.savez(folder / "model.npz", **arrays)
    params = {k2: v for k2, v in model.get_params().items() if k2 not in ("device", "progress")}
    (folder / "model.json").write_text(json.dumps(params))


def _load_model(folder: Path):
    from workbench.models.icfl import ICFL

    params = json.loads((folder / "model.json").read_text())
    arrays = dict(np.load(folder / "model.npz"))
    return ICFL.from_state(params, arrays, device="cpu")


def phase(name: str, folder: Path, n: int, chunk: int, peer_rows: int) -> dict:
    """Run one measurement (in this process) and return its figures."""
    import scipy.sparse as sp
    import torch
    import zarr
    from sklearn.decomposition import PCA, sparse_encode
    from threadpoolctl import threadpool_limits

    from workbench.models.dictionary import r2_score
    from workbench.tools.concept_stream import encode_chunked, fit_whitener, row_chunks

    torch.set_num_threads(1)
    z = zarr.open_array(folder / f"x_{n}.zarr", mode="r")
    ctrl = np.load(folder / f"ctrl_{n}.npy")
    model = _load_model(folder)
    wh = fit_whitener(z, ctrl, chunk_size=chunk) if name.startswith("encode") else None
    base = _rss_mib()
    out = {"phase": name, "n": n}
    with threadpool_limits(1), _PeakRSS() as rss:
        t = time.perf_counter()
        if name == "whiten_ours":
            w = fit_whitener(z, ctrl, chunk_size=chunk)
            out["detail"] = f"{w.n_controls_} controls, {len(w.eigenvalues_)} directions"
        elif name == "whiten_sklearn":
            controls = np.concatenate([blk[ctrl[a:b]] for a, b, blk in row_chunks(z, chunk)])
            pca = PCA(whiten=True).fit(controls)
            out["detail"] = f"{controls.shape[0]} controls, {pca.n_components_} components"
        elif name == "encode_ours":
            codes, stats = encode_chunked(model, wh, z, chunk_size=chunk)
            out["r2"] = stats["r2"]
            out["detail"] = f"{stats['n_chunks']} chunks of {chunk}, nnz {codes.nnz}"
        elif name == "encode_sklearn":
            atoms = model.components_.astype(np.float64)
            k = model.sparsity
            rows = min(n, peer_rows)
            xw = wh.transform(z[:rows])
            codes = sp.csr_matrix(sparse_encode(xw, atoms, algorithm="omp",
                                                n_nonzero_coefs=k))
            out["r2"] = r2_score(xw, codes @ atoms)
            out["rows_measured"] = rows
            # sparse_encode holds the n x M Gram products and the dense n x M codes (float64)
            out["detail"] = (f"measured on the first {rows:,} rows in memory; time scaled "
                             f"to {n:,} rows; in memory at {n:,} rows it would hold "
                             f"{2 * n * atoms.shape[0] * 8 / 2**30:.1f} GiB of n x M "
                             "float64 arrays")
        out["seconds"] = time.perf_counter() - t
        if "rows_measured" in out:
            out["seconds"] *= n / out["rows_measured"]
    out["peak_mib"] = rss.peak
    out["extra_mib"] = rss.peak - base
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--atoms", type=int, default=512)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300, help="ICFL steps for the one fit")
    ap.add_argument("--chunk", type=int, default=32768)
    ap.add_argument("--peer-rows", type=int, default=20_000,
                    help="rows scikit-learn's OMP encodes (its time is scaled to all rows: "
                         "it runs a Python-level loop per sample, hours at 1e6)")
    ap.add_argument("--store", help="folder for the Zarr stores (default: a temporary one)")
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.store), args.n, args.chunk,
                               args.peer_rows)))
        return
    import torch

    torch.set_num_threads(1)
    folder = Path(args.store or tempfile.mkdtemp(prefix="dictionary-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        t = time.perf_counter()
        write_store(folder, n, args.dims, chunk=args.chunk)
        print(f"wrote {n} x {args.dims} in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    fit_model(folder, min(args.sizes), atoms=args.atoms, k=args.k, steps=args.steps)
    print(f"fitted ICFL ({args.atoms} atoms, k={args.k}, {args.steps} steps) in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    rows = []
    for n in args.sizes:
        for name in PHASES:
            cmd = [sys.executable, __file__, "--phase", name, "--n", str(n), "--store",
                   str(folder), "--chunk", str(args.chunk), "--peer-rows", str(args.peer_rows)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    import os

    print(f"\n`python benchmarks/bench_dictionary.py --scale --sizes "
          f"{' '.join(map(str, args.sizes))}`: {args.dims} features, ICFL {args.atoms} atoms, "
          f"k = {args.k}, chunks of {args.chunk} rows, 1 thread, CPU, load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    names = {"whiten_ours": "fit control whitener: ours, streamed from Zarr",
             "whiten_sklearn": "fit control whitener: scikit-learn PCA(whiten=True) on "
                               "the gathered controls",
             "encode_ours": "encode all rows: ours (whiten + signed pursuit, by chunks)",
             "encode_sklearn": "encode all rows: scikit-learn sparse_encode (OMP, same k)"}
    print("| rows | step | time (s) | peak RSS above baseline (MiB) | process peak RSS "
          "(MiB) | R2 | detail |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        r2 = f"{r['r2']:.4f}" if "r2" in r else ""
        print(f"| {r['n']:,} | {names[r['phase']]} | {r['seconds']:.1f} | "
              f"{r['extra_mib']:.0f} | {r['peak_mib']:.0f} | {r2} | {r.get('detail', '')} |")


if __name__ == "__main__":
    main()
