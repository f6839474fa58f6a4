"""Sample data for napari's File > Open Sample menu: the tiny demo Study, made on the fly.

The Study is the demo world at size "tiny" built by the real steps (simulate, embed,
concepts, interactions, grn; :func:`workbench.testing.make_demo_study`), so the sample shows
what ``workbench demo`` writes and the browser can show its perturbations, pairs and
concepts. It is built once per user in the temporary folder, beside its final place, and
moved there only when every step has run, so that an interrupted build is never reused.
"""

from __future__ import annotations

import getpass
import shutil
import tempfile
from pathlib import Path


def _sample_root() -> Path:
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): one folder for all
        user = "user"
    return Path(tempfile.gettempdir()) / f"workbench-napari-sample-{user}"


def _is_complete(path: Path) -> bool:
    from workbench.data.study import Study
    from workbench.errors import WorkbenchError

    if not (path / "study.json").is_file():
        return False
    try:
        study = Study.open(path)
    except WorkbenchError:
        return False
    return all(study.has(name) for name in ("images", "profiles", "concepts", "interactions"))


def demo_study_path(size: str = "tiny", root: str | Path | None = None) -> Path:
    """The demo Study of ``size`` under ``root`` (the user's temporary folder by default),
    built with the real steps on first use.

    Parameters
    ----------
    size : str
        The demo world's size (``"tiny"``, ``"quick"``, ``"realistic"``).
    root : str, pathlib.Path or None
        The folder that keeps the demo Studies; None for the default under the temporary
        folder.

    Returns
    -------
    pathlib.Path
        The complete Study (built beside it and renamed into place, so a crash leaves no
        half-built Study).
    """
    from workbench.testing import make_demo_study

    root = Path(root) if root is not None else _sample_root()
    path = root / f"demo_{size}.study"
    if _is_complete(path):
        return path
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".demo_{size}-", dir=root)) / path.name
    try:
        make_demo_study(staging, size=size, seed=0)
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    return path


def make_demo_sample():
    """npe2 sample-data command: the demo Study's overview grid.

    Returns
    -------
    list of tuple
        napari layer data tuples.
    """
    from workbench.napari._source import StudySource

    return StudySource(demo_study_path()).open_layers()
