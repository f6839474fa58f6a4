"""Fixtures for the dashboard tests: a small synthetic Study (see synthetic_study.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def load_synthetic():
    """The helper module, loaded by path (tests/ is not a package)."""
    path = Path(__file__).with_name("synthetic_study.py")
    spec = importlib.util.spec_from_file_location("wb_dashboards_synthetic_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def synthetic():
    return load_synthetic()


@pytest.fixture(scope="session")
def synthetic_study(tmp_path_factory, synthetic):
    return synthetic.make_synthetic_study(tmp_path_factory.mktemp("dash") / "syn.study")
