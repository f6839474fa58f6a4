"""Fixtures for the dashboard tests: Studies made by the real steps (no hand-written layouts).

``tiny_study_path`` (tests/conftest.py) is the demo world at size "tiny" with every step
run, built once per test session; the views must read whatever those steps write.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def study(tiny_study_path):
    """The tiny demo Study, opened (the views only read it)."""
    from workbench.data.study import Study

    return Study.open(tiny_study_path)


@pytest.fixture(scope="session")
def images_only_study(tmp_path_factory):
    """The demo world before any analysis step: images and ground truth only."""
    from workbench.testing import make_demo_study

    return make_demo_study(tmp_path_factory.mktemp("dash") / "images.study", steps="simulate")
