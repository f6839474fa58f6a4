"""The dashboards on public data: the LINCS plate's embedding and the Norman 2019 GI map."""

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
