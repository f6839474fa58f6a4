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

from workbench.dashboards.base import StudyView, no_data
from workbench.dashboards.cache import cached

TOP_COLUMNS = ("drivers", "top_perturbations", "top_perturbation", "driving_perturbations", "perturbations")


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
    """Concept id -> its driving perturbations, from the annotation or the pages."""
    def _read(study):
        obs = concept_table(study)
        col = next((c for c in TOP_COLUMNS if c in obs), None)
        if col is not None:
            tops = {cid: _split(v) for cid, v in obs[col].items()}
            # no significant driver: fall back on the concept's most selective perturbation
            best = next((c for c in ("perturbation_best", "genes_best") if c in obs), None)
            if best is not None:
                for cid, v in obs[best].items():
                    if not tops[cid] and isinstance(v, str) and v and v != study.control_label:
                        tops[cid] = [v]
            return tops
        pages = _uns(study, "concepts").get("pages", {})
        return {cid: _split(p.get("top_perturbations", [])) for cid, p in pages.items()}

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
    """Exemplar crop ids, activation histogram and driving perturbations of a concept."""
    def _read(study, concept):
        wb = _uns(study, "concepts")
        pages = wb.get("pages", {})
        page = dict(pages.get(concept, {})) if isinstance(pages.get(concept), dict) else {}
        page.setdefault("top_perturbations", top_perturbations(study).get(concept, []))
        if "exemplars" not in page and concept in (wb.get("exemplars") or {}):
            page["exemplars"] = _split(wb["exemplars"][concept])
        if "hist_counts" not in page or "exemplars" not in page:
            page.update(_from_obsm(study, concept, need_exemplars="exemplars" not in page))
        return page

    return cached(study, ["concepts"], "concept-page", _read, concept)


def _from_obsm(study, concept: str, need_exemplars: bool) -> dict:
    """Histogram and exemplars stored per concept in ``concepts.obsm`` (the concepts step's
    layout: ``activation_hist``, ``activation_hist_edges``, ``exemplar_top_index``)."""
    import zarr

    group = zarr.open_group(study.artefact_path("concepts"), mode="r")
    if "obsm" not in group:
        return {}
    row = int(concept_table(study).index.get_loc(concept))
    obsm, out = group["obsm"], {}
    if "activation_hist" in obsm and "activation_hist_edges" in obsm:
        out["hist_counts"] = np.asarray(obsm["activation_hist"][row])
        out["hist_edges"] = np.asarray(obsm["activation_hist_edges"][row])
    if need_exemplars and "exemplar_top_index" in obsm and study.has("profiles"):
        rows = np.asarray(obsm["exemplar_top_index"][row])
        ids = study.read_obs("profiles").index.astype(str)
        out["exemplars"] = ids[rows[rows >= 0]].tolist()
    return out


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
        counts, edges = page.get("hist_counts"), page.get("hist_edges")
        if counts is not None and edges is not None and len(edges) == len(counts) + 1:
            hist = hv.Histogram((np.asarray(edges), np.asarray(counts)),
                                kdims="activation", vdims="samples")
            hist = hist.opts(width=260, height=160, title="Activation", tools=["hover", "save"])
        else:
            hist = no_data("no histogram precomputed", width=260, height=160)
        tops = page.get("top_perturbations", [])
        drivers = pn.pane.Markdown("Driving perturbations: " + (", ".join(
            f"`{p}`" for p in _split(tops)) or "none listed"))
        parts += [pn.Row(pn.pane.HoloViews(hist, linked_axes=False), drivers)]
        ex = _split(page.get("exemplars", []))
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
