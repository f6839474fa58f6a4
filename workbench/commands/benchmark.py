"""``workbench benchmark STUDY``: replicate consistency, relationship recall, retrieval mAP."""

from __future__ import annotations

HELP = "benchmark a Study's perturbation map (consistency, known-relationship recall, mAP)"


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench benchmark``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the Study (NAME.study)")
    parser.add_argument("--relationships", nargs="+", default=[], metavar="FILE",
                        help="EFAAR-format annotation files (entity1,entity2 CSV or cluster "
                        "TSV), in addition to the Study's own relationships")
    parser.add_argument("--label", help="perturbations.obs column for same-label retrieval "
                        "mAP (e.g. moa); default: the one the map was built with")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--no-write", action="store_true",
                        help="do not store the results in the Study")


def run(args) -> int:
    """Run the map benchmarks on a Study and print (or write) the results.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the results are printed.
    """
    import json

    from workbench.data.study import Study
    from workbench.tools.map_benchmarks import run_benchmarks, summary

    study = Study.open(args.study)
    res = run_benchmarks(study, relationships=args.relationships, label_key=args.label,
                         n_perm=args.permutations, seed=args.seed, write=not args.no_write)
    if args.json:
        print(json.dumps(res, indent=2, default=_plain))
        return 0
    for key, value in summary(res).items():
        print(f"{key:45s} {value:.4g}" if isinstance(value, float) else f"{key:45s} {value}")
    for src, r in res.get("relationship_recall", {}).items():
        base = r.get("random_baseline", {})
        if base:
            print(f"  {src}: {r['n_pairs_in_map']} pairs in map; random baseline "
                  + ", ".join(f"{k}={v:.2f}" for k, v in base.items()))
    return 0


def _plain(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
