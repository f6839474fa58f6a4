"""napari plugin: open Studies, browse crops by perturbation, pair and concept.

The plugin is declared in ``workbench/napari.yaml`` (npe2) and contributes

* a reader for ``NAME.study`` folders and for folders of TIFF fields with CellProfiler
  masks (:mod:`workbench.napari._reader`);
* sample data: the tiny demo Study, built on the fly by the real steps
  (:mod:`workbench.napari._sample`);
* the Study browser dock widget (:class:`workbench.napari._widget.StudyBrowser`), which,
  opened from a dashboard session, follows that session's selection and sends its own
  choices back (:mod:`workbench.napari._follow`).

``import workbench.napari`` stays light: Qt and napari load only when the widget or
:func:`view_study` is used.
"""

from __future__ import annotations

__all__ = ["view_study", "StudyBrowser"]


def view_study(study, *, perturbation: str | None = None, concept: str | None = None,
               pair: str | None = None, channel=None, viewer=None, show: bool = True):
    """Open a napari viewer on a Study with the Study browser docked.

    Parameters
    ----------
    study : str or os.PathLike
        Path of the ``NAME.study`` folder.
    perturbation, concept, pair : str, optional
        At most one: what the browser shows first (otherwise an overview of the Study).
    channel : str or os.PathLike, optional
        The selection channel of a dashboard session (a path): napari follows the session
        and sends its own choices back.
    viewer : napari.Viewer, optional
        An existing viewer; a new one is made when None.
    show : bool
        Show the new viewer's window (ignored when ``viewer`` is given).

    Returns
    -------
    viewer : napari.Viewer
        The viewer (``viewer`` itself when given).
    browser : StudyBrowser
        The docked Study browser, with the Study open when it could be browsed.
    """
    import napari

    from workbench.napari._widget import StudyBrowser

    viewer = viewer or napari.Viewer(show=show, title="workbench")
    browser = StudyBrowser(viewer, channel=channel)
    viewer.window.add_dock_widget(browser, name="Study browser", area="right")
    if browser.open_study(study):
        chosen = [(k, v) for k, v in (("perturbation", perturbation), ("concept", concept),
                                      ("pair", pair)) if v]
        if chosen:
            browser.load(*chosen[0])
        else:
            for arr, kw, kind in browser.source.overview_layers():
                added = getattr(viewer, f"add_{kind}")(arr, **kw)
                browser.layers.extend(added if isinstance(added, list) else [added])
        if channel is not None:
            browser.set_follow(True)
    return viewer, browser


def __getattr__(name: str):
    if name == "StudyBrowser":
        from workbench.napari._widget import StudyBrowser

        return StudyBrowser
    raise AttributeError(f"module 'workbench.napari' has no attribute {name!r}")
