"""``workbench find STUDY --exemplar CROP_ID [...] --tau 0.01``: guided phenotype search.

Draws crops around the exemplars in the Study's embedding, asks for yes/no answers (here
from a label column the data carries; in napari from a person), and reports the phenotype's
prevalence interval and whether it is confirmed common or certified rare against ``tau``.
The search is kept in the Study; running the command again continues it.
"""

from __future__ import annotations

HELP = "find more crops like an exemplar: guided search with a certified prevalence"


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench find``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    from workbench.models.guided_search import POLICIES

    parser.add_argument("study", help="path of the NAME.study folder")
    parser.add_argument("--exemplar", action="append", required=True, metavar="CROP_ID",
                        help="crop id showing the phenotype (repeat for several)")
    parser.add_argument("--tau", type=float, default=0.01,
                        help="prevalence threshold: is the phenotype above or below it?")
    parser.add_argument("--delta", type=float, default=0.05,
                        help="allowed probability that the stop decision is wrong")
    parser.add_argument("--label-column", default=None,
                        help="profiles column that answers the questions (demo, tests, "
                             "or a label the data carries)")
    parser.add_argument("--positive", default=None,
                        help="value of the label column that means 'yes' (default: the "
                             "exemplars' value)")
    parser.add_argument("--budget", type=int, default=200, help="new answers to ask for")
    parser.add_argument("--batch", type=int, default=20, help="crops per round")
    parser.add_argument("--policy", default="guided", choices=POLICIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--restart", action="store_true",
                        help="replace a kept search instead of continuing it")


def run(args) -> int:
    """Run (or continue) a guided phenotype search and print its prevalence interval and enriched perturbations.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the search state is printed.
    """
    from workbench.data.study import Study
    from workbench.tools.find import run_find

    study = Study.open(args.study)
    s = run_find(study, args.exemplar, tau=args.tau, delta=args.delta,
                 label_column=args.label_column, positive=args.positive, batch=args.batch,
                 budget=args.budget, policy=args.policy, seed=args.seed, restart=args.restart)
    lo, hi = s.interval
    n = len(s.search.state.labels)
    verdict = {"confirmed_common": f"confirmed common (lower bound > tau = {args.tau})",
               "certified_rare": f"certified rare (upper bound < tau = {args.tau})",
               "open": "open: not decided yet; run again to continue"}[s.status]
    print(f"{n} crops answered; prevalence in [{lo:.4f}, {hi:.4f}] with probability "
          f"{1 - args.delta:.2f}: {verdict}")
    enr = s.enrichment().head(5)
    if len(enr):
        print("perturbations enriched for the phenotype (Fisher, BH q):")
        for _, r in enr.iterrows():
            print(f"  {r.perturbation:<16} {int(r.n_positive):>4} of {int(r.n_crops):<5} "
                  f"q = {r.q:.3g}")
    return 0
