"""Profile tables (LINCS, pycytominer layout) and DeepProfiler single-cell features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.readers import import_profiles, read_deepprofiler, read_profiles_table
from workbench.data.study import Study
from workbench.errors import InputFormatError, ValidationError

LINCS = "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"
DP = "lincs_cellpainting_profiles/deepprofiler_SQ00014812_A01_site5_efficientnet.npz"
DP_INDEX = "lincs_cellpainting_profiles/deepprofiler_test_index.csv"


def test_lincs_plate_maps_to_the_contract(shared_data):
    a = read_profiles_table(shared_data / LINCS)
    assert a.shape == (384, 454)
    assert a.uns["workbench"]["control_label"] == "DMSO"
    assert int(a.obs["is_control"].sum()) == 24
    assert a.obs["perturbation"].nunique() == 59
    assert a.obs["well"].nunique() == 384
    assert set(a.obs["plate"]) == {"SQ00015054"} and set(a.obs["batch"]) == {"SQ00015054"}
    # metadata kept: MOA, target, dose
    assert a.obs["moa"].nunique() == 50
    assert "Metadata_target" in a.obs and "dose" in a.obs
    assert (a.obs.loc[a.obs["is_control"], "dose"] == 0).all()
    assert a.X.dtype == np.float32 and np.isfinite(a.X).all()


def test_lincs_import_and_reopen(shared_data, tmp_path):
    study = import_profiles(shared_data / LINCS, tmp_path / "s.study")
    again = Study.open(tmp_path / "s.study").validate(deep=True)
    assert again.control_label == "DMSO"
    prof = again.read("profiles")
    assert prof.shape == (384, 454)
    step = study.provenance[-1]
    assert step["tool"] == "import_profiles" and step["params"]["source"].endswith(".csv.gz")


def test_deepprofiler_cells(shared_data):
    a = read_deepprofiler(shared_data / DP, shared_data / DP_INDEX)
    assert a.shape == (158, 6400)
    assert set(a.obs["perturbation"]) == {"DMSO"} and a.obs["is_control"].all()
    assert set(a.obs["well"]) == {"A01"} and set(a.obs["site"]) == {"5"}
    assert {"location_x", "location_y"} <= set(a.obs.columns)


def _table(tmp_path, **changes):
    df = pd.DataFrame({
        "Metadata_Plate": ["P1"] * 4, "Metadata_Well": ["A01", "A02", "A03", "A04"],
        "Metadata_broad_sample": ["DMSO", "DMSO", "cpdA", "cpdB"],
        "f1": [0.1, 0.2, 0.3, 0.4], "f2": [1.0, 2.0, 3.0, 4.0]})
    for k, v in changes.items():
        if v is None:
            df = df.drop(columns=k)
        else:
            df[k] = v
    p = tmp_path / "plate.csv"
    df.to_csv(p, index=False)
    return p


def test_missing_well_column_names_it(tmp_path):
    with pytest.raises(ValidationError, match="well") as err:
        read_profiles_table(_table(tmp_path, Metadata_Well=None))
    assert "plate.csv" in str(err.value) and "--well-column" in str(err.value)


def test_no_controls(tmp_path):
    p = _table(tmp_path, Metadata_broad_sample=["a", "b", "c", "d"])
    with pytest.raises(ValidationError, match="control"):
        read_profiles_table(p)
    with pytest.raises(ValidationError, match="'DMSO'"):
        read_profiles_table(p, control="DMSO")


def test_nan_features_and_policies(tmp_path):
    p = _table(tmp_path, f1=[0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValidationError, match="f1"):
        read_profiles_table(p)
    assert read_profiles_table(p, nan_policy="drop_features").n_vars == 1
    assert read_profiles_table(p, nan_policy="drop_rows").n_obs == 3


def test_text_feature_column_and_truncated_file(tmp_path):
    with pytest.raises(InputFormatError, match="notes"):
        read_profiles_table(_table(tmp_path, notes=["x", "y", "z", "w"]))
    good = _table(tmp_path)
    import gzip

    data = gzip.compress(good.read_bytes() * 50)
    bad = tmp_path / "trunc.csv.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFormatError, match="trunc.csv.gz"):
        read_profiles_table(bad)


def test_failed_import_leaves_study_unchanged(tmp_path, snapshot):
    study_path = tmp_path / "s.study"
    import_profiles(_table(tmp_path), study_path)
    before = snapshot(study_path)
    bad = _table(tmp_path, f1=[np.nan] * 4)
    with pytest.raises(ValidationError):
        import_profiles(bad, study_path)
    assert snapshot(study_path) == before
    # a failing import never creates a Study
    with pytest.raises(ValidationError):
        import_profiles(bad, tmp_path / "new.study")
    assert not (tmp_path / "new.study").exists()


def test_other_control_label_is_refused(tmp_path, snapshot):
    study_path = tmp_path / "s.study"
    import_profiles(_table(tmp_path), study_path)
    before = snapshot(study_path)
    p = _table(tmp_path, Metadata_broad_sample=["EMPTY", "EMPTY", "a", "b"])
    with pytest.raises(ValidationError, match="control label"):
        import_profiles(p, study_path)
    assert snapshot(study_path) == before


def _two_artefact_study(tmp_path):
    out = tmp_path / "keep.study"
    import_profiles(_table(tmp_path), out)
    with Study.open(out).step("extra") as tx:
        tx.write_table("notes", pd.DataFrame({"x": [1, 2]}))
    return out


def _tree(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                  if p.name != ".lock" and ".locks" not in p.parts)


def test_overwrite_that_fails_while_writing_keeps_the_old_study(tmp_path, monkeypatch):
    from workbench.data import transaction

    out = _two_artefact_study(tmp_path)
    before, files = (out / "study.json").read_bytes(), _tree(out)

    def disk_full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(transaction.Transaction, "write_anndata", disk_full)
    with pytest.raises(OSError, match="No space"):
        import_profiles(_table(tmp_path), out, overwrite=True)
    assert (out / "study.json").read_bytes() == before and _tree(out) == files
    assert set(Study.open(out).artefacts) == {"profiles", "notes"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.study", "plate.csv"]


def test_overwrite_that_succeeds_replaces_the_study(tmp_path):
    out = _two_artefact_study(tmp_path)
    study = import_profiles(_table(tmp_path), out, overwrite=True)
    assert study.path == out and set(Study.open(out).artefacts) == {"profiles"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.study", "plate.csv"]
