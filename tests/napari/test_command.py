"""``workbench napari``: arguments, and clear errors before any window opens."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.cli import build_parser, main

pytestmark = pytest.mark.napari


def test_parser_knows_the_choices():
    args = build_parser().parse_args(["napari", "x.study", "--pair", "A+B", "--channel", "c.json"])
    assert (args.study, args.pair, args.perturbation, args.channel) == ("x.study", "A+B", None,
                                                                        "c.json")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["napari", "x.study", "--pair", "A+B", "--concept", "3"])


def test_bad_folders_fail_with_a_message(tmp_path, study_without_images, capsys):
    assert main(["napari", str(tmp_path)]) == 2
    assert "is not a Study" in capsys.readouterr().err
    assert main(["napari", str(study_without_images)]) == 2
    err = capsys.readouterr().err
    assert "no 'images' artefact" in err and "How to fix" in err


def test_qt_guard_keeps_a_long_session_alive():
    """Many void Qt calls must not abort the interpreter (PySide6 6.12.0 on CPython 3.11)."""
    code = ("import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from workbench.napari._qt_guard import protect_none\n"
            "from qtpy.QtCore import QObject\n"
            "protect_none(); o = QObject()\n"
            "for _ in range(20000): o.setObjectName('x')\n"
            "print('done')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-500:]
