"""Fixtures for the napari plugin tests: small Studies built once per session.

Viewer tests use napari's ``make_napari_viewer`` (pytest-qt) under Xvfb, which pytest-xvfb
starts by itself when Debian's ``xvfb`` is installed; do not set QT_QPA_PLATFORM=offscreen
(napari then has no OpenGL).
"""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(autouse=True)
def _protect_none():
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None on every void Qt call;
    without this guard the test process aborts at exit (status 134). Applied here, not at
    import, so that collecting these tests imports no Qt (other tests check that
    ``import workbench`` stays Qt-free). See workbench/napari/_qt_guard.py."""
    from workbench.napari._qt_guard import protect_none

    protect_none()


@pytest.fixture(scope="session")
def toy_study(tmp_path_factory):
    """A tiny image Study: control, A, B, A+B and C crops with masks and concepts."""
    from workbench.napari._sample import build_toy_study

    path = tmp_path_factory.mktemp("napari") / "toy.study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_toy_study(path)
    return path


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """The simulator's demo Study, size "tiny" (5 channels, planted pairs)."""
    try:
        from workbench.data.simulate import build_demo_study
    except ImportError:
        pytest.skip("workbench.data.simulate.build_demo_study is not available")
    path = tmp_path_factory.mktemp("napari") / "demo.study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_demo_study(path, size="tiny")
    return path


@pytest.fixture(scope="session")
def study_without_images(tmp_path_factory):
    from workbench.napari._sample import build_toy_study

    path = tmp_path_factory.mktemp("napari") / "noimages.study"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_toy_study(path, images=False)
    return path


@pytest.fixture
def nf1_fields(shared_data):
    path = shared_data / "cellpainting_images_wayscience" / "nf1_plate2"
    if not path.is_dir():
        pytest.skip(f"NF1 field folder not in the public data folder ({path.name})")
    return path
