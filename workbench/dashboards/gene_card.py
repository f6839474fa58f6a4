"""The gene card: what the workbench knows about one gene or perturbation, in one table.

A biologist who asks "what about G07?" should not have to read five panels. The card
collects, from every artefact the Study holds, one line per fact: how reproducible the
gene's profile is (replicate cosine against the permutation null) and which perturbations
look most like it (cosine, known relationships marked); the concepts it drives
significantly (q < 0.05, else "no significant concept"); its significant interaction
partners (p-values only from tests whose p-values are calibrated, graded scores labelled
as scores); its likely regulators and targets with their posterior probabilities (DynGFN,
Atanackovic et al. 2023, against the prior edge probability); and the next experiment
proposed for it (the pair planner's batch, the screen designer's plan); and the phenotype
searches (``workbench find``, Hartford et al. 2020) in which a perturbation holding it is
enriched, with the enrichment's BH q shown as the ranking score it is (its level was not
checked under well or batch effects), or "no phenotype search".

Every line names the view that holds the detail, and the baseline or chance level beside
its value where there is one. :func:`gene_card` returns the table (a notebook, CSV or JSON
export); :class:`GeneCardView` shows it in the dashboard, each line linking to its view.
Everything is read through the Study (``study.read``, ``study.read_uns``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

#: Columns of the card, in order.
COLUMNS = ("section", "fact", "value", "baseline", "view")
#: Significance level for concepts and partners.
ALPHA = 0.05
#: Regulators and targets at least this probable are listed.
EDGE_LEVEL = 0.5
#: Every artefact the card reads: cached cards are keyed on their versions.
READS = ("images", "profiles", "perturbations", "concepts", "interactions", "gi_scores",
         "pair_selection", "grn", "design_plan", "relationships", "ground_truth",
         "phenotype_search")
#: Where each section's detail lives, and the command that fills an empty one.
SECTIONS = {
    "profile": ("perturbation_map", "`workbench embed STUDY`"),
    "concepts": ("concepts", "`workbench concepts STUDY`"),
    "interactions": ("interactions", "`workbench interactions STUDY`"),
    "grn": ("grn", "`workbench grn STUDY`"),
    "next experiment": ("interactions", "`workbench plan-pairs STUDY --budget N`"),
    "phenotype": ("embeddings", "`workbench find STUDY --exemplar CROP_ID`"),
}


def _row(section, fact, value, baseline="", view=None):
    return {"section": section, "fact": fact, "value": value, "baseline": baseline,
            "view": view or SECTIONS[section][0]}


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(float(x)) else f"{float(x):.{digits}g}"


def _involves(name: str, gene: str) -> bool:
    return name == gene or gene in str(name).split("+")


# ------------------------------------------------------------------------- sections
def _profile(study, gene: str) -> list[dict]:
    rows: list[dict] = []
    if not study.has("perturbations"):
        return [_row("profile", "profile", "not computed yet",
                     f"run {SECTIONS['profile'][1]}")]
    bench = study.read_uns("perturbations", "benchmarks") if _has_uns(
        study, "perturbations", "benchmarks") else {}
    rc = bench.get("replicate_consistency", {})
    per = rc.get("per_perturbation", {})
    names = [str(n) for n in per.get("perturbation", [])]
    if gene in names:
        k = names.index(gene)
        rows.append(_row(
            "profile", "replicate consistency (mean cosine between replicates)",
            f"{_fmt(per['mean_cosine'][k])} over {int(per['n_replicates'][k])} replicates",
            f"null mean cosine {_fmt(rc.get('null_mean_cosine'))}"))
    from workbench.dashboards.perturbation_map import neighbours, similarity

    labels, cos = similarity(study)
    if gene in labels:
        nb = neighbours(study, gene, 3)
        i = labels.index(gene)
        others = np.delete(cos[i], i)
        text = "; ".join(f"{p} ({c:.2f}{', known' if k else ''})" for p, c, k in
                         zip(nb["perturbation"], nb["cosine"], nb["known"], strict=True))
        rows.append(_row("profile", "nearest neighbours (cosine)", text or "none",
                         f"median cosine to all others {_fmt(np.median(others), 2)}"))
    elif not rows:
        rows.append(_row("profile", "profile", f"{gene} is not in the perturbation map", ""))
    return rows


def _has_uns(study, name: str, key: str) -> bool:
    from workbench.errors import MissingArtefactError

    try:
        study.read_uns(name, key)
    except MissingArtefactError:
        return False
    return True


def _concepts(study, gene: str) -> list[dict]:
    if not study.has("concepts"):
        return [_row("concepts", "concepts", "not computed yet",
                     f"run {SECTIONS['concepts'][1]}")]
    adata = study.read("concepts")
    wb = adata.uns.get("workbench", {})
    levels = [str(v) for v in wb.get("labels", {}).get("perturbation", {}).get("levels", [])]
    q = adata.obsm.get("enrichment_q_perturbation")
    sel = adata.obsm.get("selectivity_perturbation")
    ids = adata.obs_names.astype(str).tolist()
    tech = adata.obs["technical"].to_numpy(bool) if "technical" in adata.obs else \
        np.zeros(len(ids), bool)
    if q is None or gene not in levels:
        return [_row("concepts", "concepts it drives (q < 0.05)",
                     f"{gene} has no enrichment test in this concept run", "")]
    j = levels.index(gene)
    qj = np.asarray(q, dtype=float)[:, j]
    hits = [k for k in np.argsort(qj) if qj[k] < ALPHA]
    if hits:
        text = "; ".join(f"{ids[k]} (q {_fmt(qj[k], 2)}"
                         + (f", selectivity {_fmt(np.asarray(sel)[k, j], 2)}" if sel is not None
                            else "") + (", follows batch" if tech[k] else "") + ")"
                         for k in hits)
    else:
        best = int(np.nanargmin(qj))
        text = f"no significant concept (smallest q {_fmt(qj[best], 2)}, {ids[best]})"
    return [_row("concepts", "concepts it drives (q < 0.05)", text,
                 f"{len(ids)} concepts tested")]


def _calibrated(row) -> bool:
    """Whether a row's p-value may be shown as one: a test with a p-value (not a graded
    score) that produced one, and not marked uncalibrated by the interactions step."""
    from workbench.dashboards.interactions import SCORE_TESTS

    if row["test"] in SCORE_TESTS or not np.isfinite(float(row["p"])):
        return False
    return bool(row.get("calibrated", True))


def _interactions(study, gene: str) -> list[dict]:
    from workbench.dashboards.interactions import SCORE_NOTE, interaction_table, source

    if not (study.has("interactions") or study.has("gi_scores")):
        return [_row("interactions", "partners", "not tested yet",
                     f"run {SECTIONS['interactions'][1]}")]
    df = interaction_table(study)
    mine = df[(df["gene_a"] == gene) | (df["gene_b"] == gene)]
    if mine.empty:
        return [_row("interactions", "partners", f"no tested pair holds {gene}", "")]
    rows = []
    cal = mine[[_calibrated(r) for _, r in mine.iterrows()]]
    sig = cal[cal["q"].astype(float) < ALPHA].sort_values("q")
    partner = lambda r: r["gene_b"] if r["gene_a"] == gene else r["gene_a"]  # noqa: E731
    if len(cal):
        text = ("; ".join(f"{partner(r)} ({r['test']}: p {_fmt(r['p'], 2)}, q {_fmt(r['q'], 2)})"
                          for _, r in sig.iterrows())
                or f"no significant partner ({cal['pair'].nunique()} pairs tested)")
        rows.append(_row("interactions", "significant partners (q < 0.05)", text,
                         "BH q over the tested pairs"))
    scores = mine[[not _calibrated(r) and np.isfinite(float(r["statistic"]))
                   for _, r in mine.iterrows()]]
    for test, g in scores.groupby("test"):
        g = g.reindex(g["statistic"].astype(float).abs().sort_values(ascending=False).index)
        parts = []
        for _, r in g.head(5).iterrows():
            ci = (f" [{_fmt(r['ci_low'], 2)}, {_fmt(r['ci_high'], 2)}]"
                  if "ci_low" in r and np.isfinite(float(r["ci_low"])) else "")
            parts.append(f"{partner(r)} {_fmt(r['statistic'], 2)}{ci}")
        rows.append(_row("interactions", f"{test} ({SCORE_NOTE})", "; ".join(parts),
                         "0 = additive" if source(study) == "interactions" else ""))
    return rows


def _grn(study, gene: str) -> list[dict]:
    if not study.has("grn"):
        return [_row("grn", "regulators and targets", "not computed yet",
                     f"run {SECTIONS['grn'][1]}")]
    from workbench.dashboards.grn import posterior

    names, prob = posterior(study)
    if gene not in names:
        return [_row("grn", "regulators and targets", f"{gene} is not in the GRN", "")]
    k = names.index(gene)
    settings = study.read_uns("grn", "settings")
    prior = settings.get("edge_prior")
    off = ~np.eye(len(names), dtype=bool)
    chance = (f"prior edge probability {_fmt(prior, 2)}" if prior is not None else
              f"mean edge probability {_fmt(prob[off].mean(), 2)}")

    def listing(values: np.ndarray) -> str:
        order = [j for j in np.argsort(-values) if j != k]
        hits = [j for j in order if values[j] >= EDGE_LEVEL]
        if not hits:
            best = order[0]
            return f"none at P ≥ {EDGE_LEVEL:g} (most probable {names[best]}, P {values[best]:.2f})"
        return "; ".join(f"{names[j]} (P {values[j]:.2f})" for j in hits)

    # child-major: prob[i, j] is the probability that gene j regulates gene i
    return [_row("grn", "likely regulators (posterior probability)", listing(prob[k]), chance),
            _row("grn", "likely targets (posterior probability)", listing(prob[:, k]), chance)]


def _next(study, gene: str) -> list[dict]:
    rows = []
    if study.has("pair_selection"):
        hist = study.read("pair_selection")
        prop = hist[(hist["status"] == "proposed")
                    & ((hist["gene_a"] == gene) | (hist["gene_b"] == gene))]
        if len(prop):
            parts = [f"{r['pair']} (predicted {_fmt(r.get('predicted'), 3)}"
                     + (f" [{_fmt(r['predicted_low'], 3)}, {_fmt(r['predicted_high'], 3)}]"
                        if "predicted_low" in r else "") + ")" for _, r in prop.iterrows()]
            planner = f"planner {prop['planner'].iloc[0]}; " if "planner" in prop else ""
            rows.append(_row("next experiment", "double knock-outs proposed with it",
                             "; ".join(parts), f"{planner}90% intervals"))
        else:
            n = int((hist["status"] == "proposed").sum())
            rows.append(_row("next experiment", "double knock-outs proposed with it",
                             f"none of the {n} proposed pairs holds {gene}", ""))
    if study.has("design_plan"):
        plan = study.read("design_plan")
        mine = plan[plan["candidate"].astype(str).map(lambda c: _involves(c, gene))]
        prop = mine[mine["status"] == "proposed"]
        if len(prop):
            r = prop.sort_values("rank").iloc[0]
            rows.append(_row("next experiment", f"{r['planner']} plan ({r['policy']})",
                             f"rank {int(r['rank'])} of the next batch: {r['reason']}",
                             f"acquisition score {_fmt(r['score'])}", view=_plan_view()))
        elif len(mine):
            rows.append(_row("next experiment", "screen plan",
                             f"{gene} is {mine['status'].iloc[0]}, not in the next batch", "",
                             view=_plan_view()))
    if not rows:
        rows.append(_row("next experiment", "next experiment", "nothing planned yet",
                         f"run {SECTIONS['next experiment'][1]} or `workbench design screen`"))
    return rows


def _phenotype(study, gene: str) -> list[dict]:
    from workbench.dashboards import phenotype as ph

    if not ph.has_search(study):
        return [_row("phenotype", "phenotype searches", "no phenotype search",
                     f"run {SECTIONS['phenotype'][1]}")]
    name = ph.search_name(study)
    status = study.read_uns(ph.ARTEFACT, "status")
    lo, hi = (float(study.read_uns(ph.ARTEFACT, k)) for k in ("lower", "upper"))
    level = 1 - float(study.read_uns(ph.ARTEFACT, "settings")["delta"])
    hits = ph.enriched_for(study, gene)
    fact = (f"enriched in the {name} ({status}; prevalence {lo:.2%} to {hi:.2%}, "
            f"{level:.0%} interval)")
    if not len(hits):
        return [_row("phenotype", fact, f"no perturbation holding {gene} is enriched "
                     f"(ranking score < {ph.ALPHA:g})", ph.SCORE_NOTE)]
    text = "; ".join(f"{r['perturbation']} ({int(r['n_positive'])} of {int(r['n_crops'])} "
                     f"crops positive, ranking score {_fmt(r['q'], 2)})"
                     for _, r in hits.iterrows())
    return [_row("phenotype", fact, text, ph.SCORE_NOTE)]


def _plan_view() -> str:
    from workbench.dashboards.state import VIEW_NAMES

    return "plan" if "plan" in VIEW_NAMES else "interactions"


# ------------------------------------------------------------------------- the card
def gene_card(study, gene: str) -> pd.DataFrame:
    """One row per fact about ``gene``: ``section``, ``fact``, ``value``, ``baseline``
    (baseline or chance level, where there is one) and ``view`` (the dashboard view with
    the detail). ``study`` is a Study or a path.

    Raises :class:`~workbench.errors.UnknownGeneError` for a name that no artefact holds.

    Parameters
    ----------
    study : Study, str or os.PathLike
        The Study, or the path of its folder.
    gene : str
        A gene or perturbation name (surrounding spaces ignored).

    Returns
    -------
    pandas.DataFrame
        The facts, one per row, in a fresh copy.
    """
    from workbench.data.study import Study
    from workbench.errors import UnknownGeneError

    if not hasattr(study, "cache_key"):
        study = Study.open(study)
    gene = str(gene).strip()
    known = known_genes(study)
    if gene in known:
        from workbench.dashboards.cache import cached

        return cached(study, READS, "gene-card", _card_rows, gene).copy()
    if gene not in known:
        close = [g for g in known if gene.lower() in g.lower()][:5]
        raise UnknownGeneError(
            f"{gene!r} is not a gene or perturbation of Study {study.path.name}.",
            f"choose one of {', '.join(close or known[:8])}" + (" ..." if len(known) > 8 else ""))
    return _card_rows(study, gene)


def _card_rows(study, gene: str) -> pd.DataFrame:
    from workbench.dashboards.cache import CachedReads

    study = CachedReads(study)
    rows = [*_profile(study, gene), *_concepts(study, gene), *_interactions(study, gene),
            *_grn(study, gene), *_next(study, gene), *_phenotype(study, gene)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs["gene"] = gene
    return df


def known_genes(study) -> list[str]:
    """Every perturbation and gene any artefact of the Study knows (the control left out).
    Read once per artefact version and shared by sessions (a new list each call).

    Parameters
    ----------
    study : Study
        The Study.

    Returns
    -------
    list of str
        The names, sorted.
    """
    from workbench.dashboards.cache import cached

    return list(cached(study, READS, "known-genes", _known_genes))


def _known_genes(study) -> list[str]:
    names: set[str] = set()
    if study.has("perturbations"):
        names |= set(study.read_obs("perturbations").index.astype(str))
    elif study.has("profiles"):
        names |= set(study.read_obs("profiles")["perturbation"].astype(str))
    elif study.has("images"):
        names |= set(study.read("images").obs["perturbation"].astype(str))
    if study.has("grn"):
        from workbench.dashboards.grn import posterior

        names |= set(posterior(study)[0])
    if study.has("interactions") or study.has("gi_scores"):
        from workbench.dashboards.interactions import genes

        names |= set(genes(study))
    names.discard(study.control_label)
    return sorted(names)


def card_json(card: pd.DataFrame) -> str:
    """The card as JSON: ``{"gene": ..., "facts": [{section, fact, value, baseline, view}]}``.

    Parameters
    ----------
    card : pandas.DataFrame
        A card from :func:`gene_card` (its gene in ``attrs["gene"]``).

    Returns
    -------
    str
        The JSON text (indented; values that JSON cannot hold as strings).
    """
    return json.dumps({"gene": card.attrs.get("gene", ""),
                       "facts": card.to_dict(orient="records")}, indent=1, default=str)


# ------------------------------------------------------------------------- the view
def _view_class():
    import panel as pn
    import param

    from workbench.dashboards.base import StudyView, md_text
    from workbench.dashboards.state import Layout

    class GeneCardView(StudyView):
        """The gene card of the selected gene; a click on a line opens the view with its
        detail beside it.

        Parameters
        ----------
        study : Study or None
            The open Study.
        selection : Selection or None
            The session's shared selection; None makes a new one.
        **params
            Values of the view's parameters (``layout``: the session's layout, so that a
            line's link can open its view).
        """

        layout = param.ClassSelector(class_=Layout, default=None, allow_None=True,
                                     doc="The session's layout (to open a line's view).")
        key = "gene_card"
        label = "Gene card"

        def table(self) -> pd.DataFrame:
            """The card of the selected gene (:func:`gene_card`), empty when none is chosen.

            Returns
            -------
            pandas.DataFrame
                One row per line of the card (columns :data:`COLUMNS`).
            """
            gene = self.selection.perturbation
            if not gene or gene not in known_genes(self.study):
                return pd.DataFrame(columns=list(COLUMNS))
            return gene_card(self.study, gene)

        def open_view(self, name: str) -> None:
            """Show view ``name`` beside the card (the line's link).

            Parameters
            ----------
            name : str
                The view's name; nothing happens when it is shown already or the card has
                no layout.

            Returns
            -------
            None
                The session's layout shows the view (at most four views kept).
            """
            if self.layout is None or name in self.layout.views:
                return
            views = [v for v in self.layout.views if v != name]
            self.layout.views = [*views[:3], name]

        def open_line(self, section: str, view: str) -> None:
            """A click on a line's link: the phenotype line also chooses the search's
            phenotype, so the embedding view opens coloured by its score.

            Parameters
            ----------
            section : str
                The card line's section (``"phenotype"``, ``"embedding"``, ...).
            view : str
                The view that holds that line's detail.

            Returns
            -------
            None
                The view is shown beside the card.
            """
            from workbench.dashboards import phenotype as ph

            if section == "phenotype" and ph.has_search(self.study):
                self.selection.choose_phenotype(ph.search_name(self.study))
            self.open_view(view)

        def _json(self):
            import io

            return io.StringIO(card_json(self.table()))

        def _card_state(self):
            """(title, empty-state message, table) of the current gene."""
            gene = self.selection.perturbation
            empty = pd.DataFrame(columns=list(COLUMNS))
            if not gene:
                return "", ("Choose a gene or perturbation (box above, or click one in any "
                            "view) to see its card."), empty
            if gene not in known_genes(self.study):
                return "", (f"**{md_text(gene)}** is not a gene or perturbation of this "
                            "Study."), empty
            card = self.table()
            return (f"#### What the workbench knows about **{md_text(gene)}**", "",
                    card.assign(view=[f"open {v} ›" for v in card["view"]]))

        def _card(self):
            """The card, built once per session; a new gene updates its text and the
            table's rows in place (a delta to the browser, not a new table)."""
            title_text, message, rows = self._card_state()
            title = pn.pane.Markdown(title_text, visible=bool(title_text),
                                     css_classes=["wb-gene-card-title"])
            empty = pn.pane.Markdown(message, visible=bool(message),
                                     css_classes=["wb-gene-card-empty"])
            tab = pn.widgets.Tabulator(
                rows, show_index=False, disabled=True, layout="fit_data_table",
                sizing_mode="stretch_width", groupby=["section"], visible=bool(title_text),
                css_classes=["wb-gene-card-table"],
                header_tooltips={"baseline": "baseline or chance level to compare with",
                                 "view": "click to open the view with the detail"})
            tab.on_click(lambda e: e.column == "view" and self.open_line(
                str(tab.value["section"].iloc[e.row]),
                str(tab.value["view"].iloc[e.row]).removeprefix("open ").removesuffix(" ›")))

            def redraw(*_):
                title_text, message, rows = self._card_state()
                title.param.update(object=title_text, visible=bool(title_text))
                empty.param.update(object=message, visible=bool(message))
                tab.param.update(value=rows, visible=bool(title_text))

            self.selection.param.watch(redraw, "perturbation")
            return pn.Column(title, empty, tab, sizing_mode="stretch_width")

        def body(self):
            """The card of the selected gene, and its download as JSON.

            Returns
            -------
            panel.Column
                The view's content.
            """
            json_dl = pn.widgets.FileDownload(
                callback=self._json, filename="gene_card.json", label="Gene card (JSON)",
                embed=False, width=180, height=34, css_classes=["wb-export-gene-card-json"])
            return pn.Column(self._card(), json_dl, sizing_mode="stretch_width")

    return GeneCardView


def __getattr__(name: str):
    if name == "GeneCardView":  # built on first use: importing this module needs no Panel
        cls = _view_class()
        globals()["GeneCardView"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
