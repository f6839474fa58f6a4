"""Interaction view: which pairs of perturbations interact, the evidence for one pair, and
which pairs to run next.

The pair matrix shows one test's statistic (or -log10 q) for every tested pair, gene by
gene; clicking a cell selects the pair and its first gene, and the gene chooser above the
matrix selects a gene. The volcano plot shows effect size against -log10 p. The pair page
puts control, A, B and A+B crops side by side, so the interaction can be seen and not only
read. The pair summary puts the four readouts of every tested pair side by side and says
which gave a p-value and which a graded score: the additivity test (is the double's mean
shift the sum of the singles'? p, q and the interaction effect with its interval), the
disjointness test (p and q), the separability score ("score, not a p-value": an interval,
no p) and the viability result (cell counts of the double against its singles), with the
status of readouts that gave no value (too few cells, singles in another batch). The
active-selection panel shows the selection curve from ``pair_selection`` and the "next
pairs to run" table: the proposed pairs in the planner's rank order, each with its
predicted value, 90% interval and reason, under one line naming the planner that ran and
why it was chosen; choosing a row selects that pair everywhere. The table downloads as its
own CSV (``interactions_next_pairs.csv``, :func:`next_pairs_export`), which
:func:`workbench.dashboards.export.export_view` writes beside the view's table.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from workbench.dashboards.base import LiveGlyphs, StudyView, csv_bytes, live, md_text, no_data
from workbench.dashboards.cache import cached
from workbench.dashboards.state import make_pair

#: Tests whose number is a graded score: shown as such, never as a p-value.
SCORE_TESTS = ("separability_score", "gi_score")
SCORE_NOTE = "score, not a p-value"
#: Column tooltips of the pair summary and the next batch.
#: The step's combined call (additivity or viability), shown first where present.
COMBINED = "additivity_or_viability"

TOOLTIPS = {
    "call": "additivity or viability: min(1, 2 min p) of the two readouts (valid whatever "
            "their dependence), BH q across pairs, and which readout gave the smaller p",
    "additivity": "additivity of the mean shifts, wells as replicates: p-value, BH q and the "
                  "interaction effect (debiased norm of the double's departure from the sum "
                  "of the singles) with its interval",
    "disjointness": "replicate-level disjointness test: p-value (BH q in brackets)",
    "separability": "KL-additivity separability: score, not a p-value; 95% bootstrap "
                    "interval over wells in brackets",
    "viability": "cell counts of A+B against A and B: log2 contrast (negative: synthetic "
                 "sickness or lethality) and its p-value",
    "status": "why a readout gave no value (too few cells, one well, singles in another "
              "batch); 'tested' otherwise",
    "rank": "the planner's order: 1 is the pair it would run first",
    "predicted": "the planner's predicted value of the pair",
    "interval": "90% interval of the prediction",
    "reason": "why the planner chose the pair",
    "planner": "the planner that ran",
}


def readout_kind(test: str, p: float) -> str:
    """How the row's number is to be read: "p-value", "score, not a p-value" or "none".

    Parameters
    ----------
    test : str
        The row's test; those of :data:`SCORE_TESTS` give a graded score.
    p : float
        The row's p-value (``NaN`` when the test gave none).

    Returns
    -------
    str
        :data:`SCORE_NOTE` for a score test, else ``"p-value"``, or
        ``"none (see status)"`` when ``p`` is not finite.
    """
    if test in SCORE_TESTS:
        return SCORE_NOTE
    return "p-value" if np.isfinite(p) else "none (see status)"


def _with_scores(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(gene_a=df["gene_a"].astype(str), gene_b=df["gene_b"].astype(str))
    df["neg_log10_p"] = -np.log10(np.clip(df["p"].astype(float), 1e-300, 1)).fillna(0.0)
    df["neg_log10_q"] = -np.log10(np.clip(df["q"].astype(float), 1e-300, 1)).fillna(0.0)
    df["readout"] = [readout_kind(t, p) for t, p in zip(df["test"], df["p"].astype(float),
                                                        strict=True)]
    return df


def source(study) -> str:
    """``"interactions"`` (the tests' results) or, failing that, ``"gi_scores"`` (an imported
    genetic-interaction map such as Norman et al. 2019, shown as its score).

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    str
        ``"gi_scores"`` when the Study has that and no ``interactions``, else
        ``"interactions"``.
    """
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
    ``q``, ...) with ``effect``, ``neg_log10_p`` and ``neg_log10_q`` added.

    Parameters
    ----------
    study : Study
        The open Study, with ``interactions`` or ``gi_scores``.

    Returns
    -------
    pandas.DataFrame
        One row per pair and test, with ``readout`` (:func:`readout_kind`); a missing p or
        q gives 0 in its ``-log10`` column. An imported GI map is one test,
        ``"gi_score"``, with no p. Cached per artefact version.
    """
    return cached(study, [source(study)], "interactions", _read_pairs)


def genes(study) -> list[str]:
    """The genes of the tested pairs.

    Parameters
    ----------
    study : Study
        The open Study, with ``interactions`` or ``gi_scores``.

    Returns
    -------
    list of str
        Every ``gene_a`` and ``gene_b`` of :func:`interaction_table`, sorted, once each.
    """
    df = interaction_table(study)
    return sorted(set(df["gene_a"]) | set(df["gene_b"]))


def pair_matrix(study, test: str, value: str = "statistic") -> pd.DataFrame:
    """Long table gene_a, gene_b, value (both triangles) for one test.

    Parameters
    ----------
    study : Study
        The open Study, with ``interactions`` or ``gi_scores``.
    test : str
        The test shown; a test the table does not hold shows the rows of every test.
    value : str
        Column of :func:`interaction_table` shown; one it lacks shows ``neg_log10_q``.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_a``, ``gene_b``, ``value``, ``q`` and ``pair``, each pair in both
        orders, once per ordered gene pair.
    """
    df = interaction_table(study)
    df = df[df["test"] == test] if test in set(df["test"]) else df
    v = df[value].astype(float) if value in df else df["neg_log10_q"]
    long = pd.DataFrame({"gene_a": df["gene_a"], "gene_b": df["gene_b"], "value": v,
                         "q": df["q"] if "q" in df else np.nan, "pair": df["pair"]})
    mirror = long.rename(columns={"gene_a": "gene_b", "gene_b": "gene_a"})
    return pd.concat([long, mirror], ignore_index=True).drop_duplicates(["gene_a", "gene_b"])


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _params(row) -> dict:
    """The JSON ``params`` of one interactions row as a dict (empty when absent)."""
    import json

    try:
        out = json.loads(row.params) if isinstance(row.params, str) else dict(row.params)
    except (AttributeError, TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def pair_summary(study) -> pd.DataFrame:
    """One row per tested pair: each readout as text (saying which is a p-value and which
    a score), the viability result and the status; numeric columns beside them.

    Only for the ``interactions`` artefact (an imported GI map has no tests).

    Parameters
    ----------
    study : Study
        The open Study, with ``interactions``.

    Returns
    -------
    pandas.DataFrame
        One row per pair, sorted by pair: ``pair``, ``gene_a``, ``gene_b``, the text
        columns ``call`` (the combined additivity-or-viability call), ``additivity``, ``disjointness``, ``separability``, ``viability`` and
        ``status`` for the readouts present, and their numeric columns (``*_p``,
        ``*_q``, ``additivity_effect``, ``separability_score`` with its interval ends,
        ``viability_log2``). Computed once per artefact version and shared: do not
        mutate it.
    """
    return cached(study, [source(study)], "pair-summary", _pair_summary)


def _pair_summary(study) -> pd.DataFrame:
    df = interaction_table(study)
    rows = []
    for pair, g in df.groupby("pair", sort=True):
        t = g.set_index("test")
        row = {"pair": pair, "gene_a": g["gene_a"].iloc[0], "gene_b": g["gene_b"].iloc[0]}
        notes = []
        if COMBINED in t.index:
            r = t.loc[COMBINED]
            row["call_p"], row["call_q"] = float(r.p), float(r.q)
            smaller = _params(r).get("smaller", "")
            row["call"] = (f"p = {_fmt(r.p)} (q {_fmt(r.q)})"
                           + (f", from {smaller}" if smaller else "")
                           if np.isfinite(r.p) else f"no p-value ({r.status})")
        if "additivity" in t.index:
            r = t.loc["additivity"]
            row["additivity_p"], row["additivity_q"] = float(r.p), float(r.q)
            row["additivity_effect"] = float(r.effect_size)
            if np.isfinite(r.p):
                row["additivity"] = (f"p = {_fmt(r.p)} (q {_fmt(r.q)}), effect "
                                     f"{_fmt(r.effect_size)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]")
            else:
                row["additivity"] = f"no p-value ({r.status})"
                notes.append(str(r.status))
        if "disjointness" in t.index:
            r = t.loc["disjointness"]
            row["disjointness_p"] = float(r.p)
            row["disjointness"] = (f"p = {_fmt(r.p)} (q {_fmt(r.q)})" if np.isfinite(r.p)
                                   else "no p-value")
            if not np.isfinite(r.p):
                notes.append(str(r.status))
        sep = [k for k in ("separability_score", "separability") if k in t.index]
        if sep:
            r = t.loc[sep[0]]
            row["separability_score"] = float(r.statistic)
            row["separability_low"], row["separability_high"] = float(r.ci_low), float(r.ci_high)
            if sep[0] == "separability_score":
                row["separability"] = (
                    f"S = {_fmt(r.statistic)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] "
                    f"({SCORE_NOTE})" if np.isfinite(r.statistic) else f"no score ({SCORE_NOTE})")
            else:  # the cell-level Gaussian null (unit none): its p with its caveat
                row["separability"] = f"p = {_fmt(r.p)} ({r.status})"
            if not np.isfinite(r.statistic):
                notes.append(str(r.status))
        if "viability" in t.index:
            r = t.loc["viability"]
            row["viability_log2"], row["viability_p"] = float(r.statistic), float(r.p)
            row["viability"] = (f"log2 {r.statistic:+.2f}, p = {_fmt(r.p)}"
                                if np.isfinite(r.p) else f"no p-value ({r.status})")
        row["status"] = "; ".join(dict.fromkeys(notes)) or "tested"
        rows.append(row)
    return pd.DataFrame(rows)


def proposed_table(history: pd.DataFrame) -> pd.DataFrame:
    """The next pairs to run: the proposed rows of ``pair_selection`` in the planner's rank
    order, with ``rank``, ``pair``, ``predicted``, its 90% ``interval`` (as text,
    ``[low, high]``) and ``reason``; the two genes and the numeric ends (``predicted_low``,
    ``predicted_high``) are kept beside them for export and selection.

    Parameters
    ----------
    history : pandas.DataFrame
        The ``pair_selection`` table (:func:`selection_history`), with a ``status``
        column.

    Returns
    -------
    pandas.DataFrame
        The proposed pairs, rank 1 first; ``predicted`` rounded to three decimals.
    """
    nb = next_batch(history).sort_values("rank", kind="stable")
    return pd.DataFrame({
        "rank": nb["rank"].astype(int).to_numpy(),
        "pair": nb["pair"].astype(str).to_numpy(),
        "predicted": nb["predicted"].astype(float).round(3).to_numpy(),
        "interval": [f"[{lo:.3g}, {hi:.3g}]" for lo, hi in zip(nb["predicted_low"],
                                                             nb["predicted_high"], strict=True)],
        "reason": nb["reason"].astype(str).to_numpy(),
        "gene_a": nb["gene_a"].astype(str).to_numpy(),
        "gene_b": nb["gene_b"].astype(str).to_numpy(),
        "predicted_low": nb["predicted_low"].astype(float).to_numpy(),
        "predicted_high": nb["predicted_high"].astype(float).to_numpy()})


#: Name of the "next pairs to run" table in exports: ``<view key>_next_pairs.csv``.
NEXT_PAIRS = "next_pairs"
#: Columns of the exported "next pairs to run" table, in order.
EXPORT_COLUMNS = ("rank", "pair", "gene_a", "gene_b", "predicted", "predicted_low",
                  "predicted_high", "reason", "planner", "planner_reason")


def next_pairs_export(history: pd.DataFrame) -> pd.DataFrame:
    """The "next pairs to run" as exported: the proposed rows of ``pair_selection`` in the
    planner's rank order, one row per pair with its rank, the two genes, the predicted
    value and the lower and upper ends of its 90% interval at full precision, the reason,
    and the planner that ran with why it was used (:data:`EXPORT_COLUMNS`).

    Parameters
    ----------
    history : pandas.DataFrame
        The ``pair_selection`` table (:func:`selection_history`), with a ``status``
        column.

    Returns
    -------
    pandas.DataFrame
        The proposed pairs, rank 1 first, with the columns of :data:`EXPORT_COLUMNS` in
        that order.
    """
    nb = next_batch(history).sort_values("rank", kind="stable")
    out = pd.DataFrame({
        "rank": nb["rank"].astype(int).to_numpy(),
        "pair": nb["pair"].astype(str).to_numpy(),
        "gene_a": nb["gene_a"].astype(str).to_numpy(),
        "gene_b": nb["gene_b"].astype(str).to_numpy(),
        "predicted": nb["predicted"].astype(float).to_numpy(),
        "predicted_low": nb["predicted_low"].astype(float).to_numpy(),
        "predicted_high": nb["predicted_high"].astype(float).to_numpy(),
        "reason": nb["reason"].astype(str).to_numpy(),
        "planner": nb["planner"].astype(str).to_numpy(),
        "planner_reason": nb["planner_reason"].astype(str).to_numpy()})
    return out[list(EXPORT_COLUMNS)]


#: Columns of the "next pairs to run" table as shown (the numeric interval ends are in the
#: ``interval`` text; they stay in :func:`proposed_table` for export).
NEXT_COLUMNS = ("rank", "pair", "predicted", "interval", "reason")
#: What the view says when the Study has no ``pair_selection`` yet.
NO_PLAN = ("No pairs proposed yet: run `workbench plan-pairs STUDY --budget N` to choose the "
           "next N double perturbations.")


def planner_line(history: pd.DataFrame) -> str:
    """One Markdown line naming the planner that ran and why (Study text escaped).

    Parameters
    ----------
    history : pandas.DataFrame
        The ``pair_selection`` table (:func:`selection_history`), with a ``status``
        column.

    Returns
    -------
    str
        The line, with the number of proposed pairs and the planner of the first one; a
        sentence saying no pairs were proposed when there are none.
    """
    nb = next_batch(history)
    if nb.empty:
        return "The planner proposed no pairs."
    planner, why = str(nb["planner"].iloc[0]), str(nb["planner_reason"].iloc[0])
    return (f"Next pairs to run ({len(nb)}), proposed by the **{md_text(planner)}** planner"
            + (f": {md_text(why)}" if why else "") + ".")


def selection_history(study) -> pd.DataFrame | None:
    """The Study's ``pair_selection`` table, read once per artefact version.

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    pandas.DataFrame or None
        The table, or ``None`` when the pair-selection step has not run.
    """
    return (cached(study, ["pair_selection"], "pair-selection", lambda s: s.read("pair_selection"))
            if study.has("pair_selection") else None)


def next_batch(history: pd.DataFrame) -> pd.DataFrame:
    """The pairs the pair-selection step proposes to run next (``status == "proposed"``).

    Parameters
    ----------
    history : pandas.DataFrame
        The ``pair_selection`` table (:func:`selection_history`), with a ``status``
        column.

    Returns
    -------
    pandas.DataFrame
        Its proposed rows, in their stored order.
    """
    return history[history["status"] == "proposed"]


class InteractionsView(StudyView):
    """Pair matrix, volcano, pair page, selection curve and next batch.

    Parameters
    ----------
    study : Study or None
        The open Study (it needs ``interactions``, or an imported ``gi_scores``).
    selection : Selection or None
        The session's shared selection; None makes a new one.
    **params
        Values of the view's parameters (``test``, ``value``, ``gene``).
    """

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
            # the combined call is what a biologist reads first, where the step wrote it
            self.test = COMBINED if COMBINED in tests else tests[0]
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
        """The view's table: the tested pairs of the chosen gene, or all of them.

        Returns
        -------
        pandas.DataFrame
            Rows of :func:`interaction_table` holding the selected perturbation (every row
            when none is selected).
        """
        df = interaction_table(self.study)
        g = self.selection.perturbation
        return df[(df["gene_a"] == g) | (df["gene_b"] == g)] if g else df

    def extra_tables(self) -> dict[str, pd.DataFrame]:
        """The tables exported beside :meth:`table`, each as its own file
        (``interactions_<name>.csv``): the "next pairs to run" (:func:`next_pairs_export`)
        when the Study holds a pair plan, whatever gene is chosen (the plan is one batch).

        Returns
        -------
        dict of str to pandas.DataFrame
            ``{NEXT_PAIRS: table}``, or empty without a pair plan.
        """
        hist = selection_history(self.study)
        return {} if hist is None else {NEXT_PAIRS: next_pairs_export(hist)}

    # -- plots
    @param.depends("test", "value", "svg")
    def matrix(self):
        """The pair matrix of the chosen test and value, gene by gene (tap selects a pair).

        Returns
        -------
        holoviews.HeatMap
            Both triangles, genes in sorted order, with ``q``, ``pair`` and how the value is
            read in the hover; drawn as SVG when the view's ``svg`` switch is on.
        """
        long = pair_matrix(self.study, self.test, self.value)
        order = genes(self.study)
        long["readout"] = readout_kind(self.test or "", 0.0) if self.test in SCORE_TESTS \
            else "p-value where tested"
        hm = hv.HeatMap(long, ["gene_b", "gene_a"], ["value", "q", "pair", "readout"]).redim.values(
            gene_a=order, gene_b=order)
        title = f"{self.test}: {self.value}" + (f" ({SCORE_NOTE})" if self.test in SCORE_TESTS
                                               else "")
        return hm.opts(width=self.width - 120, height=self.height, cmap="viridis", colorbar=True,
                       tools=["save", "reset", "tap", "hover"], xrotation=90, invert_yaxis=True,
                       title=title,
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
        title = (f"Volcano: {self.test} is a {SCORE_NOTE}" if self.test in SCORE_TESTS
                 else "Volcano")
        return hv.Points(df, ["effect", "neg_log10_p"], ["pair", "q", "readout"]).opts(
            size=6, color="gray", alpha=0.6, tools=["hover", "save"], width=300,
            height=240, title=title, ylabel="-log10 p")

    def _volcano_rows(self):
        df = interaction_table(self.study)
        df = df[df["test"] == self.test] if self.test else df
        g = self.selection.perturbation
        mine = df[(df["gene_a"] == g) | (df["gene_b"] == g)] if g else df.iloc[:0]
        return mine, df[df["pair"] == self.selection.pair]

    def _marks_data(self) -> dict:
        return {name: {c: part[c].to_numpy() for c in ("effect", "neg_log10_p", "pair")}
                for name, part in zip(("gene", "pair"), self._volcano_rows(), strict=True)}

    @staticmethod
    def _draw_marks(fig, sources) -> None:
        fig.scatter("effect", "neg_log10_p", source=sources["gene"], size=7, color="red")
        fig.scatter("effect", "neg_log10_p", source=sources["pair"], size=12, color="orange",
                    marker="star")

    def _live_marks(self) -> LiveGlyphs:
        """The volcano's marks, drawn into each rendered volcano and updated in place when
        the Selection's gene or pair or the test change (see :class:`LiveGlyphs`)."""
        if getattr(self, "_live", None) is None:
            self._live = LiveGlyphs(self._marks_data, self._draw_marks)
            self.selection.param.watch(self._live.refresh, ["perturbation", "pair"])
            self.param.watch(self._live.refresh, ["test"])
        return self._live

    def volcano(self):
        """Effect against -log10 p; the gene's pairs and the chosen pair drawn on top.

        Returns
        -------
        panel.pane.HoloViews
            The plot; the test redraws it, a Selection change only its marks (in place).
        """
        test = hv.streams.Params(self, ["test"])
        base = hv.DynamicMap(self._volcano_base, streams=[test]).opts(
            hooks=[self._live_marks().hook])
        return pn.pane.HoloViews(base, linked_axes=False)

    @param.depends("selection.pair")
    def pair_page(self):
        """The chosen pair's rows and, when the Study has images, control, A, B and A+B crops.

        Returns
        -------
        panel.viewable.Viewable
            The page, or a line saying how to choose a pair when none is chosen.
        """
        pair = self.selection.pair_genes
        if not pair:
            return pn.pane.Markdown("Click a cell of the matrix for the pair page.",
                                    css_classes=["wb-pair-page"])
        a, b = pair
        df = interaction_table(self.study)
        rows = df[df["pair"] == self.selection.pair]
        parts = [pn.pane.Markdown(f"#### Pair {md_text(a)} \\+ {md_text(b)}",
                                  css_classes=["wb-pair-page"]),
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
        """The selection curve and the "next pairs to run" table (or what makes them).

        Returns
        -------
        panel.viewable.Viewable
            The curve of the best measured value by round above :meth:`next_pairs`, or
            :data:`NO_PLAN` when the Study has no ``pair_selection``.
        """
        hist = selection_history(self.study)
        if hist is None:
            return pn.pane.Markdown(md_text(NO_PLAN, code=True), css_classes=["wb-next-batch"])
        # the best interaction statistic measured so far, round by round
        measured = hist[hist["status"] == "measured"]
        curve = measured.groupby("round", as_index=False)["value"].max()
        curve["value"] = curve["value"].cummax()
        if len(curve) < 2:
            # one round cannot draw a curve: say what adds the next point
            plot = no_data(f"{len(curve)} round measured so far.\nThe curve grows with each "
                           "round:\nworkbench plan-pairs STUDY --budget N,\nthen measure the "
                           "proposed pairs", width=260, height=180, title="Selection curve",
                           text_font_size="8pt")
        else:
            plot = hv.Curve(curve, "round", "value").opts(
                width=260, height=180, title="Selection curve", ylabel="best value so far",
                tools=["hover", "save"]) * hv.Scatter(curve, "round", "value").opts(size=6)
        # the table below the curve, at the view's width: its interval and reason columns
        # are the point of it and must not be cut at the right edge
        return pn.Column(pn.pane.HoloViews(plot, linked_axes=False), self.next_pairs(hist))

    def next_pairs(self, hist: pd.DataFrame) -> pn.Column:
        """The proposed pairs in rank order under the planner line; choosing a row selects
        the pair (and its first gene) in the Selection, and a pair chosen elsewhere is
        highlighted when it is one of them.

        Parameters
        ----------
        hist : pandas.DataFrame
            The ``pair_selection`` table (:func:`selection_history`).

        Returns
        -------
        panel.Column
            The planner line, the table and its CSV download (:func:`next_pairs_export`).
        """
        nb = proposed_table(hist)
        shown = nb[list(NEXT_COLUMNS)]
        keys = [make_pair(a, b) for a, b in zip(nb["gene_a"], nb["gene_b"], strict=True)]
        tab = pn.widgets.Tabulator(shown, show_index=False, disabled=True, selectable=1,
                                   height=190, width=self.width,
                                   css_classes=["wb-next-pairs"],
                                   header_tooltips={k: TOOLTIPS[k] for k in NEXT_COLUMNS
                                                    if k in TOOLTIPS})

        def chosen(event):
            if event.new and keys[event.new[0]] != self.selection.pair:
                k = event.new[0]
                self.selection.choose_pair(nb["gene_a"].iloc[k], nb["gene_b"].iloc[k])

        def follow(event):
            rows = [i for i, key in enumerate(keys) if key == event.new]
            if rows != list(tab.selection):
                tab.selection = rows

        tab.param.watch(chosen, "selection")
        self.selection.param.watch(follow, "pair")
        download = pn.widgets.FileDownload(
            callback=lambda: csv_bytes(next_pairs_export(hist).set_index("rank")),
            filename=f"{self.key}_{NEXT_PAIRS}.csv", label="Next pairs to run (CSV)",
            css_classes=["wb-export-next-pairs"], width=220, height=34, embed=False)
        return pn.Column(pn.pane.Markdown(planner_line(hist), css_classes=["wb-next-batch"]),
                         tab, download)

    @param.depends("selection.perturbation")
    def summary_panel(self):
        """Every tested pair (the chosen gene's when one is chosen): which readout gave a
        p-value, which a score, the viability result and the status.

        Returns
        -------
        panel.viewable.Viewable
            A note and the :func:`pair_summary` table, or a line saying an imported GI map
            has no tests.
        """
        if source(self.study) != "interactions":
            return pn.pane.Markdown("An imported GI map: one score per pair, no tests.")
        df = pair_summary(self.study)
        g = self.selection.perturbation
        if g:
            df = df[(df["gene_a"] == g) | (df["gene_b"] == g)]
        cols = [c for c in ("pair", "call", "additivity", "disjointness", "separability",
                            "viability", "status") if c in df]
        return pn.Column(
            pn.pane.Markdown("Pairs: the call (additivity or viability), additivity, "
                             "disjointness and viability give p-values; "
                             f"separability is a {SCORE_NOTE} (interval in brackets).",
                             css_classes=["wb-pair-summary"]),
            pn.widgets.Tabulator(df[cols], show_index=False, disabled=True, height=200,
                                 width=self.width,
                                 header_tooltips={k: TOOLTIPS[k] for k in cols
                                                  if k in TOOLTIPS}))

    def body(self):
        """The view's layout: gene, test and value choosers, matrix, volcano and panels.

        Returns
        -------
        panel.Column
            The view.
        """
        controls = pn.Row(
            pn.widgets.Select.from_param(self.param.gene, name="Gene", width=120,
                                         css_classes=["wb-gene-select"]),
            pn.widgets.Select.from_param(self.param.test, width=140),
            pn.widgets.Select.from_param(self.param.value, width=140))
        return pn.Column(controls, pn.Row(self._matrix_pane(), self.volcano()),
                         live(self, "summary_panel"), self.pair_page, self.selection_panel())
