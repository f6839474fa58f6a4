"""Fixtures for the napari plugin tests: small Studies built once per session.

Viewer tests use napari's ``make_napari_viewer`` (pytest-qt) under Xvfb, which pytest-xvfb
starts by itself when Debian's ``xvfb`` is installed; do not set QT_QPA_PLATFORM=offscreen
(napari then has no OpenGL).
"""

from __future__ import annotations

import warnings

import pytest


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
