"""The ``workbench`` command line.

Each subcommand lives in its own module under :mod:`workbench.commands` with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Errors of our own
(:class:`~workbench.errors.WorkbenchError`) print as a short message with the fix, not a
traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import keyword
import sys

#: Subcommands in the order ``workbench --help`` lists them. A module that is not present
#: in this installation is skipped.
COMMANDS = [
    "demo", "import", "info", "validate", "embed", "benchmark", "concepts",
    "interactions", "plan-pairs", "grn", "serve", "napari",
    "design", "find",
]


def module_name(command: str) -> str:
    """``plan-pairs`` -> ``workbench.commands.plan_pairs``; ``import`` -> ``...import_``.

    Parameters
    ----------
    command : str
        The subcommand as typed on the command line (dashes allowed).

    Returns
    -------
    str
        The dotted name of the module that implements it; a Python keyword gets a trailing
        underscore.
    """
    name = command.replace("-", "_")
    return f"workbench.commands.{name}_" if keyword.iskeyword(name) else f"workbench.commands.{name}"


def _module(name: str):
    try:
        return importlib.import_module(module_name(name))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("workbench.commands"):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` argument parser, one subparser per installed subcommand.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subparser's defaults carry ``_run``, the command's ``run`` function.
    """
    from workbench import __version__

    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Perturbation screens from images to hypotheses: embeddings, concepts, "
                    "pairwise interactions and GRN posteriors in one Study folder.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _module(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``workbench`` command line and return its exit status.

    Parameters
    ----------
    argv : list of str or None
        The arguments after the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        0 on success (or the command's own status), 1 when no subcommand was given (the help
        is printed), 2 for an error of our own (printed with its fix, unless ``--debug``),
        130 when interrupted.
    """
    from workbench.errors import WorkbenchError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except WorkbenchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: completed work is kept; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
