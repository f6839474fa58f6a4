"""The GRN step on the demo world (planted network) and on the pancreas data."""

import numpy as np
import pytest

from workbench.data.study import Study

ENDOCRINE_TFS = ["Neurog3", "Neurod1", "Pax4", "Arx", "Pdx1", "Nkx6-1", "Nkx2-2", "Pax6",
                 "Isl1", "Mafb", "Mafa", "Insm1", "Sox9", "Hes1", "Foxa2", "Foxa3", "Hnf1b",
                 "Rfx6", "Myt1", "Fev", "Gata6", "St18", "Prdm16", "Glis3", "Hnf4a", "Tox3"]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory):
    from workbench.data.simulate.build import velocity_anndata
    from workbench.data.simulate.world import make_world

    world = make_world(0, "quick")
    study = Study.create(tmp_path_factory.mktemp("grn") / "demo.study", title="grn test")
    with study.step("simulate", seed=0) as tx:
        tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([0, 3])),
                         screen=False)
        tx.write_json("ground_truth", world.ground_truth())
    return study


@pytest.mark.slow
def test_grn_step_on_demo_world_writes_posterior_and_beats_chance(demo_study):
    from workbench.tools.grn import run_grn

    info = run_grn(demo_study, n_steps=80, n_envs=32, n_samples=300, n_boot=5, method="dyngfn",
                   device="cpu")
    study = Study.open(demo_study.path)
    grn = study.read("grn")
    genes = info["settings"]["genes"]
    assert list(grn.var_names) == genes and grn.n_obs == 400
    assert {"spliced", "unspliced", "velocity"} <= set(grn.layers)
    p = grn.varp["edge_probability"]
    assert p.shape == (len(genes), len(genes)) and 0 <= p.min() and p.max() <= 1
    assert "baseline_edge_probability" in grn.varp
    samples = np.asarray(study.read("grn_samples"))
    assert samples.shape == (300, len(genes), len(genes))
    assert np.allclose(samples.mean(0), p, atol=1e-6)
    m = grn.uns["workbench"]["metrics"]
    # the planted network (plus decay self-loops) is found far above chance, and the
    # transposed network is not: the orientation is right
    truth = np.asarray(study.read("ground_truth")["adjacency"]) > 0
    off = ~np.eye(len(genes), dtype=bool)
    from workbench.tools.grn_metrics import edge_auc

    auc = edge_auc(p, truth, off)["auroc"]
    assert m["dyngfn"]["auroc"] > 0.75 and auc > 0.7
    assert edge_auc(p, truth.T, off)["auroc"] < auc - 0.1
    assert np.isfinite(m["dyngfn"]["kl_pstar_q"]) and np.isfinite(m["baseline"]["kl_pstar_q"])
    assert study.provenance[-1]["tool"] == "grn"
    # the same settings again: training resumes from its finished checkpoint, same posterior
    run_grn(study, n_steps=80, n_envs=32, n_samples=300, n_boot=5, method="dyngfn", device="cpu")
    again = Study.open(demo_study.path).read("grn").varp["edge_probability"]
    assert np.array_equal(again, p)


def test_auto_screens_candidates_beyond_the_enumeration_limit(demo_study, monkeypatch):
    # the screened posterior through the real step, where "auto" would pick it for a large
    # panel: settings recorded, a schema-valid artefact, ranking and sparsity held
    import workbench.tools.grn as grn_tool
    from workbench.tools.grn_metrics import edge_auc

    monkeypatch.setattr(grn_tool, "EXACT_LIMIT", 10)
    info = grn_tool.run_grn(demo_study, n_samples=400, n_boot=5, n_candidates=6, device="cpu")
    s = info["settings"]
    assert s["method"] == "screened" and s["max_parents"] == grn_tool.SCREEN_MAX_PARENTS
    assert s["n_candidates"] == 6 and s["outside_mass"] >= 0
    study = Study.open(demo_study.path)
    study.validate(deep=True)  # raises, naming the key, when the artefact does not match
    grn = study.read("grn")
    assert grn.uns["workbench"]["settings"]["method"] == "screened"
    genes = s["genes"]
    truth = np.asarray(study.read("ground_truth")["adjacency"]) > 0
    truth = truth | np.eye(len(genes), dtype=bool)
    p = grn.varp["edge_probability"]
    every = np.ones_like(truth)
    auc = edge_auc(p, truth, every)["auroc"]
    base = edge_auc(grn.varp["baseline_edge_probability"], truth, every)["auroc"]
    assert auc > 0.85 and auc >= base - 0.02, (auc, base)
    assert truth.sum() / 1.5 <= info["mean_edges_per_sample"] <= 1.5 * truth.sum()
    samples = np.asarray(study.read("grn_samples"))
    assert np.abs(samples.mean(0) - p).max() < 0.1
    weights = np.asarray(study.read("grn_sample_weights"))
    assert ((weights != 0) == (samples > 0)).all()
    assert grn_tool.density_warnings(info) == []  # a sparse world raises no warning


def test_density_warnings_name_a_full_parent_cap_and_a_large_one_step_share():
    from workbench.tools.grn import density_warnings

    genes = [f"g{i}" for i in range(10)]
    sparse = {"settings": {"method": "exact", "genes": genes, "max_parents": 4},
              "mean_edges_per_sample": 25.0}
    assert density_warnings(sparse) == []
    full = {**sparse, "mean_edges_per_sample": 36.0}
    (only,) = density_warnings(full)
    assert "3.6 of 4 parents" in only
    outside = {"settings": {"method": "screened", "genes": genes, "max_parents": 6,
                            "outside_mass": 20.0}, "mean_edges_per_sample": 50.0}
    (msg,) = density_warnings(outside)
    assert "2.0 of the 5.0 edges per gene" in msg and "--candidates" in msg
    both = {**outside, "mean_edges_per_sample": 70.0}
    assert len(density_warnings(both)) == 2
    assert density_warnings({"settings": {"method": "dyngfn", "genes": genes,
                                          "max_parents": 4},
                             "mean_edges_per_sample": 40.0}) == []


def test_exact_grn_step_on_demo_world_is_sparse_and_records_its_settings(demo_study):
    from workbench.tools.grn import run_grn
    from workbench.tools.grn_metrics import edge_auc

    info = run_grn(demo_study, n_samples=400, n_boot=5, device="cpu")
    s = info["settings"]
    assert s["method"] == "exact" and s["max_parents"] == 4
    study = Study.open(demo_study.path)
    grn = study.read("grn")
    genes = s["genes"]
    stored = grn.uns["workbench"]["settings"]
    # the settings chosen from the data are in the artefact
    assert len(stored["temperature"]) == len(genes) and 0 < stored["edge_prior"] < 0.5
    assert 1 <= stored["n_effective"] <= grn.n_obs and stored["ridge"] > 0
    p = grn.varp["edge_probability"]
    truth = np.asarray(study.read("ground_truth")["adjacency"]) > 0
    truth = truth | np.eye(len(genes), dtype=bool)
    # sparse: mean edges per sample within 1.5x of the planted count (decay self-loops in)
    edges = info["mean_edges_per_sample"]
    assert truth.sum() / 1.5 <= edges <= 1.5 * truth.sum(), (edges, truth.sum())
    every = np.ones_like(truth)
    auc = edge_auc(p, truth, every)["auroc"]
    base = edge_auc(grn.varp["baseline_edge_probability"], truth, every)["auroc"]
    assert auc > 0.85 and auc >= base - 0.02, (auc, base)
    assert edge_auc(p, truth.T, every)["auroc"] < auc - 0.1
    # confident edges are right: reliability of the p >= 0.8 bin
    hi = p >= 0.8
    assert hi.sum() >= 5 and truth[hi].mean() >= 0.8
    samples = np.asarray(study.read("grn_samples"))
    assert samples.shape == (400, len(genes), len(genes)) and samples.sum(-1).max() <= 4
    assert np.abs(samples.mean(0) - p).max() < 0.1
    assert info["metrics"]["exact"]["bayes_shd"] < info["metrics"]["baseline"]["bayes_shd"]
    # every sample carries its fitted weights: non-zero exactly on its edges, and the
    # confident edges have the planted sign (activating / repressing)
    weights = np.asarray(study.read("grn_sample_weights"))
    assert weights.shape == samples.shape
    assert ((weights != 0) == (samples > 0)).all()
    true_w = np.asarray(study.read("velocity").varp["true_weights"])
    w_mean = grn.varp["edge_weight"]
    share = grn.varp["edge_positive_share"]
    sure = (p >= 0.5) & ~np.eye(len(genes), dtype=bool) & (true_w != 0)
    assert sure.sum() >= 4
    assert (np.sign(w_mean[sure]) == np.sign(true_w[sure])).all()
    assert ((share[sure] > 0.5) == (true_w[sure] > 0)).all()
    assert (np.diag(w_mean)[np.diag(hi)] < 0).all()  # decay: each gene represses itself


def test_unknown_gene_is_a_clear_error(demo_study):
    from workbench.errors import UnknownGeneError
    from workbench.tools.grn import run_grn

    with pytest.raises(UnknownGeneError, match="NOPE"):
        run_grn(demo_study, genes=["NOPE", "G01"], n_steps=1)


@pytest.mark.slow
def test_grn_on_pancreas_tfs_against_beeline_and_dorothea(shared_data, tmp_path):
    from workbench.data.readers.velocity import read_velocity
    from workbench.tools.grn import run_grn
    from workbench.tools.grn_metrics import read_edge_list

    adata = read_velocity(shared_data / "rna_velocity_small" / "pancreas_veloviz_739cells.h5ad")
    study = Study.create(tmp_path / "pancreas.study", title="pancreas")
    with study.step("import", seed=0) as tx:
        tx.write_anndata("velocity", adata, screen=False)
    refs = {
        "beeline_nonspecific_chip": read_edge_list(
            shared_data / "beeline_reference_networks" / "mouse" /
            "Non-Specific-ChIP-seq-network.csv.gz"),
        "dorothea_ABC": read_edge_list(shared_data / "dorothea_regulons" / "dorothea_mm.tsv.gz"),
    }
    info = run_grn(study, tf_list=ENDOCRINE_TFS, n_top=16, n_steps=60, n_envs=32,
                   n_samples=300, n_boot=5, references=refs, device="cpu")
    genes = info["settings"]["genes"]
    assert 10 <= len(genes) <= 20 and info["settings"]["velocity_source"] == "steady_state"
    grn = Study.open(study.path).read("grn")
    p = grn.varp["edge_probability"]
    base = grn.varp["baseline_edge_probability"]
    # the GFlowNet and the bootstrap baseline read the same data the same way round
    off = ~np.eye(len(genes), dtype=bool)
    r = np.corrcoef(p[off], base[off])[0, 1]
    r_flipped = np.corrcoef(p[off], base.T[off])[0, 1]
    print("pancreas", genes, "corr", r, r_flipped, info["reference_metrics"])
    assert r > 0.2 and r > r_flipped + 0.1
    for who in info["reference_metrics"]:  # the method used (exact where it fits) and the baseline
        for name, m in info["reference_metrics"][who].items():
            assert 0 < m["p_auroc"] <= 1 and m["n_edges"] > 0, (who, name)
