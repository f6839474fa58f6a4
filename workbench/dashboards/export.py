"""Exports: the current selection and every view's table as CSV, figures as HTML, PNG or SVG.

A view may export more than one table: the interactions view writes its "next pairs to
run" (rank, pair, prediction with its 90% interval, reason, planner) as a file of its own
beside the tested pairs, so that each CSV stays one rectangular table.

In the browser each plot's toolbar has a save button: it downloads a PNG, or an SVG when
the view's "SVG figures" switch is on (Bokeh then draws with its SVG backend). From Python
(a notebook, a script), :func:`save_figure` writes a HoloViews object to ``.html`` with
Bokeh, and to ``.png`` or ``.svg`` by opening that page in a headless Chromium through
Playwright when both are installed; :func:`export_view` writes a view as it is drawn now
(its colouring, its level) as PNG and SVG together with the data behind it as CSV, so a
figure and its numbers travel together.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def selection_table(study, selection) -> pd.DataFrame:
    """One row per selected sample (its id and screen metadata) with the selection's
    perturbation, concept and pair as columns. With no samples selected, the samples of
    the selected perturbation; with neither, a single row holding the selection.

    Parameters
    ----------
    study : Study
        The open Study; the samples' metadata come from ``profiles`` or else ``images``.
    selection : Selection
        The session's selection.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``sample``, with columns ``selected_perturbation``,
        ``selected_concept`` and ``selected_pair`` after the samples' metadata.
    """
    from workbench.dashboards.embeddings import highlight_mask

    head = {"selected_perturbation": selection.perturbation,
            "selected_concept": selection.concept, "selected_pair": selection.pair}
    obs = None
    if study.has("profiles"):
        obs = study.read_obs("profiles")
    elif study.has("images"):
        obs = study.read("images").obs
    if obs is not None:
        obs = obs.copy()
        obs.index = obs.index.astype(str)
        if selection.samples:
            rows = obs.loc[[s for s in selection.samples if s in obs.index]]
        elif selection.perturbation and "perturbation" in obs:
            rows = obs[highlight_mask(obs, selection.perturbation)]
        else:
            rows = obs.iloc[:0]
        if len(rows):
            rows = rows.assign(**head)
            rows.index.name = "sample"
            return rows
    return pd.DataFrame([{"sample": "", **head}]).set_index("sample")


def write_selection_csv(study, selection, path: str | os.PathLike) -> Path:
    """Write :func:`selection_table` to a CSV file.

    Parameters
    ----------
    study : Study
        The open Study.
    selection : Selection
        The session's selection.
    path : str or os.PathLike
        The CSV file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    selection_table(study, selection).to_csv(path)
    return path


def extra_tables(view) -> dict[str, pd.DataFrame]:
    """The tables a view exports beside its main one (``{name: table}``; the interactions
    view's "next pairs to run" when the Study holds a pair plan), or none.

    Parameters
    ----------
    view : StudyView
        A dashboard view; one without an ``extra_tables`` method has none.

    Returns
    -------
    dict of str to pandas.DataFrame
        The tables by name (empty when there are none).
    """
    return view.extra_tables() if hasattr(view, "extra_tables") else {}


def _write_extra(view, folder: Path, stem: str) -> dict[str, Path]:
    out = {}
    for name, table in extra_tables(view).items():
        out[name] = folder / f"{stem}_{name}.csv"
        table.to_csv(out[name], index=False)
    return out


def write_view_tables(views: dict, folder: str | os.PathLike) -> list[Path]:
    """Write ``<view>.csv`` for each view (``{name: view}``) into ``folder``, and each of a
    view's extra tables as ``<view>_<table>.csv`` (the interactions view's
    ``interactions_next_pairs.csv``).

    Parameters
    ----------
    views : dict
        View name to view; views with missing inputs are skipped.
    folder : str or os.PathLike
        Folder to write into (created when absent).

    Returns
    -------
    list of pathlib.Path
        The files written, each view's main table before its extra ones.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, view in views.items():
        if not view.missing:
            p = folder / f"{name}.csv"
            view.table().to_csv(p)
            out.append(p)
            out.extend(_write_extra(view, folder, name).values())
    return out


#: Collects the SVG of every Bokeh plot on a page: each plot view repaints itself into an
#: SVG context (``view.export("svg")``), whatever backend it draws with on screen.
_SVG_JS = """() => {
  const {LayoutDOMView} = Bokeh.require("models/layouts/layout_dom")
  const {PlotView} = Bokeh.require("models/plots/plot")
  const out = []
  const walk = (views) => { for (const v of views) {
    if (v instanceof PlotView) out.push(v.export("svg").ctx.get_serialized_svg(true))
    else if (v instanceof LayoutDOMView) walk(v.child_views.values()) } }
  walk(Bokeh.index)
  return out }"""


def _chromium() -> str:
    chromium = (os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium")
                or "/usr/bin/chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise WorkbenchError("PNG and SVG export need Playwright.",
                             "pip install playwright, or use the plot's save button.") from exc
    if not Path(chromium).exists():
        raise WorkbenchError(f"PNG and SVG export need Chromium; {chromium} does not exist.",
                             "install it (apt-get install chromium) or set WORKBENCH_CHROMIUM.")
    return chromium


def off_running_loop(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, in a worker thread when this thread runs an asyncio loop.

    Playwright's sync API refuses to start inside a running event loop, and JupyterLab's
    kernel (like a Panel server) runs one in its main thread; a thread of its own has none.

    Parameters
    ----------
    fn : callable
        What to run.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    object
        What ``fn`` returns; its exception is raised here.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _render_in_browser(obj, outputs: dict[str, Path], width: int, height: int) -> None:
    """Open ``obj`` as a standalone Bokeh page in headless Chromium and write each of
    ``outputs`` (``{"png": path, "svg": path}``), off any running event loop."""
    off_running_loop(_render_now, obj, outputs, width, height)


def _render_now(obj, outputs: dict[str, Path], width: int, height: int) -> None:
    import holoviews as hv
    from bokeh.resources import INLINE
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "figure.html"
        hv.save(obj, page_file, backend="bokeh", resources=INLINE)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(page_file.as_uri())
                page.wait_for_selector(".bk-Figure, .bk-Canvas, canvas", timeout=20_000)
                page.wait_for_timeout(300)
                if "png" in outputs:
                    page.screenshot(path=str(outputs["png"]), full_page=True)
                if "svg" in outputs:
                    svgs = page.evaluate(_SVG_JS)
                    if not svgs:
                        raise WorkbenchError("the figure has no plot to write as SVG.",
                                             "export a view that draws a plot.")
                    outputs["svg"].write_text(svgs[0])
            finally:
                browser.close()


def save_figure(obj, path: str | os.PathLike, *, width: int = 900, height: int = 600) -> Path:
    """Write a HoloViews/Panel object to ``.html``, ``.png`` or ``.svg``.

    PNG and SVG need Playwright and a Chromium (``$WORKBENCH_CHROMIUM`` or
    ``/usr/bin/chromium``); the SVG is the first plot of the figure, drawn by Bokeh's SVG
    backend (vector shapes and text, for a journal figure).

    Parameters
    ----------
    obj : object
        A HoloViews element or layout, or a Panel object (one with ``save`` is saved by
        its own method for ``.html``).
    path : str or os.PathLike
        The file; its suffix picks the format.
    width, height : int
        Browser viewport in pixels for PNG and SVG.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    WorkbenchError
        For another suffix, or PNG/SVG without Playwright or Chromium.
    """
    import holoviews as hv

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".html":
        hv.save(obj, path, backend="bokeh") if not hasattr(obj, "save") else obj.save(path)
        return path
    if suffix not in (".png", ".svg"):
        raise WorkbenchError(f"cannot write a figure as {suffix or 'a file without suffix'}.",
                             "use .html, .png or .svg.")
    _render_in_browser(obj, {suffix[1:]: path}, width, height)
    return path


def export_view(view, folder: str | os.PathLike, *, formats=("png", "svg"),
                width: int = 900, height: int = 600) -> dict[str, Path]:
    """Write the view as it is drawn now, with the data behind it, into ``folder``:
    ``<key>.csv`` (the view's ``figure_data()`` where it has one, else its table), each of
    its extra tables as ``<key>_<table>.csv`` (the interactions view's "next pairs to run",
    ``interactions_next_pairs.csv``), and ``<key>.png`` / ``<key>.svg`` of its
    ``figure()``.

    Parameters
    ----------
    view : StudyView
        The view, in its current state.
    folder : str or os.PathLike
        Folder to write into (created when absent).
    formats : sequence of str
        Figure formats among ``"png"``, ``"svg"`` and ``"html"``; empty writes only the
        CSV files.
    width, height : int
        Browser viewport in pixels for the figures.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"csv": path, format: path, ...}``, with the extra tables under their names
        (``"next_pairs"``).

    Raises
    ------
    WorkbenchError
        For an unknown format, a view with missing inputs, or figure formats for a view
        without a figure.
    """
    formats = tuple(formats)
    bad = [f for f in formats if f not in ("png", "svg", "html")]
    if bad:
        raise WorkbenchError(f"cannot export a view as {bad}.", "use png, svg or html.")
    if view.missing:
        raise WorkbenchError(f"the {view.label} view has nothing to export: "
                             f"{view.missing[0].problem}", view.missing[0].fix)
    if formats and not hasattr(view, "figure"):
        raise WorkbenchError(f"the {view.label} view has no figure to export.",
                             "export its table (formats=()) or use the plot's save button.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = view.figure_data() if hasattr(view, "figure_data") else view.table()
    out = {"csv": folder / f"{view.key}.csv"}
    data.to_csv(out["csv"])
    out.update(_write_extra(view, folder, view.key))
    if not formats:
        return out
    fig = view.figure()
    paths = {f: folder / f"{view.key}.{f}" for f in formats}
    if "html" in paths:
        save_figure(fig, paths.pop("html"), width=width, height=height)
        out["html"] = folder / f"{view.key}.html"
    if paths:
        _render_in_browser(fig, paths, width, height)
    return {**out, **paths}
