"""``study.json``: the artefact kinds a Study knows, its schema version, and the checked reader.

Both :mod:`workbench.data.study` (which opens a Study) and :mod:`workbench.data.transaction`
(which re-reads ``study.json`` before it commits) read the file through :func:`load_meta`, so
a crafted or damaged file is refused with the same clear error whichever way it is reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.data._store import STUDY_FILE, inside
from workbench.errors import SchemaVersionError, StudyCorruptError

#: Version of the ``study.json`` layout; a newer file is refused with an upgrade hint.
SCHEMA_VERSION = 1
#: Artefact kinds and the file suffix each is stored under.
KINDS = {"anndata": ".zarr", "table": ".parquet", "array": ".zarr", "images": ".zarr",
         "json": ".json", "file": ""}

__all__ = ["KINDS", "SCHEMA_VERSION", "load_meta"]


def _version() -> str:
    from workbench import __version__

    return __version__


def load_meta(path: Path) -> dict[str, Any]:
    """Read and check ``study.json``: its fields, their types, and that every artefact path
    stays inside the Study (a crafted file must not make us touch anything outside it).

    Parameters
    ----------
    path : pathlib.Path
        The Study folder.

    Returns
    -------
    dict
        The parsed ``study.json``.

    Raises
    ------
    StudyCorruptError
        When the file is unreadable, not JSON, lacks a field, has a field of the wrong type, or
        names an artefact path outside the Study.
    SchemaVersionError
        When a newer workbench wrote it.
    """
    f = path / STUDY_FILE
    restore = "restore study.json from a backup; the artefacts themselves are untouched."
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise StudyCorruptError(
            f"{f} is not valid JSON ({exc.msg} at line {exc.lineno}).", restore) from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise StudyCorruptError(f"{f} cannot be read ({type(exc).__name__}: {exc}).",
                                restore) from exc
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise StudyCorruptError(f"{f} has no schema_version: it was not written by workbench.",
                                "open a folder made by `workbench demo` or `workbench import`.")
    version = meta["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StudyCorruptError(
            f"{f}: schema_version is {version!r}; expected a whole number such as "
            f"{SCHEMA_VERSION}.", restore)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} uses Study schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this workbench ({_version()}) reads.",
            "upgrade the workbench (pip install -U workbench) to open it.",
        )
    missing = {"artefacts", "provenance", "control_label", "study_id"} - set(meta)
    if missing:
        raise StudyCorruptError(f"{f} lacks the field(s) {sorted(missing)}.", restore)
    types = {"artefacts": (dict, "an object of name: entry"), "provenance": (list, "a list"),
             "control_label": (str, "a string"), "study_id": (str, "a string")}
    for key, (typ, said) in types.items():
        if not isinstance(meta[key], typ):
            raise StudyCorruptError(
                f"{f}: {key!r} is a {type(meta[key]).__name__}; expected {said}.", restore)
    for name, entry in meta["artefacts"].items():
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS \
                or not isinstance(entry.get("version", 1), int):
            raise StudyCorruptError(
                f"{f}: the entry of artefact {name!r} is {entry!r}; expected an object with "
                f"a kind (one of {sorted(KINDS)}), a path and a version.", restore)
        inside(path, entry.get("path"), what=f"the path of artefact {name!r}")
        prev = entry.get("previous")
        if prev is not None:
            if not isinstance(prev, dict) or not isinstance(prev.get("version"), int):
                raise StudyCorruptError(
                    f"{f}: the previous generation of artefact {name!r} is {prev!r}; "
                    "expected an object with a path and a version.", restore)
            inside(path, prev.get("path"), what=f"the previous path of artefact {name!r}")
    return meta
