"""The pair-planning step on a small screen tested by the real interaction step."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workbench.cli import main
from workbench.data.study import Study
from workbench.errors import ValidationError
from workbench.tools.pair_planning import plan_pairs

D = 4
# single shifts of growing size; G5's pairs are all untested
SINGLE = {f"G{k}": np.eye(D)[k % D] * (0.5 + 0.5 * k) for k in range(1, 6)}
DOUBLES = {"G1+G2": [0, 0, 0, 1.5], "G1+G3": [0, 0, 0, 0], "G2+G4": [0, 2.0, 0, 0],
           "G3+G4": [0, 0, 0, 0]}


@pytest.fixture(scope="module")
def tested_study(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows, xs = [], []
    conds = {"control": np.zeros(D), **SINGLE}
    for pair, extra in DOUBLES.items():
        a, b = pair.split("+")
        conds[pair] = SINGLE[a] + SINGLE[b] + np.asarray(extra, float)
    for cond, mu in conds.items():
        k = 24 if cond == "control" else 12
        xs.append(mu + rng.normal(size=(k, D)))
        kind = "control" if cond == "control" else ("double" if "+" in cond else "single")
        for i in range(k):
            rows.append({"perturbation": cond, "is_control": cond == "control", "batch": "B1",
                         "plate": "P1", "well": f"{cond}-{i % 3}",
                         "genes": "" if cond == "control" else cond, "perturbation_type": kind})
    obs = pd.DataFrame(rows, index=[f"c{i:05d}" for i in range(len(rows))])
    path = tmp_path_factory.mktemp("plan") / "t.study"
    s = Study.create(path, control_label="control")
    with s.step("import", params={}) as tx:
        tx.write_anndata("profiles", ad.AnnData(np.concatenate(xs).astype(np.float32), obs=obs))
    from workbench.tools.interactions import run_interactions

    run_interactions(s, tests=("disjointness",), n_permutations=99, seed=0, device="cpu")
    return path


def test_proposals_carry_prediction_interval_reason_and_planner(tested_study):
    s = Study.open(tested_study)
    out = plan_pairs(s, budget=3, seed=0, device="cpu")
    prop = out[out.status == "proposed"]
    assert len(prop) == 3 and prop.pair.is_unique
    measured = {frozenset(p.split("+")) for p in out[out.status == "measured"].pair}
    assert measured == {frozenset(p.split("+")) for p in DOUBLES}
    assert not measured & {frozenset((a, b)) for a, b in zip(prop.gene_a, prop.gene_b)}
    assert np.isfinite(prop[["predicted", "predicted_low", "predicted_high"]].to_numpy()).all()
    assert (prop.predicted_low < prop.predicted_high).all()
    assert prop.reason.str.len().gt(10).all()
    assert prop.planner.iloc[0] in ("gene_mean", "singles")
    assert "rank correlation" in prop.planner_reason.iloc[0] or "too few" in prop.planner_reason.iloc[0]
    stored = s.read("pair_selection")
    assert len(stored) == len(out) and list(stored.reason) == list(out.reason)


def test_singles_rule_proposes_the_strongest_singles_first(tested_study):
    s = Study.open(tested_study)
    out = plan_pairs(s, budget=2, planner="singles", seed=0, device="cpu")
    prop = out[out.status == "proposed"].sort_values("rank")
    # G4 and G5 have the largest single shifts and their pair is untested
    assert set(prop.iloc[0][["gene_a", "gene_b"]]) == {"G4", "G5"}
    assert "G4" in prop.iloc[0].reason and "G5" in prop.iloc[0].reason
    assert (prop.planner == "singles").all() and (prop.planner_reason == "chosen by the user").all()


@pytest.mark.parametrize("budget, match", [(0, "at least 1"), (-5, "at least 1"),
                                           (7, "larger than the 6 untested"),
                                           (2.5, "whole number")])
def test_bad_budgets_are_refused_and_nothing_is_written(tested_study, budget, match):
    s = Study.open(tested_study)
    before = s.read("pair_selection") if s.has("pair_selection") else None
    with pytest.raises(ValidationError, match=match):
        plan_pairs(s, budget=budget, device="cpu")
    after = Study.open(tested_study)
    if before is None:
        assert not after.has("pair_selection")
    else:
        pd.testing.assert_frame_equal(after.read("pair_selection"), before)


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_cli_budget_errors_are_messages_not_tracebacks(tested_study, budget, capsys):
    assert main(["plan-pairs", str(tested_study), "--budget", budget]) == 2
    err = capsys.readouterr().err
    assert "at least 1" in err and "How to fix" in err and "Traceback" not in err


def test_cli_prints_planner_and_each_pair_with_interval(tested_study, capsys):
    assert main(["plan-pairs", str(tested_study), "--budget", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("planner: ")
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(("1.", "2."))]
    assert len(lines) == 2 and all("[" in ln and "]" in ln for ln in lines)


def test_unknown_planner_is_a_clear_error(tested_study):
    with pytest.raises(ValidationError, match="unknown planner"):
        plan_pairs(Study.open(tested_study), planner="magic")


def test_cli_says_when_a_planner_makes_no_prediction(tested_study, capsys):
    assert main(["plan-pairs", str(tested_study), "--budget", "2", "--planner", "random",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.strip().startswith(("1.", "2."))]
    assert len(lines) == 2 and all("no prediction" in ln and "random" in ln for ln in lines)
    assert "nan" not in out


@pytest.mark.slow
def test_plan_pairs_on_a_dask_cluster_equals_the_local_run(tested_study, capsys):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    s = Study.open(tested_study)
    kw = dict(budget=3, planner="exchangeable", seed=0, device="cpu", chunk_size=2)
    local = plan_pairs(s, **kw)
    assert main(["plan-pairs", str(tested_study), "--budget", "3", "--planner", "exchangeable",
                 "--device", "cpu", "--chunk-size", "2"]) == 0
    local_text = capsys.readouterr().out
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = plan_pairs(Study.open(tested_study), **kw, scheduler=cluster.scheduler_address)
        # 6 untested pairs in chunks of 2: three tasks on the workers
        assert (remote.status == "proposed").sum() == 3
        assert main(["plan-pairs", str(tested_study), "--budget", "3", "--planner",
                     "exchangeable", "--device", "cpu", "--chunk-size", "2", "--scheduler",
                     cluster.scheduler_address]) == 0
        remote_text = capsys.readouterr().out
    cols = ["pair", "status", "rank", "reason", "planner"]
    pd.testing.assert_frame_equal(remote[cols], local[cols])
    np.testing.assert_allclose(remote[["predicted", "predicted_low", "predicted_high"]],
                               local[["predicted", "predicted_low", "predicted_high"]],
                               atol=1e-6)
    assert remote_text == local_text and "exchangeable" in remote_text
    assert Study.open(tested_study).read("pair_selection").pair.tolist() == remote.pair.tolist()


def test_bad_chunk_size_is_a_clear_error(tested_study):
    with pytest.raises(ValidationError, match="chunk size"):
        plan_pairs(Study.open(tested_study), budget=2, chunk_size=0, device="cpu")


def test_auto_with_few_pairs_compares_the_rules_and_says_when_the_model_joins(tested_study):
    s = Study.open(tested_study)
    out = plan_pairs(s, budget=2, seed=0, device="cpu")
    assert "model is checked from 30" in out.planner_reason.iloc[0]
