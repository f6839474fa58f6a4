"""The phenotype of a search in the dashboards: the embedding view colours crops and
perturbations by the search's classifier score, joined by id; the gene card lists the
searches in which a gene is enriched; categorical colourings get a legend and a
perturbation-level map names its most extreme perturbations.

The search is run by the real find step on the tiny demo Study, answered from the
``perturbation`` column with the demo's synthetic-lethal pair as the phenotype (as in
``tests/tools/test_find.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

from workbench.dashboards import embeddings as emb  # noqa: E402
from workbench.dashboards import phenotype as ph  # noqa: E402
from workbench.dashboards.gene_card import gene_card  # noqa: E402
from workbench.dashboards.state import Selection  # noqa: E402
from workbench.testing import copy_study  # noqa: E402

PHENO = "G03+G08"


@pytest.fixture(scope="module", autouse=True)
def _bokeh():
    hv.extension("bokeh")


@pytest.fixture(scope="module")
def searched(tiny_study_path, tmp_path_factory):
    """A copy of the tiny Study holding a phenotype search around one crop of G03+G08."""
    from workbench.tools.find import run_find

    study = copy_study(tiny_study_path, tmp_path_factory.mktemp("pheno") / "s.study")
    obs = study.read_obs("profiles")
    ex = str(obs.index[obs["perturbation"] == PHENO][0])
    run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=80, seed=0)
    return study


@pytest.fixture(scope="module")
def shuffled(searched, tmp_path_factory):
    """The same search with its rows in another order and five crops left out (as a
    search kept from an earlier set of profiles would be)."""
    study = copy_study(searched.path, tmp_path_factory.mktemp("pheno") / "shuffled.study")
    kept = study.read("phenotype_search")
    order = np.random.default_rng(0).permutation(kept.n_obs)[5:]
    with study.step("test_shuffle", inputs=["phenotype_search"]) as tx:
        tx.write_anndata("phenotype_search", kept[order].copy(), screen=False)
    return study


def _view(study, level="samples", what=ph.SCORE):
    view = emb.EmbeddingsView(study, Selection(), level=level)
    view.color_by = ph.color_label(study, what)
    return view


def _calls(obs: pd.DataFrame, exemplars) -> pd.Series:
    """The positive calls of the find step's enrichment: the answer, else score >= 0.5."""
    answer = obs["answer"].astype(str)
    call = (answer == "yes") | ((answer == "") & (obs["score"] >= 0.5))
    call[obs.index.astype(str).isin(list(exemplars))] = True
    return call


def test_colour_choice_appears_only_with_a_search(study, searched):
    plain = emb.EmbeddingsView(study, Selection())
    assert not any(str(o).startswith("phenotype") for o in plain.param.color_by.objects)
    ex = str(searched.read_uns("phenotype_search", "exemplars")[0])
    view = emb.EmbeddingsView(searched, Selection())
    label = f"phenotype score (search from {ex})"
    assert label in view.param.color_by.objects
    assert ph.color_label(searched, ph.FRACTION) not in view.param.color_by.objects
    view.level = "perturbations"  # the perturbation level adds the positive fraction
    assert ph.color_label(searched, ph.FRACTION) in view.param.color_by.objects
    assert "concept activation" not in view.param.color_by.objects


def test_sample_scores_are_each_crops_own(searched, shuffled):
    kept = searched.read("phenotype_search").obs
    view = _view(searched)
    df = view._colored()
    assert list(df["id"]) == list(searched.read_obs("profiles").index.astype(str))
    np.testing.assert_allclose(df["phenotype"], kept["score"].loc[df["id"]].to_numpy())
    # the pair's crops score high, the rest low: the colour carries the phenotype
    pair = df["perturbation"].astype(str) == PHENO
    assert df.loc[pair, "phenotype"].mean() > 5 * df.loc[~pair, "phenotype"].mean()
    # rows in another order, some missing: joined by id, the missing ones without value
    rows = shuffled.read("phenotype_search").obs
    assert list(rows.index) != list(kept.index[: len(rows)])
    other = _view(shuffled)._colored()
    assert list(other["id"]) == list(df["id"])
    has = other["id"].isin(rows.index.astype(str)).to_numpy()
    assert (~has).sum() == 5 and other.loc[~has, "phenotype"].isna().all()
    np.testing.assert_allclose(other.loc[has, "phenotype"], df.loc[has, "phenotype"])


def test_rendered_map_carries_the_scores_and_greys_missing_ones(shuffled):
    view = _view(shuffled)
    fig = hv.render(view.plot())
    from bokeh.models import GlyphRenderer, LinearColorMapper

    renderers = [r for r in fig.renderers if isinstance(r, GlyphRenderer)
                 and "phenotype" in r.data_source.data]
    assert len(renderers) == 1
    src = renderers[0].data_source.data
    want = view._colored().set_index("id")["phenotype"]
    np.testing.assert_allclose(np.asarray(src["phenotype"], float),
                               want.loc[list(src["id"])].to_numpy())
    mapper = renderers[0].glyph.fill_color.transform
    assert isinstance(mapper, LinearColorMapper)
    assert (mapper.low, mapper.high) == (0.0, 1.0) and mapper.nan_color == emb.NO_VALUE


def test_perturbation_level_mean_score_and_positive_fraction(searched, shuffled):
    for study in (searched, shuffled):
        obs = study.read("phenotype_search").obs
        mean = obs.groupby("perturbation", observed=True)["score"].mean()
        view = _view(study, "perturbations")
        df = view._colored().set_index("perturbation")
        np.testing.assert_allclose(df["phenotype"], mean.loc[df.index].to_numpy())
    # the fraction counts the calls the find step's enrichment counted
    obs = searched.read("phenotype_search").obs
    calls = _calls(obs, searched.read_uns("phenotype_search", "exemplars"))
    frac = calls.groupby(obs["perturbation"].astype(str)).mean()
    df = _view(searched, "perturbations", ph.FRACTION)._colored().set_index("perturbation")
    np.testing.assert_allclose(df["phenotype"], frac.loc[df.index].to_numpy())
    enr = searched.read_uns("phenotype_search", "enrichment").set_index("perturbation")
    sizes = obs["perturbation"].astype(str).value_counts()
    np.testing.assert_allclose(df["phenotype"] * sizes.loc[df.index].to_numpy(),
                               enr.loc[df.index, "n_positive"].to_numpy())
    assert df["phenotype"].idxmax() == PHENO


def test_gene_card_lists_the_search_the_gene_is_enriched_in(study, searched):
    enr = searched.read_uns("phenotype_search", "enrichment").set_index("perturbation")
    assert enr.loc[PHENO, "q"] < ph.ALPHA  # the search found the pair
    for gene in ("G03", "G08"):
        card = gene_card(searched, gene)
        row = card[card["section"] == "phenotype"]
        assert len(row) == 1
        value, base = row["value"].iloc[0], row["baseline"].iloc[0]
        assert value.startswith(f"{PHENO} (") and f"ranking score {enr.loc[PHENO, 'q']:.2g}" \
            in value
        assert "not a checked q-value" in base and "q " not in value
        wb = searched.read("phenotype_search").uns["workbench"]
        assert row["fact"].iloc[0] == (f"enriched in the {ph.search_name(searched)} "
                                       f"({wb['status']}; prevalence {wb['lower']:.2%} to "
                                       f"{wb['upper']:.2%}, "
                                       f"{1 - wb['settings']['delta']:.0%} interval)")
        assert row["view"].iloc[0] == "embeddings"
    # a gene whose perturbations are not enriched, and a Study without a search
    value = gene_card(searched, "G01").query("section == 'phenotype'")["value"].iloc[0]
    assert value.startswith("no perturbation holding G01 is enriched")
    assert PHENO not in value
    row = gene_card(study, "G03").query("section == 'phenotype'")
    assert list(row["value"]) == ["no phenotype search"]
    assert "workbench find" in row["baseline"].iloc[0]


def test_categorical_colouring_has_a_legend_matching_the_map(study):
    view = emb.EmbeddingsView(study, Selection())
    view.color_by = "perturbation"
    legend = view.legend()
    perts = set(study.read_obs("profiles")["perturbation"].astype(str))
    assert set(legend) == perts and len(set(legend.values())) == min(len(perts), 20)
    fig = hv.render(view.plot())
    from bokeh.models import CategoricalColorMapper, GlyphRenderer

    mappers = [getattr(r.glyph.fill_color, "transform", None) for r in fig.renderers
               if isinstance(r, GlyphRenderer)]
    mapper = next(m for m in mappers if isinstance(m, CategoricalColorMapper))
    assert dict(zip(mapper.factors, mapper.palette, strict=True)) == legend
    root = pn.panel(view).get_root()
    html = " ".join(m.text for m in root.select({"type": object})
                    if isinstance(getattr(m, "text", None), str) and "wb-emb-legend"
                    in (getattr(m, "css_classes", None) or []))
    assert all(p in html for p in perts)
    # the exported figure carries the legend inside it, every category named
    fig = hv.render(view.figure())
    items = [i for lg in fig.legend for i in lg.items if getattr(i.label, "field", None)]
    assert len(items) == 1  # one entry per value of the colour column
    src = items[0].renderers[0].data_source.data
    assert set(map(str, src[items[0].label.field])) == perts
    view.color_by = "latent_nucleus_size"  # a numeric colouring has a colour bar instead
    assert view.legend() == {}


def test_perturbation_map_names_at_most_the_50_most_extreme(study):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=80), "y": rng.normal(size=80),
                       "perturbation": [f"P{i}" for i in range(80)]})
    df.loc[7, ["x", "y"]] = [40.0, -30.0]  # far from every other point
    top = emb.extreme(df)
    assert len(top) == emb.MAX_LABELS and top.iloc[0]["perturbation"] == "P7"
    d = np.hypot(df["x"] - df["x"].median(), df["y"] - df["y"].median())
    assert d.loc[top.index].min() >= d.drop(top.index).max()
    view = emb.EmbeddingsView(study, Selection(), level="perturbations")
    assert len(view.labels()) == len(view.data()) <= emb.MAX_LABELS
    assert len(emb.EmbeddingsView(study, Selection()).labels()) == 0  # crops: no names
    fig = hv.render(view.plot())
    texts = [r for r in fig.renderers if "perturbation" in getattr(r, "data_source", {}).data
             and type(r.glyph).__name__ == "Text"]
    assert sorted(texts[0].data_source.data["perturbation"]) == sorted(view.data()["perturbation"])


def test_phenotype_is_a_selection_the_map_and_the_card_share(searched):
    sel = Selection()
    view = emb.EmbeddingsView(searched, sel)
    name, label = ph.search_name(searched), ph.color_label(searched)
    sel.choose_phenotype(name)  # chosen elsewhere: the map colours by its score
    assert view.color_by == label
    sel.clear()
    assert sel.phenotype == "" and view.color_by == "perturbation"
    view.color_by = label  # chosen in the map: the selection holds it
    assert sel.phenotype == name
    view.color_by = "batch"
    assert sel.phenotype == ""
    sel.choose_phenotype("another search")  # not this Study's: the map keeps its colour
    assert view.color_by == "batch"
    # the gene card's phenotype line chooses it and opens the map coloured by it
    from workbench.dashboards.app import build_app

    dash = build_app(searched, views=["gene_card", "grn"], sync_url=False)
    dash.selection.choose_gene("G08")
    dash.view("gene_card").open_line("phenotype", "embeddings")
    assert dash.selection.phenotype == name and "embeddings" in dash.layout.views
    assert dash.view("embeddings").color_by == label


def test_rasterised_maps_keep_the_category_colours_and_skip_missing_scores():
    rng = np.random.default_rng(2)
    cat = rng.choice(["a", "b", "c"], 400)
    centre = pd.Series(cat).map({"a": 0.0, "b": 10.0, "c": 20.0}).to_numpy()
    df = pd.DataFrame({"x": centre + rng.normal(0, 0.3, 400), "y": rng.normal(0, 0.3, 400),
                       "id": [str(i) for i in range(400)], "perturbation": pd.Categorical(cat)})
    shaded = emb.scatter(df, "perturbation", threshold=100)
    assert not isinstance(shaded, hv.Points)
    hv.render(shaded)
    rgb = shaded[()]  # the rasterised image: each cluster in its category's colour
    px = np.stack([rgb.dimension_values(k).astype(int) for k in "RGBA"], axis=1)
    px = px[px[:, 3] > 0, :3]
    key = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)]
                    for c in emb.category_colors(df["perturbation"]).values()])
    dist = np.abs(px[:, None, :] - key[None, :, :]).max(axis=2)  # pixel x category
    assert dist.min(axis=1).max() <= 2  # every pixel is one category's colour (rounding)
    assert set(dist.argmin(axis=1)) == {0, 1, 2}
    scores = rng.uniform(size=400)
    scores[:50] = np.nan  # crops the search holds no score for
    hv.render(emb.scatter(df.assign(phenotype=scores), "phenotype", threshold=100))
