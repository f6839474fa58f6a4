"""TIFF fields + plate map into crops: NF1 (3 channels, masks) and a JUMP field (6 channels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from workbench.data.readers import import_images, read_images, scan_fields
from workbench.data.study import Study
from workbench.errors import InputFormatError, ValidationError

NF1 = "cellpainting_images_wayscience/nf1_plate2"
JUMP = "cellpainting_images_wayscience/pediatric_cancer_atlas_BR00143976_C03_f03"
JUMP_CHANNELS = {"5": "DNA", "2": "ER", "6": "RNA", "3": "AGP", "4": "Mito"}


@pytest.fixture(scope="module")
def nf1_study(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("nf1") / "nf1.study"
    return import_images(shared_data / NF1, out, shared_data / NF1 / "platemap_NF1_plate2.csv",
                         perturbation_column="genotype", control="WT", plate="NF1_plate2")


@pytest.mark.slow
def test_nf1_crops_follow_the_contract(nf1_study):
    study = Study.open(nf1_study.path)
    assert study.control_label == "WT"
    store = study.read("images")
    assert store.shape == (132, 3, 96, 96)
    assert store.channel_names == ["DAPI", "GFP", "RFP"]
    obs = store.obs
    per_field = obs.groupby("field_id", observed=True).size().to_dict()
    assert per_field == {"NF1_plate2_B7_s3": 28, "NF1_plate2_D6_s2": 27,
                         "NF1_plate2_D7_s1": 29, "NF1_plate2_F7_s2": 25,
                         "NF1_plate2_H12_s1": 23}
    assert set(obs.loc[obs["is_control"], "well"]) == {"D6"}
    assert int(obs["is_control"].sum()) == 27
    assert set(obs["perturbation"]) == {"WT", "Null"}
    for col in ("batch", "plate", "well", "site", "field_id", "center_y", "center_x",
                "nucleus_label", "gene_name"):
        assert col in obs.columns
    # each crop's mask holds its own nucleus, centred unless shifted at the border
    masks = store.get_masks(np.arange(len(store)))
    own = np.array([(m == lab).sum() for m, lab in zip(masks, obs["nucleus_label"])])
    assert (own > 0).all()
    centred = ~obs["shifted"].to_numpy(bool)
    assert (masks[centred, 48, 48] == obs["nucleus_label"].to_numpy()[centred]).mean() > 0.9


@pytest.mark.slow
def test_nf1_fields_keep_all_masks(nf1_study):
    fields = nf1_study.read("fields")
    assert fields.shape == (5, 3, 904, 1224)
    labels = fields.group["labels"]
    assert sorted(labels.keys()) == ["cells", "cytoplasm", "nuclei"]
    assert int(np.asarray(labels["nuclei"][0]).max()) == 28  # B7 site 3: 28 nuclei
    crops = nf1_study.read("images")
    row = crops.obs.iloc[0]
    f = fields.get([0])[0]
    y0, x0 = int(row["crop_y0"]), int(row["crop_x0"])
    np.testing.assert_array_equal(crops.get([0])[0], f[:, y0:y0 + 96, x0:x0 + 96])


def test_jump_field_six_channels_grid(shared_data):
    r = read_images(shared_data / JUMP, pattern="jump", perturbation="DMSO",
                    plate="BR00143976")
    assert r.channel_names == ["1", "2", "3", "4", "5", "6"]
    assert r.crops.shape == (121, 6, 96, 96)  # 1080 // 96 = 11 -> 11 x 11 tiles
    assert r.masks is None
    assert set(r.obs["well"]) == {"C03"} and set(r.obs["site"]) == {"3"}
    assert r.crops.dtype == np.uint16 and r.crops.max() > 0
    named = read_images(shared_data / JUMP, pattern="jump", channels=JUMP_CHANNELS,
                        perturbation="DMSO")
    assert named.channel_names == ["DNA", "ER", "RNA", "AGP", "Mito"]
    assert named.crops.shape == (121, 5, 96, 96)
    np.testing.assert_array_equal(named.crops[:, 0], r.crops[:, 4])  # DNA is ch5


# ---------------------------------------------------------------- synthetic error cases
def _plate(tmp_path, channels=("DAPI", "GFP", "RFP"), wells=("A1", "B2"), masks=True,
           shape=(64, 80)):
    img = tmp_path / "plate" / "images"
    img.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for w in wells:
        for k, ch in enumerate(channels, 1):
            tifffile.imwrite(img / f"{w}_01_{k}_1_{ch}_001.tif",
                             rng.integers(0, 1000, shape, dtype=np.uint16))
        if masks:
            m = np.zeros(shape, np.uint8)
            m[10:20, 10:20] = 255
            m[40:50, 50:60] = 255
            tifffile.imwrite(img / f"{w}_01_1_1_DAPI_001_MaskNuclei.tiff", m)
    pm = tmp_path / "plate" / "map.csv"
    pd.DataFrame({"well_position": ["A1", "B2"], "genotype": ["WT", "KO"]}).to_csv(pm, index=False)
    return tmp_path / "plate", pm


def test_synthetic_plate_two_nuclei_per_field(tmp_path):
    folder, pm = _plate(tmp_path)
    r = read_images(folder, pm, crop_size=32)
    assert r.crops.shape == (4, 3, 32, 32)
    assert r.obs["nucleus_area"].tolist() == [100] * 4
    # centroids at y = 14.5 and 44.5: the first window is shifted inward to start at 0
    assert r.obs["center_y"].tolist() == [16.0, 44.0] * 2
    assert r.obs["shifted"].tolist() == [True, False] * 2
    assert r.fields.control == "WT"


def test_missing_channel_names_the_field(tmp_path):
    folder, pm = _plate(tmp_path)
    (folder / "images" / "B2_01_3_1_RFP_001.tif").unlink()
    with pytest.raises(ValidationError) as err:
        scan_fields(folder, pm)
    msg = str(err.value)
    assert "B2" in msg and "RFP" in msg and "2 channel" in msg


def test_pattern_that_matches_nothing(tmp_path):
    folder, pm = _plate(tmp_path)
    with pytest.raises(InputFormatError, match="matches the file-name pattern"):
        scan_fields(folder, pm, pattern="jump")
    with pytest.raises(InputFormatError, match="named"):
        scan_fields(folder, pm, pattern=r"(?P<well>\w+)")


def test_platemap_problems(tmp_path):
    folder, pm = _plate(tmp_path)
    with pytest.raises(ValidationError, match="'genotyp'.*did you mean"):
        scan_fields(folder, pm, perturbation_column="genotyp")
    with pytest.raises(ValidationError, match="no sample has the control label 'DMSO'"):
        scan_fields(folder, pm, control="DMSO")
    pd.DataFrame({"well_position": ["A1"], "genotype": ["WT"]}).to_csv(pm, index=False)
    with pytest.raises(ValidationError, match="B2"):
        scan_fields(folder, pm)
    with pytest.raises(ValidationError, match="--platemap"):
        scan_fields(folder)


def test_truncated_tiff_and_failed_import_leave_study_unchanged(tmp_path, snapshot):
    folder, pm = _plate(tmp_path)
    study_path = tmp_path / "s.study"
    import_images(folder, study_path, pm, crop_size=32)
    before = snapshot(study_path)
    f = folder / "images" / "B2_01_2_1_GFP_001.tif"
    f.write_bytes(f.read_bytes()[:300])
    with pytest.raises(InputFormatError, match="B2_01_2_1_GFP_001.tif"):
        import_images(folder, study_path, pm, crop_size=32)
    assert snapshot(study_path) == before
    assert not (study_path / ".staging").exists()
    with pytest.raises(InputFormatError):
        import_images(folder, tmp_path / "new.study", pm, crop_size=32)
    assert not (tmp_path / "new.study").exists()


@pytest.mark.parametrize("shape", [(3, 64, 80), (2, 3, 64, 80)])
def test_stacks_instead_of_planes_are_named_as_such(tmp_path, shape):
    folder, pm = _plate(tmp_path)
    f = folder / "images" / "A1_01_2_1_GFP_001.tif"
    tifffile.imwrite(f, np.zeros(shape, np.uint16))
    with pytest.raises(ValidationError, match=rf"(?s)A1_01_2_1_GFP_001.tif .*{len(shape)}-D.*projection"):
        scan_fields(folder, pm)


def test_a_platemap_that_gives_one_well_two_genotypes_is_refused(tmp_path):
    folder, pm = _plate(tmp_path)
    pd.DataFrame({"well_position": ["A1", "B2", "A1"],
                  "genotype": ["WT", "KO", "KO"]}).to_csv(pm, index=False)
    with pytest.raises(ValidationError, match="(?s)A1.*more than once.*'WT', 'KO'"):
        scan_fields(folder, pm)
    # an exact repeat of a row is harmless
    pd.DataFrame({"well_position": ["A1", "B2", "A1"],
                  "genotype": ["WT", "KO", "WT"]}).to_csv(pm, index=False)
    assert scan_fields(folder, pm).control == "WT"
