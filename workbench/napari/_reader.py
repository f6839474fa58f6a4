"""napari reader: open a ``NAME.study`` folder, or a folder of TIFF fields with masks.

``get_reader`` follows the npe2 contract: it returns a function for paths it can read and
None otherwise, so napari can ask the next plugin. A Study opens as its whole fields (when
it holds a ``fields`` artefact) or as an overview grid of crops (controls and the first
perturbations); the Study browser dock widget then picks the Study up from the layers'
metadata. A folder that looks like ours but cannot be shown (a ``.study`` folder without
``study.json``, a Study without images) is accepted and answered with a message in napari's
notification area instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError


def _notify(message: str) -> None:
    try:
        from napari.utils.notifications import show_error

        show_error(message)
    except Exception:  # napari missing or no viewer: fall back to the log
        import logging

        logging.getLogger(__name__).error(message)


def _single(path):
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


def get_reader(path):
    """npe2 reader hook: a reader function for a Study or a TIFF field folder, else None.

    Parameters
    ----------
    path : str or list of str
        What napari asks to open (one path, or a list holding one).

    Returns
    -------
    callable or None
        :func:`read_study` or :func:`read_fields`, or None for anything else.
    """
    p = _single(path)
    if p is None or not p.is_dir():
        return None
    if (p / "study.json").is_file() or p.suffix == ".study":
        return read_study
    from workbench.napari._fields import scan_field_folder

    if scan_field_folder(p) is not None:
        return read_fields
    return None


def read_study(path):
    """Layers of a Study (see module docstring); a clear message when it cannot be shown.

    Parameters
    ----------
    path : str or list of str
        The Study folder (or a list holding it).

    Returns
    -------
    list of tuple
        napari layer data tuples; ``[(None,)]`` after notifying the user when it cannot be
        shown.
    """
    from workbench.napari._qt_guard import protect_none
    from workbench.napari._source import open_source

    protect_none()
    p = _single(path)
    try:
        return open_source(p).open_layers()
    except WorkbenchError as exc:
        _notify(f"workbench: cannot open {p.name}: {exc}")
        return [(None,)]


def read_fields(path):
    """Layers of a TIFF field folder: one image layer per channel, masks as labels.

    Parameters
    ----------
    path : str or list of str
        The folder (or a list holding it).

    Returns
    -------
    list of tuple
        napari layer data tuples; ``[(None,)]`` after notifying the user when it cannot be
        read.
    """
    from workbench.napari._fields import field_layers, scan_field_folder
    from workbench.napari._qt_guard import protect_none

    protect_none()
    p = _single(path)
    try:
        return field_layers(scan_field_folder(p), source=str(p))
    except WorkbenchError as exc:
        _notify(f"workbench: cannot open {p.name}: {exc}")
        return [(None,)]
