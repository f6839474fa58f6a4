"""Linked Panel dashboards over a Study (served, or inside JupyterLab).

``import workbench.dashboards`` is cheap; Panel and HoloViews load when a view is built.

* :func:`show` - the dashboard in a notebook: ``workbench.dashboards.show(study)``;
* :func:`serve_study` - serve it (what ``workbench serve`` and ``workbench demo`` call);
* :class:`Selection` - the one state every view reads and writes (no Panel import).
"""

from __future__ import annotations

import importlib

__all__ = ["Selection", "build_app", "serve_study", "show"]

_LAZY = {"Selection": "workbench.dashboards.state", "build_app": "workbench.dashboards.app",
         "serve_study": "workbench.dashboards.serve"}


def show(study, views=None, *, ipywidget: bool = False, local: bool = True):
    """The dashboard of ``study`` (a Study or a path) for a Jupyter notebook.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or the path of its folder.
    views : sequence of str, optional
        The views shown (two to four of :data:`~workbench.dashboards.state.VIEW_NAMES`);
        None shows :data:`~workbench.dashboards.state.DEFAULT_VIEWS`.
    ipywidget : bool
        Wrap the dashboard as an ipywidget (for ipywidgets layouts and voila).
    local : bool
        Running on the user's own machine: the header gets an "Open in napari" button.

    Returns
    -------
    Dashboard or ipywidgets.Widget
        The Panel object, which renders as the cell's output in JupyterLab (or its
        ipywidget wrapper).
    """
    import holoviews as hv
    import panel as pn

    from workbench.dashboards.app import EXTENSIONS, build_app

    pn.extension(*EXTENSIONS)
    hv.extension("bokeh", logo=False)
    dash = build_app(study, views=views, local=local, sync_url=False)
    return pn.ipywidget(dash) if ipywidget else dash


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench.dashboards' has no attribute {name!r}")
