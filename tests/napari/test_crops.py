"""The Qt-free half of the plugin on the tiny demo Study: which crops a choice shows, where
they go, and where the concepts view reads its codes and exemplars."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import MissingArtefactError, StudyNotFoundError, UnknownGeneError
from workbench.napari import _crops
from workbench.napari._source import StudySource, open_source

pytestmark = pytest.mark.napari


def _perturbations(obs, positions):
    return set(obs["perturbation"].astype(str).iloc[positions])


def test_perturbation_conditions_pick_the_right_rows(tiny):
    src = StudySource(tiny["path"])
    obs = tiny["obs"]
    n_ctrl = int(obs["is_control"].sum())
    want = sorted(set(obs["perturbation"].astype(str)[~obs["is_control"]]),
                  key=lambda p: (p.count("+"), p))
    assert src.perturbations() == want
    for name in want:
        ctrl, hit = src.conditions("perturbation", name, n=5)
        assert (ctrl.title, hit.title) == ("control", name)
        assert obs["is_control"].iloc[ctrl.positions].all() and len(ctrl.positions) == 5
        assert _perturbations(obs, hit.positions) == {name}
        assert len(hit.positions) == min(5, int((obs["perturbation"] == name).sum()))
        assert ctrl.note == f"{n_ctrl} crops"
    # a double spelled the other way round names the same crops
    a, b = tiny["pair"].split("+")
    assert np.array_equal(src.conditions("perturbation", f"{b}+{a}", n=50)[1].positions,
                          src.conditions("perturbation", tiny["pair"], n=50)[1].positions)


def test_pairs_come_in_the_order_of_the_interactions_table(tiny):
    src = StudySource(tiny["path"])
    tested = tiny["study"].read("interactions")["pair"].astype(str).drop_duplicates().tolist()
    pairs = src.pairs()
    assert sorted(pairs) == tiny["doubles"]  # every imaged double whose singles are imaged
    assert pairs[:len(tested)] == tested
    obs = tiny["obs"]
    for pair in pairs:
        a, b = pair.split("+")
        conds = src.conditions("pair", pair, n=6)
        assert [c.title for c in conds] == ["control", a, b, pair]
        got = [_perturbations(obs, c.positions) for c in conds]
        assert got == [{"control"}, {a}, {b}, {pair}]


def test_unknown_names_give_suggestions(tiny):
    src = StudySource(tiny["path"])
    a, b = tiny["pair"].split("+")
    with pytest.raises(UnknownGeneError, match=f"did you mean '{a}\\+{b}'"):
        src.conditions("pair", f"{a}+{b}x")
    with pytest.raises(UnknownGeneError, match="'NOPE'"):
        src.conditions("perturbation", "NOPE")
    with pytest.raises(UnknownGeneError, match="concept 'zz' is not in Study"):
        src.conditions("concept", "zz")


def test_layout_and_crop_lookup_round_trip(tiny):
    from workbench.data.simulate.morphology import CHANNELS
    from workbench.data.images import CHANNEL_COLORS

    src = StudySource(tiny["path"])
    pair, a, b = tiny["pair"], tiny["a"], tiny["b"]
    layers = src.layers("pair", pair, n=4)
    assert [kind for _, _, kind in layers] == ["image", "points"]  # the demo has no masks
    image, kwargs, _ = layers[0]
    assert kwargs["name"] == [f"pair {pair}: {c}" for c in CHANNELS]
    assert kwargs["colormap"] == [CHANNEL_COLORS[c] for c in CHANNELS]
    assert kwargs["channel_axis"] == 0 and kwargs["blending"] == "additive"
    meta = kwargs["metadata"]
    cells = meta["workbench"]["cells"]
    assert len(cells) == 16
    h, w = meta["workbench"]["crop_hw"]
    titles = ["control", a, b, pair]
    for y, x, ci, cid in cells:  # the pixels of every cell are the crop the table says
        np.testing.assert_array_equal(image[:, y:y + h, x:x + w], src.store.get([cid])[0])
        hit = _crops.crop_at(meta, (y + h / 2, x + w / 2))
        assert hit == {"crop_id": cid, "condition": titles[ci]}
        assert tiny["obs"].loc[cid, "perturbation"] == titles[ci]
    assert _crops.crop_at(meta, (-5, -5)) is None
    line = _crops.describe_crop(src.obs, cells[-1][3], pair)
    assert f"perturbation={pair}" in line and f"well={tiny['obs'].loc[cells[-1][3], 'well']}" \
        in line
    points = layers[1]
    assert [t.split(" (")[0] for t in points[1]["features"]["title"]] == titles


def test_contrast_limits_come_from_controls(tiny):
    src = StudySource(tiny["path"])
    obs = tiny["obs"]
    ctrl = src.store.get(np.flatnonzero(obs["is_control"].to_numpy()))
    treated = src.store.get(np.flatnonzero(~obs["is_control"].to_numpy()))
    assert len(src.contrast) == ctrl.shape[1]
    for c, (lo, hi) in enumerate(src.contrast):
        assert np.isclose(hi, np.percentile(ctrl[:, c], 99.8), rtol=0.05)
        assert np.isclose(lo, np.percentile(ctrl[:, c], 1.0), rtol=0.05, atol=1e-3)
        # set on the controls, not on all crops: the treated crops' range differs
        assert not np.isclose(hi, np.percentile(treated[:, c], 99.8), rtol=1e-3)


def test_concepts_come_from_the_concepts_artefact(tiny):
    src = StudySource(tiny["path"])
    concepts, profiles = tiny["concepts"], tiny["profiles"]
    key = concepts.uns["workbench"]["profiles_key"]
    assert src.concept_names() == concepts.obs_names.tolist()
    assert src.activation_key() == key
    codes = np.asarray(profiles.obsm[key])
    img_pos = {cid: i for i, cid in enumerate(tiny["obs"].index.astype(str))}
    for k, name in enumerate(concepts.obs_names):
        acts, pos, got = src.concept_activations(name)
        assert got == name
        assert [img_pos[c] for c in profiles.obs_names] == pos.tolist()
        np.testing.assert_allclose(acts, codes[:, k])
        # the top block is the step's exemplars: rows of profiles, -1 for none
        rows = concepts.obsm["exemplar_top_index"][k]
        want = [img_pos[c] for c in profiles.obs_names[rows[rows >= 0]]][:4]
        conds = src.conditions("concept", name, n=4)
        assert [c.title for c in conds] == ["q50", "q90", "q99", "top"]
        assert conds[-1].positions.tolist() == want
        act_of = dict(zip(pos.tolist(), acts))
        for c in conds[:-1]:  # quantile blocks show active crops only
            if (acts != 0).any():
                assert all(act_of[p] != 0 for p in c.positions.tolist())
    # a concept by its position in the list
    assert src.concept_activations(1)[2] == concepts.obs_names[1]


def test_codes_are_read_under_the_key_the_concepts_step_names(tiny, tmp_path):
    """Another ``concepts_*`` matrix in profiles (a second run, sorted first) must not be
    taken for the codes of the concepts artefact."""
    from workbench.testing import copy_study

    study = copy_study(tiny["path"], tmp_path / "two.study")
    key = tiny["concepts"].uns["workbench"]["profiles_key"]
    profiles = study.read("profiles")
    profiles.obsm["concepts_000_other"] = -np.asarray(profiles.obsm[key])[:, ::-1].copy()
    with study.step("add-codes", params={}, inputs=["profiles"]) as tx:
        tx.write_anndata("profiles", profiles)
    src = StudySource(study.path)
    np.testing.assert_allclose(src.concept_activations(0)[0],
                               np.asarray(tiny["profiles"].obsm[key])[:, 0])

    # the concepts artefact names a matrix that profiles no longer has
    concepts = study.read("concepts")
    concepts.uns["workbench"]["profiles_key"] = "concepts_gone"
    with study.step("rename-codes", params={}, inputs=["concepts"]) as tx:
        tx.write_anndata("concepts", concepts)
    with pytest.raises(MissingArtefactError, match="concepts_gone.*\n.*workbench concepts"):
        StudySource(study.path).conditions("concept", "0")


def test_concept_conditions_follow_activation_quantiles():
    act = np.r_[np.zeros(50), np.arange(1, 101, dtype=float)]  # 50 inactive, 100 active
    conds = _crops.concept_conditions(act, np.arange(150) + 1000, n=3, quantiles=(0.5, 1.0))
    assert [c.title for c in conds] == ["q50", "top"]
    assert set(conds[1].positions) == {1147, 1148, 1149}
    # the median of the active crops (50.5), not of all crops (25.5, an inactive one)
    assert all(abs(p - 1049 - 50.5) <= 2 for p in conds[0].positions)
    dead = _crops.concept_conditions(np.zeros(10), np.arange(10), n=2, quantiles=(0.5,))
    assert len(dead[0].positions) == 2


def test_source_errors_are_clear(tmp_path, study_without_images, study_without_concepts):
    with pytest.raises(StudyNotFoundError, match="is not a Study"):
        open_source(tmp_path)
    src = open_source(study_without_images)
    assert src.perturbations() == [] and src.pairs() == []
    with pytest.raises(MissingArtefactError, match="no 'images' artefact"):
        src.open_layers()
    src = open_source(study_without_concepts)
    assert src.concept_names() == [] and src.perturbations()
    with pytest.raises(MissingArtefactError, match="no 'concepts' artefact.*\n.*workbench "
                                                   "concepts"):
        src.conditions("concept", "0")


def test_crops_without_controls_column_are_refused(tiny):
    obs = tiny["obs"].drop(columns="is_control")
    with pytest.raises(Exception, match="no 'is_control' column") as err:
        _crops.perturbation_conditions(obs, tiny["a"])
    assert "How to fix" in str(err.value)
