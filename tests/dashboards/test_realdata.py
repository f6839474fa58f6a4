"""The dashboards on public data: the LINCS plate's embedding, the Norman 2019 GI map and a
GRN posterior fitted to the pancreas velocity data."""

from __future__ import annotations

import numpy as np
import pytest

pn = pytest.importorskip("panel")
hv = pytest.importorskip("holoviews")

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_lincs_plate_embedding(shared_data, tmp_path):
    from workbench.data.readers.profiles import import_profiles
    from workbench.dashboards.embeddings import EmbeddingsView, highlight_mask, points
    from workbench.dashboards.state import Selection

    path = shared_data / "lincs_cellpainting_profiles" / "SQ00015054_normalized_feature_select.csv.gz"
    study = import_profiles(path, tmp_path / "lincs.study", nan_policy="drop")
    df = points(study, "samples", "pca")
    assert len(df) == 384 and np.isfinite(df[["x", "y"]].to_numpy()).all()
    sel = Selection()
    view = EmbeddingsView(study, sel)
    pn.panel(view).get_root()
    compound = df.loc[~df["perturbation"].astype(str).eq(study.control_label), "perturbation"].iloc[0]
    sel.choose_gene(str(compound))
    n = int(highlight_mask(df, str(compound)).sum())
    assert 1 <= n < 384 and len(view.table()) == n
    # DMSO wells spread across the plate: a box around all points selects every well
    view._plot_pane()
    view._streams["box"].event(bounds=(df.x.min(), df.y.min(), df.x.max(), df.y.max()))
    assert len(sel.samples) == 384


def test_norman_gi_map_as_interaction_matrix(shared_data, tmp_path):
    from workbench.data.readers.genetic_interactions import import_gi
    from workbench.dashboards.interactions import InteractionsView, genes, pair_matrix
    from workbench.dashboards.state import Selection

    study = import_gi(shared_data / "norman2019_perturbseq_gi", tmp_path / "norman.study")
    assert not study.has("interactions") and study.has("gi_scores")
    sel = Selection()
    view = InteractionsView(study, sel)
    assert not view.missing
    pn.panel(view).get_root()
    names = genes(study)
    assert len(names) > 50
    long = pair_matrix(study, "gi_score")
    a, b = long.iloc[0][["gene_a", "gene_b"]]
    view._tap_stream.event(x=b, y=a)
    assert sel.pair == "+".join(sorted((a, b))) and len(view.table()) > 0


def test_pancreas_posterior_in_the_grn_view(shared_data, tmp_path):
    """The GRN view on a posterior fitted to real RNA velocity (mouse pancreas, 12 TFs)."""
    from workbench.dashboards.grn import GRNView, agreement, posterior
    from workbench.dashboards.state import Selection
    from workbench.data.readers.velocity import import_velocity
    from workbench.tools.grn import run_grn
    from workbench.tools.grn_metrics import read_edge_list

    tfs = ["Pax6", "Pdx1", "Isl1", "Neurod2", "Nkx2-2", "Pax4", "Sox9", "Foxa2", "Hes1",
           "Mafb", "Insm1", "Rfx6", "Myt1l", "Mnx1", "Hnf1b", "Onecut1"]
    study = import_velocity(shared_data / "rna_velocity_small" / "pancreas_veloviz_739cells.h5ad",
                            tmp_path / "pancreas.study")
    refs = {"dorothea_ABC": read_edge_list(shared_data / "dorothea_regulons" / "dorothea_mm.tsv.gz")}
    run_grn(study, tf_list=tfs, n_top=12, n_steps=30, n_envs=16, n_samples=200, n_boot=5,
            references=refs, device="cpu")
    names, prob = posterior(study)
    assert 10 <= len(names) <= 12 and prob.shape == (len(names), len(names))
    sel = Selection()
    view = GRNView(study, sel)
    pn.panel(view).get_root()
    hub = names[int(np.argmax(prob.sum(0) + prob.sum(1)))]  # the most connected TF
    sel.choose_gene(hub)
    assert view.centre() == hub
    table = view.table()
    assert len(table) > 0 and hub in set(table["source"]) | set(table["target"])
    agree = dict(zip(*agreement(study)[["metric", "value"]].to_numpy().T))
    method = study.read_uns("grn", "settings")["method"]  # exact where it fits, else dyngfn
    auroc = [k for k in agree if k.startswith(f"reference.{method}.dorothea_ABC") and "auroc" in k]
    assert auroc and all(0 <= agree[k] <= 1 for k in auroc if "p_" not in k), agree
