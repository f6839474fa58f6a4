"""Follow a dashboard session, and answer it: napari's end of a selection channel.

A dashboard session that opens napari passes it the path of its selection channel
(``workbench napari STUDY --channel PATH``; see :mod:`workbench.data.selection`). napari
polls that file (one ``stat`` per tick, no server, survives either side restarting) and
shows what the session chose; when the user chooses something in napari (the Show button,
a click on a crop), napari writes it back into the same file and the browser follows.
:class:`SelectionFollower` is the Qt-free part; :func:`start_polling` drives it from a
``QTimer``.
"""

from __future__ import annotations

import os
from typing import Any
from collections.abc import Callable

from workbench.data.selection import FIELDS, SelectionChannel

#: When several keys change at once, the most specific wins.
PRIORITY = ("pair", "concept", "perturbation")


def _in_pair(gene: str, pair: str) -> bool:
    return bool(pair) and gene in pair.split("+")


class SelectionFollower:
    """One napari window's view of a dashboard session's selection.

    Parameters
    ----------
    channel : str, os.PathLike or SelectionChannel
        The channel file the dashboard gave (a path or a
        :class:`~workbench.data.selection.SelectionChannel`).
    study_id : str
        When given, a channel written for another Study is ignored.
    """

    def __init__(self, channel: str | os.PathLike | SelectionChannel, study_id: str = ""):
        self.channel = channel if isinstance(channel, SelectionChannel) else SelectionChannel(channel)
        self.study_id = study_id
        #: The session's selection as last read or written here.
        self.state: dict[str, Any] = {k: ([] if k == "samples" else "") for k in FIELDS}

    def poll(self) -> tuple[str, str] | None:
        """``(kind, value)`` of what the dashboard newly chose, e.g. ``("pair", "A+B")``.

        Returns
        -------
        tuple of str or None
            The first changed field (in priority order) and its value; None when nothing changed
            or the channel belongs to another Study.
        """
        data = self.channel.poll(me="napari")
        if data is None:
            return None
        if self.study_id and data.get("study_id") and data["study_id"] != self.study_id:
            return None
        changed = [k for k in PRIORITY if data[k] and data[k] != self.state[k]]
        self.state = {k: data[k] for k in FIELDS}
        return (changed[0], data[changed[0]]) if changed else None

    def choose(self, kind: str, value: str, sample: str | None = None) -> dict[str, Any]:
        """Tell the dashboard that napari chose ``value`` (a perturbation, pair or concept;
        ``sample``: the crop clicked). Returns the selection written.

        Parameters
        ----------
        kind : str
            ``"perturbation"``, ``"pair"`` or ``"concept"``.
        value : str
            The name chosen.
        sample : str or None
            The crop clicked; None leaves the selected samples as they are.

        Returns
        -------
        dict
            The selection as written.
        """
        state = dict(self.state)
        value = str(value)
        if kind == "perturbation":
            if not _in_pair(value, state["pair"]):
                state["pair"] = ""
            state["perturbation"] = value
        elif kind == "pair":
            state["pair"] = value
            state["perturbation"] = value.split("+")[0]
        elif kind == "concept":
            state["concept"] = value
        if sample is not None:
            state["samples"] = [str(sample)]
        self.state = state
        self.channel.write(state, source="napari", study_id=self.study_id)
        return state


def start_polling(follower: SelectionFollower, callback: Callable[[str, str], None],
                  interval_ms: int = 500, parent=None):
    """Call ``callback(kind, value)`` from a QTimer whenever the dashboard chooses.

    Returns the running ``QTimer``; stop it with ``timer.stop()``.

    Parameters
    ----------
    follower : SelectionFollower
        Reads the dashboard's choices from the selection channel.
    callback : callable
        Called with ``(kind, value)`` for each new choice.
    interval_ms : int
        Polling interval, in milliseconds.
    parent : QObject or None
        Parent of the timer.

    Returns
    -------
    QTimer
        The running timer.
    """
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setInterval(interval_ms)

    def tick():
        choice = follower.poll()
        if choice is not None:
            callback(*choice)

    timer.timeout.connect(tick)
    timer.start()
    return timer
