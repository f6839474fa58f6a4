"""A corpus of bad inputs: each gives our own error with a useful message, and the Study on
disk is byte-for-byte unchanged afterwards."""

from __future__ import annotations

import json
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workbench.data.schema import check_names
from workbench.data.study import Study
from workbench.errors import (
    SchemaVersionError,
    StudyCorruptError,
    StudyNotFoundError,
    UnknownGeneError,
    ValidationError,
)

from .conftest import screen_adata, snapshot


def _write_profiles(study, adata):
    with study.step("import") as tx:
        tx.write_anndata("profiles", adata)


def _drop(col):
    def make():
        a = screen_adata()
        a.obs = a.obs.drop(columns=[col])
        return a
    return make


def _rename(old, new):
    def make():
        a = screen_adata()
        a.obs = a.obs.rename(columns={old: new})
        return a
    return make


def _x(value):
    def make():
        a = screen_adata()
        a.X[3, 2] = value
        return a
    return make


def _obsm_nan():
    a = screen_adata()
    a.obsm["X_emb_b1"][0, 0] = np.nan
    return a


def _is_control_as_int():
    a = screen_adata()
    a.obs["is_control"] = a.obs["is_control"].astype(int)
    return a


def _no_controls_in_batch():
    a = screen_adata()
    drop = (a.obs["batch"] == "b2") & a.obs["is_control"]
    return a[~drop.to_numpy()].copy()


def _no_controls_at_all():
    a = screen_adata()
    return a[~a.obs["is_control"].to_numpy()].copy()


def _missing_plate_values():
    a = screen_adata()
    a.obs["plate"] = a.obs["plate"].astype(object)
    a.obs.iloc[2, a.obs.columns.get_loc("plate")] = None
    return a


def _string_matrix():
    a = screen_adata()
    return ad.AnnData(np.full(a.shape, "x", dtype=object), obs=a.obs)


WRITE_CASES = {
    "missing perturbation column": (_drop("perturbation"), ValidationError, "perturbation"),
    "misnamed column": (_rename("perturbation", "perturbaton"), ValidationError,
                        "did you mean 'perturbaton'"),
    "missing well column": (_drop("well"), ValidationError, "'well'"),
    "NaN in the embedding": (_x(np.nan), ValidationError, "1 NaN"),
    "infinite embedding": (_x(np.inf), ValidationError, "infinite"),
    "NaN in an obsm embedding": (_obsm_nan, ValidationError, "obsm\\['X_emb_b1'\\]"),
    "is_control not bool": (_is_control_as_int, ValidationError, "expected bool"),
    "a batch without controls": (_no_controls_in_batch, ValidationError, "'b2'.*no controls"),
    "no controls at all": (_no_controls_at_all, ValidationError, "no control rows"),
    "missing plate values": (_missing_plate_values, ValidationError, "missing value"),
    "non-numeric matrix": (_string_matrix, ValidationError, "real numbers"),
}


@pytest.mark.parametrize("case", sorted(WRITE_CASES))
def test_bad_tables_are_refused_and_leave_the_study_unchanged(study, case):
    make, err, pattern = WRITE_CASES[case]
    before = snapshot(study.path)
    with pytest.raises(err, match=pattern) as info:
        _write_profiles(study, make())
    assert info.value.fix, "every error says how to fix it"
    assert snapshot(study.path) == before
    Study.open(study.path).validate(deep=True)


def test_image_stack_with_the_wrong_number_of_channels(study):
    before = snapshot(study.path)
    obs = study.read_obs("profiles")
    crops = np.zeros((len(obs), 4, 8, 8), "float32")
    with pytest.raises(ValidationError, match="4 channels but 5 channel names"):
        with study.step("import_images") as tx:
            tx.write_images("images", crops, obs, ["DNA", "ER", "RNA", "AGP", "Mito"])
    assert snapshot(study.path) == before


def test_image_stack_and_table_of_different_lengths(study):
    obs = study.read_obs("profiles")
    with pytest.raises(ValidationError, match="crops but its table has"):
        with study.step("import_images") as tx:
            tx.write_images("images", np.zeros((3, 1, 4, 4)), obs, ["DNA"])


def test_unknown_gene_names_suggest_the_close_ones():
    with pytest.raises(UnknownGeneError, match="did you mean 'NF1'") as info:
        check_names(["NF1", "nf1x"], ["NF1", "TP53", "KRAS"], where="the screen")
    assert "1 gene name(s)" in info.value.problem


def test_a_path_that_is_not_a_study(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(StudyNotFoundError, match="no study.json"):
        Study.open(tmp_path / "plain")
    with pytest.raises(StudyNotFoundError, match="does not exist"):
        Study.open(tmp_path / "nowhere")


def test_a_newer_schema_version(study):
    meta = json.loads((study.path / "study.json").read_text())
    meta["schema_version"] = 99
    (study.path / "study.json").write_text(json.dumps(meta))
    before = snapshot(study.path)
    with pytest.raises(SchemaVersionError, match="upgrade"):
        Study.open(study.path)
    assert snapshot(study.path) == before


def test_truncated_study_json(study):
    text = (study.path / "study.json").read_text()
    (study.path / "study.json").write_text(text[: len(text) // 2])
    before = snapshot(study.path)
    with pytest.raises(StudyCorruptError, match="not valid JSON"):
        Study.open(study.path)
    assert snapshot(study.path) == before


def test_corrupted_zarr_chunks(study):
    chunks = [p for p in (study.path / "profiles.zarr" / "X").rglob("*")
              if p.is_file() and p.name != "zarr.json"]
    for p in chunks:
        p.write_bytes(b"\x00garbage")
    before = snapshot(study.path)
    with pytest.raises(StudyCorruptError, match="(?s)profiles.*re-run the step"):
        Study.open(study.path).read("profiles")
    assert snapshot(study.path) == before


def test_truncated_zarr_metadata(study):
    meta = study.path / "profiles.zarr" / "zarr.json"
    meta.write_text(meta.read_text()[:20])
    with pytest.raises(StudyCorruptError, match="profiles"):
        Study.open(study.path)


def test_truncated_parquet(study):
    p = study.path / "results.parquet"
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(StudyCorruptError, match="results"):
        Study.open(study.path).read("results")


def test_artefact_deleted_behind_the_studys_back(study):
    shutil.rmtree(study.path / "profiles.zarr")
    with pytest.raises(StudyCorruptError, match="missing"):
        Study.open(study.path)


def test_interrupted_write_is_invisible(study):
    before = snapshot(study.path)
    with pytest.raises(KeyboardInterrupt):
        with study.step("import") as tx:
            tx.write_table("results", pd.DataFrame({"pair": ["Q"], "p": [0.1]}))
            raise KeyboardInterrupt
    assert snapshot(study.path) == before


@pytest.mark.parametrize("genes,match", [("A+B+C", "more than two genes"),
                                         ("A+", "empty gene name"), ("A+A", "one gene twice")])
def test_gene_sets_that_are_not_singles_or_pairs_are_refused_at_import(study, genes, match):
    from .conftest import screen_adata

    a = screen_adata()
    a.obs["genes"] = np.where(a.obs["is_control"], "", a.obs["perturbation"].astype(str))
    a.obs.iloc[-1, a.obs.columns.get_loc("genes")] = genes
    with pytest.raises(ValidationError, match=match):
        with study.step("import") as tx:
            tx.write_anndata("profiles", a)
    a.obs.iloc[-1, a.obs.columns.get_loc("genes")] = "A+B"
    with study.step("import") as tx:
        tx.write_anndata("profiles", a)
