"""The concepts step on real profiles: a LINCS Cell Painting plate and DeepProfiler cells."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anndata")

from workbench.tools import concepts as C  # noqa: E402
from workbench.tools.concept_annotation import annotate  # noqa: E402

pytestmark = [pytest.mark.realdata, pytest.mark.usefixtures("torch_one_thread")]

LINCS = "lincs_cellpainting_profiles/SQ00015054_normalized_feature_select.csv.gz"
DEEPPROFILER = "lincs_cellpainting_profiles/deepprofiler_SQ00014812_A01_site5_efficientnet.npz"


@pytest.fixture(scope="module")
def lincs_study(shared_data, tmp_path_factory):
    from workbench.data.readers.profiles import import_profiles

    path = shared_data / LINCS
    if not path.is_file():
        pytest.skip(f"{LINCS} is not in the public data folder")
    return import_profiles(path, tmp_path_factory.mktemp("lincs") / "lincs.study")


@pytest.mark.slow
def test_lincs_concepts_are_selective_for_moas(lincs_study):
    summary = C.run_concepts(lincs_study, n_concepts=32, sparsity=2, max_steps=300,
                             batch_size=384, lr=1e-2, progress=False, seed=0)
    concepts = lincs_study.read("concepts")
    assert "moa" in concepts.uns["workbench"]["labels"]
    # 384 wells, ~50 MOAs with 6-12 replicate wells: many concepts pick out one MOA
    assert summary["moa_selective_0.5"] >= 10, summary
    assert summary["moa_labels_enriched"] >= 15, summary
    assert summary["dead_fraction"] <= 0.1
    assert concepts.obs["technical"].sum() == 0  # one plate, one batch: nothing to flag
    # the atoms map back to CellProfiler feature names
    assert concepts.var_names[0].startswith(("Cells_", "Cytoplasm_", "Nuclei_"))
    assert concepts.obs["top_features"].str.contains("_").all()
    # FDR control: the same codes against permuted MOA labels give (almost) no enrichment
    profiles = lincs_study.read("profiles")
    codes = profiles.obsm["concepts_icfl"]
    obs = profiles.obs.copy()
    rng = np.random.default_rng(0)
    treated = ~obs["is_control"].to_numpy(bool)
    moa = obs["moa"].astype(object).to_numpy()
    moa[treated] = rng.permutation(moa[treated])
    obs["moa"] = moa
    _, obsm, _ = annotate(codes, obs, is_control=~treated, control_label="DMSO",
                          label_columns=["moa"])
    assert (obsm["enrichment_q_moa"] < 0.05).any(axis=0).sum() <= 2


@pytest.mark.slow
def test_lincs_without_whitening_runs_and_is_recorded(lincs_study):
    summary = C.run_concepts(lincs_study, n_concepts=32, sparsity=2, max_steps=300,
                             batch_size=384, lr=1e-2, whiten=False, run="icfl_nowhite",
                             progress=False, seed=0)
    concepts = lincs_study.read("concepts")
    assert concepts.uns["workbench"]["whitening"]["whiten"] is False
    assert "no whitening" in concepts.uns["workbench"]["space"]
    assert "concepts_icfl_nowhite" in lincs_study.read("profiles").obsm
    assert summary["moa_labels_enriched"] >= 5


def test_deepprofiler_cells_run_through_the_step(shared_data, tmp_path):
    from workbench.data.readers.profiles import import_profiles

    path = shared_data / DEEPPROFILER
    if not path.is_file():
        pytest.skip(f"{DEEPPROFILER} is not in the public data folder")
    study = import_profiles(path, tmp_path / "dp.study")
    summary = C.run_concepts(study, n_concepts=16, sparsity=2, max_steps=60, batch_size=158,
                             progress=False, seed=0)
    concepts = study.read("concepts")
    codes = study.read("profiles").obsm["concepts_icfl"]
    assert codes.shape == (158, 16)
    assert concepts.shape == (16, 6400)
    assert np.isfinite(concepts.X).all() and np.isfinite(concepts.layers["input_space"]).all()
    # every cell is a DMSO control: whitening on the 79 training cells (half of 158, the
    # default replicate split) in 6400 dimensions is regularised
    assert concepts.uns["workbench"]["whitening"]["n_controls"] == 79
    assert concepts.uns["workbench"]["heldout"]["n_heldout"] == 79
    # whitened on the very cells it encodes, the data are near-isotropic: 2 atoms of 16
    # explain little, but clearly more than nothing
    assert 0.03 < summary["r2"] < 1.0
    assert summary["dead_fraction"] <= 0.25
    with pytest.raises(Exception, match="only 79 samples"):
        C.run_concepts(study, n_concepts=200, max_steps=2, progress=False)
    with pytest.raises(Exception, match="only 158 samples"):
        C.run_concepts(study, n_concepts=200, max_steps=2, holdout="none", progress=False)


def _half_studies(lincs_study, root, seed=0):
    """The plate split by replicate into two Studies: half of every compound's wells (and
    half of the DMSO wells) in each, drawn with ``seed``."""
    from workbench.data.study import Study
    from workbench.tools.concept_eval import split_rows

    profiles = lincs_study.read("profiles")
    held = split_rows(profiles.obs, "replicate", seed=seed)
    out = []
    for name, rows in (("first", ~held), ("second", held)):
        study = Study.create(root / f"{name}.study", control_label=lincs_study.control_label)
        with study.step("import", params={"half": name}) as tx:
            tx.write_anndata("profiles", profiles[rows].copy())
        out.append(study)
    return out


@pytest.mark.slow
def test_lincs_model_learned_on_one_half_encodes_the_other(lincs_study, tmp_path):
    """Learn on one replicate half of the plate, encode the other with the saved model:
    the concept ids are the model's, and a concept's per-compound mean activation agrees
    between the halves (median Pearson r over live concepts, reported in the results)."""
    from workbench.tools.concept_encode import encode_study
    from workbench.tools.concept_model import activation_correlation

    first, second = _half_studies(lincs_study, tmp_path)
    C.run_concepts(first, n_concepts=32, sparsity=3, max_steps=300, batch_size=192, lr=1e-2,
                   holdout="none", progress=False, seed=0)
    summary = encode_study(second, first)
    c1, c2 = first.read("concepts"), second.read("concepts")
    assert list(c1.obs_names) == list(c2.obs_names)
    np.testing.assert_array_equal(c1.X, c2.X)
    p1, p2 = first.read("profiles"), second.read("profiles")
    codes2 = np.asarray(p2.obsm["concepts_icfl"])
    assert ((codes2 != 0).sum(axis=1) == 3).all()
    corr = activation_correlation(p1.obsm["concepts_icfl"], p1.obs["perturbation"],
                                  codes2, p2.obs["perturbation"])
    live = corr[np.isfinite(corr)]
    assert live.size >= 20
    assert np.median(live) > 0.3, np.round(np.sort(live), 2)
    # a model that does not carry the concepts over (shuffled compound names) scores ~0
    rng = np.random.default_rng(0)
    null = activation_correlation(p1.obsm["concepts_icfl"], p1.obs["perturbation"], codes2,
                                  rng.permutation(p2.obs["perturbation"].to_numpy()))
    assert np.median(live) > np.nanmedian(null) + 0.2
    assert summary["r2"] > 0.2
