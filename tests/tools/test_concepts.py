"""The concepts step on planted programs, on bad inputs, and the annotation on planted codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")
ad = pytest.importorskip("anndata")

from workbench.data.study import Study  # noqa: E402
from workbench.errors import ValidationError  # noqa: E402
from workbench.tools import concept_demo  # noqa: E402
from workbench.tools import concepts as C  # noqa: E402
from workbench.tools.concept_annotation import annotate, label_table, pages  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def planted_profiles(seed=0, d=32, n_programs=4, genes_per=3, cells=30, controls=40):
    """Profiles = nuisance (large, shared by controls) + batch shift + a gene's program.

    Each program is one random direction; the genes of a program move cells along it with
    per-cell variation. Returns the AnnData and {program: genes}.
    """
    rng = np.random.default_rng(seed)
    nuisance = rng.normal(size=(3, d))
    programs = rng.normal(size=(n_programs, d))
    programs /= np.linalg.norm(programs, axis=1, keepdims=True)
    rows, obs = [], []
    truth = {}
    for batch in ["b0", "b1"]:
        shift = 0.3 * rng.normal(size=d)
        for _ in range(controls):
            obs.append(("DMSO", True, batch))
        for p in range(n_programs):
            genes = [f"G{p}{g}" for g in range(genes_per)]
            truth[f"P{p}"] = genes
            for g in genes:
                for _ in range(cells // 2):
                    obs.append((g, False, batch))
        n_b = len(obs) - len(rows)
        base = (rng.normal(size=(n_b, 3)) * 3.0) @ nuisance + 0.3 * rng.normal(size=(n_b, d))
        rows.extend(base + shift)
    x = np.asarray(rows)
    obs = pd.DataFrame(obs, columns=["perturbation", "is_control", "batch"])
    for p, genes in enumerate(truth.values()):
        hit = obs["perturbation"].isin(genes).to_numpy()
        x[hit] += rng.uniform(1.5, 2.5, size=(hit.sum(), 1)) * programs[p] * 2.0
    obs["plate"] = obs["batch"]
    obs["well"] = [f"w{i}" for i in range(len(obs))]
    obs["moa"] = obs["perturbation"].str[:2].where(~obs["is_control"], None)
    obs.index = [f"cell{i}" for i in range(len(obs))]
    return ad.AnnData(X=x.astype(np.float32), obs=obs), truth


def make_study(tmp_path, adata, name="planted"):
    study = Study.create(tmp_path / f"{name}.study", control_label="DMSO")
    with study.step("import", params={}) as tx:
        tx.write_anndata("profiles", adata)
    return study


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    adata, truth = planted_profiles()
    study = make_study(tmp_path_factory.mktemp("concepts"), adata)
    summary = C.run_concepts(study, n_concepts=24, sparsity=2, max_steps=250, batch_size=256,
                             lr=1e-2, progress=False, seed=0)
    return study, truth, summary


def test_concepts_find_planted_programs(planted_run):
    study, truth, summary = planted_run
    concepts = study.read("concepts")
    profiles = study.read("profiles")
    codes = profiles.obsm["concepts_icfl"]
    assert codes.shape == (profiles.n_obs, 24)
    assert (np.asarray(codes != 0).sum(1) <= 2).all()
    sel = concepts.obsm["selectivity_perturbation"]
    levels = list(concepts.uns["workbench"]["labels"]["perturbation"]["levels"])
    pert = profiles.obs["perturbation"].astype(str).to_numpy()
    act = np.asarray(codes) != 0
    found = 0
    for genes in truth.values():
        mask = np.isin(pert, genes)
        prog_sel = act[mask].mean(0) - act[~mask].mean(0)
        best = int(prog_sel.argmax())
        if prog_sel[best] >= 0.5:
            found += 1
            drivers = concepts.obs["drivers"].iloc[best]
            assert any(g in drivers for g in genes), drivers
            cols = [levels.index(g) for g in genes]
            assert sel[best, cols].max() > 0.4
    assert found >= 3, found
    assert summary["perturbation_selective_0.5"] >= 3
    assert summary["moa_labels_enriched"] >= 3  # FDR-controlled enrichment per program label
    assert concepts.obs["dead"].mean() < 0.2


def test_concepts_artefact_layout(planted_run):
    study, _, _ = planted_run
    c = study.read("concepts")
    wb = c.uns["workbench"]
    assert "whitened" in wb["space"] and wb["profiles_key"] == "concepts_icfl"
    assert c.X.shape == (24, 32) and c.layers["input_space"].shape == (24, 32)
    np.testing.assert_allclose(np.linalg.norm(c.X, axis=1), 1, atol=1e-4)
    assert c.obsm["exemplar_top_index"].shape == (24, 8)
    assert c.obsm["activation_hist"].shape == (24, 20)
    assert set(wb["exemplars"]) == set(c.obs_names)
    # exemplars are the most active rows of their concept
    codes = np.asarray(study.read("profiles").obsm["concepts_icfl"])
    j = int(np.argmax(c.obs["frequency"]))
    top = c.obsm["exemplar_top_index"][j]
    assert codes[top[0], j] == codes[:, j].max()
    prov = study.provenance[-1]
    assert prov["tool"] == "concepts" and prov["params"]["whiten"] is True
    ck = study.path / ".checkpoints" / "concepts"
    assert not ck.exists() or not any(ck.iterdir())


def test_whitening_helps_against_nuisance(tmp_path):
    """Strong control-variable nuisance hides programs unless whitening removes it."""
    adata, truth = planted_profiles(seed=1)
    x = np.asarray(adata.X)
    is_control = adata.obs["is_control"].to_numpy(bool)
    pert = adata.obs["perturbation"].to_numpy()

    def best(codes):
        act = np.asarray(codes.todense()) != 0
        out = []
        for genes in truth.values():
            m = np.isin(pert, genes)
            out.append((act[m].mean(0) - act[~m].mean(0)).max())
        return np.array(out)

    kw = dict(n_concepts=24, sparsity=2, max_steps=250, batch_size=256, lr=1e-2,
              progress=False, seed=0)
    white = best(C.learn_concepts(x, is_control, whiten=True, **kw).codes)
    plain = best(C.learn_concepts(x, is_control, whiten=False, **kw).codes)
    assert white.mean() > plain.mean() + 0.1, (white, plain)


def test_bad_inputs_give_clear_errors(tmp_path):
    adata, _ = planted_profiles(cells=4, controls=4)
    x = np.asarray(adata.X)
    ctrl = adata.obs["is_control"].to_numpy(bool)
    with pytest.raises(ValidationError, match="no control"):
        C.learn_concepts(x, np.zeros_like(ctrl), n_concepts=4, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="only .* samples"):
        C.learn_concepts(x, ctrl, n_concepts=len(x) + 1, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="constant"):
        C.learn_concepts(np.ones_like(x), ctrl, n_concepts=4, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="constant"):
        x2 = x.copy()
        x2[:, 3] = 7.0
        C.check_inputs(x2, ctrl, 4, drop_constant=False)
    x2 = x.copy()
    x2[:, 3] = 7.0  # a constant feature is dropped by default, and recorded
    fit = C.learn_concepts(x2, ctrl, n_concepts=4, max_steps=2, progress=False)
    assert fit.metrics["n_features_dropped"] == 1 and "3" not in list(fit.features)
    x3 = x.copy()
    x3[2, 1] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        C.learn_concepts(x3, ctrl, n_concepts=4, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="whitening needs"):
        one = np.zeros_like(ctrl)
        one[0] = True
        C.learn_concepts(x, one, n_concepts=4, max_steps=2, progress=False)
    study = make_study(tmp_path, adata)
    with pytest.raises(ValidationError, match="obsm"):
        C.run_concepts(study, use_rep="X_missing", n_concepts=4, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="label column"):
        C.run_concepts(study, labels=["nope"], n_concepts=4, max_steps=2, progress=False)
    with pytest.raises(ValidationError, match="unknown concept method"):
        C.run_concepts(study, method="pca", n_concepts=4, max_steps=2, progress=False)


def test_annotation_on_planted_codes():
    """Concept 0 follows batch b1 (controls too): technical. Concept 1 is drug A's."""
    n = 200
    obs = pd.DataFrame({
        "perturbation": np.where(np.arange(n) < 60, "DMSO", np.where(np.arange(n) < 100, "A",
                                                                     "B")),
        "batch": np.where(np.arange(n) % 2 == 0, "b0", "b1"),
    })
    obs["is_control"] = obs["perturbation"] == "DMSO"
    obs["plate"] = obs["batch"]
    codes = np.zeros((n, 3), np.float32)
    codes[obs["batch"] == "b1", 0] = 1.0
    codes[obs["perturbation"] == "A", 1] = np.linspace(0.5, 2, 40)
    codes[::7, 2] = 0.3  # unspecific
    table, obsm, uns = annotate(sp.csr_matrix(codes), obs, is_control=obs["is_control"].to_numpy(),
                                control_label="DMSO", label_columns=["perturbation"])
    assert table["technical"].tolist() == [True, False, False]
    assert "controls differ by batch" in table["technical_reason"][0]
    assert table["drivers"][1].startswith("A (1.00)")
    assert table["perturbation_best_selectivity"][1] == pytest.approx(1.0)
    assert table["perturbation_best_q"][1] < 1e-10
    assert table["frequency"][0] == pytest.approx(0.5)
    q = obsm["enrichment_q_perturbation"]
    assert (q[2] > 0.05).all()
    top = obsm["exemplar_top_index"][1]
    assert top[0] == 99  # the largest activation of drug A's concept
    assert list(uns["labels"]["perturbation"]["levels"]) == ["A", "B", "DMSO"]


def test_selectivity_and_pages_definitions():
    act = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [1, 1]], np.float32))
    t = label_table(act, pd.Series(["x", "x", "y", "y"]))
    # concept 0: P(active|x)=1, P(active|y)=0.5
    assert t["selectivity"][0].tolist() == [0.5, -0.5]
    pg = pages(sp.csr_matrix(np.array([[0.0], [3.0], [1.0], [2.0]])), n_top=2)
    assert pg["top"][0].tolist() == [1, 3]
    assert pg["hist_counts"][0].sum() == 3


def test_tvn_profiles_are_not_whitened_a_second_time(tmp_path):
    """After TVN (a control whitening) the default run only centres and unit-normalises."""
    from workbench.tools.embed import normalize_study

    adata, _ = planted_profiles(seed=2)
    study = make_study(tmp_path, adata, "tvn")
    normalize_study(study)                      # the real step: X = TVN on controls
    kw = dict(n_concepts=12, sparsity=2, max_steps=60, batch_size=256, lr=1e-2,
              progress=False, seed=0)
    C.run_concepts(study, holdout="none", **kw)   # all samples: comparable with learn_concepts
    prov = study.provenance[-1]["params"]
    assert prov["whiten"] is False and prov["whiten_asked"] == "auto"
    assert "normalize" in prov["whitened_by"]
    c = study.read("concepts")
    assert bool(c.uns["workbench"]["whitening"]["whiten"]) is False
    assert "no whitening" in c.uns["workbench"]["space"]
    prof = study.read("profiles")
    x = np.asarray(prof.X, dtype=np.float32)
    ctrl = prof.obs["is_control"].to_numpy(bool)
    once = C.learn_concepts(x, ctrl, whiten=False, **kw).codes.toarray()
    twice = C.learn_concepts(x, ctrl, whiten=True, **kw).codes.toarray()
    assert not np.array_equal(once, twice)      # the data tell the two apart
    np.testing.assert_array_equal(np.asarray(prof.obsm["concepts_icfl"]), once)
    # the raw input features (an obsm key) are whitened, and an explicit choice wins
    C.run_concepts(study, use_rep="X_features", run="raw", **kw)
    assert study.provenance[-1]["params"]["whiten"] is True
    C.run_concepts(study, whiten=True, run="forced", **kw)
    assert study.provenance[-1]["params"]["whiten"] is True
    assert study.provenance[-1]["params"]["whiten_asked"] is True


def test_whitener_is_fitted_on_controls_only():
    """Perturbations move samples along axes the controls barely vary on, and controls vary
    most along a nuisance axis. Fitted on controls, the whitening amplifies the perturbation
    axes and shrinks the nuisance; fitted on all samples it would shrink the perturbation
    axes (their spread comes from the perturbations) and the separation collapses."""
    from workbench.models.dictionary import ControlWhitener

    rng = np.random.default_rng(0)
    d, n_ctrl, n_pert = 8, 60, 240
    scale = np.full(d, 0.3)
    scale[0] = 3.0                                 # nuisance: controls vary along axis 0
    ctrl = rng.normal(size=(n_ctrl, d)) * scale
    pert = rng.normal(size=(n_pert, d)) * scale
    label = np.repeat(["A", "B"], n_pert // 2)
    pert[label == "A", 1] += 2.0
    pert[label == "B", 2] += 2.0
    x = np.vstack([ctrl, pert]).astype(np.float32)
    is_control = np.r_[np.ones(n_ctrl, bool), np.zeros(n_pert, bool)]
    names = np.r_[np.full(n_ctrl, "ctrl"), label]

    def separation(xw):
        """Share of a perturbed sample's (unit) norm along its own perturbation axis."""
        return min(float((xw[names == g, axis] ** 2).mean()) for g, axis in (("A", 1), ("B", 2)))

    fit = C.learn_concepts(x, is_control, n_concepts=4, sparsity=1, max_steps=20,
                           batch_size=128, lr=1e-2, progress=False, seed=0)
    wrong = ControlWhitener(shrinkage=0.1).fit(x).transform(x)   # the pitfall
    assert fit.whitener.n_controls_ == n_ctrl
    np.testing.assert_allclose(fit.whitener.mean_, x[is_control].mean(0), rtol=1e-5, atol=1e-6)
    assert separation(fit.x) > 1.5 * separation(wrong), (separation(fit.x), separation(wrong))
    assert separation(fit.x) > 0.6


def test_demo_check_stores_arrays_that_read_back_as_arrays(tmp_path):
    """The demo check's recovery table and the step's lists come back as real arrays."""
    adata, truth = planted_profiles(seed=3, n_programs=2)
    study = make_study(tmp_path, adata, "demo")
    genes = sorted({g for gs in truth.values() for g in gs})
    with study.step("truth", params={}) as tx:
        tx.write_json("ground_truth", {"genes": genes, "groups": truth,
                                       "effect_genes": genes})
    concept_demo.demo_step(study, "tiny", seed=0)
    wb = study.read("concepts").uns["workbench"]
    rec = wb["demo"]["program_recovery"]
    assert set(rec) >= {"module", "best_concept", "selectivity", "recovered",
                        "probe_balanced_accuracy"}
    assert ((rec["probe_balanced_accuracy"] >= 0) & (rec["probe_balanced_accuracy"] <= 1)).all()
    for key, value in rec.items():
        assert isinstance(value, np.ndarray) and value.shape == (2,), (key, value)
    assert rec["recovered"].dtype == bool
    assert np.issubdtype(rec["selectivity"].dtype, np.floating)
    concepts = set(study.read("concepts").obs_names)
    assert all(str(v) in concepts for v in rec["best_concept"])
    assert sorted(map(str, rec["module"])) == sorted(truth)
    assert isinstance(wb["params"]["labels"], np.ndarray)
    assert isinstance(wb["whitening"]["eigenvalues"], np.ndarray)
    # raw planted profiles: the demo and the library default both whiten, once
    assert bool(wb["whitening"]["whiten"]) and wb["demo"]["second_whitening"] is False
    note = study.provenance[-1]["notes"]
    assert note["programs"] == 2 and 0 <= note["programs_recovered"] <= 2


def test_command_whitening_flags():
    from workbench.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["concepts", "s.study"]).whiten is None          # decided from the data
    assert parse(["concepts", "s.study", "--whiten"]).whiten is True
    assert parse(["concepts", "s.study", "--no-whiten"]).whiten is False
    with pytest.raises(SystemExit):
        parse(["concepts", "s.study", "--whiten", "--no-whiten"])
