"""The overview: the landing page of a Study with nothing chosen.

It says what the Study holds and, for each step, its headline number next to the baseline
or chance level that gives it meaning (probe accuracy against chance, planted-group mAP
against its permutation null, GRN edge AUROC against the regression baseline the step ran
beside it, ...), where to click for the detail, and for a step not run yet the command that
fills it. Everything is read through the Study; nothing is recomputed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("step", "holds", "headline", "baseline", "where")


def _f(x, digits: int = 3) -> str:
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return "n/a"


def _uns(study, name, key) -> dict:
    from workbench.errors import MissingArtefactError

    try:
        return study.read_uns(name, key)
    except MissingArtefactError:
        return {}


def _missing(step: str, artefact: str) -> dict:
    from workbench.data.study import MAKERS

    return {"step": step, "holds": "not computed yet", "headline": "",
            "baseline": "", "where": f"run {MAKERS.get(artefact, 'its step')}"}


def overview_table(study) -> pd.DataFrame:
    """One row per step: what it holds, its headline number, the baseline or chance level
    beside it, and where to look (a view, or the command that fills an empty step).
    Computed once per artefact version and shared by sessions (a copy each call).

    Parameters
    ----------
    study : Study
        The Study.

    Returns
    -------
    pandas.DataFrame
        The overview, one row per step.
    """
    from workbench.dashboards.cache import cached
    from workbench.dashboards.gene_card import READS

    return cached(study, READS, "overview", _overview_rows).copy()


def _overview_rows(study) -> pd.DataFrame:
    from workbench.dashboards.cache import CachedReads

    study = CachedReads(study)
    rows = []
    if study.has("images"):
        obs = study.read("images").obs
        n_pert = obs["perturbation"].astype(str).nunique()
        rows.append({"step": "images", "holds": f"{len(obs)} crops of {n_pert} perturbations",
                     "headline": "", "baseline": "", "where": "Images view"})
    else:
        rows.append(_missing("images", "images"))
    if study.has("profiles"):
        emb = _uns(study, "profiles", "embedding")
        probe = emb.get("probe", {})
        head, base = "", ""
        if probe:
            blocks = list(np.asarray(probe.get("blocks", [])))
            acc = np.asarray(probe.get("balanced_accuracy", []), dtype=float)
            best = probe.get("best_block")
            k = blocks.index(best) if best in blocks else int(np.argmax(acc)) if len(acc) else None
            if k is not None:
                head = (f"linear probe of {probe.get('label', 'perturbation')}: balanced "
                        f"accuracy {_f(acc[k])} (block {blocks[k]})")
                base = f"chance {_f(probe.get('chance'))}"
        rows.append({"step": "embed", "holds": f"{study.read_obs('profiles').shape[0]} "
                     "profiles", "headline": head, "baseline": base,
                     "where": "Embeddings view"})
    else:
        rows.append(_missing("embed", "profiles"))
    if study.has("perturbations"):
        b = _uns(study, "perturbations", "benchmarks")
        g, rc = b.get("planted_group_retrieval", {}), b.get("replicate_consistency", {})
        if g:
            rows.append({"step": "map benchmark", "holds": f"{b.get('n_perturbations', '')} "
                         "perturbations", "headline": f"planted-group mAP {_f(g.get('map'))}",
                         "baseline": f"permutation null {_f(g.get('null_mean'))} ± "
                                     f"{_f(g.get('null_sd'), 2)}",
                         "where": "Perturbation map view"})
        if rc:
            rows.append({"step": "map benchmark", "holds": "replicate consistency",
                         "headline": f"mean replicate cosine {_f(rc.get('replicate_mean_cosine'))}",
                         "baseline": f"null {_f(rc.get('null_mean_cosine'))}",
                         "where": "Perturbation map view"})
    if study.has("concepts"):
        obs = study.read_obs("concepts")
        m = _uns(study, "concepts", "metrics")
        n_tech = int(obs["technical"].sum()) if "technical" in obs else 0
        rows.append({"step": "concepts", "holds": f"{len(obs)} concepts "
                     f"({n_tech} follow batches)", "headline": f"reconstruction R² {_f(m.get('r2'))}"
                     if m else "", "baseline": "0 = the mean profile" if m else "",
                     "where": "Concepts view"})
    else:
        rows.append(_missing("concepts", "concepts"))
    if study.has("interactions"):
        from workbench.dashboards.interactions import SCORE_TESTS

        df = study.read("interactions")
        tests = df[~df["test"].isin(SCORE_TESTS) & np.isfinite(df["p"].astype(float))]
        n_sig = int((tests["q"].astype(float) < 0.05).sum())
        rows.append({"step": "interactions", "holds": f"{df['pair'].nunique()} pairs, "
                     f"tests {', '.join(sorted(set(df['test'])))}",
                     "headline": f"{n_sig} pair-tests at q < 0.05",
                     "baseline": f"about {_f(0.05 * len(tests), 2)} expected by chance if "
                                 "none interacts", "where": "Interactions view"})
    else:
        rows.append(_missing("interactions", "interactions"))
    if study.has("pair_selection"):
        hist = study.read("pair_selection")
        rows.append({"step": "pair planner", "holds": f"{int((hist['status'] == 'measured').sum())}"
                     " pairs measured", "headline": f"{int((hist['status'] == 'proposed').sum())} "
                     "pairs proposed next", "baseline": "", "where": "Interactions view, "
                     "Next batch"})
    if study.has("grn"):
        names = study.read("grn").var_names
        met = _uns(study, "grn", "metrics")
        settings = _uns(study, "grn", "settings")
        method = settings.get("method", "posterior")
        ours, base = met.get(method, {}), met.get("baseline", {})
        rows.append({"step": "grn", "holds": f"posterior over {len(names)} genes",
                     "headline": f"edge AUROC {_f(ours.get('auroc'))} ({method})" if ours else
                     f"prior edge probability {_f(settings.get('edge_prior'), 2)}",
                     "baseline": f"regression baseline {_f(base.get('auroc'))}; chance 0.5"
                     if base else "", "where": "GRN view"})
    else:
        rows.append(_missing("grn", "grn"))
    if study.has("design_plan"):
        plan = study.read("design_plan")
        rows.append({"step": "design", "holds": f"{len(plan)} candidates",
                     "headline": f"{int((plan['status'] == 'proposed').sum())} proposed next",
                     "baseline": "", "where": "Plan view"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _view_class():
    import panel as pn

    from workbench.dashboards.base import StudyView, md_text

    class OverviewView(StudyView):
        """What the Study holds and each step's headline against its baseline.

        Parameters
        ----------
        study : Study or None
            The open Study.
        selection : Selection or None
            The session's shared selection; None makes a new one.
        **params
            Values of the view's parameters.
        """

        key = "overview"
        label = "Overview"

        def table(self) -> pd.DataFrame:
            """The overview's lines (:func:`overview_table`).

            Returns
            -------
            pandas.DataFrame
                One row per step: its headline number, baseline and where to look.
            """
            return overview_table(self.study)

        def body(self):
            """What the Study holds, the steps' headline numbers and what to click.

            Returns
            -------
            panel.Column
                The view's content.
            """
            intro = pn.pane.Markdown(
                f"**{md_text(self.study.title)}**. Each line is one step: its headline "
                "number, the baseline or chance level it should beat, and where to look. "
                "**Choose a gene** in the box above (or click one in any view) to see its "
                "card; the views below follow the same choice.",
                css_classes=["wb-overview-intro"], sizing_mode="stretch_width")
            # columns share the width and long cells wrap, so "where" is never cut off
            wrap = {"type": "textarea"}
            tab = pn.widgets.Tabulator(self.table(), show_index=False, disabled=True,
                                       layout="fit_columns", sizing_mode="stretch_width",
                                       widths=dict(zip(COLUMNS, ("10%", "22%", "30%", "22%",
                                                                 "16%"), strict=True)),
                                       formatters={c: wrap for c in COLUMNS},
                                       css_classes=["wb-overview-table"])
            return pn.Column(intro, tab, sizing_mode="stretch_width")

    return OverviewView


def __getattr__(name: str):
    if name == "OverviewView":
        cls = _view_class()
        globals()["OverviewView"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
