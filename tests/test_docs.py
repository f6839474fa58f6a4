"""The documentation builds with warnings as errors, its API page lists every public
function of the facade with its parameters, and the quickstart is the same everywhere."""

from __future__ import annotations

import html
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import workbench as wb

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FACADE = {"datasets": wb.datasets, "io": wb.io, "tl": wb.tl, "pl": wb.pl}


def _facade_functions():
    for short, mod in FACADE.items():
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not isinstance(obj, type):
                yield short, name, obj
    yield "dashboards", "show", wb.dashboards.show


def _python_block(text: str) -> str:
    m = re.search(r"```python\n(import workbench as wb\n\nstudy = wb\.datasets\.demo.*?)```",
                  text, re.S)
    assert m, "no quickstart block"
    return m.group(1).strip()


def test_quickstart_is_the_same_in_readme_docs_and_notebook():
    readme = _python_block((REPO / "README.md").read_text())
    docs = _python_block((DOCS / "getting_started.md").read_text())
    nb = json.loads((REPO / "notebooks" / "00_quickstart.ipynb").read_text())
    cells = ["".join(c["source"]).strip() for c in nb["cells"] if c["cell_type"] == "code"]
    assert readme == docs
    assert readme in cells
    lines = [ln for ln in readme.splitlines() if ln.strip()]
    assert len(lines) <= 10, lines


def test_api_page_names_every_facade_function():
    """The hand-written API page has an autosummary entry for each public function (a new
    function in ``__all__`` without an entry fails here, fast, before the slow build)."""
    text = (DOCS / "api.rst").read_text()
    entries = set(re.findall(r"^   ([\w.]+)$", text, re.M))
    missing = [f"{s}.{n}" for s, n, _ in _facade_functions() if f"{s}.{n}" not in entries]
    assert not missing, missing
    assert "Study" in entries


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_nb")
    pytest.importorskip("pydata_sphinx_theme")
    out = tmp_path_factory.mktemp("docs")
    doctrees = tmp_path_factory.mktemp("doctrees")
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(doctrees), str(DOCS), str(out / "html")],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-8000:]
    return out / "html"


@pytest.mark.slow
def test_docs_build_without_warnings(built):
    for page in ("index", "getting_started", "api", "cli", "own_data", "serving", "dask",
                 "methods/embeddings", "methods/concepts", "methods/interactions",
                 "methods/grn", "methods/design", "notebooks/00_quickstart"):
        assert (built / f"{page}.html").is_file(), page


@pytest.mark.slow
def test_every_facade_function_is_documented_with_its_parameters(built):
    api = (built / "api.html").read_text()
    for short, name, fn in _facade_functions():
        full = f"workbench.{short}.{name}"
        page = built / "generated" / f"{full}.html"
        assert page.is_file(), f"no page for {full}"
        assert f"{short}.{name}" in api, f"{full} not on the API page"
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        params = [p for p, v in inspect.signature(fn).parameters.items()
                  if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)]
        missing = [p for p in params if not re.search(rf"\b{re.escape(p)}\b", text)]
        assert not missing, f"{full}: parameters not on its page: {missing}"
        if fn.__module__ in ("workbench.tl", "workbench.pl", "workbench.datasets"):
            assert "Parameters" in text and "Returns" in text, full


@pytest.mark.slow
def test_cli_page_lists_every_command(built):
    from workbench.cli import build_parser

    text = html.unescape(re.sub(r"<[^>]+>", "", (built / "cli.html").read_text()))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert f"workbench {name}" in text, name
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--"):
                    assert opt in text, f"{name} {opt}"
