"""The Plan view on Studies built by the real steps: batch, reasons, curve, stop, plate map,
the Selection link and escaping of Study text."""

import io

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("panel")

from workbench.dashboards.plan import (PlanView, campaign_curve, plate_map,  # noqa: E402
                                       proposed_batch, stop_advice)
from workbench.dashboards.state import Selection  # noqa: E402
from workbench.errors import ValidationError  # noqa: E402
from workbench.testing import copy_study  # noqa: E402
from workbench.tools.design import propose  # noqa: E402


@pytest.fixture()
def study(tiny_study_path, tmp_path):
    return copy_study(tiny_study_path, tmp_path / "s.study")


def _texts(obj) -> str:
    """Every Markdown/HTML text and Tabulator value inside a Panel layout."""
    import panel as pn

    out = []
    for o in obj.select(lambda x: True):
        if isinstance(o, (pn.pane.Markdown, pn.pane.HTML, pn.pane.Alert)):
            out.append(str(o.object))
        if isinstance(o, pn.widgets.Tabulator):
            out.append(o.value.to_csv())
    return "\n".join(out)


def test_knockout_plan_view_and_selection_link(study):
    b1 = propose(study, 2, "eig", kind="knockout")
    b2 = propose(study, 3, "uncertain_edges", kind="knockout", seed=1)
    batch = proposed_batch(study)
    assert list(batch.candidate) == b2.candidates and list(batch["rank"]) == [1, 2, 3]
    curve = campaign_curve(study)
    assert list(curve["round"]) == [1, 2] and curve["what"].iloc[0].startswith("mean edge")
    assert curve["value"].iloc[-1] == pytest.approx(b2.info["entropy"])
    assert b1.info["entropy"] == pytest.approx(curve["value"].iloc[0])
    assert stop_advice(study).startswith("Continue")
    sel = Selection()
    view = PlanView(study, sel)
    layout = view.__panel__()
    text = _texts(layout)
    assert "wb-missing" not in str(layout.css_classes) and "Continue" in text
    assert all(c in text for c in b2.candidates) and "nats" in text
    view.candidate = b2.candidates[1]
    assert sel.perturbation == b2.candidates[1]
    sel.choose_gene(b2.candidates[0])
    assert view.candidate == b2.candidates[0]
    pm = pd.read_csv(io.BytesIO(view.plate_csv().getvalue()))
    assert list(pm.candidate) == b2.candidates and list(pm.well) == ["A01", "A02", "A03"]


def test_screen_plan_stop_advice_and_curve(study):
    names = list(study.read("perturbations").obs_names)
    gt = study.read("ground_truth")
    group = {g: k for k, members in gt["groups"].items() for g in members}
    truth = pd.Series([group.get(n.split("+")[0], "none") for n in names], index=names)
    lab = truth.copy().astype(object)
    keep = truth.groupby(truth).head(3).index
    keep = [k for k in keep if truth[k] in truth.value_counts().index[:2]]
    lab[~lab.index.isin(keep)] = None
    df = pd.DataFrame({"perturbation": names, "label": lab.to_numpy()})
    b = propose(study, 4, "hardest", kind="screen", labels=df)
    assert stop_advice(study).startswith("No certificate yet")
    assert campaign_curve(study).empty              # no bound before a batch came back
    df.loc[df.perturbation.isin(b.candidates), "label"] = truth[b.candidates].to_numpy()
    b2 = propose(study, 2, "hardest", kind="screen", labels=df)
    curve = campaign_curve(study)
    assert list(curve["round"]) == [2] and curve["value"].iloc[0] == pytest.approx(b2.info["bound"])
    assert ("Stop" if b2.info["stop"] else "Continue") in stop_advice(study)
    assert f"{b2.info['bound']:.3f}" in stop_advice(study)


def test_plate_map_layout():
    batch = pd.DataFrame({"candidate": [f"g{i}" for i in range(100)], "rank": range(1, 101),
                          "reason": "r"})
    pm = plate_map(batch, controls=4)
    assert list(pm.plate.unique()) == ["P1", "P2"]
    p1 = pm[pm.plate == "P1"]
    assert len(p1) == 96 and p1.well.iloc[0] == "A01" and p1.well.iloc[-1] == "H12"
    assert (p1.candidate.iloc[-4:] == "control").all() and p1["rank"].iloc[-1] != 0
    assert list(pm[pm.candidate != "control"].candidate) == list(batch.candidate)
    assert not pm.duplicated(["plate", "well"]).any()
    with pytest.raises(ValidationError, match="no well"):
        plate_map(batch, rows=1, columns=2, controls=2)


def test_study_text_is_escaped(study):
    bad = "<script>alert(1)</script>"
    plan = pd.DataFrame({
        "candidate": [bad, "G01"], "status": ["proposed", "open"], "rank": [1.0, np.nan],
        "score": [0.5, 0.1], "reason": [f"because {bad}", ""], "label": [None, None],
        "predicted": [None, None], "confidence": [np.nan, np.nan], "planner": "knockout",
        "policy": "<img src=x onerror=alert(1)>", "bound": np.nan, "stop": False,
        "entropy": 0.2})
    with study.step("design", params={}) as tx:
        tx.write_table("design_plan", plan)
    sel = Selection()
    text = _texts(PlanView(study, sel).__panel__())
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in text


def test_missing_plan_names_the_step(study):
    text = _texts(PlanView(study, Selection()).__panel__())
    assert "design\\_plan" in text and "workbench design screen|hits|knockout" in text


def test_the_dashboard_opens_the_plan_view_and_links_it(study):
    from workbench.dashboards.app import build_app, view_class

    assert view_class("plan") is PlanView
    b = propose(study, 2, "eig", kind="knockout")
    dash = build_app(study, views=["grn", "plan"], sync_url=False)
    try:
        plan = dash.view("plan")
        assert isinstance(plan, PlanView)
        plan.candidate = b.candidates[0]
        # the proposed gene is chosen for the whole page, the GRN view included
        assert dash.selection.perturbation == b.candidates[0]
        assert dash.view("grn").selection is dash.selection
    finally:
        dash.close()
