"""The concepts step's saved model, held-out split, up-front lock and precomputed pages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
ad = pytest.importorskip("anndata")

from workbench.data.study import Study  # noqa: E402
from workbench.errors import StudyBusyError, ValidationError  # noqa: E402
from workbench.tools import concepts as C  # noqa: E402
from workbench.tools.concept_eval import split_rows  # noqa: E402
from workbench.tools.concept_encode import encode_study  # noqa: E402
from workbench.tools.concept_model import (  # noqa: E402
    activation_correlation,
    load_model,
    match_concepts,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")
KW = dict(n_concepts=12, sparsity=2, max_steps=150, batch_size=256, lr=1e-2, progress=False)


def world(seed=0, d=16, n_programs=3, cells=24, controls=40, effect=2.5):
    """Controls vary along a strong nuisance axis; each program's two genes move cells
    along the program's own direction. Two replicates per sample group."""
    rng = np.random.default_rng(seed)
    nuisance = rng.normal(size=(2, d))
    programs = np.linalg.qr(rng.normal(size=(d, n_programs)))[0].T
    obs = [("DMSO", True)] * controls
    for p in range(n_programs):
        for g in range(2):
            obs += [(f"G{p}{g}", False)] * cells
    obs = pd.DataFrame(obs, columns=["perturbation", "is_control"])
    n = len(obs)
    x = (rng.normal(size=(n, 2)) * 3.0) @ nuisance + 0.3 * rng.normal(size=(n, d))
    for p in range(n_programs):
        hit = obs["perturbation"].str.startswith(f"G{p}").to_numpy()
        x[hit] += effect * rng.uniform(0.8, 1.2, size=(hit.sum(), 1)) * programs[p]
    obs["batch"] = "b0"
    obs["plate"] = "p0"
    obs["well"] = [f"w{i}" for i in range(n)]
    obs["moa"] = obs["perturbation"].str[:2].where(~obs["is_control"], None)
    obs.index = [f"s{i}" for i in range(n)]
    return ad.AnnData(X=x.astype(np.float32), obs=obs), programs


def make_study(path, adata):
    study = Study.create(path, control_label="DMSO")
    with study.step("import", params={}) as tx:
        tx.write_anndata("profiles", adata)
    return study


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    adata, programs = world()
    study = make_study(tmp_path_factory.mktemp("cm") / "a.study", adata)
    summary = C.run_concepts(study, seed=0, **KW)
    return study, adata, summary


def test_holdout_is_recorded_and_whitener_sees_training_controls_only(fitted):
    study, adata, summary = fitted
    c = study.read("concepts")
    held = c.uns["workbench"]["heldout"]
    assert held["split"] == "replicate" and study.provenance[-1]["params"]["holdout"] == "replicate"
    rows = np.asarray(held["rows"])
    n = adata.n_obs
    assert held["n_train"] + held["n_heldout"] == n and len(rows) == held["n_heldout"]
    # half of every perturbation's samples is held out, controls included
    pert = adata.obs["perturbation"].to_numpy()
    for p in np.unique(pert):
        k = (pert == p).sum()
        assert (pert[rows] == p).sum() == k // 2
    m = held["metrics"]
    assert {"r2", "dead_fraction", "dense_fraction", "moa_selective_0.5"} <= set(m)
    assert m["n_samples"] == len(rows) and 0 < m["r2"] <= 1
    assert summary["heldout_r2"] == pytest.approx(m["r2"])
    # controls are not a label of the held-out selectivity: three programs, three MOAs
    assert m["moa_n_labels"] == 3
    model = load_model(study)
    train = np.setdiff1d(np.arange(n), rows)
    ctrl = adata.obs["is_control"].to_numpy(bool)
    train_ctrl = train[ctrl[train]]
    assert model.whitener.n_controls_ == len(train_ctrl)
    np.testing.assert_allclose(model.whitener.mean_, np.asarray(adata.X)[train_ctrl].mean(0),
                               rtol=1e-4, atol=1e-5)


def test_step_whitener_fitted_on_all_samples_would_change_the_answer(tmp_path, monkeypatch):
    """Strong programs dominate the all-sample covariance but not the controls': whitening
    fitted on all samples shrinks the program directions. The saved whitener must give the
    control-fitted separation, and a whitener fitted on all samples measurably less."""
    from workbench.models.dictionary import ControlWhitener

    adata, programs = world(seed=4, effect=6.0)
    study = make_study(tmp_path / "w.study", adata)
    C.run_concepts(study, seed=0, holdout="none", **KW)
    x = np.asarray(adata.X)
    hit = ~adata.obs["is_control"].to_numpy(bool)

    def along_programs(xw):
        return float((np.abs(xw[hit] @ programs.T).max(axis=1) ** 2).mean())

    saved = along_programs(load_model(study).prepare(x))
    right = along_programs(ControlWhitener().fit(x[~hit]).transform(x))
    wrong = along_programs(ControlWhitener().fit(x).transform(x))
    assert saved == pytest.approx(right, rel=1e-4)
    assert right > wrong + 0.2, (right, wrong)


def test_saved_model_encodes_like_the_step(fitted):
    study, adata, _ = fitted
    model = load_model(study)
    assert model.concept_ids == list(study.read("concepts").obs_names)
    assert model.doc["params"]["pursuit"] == "signed" and model.doc["version"] == 1
    codes = model.encode(np.asarray(adata.X)).toarray()
    np.testing.assert_allclose(codes, np.asarray(study.read("profiles").obsm["concepts_icfl"]),
                               atol=1e-5)
    assert ((codes != 0).sum(axis=1) == 2).all()       # exactly --sparsity nonzeros
    folder = study.artefact_path("concept_model")
    assert {p.name for p in folder.iterdir()} == {"tensors.safetensors", "model.json"}


def test_encode_a_second_study_keeps_ids_and_activations(fitted, tmp_path):
    study, adata, _ = fitted
    other, _ = world(seed=0)        # same world, new replicate noise: a second plate
    rng = np.random.default_rng(9)
    other.X = other.X + 0.05 * rng.normal(size=other.X.shape).astype(np.float32)
    second = make_study(tmp_path / "b.study", other)
    summary = encode_study(second, study)
    c1, c2 = study.read("concepts"), second.read("concepts")
    assert list(c1.obs_names) == list(c2.obs_names)
    np.testing.assert_allclose(c1.X, c2.X)
    assert c2.uns["workbench"]["source_model"]["study"] == "a.study"
    codes1 = study.read("profiles").obsm["concepts_icfl"]
    codes2 = second.read("profiles").obsm["concepts_icfl"]
    corr = activation_correlation(codes1, adata.obs["perturbation"], codes2,
                                  other.obs["perturbation"])
    live = ~np.isnan(corr)
    assert live.sum() >= 3 and np.median(corr[live]) > 0.9, corr
    assert summary["r2"] > 0.3
    prov = second.provenance[-1]
    assert prov["tool"] == "concepts_encode" and prov["params"]["model_study"] == "a.study"
    # features are aligned by name: a missing feature is a clear error
    bad = make_study(tmp_path / "c.study", other[:, 1:].copy())
    with pytest.raises(ValidationError, match="lacks 1 of the model's"):
        encode_study(bad, study)
    with pytest.raises(ValidationError, match="no saved concept model"):
        encode_study(study, bad)


@pytest.mark.slow
def test_encode_command_on_a_dask_cluster_equals_the_local_run(fitted, tmp_path):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    from workbench.cli import main

    study, adata, _ = fitted
    local = make_study(tmp_path / "local.study", adata.copy())
    remote = make_study(tmp_path / "remote.study", adata.copy())
    expect = encode_study(local, study, chunk_size=25)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(["concepts", "encode", str(remote.path), "--model", str(study.path),
                     "--chunk-size", "25", "--scheduler", cluster.scheduler_address]) == 0
        assert "encode_block" in cluster.scheduler.task_prefixes   # encoded on the workers
    prov = Study.open(remote.path).provenance[-1]
    assert prov["params"]["scheduler"] == cluster.scheduler_address
    codes = [Study.open(s.path).read("profiles").obsm["concepts_icfl"] for s in (local, remote)]
    np.testing.assert_allclose(codes[1], codes[0], atol=1e-6)
    # several chunks: the 184 profiles in chunks of 25
    assert adata.n_obs == 184 and expect["n_chunks"] == 8 and prov["notes"]["n_chunks"] == 8
    np.testing.assert_allclose(codes[0], np.asarray(study.read("profiles").obsm["concepts_icfl"]),
                               atol=1e-5)


def test_step_writes_each_concepts_stability_to_obs_pages_and_provenance(fitted):
    study, _, _ = fitted
    c = study.read("concepts")
    pages = study.read("concept_pages")
    stab = c.obs["stability"].to_numpy()
    assert c.uns["workbench"]["stability"]["seeds"] == [1] == pages["stability"]["seeds"]
    assert study.provenance[-1]["params"]["stability_seeds"] == 1
    for cid, value in zip(c.obs_names, stab, strict=True):
        assert pages["concepts"][cid]["stability"] == pytest.approx(value, abs=1e-5)
    assert np.isfinite(stab).all() and (stab <= 1 + 1e-5).all()
    with pytest.raises(ValidationError, match="stability_seeds"):
        C.run_concepts(study, stability_seeds=-1, **KW)


def test_planted_concepts_are_stable_across_seeds_and_a_shuffled_control_is_not():
    from workbench.tools.concept_model import seed_stability

    rng = np.random.default_rng(0)
    d = 16
    programs = np.linalg.qr(rng.normal(size=(d, 3)))[0].T
    x = 0.2 * rng.normal(size=(240, d))
    for p in range(3):                                   # 60 controls, then 3 x 60 planted
        x[60 + 60 * p:120 + 60 * p] += 3.0 * programs[p]
    ctrl = np.arange(240) < 60
    fit = C.learn_concepts(x.astype(np.float32), ctrl, n_concepts=8, sparsity=1,
                           max_steps=120, batch_size=128, lr=1e-2, progress=False,
                           device="cpu")
    stab, record = C._stability(fit, 0, 2)
    assert record["seeds"] == [1, 2]
    cos = fit.whitener.inverse_direction(fit.model.components_) @ programs.T
    best = cos.argmax(axis=0)
    assert (cos.max(axis=0) > 0.9).all(), cos.max(axis=0)
    assert (stab[best] >= 0.9).all(), stab[best]
    others = np.setdiff1d(np.arange(8), best)           # concepts carved out of noise
    assert stab[others].max() < 0.8, stab
    # the same dictionary in another order is fully stable (the match, not the row);
    # atoms shuffled over their features are a control that matches nothing
    atoms = fit.model.components_
    same = seed_stability(atoms, [atoms[rng.permutation(8)]])
    np.testing.assert_allclose(same, 1.0, atol=1e-5)
    shuffled = [np.stack([rng.permutation(a) for a in atoms]) for _ in range(2)]
    assert (seed_stability(atoms, shuffled)[best] < 0.6).all()


def test_match_concepts_is_a_one_to_one_assignment():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 10))
    perm = rng.permutation(6)
    b = a[perm] + 0.01 * rng.normal(size=(6, 10))
    m = match_concepts(a, b, [f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)])
    assert len(m) == 6 and m["concept_b"].is_unique
    inv = np.argsort(perm)
    assert m["concept_b"].tolist() == [f"b{inv[i]}" for i in range(6)]
    assert (m["cosine"] > 0.99).all()
    # a greedy best match would give two concepts the same partner; Hungarian cannot
    a2 = np.array([[1.0, 0.0], [0.9, 0.1]])
    b2 = np.array([[1.0, 0.05], [0.0, 1.0]])
    m2 = match_concepts(a2, b2)
    assert m2["concept_b"].is_unique
    assert match_concepts(a, -a, signed=False)["cosine"].min() > 0.99
    assert match_concepts(a, -a)["cosine"].max() < 0.99


def test_step_locks_its_outputs_before_fitting(tmp_path, monkeypatch):
    adata, _ = world(seed=1)
    study = make_study(tmp_path / "l.study", adata)
    calls = []
    monkeypatch.setattr(C, "learn_concepts", lambda *a, **k: calls.append(1))
    other = Study.open(study.path)
    with other.step("concepts", params={}, outputs=["concepts"]):
        with pytest.raises(StudyBusyError, match="busy"):
            C.run_concepts(study, seed=0, **KW)
    assert calls == []                      # refused before any fitting


def test_split_rules():
    obs = pd.DataFrame({"perturbation": ["A"] * 6 + ["DMSO"] * 4,
                        "is_control": [False] * 6 + [True] * 4,
                        "dose": [1, 1, 2, 2, 3, 3, 0, 0, 0, 0], "plate": ["p1"] * 10})
    held = split_rows(obs, "dose", seed=0)
    assert held[:6].tolist() == [False, False, True, True, False, False]
    assert held[6:].sum() == 2
    assert split_rows(obs, "replicate", seed=0)[:6].sum() == 3
    assert not split_rows(obs, "none").any()
    with pytest.raises(ValidationError, match="one plate"):
        split_rows(obs, "plate")
    obs["plate"] = ["p1"] * 5 + ["p2"] * 5
    assert split_rows(obs, "plate").tolist() == [False] * 5 + [True] * 5
    with pytest.raises(ValidationError, match="unknown held-out split"):
        split_rows(obs, "well")


def test_command_encode_and_flags():
    from workbench.cli import build_parser

    parse = build_parser().parse_args
    a = parse(["concepts", "encode", "b.study", "--model", "a.study"])
    assert (a.study, a.target, a.model) == ("encode", "b.study", "a.study")
    a = parse(["concepts", "s.study", "--pursuit", "abs_refit", "--holdout", "dose"])
    assert (a.pursuit, a.holdout, a.target) == ("abs_refit", "dose", None)
    assert parse(["concepts", "s.study"]).pursuit == "signed"
    a = parse(["concepts", "encode", "b.study", "--model", "a.study", "--scheduler",
               "tcp://h:8786", "--chunk-size", "100"])
    assert (a.scheduler, a.chunk_size) == ("tcp://h:8786", 100)


def test_pages_list_only_significant_drivers_and_escape_study_text():
    import scipy.sparse as sp

    from workbench.tools.concept_annotation import annotate
    from workbench.tools.concept_pages import build_pages

    n = 120
    pert = np.where(np.arange(n) < 40, "DMSO", np.where(np.arange(n) < 80, "<b>A</b>", "B"))
    obs = pd.DataFrame({"perturbation": pert, "is_control": pert == "DMSO",
                        "batch": "b0", "plate": "p0"}, index=[f"s{i}" for i in range(n)])
    codes = np.zeros((n, 2), np.float32)
    codes[40:80, 0] = np.linspace(0.5, 2.0, 40)          # concept 0: drug "<b>A</b>"'s
    codes[::9, 1] = 0.3                                 # concept 1: spread, no driver
    table, obsm, uns = annotate(sp.csr_matrix(codes), obs, is_control=obs["is_control"].to_numpy(),
                                control_label="DMSO", label_columns=["perturbation"])
    doc = build_pages(sp.csr_matrix(codes), obs, ["c0", "c1"], np.eye(2), table, obsm,
                      uns["labels"], control_label="DMSO")
    p0, p1 = doc["concepts"]["c0"], doc["concepts"]["c1"]
    assert p0["driver_state"] == "significant" and p0["drivers"][0]["perturbation"] == "<b>A</b>"
    assert p0["drivers"][0]["q"] < 0.05
    assert p0["top"][0] == {"id": "s79", "row": 79, "activation": 2.0, "perturbation": "<b>A</b>"}
    assert [q["quantile"] for q in p0["quantiles"]] == doc["quantiles"]
    assert p1["driver_state"] == "none" and p1["drivers"] == []
    assert p1["best_candidate"]["q"] >= 0.05
    assert all(d["perturbation"] != "DMSO" for p in (p0, p1) for d in p["drivers"])
    assert p0["similar"][0]["concept"] == "c1"
    pytest.importorskip("panel")
    from workbench.dashboards.concepts import drivers_markdown

    text = drivers_markdown(p0)
    assert "Driving perturbations" in text and "<b>" not in text and "&lt;b&gt;" in text
    assert drivers_markdown(p1).startswith("**No significant driver**")


def test_linear_probe_tells_visible_from_invisible_programs():
    pytest.importorskip("sklearn")
    from workbench.tools.concept_demo import probe_accuracy

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    visible = x[:, 0] + 0.2 * rng.normal(size=200) > 0.5
    invisible = rng.random(200) < 0.3            # unrelated to the features
    assert probe_accuracy(x, visible) > 0.85
    assert abs(probe_accuracy(x, invisible) - 0.5) < 0.15
