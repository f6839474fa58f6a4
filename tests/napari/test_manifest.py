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
    widgets = [w.display_name for w in mf.contributions.widgets]
    assert widgets == ["Study browser", "Find more like this"]
    assert [s.key for s in mf.contributions.sample_data] == ["demo_study"]
    assert mf.contributions.readers[0].accepts_directories


def test_import_stays_light():
    code = ("import sys, workbench.napari, workbench.napari._reader, workbench.commands.napari;"
            "bad=[m for m in sys.modules if m.split('.')[0] in "
            "('napari','qtpy','PySide6','torch','panel')]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_reader_claims_study_folders_not_every_path(tmp_path):
    """The reader opens folders only: ``*.study`` by name, and folders of TIFF fields
    through ``accepts_directories``. It does not claim single files, so napari offers
    its own readers (and other plugins') for a ``.tif`` or a ``.csv``."""
    import npe2

    from workbench.napari._reader import get_reader, read_study

    mf = npe2.PluginManifest.from_distribution("workbench")
    reader = mf.contributions.readers[0]
    assert reader.filename_patterns == ["*.study"]
    assert reader.accepts_directories
    study = tmp_path / "screen.study"
    study.mkdir()
    assert get_reader(str(study)) is read_study
    for name in ("field.tif", "table.csv", "notes.study"):
        f = tmp_path / "files" / name
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"")
        assert get_reader(str(f)) is None, name
    pm = npe2.PluginManager.instance()
    pm.discover()
    ours = [r for r in pm.iter_compatible_readers([str(tmp_path / "files" / "table.csv")])
            if r.command.startswith("workbench.")]
    assert ours == []
    ours = [r for r in pm.iter_compatible_readers([str(study)])
            if r.command.startswith("workbench.")]
    assert [r.command for r in ours] == ["workbench.read_study"]
