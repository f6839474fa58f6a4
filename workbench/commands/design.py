"""``workbench design screen|hits STUDY ...``: what to measure next, with reasons.

``design screen`` proposes the candidates to measure so that the rest can be predicted, and
reports the certified lower bound on the accuracy of the measured-plus-predicted table once
a proposed batch has come back labelled. ``design hits`` proposes the next candidates to
screen to find hits. Both write the ``design_plan`` artefact.
"""

from __future__ import annotations

HELP = "propose what to measure next (screen planner with a certified stop, or hit designer)"


def add_arguments(parser) -> None:
    from workbench.tools.design.hits import HIT_POLICIES
    from workbench.tools.design.screen import SCREEN_POLICIES

    sub = parser.add_subparsers(dest="planner", metavar="PLANNER", required=True)
    for name, policies, default, what in (
            ("screen", SCREEN_POLICIES, "hardest", "label of each measured candidate"),
            ("hits", HIT_POLICIES, "ucb", "phenotype value of each measured candidate")):
        p = sub.add_parser(name, help=f"{name} planner")
        p.add_argument("study", help="path of the NAME.study folder")
        p.add_argument("--labels", default=None,
                       help=f"CSV/TSV/Parquet with a 'perturbation' column and the {what} "
                            "(leave the value empty for candidates not measured yet)")
        p.add_argument("--column", default="label" if name == "screen" else "value",
                       help="column of the labels table to use")
        p.add_argument("--budget", type=int, default=10, help="candidates to propose (>= 1)")
        p.add_argument("--policy", default=default, choices=policies)
        p.add_argument("--seed", type=int, default=0)
        if name == "screen":
            p.add_argument("--gamma", type=float, default=0.9,
                           help="target accuracy of the measured-plus-predicted table")
            p.add_argument("--delta", type=float, default=0.05,
                           help="allowed probability that the certified bound is wrong")
        else:
            p.add_argument("--prior", default=None,
                           help="CSV with 'perturbation' and 'score' (your ranked list; "
                                "needed by policy prior_nn)")


def run(args) -> int:
    import pandas as pd

    from workbench.data.study import Study
    from workbench.errors import ValidationError
    from workbench.tools.design import propose

    if args.budget < 1:
        raise ValidationError(f"budget {args.budget} asks for nothing: it must be at least 1.",
                              "give --budget N with N >= 1.")
    study = Study.open(args.study)
    kw = {}
    if args.planner == "screen":
        kw.update(gamma=args.gamma, delta=args.delta)
    elif args.prior:
        prior = pd.read_csv(args.prior, sep=None, engine="python")
        kw["prior"] = prior.set_index("perturbation")["score"]
    batch = propose(study, args.budget, args.policy, kind=args.planner, labels=args.labels,
                    column=args.column, seed=args.seed, **kw)
    info = batch.info
    print(f"{args.planner} planner, policy {batch.policy}: {info['n_measured']} of "
          f"{info['n_candidates']} candidates measured")
    if args.planner == "screen":
        if info.get("batch_size"):
            verdict = "stop: the rest can be taken as predicted" if info["stop"] else \
                "continue measuring"
            print(f"last batch: {info['batch_correct']}/{info['batch_size']} predicted right; "
                  f"certified system accuracy >= {info['bound']:.3f} with probability "
                  f"{1 - info['delta']:.2f} (target {info['gamma']}): {verdict}")
        else:
            print("no certificate yet: measure the proposed batch, add its labels and run again")
    print(f"next {len(batch.table)}:")
    for _, r in batch.table.iterrows():
        print(f"  {int(r['rank']):>3}. {r.candidate:<20} {r.reason}")
    return 0
