"""``selection.json``: the current choice of the dashboards, shared with other processes.

The Panel dashboards write the selection into the Study folder on every change; the napari
plugin, which runs in its own process, follows the file. Both sides read and write it
through this module, so neither front end imports the other. The keys are documented in
:mod:`workbench.dashboards.state` (schema ``workbench.selection``, version 1).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

SELECTION_FILE = "selection.json"
SCHEMA = "workbench.selection"
VERSION = 1


def write_selection_file(study_path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``selection.json`` atomically (temporary file, fsync, rename)."""
    path = Path(study_path) / SELECTION_FILE
    tmp = path.with_name(f".{SELECTION_FILE}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_selection_file(study_path: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``selection.json``; None when absent, unreadable or of a newer version."""
    path = Path(study_path) / SELECTION_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    if int(data.get("version", 0)) > VERSION:
        warnings.warn(f"{path} has selection schema version {data['version']}, newer than "
                      f"{VERSION}; it is ignored.", stacklevel=2)
        return None
    return data
