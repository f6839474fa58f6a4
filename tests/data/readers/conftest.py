"""Helpers for the reader tests: study.json snapshots and small synthetic inputs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def snapshot():
    """``snapshot(study_path)`` -> bytes of its study.json (to prove a failed import left
    the Study unchanged)."""

    def take(path: Path) -> bytes:
        return (Path(path) / "study.json").read_bytes()

    return take
