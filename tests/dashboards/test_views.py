"""Each view builds on a Study made by the real steps, follows the Selection and writes to it
(no browser).

Streams are driven the way Bokeh would drive them (``stream.event(...)``), so the linking
logic is checked without a page. Expected values come from the artefacts as the steps wrote
them (or from the demo world's planted truth), never from numbers typed into the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards import embeddings as emb  # noqa: E402
from workbench.dashboards.concepts import ConceptsView, concept_page, concepts_of  # noqa: E402
from workbench.dashboards.grn import GRNView, subgraph  # noqa: E402
from workbench.dashboards.images import ImagesView  # noqa: E402
from workbench.dashboards.interactions import (  # noqa: E402
    InteractionsView,
    genes,
    next_batch,
    pair_matrix,
)
from workbench.dashboards.perturbation_map import PerturbationMapView, neighbours  # noqa: E402
from workbench.dashboards.state import Selection  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402


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


def _samples_of(study, gene):
    """Profile ids whose perturbation is ``gene`` or a double holding it (from obs alone)."""
    pert = study.read_obs("profiles")["perturbation"].astype(str)
    return set(pert.index[[gene in p.split("+") for p in pert]].astype(str))


def test_embedding_points_are_the_profiles_and_selection_is_exact(study):
    df = emb.points(study)
    prof = study.read("profiles")
    assert list(df["id"]) == list(prof.obs_names.astype(str))
    # the map is the PCA of the embedding the step wrote: its axes are uncorrelated and
    # the first carries the most variance
    x = np.asarray(prof.X, dtype=np.float64)
    assert abs(np.corrcoef(df["x"], df["y"])[0, 1]) < 1e-3
    assert df["x"].var() >= df["y"].var() > 0
    assert df["x"].var() == pytest.approx(np.linalg.eigvalsh(np.cov(x.T))[-1], rel=1e-3)
    with pytest.raises(WorkbenchError, match="unknown embedding layout"):
        emb.points(study, basis="umap")
    # a box around one gene's points selects exactly the points inside it
    gene = "G01"
    mine = df[df["id"].isin(_samples_of(study, gene))]
    pad = 1e-3 * float(np.ptp(df["x"]))  # no point lies on the edges (ray casting is
    bounds = (mine.x.min() - pad, mine.y.min() - pad, mine.x.max() + pad, mine.y.max() + pad)
    inside = df[(df.x >= bounds[0]) & (df.x <= bounds[2]) & (df.y >= bounds[1])
                & (df.y <= bounds[3])]  # undecided on an edge)
    assert set(mine["id"]) <= set(inside["id"]) < set(df["id"])
    assert sorted(emb.ids_in_box(df, bounds)) == sorted(inside["id"])
    square = ([bounds[0], bounds[2], bounds[2], bounds[0]], [bounds[1], bounds[1], bounds[3],
                                                           bounds[3]])
    assert sorted(emb.ids_in_polygon(df, *square)) == sorted(inside["id"])
    tri = ([0, 1, 0], [0, 0, 1])
    pts = pd.DataFrame({"x": [0.2, 0.8, 0.6], "y": [0.2, 0.8, 0.1], "id": ["in", "out", "in2"]})
    assert emb.ids_in_polygon(pts, *tri) == ["in", "in2"]
    assert set(df.loc[emb.highlight_mask(df, gene), "id"]) == _samples_of(study, gene)


def test_embeddings_view_streams_write_the_selection(study):
    sel = Selection()
    view = emb.EmbeddingsView(study, sel)
    _render(view)
    view._plot_pane()
    df = view.data()
    one = df.iloc[5]
    view._streams["box"].event(bounds=(one.x - 1e-6, one.y - 1e-6, one.x + 1e-6, one.y + 1e-6))
    assert one["id"] in sel.samples
    view._streams["tap"].event(x=float(one.x), y=float(one.y))
    assert sel.perturbation == str(one["perturbation"])
    assert set(view.highlighted()["id"]) == _samples_of(study, sel.perturbation)
    assert view.table().index.isin(sel.samples).all()
    # colouring by a concept uses the codes the concepts step wrote for that concept
    concepts = study.read("concepts")
    cid = str(concepts.obs_names[3])
    key = concepts.uns["workbench"]["profiles_key"]
    view.color_by = "concept activation"
    sel.choose_concept(cid)
    np.testing.assert_allclose(view._colored()["activation"],
                               np.asarray(study.read("profiles").obsm[key])[:, 3])
    hv.render(view.plot())  # a numeric colouring renders


def test_scatter_datashades_above_threshold():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500),
                       "id": [str(i) for i in range(500)], "perturbation": ["a"] * 500})
    assert isinstance(emb.scatter(df, None, threshold=1000), hv.Points)
    shaded = emb.scatter(df, None, threshold=100)
    assert not isinstance(shaded, hv.Points)  # a datashader operation, rendered as an image
    hv.render(shaded)  # renders without a server


def test_block_probe_and_benchmarks_are_what_the_steps_stored(study):
    probe = study.read("profiles").uns["workbench"]["embedding"]["probe"]
    curve = emb.block_probe(study)
    assert list(curve["block"]) == list(probe["blocks"])
    np.testing.assert_allclose(curve["balanced_accuracy"], probe["balanced_accuracy"])
    assert curve.attrs["best_block"] == probe["best_block"]
    assert curve.attrs["chance"] == pytest.approx(probe["chance"])
    stored = study.read("perturbations").uns["workbench"]["benchmarks"]
    bench = dict(zip(*emb.benchmark_numbers(study)[["metric", "value"]].to_numpy().T,
                     strict=True))
    assert bench["planted_group_retrieval.map"] == pytest.approx(
        stored["planted_group_retrieval"]["map"])
    assert bench["batch_effect.gap"] == pytest.approx(stored["batch_effect"]["gap"])
    head = emb.headline_first(emb.benchmark_numbers(study))
    assert head["metric"].iloc[0] in emb.HEADLINE.values()
    raw = pd.DataFrame({"metric": ["n_perturbations", "batch_effect.gap",
                                   "relationship_recall.relationships.recall.0.05_0.95"],
                        "value": [26.0, 0.1, 0.4]})
    head = emb.headline_first(raw)
    assert list(head["metric"][:2]) == ["known-pair recall (5/95 pct)",
                                        "batch gap (same - cross batch)"]
    assert list(head["value"]) == [0.4, 0.1, 26.0]


def test_perturbation_map_neighbours_and_known_relationships(study):
    pert = study.read("perturbations")
    x = np.asarray(pert.X, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = list(pert.obs_names.astype(str))
    i = names.index("G01")
    expected = [names[j] for j in np.argsort(-(x @ x[i])) if j != i][:5]
    nb = neighbours(study, "G01", k=5)
    assert list(nb["perturbation"]) == expected
    # the demo's planted groups are the Study's relationships: some neighbour is known
    big = neighbours(study, "G01", k=len(names))
    assert big["known"].any() and not big["known"].all()
    sel = Selection()
    view = PerturbationMapView(study, sel)
    _render(view)
    view._tap_stream.event(x="G02", y="G05")
    assert sel.perturbation == "G05"


def test_concepts_follow_the_gene(study):
    obs = study.read_obs("concepts")
    some = [g for g in genes(study) if concepts_of(study, g)]
    assert some, "no gene drives any concept in the demo Study"
    for g in genes(study):
        for cid in obs.index.astype(str):
            listed = str(obs.loc[cid, "drivers"]) + ";" + str(obs.loc[cid, "perturbation_best"])
            if cid in concepts_of(study, g):
                assert g in listed, (g, cid)
    gene = some[0]
    cid = concepts_of(study, gene)[0]
    page = concept_page(study, cid)
    assert page["exemplars"] == [str(e) for e in
                                 study.read("concepts").uns["workbench"]["exemplars"][cid]]
    assert len(page["hist_edges"]) == len(page["hist_counts"]) + 1 and page["hist_counts"].sum() > 0
    sel = Selection()
    view = ConceptsView(study, sel)
    _render(view)
    sel.choose_gene(gene)
    assert list(view.table().index) == concepts_of(study, gene)
    # the page shows the focused columns, "all columns" every one, the CSV always all
    from workbench.dashboards.concepts import SHOWN_COLUMNS

    full = ["concept", *view.table().columns]
    assert list(view._rows().columns) == [c for c in SHOWN_COLUMNS if c in full]
    assert "drivers" in view._rows().columns and len(view._rows().columns) < len(full)
    assert list(view._rows()["concept"]) == concepts_of(study, gene)
    listed = view.table()["drivers"].fillna("").astype(str)
    shown = view._rows().set_index("concept")["drivers"]
    assert all(shown[c] == (listed[c] or "no significant driver") for c in listed.index)
    view.all_columns = True
    assert list(view._rows().columns) == full
    view.all_columns = False
    assert list(pd.read_csv(view._csv()).columns) == full  # the index, "concept", first
    sel.choose_concept(cid)
    texts = _texts(_render(view._page()))
    assert f"Concept {cid}" in texts and texts.count("&lt;img") == min(8, len(page["exemplars"]))


def test_interactions_matrix_tap_pair_page_and_next_batch(study):
    table = study.read("interactions")
    sel = Selection()
    view = InteractionsView(study, sel)
    _render(view)
    row = table[table["test"] == view.test].iloc[0]
    long = pair_matrix(study, view.test).set_index(["gene_a", "gene_b"])
    assert long.loc[(row.gene_b, row.gene_a), "value"] == pytest.approx(row.statistic)  # mirror
    view._tap_stream.event(x=row.gene_b, y=row.gene_a)
    assert sel.pair == row.pair and sel.perturbation == row.gene_a
    assert view.gene == row.gene_a  # the chooser follows
    other = next(g for g in genes(study) if g not in (row.gene_a, row.gene_b))
    view.gene = other
    assert sel.perturbation == other and sel.pair == ""
    assert len(view.table()) and all(other in p.split("+") for p in view.table()["pair"])
    sel.choose_pair(row.gene_a, row.gene_b)
    html = _texts(_render(view.pair_page()))
    assert html.count("&lt;img") == 8  # control, A, B and A+B, two crops each
    hist = study.read("pair_selection")
    assert list(next_batch(hist)["pair"]) == list(hist.loc[hist["status"] == "proposed", "pair"])
    assert len(next_batch(hist)) > 0


def test_grn_centres_on_the_gene(study):
    nodes, edges = subgraph(study, "G01", threshold=0.5, max_nodes=3)
    assert nodes[0] == "G01" and len(nodes) <= 3
    sel = Selection()
    view = GRNView(study, sel)
    _render(view)
    assert view.centre() == ""
    sel.choose_gene("G02")
    assert view.centre() == "G02"
    sel.choose_gene("not-a-gene")
    assert view.centre() == ""


def test_images_follow_selection(study):
    sel = Selection()
    view = ImagesView(study, sel)
    _render(view)
    sel.choose_gene("G02")
    ids = view.shown_ids()
    assert ids and set(ids) <= _samples_of(study, "G02")
    one = str(study.read("images").obs.index[3])
    sel.choose_samples([one])
    assert view.shown_ids() == [one]


def test_missing_artefacts_name_the_command(images_only_study):
    from workbench.dashboards.app import build_app

    dash = build_app(images_only_study, views=["embeddings", "interactions", "grn", "images"],
                     sync_url=False)
    texts = _texts(_render(dash))
    assert "workbench embed STUDY" in texts and "workbench interactions STUDY" in texts
    assert "workbench grn STUDY" in texts
