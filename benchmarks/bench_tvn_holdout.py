"""Control-null consistency after TVN, with the null's control wells inside or held out of
the TVN fit (``workbench.tools.efaar_benchmarks.held_out_tvn_consistency``).

The profile table goes through the real steps (``workbench import profiles``, then
``workbench embed``, which TVN-normalises a Study of precomputed profiles on its controls),
then the check runs over ``--splits`` random halvings of the control wells.

Usage::

    python benchmarks/bench_tvn_holdout.py [--table PROFILES.csv.gz] [--control DMSO]
        [--splits 10] [--n-perm 1000]

By default the table is the LINCS plate SQ00015054 from the shared data folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT = (Path(__file__).resolve().parents[1].parent / "shared" / "data"
           / "lincs_cellpainting_profiles" / "SQ00015054_normalized_feature_select.csv.gz")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(DEFAULT))
    ap.add_argument("--control", default="DMSO")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--n-perm", type=int, default=1000)
    args = ap.parse_args(argv)
    if not Path(args.table).exists():
        print(f"no profile table at {args.table}; pass --table", file=sys.stderr)
        return 2
    from workbench.cli import main as cli
    from workbench.data.study import Study
    from workbench.tools.map_benchmarks import held_out_tvn_check

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "p.study")
        assert cli(["import", "profiles", args.table, "--out", path,
                    "--control", args.control]) == 0
        assert cli(["embed", path, "--layout", "pca"]) == 0
        prof = Study.open(path).read("profiles")
        t0 = time.perf_counter()
        res = held_out_tvn_check(prof, args.control, n_perm=args.n_perm, n_splits=args.splits)
        seconds = time.perf_counter() - t0
    if "skipped" in res:
        print(f"skipped: {res['skipped']}")
        return 1
    print(f"{prof.n_obs} profiles x {prof.obsm[res['source']].shape[1]} features; "
          f"{res['n_fit_wells']} control wells fit TVN, {res['n_null_wells']} form the null; "
          f"{args.splits} splits, {seconds:.0f} s")
    print("| null | TVN fitted on | fraction q < 0.05: median [min, max] | KS: median "
          "[min, max] | null mean cosine (median) |")
    print("|---|---|---|---|---|")
    fitted = {"in_sample": "every control well", "in_sample_half": "half A",
              "held_out": "half A"}
    null = {"in_sample": "half B (inside the fit)", "in_sample_half": "half A (inside the fit)",
            "held_out": "half B (held out)"}
    for side in ("in_sample", "in_sample_half", "held_out"):
        r = res[side]
        f, k = np.asarray(r["fraction_q05_per_split"]), np.asarray(r["ks_per_split"])
        print(f"| {null[side]} | {fitted[side]} | {np.median(f):.2f} [{f.min():.2f}, "
              f"{f.max():.2f}] | {np.median(k):.2f} [{k.min():.2f}, {k.max():.2f}] | "
              f"{r['null_mean_cosine']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
