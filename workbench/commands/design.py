"""``workbench design screen|hits STUDY ...``: what to measure next, with reasons.

``design screen`` proposes the candidates to measure so that the rest can be predicted, and
reports the certified lower bound on the accuracy of the measured-plus-predicted table once
a proposed batch has come back labelled. ``design hits`` proposes the next candidates to
screen to find hits. ``design knockout`` proposes the next gene knock-outs for the GRN, by
expected information gain about the graph. All write the ``design_plan`` artefact.
"""

from __future__ import annotations

HELP = ("propose what to measure next (screen planner with a certified stop, hit designer, "
        "or the next GRN knock-outs)")


def add_arguments(parser) -> None:
    """Declare the ``workbench design`` planners (``screen``, ``hits``, ``knockout``) and their arguments.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
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
    from workbench.tools.design.knockout import KNOCKOUT_POLICIES

    p = sub.add_parser("knockout", help="next knock-outs for the GRN (expected information gain)")
    p.add_argument("study", help="path of the NAME.study folder (after `workbench grn`)")
    p.add_argument("--budget", type=int, default=2, help="knock-outs to propose (>= 1)")
    p.add_argument("--policy", default="eig", choices=KNOCKOUT_POLICIES)
    p.add_argument("--cells", type=int, default=50,
                   help="cells measured per knock-out (sets the noise of its response)")
    p.add_argument("--candidates", default=None,
                   help="comma-separated genes that may be knocked out (default: all)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    """Run the chosen planner on a Study and print the proposed candidates.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the proposal is printed.
    """
    import pandas as pd

    from workbench.data.study import Study
    from workbench.errors import ValidationError
    from workbench.tools.design import propose

    if args.budget < 1:
        raise ValidationError(f"budget {args.budget} asks for nothing: it must be at least 1.",
                              "give --budget N with N >= 1.")
    study = Study.open(args.study)
    if args.planner == "knockout":
        return _knockout(study, args)
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


def _knockout(study, args) -> int:
    from workbench.tools.design import propose

    cand = [c.strip() for c in args.candidates.split(",") if c.strip()] \
        if args.candidates else None
    batch = propose(study, args.budget, args.policy, kind="knockout", seed=args.seed,
                    cells_per_knockout=args.cells, candidates=cand)
    info = batch.info
    verdict = ("stop: no batch is expected to teach much more" if info["stop"]
               else "knock out the batch, add its cells and refit the GRN")
    print(f"knock-out planner, policy {batch.policy}: {info['n_candidates']} candidate genes, "
          f"posterior mean edge entropy {info['entropy']:.3f} nats")
    print(f"expected information gain of the batch: {info['batch_gain']:.3f} nats: {verdict}")
    print(f"next {len(batch.table)}:")
    for _, r in batch.table.iterrows():
        print(f"  {int(r['rank']):>3}. {r.candidate:<10} {r.reason}")
    return 0
