"""The Qt-free half of the plugin: which crops a choice shows and where they go."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import MissingArtefactError, StudyNotFoundError, UnknownGeneError
from workbench.napari import _crops
from workbench.napari._source import StudySource, open_source

pytestmark = pytest.mark.napari


def _obs():
    labels = ["ctrl"] * 5 + ["A"] * 3 + ["B"] * 2 + ["A+B"] * 4 + ["C"] * 1
    return pd.DataFrame({"perturbation": labels, "is_control": [x == "ctrl" for x in labels],
                         "genes": ["" if x == "ctrl" else x for x in labels]},
                        index=[f"c{i}" for i in range(len(labels))])


def test_pair_conditions_pick_the_right_rows():
    obs = _obs()
    conds = _crops.pair_conditions(obs, "A+B", n=10)
    assert [c.title for c in conds] == ["control", "A", "B", "A+B"]
    got = {c.title: set(obs.perturbation.iloc[c.positions]) for c in conds}
    assert got == {"control": {"ctrl"}, "A": {"A"}, "B": {"B"}, "A+B": {"A+B"}}
    assert [len(c.positions) for c in conds] == [5, 3, 2, 4]
    # the reversed spelling names the same pair
    assert [len(c.positions) for c in _crops.pair_conditions(obs, "B+A", n=10)] == [5, 2, 3, 4]
    assert _crops.pair_names(obs) == ["A+B"]


def test_unknown_names_give_suggestions():
    obs = _obs()
    with pytest.raises(UnknownGeneError, match="did you mean 'A\\+B'"):
        _crops.pair_conditions(obs, "A+C")
    with pytest.raises(UnknownGeneError, match="'Q'"):
        _crops.perturbation_conditions(obs, "Q")


def test_concept_exemplars_follow_activation_quantiles():
    act = np.arange(100, dtype=float)
    conds = _crops.concept_conditions(act, np.arange(100) + 1000, n=3,
                                      quantiles=(0.5, 1.0))
    assert [c.title for c in conds] == ["q50", "top"]
    assert set(conds[1].positions) == {1097, 1098, 1099}
    assert all(abs(p - 1000 - 49.5) <= 2 for p in conds[0].positions)


def test_layout_and_crop_lookup_round_trip(toy_study):
    src = StudySource(toy_study)
    layers = src.layers("pair", "A+B", n=4)
    image, labels, points = layers
    assert image[2] == "image" and labels[2] == "labels" and points[2] == "points"
    meta = image[1]["metadata"]
    cells = meta["workbench"]["cells"]
    assert len(cells) == 16
    # the pixels of every cell are the crop the table says
    h, w = meta["workbench"]["crop_hw"]
    for y, x, ci, cid in cells:
        crop = src.store.get([cid])[0]
        np.testing.assert_array_equal(image[0][:, y:y + h, x:x + w], crop)
        hit = _crops.crop_at(meta, (y + h / 2, x + w / 2))
        assert hit["crop_id"] == cid
        assert hit["condition"] == ["control", "A", "B", "A+B"][ci]
        cond = src.obs.loc[cid, "perturbation"]
        assert cond == ("control" if ci == 0 else hit["condition"])
    assert _crops.crop_at(meta, (-5, -5)) is None
    assert "well=" in _crops.describe_crop(src.obs, cells[0][3])


def test_contrast_limits_come_from_controls(toy_study):
    src = StudySource(toy_study)
    ctrl = src.store.get(np.flatnonzero(src.obs.is_control.to_numpy()))
    for c, (lo, hi) in enumerate(src.contrast):
        assert np.isclose(hi, np.percentile(ctrl[:, c], 99.8), rtol=0.05)
        assert lo < hi


def test_source_errors_are_clear(tmp_path, study_without_images):
    with pytest.raises(StudyNotFoundError, match="is not a Study"):
        open_source(tmp_path)
    src = open_source(study_without_images)
    with pytest.raises(MissingArtefactError, match="no 'images' artefact"):
        src.open_layers()


@pytest.mark.slow
def test_concepts_step_exemplars_fill_the_top_block(toy_study, tmp_path):
    """With the real concepts step, concept names, codes and exemplars come from it."""
    import shutil
    import warnings

    from workbench.data.study import Study

    concepts = pytest.importorskip("workbench.tools.concepts")
    pytest.importorskip("torch")
    study = tmp_path / "c.study"
    shutil.copytree(toy_study, study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        concepts.run_concepts(Study.open(study), n_concepts=4, sparsity=1, max_steps=30,
                              progress=False)
    src = StudySource(study)
    names = src.concept_names()
    assert names == Study.open(study).read_obs("concepts").index.tolist()
    uns = src._concepts_uns
    assert src._activation_key() == uns["profiles_key"]
    conds = src.conditions("concept", names[0], n=4)
    assert [c.title for c in conds] == ["q50", "q90", "q99", "top"]
    want = list(uns["exemplars"][names[0]])[:4]
    assert src.obs.index[conds[-1].positions].tolist() == want
