"""The embedding view draws the layout the step stored and escapes Study text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")


@pytest.fixture()
def odd_study(tmp_path):
    """Imported profiles whose perturbation names carry HTML and Markdown."""
    from workbench.data.readers.profiles import import_profiles
    from workbench.tools.embed import normalize_study

    rng = np.random.default_rng(0)
    rows = [{"Metadata_pert": ["DMSO", "<b>x</b>&", "cpd_*B*", "cpdC"][i % 4],
             "Metadata_Plate": "P1", "Metadata_Well": f"A{i:02d}",
             **{f"f{k}": rng.normal() for k in range(6)}} for i in range(40)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    study = import_profiles(tmp_path / "t.csv", tmp_path / "t.study",
                            perturbation_column="Metadata_pert", control="DMSO")
    normalize_study(study, tvn_kw={"batch_center": False}, layout="pca")
    return study


def test_view_reads_the_stored_layout_not_a_recomputed_one(odd_study):
    from workbench.dashboards import embeddings as emb

    prof = odd_study.read("profiles")
    stored = prof.obsm["X_pca"].copy()
    df = emb.points(odd_study, "samples", "pca")
    np.testing.assert_array_equal(df[["x", "y"]].to_numpy(), stored)
    assert emb.layouts(odd_study) == ["pca"]
    with pytest.raises(Exception, match="obsm\\['X_umap'\\]"):
        emb.points(odd_study, "samples", "umap")
    view = emb.EmbeddingsView(odd_study)
    assert "first two principal axes" in view.layout_note()


def test_study_text_is_escaped_in_the_view(odd_study):
    from workbench.dashboards import embeddings as emb
    from workbench.dashboards.state import Selection

    sel = Selection()
    view = emb.EmbeddingsView(odd_study, sel)
    sel.choose_gene("<b>x</b>&")
    status = view._status().object
    assert "<b>x</b>" not in status and "&lt;b&gt;" in status
    root = pn.panel(view).get_root()
    texts = " ".join(m.text for m in root.select({"type": object})
                     if isinstance(getattr(m, "text", None), str))
    assert "<b>x</b>&" not in texts
