"""Fixtures for the napari plugin tests: the tiny demo Study built by the real steps, and
Studies derived from copies of it by real transactions.

Viewer tests use napari's ``make_napari_viewer`` (pytest-qt) under Xvfb, which pytest-xvfb
starts by itself when Debian's ``xvfb`` is installed; do not set QT_QPA_PLATFORM=offscreen
(napari then has no OpenGL).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _protect_none():
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None on every void Qt call;
    without this guard the test process aborts at exit (status 134). Applied here, not at
    import, so that collecting these tests imports no Qt (other tests check that
    ``import workbench`` stays Qt-free). See workbench/napari/_qt_guard.py."""
    from workbench.napari._qt_guard import protect_none

    protect_none()


def _without(source, target, name: str):
    """A copy of ``source`` from which one artefact was removed by a transaction."""
    from workbench.testing import copy_study

    study = copy_study(source, target)
    with study.step(f"remove-{name}", params={"artefact": name}) as tx:
        tx.remove(name)
    return target


@pytest.fixture(scope="session")
def study_without_images(tiny_study_path, tmp_path_factory):
    """The tiny demo Study with its ``images`` artefact removed (profiles and the analyses
    stay), for the "no crops to show" messages."""
    return _without(tiny_study_path, tmp_path_factory.mktemp("napari") / "noimages.study",
                    "images")


@pytest.fixture(scope="session")
def study_without_concepts(tiny_study_path, tmp_path_factory):
    """The tiny demo Study before ``workbench concepts`` (its concepts artefact removed)."""
    return _without(tiny_study_path, tmp_path_factory.mktemp("napari") / "noconcepts.study",
                    "concepts")


@pytest.fixture(scope="session")
def tiny(tiny_study_path):
    """What the tests compare the plugin with, read from the tiny demo Study directly."""
    from workbench.data.study import Study

    study = Study.open(tiny_study_path)
    store = study.read("images")
    obs = store.obs
    pert = obs["perturbation"].astype(str)
    singles = {p for p in pert[~obs["is_control"]] if "+" not in p}
    doubles = sorted({p for p in pert if "+" in p and set(p.split("+")) <= singles})
    pair = study.read("interactions")["pair"].astype(str).iloc[0]
    a, b = pair.split("+")
    other = sorted(singles - {a, b})[0]
    return {"path": tiny_study_path, "study": study, "store": store, "obs": obs,
            "singles": sorted(singles), "doubles": doubles, "pair": pair, "a": a, "b": b,
            "other": other, "concepts": study.read("concepts"),
            "profiles": study.read("profiles")}


@pytest.fixture
def nf1_fields(shared_data):
    path = shared_data / "cellpainting_images_wayscience" / "nf1_plate2"
    if not path.is_dir():
        pytest.skip(f"NF1 field folder not in the public data folder ({path.name})")
    return path
