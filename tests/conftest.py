"""Shared fixtures: the public data folder, a quick demo Study, browser launch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The public data folder: $WORKBENCH_SHARED_DATA, else ``<repo>/../shared/data``."""
    env = os.environ.get("WORKBENCH_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the public data folder; skips the test with a reason when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("public data folder not found: set WORKBENCH_SHARED_DATA or place it at "
                    "../shared/data beside the repository")
    return path
