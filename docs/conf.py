"""Sphinx configuration of the workbench documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html``. The notebooks of
``../notebooks`` are copied into ``docs/notebooks`` when the build starts and rendered as
they are stored (``nb_execution_mode = "off"``); the test suite executes them separately.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT))

import workbench  # noqa: E402

project = "workbench"
author = "the workbench developers"
copyright = "2026, the workbench developers"  # noqa: A001
version = release = workbench.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_nb",
    "cli_reference",
]

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc shows the types; signatures carry the hints
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "deflist"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

exclude_patterns = ["_build", "**.ipynb_checkpoints", ".gitignore"]
# the tour notebooks start their sections at level 3 under a level-1 title
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure", "myst.header"]

intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = f"workbench {release}"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}
html_static_path: list[str] = []


def _copy_notebooks(app) -> None:
    src = ROOT / "notebooks"
    dst = HERE / "notebooks"
    dst.mkdir(exist_ok=True)
    wanted = {p.name for p in src.glob("*.ipynb")}
    for old in dst.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    for nb in sorted(src.glob("*.ipynb")):
        target = dst / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
