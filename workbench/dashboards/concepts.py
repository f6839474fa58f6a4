"""Concept browser: the dictionary's concepts, their annotation, and one concept's page.

A concept is one atom of the sparse dictionary learned over the embeddings (ICFL, or a TopK
SAE as the baseline). The concepts step annotates each one (activation frequency,
selectivity, the perturbations that drive it, a flag for concepts that follow batches
rather than biology) and precomputes its page: exemplar crop ids and an activation
histogram (the Neuronpedia/InterPLM pattern, STYLE item 9); this view only reads them.
Choosing a gene filters the list to the concepts that gene drives.
"""

from __future__ import annotations

import re

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView
from workbench.dashboards.cache import cached


def _uns(study, name: str) -> dict:
    import zarr
    from anndata.io import read_elem

    group = zarr.open_group(study.artefact_path(name), mode="r")
    if "uns" in group and "workbench" in group["uns"]:
        return read_elem(group["uns"]["workbench"])
    return {}


def concept_table(study) -> pd.DataFrame:
    """The concepts' annotation (``concepts.obs``), one row per concept id."""
    def _read(study):
        obs = study.read_obs("concepts").copy()
        obs.index = obs.index.astype(str)
        obs.index.name = "concept"
        return obs

    return cached(study, ["concepts"], "concept-table", _read)


def _split(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    # "A (0.52); B (0.31)" -> ["A", "B"]: the concepts step writes drivers with selectivity
    parts = (re.sub(r"\s*\([^)]*\)\s*$", "", s.strip()) for s in re.split(r"[;,|]", str(value)))
    return [p for p in parts if p]


def top_perturbations(study) -> dict[str, list[str]]:
    """Concept id -> its driving perturbations: the significant ``drivers`` the concepts
    step lists, else (no significant driver) its most selective perturbation
    (``perturbation_best``) when that is not the control."""
    def _read(study):
        obs = concept_table(study)
        tops = {cid: _split(v) for cid, v in obs["drivers"].items()}
        for cid, v in obs["perturbation_best"].items():
            if not tops[cid] and isinstance(v, str) and v and v != study.control_label:
                tops[cid] = [v]
        return tops

    return cached(study, ["concepts"], "concept-tops", _read)


def concepts_of(study, gene: str) -> list[str]:
    """Concepts whose driving perturbations include ``gene`` (alone or in a double)."""
    if not gene:
        return []
    out = []
    for cid, perts in top_perturbations(study).items():
        if any(gene == p or gene in p.split("+") for p in perts):
            out.append(cid)
    return out


def concept_page(study, concept: str) -> dict:
    """A concept's page as the concepts step precomputed it: ``exemplars`` (crop ids,
    largest activation first, from ``uns["workbench"]["exemplars"]``), ``hist_counts`` and
    ``hist_edges`` (``obsm["activation_hist"]``, ``obsm["activation_hist_edges"]``) and
    ``top_perturbations``."""
    def _read(study, concept):
        import zarr

        wb = _uns(study, "concepts")
        row = int(concept_table(study).index.get_loc(concept))
        obsm = zarr.open_group(study.artefact_path("concepts"), mode="r")["obsm"]
        return {"exemplars": _split(wb["exemplars"][concept]),
                "hist_counts": np.asarray(obsm["activation_hist"][row]),
                "hist_edges": np.asarray(obsm["activation_hist_edges"][row]),
                "top_perturbations": top_perturbations(study)[concept]}

    return cached(study, ["concepts"], "concept-page", _read, concept)


class ConceptsView(StudyView):
    """Table of concepts; the selected concept's page."""

    only_gene = param.Boolean(default=True, doc="List only the concepts of the selected gene.")

    needs = ("concepts",)
    key = "concepts"
    label = "Concepts"

    def table(self) -> pd.DataFrame:
        obs = concept_table(self.study)
        ids = concepts_of(self.study, self.selection.perturbation)
        if self.only_gene and self.selection.perturbation:
            return obs.loc[ids]
        return obs

    def _heading(self) -> str:
        gene = self.selection.perturbation
        ids = concepts_of(self.study, gene)
        return (f"Concepts of **{gene}**: {', '.join(ids) if ids else 'none'}" if gene
                else f"{len(concept_table(self.study))} concepts (choose a gene to filter)")

    def _rows(self) -> pd.DataFrame:
        df = self.table().reset_index()
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: "; ".join(_split(v)) if not isinstance(v, str) else v)
        return df

    def _list(self):
        """Heading and table, updated in place when the gene changes (no new widgets)."""
        head = pn.pane.Markdown(self._heading(), css_classes=["wb-concepts-of"])
        tab = pn.widgets.Tabulator(self._rows(), show_index=False, disabled=True, selectable=1,
                                   height=220, width=self.width, css_classes=["wb-concept-table"])

        def chosen(event):
            if event.new:
                self.selection.choose_concept(str(tab.value["concept"].iloc[event.new[0]]))

        def refresh(*_):
            head.object = self._heading()
            tab.value = self._rows()

        tab.param.watch(chosen, "selection")
        self.selection.param.watch(refresh, "perturbation")
        self.param.watch(refresh, "only_gene")
        return pn.Column(head, tab)

    @param.depends("selection.concept")
    def _page(self):
        cid = self.selection.concept
        if not cid or cid not in concept_table(self.study).index:
            return pn.pane.Markdown("Choose a concept for its page.")
        page = concept_page(self.study, cid)
        parts = [pn.pane.Markdown(f"#### Concept {cid}", css_classes=["wb-concept-page"])]
        hist = hv.Histogram((page["hist_edges"], page["hist_counts"]),
                            kdims="activation", vdims="samples")
        hist = hist.opts(width=260, height=160, title="Activation", tools=["hover", "save"])
        tops = page["top_perturbations"]
        drivers = pn.pane.Markdown("Driving perturbations: " + (", ".join(
            f"`{p}`" for p in _split(tops)) or "none listed"))
        parts += [pn.Row(pn.pane.HoloViews(hist, linked_axes=False), drivers)]
        ex = page["exemplars"]
        if ex and self.study.has("images"):
            from workbench.dashboards.images import tile_html

            parts.append(pn.pane.HTML(tile_html(self.study, ex[:8]), width=self.width))
        elif ex:
            parts.append(pn.pane.Markdown("Exemplars: " + ", ".join(ex[:8]) +
                                          " (no images in this Study)"))
        return pn.Column(*parts)

    def body(self):
        return pn.Column(pn.widgets.Checkbox.from_param(self.param.only_gene,
                                                        name="only the selected gene's concepts"),
                         self._list(), self._page)
