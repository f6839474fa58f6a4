"""The dashboard views one at a time, and static figures of their plots.

Each view function (:func:`embeddings`, :func:`perturbation_map`, :func:`concepts`,
:func:`interactions`, :func:`grn`, :func:`images`) returns the same view the dashboard
shows, alone; as the last expression of a notebook cell it renders there, with its widgets
live. Views made with the same ``selection`` follow each other, as in the dashboard.

:func:`figure` returns a view's data plot as a HoloViews object; :func:`save` writes it to
``.html`` (Bokeh, no browser needed), ``.png`` or ``.svg`` (the page drawn in a headless
Chromium through Playwright, with Bokeh's canvas or SVG backend). Matplotlib is not
needed for any of them.

:func:`gene_card` shows everything the Study knows about one gene.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.tl import as_study, check_int, check_str

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from holoviews.core import Dimensioned

    from workbench.dashboards.base import StudyView
    from workbench.dashboards.state import Selection
    from workbench.data.study import Study

__all__ = [
    "concepts", "embeddings", "figure", "gene_card", "grn", "images", "interactions",
    "perturbation_map", "save",
]

#: The method of each view that draws its data plot (views made of images and tables
#: have none).
PLOT_METHODS = {"embeddings": "plot", "perturbation_map": "heatmap", "interactions": "matrix",
                "grn": "matrix"}


def _extensions() -> None:
    import holoviews as hv
    import panel as pn

    from workbench.dashboards.app import EXTENSIONS

    pn.extension(*EXTENSIONS)
    hv.extension("bokeh", logo=False)


def _view(name: str, study: Any, selection: Selection | None, gene: str | None,
          params: dict[str, Any]):
    from workbench.dashboards.app import view_class
    from workbench.dashboards.state import Selection

    study = as_study(study)
    if selection is None:
        selection = Selection()
    elif not isinstance(selection, Selection):
        raise WorkbenchError(f"selection must be a workbench Selection, got "
                             f"{type(selection).__name__}.",
                             "pass the .selection of another view, or leave it None.")
    gene = check_str("gene", gene, optional=True)
    if gene:
        selection.perturbation = gene
    _extensions()
    return view_class(name)(study, selection=selection, **params)


def embeddings(study: Study | str | os.PathLike, *, selection: Selection | None = None,
               gene: str | None = None, **params: Any) -> StudyView:
    """The embedding scatter (samples or perturbations; PCA or UMAP), with the block probe
    and the map benchmarks.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after ``wb.tl.embed``), or its path.
    selection : Selection, optional
        A shared :class:`~workbench.dashboards.state.Selection`, such as another view's
        ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Select this perturbation first.
    **params
        Parameters of the view (``level``, ``basis``, ``color_by``, ``width``, ``height``,
        ``svg``).

    Returns
    -------
    EmbeddingsView
        A Panel viewer; it renders as the cell's output in a notebook.
    """
    return _view("embeddings", study, selection, gene, params)


def perturbation_map(study: Study | str | os.PathLike, *, selection: Selection | None = None,
                     gene: str | None = None, **params: Any) -> StudyView:
    """The clustered cosine-similarity heatmap and the nearest neighbours of the selection.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after ``wb.tl.embed``), or its path.
    selection : Selection, optional
        Another view's ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Select this perturbation first.
    **params
        Parameters of the view (``k``, ``width``, ``height``, ``svg``).

    Returns
    -------
    PerturbationMapView
        A Panel viewer.
    """
    return _view("perturbation_map", study, selection, gene, params)


def concepts(study: Study | str | os.PathLike, *, selection: Selection | None = None,
             gene: str | None = None, **params: Any) -> StudyView:
    """The concept browser: the concept table, and a concept's page (activation histogram,
    top perturbations, enrichment, exemplar crops).

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after ``wb.tl.concepts``), or its path.
    selection : Selection, optional
        Another view's ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Select this perturbation first (the list then shows its concepts).
    **params
        Parameters of the view.

    Returns
    -------
    ConceptsView
        A Panel viewer.
    """
    return _view("concepts", study, selection, gene, params)


def interactions(study: Study | str | os.PathLike, *, selection: Selection | None = None,
                 gene: str | None = None, **params: Any) -> StudyView:
    """The pair matrix, the volcano plot and a pair's four conditions side by side.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after ``wb.tl.interactions``), or its path.
    selection : Selection, optional
        Another view's ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Select this perturbation first.
    **params
        Parameters of the view (``test``, ``value``, ``width``, ``height``, ``svg``).

    Returns
    -------
    InteractionsView
        A Panel viewer.
    """
    return _view("interactions", study, selection, gene, params)


def grn(study: Study | str | os.PathLike, *, selection: Selection | None = None,
        gene: str | None = None, **params: Any) -> StudyView:
    """The GRN posterior: edge-probability matrix, the subgraph around the selected gene,
    cycles, and agreement with the baseline.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (after ``wb.tl.grn``), or its path.
    selection : Selection, optional
        Another view's ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Centre the subgraph on this gene.
    **params
        Parameters of the view (``threshold``, ``width``, ``height``, ``svg``).

    Returns
    -------
    GRNView
        A Panel viewer.
    """
    return _view("grn", study, selection, gene, params)


def images(study: Study | str | os.PathLike, *, selection: Selection | None = None,
           gene: str | None = None, **params: Any) -> StudyView:
    """Crops of the selected perturbation next to controls of the same plate.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study (with ``images``), or its path.
    selection : Selection, optional
        Another view's ``.selection``, to follow it (default: a new one).
    gene : str, optional
        Show this perturbation's crops.
    **params
        Parameters of the view.

    Returns
    -------
    ImagesView
        A Panel viewer.
    """
    return _view("images", study, selection, gene, params)


def figure(study: Study | str | os.PathLike, view: str, *, gene: str | None = None,
           width: int = 600, height: int = 450, svg: bool = False) -> Dimensioned:
    """The data plot of one view as a HoloViews object (no widgets around it).

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or its path.
    view : str
        One of ``"embeddings"``, ``"perturbation_map"``, ``"interactions"``, ``"grn"``
        (:data:`PLOT_METHODS`).
    gene : str, optional
        Select this perturbation first (highlighted where the plot shows selections).
    width, height : int
        Plot size in pixels.
    svg : bool
        Draw with Bokeh's SVG backend (what :func:`save` uses for ``.svg``).

    Returns
    -------
    holoviews.core.Dimensioned
        The plot; it renders in a notebook and ``hv.save`` writes it.
    """
    view = check_str("view", view, choices=tuple(PLOT_METHODS))
    v = _view(view, study, None, gene,
              dict(width=check_int("width", width, minimum=200),
                   height=check_int("height", height, minimum=150), svg=bool(svg)))
    if v.missing:
        raise v.missing[0]
    return getattr(v, PLOT_METHODS[view])()


def save(study: Study | str | os.PathLike, view: str, path: str | os.PathLike, *,
         gene: str | None = None, width: int = 600, height: int = 450) -> Path:
    """Write the data plot of one view to ``.html``, ``.png`` or ``.svg``.

    HTML is written by Bokeh alone. PNG and SVG open that page in a headless Chromium
    through Playwright (``$WORKBENCH_CHROMIUM``, else ``chromium`` on the ``PATH``): PNG is
    a screenshot of the plot, SVG is what Bokeh's SVG backend drew. No matplotlib.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or its path.
    view : str
        A view with a data plot (see :func:`figure`).
    path : str or os.PathLike
        The file to write; its suffix picks the format.
    gene : str, optional
        Select this perturbation first.
    width, height : int
        Plot size in pixels.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise WorkbenchError(f"path must be a file path, got {type(path).__name__}.",
                             "pass a string or pathlib.Path ending in .html, .png or .svg.")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".png", ".svg"):
        raise WorkbenchError(f"cannot write a figure as {suffix or 'a file without suffix'}.",
                             "end the path in .html, .png or .svg.")
    obj = figure(study, view, gene=gene, width=width, height=height, svg=suffix == ".svg")
    import holoviews as hv
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    model = hv.render(obj, backend="bokeh")
    if hasattr(model, "toolbar_location"):
        model.toolbar_location = None  # a figure for a paper, not a widget
    html = file_html(model, INLINE, title=f"workbench {view}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        path.write_text(html, encoding="utf-8")
        return path
    _browser_export(html, model.id, path, width, height)
    return path


_SVG_JS = """(ids) => {
  const out = [];
  for (const view of Bokeh.index) {
    if (ids.includes(view.model.id)) out.push(view.export("svg").ctx.get_serialized_svg(true));
  }
  return out;
}"""
_IDLE_JS = "() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && " \
           "Bokeh.documents[0].is_idle"


def _chromium() -> str:
    import shutil

    path = os.environ.get("WORKBENCH_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not path or not Path(path).exists():
        raise WorkbenchError("PNG and SVG export need a Chromium; none was found.",
                             "install it (apt-get install chromium), set WORKBENCH_CHROMIUM, "
                             "or save as .html.")
    return path


def _browser_export(html: str, model_id: str, path: Path, width: int, height: int) -> None:
    from workbench.dashboards.export import off_running_loop

    off_running_loop(_browser_export_now, html, model_id, path, width, height)


def _browser_export_now(html: str, model_id: str, path: Path, width: int,
                        height: int) -> None:
    import tempfile

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise WorkbenchError("PNG and SVG export need Playwright.",
                             "pip install playwright, or save as .html.") from exc
    from workbench.dashboards.export import CHROMIUM_ARGS

    chromium = _chromium()
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "figure.html"
        page_file.write_text(html, encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": width + 40, "height": height + 40})
                page.goto(page_file.as_uri())
                page.wait_for_function(_IDLE_JS, timeout=30_000)
                if path.suffix.lower() == ".svg":
                    svgs = page.evaluate(_SVG_JS, [model_id])
                    if not svgs:
                        raise WorkbenchError("the plot drew no SVG.", "save as .png or .html.")
                    path.write_text(svgs[0], encoding="utf-8")
                else:
                    page.wait_for_timeout(200)
                    page.locator(".bk-Figure, .bk-GridPlot, .bk-Column, .bk-Row").first \
                        .screenshot(path=str(path))
            finally:
                browser.close()


def gene_card(study: Study | str | os.PathLike, gene: str, **kwargs: Any) -> pd.DataFrame:
    """Everything the Study knows about one gene, one row per fact: its replicate
    consistency and neighbours in the map, the concepts it drives, its interaction
    partners, its regulators and targets, and what the planners propose next.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or its path.
    gene : str
        The gene (a perturbation of the screen, or a gene of the GRN).
    **kwargs
        Passed on to :func:`workbench.dashboards.gene_card.gene_card`.

    Returns
    -------
    pandas.DataFrame
        Columns ``section``, ``fact``, ``value``, ``baseline`` (the baseline or chance level
        where there is one) and ``view`` (the dashboard view with the detail). An unknown
        gene is an :class:`~workbench.errors.UnknownGeneError` naming close matches.
    """
    gene = check_str("gene", gene)
    try:
        from workbench.dashboards.gene_card import gene_card as _card
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("workbench"):
            raise WorkbenchError("the gene card is not part of this installation yet.",
                                 "update workbench, or use wb.pl.embeddings(study, gene=...) "
                                 "and the other views.") from exc
        raise
    return _card(as_study(study), gene, **kwargs)
