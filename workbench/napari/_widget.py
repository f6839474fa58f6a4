"""The Study browser: a napari dock widget to look at the crops behind a result.

Pick a Study, then a perturbation, a pair or a concept; the browser loads a comparison grid
(controls beside the perturbation; control, A, B and A+B side by side for a pair; exemplars
at activation quantiles for a concept) as one image layer per channel with the channel's
name and colormap, contrast limits set on the controls, and the condition names written
above each block. Moving the mouse over a crop shows its metadata (crop id, perturbation,
plate, well...) in the widget. Opened from a dashboard session (on that session's selection
channel), "Follow the dashboard" shows whatever the session selects, and what is chosen
here (the Show button, a click on a crop) is sent back to the session.

Problems (a folder that is not a Study, a Study without images, an unknown gene) are shown
in the widget and as a napari notification, with the fix, never as a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.napari._messages import MessageLine
from workbench.errors import WorkbenchError
from workbench.napari import _crops
from workbench.napari._follow import SelectionFollower, start_polling
from workbench.napari._qt_guard import protect_none

log = logging.getLogger(__name__)
protect_none()  # PySide6 6.12.0 on CPython 3.11 leaks references to None; see _qt_guard
KINDS = ("perturbation", "pair", "concept")


class StudyBrowser(MessageLine, QWidget):
    """Dock widget that browses one Study's crops (see module docstring).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer to draw into (napari passes it when it docks the widget).
    study : str or os.PathLike, optional
        Optional Study folder to open straight away.
    parent : QWidget, optional
        The parent Qt widget, or None.
    channel : str or os.PathLike, optional
        The selection channel of the dashboard session that opened napari (a path), or None.
    """

    _what = "Study browser"

    def __init__(self, napari_viewer, study: str | Path | None = None, parent=None,
                 channel: str | Path | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.source = None
        self.layers: list = []
        self._timer = None
        self.channel = Path(channel) if channel else None
        self.follower: SelectionFollower | None = None
        self.selected_crop: str | None = None
        self.find_widget = None

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("path/to/NAME.study")
        self.path_edit.returnPressed.connect(lambda: self.open_study(self.path_edit.text()))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        open_btn = QPushButton("Open")
        open_btn.clicked.connect(lambda: self.open_study(self.path_edit.text()))
        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(browse)
        row.addWidget(open_btn)

        self.kind_box = QComboBox()
        self.kind_box.addItems(KINDS)
        self.kind_box.currentTextChanged.connect(self._fill_choices)
        self.choice_box = QComboBox()
        self.choice_box.setEditable(True)
        self.n_box = QSpinBox()
        self.n_box.setRange(1, 64)
        self.n_box.setValue(9)
        self.n_box.setToolTip("crops per condition")
        show_btn = QPushButton("Show")
        show_btn.clicked.connect(
            lambda: self.choose(self.kind_box.currentText(), self.choice_box.currentText()))
        self.follow_box = QCheckBox("Follow the dashboard")
        self.follow_box.setEnabled(self.channel is not None)
        self.follow_box.setToolTip("Follow the dashboard session that opened napari and send "
                                   "it what is chosen here" if self.channel is not None else
                                   "open napari from a dashboard ('Open in napari') to link "
                                   "the two")
        self.follow_box.toggled.connect(self.set_follow)
        find_btn = QPushButton("Find more like this")
        find_btn.setToolTip("guided search for crops like the one last clicked")
        find_btn.clicked.connect(lambda: self.find_more_like_this())

        self.message = QLabel("Open a Study to browse its crops.")
        self.message.setWordWrap(True)
        self.cursor_label = QLabel("")
        self.cursor_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Study", row)
        form.addRow("Browse by", self.kind_box)
        form.addRow("Choice", self.choice_box)
        form.addRow("Crops per condition", self.n_box)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(show_btn)
        lay.addWidget(self.follow_box)
        lay.addWidget(find_btn)
        lay.addWidget(self.message)
        lay.addWidget(QLabel("Under the cursor:"))
        lay.addWidget(self.cursor_label)
        lay.addStretch(1)

        self.viewer.cursor.events.position.connect(self._on_cursor)
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        if study is not None:
            self.open_study(study)
        else:
            for layer in list(self.viewer.layers):
                if self._adopt_from(layer):
                    break

    # ------------------------------------------------------------------ messages
    # ------------------------------------------------------------------ opening
    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a Study folder")
        if path:
            self.open_study(path)

    def open_study(self, path: str | Path) -> bool:
        """Open the Study at ``path``; False (and a message) when it cannot be browsed.

        Parameters
        ----------
        path : str or pathlib.Path
            The ``NAME.study`` folder (it must hold images).

        Returns
        -------
        bool
            True when the Study is open and its choices are listed.
        """
        from workbench.napari._source import open_source

        self.path_edit.setText(str(path))
        try:
            if not str(path).strip():
                raise WorkbenchError("no Study folder given.", "type or browse to a NAME.study "
                                     "folder.")
            source = open_source(path)
            source.require_images()
            perts, pairs = source.perturbations(), source.pairs()
            concepts = source.concept_names()
        except Exception as exc:
            self.source = None
            self.choice_box.clear()
            return self._fail(exc)
        self.source = source
        self._choices = {"perturbation": perts, "pair": pairs, "concept": concepts}
        self._fill_choices(self.kind_box.currentText())
        self._say(f"{source.study.title}: {len(source.store)} crops, {len(perts)} "
                  f"perturbations, {len(pairs)} pairs, {len(concepts)} concepts.")
        if self.follow_box.isChecked():
            self.set_follow(True)
        return True

    def _fill_choices(self, kind: str) -> None:
        self.choice_box.clear()
        if self.source is not None:
            self.choice_box.addItems(self._choices.get(kind, []))

    def _adopt_from(self, layer) -> bool:
        info = (getattr(layer, "metadata", None) or {}).get(_crops.META_KEY) or {}
        if self.source is None and info.get("study"):
            return self.open_study(info["study"])
        return False

    def _on_layer_inserted(self, event) -> None:
        if self.source is None:
            self._adopt_from(event.value)

    # ------------------------------------------------------------------ showing
    def load(self, kind: str, value: str, n: int | None = None) -> bool:
        """Load the comparison grid for ``kind`` ("perturbation", "pair" or "concept") and
        ``value``; replaces what the browser showed before. False (and a message) on error.

        Parameters
        ----------
        kind : str
            ``"perturbation"``, ``"pair"`` or ``"concept"``.
        value : str
            What to show.
        n : int or None
            Crops per block; None takes the widget's count.

        Returns
        -------
        bool
            True when the grid is shown.
        """
        if self.source is None:
            return self._fail(WorkbenchError("no Study is open.",
                                             "open a NAME.study folder first."))
        if kind not in KINDS:
            return self._fail(WorkbenchError(f"cannot browse by {kind!r}.",
                                             f"use one of {', '.join(KINDS)}."))
        try:
            data = self.source.layers(kind, str(value), n=n or self.n_box.value())
        except Exception as exc:
            return self._fail(exc)
        self.clear()
        for item in data:
            arr, kwargs, layer_type = item
            added = getattr(self.viewer, f"add_{layer_type}")(arr, **kwargs)
            self.layers.extend(added if isinstance(added, list) else [added])
        self.viewer.reset_view()
        self.kind_box.setCurrentText(kind)
        self.choice_box.setCurrentText(str(value))
        conds = data[0][1]["metadata"][_crops.META_KEY]["conditions"]
        self._say(f"{kind} {value}: " + "; ".join(f"{c['title']} ({c['note']})" for c in conds))
        return True

    def choose(self, kind: str, value: str) -> bool:
        """Show ``value`` (what the Show button does) and, when following a dashboard
        session, select it there too.

        Parameters
        ----------
        kind : str
            ``"perturbation"``, ``"pair"`` or ``"concept"``.
        value : str
            What to show.

        Returns
        -------
        bool
            True when it is shown.
        """
        shown = self.load(kind, value)
        if shown and self.follower is not None:
            self.follower.choose(kind, value)
        return shown

    def click(self, world_position) -> dict | None:
        """A click at a world position: the crop there becomes the dashboard session's
        selected sample, and its perturbation the selected gene. Returns the crop hit.

        Parameters
        ----------
        world_position : sequence of float
            The click's world coordinates.

        Returns
        -------
        dict or None
            See :meth:`crop_under`.
        """
        hit = self.crop_under(world_position)
        if hit is not None:
            self.selected_crop = hit["crop_id"]
        if hit is None or self.follower is None or self.source is None:
            return hit
        obs = self.source.obs
        if hit["crop_id"] in obs.index:
            self.follower.choose("perturbation", str(obs.loc[hit["crop_id"], "perturbation"]),
                                 sample=hit["crop_id"])
        return hit

    def _on_click(self, viewer, event):
        yield  # napari calls again on each move and on release
        dragged = False
        while event.type == "mouse_move":
            dragged = True
            yield
        if not dragged:
            try:
                self.click(event.position)
            except Exception:  # never let a click raise into napari
                log.exception("Study browser click failed")

    def find_more_like_this(self, crop_id: str | None = None, **kw):
        """Dock a guided phenotype search (:mod:`workbench.napari._find`) started from
        ``crop_id`` (default: the crop last clicked); returns the widget.

        Parameters
        ----------
        crop_id : str or None
            The exemplar crop; None takes the crop last clicked.
        **kw
            Passed to :class:`~workbench.napari._find.FindWidget` (``tau``, ``batch``, ``seed``,
            ``start``).

        Returns
        -------
        FindWidget or None
            The docked widget, or None (with a message) without an open Study or a crop.
        """
        from workbench.napari._find import FindWidget

        crop = crop_id or self.selected_crop
        if self.source is None or crop is None:
            self._fail(WorkbenchError("no crop to start from.", "open a Study and click a "
                                      "crop first."))
            return None
        self.find_widget = FindWidget(self.viewer, study=self.source.path, exemplar=crop, **kw)
        self.viewer.window.add_dock_widget(self.find_widget, name="Find more like this")
        return self.find_widget

    def show_perturbation(self, name: str, n: int | None = None) -> bool:
        """Show controls beside the crops of perturbation ``name``.

        Parameters
        ----------
        name : str
            The perturbation.
        n : int or None
            Crops per block; None takes the widget's count.

        Returns
        -------
        bool
            True when the grid is shown.
        """
        return self.load("perturbation", name, n)

    def show_pair(self, pair: str, n: int | None = None) -> bool:
        """Show control, A, B and A+B side by side.

        Parameters
        ----------
        pair : str
            The pair, ``"A+B"``.
        n : int or None
            Crops per block; None takes the widget's count.

        Returns
        -------
        bool
            True when the grid is shown.
        """
        return self.load("pair", pair, n)

    def show_concept(self, concept, n: int | None = None) -> bool:
        """Show a concept's exemplars at activation quantiles.

        Parameters
        ----------
        concept : str or int
            The concept's label, or its row number.
        n : int or None
            Crops per block; None takes the widget's count.

        Returns
        -------
        bool
            True when the grid is shown.
        """
        return self.load("concept", str(concept), n)

    def clear(self) -> None:
        """Remove the crop grids shown so far (the browser's own, and the overview the
        reader opened), so that one comparison is on screen at a time."""
        for layer in list(self.viewer.layers):
            info = (layer.metadata or {}).get(_crops.META_KEY) or {}
            if layer in self.layers or info.get("kind") == "crops":
                self.viewer.layers.remove(layer)
        self.layers = []

    # ------------------------------------------------------------------ cursor
    def crop_under(self, world_position) -> dict | None:
        """The crop at a world position of the viewer, with its metadata line.

        Parameters
        ----------
        world_position : sequence of float
            World coordinates in the viewer.

        Returns
        -------
        dict or None
            ``crop_id``, ``condition`` and ``text`` (the status line), or None off the crops.
        """
        for layer in list(self.layers) + list(self.viewer.layers):
            info = (layer.metadata or {}).get(_crops.META_KEY) if hasattr(layer, "metadata") \
                else None
            if not info or info.get("kind") != "crops":
                continue
            hit = _crops.crop_at(layer.metadata, layer.world_to_data(world_position))
            if hit is not None:
                obs = self.source.obs if self.source is not None else None
                hit["text"] = (_crops.describe_crop(obs, hit["crop_id"], hit["condition"])
                               if obs is not None else f"crop {hit['crop_id']}")
                return hit
            return None
        return None

    def _on_cursor(self, event=None) -> None:
        try:
            hit = self.crop_under(self.viewer.cursor.position)
        except Exception:  # never let a mouse move raise into napari
            hit = None
        self.cursor_label.setText(hit["text"] if hit else "")

    # ------------------------------------------------------------------ following
    def set_follow(self, on: bool) -> None:
        """Start or stop following the dashboard session's selection channel.

        Parameters
        ----------
        on : bool
            Follow (poll the channel) or stop.
        """
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.follower = None
        if on and self.channel is None:
            self._say("nothing to follow: open napari from a dashboard ('Open in napari') to "
                      "link the two.", error=True)
            on = False
        if on and self.source is not None:
            self.follower = SelectionFollower(self.channel, self.source.study.id)
            self._timer = start_polling(self.follower, self._follow, parent=self)
            self.poll_selection()
        if self.follow_box.isChecked() != bool(on):
            self.follow_box.setChecked(bool(on))

    def poll_selection(self) -> bool:
        """Look at the selection channel now; True when it changed what is shown.

        Returns
        -------
        bool
            True when a new choice of the dashboard was shown.
        """
        if self.follower is None:
            return False
        choice = self.follower.poll()
        return self._follow(*choice) if choice else False

    def _follow(self, kind: str, value: str) -> bool:
        return self.load(kind, value)

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        """Stop following the dashboard when the widget closes (Qt's close handler).

        Parameters
        ----------
        event : QCloseEvent
            The close event, passed on to Qt.
        """
        self.set_follow(False)
        super().closeEvent(event)
