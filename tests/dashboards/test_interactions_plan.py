"""The interactions view's "next pairs to run" table and its additivity readout, on Studies
made by the real steps: the tiny demo (simulate, embed, interactions, plan_pairs) and small
imported screens tested by the real interaction step."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards.base import md_text  # noqa: E402
from workbench.dashboards.interactions import (  # noqa: E402
    EXPORT_COLUMNS,
    NEXT_COLUMNS,
    SCORE_NOTE,
    InteractionsView,
    next_pairs_export,
    pair_summary,
    planner_line,
    proposed_table,
)
from workbench.dashboards.state import Selection, make_pair  # noqa: E402
from workbench.data.study import Study  # noqa: E402
from workbench.testing import copy_study  # noqa: E402

D = 4
SINGLE = {f"G{k}": np.eye(D)[k % D] * (0.5 + 0.5 * k) for k in range(1, 5)}
DOUBLES = {"G1+G2": [0, 0, 0, 1.5], "G1+G3": [0, 0, 0, 0], "G2+G4": [0, 2.0, 0, 0]}


@pytest.fixture(scope="module", autouse=True)
def _bokeh():
    hv.extension("bokeh")
    pn.extension("tabulator")


def _screen(path, wells: int, tests):
    """A small screen imported as profiles and tested by the real interaction step."""
    rng = np.random.default_rng(1)
    conds = {"control": np.zeros(D), **SINGLE}
    for pair, extra in DOUBLES.items():
        a, b = pair.split("+")
        conds[pair] = SINGLE[a] + SINGLE[b] + np.asarray(extra, float)
    rows, xs = [], []
    for cond, mu in conds.items():
        k = 24 if cond == "control" else 12
        xs.append(mu + rng.normal(size=(k, D)))
        kind = "control" if cond == "control" else ("double" if "+" in cond else "single")
        rows += [{"perturbation": cond, "is_control": cond == "control", "batch": "B1",
                  "plate": "P1", "well": f"{cond}-{i % wells}",
                  "genes": "" if cond == "control" else cond, "perturbation_type": kind}
                 for i in range(k)]
    obs = pd.DataFrame(rows, index=[f"c{i:05d}" for i in range(len(rows))])
    s = Study.create(path, control_label="control")
    with s.step("import", params={}) as tx:
        tx.write_anndata("profiles", ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs))
    from workbench.tools.interactions import run_interactions

    run_interactions(s, tests=tests, n_permutations=49, n_bootstrap=10, seed=0, device="cpu")
    return Study.open(path)


@pytest.fixture(scope="module")
def unplanned(tmp_path_factory):
    """Tested, not planned: no ``pair_selection``."""
    return _screen(tmp_path_factory.mktemp("unplanned") / "s.study", 3,
                   ("additivity", "disjointness"))


def _next_pairs_table(view):
    tabs = [t for t in view.selection_panel().select(pn.widgets.Tabulator)
            if "wb-next-pairs" in t.css_classes]
    assert len(tabs) == 1
    return tabs[0]


def _parse(interval: str) -> tuple[float, float]:
    lo, hi = interval.strip("[]").split(",")
    return float(lo), float(hi)


@pytest.mark.parametrize("order", ["stored", "reversed"])
def test_next_pairs_are_the_proposed_rows_in_rank_order(study, order):
    hist = study.read("pair_selection")
    prop = hist[hist["status"] == "proposed"].sort_values("rank")
    assert len(prop) >= 2 and (hist["status"] == "measured").any()
    # the table must not lean on the order the rows are stored in
    shown = proposed_table(hist if order == "stored" else hist.iloc[::-1])
    assert list(shown["rank"]) == list(range(1, len(prop) + 1))
    assert list(shown["pair"]) == list(prop["pair"])  # no measured row leaks in
    measured = set(hist.loc[hist["status"] == "measured", "pair"])
    assert not measured & set(shown["pair"])
    np.testing.assert_allclose(shown["predicted"], prop["predicted"].round(3))
    np.testing.assert_allclose(shown["predicted_low"], prop["predicted_low"])
    np.testing.assert_allclose(shown["predicted_high"], prop["predicted_high"])
    assert (prop["predicted_low"] < prop["predicted_high"]).all()
    for text, lo, hi in zip(shown["interval"], prop["predicted_low"], prop["predicted_high"],
                            strict=True):
        got_lo, got_hi = _parse(text)  # lower end first: swapped columns fail here
        assert got_lo == pytest.approx(lo, rel=2e-3, abs=1e-9)
        assert got_hi == pytest.approx(hi, rel=2e-3, abs=1e-9)
    assert list(shown["reason"]) == list(prop["reason"].astype(str))


def _plan_rows(hist: pd.DataFrame) -> pd.DataFrame:
    """The plan artefact's proposed rows, ranked, as plain columns (the expectation)."""
    prop = hist[hist["status"] == "proposed"].sort_values("rank")
    return prop.assign(rank=prop["rank"].astype(int))[list(EXPORT_COLUMNS)].reset_index(
        drop=True)


def _assert_plan_rows(got: pd.DataFrame, want: pd.DataFrame):
    assert list(got.columns) == list(EXPORT_COLUMNS)
    assert list(got["rank"]) == list(range(1, len(want) + 1))
    for col in ("pair", "gene_a", "gene_b", "reason", "planner", "planner_reason"):
        assert list(got[col].astype(str)) == list(want[col].astype(str)), col
    for col in ("predicted", "predicted_low", "predicted_high"):  # full precision, not rounded
        np.testing.assert_allclose(got[col], want[col], rtol=1e-12, err_msg=col)


def test_exported_next_pairs_are_the_plan_rows_in_rank_order(study, tmp_path):
    from workbench.dashboards.export import export_view, write_view_tables

    hist = study.read("pair_selection")
    want = _plan_rows(hist)
    assert len(want) >= 2 and (want["predicted_low"] < want["predicted_high"]).all()
    # whatever order the artefact stores its rows in
    _assert_plan_rows(next_pairs_export(hist.iloc[::-1]), want)
    # the view's export: the tested pairs and, in a file of their own, the next pairs
    view = InteractionsView(study, Selection())
    view.selection.choose_gene(str(want["gene_a"].iloc[-1]))  # the plan is not filtered
    paths = export_view(view, tmp_path / "view", formats=())
    assert paths["next_pairs"].name == "interactions_next_pairs.csv"
    assert set(pd.read_csv(paths["csv"])["test"]) <= set(study.read("interactions")["test"])
    _assert_plan_rows(pd.read_csv(paths["next_pairs"], keep_default_na=False), want)
    tables = write_view_tables({"interactions": view}, tmp_path / "tables")
    assert [p.name for p in tables] == ["interactions.csv", "interactions_next_pairs.csv"]
    _assert_plan_rows(pd.read_csv(tables[1], keep_default_na=False), want)
    # the browser download of the panel is the same table
    dl = [w for w in view.selection_panel().select(pn.widgets.FileDownload)
          if "wb-export-next-pairs" in w.css_classes]
    assert len(dl) == 1 and dl[0].filename == "interactions_next_pairs.csv"
    _assert_plan_rows(pd.read_csv(dl[0].callback(), keep_default_na=False), want)


def test_view_shows_planner_line_and_choosing_a_row_selects_the_pair(study):
    hist = study.read("pair_selection")
    prop = hist[hist["status"] == "proposed"].sort_values("rank")
    sel = Selection()
    view = InteractionsView(study, sel)
    tab = _next_pairs_table(view)
    assert tuple(tab.value.columns) == NEXT_COLUMNS
    assert list(tab.value["pair"]) == list(prop["pair"])
    assert "90%" in tab.header_tooltips["interval"]
    line = planner_line(hist)
    planner, why = prop["planner"].iloc[0], prop["planner_reason"].iloc[0]
    assert md_text(planner) in line and md_text(why) in line
    texts = [str(m.object) for m in view.selection_panel().select(pn.pane.Markdown)]
    assert line in texts
    # Study text reaches the page as text, never as markup
    odd = hist.assign(planner="*x*", planner_reason="<img src=x onerror=alert(1)> [a](b)")
    shown = planner_line(odd)
    assert "<img" not in shown and "&lt;img" in shown and "\\[a\\]" in shown
    assert "*x*" not in shown
    # a row chosen in the table selects that pair, its first gene becoming the gene
    row = prop.iloc[1]
    tab.selection = [1]
    assert sel.pair == make_pair(row.gene_a, row.gene_b)
    assert sel.perturbation == row.gene_a
    # a pair chosen elsewhere is highlighted when it is proposed, unhighlighted otherwise
    first = prop.iloc[0]
    sel.choose_pair(first.gene_b, first.gene_a)
    assert tab.selection == [0]
    other = hist[hist["status"] == "measured"].iloc[0]
    sel.choose_pair(other.gene_a, other.gene_b)
    assert tab.selection == []


def test_without_pair_selection_the_view_names_the_command(unplanned, tmp_path):
    assert not unplanned.has("pair_selection")
    view = InteractionsView(unplanned, Selection())
    panel = view.selection_panel()
    assert isinstance(panel, pn.pane.Markdown)
    assert "`workbench plan-pairs STUDY --budget N`" in panel.object
    assert not list(panel.select(pn.widgets.Tabulator))
    assert view.extra_tables() == {}  # nothing planned: no next-pairs file is exported
    # after planning with a planner the user named, the line says so
    from workbench.tools.pair_planning import plan_pairs

    planned = copy_study(unplanned.path, tmp_path / "planned.study")
    out = plan_pairs(planned, budget=2, planner="singles", test="additivity", seed=0,
                     device="cpu")
    tab = _next_pairs_table(InteractionsView(planned, Selection()))
    assert list(tab.value["pair"]) == list(out[out["status"] == "proposed"]
                                           .sort_values("rank")["pair"])
    line = planner_line(planned.read("pair_selection"))
    assert "**singles**" in line and "chosen by the user" in line


def _additivity_matches(study):
    table = study.read("interactions")
    add = table[table["test"] == "additivity"].set_index("pair")
    summary = pair_summary(study).set_index("pair")
    assert len(add) and set(add.index) <= set(summary.index)
    for pair, r in add.iterrows():
        s = summary.loc[pair]
        np.testing.assert_equal([s.additivity_p, s.additivity_q, s.additivity_effect],
                                [r.p, r.q, r.effect_size])
        if np.isfinite(r.p):
            assert s.additivity.startswith(f"p = {r.p:.3g} (q {r.q:.3g})")
            assert f"effect {r.effect_size:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]" in s.additivity
        else:
            assert "p =" not in s.additivity and str(r.status) in s.additivity
            assert str(r.status) in s.status
    return add, summary


def test_additivity_readout_equals_the_artefact_beside_the_other_three(study):
    add, summary = _additivity_matches(study)
    assert np.isfinite(add["p"]).any()
    dis = study.read("interactions").query("test == 'disjointness'").set_index("pair")["p"]
    both = add.index.intersection(dis.index)
    # the two tests differ somewhere, so a column showing the other test's p would fail
    assert (add.loc[both, "p"] != dis.loc[both]).any()
    view = InteractionsView(study, Selection())
    panel = view.summary_panel()
    tab = panel.select(pn.widgets.Tabulator)[0]
    assert list(tab.value.columns) == ["pair", "call", "additivity", "disjointness",
                                       "separability", "viability", "status"]
    assert SCORE_NOTE in tab.header_tooltips["separability"]
    assert "p-value" in tab.header_tooltips["additivity"]
    seps = tab.value["separability"].dropna()
    assert len(seps) and all(SCORE_NOTE in v for v in seps)
    shown = tab.value.set_index("pair")["additivity"]
    assert all(shown[p] == summary.loc[p, "additivity"] for p in add.index)


def test_additivity_status_is_shown_where_the_test_gave_no_p_value(tmp_path):
    with pytest.warns(UserWarning, match="single replicate unit"):  # the step says so too
        one_well = _screen(tmp_path / "one.study", 1, ("additivity",))
    add, _ = _additivity_matches(one_well)
    assert not np.isfinite(add["p"]).any()  # one well per condition: nothing to test
