"""Guard against a Qt binding that leaks references to ``None`` (PySide6 6.12.0, CPython 3.11).

With PySide6 6.12.0 on CPython 3.11, every call of a Qt method that returns ``void``
(``QLabel.setText``, ``QWidget.setStyleSheet``, ...) takes one reference from ``None``
without having given it one. A napari session makes thousands of such calls, so the
reference count of ``None`` reaches zero and the interpreter aborts with
``Fatal Python error: none_dealloc: deallocating None`` (exit status 134), at the latest
when it shuts down. From CPython 3.12 on, ``None`` is immortal and the leak is harmless.

:func:`protect_none` probes the binding once (a hundred ``QObject.setObjectName`` calls)
and, only when the leak is seen, raises the reference count of ``None`` far beyond what a
session can consume. The real fix is a binding without the bug (another PySide6 release,
or Python >= 3.12); this keeps sessions alive until then.
"""

from __future__ import annotations

import sys

_checked = False
#: Extra references given to None when the leak is detected (2**40: ~10**12 calls).
BALLAST = 1 << 40


def leaks_none(calls: int = 100) -> bool:
    """Whether void Qt calls of the active binding drop references to ``None``.

    Parameters
    ----------
    calls : int
        Probe calls to make; a leak is seen when at least half of them lose a reference.

    Returns
    -------
    bool
        True when the leak is seen; False without a Qt binding.
    """
    try:
        from qtpy.QtCore import QObject
    except Exception:  # no Qt binding: nothing to guard
        return False
    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        obj.setObjectName("probe")
    return before - sys.getrefcount(None) >= calls // 2


def protect_none() -> bool:
    """Apply the guard once per process when needed; True when it was applied now.

    Returns
    -------
    bool
        True only on the call that applied the guard.
    """
    global _checked
    if _checked:
        return False
    _checked = True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not leaks_none():
        return False
    import ctypes

    # ob_refcnt is the first field of every CPython object (non-debug builds).
    ctypes.c_ssize_t.from_address(id(None)).value += BALLAST
    return True
