"""workbench: from a perturbation screen to hypotheses and the next experiment.

The public face follows the scverse shape::

    import workbench as wb

    study = wb.datasets.demo("quick")        # a Study: one folder, every artefact in it
    wb.tl.embed(study)                        # the steps read and write the Study ...
    wb.pl.embeddings(study)                   # ... and the views show what they wrote

* :mod:`workbench.datasets` - demo Studies built by the real steps;
* :mod:`workbench.io` - readers of public and users' formats, and the import paths;
* :mod:`workbench.tl` - the analysis steps (embed, benchmark, concepts, interactions,
  pair planning, GRN posteriors, screen and hit design);
* :mod:`workbench.pl` - the dashboard views one by one, and static PNG/SVG figures;
* :mod:`workbench.dashboards` - the linked dashboard (``wb.dashboards.show(study)``).

Underneath, the layers are :mod:`workbench.data` (the Study store, its schema, readers
and the demo-world simulator), :mod:`workbench.models` (the torch model layer: arrays in,
arrays out) and :mod:`workbench.tools` (steps with provenance).

``import workbench`` is cheap: it imports none of torch, Panel, HoloViews, napari or Qt.
The submodules above load when first touched.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from workbench.errors import WorkbenchError


def _git_commit(root: Path) -> str | None:
    """The commit checked out at ``root`` (read from ``.git`` without running git)."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            git = (root / text.partition(":")[2].strip()).resolve()
        if not git.is_dir():
            return None
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:40] or None
        ref = head.partition(":")[2].strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return sha
    except OSError:
        return None
    return None


def _version() -> str:
    """The installed version, plus ``+g<commit>`` when running from a git checkout."""
    try:
        base = version("workbench")
    except PackageNotFoundError:  # pragma: no cover - source tree without metadata
        base = "0.0.0"
    commit = _git_commit(Path(__file__).resolve().parents[1])
    if commit and "+" not in base:
        return f"{base}+g{commit[:10]}"
    return base


__version__ = _version()

__all__ = [
    "Study", "WorkbenchError", "__version__", "create_study", "dashboards", "datasets",
    "io", "open_study", "pl", "tl",
]

_LAZY_NAMES = {
    "Study": "workbench.data.study",
    "open_study": "workbench.data.study",
    "create_study": "workbench.data.study",
}
_SUBMODULES = ("tl", "pl", "io", "datasets", "dashboards", "data", "models", "tools",
               "testing", "napari")


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
