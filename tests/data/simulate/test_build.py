"""The demo Study: artefacts, screen contract, and planted truth visible in its own output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.data.schema import validate_screen_obs
from workbench.data.simulate import CHANNELS, PROPERTIES, build_demo_study
from workbench.data.simulate.render import CAMERA_OFFSET
from workbench.data.study import Study
from workbench.errors import ValidationError, WorkbenchError


def test_study_holds_the_artefacts(quick_study):
    study = Study.open(quick_study.path)
    assert study.meta["simulated"] is True
    for name in ("images", "velocity", "relationships", "ground_truth"):
        assert study.has(name)
    assert [p["tool"] for p in study.provenance] == ["simulate"]
    study.validate(deep=True)
    truth = study.read("ground_truth")
    for key in ("genes", "properties", "channels", "adjacency", "grn_weights", "programs",
                "effects", "no_effect", "groups", "pairs", "channel_effects", "all_pairs"):
        assert key in truth
    assert 12 <= len(truth["genes"]) <= 16
    n_pairs = sum(len(v) for v in truth["pairs"].values())
    assert n_pairs >= 6 and len(truth["pairs"]["interacting"]) >= 6


def test_images_follow_the_screen_contract(quick_study):
    images = quick_study.read("images")
    obs = images.obs
    n, c, h, w = images.shape
    assert (c, h, w) == (5, 32, 32) and images.channel_names == CHANNELS
    assert images.get([0]).dtype == np.uint16
    validate_screen_obs(obs, "control")
    truth = quick_study.read("ground_truth")
    assert set(obs.loc[~obs.is_control, "perturbation"].astype(str)) == \
        set(truth["genes"]) | {p["pair"] for v in truth["pairs"].values() for p in v}
    assert (obs.loc[obs.is_control, "perturbation"] == "control").all()
    doubles = obs[obs.perturbation_type == "double"]
    assert (doubles.genes.astype(str).str.count(r"\+") == 1).all()
    for prop in PROPERTIES:
        assert f"latent_{prop}" in obs.columns
    # replicate wells: every perturbation is on every plate, and every batch has controls
    per_plate = obs.groupby("perturbation", observed=True)["plate"].nunique()
    assert (per_plate == obs.plate.nunique()).all()
    assert obs.batch.nunique() >= 2
    counts = obs.groupby("perturbation", observed=True).size()
    singles = counts[[g for g in truth["genes"]]]
    assert 12 <= singles.median() <= 24  # ~15-20 crops per condition
    lethal = [p["pair"] for p in truth["pairs"]["interacting"] if p["type"] == "synthetic_lethal"]
    assert counts[lethal].max() < 0.5 * singles.median()  # few cells survive


def test_relationships_file_is_efaar_format(quick_study):
    rel = pd.read_csv(quick_study.read("relationships"))
    assert list(rel.columns) == ["entity1", "entity2"]
    truth = quick_study.read("ground_truth")
    pairs = set(zip(rel.entity1, rel.entity2))
    assert all((b, a) in pairs for a, b in pairs)
    for members in truth["groups"].values():
        assert all((a, b) in pairs for a in members for b in members if a != b)


def test_velocity_anndata(quick_study):
    adata = quick_study.read("velocity")
    truth = quick_study.read("ground_truth")
    assert list(adata.var_names) == truth["genes"]
    assert {"spliced", "unspliced", "velocity"} <= set(adata.layers)
    assert {"trajectory", "time"} <= set(adata.obs.columns)
    assert adata.obs.trajectory.nunique() >= 4
    assert np.array_equal(adata.varp["true_adjacency"], np.array(truth["adjacency"]))
    assert np.isfinite(adata.layers["velocity"]).all()


def _channel_features(images, idx):
    x = np.clip(images.get(idx).astype(np.float32) - CAMERA_OFFSET, 0, None)
    return np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3))], axis=1)  # (n, 10)


def test_images_differ_in_the_channels_the_programs_touch(quick_study):
    """Per-crop channel mean and sd, divided by each batch's control mean (control
    normalisation), compared with controls by Welch t. With ~18 crops per knockout:

    * strong knockouts (effect norm > 2 sd) move a channel their program touches (|t| > 3);
    * pooled over effect genes, touched channels move far more than untouched ones;
    * no-effect genes move no channel (|t| < 3.5).
    """
    images = quick_study.read("images")
    obs = images.obs.reset_index(drop=True)
    truth = quick_study.read("ground_truth")
    feats = _channel_features(images, np.arange(len(obs)))
    for b in obs.batch.unique():
        rows = (obs.batch == b).to_numpy()
        ctrl = rows & obs.is_control.to_numpy()
        feats[rows] /= feats[ctrl].mean(0)
    ctrl = feats[obs.is_control.to_numpy()]
    pert = obs.perturbation.astype(str).to_numpy()

    def channel_t(gene):
        f = feats[pert == gene]
        t = (f.mean(0) - ctrl.mean(0)) / np.sqrt(f.var(0) / len(f) + ctrl.var(0) / len(ctrl))
        return np.abs(t).reshape(2, 5).max(0)  # per channel, the larger of mean and sd

    hits, strong, touched_t, untouched_t = 0, 0, [], []
    for g in truth["effect_genes"]:
        eff = np.array(truth["effects"][g])
        touched = {CHANNELS.index(c) for p, e in zip(truth["properties"], eff) if e != 0
                   for c in truth["channel_effects"][p]}
        t = channel_t(g)
        touched_t += [t[c] for c in touched]
        untouched_t += [t[c] for c in range(5) if c not in touched]
        if np.linalg.norm(eff) > 2.0:
            strong += 1
            hits += max(t[c] for c in touched) > 3
    assert strong >= 4
    assert hits >= 0.8 * strong, (hits, strong)
    assert np.mean(touched_t) > 2 * np.mean(untouched_t), (np.mean(touched_t),
                                                          np.mean(untouched_t))
    for g in truth["no_effect"]:
        assert channel_t(g).max() < 3.5, (g, channel_t(g).round(1))


def test_batch_effects_are_real(quick_study):
    """Control crops of different batches differ in raw intensity: their background level
    (the 5th percentile pixel) and their mean signal (so normalising on each batch's controls
    matters)."""
    images = quick_study.read("images")
    obs = images.obs.reset_index(drop=True)
    idx = np.flatnonzero(obs.is_control.to_numpy())
    x = images.get(idx).astype(np.float32)
    back = np.percentile(x, 5, axis=(2, 3))
    mean = x.mean(axis=(2, 3)) - back
    batch = obs.loc[obs.is_control, "batch"].astype(str).to_numpy()
    b1, b2 = np.unique(batch)[:2]

    def t(f):
        a, b = f[batch == b1], f[batch == b2]
        return np.abs(a.mean(0) - b.mean(0)) / np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))

    assert t(back).max() > 8, t(back)
    rel = np.abs(mean[batch == b1].mean(0) / mean[batch == b2].mean(0) - 1)
    assert rel.max() > 0.1, rel


def test_determinism_per_seed(tmp_path):
    a = build_demo_study(tmp_path / "a.study", size="tiny", seed=1)
    b = build_demo_study(tmp_path / "b.study", size="tiny", seed=1)
    c = build_demo_study(tmp_path / "c.study", size="tiny", seed=2)
    xa, xb, xc = (s.read("images").crops.compute() for s in (a, b, c))
    assert np.array_equal(xa, xb)
    assert xa.shape != xc.shape or not np.array_equal(xa, xc)
    assert a.read("ground_truth") == b.read("ground_truth")
    assert a.read("ground_truth")["adjacency"] != c.read("ground_truth")["adjacency"]
    pd.testing.assert_frame_equal(a.read("images").obs, b.read("images").obs)
    va, vb = a.read("velocity"), b.read("velocity")
    assert np.array_equal(va.layers["velocity"], vb.layers["velocity"])


def test_refuses_to_overwrite_and_bad_size(tmp_path, quick_study):
    with pytest.raises(WorkbenchError, match="already exists"):
        build_demo_study(quick_study.path, size="tiny")
    with pytest.raises(ValidationError, match="unknown demo size"):
        build_demo_study(tmp_path / "x.study", size="huge")
    assert not (tmp_path / "x.study").exists()
