"""Spliced/unspliced AnnData: pancreas (raw counts) and dentate gyrus (pre-processed)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from workbench.data.readers import import_velocity, read_velocity
from workbench.errors import InputFormatError, ValidationError

PANCREAS = "rna_velocity_small/pancreas_veloviz_739cells.h5ad"
DG100 = "rna_velocity_small/dentategyrus_cellrank_adata_100.h5ad"


def test_pancreas_counts(shared_data):
    a = read_velocity(shared_data / PANCREAS)
    assert a.shape == (739, 7192)
    assert set(a.layers) == {"spliced", "unspliced"}
    assert a.uns["workbench"]["total_spliced"] == 3_667_856
    assert a.uns["workbench"]["total_unspliced"] == 888_619
    assert a.uns["workbench"]["cell_type_key"] == "clusters"
    counts = a.obs["clusters"].value_counts()
    assert counts["Ductal"] == 181 and counts["Delta"] == 16
    assert (a.X != a.layers["spliced"]).nnz == 0


def test_dentate_gyrus_needs_allow_normalized(shared_data, tmp_path):
    with pytest.raises(ValidationError, match="non-integer"):
        read_velocity(shared_data / DG100)
    study = import_velocity(shared_data / DG100, tmp_path / "v.study", require_integer=False)
    v = study.read("velocity")
    assert v.shape == (100, 278)
    assert "Granule mature" in set(v.obs["clusters"])
    assert study.provenance[-1]["params"]["require_integer"] is False


def _write(tmp_path, layers):
    rng = np.random.default_rng(0)
    a = ad.AnnData(X=rng.poisson(2, (6, 4)).astype(np.float32),
                   layers={k: rng.poisson(2, (6, 4)).astype(np.float32) for k in layers})
    p = tmp_path / "cells.h5ad"
    a.write_h5ad(p)
    return p


def test_missing_layer_names_the_layers_found(tmp_path):
    p = _write(tmp_path, ["spliced", "ambiguous"])
    with pytest.raises(ValidationError) as err:
        read_velocity(p)
    msg = str(err.value)
    assert "unspliced" in msg and "ambiguous" in msg and "cells.h5ad" in msg


def test_truncated_h5ad(tmp_path):
    p = _write(tmp_path, ["spliced", "unspliced"])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputFormatError, match="cells.h5ad"):
        read_velocity(p)


def test_failed_import_leaves_study_unchanged(tmp_path, snapshot):
    good = _write(tmp_path, ["spliced", "unspliced"])
    study_path = tmp_path / "s.study"
    import_velocity(good, study_path)
    before = snapshot(study_path)
    bad = tmp_path / "bad.h5ad"
    ad.AnnData(X=np.ones((3, 2), np.float32), layers={"spliced": np.full((3, 2), 0.5)}) \
        .write_h5ad(bad)
    with pytest.raises(ValidationError):
        import_velocity(bad, study_path)
    assert snapshot(study_path) == before
