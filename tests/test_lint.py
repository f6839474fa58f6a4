"""``ruff check`` over the repository (settings in pyproject.toml): a lint error fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (it comes with the test extra: pip install -e .[test])")


def test_ruff_check_is_clean():
    out = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=REPO, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"ruff check found problems (fix them, or run `ruff check " \
                                f"--fix .`):\n{out.stdout}{out.stderr}"


def test_the_lint_settings_are_the_projects():
    # the check above means something only if it runs with the project's rule set
    out = subprocess.run([*_ruff(), "check", "--show-settings", "workbench/cli.py"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "line_length = 100" in out
    assert "flake8-bugbear" in out or "B0" in out
