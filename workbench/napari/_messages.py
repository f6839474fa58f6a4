"""The status line shared by the plugin's dock widgets: a message label, errors in red and
as a napari warning, our own errors shown as they are and anything else logged."""

from __future__ import annotations

import logging

from workbench.errors import WorkbenchError


class MessageLine:
    """Mixin for a widget with a ``message`` label; ``_what`` names it in the log."""

    _what = "widget"

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #ff6b6b;" if error else "")
        if error:
            try:
                from napari.utils.notifications import show_warning

                show_warning(text)
            except Exception:  # pragma: no cover - notification manager gone at teardown
                logging.getLogger(type(self).__module__).warning(text)

    def _fail(self, exc: Exception) -> bool:
        if isinstance(exc, WorkbenchError):
            self._say(str(exc), error=True)
        else:  # a bug of ours: say so briefly, keep the details in the log
            logging.getLogger(type(self).__module__).exception(f"{self._what} failed")
            self._say(f"unexpected error: {type(exc).__name__}: {exc}", error=True)
        return False
