"""``.. workbench-cli::``: the command-line reference, generated from the parser itself.

Each subcommand of :func:`workbench.cli.build_parser` becomes a section with its
description and its ``--help`` text, so the page cannot drift from the code.
"""

from __future__ import annotations

import argparse
import functools

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _help(parser: argparse.ArgumentParser) -> str:
    """The parser's help at a fixed width (not the terminal's), so builds agree."""
    cls = parser.formatter_class
    parser.formatter_class = functools.partial(cls, width=92)
    try:
        return parser.format_help()
    finally:
        parser.formatter_class = cls


def _block(parser: argparse.ArgumentParser) -> list[str]:
    return [".. code-block:: text", ""] + ["    " + ln for ln in _help(parser).splitlines()] + [""]


class WorkbenchCli(SphinxDirective):
    has_content = False

    def run(self):
        from workbench.cli import build_parser

        parser = build_parser()
        parser.prog = "workbench"
        lines = ["Usage", "-----", ""] + _block(parser)
        for name, sub in _subparsers(parser):
            title = f"workbench {name}"
            lines += [title, "-" * len(title), ""] + _block(sub)
            for sub_name, subsub in _subparsers(sub):
                t2 = f"workbench {name} {sub_name}"
                lines += [t2, "~" * len(t2), ""] + _block(subsub)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="workbench-cli"), node)
        return node.children


def setup(app):
    app.add_directive("workbench-cli", WorkbenchCli)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
