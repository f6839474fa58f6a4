"""``workbench plan-pairs STUDY --budget N``: propose the next double perturbations."""

from __future__ import annotations

HELP = ("propose the next N double perturbations to run, each with its predicted value, "
        "interval and reason")


def _planners():
    from workbench.tools.campaign import PLANNERS

    return ["auto", *[p for p in PLANNERS if p != "auto"]]


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench plan-pairs``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--budget", type=int, default=10,
                        help="pairs to propose (at least 1, at most the untested pairs)")
    parser.add_argument("--planner", default="auto", choices=_planners(),
                        help="auto: the rule, the exchangeable model or their rank average, "
                             "whichever ranks held-out measured pairs best")
    parser.add_argument("--test", default="disjointness", help="which test's values to model")
    parser.add_argument("--value", default="effect_size", help="column of 'interactions' to model")
    parser.add_argument("--use", default=None, help="profiles matrix for the side information")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="dask.distributed scheduler address: the models score the "
                             "candidate pairs on its workers (same result as a local run)")
    parser.add_argument("--chunk-size", type=int, default=8192,
                        help="candidate pairs scored per chunk (per task with --scheduler)")


def run(args) -> int:
    """Propose the next double perturbations of a Study and print them.

    A budget below 1 is refused before the Study is opened. Each proposed pair is printed with
    its rank, predicted value, 90% interval (when the planner gives one) and reason.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the proposals are written and printed.
    """
    import numpy as np

    from workbench.data.study import Study
    from workbench.tools.pair_planning import check_budget, plan_pairs

    if args.budget < 1:
        check_budget(args.budget, 0)  # a clear error before the Study is touched
    study = Study.open(args.study)
    out = plan_pairs(study, budget=args.budget, planner=args.planner, test=args.test,
                     value=args.value, use=args.use, seed=args.seed, device=args.device,
                     scheduler=args.scheduler, chunk_size=args.chunk_size)
    prop = out[out.status == "proposed"]
    print(f"planner: {prop.planner.iloc[0]} ({prop.planner_reason.iloc[0]})")
    print(f"next {len(prop)} pairs, predicted {args.value} [90% interval]:")
    for _, r in prop.iterrows():
        if np.isfinite(r.predicted):
            pred = f"{r.predicted:.3g}"
            pred += (f" [{r.predicted_low:.3g}, {r.predicted_high:.3g}]"
                     if np.isfinite(r.predicted_low) else " [no interval]")
        else:
            pred = "no prediction"
        print(f"  {int(r['rank']):>3}. {r.pair:<20} {pred}  {r.reason}")
    return 0
