"""The gene card reads each fact from the right gene and the right column, and the overview
states each step's headline beside its baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.dashboards.gene_card import card_json, gene_card
from workbench.errors import UnknownGeneError


def _fact(card, fact_start):
    rows = card[card["fact"].str.startswith(fact_start)]
    assert len(rows) == 1, (fact_start, card["fact"].tolist())
    return rows.iloc[0]


def test_replicate_consistency_and_neighbours_are_the_genes_own(study):
    rc = study.read_uns("perturbations", "benchmarks")["replicate_consistency"]
    per = rc["per_perturbation"]
    names = [str(n) for n in per["perturbation"]]
    values = {n: float(v) for n, v in zip(names, per["mean_cosine"], strict=True)}
    for gene in ("G07", "G02"):
        row = _fact(gene_card(study, gene), "replicate consistency")
        assert row["value"].startswith(f"{values[gene]:.3g} over "
                                       f"{int(per['n_replicates'][names.index(gene)])}")
        assert row["baseline"] == f"null mean cosine {float(rc['null_mean_cosine']):.3g}"
        assert row["view"] == "perturbation_map"
    # the nearest neighbour is the most similar other perturbation of the map
    x = study.read("perturbations")
    labels = x.obs_names.astype(str).tolist()
    v = np.asarray(x.X, float)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    i = labels.index("G07")
    cos = v @ v[i]
    cos[i] = -np.inf
    best = labels[int(np.argmax(cos))]
    assert _fact(gene_card(study, "G07"), "nearest neighbours")["value"].startswith(f"{best} (")


def test_regulators_are_the_row_and_targets_the_column(study):
    from workbench.dashboards.grn import posterior

    names, prob = posterior(study)  # child-major: prob[i, j] = P(j regulates i)
    differ = 0
    for k, gene in enumerate(names):
        card = gene_card(study, gene)
        regs = _fact(card, "likely regulators")["value"]
        tgts = _fact(card, "likely targets")["value"]
        want_r = {names[j] for j in range(len(names)) if j != k and prob[k, j] >= 0.5}
        want_t = {names[i] for i in range(len(names)) if i != k and prob[i, k] >= 0.5}
        for g in want_r:
            assert f"{g} (P {prob[k, names.index(g)]:.2f})" in regs
        for g in want_t:
            assert f"{g} (P {prob[names.index(g), k]:.2f})" in tgts
        if not want_r:
            assert regs.startswith("none at P")
        differ += want_r != want_t
    assert differ  # the Study has genes whose regulators and targets differ


def test_next_experiment_lists_the_genes_proposed_pairs(study):
    hist = study.read("pair_selection")
    prop = hist[hist["status"] == "proposed"]
    gene = str(prop["gene_a"].iloc[0])
    row = _fact(gene_card(study, gene), "double knock-outs proposed")
    mine = prop[(prop["gene_a"] == gene) | (prop["gene_b"] == gene)]
    for pair in mine["pair"]:
        assert pair in row["value"]
    others = set(prop["pair"]) - set(mine["pair"])
    assert not any(p in row["value"] for p in others)
    lonely = sorted(set(gene_card.__globals__["known_genes"](study))
                    - set(prop["gene_a"]) - set(prop["gene_b"]))[0]
    assert "none of the" in _fact(gene_card(study, lonely), "double knock-outs")["value"]


@pytest.fixture(scope="module")
def planted(tiny_study_path, tmp_path_factory):
    """A copy of the tiny Study in which G07 drives concept c005 (q 0.01) and G08 drives
    c002, G03+G07 interacts (disjointness q 0.01) and G03+G05 too."""
    from workbench.testing import copy_study

    study = copy_study(tiny_study_path, tmp_path_factory.mktemp("card") / "card.study")
    concepts = study.read("concepts")
    levels = [str(v) for v in concepts.uns["workbench"]["labels"]["perturbation"]["levels"]]
    ids = concepts.obs_names.astype(str).tolist()
    q = np.array(concepts.obsm["enrichment_q_perturbation"], dtype=float)
    q[ids.index("c005"), levels.index("G07")] = 0.01
    q[ids.index("c002"), levels.index("G08")] = 0.02
    concepts.obsm["enrichment_q_perturbation"] = q.astype(np.float32)
    inter = study.read("interactions")
    dis = inter["test"] == "disjointness"
    inter.loc[dis & (inter["pair"] == "G03+G07"), ["p", "q"]] = [0.001, 0.01]
    inter.loc[dis & (inter["pair"] == "G03+G05"), ["p", "q"]] = [0.002, 0.02]
    with study.step("test_plant", inputs=["concepts", "interactions"]) as tx:
        tx.write_anndata("concepts", concepts)
        tx.write_table("interactions", inter)
    return study


def test_concepts_are_the_genes_significant_ones(planted, study):
    row = _fact(gene_card(planted, "G07"), "concepts it drives")
    assert row["value"].startswith("c005 (q 0.01") and "c002" not in row["value"]
    assert "c002 (q 0.02" in _fact(gene_card(planted, "G08"), "concepts it drives")["value"]
    assert _fact(gene_card(study, "G07"), "concepts it drives")["value"].startswith(
        "no significant concept")


def test_partners_show_calibrated_p_values_and_label_scores(planted, study):
    card = gene_card(planted, "G07")
    sig = _fact(card, "significant partners")["value"]
    assert sig.startswith("G03 (disjointness: p 0.001, q 0.01)")
    assert "G05" not in sig  # G03+G05 does not hold G07
    g5 = _fact(gene_card(planted, "G05"), "significant partners")["value"]
    assert g5.startswith("G03 (") and "G07" not in g5
    score = _fact(card, "separability_score (score, not a p-value)")
    assert "p " not in score["value"] and "G03" in score["value"]
    assert _fact(gene_card(study, "G07"), "significant partners")["value"].startswith(
        "no significant partner")


def test_unknown_gene_and_exports(study):
    with pytest.raises(UnknownGeneError, match="not a gene"):
        gene_card(study, "NOPE1")
    card = gene_card(study, "G07")
    assert list(card.columns) == ["section", "fact", "value", "baseline", "view"]
    assert set(card["section"]) == {"profile", "concepts", "interactions", "grn",
                                    "next experiment", "phenotype"}
    data = json.loads(card_json(card))
    assert data["gene"] == "G07" and data["facts"][0] == card.iloc[0].to_dict()


def test_overview_headlines_sit_beside_their_baselines(study):
    from workbench.dashboards.overview import overview_table

    ov = overview_table(study).set_index("step", drop=False)
    probe = study.read_uns("profiles", "embedding")["probe"]
    assert f"chance {float(probe['chance']):.3g}" == ov.loc["embed", "baseline"]
    grn = study.read_uns("grn", "metrics")
    assert f"{grn['exact']['auroc']:.3g}" in ov.loc["grn", "headline"]
    assert f"regression baseline {grn['baseline']['auroc']:.3g}" in ov.loc["grn", "baseline"]


def test_overview_says_which_command_fills_an_empty_step(images_only_study):
    from workbench.dashboards.overview import overview_table

    ov = overview_table(images_only_study).set_index("step")
    assert ov.loc["embed", "holds"] == "not computed yet"
    assert "workbench embed" in ov.loc["embed", "where"]
    assert "workbench grn" in ov.loc["grn", "where"]


def test_dashboard_lands_on_overview_then_gene_card(study):
    pytest.importorskip("panel")
    from workbench.dashboards.app import build_app

    dash = build_app(study, sync_url=False)
    assert "wb-landing-overview" in dash._landing().css_classes
    dash.selection.choose_gene("G07")
    assert "wb-landing-gene_card" in dash._landing().css_classes
    card = dash.view("gene_card")
    assert card.table().equals(gene_card(study, "G07"))
    card.open_view("perturbation_map")  # a line's link opens its view beside the card
    assert "perturbation_map" in dash.layout.views and len(dash.layout.views) <= 4
