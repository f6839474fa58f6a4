"""The npe2 manifest is valid and napari finds the plugin from the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.napari


def test_npe2_validate_passes():
    npe2_cli = Path(sys.executable).with_name("npe2")
    cmd = [str(npe2_cli)] if npe2_cli.exists() else [sys.executable, "-m", "npe2"]
    out = subprocess.run([*cmd, "validate", "--imports", "workbench"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_napari_discovers_the_plugin():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "workbench" in pm._manifests
    mf = pm.get_manifest("workbench")
    assert [w.display_name for w in mf.contributions.widgets] == ["Study browser"]
    assert [s.key for s in mf.contributions.sample_data] == ["demo_study"]
    assert mf.contributions.readers[0].accepts_directories


def test_import_stays_light():
    code = ("import sys, workbench.napari, workbench.napari._reader, workbench.commands.napari;"
            "bad=[m for m in sys.modules if m.split('.')[0] in "
            "('napari','qtpy','PySide6','torch','panel')]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
