"""``import workbench`` (and the CLI's help) must stay light: no torch, Panel, napari or Qt."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "panel", "holoviews", "bokeh", "napari", "PySide6", "PyQt5", "qtpy",
         "datashader", "magicgui", "vispy")


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c",
         code + "\nimport sys\nprint('\\n'.join(m.split('.')[0] for m in sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return set(out)


def test_import_workbench_is_light():
    loaded = _loaded_after("import workbench")
    assert not (loaded & set(HEAVY)), sorted(loaded & set(HEAVY))


def test_data_layer_imports_no_heavy_library():
    loaded = _loaded_after("import workbench.data, workbench.data.study, workbench.data.schema")
    assert not (loaded & set(HEAVY)), sorted(loaded & set(HEAVY))


def test_cli_parser_builds_without_heavy_imports():
    loaded = _loaded_after("from workbench.cli import build_parser\nbuild_parser()")
    assert not (loaded & set(HEAVY)), sorted(loaded & set(HEAVY))


def test_public_face_is_light_until_used():
    """``wb.tl``, ``wb.pl``, ``wb.io``, ``wb.datasets`` and ``wb.dashboards`` load lazily and
    none of them pulls torch, Panel, HoloViews, napari or Qt on import."""
    loaded = _loaded_after("import workbench as wb\n"
                           "wb.tl, wb.pl, wb.io, wb.datasets, wb.dashboards, wb.io.read_velocity")
    assert not (loaded & set(HEAVY)), sorted(loaded & set(HEAVY))


def test_submodules_are_not_imported_by_import_workbench():
    code = ("import sys, workbench\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('workbench.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert not {"workbench.tl", "workbench.pl", "workbench.datasets", "workbench.io",
                "workbench.dashboards"} & set(out), out
