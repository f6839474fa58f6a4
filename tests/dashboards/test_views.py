"""Each view builds on a Study, follows the Selection and writes to it (no browser).

Streams are driven the way Bokeh would drive them (``stream.event(...)``), so the linking
logic is checked without a page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards import embeddings as emb  # noqa: E402
from workbench.dashboards.app import Dashboard, build_app  # noqa: E402
from workbench.dashboards.concepts import ConceptsView, concept_page, concepts_of  # noqa: E402
from workbench.dashboards.grn import GRNView, agreement, cycles, subgraph  # noqa: E402
from workbench.dashboards.images import ImagesView  # noqa: E402
from workbench.dashboards.interactions import InteractionsView, next_batch, pair_matrix  # noqa: E402
from workbench.dashboards.perturbation_map import PerturbationMapView, neighbours  # noqa: E402
from workbench.dashboards.state import Selection  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _bokeh():
    hv.extension("bokeh")
    pn.extension("tabulator")


def _render(view):
    return pn.panel(view).get_root()


def _texts(root) -> str:
    """All text and HTML the rendered Bokeh models carry."""
    return " ".join(m.text for m in root.select({"type": object})
                    if isinstance(getattr(m, "text", None), str))


def test_embedding_selection_is_exact_box_lasso_and_highlight(synthetic_study):
    df = emb.points(synthetic_study)
    g01 = df[df["perturbation"] == "G01"]
    # G01 sits alone around (10, 10): a box there selects exactly its samples
    assert sorted(emb.ids_in_box(df, (8, 8, 12, 12))) == sorted(g01["id"])
    square = ([8, 12, 12, 8], [8, 8, 12, 12])
    assert sorted(emb.ids_in_polygon(df, *square)) == sorted(g01["id"])
    tri = ([0, 1, 0], [0, 0, 1])
    pts = pd.DataFrame({"x": [0.2, 0.8, 0.6], "y": [0.2, 0.8, 0.1], "id": ["in", "out", "in2"]})
    assert emb.ids_in_polygon(pts, *tri) == ["in", "in2"]
    # highlighting a gene includes the doubles that contain it
    mask = emb.highlight_mask(df, "G01")
    assert set(df.loc[mask, "perturbation"]) == {"G01", "G01+G02", "G01+G03"}


def test_embeddings_view_streams_write_the_selection(synthetic_study):
    sel = Selection()
    view = emb.EmbeddingsView(synthetic_study, sel)
    _render(view)
    view._plot_pane()
    view._streams["box"].event(bounds=(8, 8, 12, 12))
    assert len(sel.samples) == 6
    view._streams["tap"].event(x=10.0, y=10.0)
    assert sel.perturbation == "G01"
    assert len(view.highlighted()) == 18
    assert view.table().index.isin(sel.samples).all()
    view.color_by = "concept activation"
    sel.choose_concept("c1")
    assert "activation" in view._colored()
    hv.render(view.plot())  # a numeric colouring renders


def test_scatter_datashades_above_threshold():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500),
                       "id": [str(i) for i in range(500)], "perturbation": ["a"] * 500})
    assert isinstance(emb.scatter(df, None, threshold=1000), hv.Points)
    shaded = emb.scatter(df, None, threshold=100)
    assert not isinstance(shaded, hv.Points)  # a datashader operation, rendered as an image
    hv.render(shaded)  # renders without a server


def test_block_probe_and_benchmarks(synthetic_study):
    curve = emb.block_probe(synthetic_study)
    assert list(curve["score"]) == [0.4, 0.6, 0.8, 0.7] and curve.attrs["best_block"] == 3
    bench = emb.benchmark_numbers(synthetic_study)
    assert dict(zip(bench["metric"], bench["value"]))["replicate_consistency"] == 0.81
    raw = pd.DataFrame({"metric": ["n_perturbations", "batch_effect.gap",
                                   "relationship_recall.relationships.recall.0.05_0.95"],
                        "value": [26.0, 0.1, 0.4]})
    head = emb.headline_first(raw)
    assert list(head["metric"][:2]) == ["known-pair recall (5/95 pct)",
                                        "batch gap (same - cross batch)"]
    assert list(head["value"]) == [0.4, 0.1, 26.0]


def test_perturbation_map_marks_known_relationships(synthetic_study):
    nb = neighbours(synthetic_study, "G05", k=30)
    assert nb.set_index("perturbation").loc["G06", "known"]
    assert nb["known"].sum() == 1
    sel = Selection()
    view = PerturbationMapView(synthetic_study, sel)
    _render(view)
    view._tap_stream.event(x="G02", y="G05")
    assert sel.perturbation == "G05"


def test_concepts_follow_the_gene(synthetic_study):
    assert concepts_of(synthetic_study, "G01") == ["c1", "c4"]
    page = concept_page(synthetic_study, "c1")
    assert len(page["exemplars"]) == 6 and len(page["hist_edges"]) == len(page["hist_counts"]) + 1
    sel = Selection()
    view = ConceptsView(synthetic_study, sel)
    _render(view)
    sel.choose_gene("G01")
    assert list(view.table().index) == ["c1", "c4"]
    sel.choose_concept("c1")
    assert "Concept c1" in _texts(_render(view._page()))


def test_interactions_matrix_tap_and_pair_page(synthetic_study):
    sel = Selection()
    view = InteractionsView(synthetic_study, sel)
    _render(view)
    long = pair_matrix(synthetic_study, "disjointness")
    assert long.set_index(["gene_a", "gene_b"]).loc[("G02", "G01"), "value"] == 8.0  # mirrored
    view._tap_stream.event(x="G02", y="G01")
    assert sel.pair == "G01+G02" and sel.perturbation == "G01"
    assert view.gene == "G01"  # the chooser follows
    view.gene = "G04"
    assert sel.perturbation == "G04" and sel.pair == ""
    assert set(view.table()["pair"]) <= {p for p in view.table()["pair"] if "G04" in p}
    sel.choose_pair("G01", "G02")
    html = _texts(_render(view.pair_page()))
    assert html.count("&lt;img") == 8  # control, A, B and A+B, two crops each
    hist = synthetic_study.read("pair_selection")
    assert set(next_batch(hist)["pair"]) == {"G03+G07", "G04+G08"}


def test_grn_centres_on_the_gene(synthetic_study):
    nodes, edges = subgraph(synthetic_study, "G01", threshold=0.5, max_nodes=3)
    assert nodes[0] == "G01" and len(nodes) == 3
    assert {"G01"} < set(edges["source"]) | set(edges["target"])
    sel = Selection()
    view = GRNView(synthetic_study, sel)
    _render(view)
    assert view.centre() == ""
    sel.choose_gene("G02")
    assert view.centre() == "G02" and "G02" in set(view.table()["source"]) | set(view.table()["target"])
    sel.choose_gene("not-a-gene")
    assert view.centre() == ""
    assert "G01 → G02 → G03" in set(cycles(synthetic_study)["cycle"])
    agree = dict(zip(agreement(synthetic_study)["metric"], agreement(synthetic_study)["value"]))
    assert agree["stored.auroc"] == 0.91 and agree["ground_truth.auroc"] > 0.9


def test_images_follow_selection(synthetic_study):
    sel = Selection()
    view = ImagesView(synthetic_study, sel)
    _render(view)
    sel.choose_gene("G02")
    ids = view.shown_ids()
    assert ids and set(view.table()["perturbation"]) <= {"G02", "G01+G02", "G02+G04"}
    sel.choose_samples(["crop0003"])
    assert view.shown_ids() == ["crop0003"]


def test_missing_artefacts_name_the_command(tmp_path, synthetic):
    study = synthetic.make_synthetic_study(tmp_path / "part.study", parts=["images"])
    dash = build_app(study, views=["embeddings", "interactions", "grn", "images"],
                     sync_url=False, write_file=False)
    texts = _texts(_render(dash))
    assert "workbench embed STUDY" in texts and "workbench interactions STUDY" in texts
    assert "workbench grn STUDY" in texts


def test_dashboard_writes_selection_file_and_sessions_are_separate(synthetic_study):
    a = build_app(synthetic_study, sync_url=False)
    b = build_app(synthetic_study, sync_url=False, restore=False)
    _render(a)
    a.selection.choose_gene("G03")
    assert b.selection.perturbation == ""  # no state shared between sessions
    from workbench.dashboards.state import read_selection_file

    assert read_selection_file(synthetic_study.path)["perturbation"] == "G03"
    c = build_app(synthetic_study, sync_url=False)  # a new session resumes from the file
    assert c.selection.perturbation == "G03"
    assert isinstance(a, Dashboard) and a.view("grn") is a.view("grn")
