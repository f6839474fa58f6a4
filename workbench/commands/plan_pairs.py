"""``workbench plan-pairs STUDY --budget N``: propose the next double perturbations."""

from __future__ import annotations

HELP = "propose the next N double perturbations to run (Bayesian low-rank model, IDS)"


def add_arguments(parser) -> None:
    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--budget", type=int, default=10, help="pairs to propose")
    parser.add_argument("--acquisition", default="ids",
                        choices=["ids", "thompson", "ucb", "greedy", "random"])
    parser.add_argument("--test", default="disjointness", help="which test's values to model")
    parser.add_argument("--value", default="effect_size", help="column of 'interactions' to model")
    parser.add_argument("--use", default=None, help="profiles matrix for the side information")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args) -> int:
    from workbench.data.study import Study
    from workbench.tools.interactions import plan_pairs

    study = Study.open(args.study)
    out = plan_pairs(study, budget=args.budget, acquisition=args.acquisition, test=args.test,
                     value=args.value, use=args.use, seed=args.seed, device=args.device)
    prop = out[out.status == "proposed"]
    print(f"next {len(prop)} pairs ({args.acquisition}):")
    for _, r in prop.iterrows():
        print(f"  {int(r['rank']):>3}. {r.pair:<20} predicted {r.posterior_mean:.3f} "
              f"+- {r.posterior_sd:.3f}")
    return 0
