"""Concept browser: the dictionary's concepts, their annotation, and one concept's page.

A concept is one atom of the sparse dictionary learned over the embeddings (ICFL, or a TopK
SAE as the baseline). The concepts step annotates each one (activation frequency,
selectivity, the perturbations that drive it, a flag for concepts that follow batches
rather than biology) and precomputes its page in the ``concept_pages`` artefact
(:mod:`workbench.tools.concept_pages`): top-activating crops with their activation values,
quantile exemplars, the activation histogram, selectivity per label, the significantly
enriched perturbations with their q-values, and similar concepts (the Neuronpedia/InterPLM
pattern, STYLE item 9); this view only reads them. A perturbation is shown as a *driver*
only when its enrichment is significant (q below the step's FDR level); otherwise the page
says that there is no significant driver and names the most selective perturbation as a
candidate that did not pass. Choosing a gene filters the list to the concepts linked to
that gene (a significant driver, or that candidate). Every text that comes from the Study
is escaped before it enters HTML or Markdown.
"""

from __future__ import annotations

import re

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView, html_text, md_text
from workbench.dashboards.cache import cached


def _uns(study, name: str) -> dict:
    import zarr
    from anndata.io import read_elem

    group = zarr.open_group(study.artefact_path(name), mode="r")
    if "uns" in group and "workbench" in group["uns"]:
        return read_elem(group["uns"]["workbench"])
    return {}


def concept_table(study) -> pd.DataFrame:
    """The concepts' annotation (``concepts.obs``), one row per concept id.

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    pandas.DataFrame
        ``concepts.obs`` indexed by concept id (cached per artefact version).
    """
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
    """Concept id -> the perturbations it is linked to, for following a gene: the
    significant ``drivers`` the concepts step lists, else (no significant driver) its most
    selective perturbation (``perturbation_best``) when that is not the control. The page
    shows the second kind as a candidate that is *not* significant.

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    dict of str to list of str
        Concept id to its linked perturbations (empty where it has none).
    """
    def _read(study):
        obs = concept_table(study)
        tops = {cid: _split(v) for cid, v in obs["drivers"].items()}
        for cid, v in obs["perturbation_best"].items():
            if not tops[cid] and isinstance(v, str) and v and v != study.control_label:
                tops[cid] = [v]
        return tops

    return cached(study, ["concepts"], "concept-tops", _read)


def concepts_of(study, gene: str) -> list[str]:
    """Concepts whose driving perturbations include ``gene`` (alone or in a double).

    Parameters
    ----------
    study : Study
        The open Study.
    gene : str
        The gene or perturbation; "" gives no concepts.

    Returns
    -------
    list of str
        Concept ids, in the table's order.
    """
    if not gene:
        return []
    out = []
    for cid, perts in top_perturbations(study).items():
        if any(gene == p or gene in p.split("+") for p in perts):
            out.append(cid)
    return out


def concept_pages(study) -> dict:
    """The ``concept_pages`` document the concepts step wrote ({} for older Studies).

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    dict
        The document (cached per artefact version).
    """
    def _read(study):
        return study.read("concept_pages") if study.has("concept_pages") else {}

    return cached(study, ["concept_pages"], "concept-pages", _read)


def concept_page(study, concept: str) -> dict:
    """A concept's page as the concepts step precomputed it: ``exemplars`` (crop ids,
    largest activation first), ``activations`` (their values), ``hist_counts`` and
    ``hist_edges``, ``drivers`` (significant only: perturbation, selectivity, q),
    ``driver_state`` ("significant" or "none"), ``best_candidate``, ``quantiles``,
    ``selectivity`` per label, ``similar`` concepts and ``top_perturbations`` (the gene
    link, see :func:`top_perturbations`).

    Parameters
    ----------
    study : Study
        The open Study.
    concept : str
        The concept id.

    Returns
    -------
    dict
        The page; for a Study written before the pages artefact, the exemplar ids and
        histogram only (``driver_state`` "unknown").
    """
    def _read(study, concept):
        page = dict(concept_pages(study).get("concepts", {}).get(concept, {}))
        if page:
            top = page.get("top", [])
            page.update(exemplars=[str(t["id"]) for t in top],
                        activations=[float(t["activation"]) for t in top],
                        hist_counts=np.asarray(page["histogram"]["counts"]),
                        hist_edges=np.asarray(page["histogram"]["edges"]))
        else:  # a Study written before the pages artefact: exemplar ids and histogram only
            import zarr

            wb = _uns(study, "concepts")
            row = int(concept_table(study).index.get_loc(concept))
            obsm = zarr.open_group(study.artefact_path("concepts"), mode="r")["obsm"]
            page = {"exemplars": _split(wb["exemplars"][concept]), "activations": [],
                    "hist_counts": np.asarray(obsm["activation_hist"][row]),
                    "hist_edges": np.asarray(obsm["activation_hist_edges"][row]),
                    "drivers": [], "driver_state": "unknown", "best_candidate": None,
                    "quantiles": [], "selectivity": {}, "similar": []}
        page["top_perturbations"] = top_perturbations(study)[concept]
        return page

    return cached(study, ["concepts", "concept_pages"], "concept-page", _read, concept)


def drivers_markdown(page: dict, alpha: float = 0.05) -> str:
    """The drivers line of a page: significant drivers with q, or the no-driver state.

    Parameters
    ----------
    page : dict
        One concept's page (:func:`concept_page`).
    alpha : float
        The q-value threshold the line names.

    Returns
    -------
    str
        Markdown (names escaped).
    """
    if page.get("driver_state") == "significant":
        items = ", ".join(f"{md_text(d['perturbation'])} (selectivity "
                          f"{d['selectivity']:.2f}, q {d['q']:.2g})" for d in page["drivers"])
        return f"**Driving perturbations** (q < {alpha:g}): {items}"
    if page.get("driver_state") == "none":
        best = page.get("best_candidate")
        extra = (f"; most selective: {md_text(best['perturbation'])} (selectivity "
                 f"{best['selectivity']:.2f}, q {best['q']:.2g}, not significant)"
                 if best else "")
        return f"**No significant driver** (no perturbation enriched at q < {alpha:g}){extra}"
    return "Drivers: not computed for this Study (re-run `workbench concepts`)."


def stability_markdown(page: dict, record: dict | None = None) -> str:
    """The stability line of a page: the matched atom cosine over the extra seeds.

    Parameters
    ----------
    page : dict
        One concept's page (``stability`` is None when the step did not compute it).
    record : dict, optional
        The pages' ``stability`` record (the extra seeds), when present.

    Returns
    -------
    str
        Markdown: the score with a plain word (stable >= 0.9, partly stable >= 0.5,
        unstable), or how to compute it.
    """
    value = page.get("stability")
    if value is None:
        return ("Stability across seeds: not computed (run `workbench concepts` with "
                "--stability-seeds 1 or more).")
    seeds = (record or {}).get("seeds") or []
    over = f" over {len(seeds)} other seed{'s' if len(seeds) != 1 else ''}" if seeds else ""
    word = "stable" if value >= 0.9 else ("partly stable" if value >= 0.5 else "unstable")
    return (f"**Stability across seeds**: {value:.2f} ({word}; atom cosine of its matched "
            f"concept{over}, 1 = same direction)")


def _similar_markdown(page: dict) -> str:
    sim = page.get("similar") or []
    if not sim:
        return ""
    return "Similar concepts: " + ", ".join(
        f"{md_text(s['concept'])} ({s['cosine']:.2f})" for s in sim)


def _selectivity_html(page: dict) -> str:
    rows = []
    for col, items in (page.get("selectivity") or {}).items():
        cells = ", ".join(f"{html_text(i['label'])} {i['selectivity']:.2f} (q {i['q']:.2g})"
                          for i in items[:3])
        rows.append(f"<tr><td>{html_text(col)}</td><td>{cells}</td></tr>")
    if not rows:
        return ""
    return ('<table class="wb-concept-selectivity"><tr><th>label</th><th>most selective '
            "(selectivity, q)</th></tr>" + "".join(rows) + "</table>")


#: The concept table's columns on the page (the rest with "all columns", and always in the
#: CSV export): which concept, how often it is active, the perturbation it is most
#: selective for with its q-value, how many perturbations enrich it, whether it looks
#: technical, the features it is made of and (last, as the longest) its significant
#: drivers. Twenty-two columns in a 640-pixel table were unreadable.
SHOWN_COLUMNS = ("concept", "frequency", "perturbation_best", "perturbation_best_q",
                 "perturbation_n_enriched", "technical", "top_features", "drivers")


class ConceptsView(StudyView):
    """Table of concepts; the selected concept's page.

    Parameters
    ----------
    study : Study or None
        The open Study the view reads.
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's other parameters (``only_gene``, ``svg``, ...).
    """

    only_gene = param.Boolean(default=True, doc="List only the concepts of the selected gene.")
    all_columns = param.Boolean(default=False, doc=(
        "Show every column of the concept table; by default the columns of "
        ":data:`SHOWN_COLUMNS` (the CSV export always has them all)."))

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
        return (f"Concepts of **{md_text(gene)}**: {', '.join(ids) if ids else 'none'}" if gene
                else f"{len(concept_table(self.study))} concepts (choose a gene to filter)")

    def _rows(self) -> pd.DataFrame:
        df = self.table().reset_index()
        if not self.all_columns:
            df = df[[c for c in SHOWN_COLUMNS if c in df.columns]]
        if "drivers" in df:  # an empty cell would read as "not computed"
            drivers = df["drivers"].astype(object).fillna("").astype(str)
            df["drivers"] = drivers.where(drivers != "", "no significant driver")
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
        self.param.watch(refresh, ["only_gene", "all_columns"])
        return pn.Column(head, tab)

    @param.depends("selection.concept")
    def _page(self):
        cid = self.selection.concept
        if not cid or cid not in concept_table(self.study).index:
            return pn.pane.Markdown("Choose a concept for its page.")
        page = concept_page(self.study, cid)
        alpha = float(concept_pages(self.study).get("alpha", 0.05))
        parts = [pn.pane.Markdown(f"#### Concept {md_text(cid)}",
                                  css_classes=["wb-concept-page"])]
        hist = hv.Histogram((page["hist_edges"], page["hist_counts"]),
                            kdims="activation", vdims="samples")
        hist = hist.opts(width=260, height=160, title="Activation", tools=["hover", "save"])
        drivers = pn.pane.Markdown(drivers_markdown(page, alpha),
                                   css_classes=["wb-concept-drivers"])
        stab = pn.pane.Markdown(stability_markdown(
            page, concept_pages(self.study).get("stability")),
            css_classes=["wb-concept-stability"])
        side = [drivers, stab, pn.pane.Markdown(_similar_markdown(page))]
        table = _selectivity_html(page)
        if table:
            side.append(pn.pane.HTML(table))
        parts += [pn.Row(pn.pane.HoloViews(hist, linked_axes=False), pn.Column(*side))]
        ex, acts = page["exemplars"], page.get("activations") or []
        caps = [(e, f"activation {a:.3f}") for e, a in zip(ex, acts, strict=False)] or None
        if ex and self.study.has("images"):
            from workbench.dashboards.images import tile_html

            parts.append(pn.pane.Markdown("Top-activating crops (largest first):"))
            parts.append(pn.pane.HTML(tile_html(self.study, ex[:8], caps[:8] if caps else None),
                                      width=self.width, css_classes=["wb-concept-exemplars"]))
        elif ex:
            shown = [f"{md_text(e)} ({a:.3f})" for e, a in zip(ex, acts, strict=False)] or \
                [md_text(e) for e in ex]
            parts.append(pn.pane.Markdown("Exemplars (activation): " + ", ".join(shown[:8]) +
                                          " (no images in this Study)",
                                          css_classes=["wb-concept-exemplars"]))
        quant = page.get("quantiles") or []
        if quant:
            parts.append(pn.pane.Markdown(
                "Exemplars at activation quantiles: " + ", ".join(
                    f"q{int(round(q['quantile'] * 100))} {md_text(q['id'])} "
                    f"({q['activation']:.3f})" for q in quant),
                css_classes=["wb-concept-quantiles"]))
        return pn.Column(*parts)

    def body(self):
        return pn.Column(pn.Row(
            pn.widgets.Checkbox.from_param(self.param.only_gene,
                                           name="only the selected gene's concepts"),
            pn.widgets.Checkbox.from_param(self.param.all_columns, name="all columns")),
            self._list(), self._page)
