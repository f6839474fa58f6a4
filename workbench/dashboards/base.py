"""What every dashboard view shares: the Study, the session's Selection, exports, and a
polite placeholder when an artefact it needs has not been computed yet.

A view is a :class:`panel.viewable.Viewer` (STYLE item 4): its state lives in ``param``
parameters, ``__panel__`` lays out widgets made with ``from_param`` and plots whose data
come through ``param.depends``. Each view names the artefacts it ``needs``; when one is
missing, the view shows the problem and the command that makes it (from
:data:`workbench.data.study.MAKERS`) instead of failing.

Text that comes from a user or a Study (a gene name from the URL, a Study title, a status,
a driver list) never reaches the page as markup: :func:`md_text` escapes it for Markdown
panes and :func:`html_text` for HTML panes, so ``?gene=<img src=x onerror=...>`` is shown
as the literal text it is. Table cells are safe as they are: Panel's Tabulator renders them
through Bokeh's ``StringFormatter``, which writes text nodes, never HTML.
"""

from __future__ import annotations

import html
import io
import re
import weakref

import holoviews as hv
import pandas as pd
import panel as pn
import param

from workbench.dashboards.state import Selection
from workbench.errors import MissingArtefactError, WorkbenchError

if "bokeh" not in hv.Store.renderers:  # views use Bokeh options: load the backend once
    hv.extension("bokeh", logo=False)

#: Bokeh tools every plot carries; ``save`` downloads the figure as PNG (or SVG when the
#: view's ``svg`` switch is on).
BASE_TOOLS = ["save", "reset", "pan", "wheel_zoom"]


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
#: ASCII punctuation that Markdown gives a meaning (all of it may be backslash-escaped).
_MD_PUNCT = set("\\`*_{}[]()#+-.!|~:=$")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")


def html_text(value) -> str:
    """``value`` as text that is safe inside HTML (tags, attributes and entities escaped).

    Parameters
    ----------
    value : object
        Any value (None gives an empty string).

    Returns
    -------
    str
        The escaped text.
    """
    return html.escape("" if value is None else str(value), quote=True)


def md_text(value, *, code: bool = False) -> str:
    """``value`` as literal text inside Markdown: HTML characters become entities and
    Markdown punctuation is backslash-escaped, so no tag, link, image or emphasis can be
    injected. Line breaks become spaces. With ``code=True``, backtick code spans of our
    own messages (```workbench grn STUDY```) are kept as code (their content is shown as
    text by the renderer anyway).

    Parameters
    ----------
    value : object
        Any value (None gives an empty string).
    code : bool
        Keep backtick code spans as code.

    Returns
    -------
    str
        The escaped text.
    """
    text = "" if value is None else str(value)
    if code:
        return "".join(part if _CODE_SPAN.fullmatch(part) else md_text(part)
                       for part in _CODE_SPAN.split(text))
    out = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _MD_PUNCT:
            out.append("\\" + ch)
        elif ch in "\r\n\t" or ord(ch) < 32:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def missing_artefacts(study, names) -> list[MissingArtefactError]:
    """The :class:`MissingArtefactError` for each of ``names`` that the Study lacks.

    Parameters
    ----------
    study : Study
        The Study.
    names : iterable of str
        The artefacts a view needs.

    Returns
    -------
    list of MissingArtefactError
        One error (naming the step to run) per missing artefact; empty when none is missing.
    """
    errors = []
    for name in names:
        try:
            study.require(name, why="this view shows it")
        except MissingArtefactError as exc:
            errors.append(exc)
    return errors


def error_pane(exc: Exception, kind: str = "warning") -> pn.pane.Alert:
    """An alert that shows an error: for our own errors, the problem and how to fix it.

    Parameters
    ----------
    exc : Exception
        The error; its text is escaped, so it cannot inject Markdown or HTML.
    kind : str
        The alert type (``"warning"``, ``"danger"``, ...).

    Returns
    -------
    panel.pane.Alert
        The alert pane.
    """
    if isinstance(exc, WorkbenchError):
        text = f"**{md_text(exc.problem, code=True)}**" + (
            f"\n\nTo make it: {md_text(exc.fix, code=True)}" if exc.fix else "")
    else:
        text = f"**{type(exc).__name__}**: {md_text(exc, code=True)}"
    return pn.pane.Alert(text, alert_type=kind, css_classes=["wb-missing"], sizing_mode="stretch_width")


def csv_bytes(df: pd.DataFrame) -> io.BytesIO:
    """A table as CSV (index included) in a rewound buffer, for a download widget.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.

    Returns
    -------
    io.BytesIO
        The CSV text, encoded, positioned at its start.
    """
    buf = io.BytesIO(df.to_csv(index=True).encode())
    buf.seek(0)
    return buf


class StudyView(pn.viewable.Viewer):
    """Base class of the dashboard views (one Study, one Selection per session).

    Parameters
    ----------
    study : Study or None
        The open Study the view reads.
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's other parameters (``svg``, ``height``, ``width``, ...).
    """

    study = param.Parameter(doc="The open Study (workbench.data.study.Study).")
    selection = param.ClassSelector(class_=Selection, doc="The session's shared selection.")
    svg = param.Boolean(default=False, doc="Draw plots as SVG, so that the save tool writes SVG.")
    height = param.Integer(default=380, bounds=(150, 2000), doc="Plot height in pixels.")
    width = param.Integer(default=520, bounds=(200, 3000), doc="Plot width in pixels.")

    #: Artefacts without which the view cannot draw anything.
    needs: tuple[str, ...] = ()
    #: Short name used in file names and CSS classes.
    key = "view"
    label = "View"

    def __init__(self, study=None, selection: Selection | None = None, **params):
        super().__init__(study=study, selection=selection or Selection(), **params)

    # ------------------------------------------------------------------ helpers for views
    @property
    def missing(self) -> list[MissingArtefactError]:
        return missing_artefacts(self.study, self.needs)

    def opts(self, **extra):
        """Common Bokeh plot options.

        Parameters
        ----------
        **extra
            Further options, added to the common ones.

        Returns
        -------
        dict
            Bokeh tools, width, height and the output backend (SVG or canvas), with ``extra``.
        """
        return dict(tools=list(BASE_TOOLS), width=self.width, height=self.height,
                    backend_opts={"plot.output_backend": "svg" if self.svg else "canvas"},
                    **extra)

    def table(self) -> pd.DataFrame:
        """The table behind the view (exported as CSV). Subclasses override.

        Returns
        -------
        pandas.DataFrame
            The table (empty here).
        """
        return pd.DataFrame()

    def _csv(self):
        return csv_bytes(self.table() if not self.missing else pd.DataFrame())

    def export_widget(self) -> pn.widgets.FileDownload:
        """A download button for :meth:`table` as CSV.

        Returns
        -------
        panel.widgets.FileDownload
            The button; its file is built when clicked.
        """
        return pn.widgets.FileDownload(
            callback=self._csv, filename=f"{self.key}.csv", label=f"{self.label} table (CSV)",
            css_classes=[f"wb-export-{self.key}"], width=220, height=34, embed=False)

    def body(self) -> pn.viewable.Viewable:  # pragma: no cover - abstract
        """The view's content below its header (each view defines it).

        Returns
        -------
        panel.viewable.Viewable
            The view's content.
        """
        raise NotImplementedError

    def __panel__(self):
        missing = self.missing
        header = pn.pane.Markdown(f"### {md_text(self.label)}", margin=(0, 10))
        if missing:
            return pn.Column(header, *(error_pane(m) for m in missing),
                             css_classes=["wb-view", f"wb-view-{self.key}"])
        try:
            body = self.body()
        except WorkbenchError as exc:
            body = error_pane(exc)
        tools = pn.Row(self.export_widget(),
                       pn.widgets.Checkbox.from_param(self.param.svg, name="SVG figures"))
        return pn.Column(header, body, tools, css_classes=["wb-view", f"wb-view-{self.key}"])


def no_data(text: str, **opts) -> hv.Text:
    """An empty plot carrying a message (used inside DynamicMaps).

    Parameters
    ----------
    text : str
        The message.
    **opts
        Further HoloViews options of the element (``width``, ``height``, ...).

    Returns
    -------
    holoviews.Text
        The message, without axes or toolbar.
    """
    return hv.Text(0.5, 0.5, text).opts(xaxis=None, yaxis=None, toolbar=None, **opts)


# ---------------------------------------------------------------------- in-place redraws
def _same_shape(old, new) -> bool:
    """Whether :func:`update_in_place` can turn ``old`` into ``new``."""
    if type(old) is not type(new):
        return False
    if isinstance(old, pn.layout.ListLike):
        return len(old) == len(new) and all(_same_shape(a, b) for a, b in
                                             zip(old, new, strict=True))
    if isinstance(old, pn.widgets.Tabulator):
        return True
    return isinstance(old, pn.pane.Markdown | pn.pane.HTML | pn.pane.Str | pn.pane.Alert)


def update_in_place(old, new) -> bool:
    """Make panel ``old`` show what ``new`` shows, keeping ``old``'s Bokeh models.

    Replacing a panel in a served page costs the browser a new layout of the whole page
    (every plot repainted, the 7,557-point map included) and the server a walk of the
    document's model graph; changing a text or a table's rows costs neither. Text panes
    take the new text, tables the new rows, and layouts of the same length recurse.

    Parameters
    ----------
    old : panel.viewable.Viewable
        The panel on the page.
    new : panel.viewable.Viewable
        A freshly built panel of the same structure.

    Returns
    -------
    bool
        True when ``old`` now shows ``new``'s content; False (and ``old`` untouched) when
        the two differ in structure (other types, other lengths, a plot inside).
    """
    if not _same_shape(old, new):
        return False
    _copy_content(old, new)
    return True


def _copy_content(old, new) -> None:
    if isinstance(old, pn.layout.ListLike):
        for a, b in zip(old, new, strict=True):
            _copy_content(a, b)
        if old.visible != new.visible:
            old.visible = new.visible
    elif isinstance(old, pn.widgets.Tabulator):
        if not old.value.equals(new.value) or list(old.value.columns) != list(new.value.columns):
            old.value = new.value
    else:
        changes = {k: getattr(new, k) for k in ("object", "visible", "css_classes")
                   if getattr(old, k) != getattr(new, k)}
        if changes:
            old.param.update(**changes)


def live(owner: param.Parameterized, method: str) -> pn.Column:
    """The panel that a ``param.depends`` method of ``owner`` returns, redrawn in place
    when one of the method's dependencies changes (see :func:`update_in_place`); when the
    new panel differs in structure it replaces the old one.

    Panel's own ``ParamMethod`` replaces the whole panel on every change: on a page this
    size that made each gene choice re-lay out and repaint every view in the browser.

    Parameters
    ----------
    owner : param.Parameterized
        The view that defines the method.
    method : str
        The name of a method decorated with ``param.depends`` (without ``watch=True``).

    Returns
    -------
    panel.Column
        A column holding the method's panel.
    """
    fn = getattr(owner, method)
    box = pn.Column(fn())

    def redraw(*_events):
        new = fn()
        if not update_in_place(box.objects[0], new):
            box.objects = [new]

    by_owner: dict[int, tuple[param.Parameterized, list[str]]] = {}
    for dep in owner.param.method_dependencies(method):
        by_owner.setdefault(id(dep.inst), (dep.inst, []))[1].append(dep.name)
    for inst, names in by_owner.values():
        inst.param.watch(redraw, names)
    return box


class LiveGlyphs:
    """Bokeh glyphs drawn into a HoloViews plot once and fed new data in place.

    A gene choice used to re-render a ``DynamicMap`` layer of an overlay: HoloViews then
    recomputed the ranges of every layer (the whole map included), rebuilt each glyph and
    sent range and ``hold_render`` changes to the browser, which was most of a choice's
    server time. Here a plot hook adds the glyphs to the rendered figure the first time it
    sees that figure (hooks also run after every later redraw of the plot, for instance a
    datashaded map re-aggregating on zoom), and :meth:`refresh` replaces the ``data`` of
    their ColumnDataSources in every figure still alive (held weakly: a closed session's
    figure is not kept). In a notebook the change is pushed through the plot's comm; in a
    served session Bokeh sends it with the rest of the callback's changes.

    Parameters
    ----------
    data : callable
        Called with no argument, returns ``{source name: {column: values}}`` (every source
        always with the same columns) and optionally a key ``"figure"`` holding a callable
        ``f(figure)`` that sets anything else on the figure (title, ranges).
    draw : callable
        ``draw(figure, sources)`` adds the glyphs, given a ``{name: ColumnDataSource}``.

    Attributes
    ----------
    hook : callable
        The HoloViews ``hooks`` entry (``plot.opts(hooks=[live.hook])``). It holds this
        object only weakly: HoloViews keeps an element's options (hooks included) in a
        global store, and a hook that held the view would keep every closed session's
        dashboard alive.
    """

    def __init__(self, data, draw):
        self._data = data
        self._draw = draw
        self._figures: list = []  # (weakref to figure, sources, weakref to HoloViews plot)
        ref = weakref.ref(self)

        def hook(plot, element):
            live = ref()
            if live is not None:
                live.attach(plot, element)

        self.hook = hook

    def _split(self):
        current = dict(self._data())
        return current.pop("figure", None), current

    def attach(self, plot, element) -> None:
        """Draw the glyphs into ``plot.state`` unless they are there already (what
        :attr:`hook` calls).

        Parameters
        ----------
        plot : holoviews.plotting.bokeh.ElementPlot
            The rendered plot.
        element : holoviews.Element
            Its element (unused).
        """
        from bokeh.models import ColumnDataSource

        fig = plot.state
        self._figures = [f for f in self._figures if f[0]() is not None]
        if any(f[0]() is fig for f in self._figures):
            return
        extra, current = self._split()
        sources = {name: ColumnDataSource(dict(cols)) for name, cols in current.items()}
        self._draw(fig, sources)
        if extra is not None:
            extra(fig)
        self._figures.append((weakref.ref(fig), sources, weakref.ref(plot)))

    def refresh(self, *_events) -> None:
        """Give every live figure's glyphs the current data (a ``param.watch`` callback)."""
        self._figures = [f for f in self._figures if f[0]() is not None]
        if not self._figures:
            return
        extra, current = self._split()
        for ref, sources, plot_ref in self._figures:
            for name, src in sources.items():
                src.data = dict(current[name])
            if extra is not None:
                extra(ref())
            plot = plot_ref()
            if plot is not None and getattr(plot, "comm", None) is not None:
                plot.push()

    def sources(self) -> list[dict]:
        """The ColumnDataSources of each live figure (for tests and exports).

        Returns
        -------
        list of dict
            One ``{name: ColumnDataSource}`` per figure still alive.
        """
        return [s for ref, s, _ in self._figures if ref() is not None]
