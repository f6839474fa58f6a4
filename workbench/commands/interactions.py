"""``workbench interactions STUDY``: test every double perturbation against its singles."""

from __future__ import annotations

HELP = ("test every double perturbation (additivity, disjointness, separability score, "
        "viability, and the additivity-or-viability call) and write 'interactions'")


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench interactions``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--use", default=None,
                        help="profiles matrix: 'X' (default), an obsm key, or 'latent' (the "
                             "simulator's true states: demo truth check only)")
    parser.add_argument("--tests", default="additivity,disjointness,separability,viability",
                        help="comma-separated: additivity, disjointness, separability, "
                             "viability")
    parser.add_argument("--unit", default="well",
                        help="obs column of the replicate unit (default 'well', within its "
                             "plate); 'none' treats cells as replicates (not valid under "
                             "well effects)")
    parser.add_argument("--kernel", default="additive_rbf",
                        choices=["additive_rbf", "linear", "rbf"])
    parser.add_argument("--separability", default="classifier",
                        choices=["gaussian", "classifier"],
                        help="separability estimator with --unit none: 'classifier' (graded "
                             "score, no p-value) or 'gaussian' (p-value valid for Gaussian "
                             "latents only); with a unit it is always the graded score")
    parser.add_argument("--permutations", type=int, default=1000,
                        help="permutations (disjointness), null data sets (separability) "
                             "and bootstrap draws (additivity)")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--min-samples", type=int, default=5)
    parser.add_argument("--skip-small", action="store_true",
                        help="(the default now) keep pairs with too few cells as rows with a "
                             "status")
    parser.add_argument("--strict-small", action="store_true",
                        help="fail instead when a pair has too few cells for morphology")
    parser.add_argument("--cross-batch", default="status", choices=["status", "pool", "error"],
                        help="a double whose singles ran only in other batches: report it "
                             "untested (default), test it against those singles (batch "
                             "effects enter), or stop")
    parser.add_argument("--additivity-target", default="diagonal",
                        choices=["diagonal", "pooled"],
                        help="shrinkage target of the additivity test's cell covariances: "
                             "each condition's diagonal, or its variances joined by the "
                             "correlation pooled over the screen (more power on wide, "
                             "correlated embeddings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    """Test every double perturbation of a Study and print the hits.

    Runs :func:`workbench.tools.interactions.run_interactions`, which writes the
    ``interactions`` artefact, and prints per test the pairs with q < 0.05 and the pairs
    with the highest graded separability score.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the table is written and the summary printed.
    """
    from workbench.data.study import Study
    from workbench.tools.interactions import run_interactions

    study = Study.open(args.study)
    table = run_interactions(
        study, use=args.use, tests=tuple(t.strip() for t in args.tests.split(",") if t.strip()),
        unit=None if args.unit.lower() == "none" else args.unit,
        kernel=args.kernel, n_permutations=args.permutations, n_bootstrap=args.bootstrap,
        min_samples=args.min_samples, on_small="error" if args.strict_small else "skip",
        seed=args.seed, device=args.device, separability=args.separability,
        cross_batch=args.cross_batch, additivity_target=args.additivity_target)
    tested = table[table.q.notna()]
    print(f"tested {tested.pair.nunique()} of {table.pair.nunique()} pairs; q < 0.05:")
    for test, g in tested.groupby("test"):
        hits = g[g.q < 0.05].sort_values("q")
        print(f"  {test}: {len(hits)}  {', '.join(hits.pair.head(10))}")
    scores = table[table.test == "separability_score"].dropna(subset=["statistic"])
    if len(scores):
        top = scores.sort_values("statistic", ascending=False).pair.head(5)
        print(f"  separability (graded score, no p-value): highest {', '.join(top)}")
    return 0
