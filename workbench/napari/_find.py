""""Find more like this": the guided phenotype search as a napari dock widget.

Started from one crop (the Study browser's "Find more like this" button on the crop last
clicked, or a crop id typed here), the widget runs the ``find`` step's session
(:class:`workbench.tools.find.FindSession`): it shows each batch of candidate crops as one
grid (one image layer per channel, the browser's layout and contrast), the crop to judge
framed in yellow, and takes the answers from the keyboard (``y`` yes, ``n`` no,
``u`` undo the last answer of the batch). After every batch the answers are written into
the Study (the ``phenotype_search`` artefact, through the session's own ``save``), so
closing napari loses at most the batch on screen, and opening the widget again on the same
exemplar resumes. The widget shows the prevalence interval after each batch, the stop
recommendation (confirmed above tau, certified below it, or keep going), and on "Show
results" the perturbations enriched for the phenotype with their q-values and the
top-scoring crops across the screen (Hartford et al. 2020, "Exemplar guided active
learning").
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QDoubleSpinBox,
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
from workbench.errors import ValidationError
from workbench.napari import _crops
from workbench.napari._qt_guard import protect_none

log = logging.getLogger(__name__)
protect_none()  # PySide6 6.12.0 on CPython 3.11 leaks references to None; see _qt_guard

#: Layer name prefixes of the candidate grid and of the top-scoring crops.
BATCH_LABEL = "find: batch"
TOP_LABEL = "find: top crops"
FRAME = "find: frames"
KEYS = {"y": True, "n": False}
STATUS_TEXT = {
    "confirmed_common": "stop: the phenotype is confirmed common (lower bound above tau)",
    "certified_rare": "stop: the phenotype is certified rare (upper bound below tau)",
    "open": "keep answering: the interval still contains tau",
}


def recommendation(status: str) -> str:
    """What the widget tells the person after a batch, for a session status.

    Parameters
    ----------
    status : str
        The session status (``"open"``, ``"confirmed_common"``, ``"certified_rare"``).

    Returns
    -------
    str
        The advice; an unknown status is returned as it is.
    """
    return STATUS_TEXT.get(status, status)


class FindWidget(MessageLine, QWidget):
    """Dock widget for one guided phenotype search (see module docstring).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer to draw into.
    study : str or os.PathLike, optional
        The Study folder (optional; typed in the widget otherwise).
    exemplar : str or sequence of str, optional
        Crop id(s) of the phenotype to start from (comma-separated in the widget).
    tau : float
        The prevalence threshold, a fraction in (0, 1) (the widget shows it in percent).
    batch : int
        Crops per batch (1 to 100 in the widget).
    seed : int
        Seed of the search (the step's setting).
    start : bool
        Start (or resume) the search straight away when ``study`` and ``exemplar`` are given.
    parent : QWidget, optional
        The parent Qt widget, or None.
    """

    _what = "find widget"

    def __init__(self, napari_viewer, study: str | Path | None = None,
                 exemplar: str | list[str] | None = None, *, tau: float = 0.01,
                 batch: int = 12, seed: int = 0, start: bool = True, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.source = None
        self.session = None
        self.batch_ids: list[str] = []
        self.given: dict[str, bool] = {}
        self.layers: list = []
        self._cells: dict[str, tuple[int, int]] = {}

        self.path_edit = QLineEdit(str(study) if study else "")
        self.path_edit.setPlaceholderText("path/to/NAME.study")
        ex = ", ".join(exemplar) if isinstance(exemplar, (list, tuple)) else (exemplar or "")
        self.exemplar_edit = QLineEdit(ex)
        self.exemplar_edit.setPlaceholderText("crop id(s), comma-separated")
        self.tau_box = QDoubleSpinBox()
        self.tau_box.setDecimals(2)
        self.tau_box.setRange(0.01, 99.99)
        self.tau_box.setSuffix(" %")
        self.tau_box.setValue(100 * tau)
        self.batch_box = QSpinBox()
        self.batch_box.setRange(1, 100)
        self.batch_box.setValue(batch)
        self.seed = int(seed)
        start_btn = QPushButton("Start / resume")
        start_btn.clicked.connect(lambda: self.start())
        yes_btn = QPushButton("Yes (y)")
        yes_btn.clicked.connect(lambda: self.answer(True))
        no_btn = QPushButton("No (n)")
        no_btn.clicked.connect(lambda: self.answer(False))
        undo_btn = QPushButton("Undo (u)")
        undo_btn.clicked.connect(self.undo)
        results_btn = QPushButton("Show results")
        results_btn.clicked.connect(lambda: self.show_results())
        answers = QHBoxLayout()
        for b in (yes_btn, no_btn, undo_btn):
            answers.addWidget(b)

        self.message = QLabel("Give a Study and a crop, then Start.")
        self.message.setWordWrap(True)
        self.progress = QLabel("")
        self.interval_label = QLabel("")
        self.interval_label.setWordWrap(True)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.results = QLabel("")
        self.results.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Study", self.path_edit)
        form.addRow("Exemplar", self.exemplar_edit)
        form.addRow("tau", self.tau_box)
        form.addRow("Crops per batch", self.batch_box)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(start_btn)
        lay.addWidget(self.message)
        lay.addWidget(self.progress)
        lay.addLayout(answers)
        lay.addWidget(self.interval_label)
        lay.addWidget(self.status_label)
        lay.addWidget(results_btn)
        lay.addWidget(self.results)
        lay.addStretch(1)

        self._bind_keys()
        if start and study is not None and exemplar:
            self.start()

    # ------------------------------------------------------------------ keys / messages
    def _bind_keys(self) -> None:
        for key, yes in KEYS.items():
            self.viewer.bind_key(key, lambda _v, yes=yes: self.answer(yes), overwrite=True)
        self.viewer.bind_key("u", lambda _v: self.undo(), overwrite=True)

    def _unbind_keys(self) -> None:
        for key in (*KEYS, "u"):
            try:
                self.viewer.bind_key(key, None)
            except Exception:  # pragma: no cover - viewer already closed
                pass

    # ------------------------------------------------------------------ session
    def start(self, study: str | Path | None = None,
              exemplar: str | list[str] | None = None, restart: bool = False) -> bool:
        """Open (or resume) the search and show its first batch; False and a message on
        error (no Study, unknown crop, tau out of range, no images).

        Parameters
        ----------
        study : str, pathlib.Path or None
            The Study folder; None keeps the one typed in the widget.
        exemplar : str, list of str or None
            The exemplar crop id(s); None keeps those typed in the widget.
        restart : bool
            Replace a kept search instead of resuming it.

        Returns
        -------
        bool
            True when the search is open.
        """
        from workbench.napari._source import open_source
        from workbench.tools.find import FindSession

        if study is not None:
            self.path_edit.setText(str(study))
        if exemplar is not None:
            self.exemplar_edit.setText(", ".join(exemplar) if isinstance(exemplar, (list, tuple))
                                       else str(exemplar))
        exemplars = [e.strip() for e in self.exemplar_edit.text().split(",") if e.strip()]
        try:
            if not self.path_edit.text().strip():
                raise ValidationError("no Study folder given.", "type a NAME.study folder.")
            source = open_source(self.path_edit.text().strip())
            source.require_images()
            session = FindSession.open(source.study, exemplars,
                                       tau=self.tau_box.value() / 100,
                                       batch=self.batch_box.value(), seed=self.seed,
                                       restart=restart)
        except Exception as exc:
            return self._fail(exc)
        self.source, self.session = source, session
        kept = len(session.search.state.labels)
        self._say(f"search around {', '.join(exemplars)} in {source.study.title}"
                  + (f": resumed with {kept} answers kept." if kept else "."))
        self._show_interval()
        return self.next_batch()

    def next_batch(self) -> bool:
        """Ask the session for the next candidates and show them.

        Returns
        -------
        bool
            True when a batch is on screen; False when there is none to ask (or on error).
        """
        if self.session is None:
            return self._fail(ValidationError("no search is open.", "press Start first."))
        try:
            ids: list[str] = []
            for _ in range(200):  # draws of crops already answered need no new answer
                ids = self.session.next_batch()
                if ids:
                    break
                self.session.record({})
            self.batch_ids, self.given = ids, {}
            self._draw_batch()
        except Exception as exc:
            return self._fail(exc)
        self._show_progress()
        return bool(ids)

    def answer(self, yes: bool) -> bool:
        """Answer the framed crop; the last answer of a batch records and saves it.

        Parameters
        ----------
        yes : bool
            Whether the framed crop shows the phenotype.

        Returns
        -------
        bool
            False when no crop is framed; after the last answer of a batch, whether the batch
            was recorded and the next one shown; otherwise True.
        """
        crop = self.current
        if crop is None:
            return False
        self.given[crop] = bool(yes)
        if len(self.given) == len(self.batch_ids):
            return self._finish_batch()
        self._show_progress()
        return True

    def undo(self) -> None:
        """Take back the last answer of the batch on screen."""
        if self.given:
            self.given.pop(list(self.given)[-1])
            self._show_progress()

    @property
    def current(self) -> str | None:
        """The crop to answer next (None when no batch is on screen)."""
        for cid in self.batch_ids:
            if cid not in self.given:
                return cid
        return None

    def _finish_batch(self) -> bool:
        try:
            self.session.record(dict(self.given))
            self.session.save(oracle="person")
        except Exception as exc:
            return self._fail(exc)
        self._show_interval()
        return self.next_batch()

    # ------------------------------------------------------------------ display
    def _show_interval(self) -> None:
        s = self.session
        lo, hi = s.interval
        n = len(s.search.state.labels)
        pos = int(sum(s.search.state.labels.values()))
        tau = s.settings["tau"]
        if not np.isfinite(lo):
            self.interval_label.setText(f"{n} answers ({pos} yes); this policy gives no "
                                        "interval.")
        else:
            self.interval_label.setText(
                f"{n} answers ({pos} yes): prevalence in [{lo:.2%}, {hi:.2%}] "
                f"({1 - s.settings['delta']:.0%} confidence), tau {tau:.2%}.")
        self.status_label.setText(recommendation(s.status))

    def _show_progress(self) -> None:
        cur = self.current
        k = len(self.given)
        if cur is None:
            self.progress.setText("no candidates left to show.")
        else:
            line = _crops.describe_crop(self.source.obs, cur) if self.source else cur
            self.progress.setText(f"crop {k + 1} of {len(self.batch_ids)}: {line}")
        self._update_frames()

    def _clear(self, prefix: str) -> None:
        for layer in list(self.viewer.layers):
            if layer.name.startswith(prefix):
                self.viewer.layers.remove(layer)
        self.layers = [lay for lay in self.layers if lay in self.viewer.layers]

    def _add(self, data: list[tuple]) -> list:
        out = []
        for arr, kwargs, layer_type in data:
            added = getattr(self.viewer, f"add_{layer_type}")(arr, **kwargs)
            out.extend(added if isinstance(added, list) else [added])
        self.layers.extend(out)
        return out

    def _positions(self, ids: list[str]) -> np.ndarray:
        pos = self.source.obs.index.astype(str).get_indexer(ids)
        return pos[pos >= 0]

    def _draw_batch(self) -> None:
        self._cells = {}
        if not self.batch_ids:
            self._clear(BATCH_LABEL)
            return
        rnd = self.session.search.state.n_rounds + 1
        cond = _crops.Condition(f"round {rnd}", self._positions(self.batch_ids),
                                f"{len(self.batch_ids)} candidates")
        data = _crops.crop_layers(self.source.store, [cond], label=BATCH_LABEL,
                                  study_path=str(self.source.path),
                                  contrast=self.source.contrast, masks=False)
        info = data[0][1]["metadata"][_crops.META_KEY]
        self._cells = {cid: (y, x) for y, x, _, cid in info["cells"]}
        self._hw = tuple(info["crop_hw"])
        if not self._refill(data):
            self._clear(BATCH_LABEL)
            self._add(data)
            self.viewer.reset_view()

    def _refill(self, data: list[tuple]) -> bool:
        """Put a new batch into the layers already on screen when the grid has the same
        size (new layers are slow to make under software OpenGL); False when it has not."""
        mosaic, kwargs, _ = data[0]
        names = kwargs["name"]
        points = [d for d in data if d[2] == "points"]
        if not all(n in self.viewer.layers for n in names) or not points \
                or points[0][1]["name"] not in self.viewer.layers \
                or self.viewer.layers[names[0]].data.shape != mosaic.shape[1:]:
            return False
        for c, name in enumerate(names):
            layer = self.viewer.layers[name]
            layer.data = mosaic[c]
            layer.metadata = dict(kwargs["metadata"])
        pts, pkw, _ = points[0]
        layer = self.viewer.layers[pkw["name"]]
        layer.data = pts
        layer.features = pkw["features"]
        layer.metadata = dict(pkw["metadata"])
        return True

    def _update_frames(self) -> None:
        """One rectangle per crop of the batch: yellow the one to answer, green yes, red
        no, grey not yet."""
        if not self._cells:
            self._clear(FRAME)
            return
        h, w = self._hw
        rects, colours = [], []
        cur = self.current
        for cid in self.batch_ids:
            if cid not in self._cells:
                continue
            y, x = self._cells[cid]
            rects.append(np.array([[y, x], [y + h, x + w]], float))
            colours.append("yellow" if cid == cur else "lime" if self.given.get(cid) is True
                           else "red" if cid in self.given else "gray")
        key = [r.tolist() for r in rects]
        if FRAME in self.viewer.layers and getattr(self, "_frame_key", None) == key:
            self.viewer.layers[FRAME].edge_color = colours  # same grid: recolour in place
            return
        self._frame_key = key
        self._clear(FRAME)
        layer = self.viewer.add_shapes(rects, shape_type="rectangle", name=FRAME,
                                       edge_color=colours, face_color="transparent",
                                       edge_width=max(1, h // 16))
        self.layers.append(layer)

    def show_results(self, n_perturbations: int = 8, n_crops: int = 12) -> bool:
        """Show the perturbations enriched for the phenotype (q-values) and a grid of the
        top-scoring crops.

        Parameters
        ----------
        n_perturbations : int
            Most perturbations listed.
        n_crops : int
            Most crops in the grid.

        Returns
        -------
        bool
            True when the results are shown.
        """
        if self.session is None:
            return self._fail(ValidationError("no search is open.", "press Start first."))
        try:
            enr = self.session.enrichment().head(n_perturbations)
            top = self.session.top_crops(n_crops)
            self._clear(TOP_LABEL)
            cond = _crops.Condition("top-scoring crops", self._positions(top),
                                    f"{len(top)} of {len(self.session.crop_ids)}")
            self._add(_crops.crop_layers(self.source.store, [cond], label=TOP_LABEL,
                                         study_path=str(self.source.path),
                                         contrast=self.source.contrast, masks=False))
        except Exception as exc:
            return self._fail(exc)
        lines = ["Perturbations enriched for the phenotype (one-sided Fisher, BH q):"]
        lines += [f"{r.perturbation}: {r.n_positive} of {r.n_crops} crops, q = {r.q:.3g}"
                  for r in enr.itertuples()]
        lines.append("Top-scoring crops: " + ", ".join(top))
        self.results.setText("\n".join(lines))
        self.enrichment, self.top = enr, top
        return True

    def closeEvent(self, event):  # noqa: N802 - Qt's name
        """Release the answer keys when the widget closes (Qt's close handler).

        Parameters
        ----------
        event : QCloseEvent
            The close event, passed on to Qt.
        """
        self._unbind_keys()
        super().closeEvent(event)
