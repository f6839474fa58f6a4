"""The find step on the tiny demo Study: the planted synthetic-lethal pair as the phenotype,
the session kept and resumed, enrichment, the CLI, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import MissingArtefactError, ValidationError
from workbench.testing import copy_study
from workbench.tools.find import FindSession, enrichment_table, run_find

PHENO = "G03+G08"  # the demo world's synthetic-lethal pair


@pytest.fixture
def study(tiny_study_path, tmp_path):
    return copy_study(tiny_study_path, tmp_path / "s.study")


def _exemplar(study):
    obs = study.read_obs("profiles")
    return str(obs.index[obs["perturbation"] == PHENO][0]), obs


def test_search_finds_the_pair_is_saved_and_resumes(study):
    ex, obs = _exemplar(study)
    s = run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=40,
                 seed=0)
    kept = study.read("phenotype_search")
    wb = kept.uns["workbench"]
    assert list(wb["exemplars"]) == [ex]
    answered = kept.obs["answer"] != ""
    n1 = int(answered.sum())
    assert n1 == len(s.search.state.labels) >= 40
    # answers are the oracle's truth
    truth = (obs["perturbation"] == PHENO).map({True: "yes", False: "no"})
    assert (kept.obs.loc[answered, "answer"] == truth[answered]).all()
    assert len(wb["rounds"]) == s.search.state.n_rounds
    assert wb["rounds"]["lower"].iloc[-1] == pytest.approx(s.interval[0])
    assert study.meta["provenance"][-1]["tool"] == "find"
    # the pair's crops top the enrichment
    assert wb["enrichment"]["perturbation"].iloc[0] == PHENO
    # resuming continues from the kept answers, with the same draws as one longer run
    s2 = run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=40,
                  seed=0)
    kept2 = study.read("phenotype_search")
    assert int((kept2.obs["answer"] != "").sum()) > n1
    assert s2.search.state.item[: len(s.search.state.item)] == s.search.state.item
    assert len(kept2.uns["workbench"]["rounds"]) == s2.search.state.n_rounds
    enr = kept2.uns["workbench"]["enrichment"]
    assert enr["perturbation"].iloc[0] == PHENO and enr["q"].iloc[0] < 0.05


def test_resume_equals_one_run(study, tiny_study_path, tmp_path):
    ex, _ = _exemplar(study)
    run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=20)
    a = run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=20)
    other = copy_study(tiny_study_path, tmp_path / "o.study")
    b = FindSession.open(other, [ex], tau=0.05, batch=10)
    truth = other.read_obs("profiles")["perturbation"] == PHENO
    while b.search.state.n_rounds < a.search.state.n_rounds:
        ids = b.next_batch()
        b.record({i: bool(truth[i]) for i in ids})
    assert b.search.state.item == a.search.state.item
    assert b.interval == a.interval


def test_other_exemplars_need_restart(study):
    ex, obs = _exemplar(study)
    run_find(study, [ex], tau=0.05, label_column="perturbation", batch=10, budget=10)
    other = str(obs.index[obs["perturbation"] == "G01"][0])
    with pytest.raises(ValidationError, match="other exemplars"):
        run_find(study, [other], tau=0.05, label_column="perturbation", budget=10)
    s = run_find(study, [other], tau=0.05, label_column="perturbation", budget=10,
                 restart=True)
    assert list(study.read_uns("phenotype_search", "exemplars")) == [other]
    assert s.search.state.n_rounds >= 1


def test_bad_input_is_named(study):
    ex, _ = _exemplar(study)
    with pytest.raises(ValidationError, match="not in the Study"):
        FindSession.open(study, ["no-such-crop"])
    for tau in (0, 1, 1.5, -0.1):
        with pytest.raises(ValidationError, match="tau"):
            FindSession.open(study, [ex], tau=tau)
    with pytest.raises(ValidationError, match="no oracle"):
        run_find(study, [ex])
    with pytest.raises(ValidationError, match="no column"):
        run_find(study, [ex], label_column="nope")


def test_study_without_embeddings(tiny_study_path, tmp_path):
    study = copy_study(tiny_study_path, tmp_path / "e.study")
    ex, _ = _exemplar(study)
    adata = study.read("profiles")
    bare = adata[:, []].copy()
    bare.obsm.clear()
    with study.step("strip", inputs=["profiles"]) as tx:
        tx.write_anndata("profiles", bare)
    with pytest.raises(MissingArtefactError, match="no embedding"):
        FindSession.open(study, [ex])
    with study.step("drop", params={}) as tx:
        tx.remove("profiles")
    with pytest.raises(MissingArtefactError, match="workbench embed"):
        FindSession.open(study, [ex])


def test_enrichment_level_under_shuffled_calls():
    rng = np.random.default_rng(0)
    import pandas as pd

    pert = pd.Series(np.repeat([f"P{i}" for i in range(40)], 25))
    ps = []
    for _ in range(30):
        ps.extend(enrichment_table(pert, rng.random(len(pert)) < 0.1)["p"])
    assert np.mean(np.array(ps) < 0.05) <= 0.06  # one-sided Fisher is conservative
    planted = rng.random(len(pert)) < 0.05
    planted[pert == "P3"] = rng.random(25) < 0.6
    t = enrichment_table(pert, planted)
    assert t["perturbation"].iloc[0] == "P3" and t["q"].iloc[0] < 0.01


def test_cli_find(study, capsys):
    from workbench.cli import main

    ex, _ = _exemplar(study)
    rc = main(["find", str(study.path), "--exemplar", ex, "--tau", "0.05", "--label-column",
               "perturbation", "--budget", "20", "--batch", "10"])
    out = capsys.readouterr().out
    assert rc == 0 and "prevalence in [" in out and PHENO in out
    assert main(["find", str(study.path), "--exemplar", "zz", "--tau", "0.05"]) == 2
    assert "not in the Study" in capsys.readouterr().err
