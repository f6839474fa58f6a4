"""``propose(study, budget, policy)`` on a demo Study built by the real steps, and the CLI."""

import numpy as np
import pandas as pd
import pytest

from workbench.cli import main
from workbench.errors import ValidationError
from workbench.models.design_bounds import kl_lower_bound, system_accuracy_bound
from workbench.testing import copy_study
from workbench.tools.design import propose


@pytest.fixture()
def study(tiny_study_path, tmp_path):
    return copy_study(tiny_study_path, tmp_path / "s.study")


def group_labels(study):
    gt = study.read("ground_truth")
    group = {g: k for k, members in gt["groups"].items() for g in members}
    names = list(study.read("perturbations").obs_names)
    return pd.DataFrame({"perturbation": names,
                         "label": [group.get(n.split("+")[0], "none") for n in names]})


def measured_six(truth):
    """Labels of three candidates from each of two classes; the rest open."""
    keep = truth.groupby("label").head(3).index
    keep = [i for i in keep if truth.label[i] in truth.label.value_counts().index[:2]]
    lab = truth.copy()
    lab.loc[~lab.index.isin(keep), "label"] = None
    assert lab.label.notna().sum() == 6 and lab.label.nunique() == 2
    return lab


def test_screen_round_then_certificate(study):
    truth = group_labels(study)
    lab = measured_six(truth)
    b = propose(study, 4, "hardest", kind="screen", labels=lab)
    plan = study.read("design_plan")
    assert len(b.table) == 4 and (b.table["rank"] == [1, 2, 3, 4]).all()
    assert (plan.status == "proposed").sum() == 4 and (plan.status == "measured").sum() == 6
    assert set(b.candidates) <= set(lab.perturbation[lab.label.isna()])
    assert np.isnan(b.info["bound"]) and not b.info["stop"]
    # the batch comes back: the bound is from what the plan predicted before measuring
    before = plan.set_index("candidate").loc[b.candidates, "predicted"]
    lab2 = lab.set_index("perturbation")
    lab2.loc[b.candidates, "label"] = truth.set_index("perturbation").loc[b.candidates, "label"]
    b2 = propose(study, 2, "hardest", kind="screen", labels=lab2.reset_index(), delta=0.1)
    k = int((before.to_numpy() == lab2.loc[b.candidates, "label"].to_numpy()).sum())
    want = system_accuracy_bound(10, len(truth) - 10, kl_lower_bound(k, 4, 0.1))
    assert b2.info["batch_correct"] == k and b2.info["bound"] == pytest.approx(want)
    assert study.read("design_plan")["bound"].iloc[0] == pytest.approx(want)


def test_hits_round_and_bad_inputs(study):
    names = list(study.read("perturbations").obs_names)
    rng = np.random.default_rng(0)
    lab = pd.DataFrame({"perturbation": names, "value": rng.normal(size=len(names))})
    lab.loc[5:, "value"] = np.nan
    b = propose(study, 3, "ucb", kind="hits", labels=lab, column="value")
    assert len(b.table) == 3 and all(r.startswith("predicted value") for r in b.table.reason)
    with pytest.raises(ValidationError, match="larger than the"):
        propose(study, 13, "ucb", kind="hits", labels=lab, column="value")
    bad = pd.DataFrame({"perturbation": ["NOPE"], "value": [1.0]})
    with pytest.raises(ValidationError, match="not candidates"):
        propose(study, 1, "ucb", kind="hits", labels=bad, column="value")
    one = lab.assign(value=lambda d: np.where(d.value.notna(), "a", None))
    with pytest.raises(ValidationError, match="one class only"):
        propose(study, 2, "hardest", kind="screen", labels=one, column="value")


def test_pairs_use_the_pair_planner(study):
    b = propose(study, 2, "random", kind="pairs")
    assert b.kind == "pairs" and len(b.candidates) == 2
    assert all("+" in c for c in b.candidates) and all(b.table.reason.str.len() > 0)


def test_cli_design_screen(study, tmp_path, capsys):
    lab = measured_six(group_labels(study))
    csv = tmp_path / "labels.csv"
    lab.to_csv(csv, index=False)
    assert main(["design", "screen", str(study.path), "--labels", str(csv), "--budget", "3"]) == 0
    out = capsys.readouterr().out
    assert "next 3" in out and "no certificate yet" in out
    assert main(["design", "screen", str(study.path), "--labels", str(csv), "--budget", "0"]) == 2
    assert main(["design", "screen", str(study.path), "--labels", str(csv),
                 "--budget", "50"]) == 2
    assert "larger than the" in capsys.readouterr().err
