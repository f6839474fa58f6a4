"""Fixtures: worlds and a quick demo Study built once per test session."""

from __future__ import annotations

import pytest

from workbench.data.simulate import build_demo_study, make_world


@pytest.fixture(scope="session")
def quick_world():
    return make_world(seed=0, size="quick")


@pytest.fixture(scope="session")
def realistic_world():
    return make_world(seed=0, size="realistic")


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory):
    return build_demo_study(tmp_path_factory.mktemp("sim") / "quick.study", size="quick", seed=0)
