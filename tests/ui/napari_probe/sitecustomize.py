"""A test probe loaded into the napari process that a dashboard page starts.

The browser test that clicks "Open in napari" puts this folder on ``PYTHONPATH`` and names
a folder in ``WORKBENCH_NAPARI_PROBE``. In that process only, the probe waits for the real
``workbench napari`` command to reach ``napari.run()`` and then, from a Qt timer,

* writes ``report.json`` into the folder: the viewer's layers, the crop ids each crop grid
  shows, the Study browser's message, whether it follows the dashboard, the Study it opened;
* on ``choose.json`` (``{"kind": ..., "value": ...}``) sets the browser's "Browse by" and
  "Choice" boxes and clicks its Show button, as a person would;
* on ``screenshot`` writes ``screenshot.png`` of the canvas (or ``screenshot.err``).

It replaces nothing: the command, the viewer, the Study browser and its channel are the
real ones. Without ``WORKBENCH_NAPARI_PROBE`` it does nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

_DIR = os.environ.get("WORKBENCH_NAPARI_PROBE")


def _install(folder: Path) -> None:
    import napari

    real_run = napari.run

    def run(*args, **kwargs):
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QPushButton

        from workbench.napari._widget import StudyBrowser

        viewer = napari.current_viewer()
        found = [w for w in viewer.window.dock_widgets.values() if isinstance(w, StudyBrowser)]
        browser = found[0] if found else None

        def write(name: str, data) -> None:
            tmp = folder / f".{name}.tmp"
            tmp.write_text(json.dumps(data))
            os.replace(tmp, folder / name)

        def tick() -> None:
            layers = []
            for layer in viewer.layers:
                info = (layer.metadata or {}).get("workbench") or {}
                layers.append({"name": layer.name, "kind": info.get("kind"),
                               "crop_ids": [c[3] for c in info.get("cells", [])]})
            write("report.json", {
                "pid": os.getpid(), "layers": layers,
                "message": browser.message.text() if browser else None,
                "follow": bool(browser and browser.follow_box.isChecked()),
                "study": str(browser.source.path) if browser and browser.source else None})
            ask = folder / "choose.json"
            if browser is not None and ask.exists():
                choice = json.loads(ask.read_text())
                ask.unlink()
                browser.kind_box.setCurrentText(choice["kind"])
                browser.choice_box.setCurrentText(choice["value"])
                show = [b for b in browser.findChildren(QPushButton) if b.text() == "Show"]
                show[0].click()
            if (folder / "screenshot").exists():
                (folder / "screenshot").unlink()
                try:  # a canvas not exposed yet gives Qt a null image: say so, go on
                    viewer.screenshot(str(folder / "screenshot.png"), canvas_only=True,
                                      flash=False)
                except Exception as exc:
                    (folder / "screenshot.err").write_text(repr(exc))

        timer = QTimer()
        timer.setInterval(200)
        timer.timeout.connect(tick)
        timer.start()
        try:
            return real_run(*args, **kwargs)
        finally:
            timer.stop()

    napari.run = run


if _DIR:
    _install(Path(_DIR))
