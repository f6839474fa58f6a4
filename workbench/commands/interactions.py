"""``workbench interactions STUDY``: test every double perturbation against its singles."""

from __future__ import annotations

HELP = "test every double perturbation (disjointness and separability) and write 'interactions'"


def add_arguments(parser) -> None:
    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--use", default=None,
                        help="profiles matrix: 'X' (default), an obsm key, or 'latent' (demo)")
    parser.add_argument("--tests", default="disjointness,separability",
                        help="comma-separated: disjointness, separability")
    parser.add_argument("--kernel", default="additive_rbf",
                        choices=["additive_rbf", "linear", "rbf"])
    parser.add_argument("--separability", default="gaussian", choices=["gaussian", "classifier"],
                        help="separability estimator: 'gaussian' (calibrated p-values) or "
                             "'classifier' (graded score, no p-value)")
    parser.add_argument("--permutations", type=int, default=1000,
                        help="permutations (disjointness) and null data sets (separability)")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--min-samples", type=int, default=5)
    parser.add_argument("--skip-small", action="store_true",
                        help="keep pairs with too few samples as rows instead of failing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    from workbench.data.study import Study
    from workbench.tools.interactions import run_interactions

    study = Study.open(args.study)
    table = run_interactions(
        study, use=args.use, tests=tuple(t.strip() for t in args.tests.split(",") if t.strip()),
        kernel=args.kernel, n_permutations=args.permutations, n_bootstrap=args.bootstrap,
        min_samples=args.min_samples, on_small="skip" if args.skip_small else "error",
        seed=args.seed, device=args.device, separability=args.separability)
    tested = table[table.q.notna()]
    print(f"tested {tested.pair.nunique()} pairs; q < 0.05:")
    for test, g in tested.groupby("test"):
        hits = g[g.q < 0.05].sort_values("q")
        print(f"  {test}: {len(hits)}  {', '.join(hits.pair.head(10))}")
    return 0
