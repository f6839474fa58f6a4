"""``workbench validate STUDY``: the deep checks of the Study contract."""

from __future__ import annotations

HELP = "check a Study deeply: files readable, screen columns, finite embeddings"


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench validate``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="path of the NAME.study folder")


def run(args) -> int:
    """Open a Study, validate every artefact deeply and print a one-line verdict.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 when the Study is valid (an invalid one raises an error of our own).
    """
    from workbench.data.study import Study

    study = Study.open(args.study)
    study.validate(deep=True)
    print(f"{study.path}: valid ({len(study.artefacts)} artefact(s), "
          f"{len(study.provenance)} step(s) of provenance)")
    return 0
