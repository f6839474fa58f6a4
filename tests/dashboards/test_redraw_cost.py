"""What a gene choice costs the page: views redraw in place, and a choice does not walk
Bokeh's model graph at all, however many views redraw (a block that does add models walks
it once)."""

from __future__ import annotations

import contextlib
import html

import numpy as np
import pandas as pd
import panel as pn
import param
import pytest
from bokeh.document import Document

from workbench.dashboards.base import live, update_in_place
from workbench.dashboards.state import Selection


@pytest.fixture
def count_walks(monkeypatch):
    """How many times Bokeh walked a document's model graph (``recompute``)."""
    from bokeh.document.models import DocumentModelManager

    calls = []
    real = DocumentModelManager.recompute

    def recompute(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(DocumentModelManager, "recompute", recompute)
    return calls


@pytest.fixture
def served_doc():
    """A document that is the current one, as for a served session's callbacks."""
    doc = Document()
    old = pn.state.curdoc
    pn.state.curdoc = doc
    yield doc
    pn.state.curdoc = old


def test_update_in_place_keeps_the_models_and_copies_text_and_rows():
    old = pn.Column(pn.pane.Markdown("a"), pn.widgets.Tabulator(pd.DataFrame({"x": [1, 2]})))
    md, tab = old.objects
    new = pn.Column(pn.pane.Markdown("b"), pn.widgets.Tabulator(pd.DataFrame({"x": [3]})))
    assert update_in_place(old, new)
    assert old.objects[0] is md and old.objects[1] is tab  # nothing replaced
    assert md.object == "b"
    assert tab.value["x"].tolist() == [3]


def test_update_in_place_refuses_another_structure_and_leaves_it_alone():
    old = pn.Column(pn.pane.Markdown("a"))
    assert not update_in_place(old, pn.Column(pn.pane.Markdown("b"), pn.pane.Markdown("c")))
    assert not update_in_place(old, pn.Row(pn.pane.Markdown("b")))
    assert not update_in_place(pn.pane.Markdown("a"), pn.pane.HoloViews(None))
    assert old.objects[0].object == "a"


class _Owner(param.Parameterized):
    selection = param.ClassSelector(class_=Selection)
    rows = param.Integer(default=1)

    @param.depends("selection.perturbation", "rows")
    def panel(self):
        items = [pn.pane.Markdown(f"gene {self.selection.perturbation or '-'}")]
        if self.rows > 1:
            items.append(pn.pane.Markdown("more"))
        return pn.Column(*items)


def test_live_follows_a_sub_object_dependency_in_place_and_replaces_on_new_structure():
    owner = _Owner(selection=Selection())
    box = live(owner, "panel")
    first = box.objects[0]
    owner.selection.choose_gene("G07")  # a dependency on another object (selection.*)
    assert box.objects[0] is first and first.objects[0].object == "gene G07"
    owner.rows = 2  # its own parameter, and a panel of another length: replaced
    assert box.objects[0] is not first
    assert [p.object for p in box.objects[0].objects] == ["gene G07", "more"]


def test_frozen_graph_walks_once_and_only_when_the_graph_changed(served_doc, count_walks):
    from workbench.dashboards.app import held_document

    root = pn.Column(pn.pane.Markdown("a")).get_root(served_doc)
    served_doc.add_root(root)
    count_walks.clear()
    with held_document():
        root.children[0].text = "b"  # a property change: no new model
    assert count_walks == []
    extra = pn.pane.Markdown("new").get_root(served_doc)
    with held_document():
        with held_document():  # nested blocks walk once, at the outer end
            root.children = [*root.children, extra]
        assert count_walks == []
    assert count_walks == [1]
    assert served_doc.get_model_by_id(extra.id) is extra  # the new model is in the document


def test_a_gene_choice_walks_the_model_graph_not_at_all(study, served_doc, count_walks):
    from workbench.dashboards.app import build_app

    dash = build_app(study, sync_url=False)
    served_doc.add_root(pn.panel(dash).get_root(served_doc))
    genes = [g for g in dash._gene_options() if "+" not in g][:3]
    doubles = [g for g in dash._gene_options() if "+" in g][:2]
    assert len(genes) == 3 and len(doubles) == 2
    dash.selection.choose_gene(genes[0])  # the first choice swaps the overview for the card
    for g in [genes[1], *doubles, genes[2]]:  # a double draws no other models either
        count_walks.clear()
        dash.selection.choose_gene(g)
        # every view redraws in place and no redraw adds a model (a HoloViews ``yoffset``
        # does: a new Dodge transform per redraw, and a walk of the whole graph)
        assert count_walks == [], g
    # and the page did follow: the header, the embedding status and the GRN caption
    texts = html.unescape(" ".join(m.text for m in served_doc.models
                                   if isinstance(getattr(m, "text", None), str)))
    assert f"Gene:</strong> {genes[2]} " in texts
    assert f"samples of <strong>{genes[2]}</strong>" in texts
    assert f"Subgraph centred on <strong>{genes[2]}</strong>" in texts


def test_a_gene_choice_rerenders_no_plot_and_the_glyphs_carry_the_gene(study, served_doc,
                                                                       monkeypatch):
    """The map's highlight, the volcano's marks and the GRN subgraph are data of glyphs
    drawn once: a choice replaces that data and re-renders no HoloViews plot (a re-render
    recomputes every layer's ranges: most of a choice's server time before)."""
    from holoviews.plotting.bokeh.element import ElementPlot, OverlayPlot

    from workbench.dashboards.app import build_app
    from workbench.dashboards.grn import subgraph
    from workbench.dashboards.interactions import interaction_table

    dash = build_app(study, sync_url=False)
    served_doc.add_root(pn.panel(dash).get_root(served_doc))
    emb, inter, grn = (dash.view(n) for n in ("embeddings", "interactions", "grn"))
    table = interaction_table(study)
    table = table[table["test"] == inter.test] if inter.test else table
    paired = set(table["gene_a"]) | set(table["gene_b"])
    genes = [g for g in dash._gene_options() if "+" not in g and g in paired]
    assert len(genes) >= 3
    dash.selection.choose_gene(genes[0])
    renders = []
    for cls in (ElementPlot, OverlayPlot):
        real = cls.update_frame
        monkeypatch.setattr(cls, "update_frame", lambda self, *a, _real=real, **k: (
            renders.append(type(self).__name__), _real(self, *a, **k))[1])
    ids = {m.id for m in served_doc.models}
    for g in genes[1:3]:
        dash.selection.choose_gene(g)
        assert renders == [], g
        # each view's glyphs are in the page and show this gene
        (src,) = [s for s in emb._live.sources() if s["highlight"].id in ids]
        assert sorted(map(str, src["highlight"].data["id"])) == \
            sorted(map(str, emb.highlighted()["id"].head(len(src["highlight"].data["id"]))))
        assert len(src["highlight"].data["id"]) > 0
        assert all(g in str(p).split("+") for p in src["highlight"].data["perturbation"])
        (src,) = [s for s in inter._live.sources() if s["gene"].id in ids]
        want = table[(table["gene_a"] == g) | (table["gene_b"] == g)]["pair"]
        assert sorted(src["gene"].data["pair"]) == sorted(want) and len(want) > 0
        (src,) = [s for s in grn._live.sources() if s["nodes"].id in ids]
        nodes, edges = subgraph(study, g, grn.threshold, grn.max_nodes)
        assert sorted(src["nodes"].data["gene"]) == sorted(nodes)
        centre = [n for n, r in zip(src["nodes"].data["gene"], src["nodes"].data["role"],
                                    strict=True) if r == "centre"]
        assert centre == [g]
        assert sorted(src["edges"].data["edge"]) == sorted(
            f"{a} → {b}" for a, b in zip(edges["source"], edges["target"], strict=True))
    # choosing samples moves the map's second layer, not the first
    some = emb.data()["id"].head(4).tolist()
    dash.selection.choose_samples(some)
    (src,) = [s for s in emb._live.sources() if s["selected"].id in ids]
    assert sorted(map(str, src["selected"].data["id"])) == sorted(map(str, some))
    assert renders == []


def test_unchanged_values_cost_no_update():
    sel = Selection(perturbation="G01")
    entered = []

    def context():
        entered.append(1)
        return contextlib.nullcontext()

    sel.batch_context = context
    sel.update(perturbation="G01", samples=[])
    assert entered == []
    sel.update(perturbation="G02")
    assert entered == [1] and sel.perturbation == "G02"


def test_cached_highlight_rows_match_the_mask(study):
    from workbench.dashboards.embeddings import highlight_mask, highlight_rows, points

    # the index built once must give, for every name (singles, doubles, each gene of a
    # double), exactly the rows the mask marks, at both levels
    for level in ("samples", "perturbations"):
        df = points(study, level, "pca")
        names = set(df["perturbation"].astype(str))
        names |= {g for n in names for g in n.split("+")}
        assert any("+" in n for n in names)
        for gene in sorted(names):
            rows = highlight_rows(study, level, "pca", gene)
            assert len(rows) > 0
            np.testing.assert_array_equal(rows, np.flatnonzero(highlight_mask(df, gene)))
        assert len(highlight_rows(study, level, "pca", "")) == 0
        assert len(highlight_rows(study, level, "pca", "NOT_A_GENE")) == 0


def test_the_subgraph_glyphs_colour_edges_by_effect_and_fade_them_by_probability(
        study, served_doc):
    """Each drawn edge's colour is its effect and its opacity its posterior probability,
    both read here from the ``grn`` artefact itself (``[i, j]`` is ``j -> i``), and the
    page's glyphs are bound to those columns (fails for a transposed probability or share,
    colours swapped, or a glyph whose opacity is a constant)."""
    from bokeh.models import GlyphRenderer, Scatter, Segment

    from workbench.dashboards.app import build_app
    from workbench.dashboards.grn import EFFECT_COLOURS

    dash = build_app(study, sync_url=False)
    served_doc.add_root(pn.panel(dash).get_root(served_doc))
    grn = dash.view("grn")
    g = study.read("grn")
    names = list(map(str, g.var_names))
    prob = np.asarray(g.varp["edge_probability"], float)
    share = np.asarray(g.varp["edge_positive_share"], float)
    ids = {m.id for m in served_doc.models}
    effects, checked = set(), 0
    for gene in names[:6]:
        dash.selection.choose_gene(gene)
        (src,) = [s for s in grn._live.sources() if s["edges"].id in ids]
        data = src["edges"].data
        for edge, p, colour in zip(data["edge"], data["probability"], data["colour"],
                                   strict=True):
            a, b = edge.split(" → ")
            i, j = names.index(b), names.index(a)
            assert p == pytest.approx(prob[i, j]) and p >= grn.threshold
            s = share[i, j]
            want = ("activates" if s >= 0.9 else "represses" if s <= 0.1 else "mixed")
            assert colour == EFFECT_COLOURS[want], edge
            effects.add(want)
            checked += 1
        heads = src["heads"].data
        assert list(heads["colour"]) == list(data["colour"])
        assert list(heads["probability"]) == list(data["probability"])
    assert checked >= 5 and {"activates", "represses"} <= effects
    renderers = [r for r in served_doc.select({"type": GlyphRenderer})
                 if r.data_source.id in {src["edges"].id, src["heads"].id}]
    glyphs = {type(r.glyph): r.glyph for r in renderers}
    seg = glyphs[Segment]
    assert seg.line_color == "colour" or getattr(seg.line_color, "field", None) == "colour"
    assert getattr(seg.line_alpha, "field", seg.line_alpha) == "probability"
    head = glyphs[Scatter]
    assert getattr(head.fill_alpha, "field", head.fill_alpha) == "probability"
