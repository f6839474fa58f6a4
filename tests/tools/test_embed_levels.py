"""The embed step at the well level: profiles are well means of the crop features, the
probe and TVN run on wells, and the map can split perturbations by dose."""

from __future__ import annotations

import numpy as np


def test_well_level_profiles_are_means_of_the_crop_features(tmp_path):
    from workbench.data.simulate import build_demo_study
    from workbench.models.vit_mae import MAEEncoder
    from workbench.tools.embed import embed_study

    study = build_demo_study(tmp_path / "t.study", "tiny", seed=1)
    images = study.read("images")
    enc = MAEEncoder("tiny", device="cpu", seed=3, bf16=False).build(images.crops)
    embed_study(study, encoder=enc, block=2, progress=False, batch_size=64)
    crops = study.read("profiles")
    embed_study(study, encoder=enc, block=2, progress=False, batch_size=64, level="well",
                aggregate="median")
    wells = study.read("profiles")
    obs = crops.obs
    key = obs["plate"].astype(str) + "_" + obs["well"].astype(str)
    assert wells.n_obs == key.nunique() < crops.n_obs
    assert (wells.obs["n_crops"].to_numpy() == key.value_counts().loc[wells.obs_names]).all()
    raw = crops.obsm["X_mae_b2"]
    for name in wells.obs_names[:5]:
        np.testing.assert_allclose(wells.obsm["X_mae_b2"][wells.obs_names.get_loc(name)],
                                   np.median(raw[(key == name).to_numpy()], 0), atol=1e-5)
    info = wells.uns["workbench"]["embedding"]["aggregation"]
    assert info["level"] == "well" and info["how"] == "median"
    ctrl = wells.obs["is_control"].to_numpy(bool)
    assert np.abs(wells.X[ctrl].mean(0)).max() < 1e-4     # TVN on the control wells
    pert = study.read("perturbations")
    assert (pert.obs["n_profiles"] >= 1).all() and pert.n_obs == wells.obs.loc[
        ~ctrl, "perturbation"].nunique()
