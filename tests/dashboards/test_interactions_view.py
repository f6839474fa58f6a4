"""Interactions view on the tiny demo Study (real steps): p-values and scores told apart,
viability and status per pair, proposed pairs with prediction, interval and reason under the
line naming the planner."""

from __future__ import annotations

import json

import numpy as np
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards.interactions import (  # noqa: E402
    SCORE_NOTE,
    InteractionsView,
    interaction_table,
    pair_summary,
    proposed_table,
)
from workbench.dashboards.state import Selection  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _bokeh():
    hv.extension("bokeh")
    pn.extension("tabulator")


def _tabulators(obj):
    return [m for m in obj.select(pn.widgets.Tabulator)]


def test_summary_tells_p_values_from_scores_and_shows_viability_and_status(study):
    table = study.read("interactions")
    summary = pair_summary(study).set_index("pair")
    assert set(summary.index) == set(table["pair"])
    for row in table.itertuples():
        s = summary.loc[row.pair]
        if row.test == "separability_score":
            assert SCORE_NOTE in s.separability and "p =" not in s.separability
            if np.isfinite(row.statistic):
                assert s.separability_score == pytest.approx(row.statistic)
                assert f"{row.ci_low:.3g}" in s.separability
        elif row.test == "disjointness":
            assert ("p =" in s.disjointness) == bool(np.isfinite(row.p))
        elif row.test == "viability":
            assert s.viability_log2 == pytest.approx(row.statistic)
            assert f"{row.statistic:+.2f}" in s.viability and "p =" in s.viability
        elif row.test == "additivity_or_viability":
            # the call shows the combined p (not either readout's own) and where it came from
            assert s.call_p == pytest.approx(row.p) and s.call_q == pytest.approx(row.q)
            assert ("p =" in s.call) == bool(np.isfinite(row.p))
            smaller = json.loads(row.params).get("smaller", "")
            if np.isfinite(row.p) and smaller:
                assert s.call.endswith(f"from {smaller}")
        if "too few cells" in row.status:
            assert "too few cells" in s.status
    # the demo plants a synthetic-lethal pair: too few cells for morphology, counted anyway
    small = table[table["status"].str.contains("too few cells")]["pair"].unique()
    assert len(small) >= 1
    assert all(np.isfinite(summary.loc[p, "viability_p"]) for p in small)
    assert (summary.drop(index=small)["status"] == "tested").all()
    kinds = interaction_table(study).set_index(["pair", "test"])["readout"]
    assert (kinds.xs("separability_score", level="test") == SCORE_NOTE).all()
    assert set(kinds.xs("viability", level="test")) == {"p-value"}


def test_view_shows_summary_tooltips_and_proposed_pairs(study):
    sel = Selection()
    view = InteractionsView(study, sel)
    pn.panel(view).get_root()
    summary = view.summary_panel()
    tab = _tabulators(summary)[0]
    assert SCORE_NOTE in tab.header_tooltips["separability"]
    assert list(tab.value.columns[:2]) == ["pair", "call"] and "2 min p" in tab.header_tooltips["call"]
    assert view.test == "additivity_or_viability"
    assert "p-value" in tab.header_tooltips["viability"]
    assert len(tab.value) == study.read("interactions")["pair"].nunique()
    assert any(SCORE_NOTE in str(m.object) for m in summary.select(pn.pane.Markdown))
    gene = tab.value["pair"].iloc[0].split("+")[0]
    sel.choose_gene(gene)
    mine = _tabulators(view.summary_panel())[0].value
    assert len(mine) and all(gene in p.split("+") for p in mine["pair"])
    view.test = "separability_score"
    assert SCORE_NOTE in view.matrix().opts.get().kwargs["title"]
    hist = study.read("pair_selection")
    prop = hist[hist["status"] == "proposed"]
    shown = proposed_table(hist)
    assert list(shown["pair"]) == list(prop["pair"]) and len(shown) > 0
    assert np.allclose(shown["predicted"], prop["predicted"].astype(float).round(3))
    assert list(shown["reason"]) == list(prop["reason"].astype(str))
    for txt, lo, hi in zip(shown["interval"], prop["predicted_low"], prop["predicted_high"]):
        assert txt == f"[{lo:.3g}, {hi:.3g}]"
    panel = view.selection_panel()
    nb = [t for t in _tabulators(panel) if "interval" in t.value.columns][0]
    assert {"rank", "predicted", "interval", "reason"} <= set(nb.value.columns)
    assert "why the planner chose" in nb.header_tooltips["reason"]
    # the planner is named once, in the line above the table
    assert any(str(prop["planner"].iloc[0]) in str(m.object)
               for m in panel.select(pn.pane.Markdown))
