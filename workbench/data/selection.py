"""Selection channels: one dashboard session's choice, shared with the napari it started.

Every browser session of the dashboards owns its :class:`~workbench.dashboards.state.Selection`
in memory and in its URL; nothing about it is written into the Study, so two users of one
served Study never see or overwrite each other's choice, and a new session starts empty.

When a session opens napari ("Open in napari"), it creates a *channel*: a small JSON file
with a unique, unguessable name in the user's temporary folder (readable by that user
only), and passes its path to the napari process (``workbench napari STUDY --channel
PATH``). Both sides write their choice into it and poll it for the other's, so a gene
chosen in the browser loads its crops in napari and a crop clicked in napari selects its
perturbation in the browser. This module is the one place that reads and writes channel
files, so that neither front end imports the other.

Channel file keys (schema ``workbench.selection``, version 2)
------------------------------------------------------------
``schema``        always ``"workbench.selection"``
``version``       integer schema version (2)
``study_id``      the ``study_id`` of the Study the selection refers to
``perturbation``  the selected perturbation or gene name, ``""`` for none
``concept``       the selected concept id (an ``obs_name`` of the ``concepts`` artefact), or ``""``
``pair``          the selected pair as ``"A+B"``, or ``""``
``samples``       list of selected sample ids (``obs_names`` of ``profiles``, crop ids of ``images``)
``updated``       ISO-8601 UTC time of the write
``source``        who wrote it: ``"dashboard"`` or ``"napari"``

Unknown keys are ignored on reading; a file with another schema, or a newer version, is
ignored with a warning rather than misread.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

SCHEMA = "workbench.selection"
VERSION = 2
#: The values a channel carries besides its header.
FIELDS = ("perturbation", "concept", "pair", "samples")
SOURCES = ("dashboard", "napari")
PREFIX = "workbench-selection-"


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in FIELDS:
        v = values.get(key)
        if key == "samples":
            out[key] = [str(s) for s in (v or [])]
        else:
            out[key] = "" if v is None else str(v)
    return out


class SelectionChannel:
    """A selection shared by one dashboard session and one napari process.

    Each side calls :meth:`write` with its own ``source`` and :meth:`poll` to learn what
    the *other* side wrote since the last look (its own writes are skipped).

    Parameters
    ----------
    path : str or os.PathLike
        The channel file. :meth:`create` makes a new one; the napari side opens the path
        the dashboard gave it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._stamp: tuple | None = None

    @classmethod
    def create(cls, directory: str | os.PathLike | None = None,
               study_id: str = "") -> SelectionChannel:
        """A new, empty channel file in ``directory`` (default: the temporary folder),
        named uniquely and readable by this user only.

        Parameters
        ----------
        directory : str, os.PathLike or None
            Where to make the file; None uses the temporary folder.
        study_id : str
            The id of the Study the session shows, written into the channel.

        Returns
        -------
        SelectionChannel
            The channel, holding an empty selection written by the dashboard.
        """
        fd, name = tempfile.mkstemp(prefix=PREFIX, suffix=".json",
                                    dir=None if directory is None else str(directory))
        os.close(fd)
        channel = cls(name)
        channel.write({}, source="dashboard", study_id=study_id)
        channel._stamp = channel._file_stamp()  # the empty start is not news to anyone
        return channel

    def _file_stamp(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def write(self, values: dict[str, Any], *, source: str, study_id: str = "") -> None:
        """Replace the channel's content atomically with ``values`` (keys of :data:`FIELDS`).

        Parameters
        ----------
        values : dict
            The selection (keys of :data:`FIELDS`).
        source : str
            Who writes: one of :data:`SOURCES`.
        study_id : str
            The id of the Study the selection refers to.

        Raises
        ------
        WorkbenchError
            When ``source`` is unknown.
        """
        if source not in SOURCES:
            raise WorkbenchError(f"unknown selection source {source!r}.",
                                 f"use one of {', '.join(SOURCES)}.")
        data = {"schema": SCHEMA, "version": VERSION, "study_id": study_id, **_clean(values),
                "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
                "source": source}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = self._file_stamp()  # our own write is never news to ourselves

    def read(self) -> dict[str, Any] | None:
        """The channel's content, or None when absent, unreadable or of another schema.

        Returns
        -------
        dict or None
            The selection with its ``source``, ``study_id`` and time of writing; a newer schema
            version is ignored with a warning.
        """
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return None
        try:
            version = int(data.get("version", 0))
        except (TypeError, ValueError):
            return None
        if version > VERSION:
            warnings.warn(f"selection channel {self.path.name} has schema version {version}, "
                          f"newer than {VERSION}; it is ignored.", stacklevel=2)
            return None
        return {**data, **_clean(data)}

    def poll(self, *, me: str) -> dict[str, Any] | None:
        """What the other side wrote since the last look, or None (nothing new, or the
        latest write is ``me``'s own).

        Parameters
        ----------
        me : str
            The caller's own source name.

        Returns
        -------
        dict or None
            What :meth:`read` returns, or None.
        """
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        data = self.read()
        if data is None or data.get("source") == me:
            return None
        return data

    def close(self) -> None:
        """Remove the channel file (the session ended)."""
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"SelectionChannel({str(self.path)!r})"
