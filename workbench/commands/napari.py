"""``workbench napari STUDY``: look at a Study's crops in napari, with the Study browser docked."""

from __future__ import annotations

HELP = "open a Study in napari with the Study browser (crops by perturbation, pair, concept)"
DESCRIPTION = (
    "Open napari on a Study with the Study browser docked. Without a choice it shows "
    "controls and the first perturbations; --perturbation, --concept or --pair load that "
    "comparison grid (control, A, B and A+B side by side for a pair). --channel links napari "
    "to one dashboard session both ways (the dashboard's 'Open in napari' button passes it)."
)


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench napari``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="the NAME.study folder")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--perturbation", metavar="X", help="show the crops of perturbation X")
    choice.add_argument("--concept", metavar="K", help="show exemplars of concept K")
    choice.add_argument("--pair", metavar="A+B", help="show control, A, B and A+B")
    parser.add_argument("--channel", metavar="FILE", default=None,
                        help="selection channel of a dashboard session: follow its choices "
                             "and send napari's back")


def run(args) -> int:
    """Open napari on a Study with the Study browser docked, and run its event loop.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the napari window is closed.
    """
    from workbench.errors import WorkbenchError
    from workbench.napari._source import open_source

    source = open_source(args.study)  # fails here, before any window, on a bad folder
    source.require_images()
    try:
        import napari
    except ImportError as exc:
        raise WorkbenchError("napari is not installed.",
                             "install the napari extra: pip install 'workbench[napari]'.") from exc
    from workbench.napari import view_study

    viewer, browser = view_study(args.study, perturbation=args.perturbation,
                                 concept=args.concept, pair=args.pair, channel=args.channel)
    if browser.message.styleSheet():  # the choice failed: say why on the terminal too
        raise WorkbenchError(browser.message.text())
    napari.run()
    return 0
