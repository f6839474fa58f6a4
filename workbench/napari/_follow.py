"""Follow the dashboard: poll the Study's ``selection.json`` and report what changed.

The Panel dashboards write the current selection into ``NAME.study/selection.json``
(schema ``workbench.selection``; see :mod:`workbench.data.selection`) every time the user
clicks. napari runs in another process, so it polls that file: cheap (one ``stat`` per
tick), needs no server, and survives either side restarting. :class:`SelectionWatcher` is
the Qt-free part (compare the file with what was last seen and say which choice is new);
:func:`start_polling` drives it from a ``QTimer``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from workbench.data.selection import SELECTION_FILE, read_selection_file

#: When several keys change at once, the most specific wins.
PRIORITY = ("pair", "concept", "perturbation")


def read_selection(study_path: str | os.PathLike) -> dict[str, Any] | None:
    """``selection.json`` of a Study as a dict, or None when absent or unreadable."""
    return read_selection_file(study_path)


class SelectionWatcher:
    """Tell what the dashboard newly selected since the last look.

    Parameters
    ----------
    study_path
        The Study folder holding ``selection.json``.
    study_id
        When given, a file written for another Study (a copied folder) is ignored.
    """

    def __init__(self, study_path: str | os.PathLike, study_id: str = ""):
        self.path = Path(study_path)
        self.study_id = study_id
        self._stamp: tuple | None = None
        self._seen: dict[str, Any] = {}

    def _file_stamp(self) -> tuple | None:
        try:
            st = (self.path / SELECTION_FILE).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll(self) -> tuple[str, str] | None:
        """``(kind, value)`` of a new choice, e.g. ``("pair", "A+B")``, or None."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        self._stamp = stamp
        data = read_selection(self.path)
        if not data or data.get("source") == "napari":
            return None
        if self.study_id and data.get("study_id") and data["study_id"] != self.study_id:
            return None
        changed = [k for k in PRIORITY
                   if data.get(k) not in (None, "") and data.get(k) != self._seen.get(k)]
        self._seen = {k: data.get(k) for k in PRIORITY}
        return (changed[0], str(data[changed[0]])) if changed else None


def start_polling(watcher: SelectionWatcher, callback: Callable[[str, str], None],
                  interval_ms: int = 500, parent=None):
    """Call ``callback(kind, value)`` from a QTimer whenever the selection changes.

    Returns the running ``QTimer``; stop it with ``timer.stop()``.
    """
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setInterval(interval_ms)

    def tick():
        choice = watcher.poll()
        if choice is not None:
            callback(*choice)

    timer.timeout.connect(tick)
    timer.start()
    return timer
