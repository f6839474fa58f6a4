"""Empty states say what fills them: the GRN subgraph before a gene is chosen (or when no
edge passes the threshold) and the pair-selection curve while fewer than two rounds are
measured."""

from __future__ import annotations

import pytest

hv = pytest.importorskip("holoviews")

from workbench.dashboards.grn import GRNView, posterior, subgraph  # noqa: E402
from workbench.dashboards.interactions import InteractionsView, selection_history  # noqa: E402
from workbench.dashboards.state import Selection  # noqa: E402


def _note(overlay) -> str:
    texts = [el.text for el in overlay if isinstance(el, hv.Text)]
    assert len(texts) == 1  # always one text layer, so the overlay keeps its shape
    return texts[0]


def test_grn_subgraph_says_what_to_do(study):
    view = GRNView(study, Selection())
    assert "Choose a gene" in _note(view._graph_element())
    names, _ = posterior(study)
    gene = max(names, key=lambda g: len(subgraph(study, g, 0.5, 25)[1]))
    assert len(subgraph(study, gene, 0.5, 25)[1]) > 0
    view.selection.choose_gene(gene)
    assert _note(view._graph_element()) == ""  # edges drawn: no message over them
    view.threshold = 1.0
    if len(subgraph(study, gene, 1.0, 25)[1]) == 0:
        assert _note(view._graph_element()).startswith("No edge with p ≥ 1")


def test_selection_curve_names_the_command_until_two_rounds(study):
    hist = selection_history(study)
    assert hist is not None
    rounds = hist.loc[hist["status"] == "measured", "round"].nunique()
    view = InteractionsView(study, Selection())
    plot = view.selection_panel()[0].object
    if rounds < 2:
        assert isinstance(plot, hv.Text) and "workbench plan-pairs" in plot.text
        assert f"{rounds} round" in plot.text
    else:
        curve = plot.get(0) if isinstance(plot, hv.Overlay) else plot
        assert isinstance(curve, hv.Curve) and len(curve) == rounds
