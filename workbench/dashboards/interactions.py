"""Interaction view: which pairs of perturbations interact, the evidence for one pair, and
which pairs to run next.

The pair matrix shows one test's statistic (or -log10 q) for every tested pair, gene by
gene; clicking a cell selects the pair and its first gene, and the gene chooser above the
matrix selects a gene. The volcano plot shows effect size against -log10 p. The pair page
puts control, A, B and A+B crops side by side, so the interaction can be seen and not only
read. The active-selection panel shows the selection curve from ``pair_selection`` and the
batch it proposes next.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import StudyView
from workbench.dashboards.cache import cached
from workbench.dashboards.state import make_pair

def _with_scores(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(gene_a=df["gene_a"].astype(str), gene_b=df["gene_b"].astype(str))
    df["neg_log10_p"] = -np.log10(np.clip(df["p"].astype(float), 1e-300, 1)).fillna(0.0)
    df["neg_log10_q"] = -np.log10(np.clip(df["q"].astype(float), 1e-300, 1)).fillna(0.0)
    return df


def source(study) -> str:
    """``"interactions"`` (the tests' results) or, failing that, ``"gi_scores"`` (an imported
    genetic-interaction map such as Norman et al. 2019, shown as its score)."""
    return "gi_scores" if not study.has("interactions") and study.has("gi_scores") else "interactions"


def _read_pairs(study) -> pd.DataFrame:
    name = source(study)
    df = study.read(name)
    if name == "gi_scores":  # a score per pair, no test: shown as its own "test"
        score = df["gi_score"].astype(float)
        df = df.assign(pair=[make_pair(a, b) for a, b in zip(df["gene_a"], df["gene_b"],
                                                              strict=True)],
                       test="gi_score", statistic=score, effect=score, p=np.nan, q=np.nan)
    else:  # the interactions step: one row per pair and test
        df = df.assign(effect=df["effect_size"].astype(float))
    return _with_scores(df)


def interaction_table(study) -> pd.DataFrame:
    """The tested pairs (``gene_a``, ``gene_b``, ``pair``, ``test``, ``statistic``, ``p``,
    ``q``, ...) with ``effect``, ``neg_log10_p`` and ``neg_log10_q`` added."""
    return cached(study, [source(study)], "interactions", _read_pairs)


def genes(study) -> list[str]:
    df = interaction_table(study)
    return sorted(set(df["gene_a"]) | set(df["gene_b"]))


def pair_matrix(study, test: str, value: str = "statistic") -> pd.DataFrame:
    """Long table gene_a, gene_b, value (both triangles) for one test."""
    df = interaction_table(study)
    df = df[df["test"] == test] if test in set(df["test"]) else df
    v = df[value].astype(float) if value in df else df["neg_log10_q"]
    long = pd.DataFrame({"gene_a": df["gene_a"], "gene_b": df["gene_b"], "value": v,
                         "q": df["q"] if "q" in df else np.nan, "pair": df["pair"]})
    mirror = long.rename(columns={"gene_a": "gene_b", "gene_b": "gene_a"})
    return pd.concat([long, mirror], ignore_index=True).drop_duplicates(["gene_a", "gene_b"])


def selection_history(study) -> pd.DataFrame | None:
    return (cached(study, ["pair_selection"], "pair-selection", lambda s: s.read("pair_selection"))
            if study.has("pair_selection") else None)


def next_batch(history: pd.DataFrame) -> pd.DataFrame:
    """The pairs the pair-selection step proposes to run next (``status == "proposed"``)."""
    return history[history["status"] == "proposed"]


class InteractionsView(StudyView):
    """Pair matrix, volcano, pair page, selection curve and next batch."""

    test = param.Selector(default=None, objects=[], doc="Which interaction test to show.")
    value = param.Selector(default="statistic", objects=["statistic", "neg_log10_q", "effect"],
                           doc="Colour of the matrix: the statistic, -log10 q or the effect.")
    gene = param.Selector(default="", objects=[""], doc="Choose a gene (selects it everywhere).")

    key = "interactions"

    @property
    def needs(self):
        return (source(self.study),) if self.study is not None else ("interactions",)
    label = "Interactions"

    def __init__(self, study=None, selection=None, **params):
        super().__init__(study, selection, **params)
        if not self.missing:
            tests = sorted(set(interaction_table(self.study)["test"]))
            self.param.test.objects = tests
            self.test = tests[0]
            self.param.gene.objects = ["", *genes(self.study)]
            self._sync_gene()
            self.selection.param.watch(lambda e: self._sync_gene(), "perturbation")

    def _sync_gene(self):
        g = self.selection.perturbation
        if g in self.param.gene.objects and g != self.gene:
            self.gene = g

    @param.depends("gene", watch=True)
    def _gene_chosen(self):
        if self.gene != self.selection.perturbation and self.gene:
            self.selection.choose_gene(self.gene)

    def table(self) -> pd.DataFrame:
        df = interaction_table(self.study)
        g = self.selection.perturbation
        return df[(df["gene_a"] == g) | (df["gene_b"] == g)] if g else df

    # -- plots
    @param.depends("test", "value", "svg")
    def matrix(self):
        long = pair_matrix(self.study, self.test, self.value)
        order = genes(self.study)
        hm = hv.HeatMap(long, ["gene_b", "gene_a"], ["value", "q", "pair"]).redim.values(
            gene_a=order, gene_b=order)
        return hm.opts(width=self.width - 120, height=self.height, cmap="viridis", colorbar=True,
                       tools=["save", "reset", "tap", "hover"], xrotation=90, invert_yaxis=True,
                       title=f"{self.test}: {self.value}",
                       backend_opts={"plot.output_backend": "svg" if self.svg else "canvas"})

    def _matrix_pane(self):
        dmap = hv.DynamicMap(self.matrix)
        tap = hv.streams.Tap(source=dmap)
        tap.add_subscriber(lambda x=None, y=None, **kw: self._tap(x, y))
        self._tap_stream = tap
        return pn.pane.HoloViews(dmap, linked_axes=False)

    def _tap(self, x, y):
        if isinstance(x, str) and isinstance(y, str) and x != y:
            self.selection.choose_pair(y, x)

    def _volcano_base(self, test=None):
        df = interaction_table(self.study)
        df = df[df["test"] == self.test] if self.test else df
        return hv.Points(df, ["effect", "neg_log10_p"], ["pair", "q"]).opts(
            size=6, color="gray", alpha=0.6, tools=["hover", "save"], width=300,
            height=240, title="Volcano", ylabel="-log10 p")

    def _volcano_marks(self, perturbation=None, pair=None, test=None):
        df = interaction_table(self.study)
        df = df[df["test"] == self.test] if self.test else df
        g = self.selection.perturbation
        mine = df[(df["gene_a"] == g) | (df["gene_b"] == g)] if g else df.iloc[:0]
        chosen = df[df["pair"] == self.selection.pair]
        return hv.Points(mine, ["effect", "neg_log10_p"], ["pair"]).opts(
            color="red", size=7) * hv.Points(chosen, ["effect", "neg_log10_p"], ["pair"]).opts(
            color="orange", size=12, marker="star")

    def volcano(self):
        """Effect against -log10 p; the gene's pairs and the chosen pair drawn on top."""
        test = hv.streams.Params(self, ["test"])
        base = hv.DynamicMap(self._volcano_base, streams=[test])
        marks = hv.DynamicMap(self._volcano_marks, streams=[
            hv.streams.Params(self.selection, ["perturbation", "pair"]), test])
        return pn.pane.HoloViews(base * marks, linked_axes=False)

    @param.depends("selection.pair")
    def pair_page(self):
        pair = self.selection.pair_genes
        if not pair:
            return pn.pane.Markdown("Click a cell of the matrix for the pair page.",
                                    css_classes=["wb-pair-page"])
        a, b = pair
        df = interaction_table(self.study)
        rows = df[df["pair"] == self.selection.pair]
        parts = [pn.pane.Markdown(f"#### Pair {a} + {b}", css_classes=["wb-pair-page"]),
                 pn.widgets.Tabulator(rows.drop(columns=["neg_log10_p", "neg_log10_q"]),
                                      show_index=False, disabled=True, height=110,
                                      width=self.width)]
        if self.study.has("images"):
            from workbench.dashboards.images import ids_of, tile_html

            ctrl = self.study.control_label
            groups = [("control", ids_of(self.study, ctrl, 2, exact=True)),
                      (a, ids_of(self.study, a, 2, exact=True)),
                      (b, ids_of(self.study, b, 2, exact=True)),
                      (f"{a}+{b}", ids_of(self.study, f"{a}+{b}", 2, exact=True)
                       or ids_of(self.study, f"{b}+{a}", 2, exact=True))]
            ids = [i for _, g in groups for i in g]
            caps = [name for name, g in groups for _ in g]
            parts.append(pn.pane.HTML(tile_html(self.study, ids, caps), width=self.width))
        return pn.Column(*parts)

    def selection_panel(self):
        hist = selection_history(self.study)
        if hist is None:
            return pn.pane.Markdown("No active pair selection yet "
                                    "(run `workbench plan-pairs STUDY --budget N`).")
        # the best interaction statistic measured so far, round by round
        measured = hist[hist["status"] == "measured"]
        curve = measured.groupby("round", as_index=False)["value"].max()
        curve["value"] = curve["value"].cummax()
        plot = hv.Curve(curve, "round", "value").opts(
            width=260, height=180, title="Selection curve", ylabel="best value so far",
            tools=["hover", "save"])
        nb = next_batch(hist)
        return pn.Row(pn.pane.HoloViews(plot, linked_axes=False),
                      pn.Column(pn.pane.Markdown(f"Next batch ({len(nb)} pairs)"),
                                pn.widgets.Tabulator(nb, show_index=False, disabled=True,
                                                     height=160, width=300)))

    def body(self):
        controls = pn.Row(
            pn.widgets.Select.from_param(self.param.gene, name="Gene", width=120,
                                         css_classes=["wb-gene-select"]),
            pn.widgets.Select.from_param(self.param.test, width=140),
            pn.widgets.Select.from_param(self.param.value, width=140))
        return pn.Column(controls, pn.Row(self._matrix_pane(), self.volcano()), self.pair_page,
                         self.selection_panel())
