"""The dashboard page: two to four linked views side by side around one Selection.

:func:`build_app` makes one session's page: a fresh :class:`~.state.Selection`, a header
that shows it (with a gene chooser, CSV export of the selection, and an "Open in napari"
button when the server runs on the user's own machine), and the chosen views in a grid.
The Selection syncs to the URL (``?gene=...&concept=...&pair=...&samples=[...]&views=...``)
when served, and to ``selection.json`` in the Study folder, which the napari plugin follows.
"""

from __future__ import annotations

import json
import subprocess
import sys

import panel as pn
import param

from workbench.dashboards.base import csv_bytes
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
               "grn": "GRN", "perturbation_map": "Perturbation map", "images": "Images"}
EXTENSIONS = ("tabulator",)


VIEW_CLASSES = {"embeddings": "EmbeddingsView", "interactions": "InteractionsView",
                "concepts": "ConceptsView", "grn": "GRNView",
                "perturbation_map": "PerturbationMapView", "images": "ImagesView"}


def view_class(name: str):
    """The Viewer class of a view name (imported on first use)."""
    import importlib

    return getattr(importlib.import_module(f"workbench.dashboards.{name}"), VIEW_CLASSES[name])


class UrlState(param.Parameterized):
    """The Selection as URL-friendly strings (sample lists capped for URL length)."""

    gene = param.String(default="")
    concept = param.String(default="")
    pair = param.String(default="")
    samples = param.String(default="")
    views = param.String(default="")

    def __init__(self, selection: Selection, layout: Layout, **params):
        super().__init__(**params)
        self._selection, self._layout = selection, layout
        self._busy = False
        self._from_state()
        selection.param.watch(lambda *e: self._from_state(), list(URL_KEYS))
        layout.param.watch(lambda *e: self._from_state(), ["views"])
        self.param.watch(lambda *e: self._to_state(), ["gene", "concept", "pair", "samples", "views"])

    def _from_state(self):
        if self._busy:
            return
        self._busy = True
        try:
            s = self._selection
            self.param.update(gene=s.perturbation, concept=s.concept, pair=s.pair,
                              samples=json.dumps(list(s.samples)[:MAX_URL_SAMPLES]) if s.samples else "",
                              views=",".join(self._layout.views))
        finally:
            self._busy = False

    def _to_state(self):
        if self._busy:
            return
        self._busy = True
        try:
            self._selection.update(perturbation=self.gene, concept=self.concept, pair=self.pair,
                                   samples=parse_samples(self.samples))
            views = [v for v in self.views.split(",") if v in VIEW_NAMES]
            if views and views != list(self._layout.views):
                self._layout.views = views[:4]
        finally:
            self._busy = False


def open_in_napari(study_path, selection: Selection) -> subprocess.Popen:
    """Start ``workbench napari STUDY --follow`` on the most specific current choice, in
    its own process (Qt and the Bokeh loop must not share one)."""
    cmd = [sys.executable, "-m", "workbench", "napari", str(study_path), "--follow"]
    if selection.pair:
        cmd += ["--pair", selection.pair]
    elif selection.concept:
        cmd += ["--concept", selection.concept]
    elif selection.perturbation:
        cmd += ["--perturbation", selection.perturbation]
    return subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class Dashboard(pn.viewable.Viewer):
    """One session's page: header, view chooser and the linked views."""

    study = param.Parameter(doc="The open Study.")
    selection = param.ClassSelector(class_=Selection, doc="This session's selection.")
    layout = param.ClassSelector(class_=Layout, doc="Which views are shown.")
    local = param.Boolean(default=False, doc="Served on the user's own machine (napari button).")
    write_file = param.Boolean(default=True, doc="Mirror the selection to selection.json.")

    def __init__(self, study, views=None, selection=None, **params):
        layout = Layout(views=list(views or DEFAULT_VIEWS)[:4])
        super().__init__(study=study, selection=selection or Selection(), layout=layout, **params)
        self._views: dict[str, object] = {}
        if self.write_file:
            self.selection.param.watch(self._write_file, list(URL_KEYS))

    def view(self, name: str):
        """The session's instance of a view (built on first use, then kept)."""
        if name not in self._views:
            self._views[name] = view_class(name)(self.study, self.selection)
        return self._views[name]

    def _write_file(self, *_):
        try:
            self.selection.save(self.study.path, self.study.id)
        except OSError:  # a read-only Study still browses
            pass

    def sync_url(self) -> UrlState | None:
        """Two-way link between the Selection and the page URL (served sessions only)."""
        loc = pn.state.location
        if loc is None:
            return None
        self._url = UrlState(self.selection, self.layout)
        loc.sync(self._url, {"gene": "gene", "concept": "concept", "pair": "pair",
                             "samples": "samples", "views": "views"})
        return self._url

    @param.depends("selection.perturbation", "selection.concept", "selection.pair",
                   "selection.samples")
    def _summary(self):
        s = self.selection
        return pn.pane.Markdown(
            f"**Gene:** {s.perturbation or '-'} · **Concept:** {s.concept or '-'} · "
            f"**Pair:** {s.pair or '-'} · **Samples:** {len(s.samples)}",
            css_classes=["wb-selection-summary"], margin=(5, 10))

    def _selection_csv(self):
        return csv_bytes(selection_table(self.study, self.selection))

    @param.depends("layout.views")
    def _grid(self):
        names = [v for v in self.layout.views if v in VIEW_NAMES][:4] or list(DEFAULT_VIEWS[:2])
        return pn.GridBox(*(self.view(n) for n in names), ncols=min(len(names), 2))

    def header(self):
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
            nap.on_click(lambda e: open_in_napari(self.study.path, self.selection))
            items.append(nap)
        title = pn.pane.Markdown(f"## {self.study.title}", margin=(0, 10))
        return pn.Column(pn.Row(title, self._summary), pn.Row(*items, chooser))

    def _gene_options(self) -> list[str]:
        names: set[str] = set()
        for art in ("perturbations", "profiles", "images"):
            if self.study.has(art):
                obs = self.study.read_obs(art) if art != "images" else self.study.read(art).obs
                if "perturbation" in obs:
                    names |= set(obs["perturbation"].astype(str))
                break
        if self.study.has("grn"):
            from workbench.dashboards.grn import posterior

            names |= set(posterior(self.study)[0])
        if self.study.has("interactions"):
            from workbench.dashboards.interactions import genes

            names |= set(genes(self.study))
        return sorted(names)

    def __panel__(self):
        return pn.Column(self.header(), self._grid, sizing_mode="stretch_width")


def build_app(study, views=None, *, local: bool = False, sync_url: bool = True,
              write_file: bool = True, restore: bool = True) -> Dashboard:
    """One session's dashboard for ``study`` (a Study or a path).

    ``restore`` starts from ``selection.json`` when the URL carries no selection.
    """
    from workbench.data.study import Study

    if not hasattr(study, "cache_key"):
        study = Study.open(study)
    pn.extension(*EXTENSIONS)
    dash = Dashboard(study, views=views, local=local, write_file=write_file)
    args = pn.state.session_args or {}
    has_query = any(k in args for k in ("gene", "concept", "pair", "samples"))
    if restore and not has_query:
        dash.selection.load(study.path)
    if sync_url:
        dash.sync_url()
    return dash
