"""The dashboard page: two to four linked views side by side around one Selection.

:func:`build_app` makes one session's page: a fresh :class:`~.state.Selection`, a header
that shows it (with a gene chooser, CSV export of the selection, and an "Open in napari"
button when the server runs on the user's own machine), and the chosen views in a grid.
The Selection syncs to the URL (``?gene=...&concept=...&pair=...&samples=[...]&phenotype=...
&views=...``) when served, so a bookmark restores the chosen gene, pair, concept, samples,
the phenotype search the map is coloured by, and the views shown. A session starts from its URL, or empty: nothing about a session's choice is
written into the Study, so users of one served Study never see or overwrite each other's.
"Open in napari" starts napari in its own process on a selection channel of this session
(:class:`NapariLink`): the two follow each other both ways.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import weakref

import panel as pn
import param

from workbench.dashboards.base import csv_bytes, live, md_text
from workbench.data.selection import FIELDS as CHANNEL_FIELDS
from workbench.data.selection import SelectionChannel
from workbench.errors import WorkbenchError
from workbench.dashboards.export import selection_table
from workbench.dashboards.state import (
    DEFAULT_VIEWS,
    MAX_URL_SAMPLES,
    URL_KEYS,
    VIEW_NAMES,
    Layout,
    Selection,
    parse_samples,
)

VIEW_LABELS = {"embeddings": "Embeddings", "interactions": "Interactions", "concepts": "Concepts",
               "grn": "GRN", "perturbation_map": "Perturbation map", "images": "Images",
               "gene_card": "Gene card", "overview": "Overview", "plan": "Plan"}
EXTENSIONS = ("tabulator",)
#: The dashboards alive in this process, held weakly: a served session's page leaves it
#: when the session ends and its objects are freed (the load test and the session test
#: read it; nothing else keeps a session alive).
LIVE = weakref.WeakSet()


VIEW_CLASSES = {"embeddings": "EmbeddingsView", "interactions": "InteractionsView",
                "concepts": "ConceptsView", "grn": "GRNView",
                "perturbation_map": "PerturbationMapView", "images": "ImagesView",
                "gene_card": "GeneCardView", "overview": "OverviewView", "plan": "PlanView"}


def view_class(name: str):
    """The Viewer class of a view name (imported on first use).

    Parameters
    ----------
    name : str
        One of :data:`~.state.VIEW_NAMES`.

    Returns
    -------
    type
        The view's class, from ``workbench.dashboards.<name>``.
    """
    import importlib

    return getattr(importlib.import_module(f"workbench.dashboards.{name}"), VIEW_CLASSES[name])


#: The page's URL query keys: the Selection's (:data:`~.state.URL_KEYS`) and the views shown.
URL_FIELDS = (*URL_KEYS.values(), "views")


class UrlState(param.Parameterized):
    """The Selection as URL-friendly strings (sample lists capped for URL length).

    Each change of the Selection or of the views shown rewrites the strings, and each
    change of the strings (the URL) updates the Selection and the views.

    Parameters
    ----------
    selection : Selection
        The session's selection.
    layout : Layout
        The session's layout (its ``views`` go to the ``views`` key).
    **params
        Parameter values passed on to :class:`param.Parameterized`; they are overwritten
        from ``selection`` and ``layout`` at once.
    """

    gene = param.String(default="")
    concept = param.String(default="")
    pair = param.String(default="")
    samples = param.String(default="")
    phenotype = param.String(default="")
    views = param.String(default="")

    def __init__(self, selection: Selection, layout: Layout, **params):
        super().__init__(**params)
        self._selection, self._layout = selection, layout
        self._busy = False
        self._from_state()
        selection.param.watch(lambda *e: self._from_state(), list(URL_KEYS))
        layout.param.watch(lambda *e: self._from_state(), ["views"])
        self.param.watch(lambda *e: self._to_state(), list(URL_FIELDS))

    def _from_state(self):
        if self._busy:
            return
        self._busy = True
        try:
            s = self._selection
            self.param.update(gene=s.perturbation, concept=s.concept, pair=s.pair,
                              samples=json.dumps(list(s.samples)[:MAX_URL_SAMPLES]) if s.samples else "",
                              phenotype=s.phenotype, views=",".join(self._layout.views))
        finally:
            self._busy = False

    def _to_state(self):
        if self._busy:
            return
        self._busy = True
        try:
            self._selection.update(perturbation=self.gene, concept=self.concept, pair=self.pair,
                                   samples=parse_samples(self.samples), phenotype=self.phenotype)
            views = [v for v in self.views.split(",") if v in VIEW_NAMES]
            if views and views != list(self._layout.views):
                self._layout.views = views[:4]
        finally:
            self._busy = False


def napari_command(study_path, channel_path) -> list[str]:
    """The command that opens napari on a Study, following the channel at ``channel_path``.

    Parameters
    ----------
    study_path : str or os.PathLike
        The Study's folder.
    channel_path : str or os.PathLike
        The session's selection channel file.

    Returns
    -------
    list of str
        ``python -m workbench napari STUDY --channel CHANNEL`` with this interpreter.
    """
    return [sys.executable, "-m", "workbench", "napari", str(study_path),
            "--channel", str(channel_path)]


class NapariLink:
    """The two-way link between one session's Selection and the napari it opened.

    The link owns a :class:`~workbench.data.selection.SelectionChannel` (a file named for
    this session alone). Every change of the Selection is written into it, and
    :meth:`poll` applies what napari wrote there (a served session polls twice a second).

    Parameters
    ----------
    study : Study
        The open Study.
    selection : Selection
        The session's selection.
    directory : str or os.PathLike, optional
        Folder of the channel file; ``None`` uses the temporary folder.
    """

    def __init__(self, study, selection: Selection, directory=None):
        self.study, self.selection = study, selection
        self.channel = SelectionChannel.create(directory, study_id=study.id)
        self._applying = False
        self._watcher = selection.param.watch(self.publish, list(CHANNEL_FIELDS))
        self.publish()

    def publish(self, *_events) -> None:
        """Write the session's selection into the channel (not while applying napari's)."""
        if not self._applying:
            self.channel.write(self.selection.to_dict(), source="dashboard",
                               study_id=self.study.id)

    def poll(self) -> bool:
        """Apply a choice napari made since the last look; True when there was one.

        Returns
        -------
        bool
            True when napari wrote a choice for this Study since the last poll.
        """
        data = self.channel.poll(me="dashboard")
        if data is None or (data.get("study_id") and data["study_id"] != self.study.id):
            return False
        self._applying = True
        try:
            self.selection.update({k: data[k] for k in CHANNEL_FIELDS})
        finally:
            self._applying = False
        return True

    @property
    def log_path(self):
        """Where the napari process's output goes (beside the channel, this user's only):
        the place to look when the window did not open."""
        return self.channel.path.with_suffix(".log")

    def launch(self) -> subprocess.Popen:
        """Start napari in its own process (Qt and the Bokeh loop must not share one), on
        this session's channel; its output goes to :attr:`log_path`.

        Returns
        -------
        subprocess.Popen
            The napari process, in a session of its own.
        """
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            return subprocess.Popen(napari_command(self.study.path, self.channel.path),
                                    start_new_session=True, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        """Stop writing and remove the channel (the session ended); a napari it opened
        keeps its window and stops following."""
        self.selection.param.unwatch(self._watcher)
        self.channel.close()
        self.log_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _frozen_graph(models):
    """Bokeh's ``models.freeze()``, except that the graph is walked at the end only when
    something in the block changed it (Bokeh marks each such change by calling
    ``models.invalidate()``); a choice whose views all redraw in place walks nothing."""
    if "invalidate" in vars(models):  # already inside one: the outer block walks
        yield
        return
    changed = []
    models.invalidate = lambda: changed.append(True)
    models._push_freeze()
    try:
        yield
    finally:
        del models.invalidate
        models._freeze_count -= 1
        if changed:
            models.invalidate()  # walks now unless an outer freeze will


def held_document() -> contextlib.AbstractContextManager:
    """The context one change of a Selection runs in, so that it costs one update of the
    page however many views redraw.

    Each view that redraws adds or swaps Bokeh models, and Bokeh walks the whole model
    graph of the document after each such change (about 600 models on the realistic demo,
    0.1-0.2 s a walk); a choice of gene walked it seven times. Inside this context the
    graph is frozen (walked once, at the end) and, on a served page, Panel holds the
    document's events, so the browser receives the changes together.

    Returns
    -------
    contextlib.AbstractContextManager
        Bokeh's freeze of the current document's models, with Panel's hold when the
        document belongs to a server session; a context that does nothing when there is
        no current document.
    """
    doc = pn.state.curdoc
    if doc is None or not hasattr(doc, "models"):
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(_frozen_graph(doc.models))
    if doc.session_context is not None:
        from panel.io import hold

        stack.enter_context(hold(doc))
    return stack


class Dashboard(pn.viewable.Viewer):
    """One session's page: header, view chooser and the linked views.

    Parameters
    ----------
    study : Study
        The open Study.
    views : sequence of str, optional
        The views shown (the first four are kept); ``None`` shows
        :data:`~.state.DEFAULT_VIEWS`.
    selection : Selection, optional
        The session's selection; ``None`` makes a new, empty one.
    **params
        Values of the page's other parameters (``local``, ``channel_dir``, ``landing``).
    """

    study = param.Parameter(doc="The open Study.")
    selection = param.ClassSelector(class_=Selection, doc="This session's selection.")
    layout = param.ClassSelector(class_=Layout, doc="Which views are shown.")
    local = param.Boolean(default=False, doc="Served on the user's own machine (napari button).")
    channel_dir = param.Parameter(default=None, doc="Folder of this session's napari channel "
                                  "(default: the temporary folder).")
    landing = param.Selector(default="overview", objects=["overview", "gene_card"],
                             doc="What sits above the views: the overview (nothing chosen) "
                                 "or the chosen gene's card.")

    def __init__(self, study, views=None, selection=None, **params):
        layout = Layout(views=list(views or DEFAULT_VIEWS)[:4])
        super().__init__(study=study, selection=selection or Selection(), layout=layout, **params)
        self._views: dict[str, object] = {}
        self._panels: dict[str, object] = {}
        self._landing_box = self._grid_box = None
        self._set_landing()
        self.selection.param.watch(self._set_landing, "perturbation")
        self.selection.batch_context = held_document
        self.napari_link: NapariLink | None = None
        #: The napari processes this session started (newest last).
        self.napari_processes: list[subprocess.Popen] = []
        self._poller = None
        self._watcher = None
        self._seen_meta: tuple | None = None
        self._changed: list[str] = []
        #: Shown above the page once another process rewrites an artefact it shows.
        self.notice = pn.pane.Alert("", alert_type="info", visible=False,
                                    sizing_mode="stretch_width", css_classes=["wb-changed"])
        LIVE.add(self)

    def check_for_changes(self) -> list[str]:
        """Compare the Study on disk with the generation this page was built on.

        A step committed by another process after the page was built does not change the
        page (it keeps reading the generation it opened, see
        :mod:`workbench.data.transaction`); this says so in :attr:`notice`, naming what
        changed and how to see it. Served pages call it every few seconds. Only
        ``study.json``'s modification time is read unless it changed.

        Returns
        -------
        list of str
            The artefacts written, added or removed since the page was built (empty when
            none).
        """
        stamp = self.study.meta_stamp()
        if stamp is None:
            return []
        if stamp == self._seen_meta:
            return self._changed if self.notice.visible else []
        self._seen_meta = stamp
        try:
            now = self.study.changes_on_disk()
        except (OSError, WorkbenchError):  # a damaged study.json: the reader reports it
            return []
        changed = list(now)
        self._changed = changed
        if changed:
            entries = [e for e in now.values() if e]
            steps = sorted({e.get("step", "?") for e in entries})
            when = max((e.get("written", "") for e in entries), default="")
            self.notice.object = (
                "**This Study has new results**: "
                + ", ".join(md_text(n) for n in changed)
                + (f" (step {', '.join(md_text(x) for x in steps)}" if steps else "")
                + (f", {md_text(when)})" if steps and when else (")" if steps else ""))
                + ". This page still shows the results it was opened with; reload it to see "
                  "the new ones.")
        self.notice.visible = bool(changed)
        return changed

    def _watch_study(self) -> None:
        """In a served session: check for new results every 5 s until the session ends
        (the callback holds the page weakly, so a closed page is not kept alive)."""
        if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
            return
        self.check_for_changes()
        ref = weakref.ref(self)

        def tick():
            page = ref()
            if page is not None:
                page.check_for_changes()

        self._watcher = pn.state.add_periodic_callback(tick, period=5000)
        watcher = self._watcher
        pn.state.on_session_destroyed(lambda _ctx: watcher.stop())

    def view(self, name: str):
        """The session's instance of a view (built on first use, then kept).

        Parameters
        ----------
        name : str
            One of :data:`~.state.VIEW_NAMES`.

        Returns
        -------
        StudyView
            The view, on this session's Study and Selection (and Layout where it takes
            one).
        """
        if name not in self._views:
            cls = view_class(name)
            extra = {"layout": self.layout} if "layout" in cls.param else {}
            self._views[name] = cls(self.study, self.selection, **extra)
        return self._views[name]

    def link_napari(self) -> NapariLink:
        """This session's napari link (made on first use; served sessions poll it and
        remove its channel when they end).

        Returns
        -------
        NapariLink
            The link.
        """
        if self.napari_link is None:
            self.napari_link = NapariLink(self.study, self.selection, self.channel_dir)
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                self._poller = pn.state.add_periodic_callback(self.napari_link.poll, period=500)
                pn.state.on_session_destroyed(lambda _ctx: self.close())
        return self.napari_link

    def open_napari(self) -> subprocess.Popen:
        """Open napari on this session's selection (the "Open in napari" button).

        Returns
        -------
        subprocess.Popen
            The napari process (kept in :attr:`napari_processes`).
        """
        proc = self.link_napari().launch()
        self.napari_processes = [p for p in self.napari_processes if p.poll() is None] + [proc]
        return proc

    def close(self) -> None:
        """End the napari link of this session, if any."""
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        if self.napari_link is not None:
            self.napari_link.close()
            self.napari_link = None

    def sync_url(self) -> UrlState | None:
        """Two-way link between the Selection and the page URL (served sessions only).

        Returns
        -------
        UrlState or None
            The URL state, or ``None`` when the page is not served (no location).
        """
        loc = pn.state.location
        if loc is None:
            return None
        self._url = UrlState(self.selection, self.layout)
        loc.sync(self._url, {k: k for k in URL_FIELDS})
        return self._url

    @param.depends("selection.perturbation", "selection.concept", "selection.pair",
                   "selection.samples")
    def _summary(self):
        s = self.selection
        return pn.pane.Markdown(
            f"**Gene:** {md_text(s.perturbation) or '-'} · **Concept:** "
            f"{md_text(s.concept) or '-'} · **Pair:** {md_text(s.pair) or '-'} · "
            f"**Samples:** {len(s.samples)}",
            css_classes=["wb-selection-summary"], margin=(5, 10))

    def _selection_csv(self):
        return csv_bytes(selection_table(self.study, self.selection))

    def panel_of(self, name: str):
        """The laid-out panel of view ``name``, built once per session: showing a view
        again (another landing, another grid) reuses it instead of building it anew, so no
        extra watchers pile up on the Selection.

        Parameters
        ----------
        name : str
            One of :data:`~.state.VIEW_NAMES`.

        Returns
        -------
        panel.viewable.Viewable
            The view's panel.
        """
        if name not in self._panels:
            self._panels[name] = pn.panel(self.view(name))
        return self._panels[name]

    def _set_landing(self, *_events) -> None:
        self.landing = "gene_card" if self.selection.perturbation else "overview"

    def _landing(self):
        """Above the views: the gene card of the chosen gene, or the Study's overview when
        nothing is chosen (unless the grid already shows it). One Column per session whose
        content changes only when it switches between the two; the card follows each new
        gene in place."""
        if self._landing_box is None:
            self._landing_box = pn.Column(sizing_mode="stretch_width")
            self.param.watch(lambda *e: self._fill_landing(), ["landing"])
            self.layout.param.watch(lambda *e: self._fill_landing(), ["views"])
        self._fill_landing()
        return self._landing_box

    def _fill_landing(self) -> None:
        name, box = self.landing, self._landing_box
        shown = [] if name in self.layout.views else [self.panel_of(name)]
        if list(box.objects) != shown:
            box.objects = shown
        box.css_classes = ["wb-landing", f"wb-landing-{name}"]

    def _grid(self):
        """The chosen views (two to four) in a grid; one GridBox per session whose children
        are swapped when the views change."""
        names = [v for v in self.layout.views if v in VIEW_NAMES][:4] or list(DEFAULT_VIEWS[:2])
        panels = [self.panel_of(n) for n in names]
        if self._grid_box is None:
            self._grid_box = pn.GridBox(*panels, ncols=min(len(names), 2))
            self.layout.param.watch(lambda *e: self._grid(), ["views"])
        elif list(self._grid_box.objects) != panels:
            self._grid_box.param.update(objects=panels, ncols=min(len(names), 2))
        return self._grid_box

    def header(self):
        """The page's header: title, selection summary, gene chooser, buttons, view chooser.

        Returns
        -------
        panel.Column
            The header; the gene chooser and the Selection follow each other, and the
            "Open in napari" button is there only when ``local``.
        """
        gene = pn.widgets.AutocompleteInput(
            name="Gene / perturbation", options=self._gene_options(), restrict=False,
            value=self.selection.perturbation, min_characters=1, case_sensitive=False,
            width=200, css_classes=["wb-gene-input"])
        busy = []

        def widget_to_state(event):
            if not busy:
                busy.append(1)
                try:
                    self.selection.choose_gene(event.new)
                finally:
                    busy.clear()

        def state_to_widget(event):
            if not busy:
                busy.append(1)
                try:
                    gene.value = event.new
                finally:
                    busy.clear()

        gene.param.watch(widget_to_state, "value")
        self.selection.param.watch(state_to_widget, "perturbation")
        clear = pn.widgets.Button(name="Clear selection", width=130)
        clear.on_click(lambda e: self.selection.clear())
        download = pn.widgets.FileDownload(callback=self._selection_csv, filename="selection.csv",
                                           label="Selection (CSV)", embed=False, width=160,
                                           css_classes=["wb-export-selection"])
        chooser = pn.widgets.MultiChoice.from_param(
            self.layout.param.views, name="Views (2-4)", max_items=4, width=420,
            options=list(VIEW_NAMES))
        items = [gene, clear, download]
        if self.local:
            nap = pn.widgets.Button(name="Open in napari", width=140, css_classes=["wb-napari"])
            nap.on_click(lambda e: self.open_napari())
            items.append(nap)
        title = pn.pane.Markdown(f"## {md_text(self.study.title)}", margin=(0, 10),
                                 css_classes=["wb-study-title"])
        return pn.Column(pn.Row(title, live(self, "_summary")), pn.Row(*items, chooser))

    def _gene_options(self) -> list[str]:
        """Every perturbation and gene the Study's views know (the control left out)."""
        from workbench.dashboards.gene_card import known_genes

        return known_genes(self.study)

    def __panel__(self):
        def build():
            self._watch_study()
            return [self.notice, self.header(), self._landing(), self._grid()]

        return _StudyPage(build, self.study, sizing_mode="stretch_width")


class _StudyPage(pn.Column):
    """The page's root column, laid out and rendered as of one generation of the Study.

    Its views read their artefacts while the layout is built and again while the HoloViews
    plots render. Both happen in one ``study.snapshot()`` block, at the first
    :meth:`get_root`: a step that another process commits meanwhile waits for the block, so
    a page never pairs, say, the previous ``grn`` with the new ``grn_samples``.

    Parameters
    ----------
    build : callable
        Returns the page's panels.
    study : Study
        The Study the views read.
    **params
        Options of :class:`panel.Column`.
    """

    def __init__(self, build, study, **params):
        super().__init__(**params)
        self._build, self._study = build, study

    def get_root(self, doc=None, comm=None, preprocess=True):
        """The Bokeh root of the page, its panels built first when they are not yet.

        Parameters
        ----------
        doc : bokeh.document.Document or None
            The document.
        comm : object or None
            The notebook comm.
        preprocess : bool
            Run Panel's preprocessing hooks.

        Returns
        -------
        bokeh.model.Model
            The root model.
        """
        with self._study.snapshot():
            if self._build is not None:
                build, self._build = self._build, None
                self.objects = list(build())
            return super().get_root(doc, comm, preprocess)


def build_app(study, views=None, *, local: bool = False, sync_url: bool = True,
              channel_dir=None) -> Dashboard:
    """One session's dashboard for ``study`` (a Study or a path).

    The session starts from its URL's selection when served (``sync_url``), else empty.

    Parameters
    ----------
    study : Study or str or os.PathLike
        The Study, or the path of one to open.
    views : sequence of str, optional
        The views shown (two to four of :data:`~.state.VIEW_NAMES`); ``None`` shows
        :data:`~.state.DEFAULT_VIEWS`.
    local : bool
        Served on the user's own machine: the header gets an "Open in napari" button.
    sync_url : bool
        Link the Selection to the page URL (takes effect only when served).
    channel_dir : str or os.PathLike, optional
        Folder of the session's napari channel; ``None`` uses the temporary folder.

    Returns
    -------
    Dashboard
        The session's page.
    """
    from workbench.data.study import Study

    if not hasattr(study, "cache_key"):
        study = Study.open(study)
    pn.extension(*EXTENSIONS)
    dash = Dashboard(study, views=views, local=local, channel_dir=channel_dir)
    if sync_url:
        dash.sync_url()
    return dash
