"""The embedding step on the demo world, on a dask cluster, on precomputed profiles and on
real NF1 fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ValidationError
from workbench.tools.embed import choose_block, probe_groups


def test_probe_groups_prefer_batch_then_plate_then_field():
    obs = pd.DataFrame({"batch": ["b"] * 4, "plate": ["p1", "p1", "p2", "p2"],
                        "field_id": ["f1", "f2", "f3", "f4"]})
    assert probe_groups(obs)[0] == "plate"
    assert probe_groups(obs.assign(plate="p"))[0] == "field_id"
    with pytest.raises(ValidationError, match="two batches, plates or fields"):
        probe_groups(obs.assign(plate="p").drop(columns="field_id"))


def test_block_probe_finds_the_block_that_carries_the_label():
    """Block 2 of 3 holds the label; block 3 holds only the plate."""
    rng = np.random.default_rng(0)
    n, d = 240, 6
    y = np.repeat(["ctrl", "A", "B"], n // 3)
    plate = np.tile(["p1", "p2", "p3", "p4"], n // 4)
    F = rng.normal(size=(n, 3, d))
    F[:, 1, 0] += np.select([y == "A", y == "B"], [3.0, -3.0], 0.0)
    F[:, 2, 1] += np.select([plate == "p1", plate == "p2"], [3.0, -3.0], 0.0)
    obs = pd.DataFrame({"perturbation": y, "is_control": y == "ctrl", "batch": plate,
                        "plate": plate})
    res = choose_block(F, obs)
    assert res["best_block"] == 2 and res["group_key"] == "batch"
    acc = res["balanced_accuracy"]
    assert acc[1] > 0.8 and acc[0] < 0.5 and acc[2] < 0.5


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from workbench.data.simulate import build_demo_study
    from workbench.tools.embed import demo_step

    study = build_demo_study(tmp_path_factory.mktemp("demo") / "demo.study", "quick", seed=0)
    demo_step(study, "quick", seed=0)
    return study


@pytest.mark.slow
def test_demo_map_recalls_planted_groups_and_no_effect_genes_are_inconsistent(demo):
    truth = demo.read("ground_truth")
    prof = demo.read("profiles")
    info = prof.uns["workbench"]["embedding"]
    block = int(info["block"])
    assert f"X_mae_b{block}" in prof.obsm and "X_mae_cls_b1" in prof.obsm
    assert list(prof.obs_names) == list(demo.read("images").obs.index)
    probe = info["probe"]
    assert np.max(probe["balanced_accuracy"]) > 2 * probe["chance"]
    pert = demo.read("perturbations")
    assert "cosine" in pert.obsp and "control" not in pert.obs_names
    bench = pert.uns["workbench"]["benchmarks"]
    recall = bench["relationship_recall"]["planted_groups"]
    # 14 genes give 91 pairs, so the 5 % tails hold ~10 pairs: recall is capped well below 1
    assert recall["recall"]["0.05_0.95"] >= 2 * recall["random_baseline"]["0.05_0.95"]
    assert recall["recall"]["0.1_0.9"] >= 0.5 * recall["max_attainable"]["0.1_0.9"]
    gmap = bench["planted_group_retrieval"]
    assert gmap["map"] > gmap["null_mean"] + 2 * gmap["null_sd"] and gmap["p_value"] < 0.02
    rc = bench["replicate_consistency"]["per_perturbation"]
    table = pd.DataFrame({k: np.asarray(v) for k, v in rc.items()}).set_index("perturbation")
    no_effect, effect = truth["no_effect"], truth["effect_genes"]
    assert (table.loc[no_effect, "perm_p"] > 0.2).all()
    # ~9 cells per well: the genes with the larger planted effects must be consistent
    size = {g: float(np.linalg.norm(truth["effects"][g])) for g in effect}
    strong = sorted(effect, key=size.get)[len(effect) // 2:]
    assert table.loc[strong, "perm_p"].median() < 0.05
    assert (table.loc[effect, "perm_p"] < 0.05).sum() >= 3
    assert table.loc[effect, "ks"].mean() > 3 * table.loc[no_effect, "ks"].mean()
    assert "without_tvn" in bench and "batch_gap" in bench["without_tvn"]


@pytest.mark.slow
def test_benchmark_command_prints_json(demo, capsys):
    import json

    from workbench.cli import main

    assert main(["benchmark", str(demo.path), "--json", "--permutations", "50",
                 "--no-write"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["relationship_recall"]["relationships"]["n_pairs_in_map"] > 0
    assert 0 <= out["replicate_consistency"]["fraction_consistent_p05"] <= 1


@pytest.mark.slow
def test_local_cluster_gives_the_same_features_as_the_local_run(tmp_path):
    from distributed import Client, LocalCluster

    from workbench.data.simulate import build_demo_study
    from workbench.models.vit_mae import MAEEncoder
    from workbench.tools.embed import extract_features

    study = build_demo_study(tmp_path / "t.study", "tiny", seed=1)
    images = study.read("images")
    enc = MAEEncoder("tiny", device="cpu", seed=3).build(images.crops)
    local = extract_features(images, enc, batch_size=32, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = extract_features(images, enc, batch_size=32, scheduler=client)
        ran_on = client.run(lambda: __import__("workbench.tools.embed", fromlist=["x"])
                            ._WorkerEncoder.token is not None)
        client.run(lambda: __import__("workbench.tools.embed", fromlist=["x"])
                   .clear_worker_cache())
        cleared = client.run(lambda: __import__("workbench.tools.embed", fromlist=["x"])
                             ._WorkerEncoder.encoder is None)
    assert sum(ran_on.values()) >= 1                        # the workers built the encoder
    assert all(cleared.values())
    assert local["mean"].shape == (len(images), 4, 64)
    np.testing.assert_allclose(remote["mean"], local["mean"], atol=1e-6)
    np.testing.assert_allclose(remote["cls"], local["cls"], atol=1e-6)


@pytest.mark.slow
@pytest.mark.realdata
def test_precomputed_lincs_profiles_enter_at_tvn(shared_data, tmp_path):
    from workbench.data.readers.profiles import import_profiles
    from workbench.tools.embed import normalize_study
    from workbench.tools.map_benchmarks import run_benchmarks

    study = import_profiles(shared_data / "lincs_cellpainting_profiles"
                            / "SQ00015054_normalized_feature_select.csv.gz", tmp_path / "l.study")
    normalize_study(study, label_key="moa", tvn_kw={"batch_center": False})
    prof = study.read("profiles")
    ctrl = prof.obs["is_control"].to_numpy(bool)
    assert "X_features" in prof.obsm and np.abs(prof.X[ctrl].mean(0)).max() < 1e-4
    pert = study.read("perturbations")
    assert pert.n_obs == 58 and pert.obsp["cosine"].shape == (58, 58)
    res = run_benchmarks(study, n_perm=200)
    assert res["retrieval_map"]["map"] > res["retrieval_map"]["null_mean"]


@pytest.mark.slow
@pytest.mark.realdata
def test_nf1_fields_tiny_mae_probe_never_splits_a_field(shared_data, tmp_path):
    """NF1 wild type vs null with folds grouped by field. There is ONE wild-type field, so
    when it is held out the probe has never seen a wild-type crop: a field-disjoint probe
    cannot score above chance here. The test checks that honesty (and the fold grouping);
    a within-field split is shown only as the optimistic, field-confounded contrast."""
    from workbench.data.readers.images import import_images
    from workbench.models.probe import grouped_folds, probe_accuracy
    from workbench.tools.embed import embed_study

    nf1 = shared_data / "cellpainting_images_wayscience" / "nf1_plate2"
    study = import_images(nf1, tmp_path / "nf1.study", nf1 / "platemap_NF1_plate2.csv",
                          perturbation_column="genotype", control="WT", plate="NF1_plate2",
                          crop_size=48)
    res = embed_study(study, size="tiny", train_steps=30, train_batch_size=32,
                      label="perturbation", progress=False, batch_size=64)
    probe = res["probe"]
    assert probe["group_key"] == "field_id" and len(probe["balanced_accuracy"]) == 4
    assert max(probe["balanced_accuracy"]) <= 0.5 + 1e-9      # one WT field: nothing to learn
    prof = study.read("profiles")
    fields = prof.obs["field_id"].astype(str).to_numpy()
    for train, test in grouped_folds(fields):
        assert not set(fields[train]) & set(fields[test])
    # the leaky contrast: random folds that mix crops of a field
    X = prof.obsm[f"X_mae_b{res['block']}"]
    y = prof.obs["perturbation"].astype(str).to_numpy()
    leaky = probe_accuracy(X, y, np.arange(len(y)) % 5)
    assert leaky["balanced_accuracy"] > 0.5


def test_local_embedding_keeps_no_module_level_encoder(tmp_path):
    """A local run embeds with the caller's encoder and leaves no cached model behind."""
    from workbench.data.simulate import build_demo_study
    from workbench.models.vit_mae import MAEEncoder
    from workbench.tools import embed

    study = build_demo_study(tmp_path / "t.study", "tiny", seed=1)
    images = study.read("images")
    enc = MAEEncoder("tiny", device="cpu", seed=3, bf16=False).build(images.crops)
    feats = embed.extract_features(images, enc, batch_size=64, progress=False)
    assert feats["mean"].shape == (len(images), 4, 64)
    np.testing.assert_array_equal(feats["mean"][:5], enc.extract(images.crops[:5])["mean"])
    assert embed._WorkerEncoder.encoder is None and embed._WorkerEncoder.token is None


@pytest.mark.slow
@pytest.mark.realdata
def test_nf1_fields_with_a_vit_s_sized_encoder_adapt_the_probe(shared_data, tmp_path):
    """132 crops, 384-dim blocks, folds of about 100 crops: the probe shrinks its PCA
    below the fold size instead of failing, and says so."""
    from workbench.data.readers.images import import_images
    from workbench.tools.embed import embed_study

    nf1 = shared_data / "cellpainting_images_wayscience" / "nf1_plate2"
    study = import_images(nf1, tmp_path / "nf1.study", nf1 / "platemap_NF1_plate2.csv",
                          perturbation_column="genotype", control="WT", plate="NF1_plate2",
                          crop_size=48)
    res = embed_study(study, size="small", train_steps=2, train_batch_size=16,
                      progress=False, batch_size=32, device="cpu")
    probe = res["probe"]
    assert len(probe["balanced_accuracy"]) == 12 and 1 <= res["block"] <= 12
    assert "components (of 384 dims" in probe["reduction"]
    low, high = (int(v) for v in probe["reduction"].split("PCA to ")[1].split(" ")[0].split("-"))
    assert high < 128 and low >= 90
    info = study.read("profiles").uns["workbench"]["embedding"]
    assert info["input_norm"]["source"] == "fitted while pretraining"
