"""The block probe adapts its reduction to the fold size and says what it did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ValidationError
from workbench.models.probe import probe_accuracy, reduction_size


def test_reduction_never_exceeds_the_training_fold():
    assert reduction_size(500, 384) == 128
    assert reduction_size(100, 384) == 99
    assert reduction_size(100, 40) == 40
    assert reduction_size(100, 384, max_dim=None) == 99


def test_probe_on_few_wide_samples_runs_and_reports_its_reduction():
    """132 crops x 384 dims in 4 fields (the NF1 case): a fixed 128-component PCA fails."""
    rng = np.random.default_rng(0)
    n, d = 132, 384
    y = np.tile(["a", "b"], n // 2)
    X = rng.normal(size=(n, d))
    X[:, :40] += np.where(y == "a", 1.0, -1.0)[:, None]
    groups = np.repeat(["f1", "f2", "f3", "f4"], n // 4)
    res = probe_accuracy(X, y, groups)
    n_train = n - n // 4
    assert res["n_components"] == [n_train - 1] * 4
    assert "PCA to 98-98 components" in res["reduction"] and "of 384 dims" in res["reduction"]
    assert res["balanced_accuracy"] > 0.9
    narrow = probe_accuracy(X[:, :20], y, groups)
    assert narrow["n_components"] == [20] * 4 and narrow["reduction"].startswith("none")


def test_probe_tasks_identity_user_label_and_relationship():
    from workbench.tools.embed import choose_block

    rng = np.random.default_rng(1)
    pert = np.repeat(["ctrl", "A", "B", "C", "D"], 40)
    plate = np.tile(["p1", "p2", "p3", "p4"], 50)
    complex_of = {"A": "c1", "B": "c1", "C": "c2", "D": "c2"}
    F = rng.normal(size=(200, 2, 5))
    F[:, 0, 0] += np.select([pert == "A", pert == "B"], [3.0, -3.0], 0.0)   # identity in b1
    grp = pd.Series(pert).map(complex_of).to_numpy()
    F[:, 1, 1] += np.select([grp == "c1", grp == "c2"], [3.0, -3.0], 0.0)   # complex in b2
    obs = pd.DataFrame({"perturbation": pert, "is_control": pert == "ctrl", "batch": plate,
                        "moa": np.where(np.isin(pert, ["A", "C"]), "m1", "m2")})
    ident = choose_block(F, obs)
    assert ident["task"] == "perturbation identity" and ident["best_block"] == 1
    rel = choose_block(F, obs, label=complex_of)
    assert rel["task"] == "known relationship" and rel["best_block"] == 2
    assert rel["n_samples"] == 160          # controls normalised but not probed
    user = choose_block(F, obs, label="moa")
    assert user["task"] == "user label 'moa'"
    with pytest.raises(ValidationError, match="fewer than two labels"):
        choose_block(F, obs, label={"A": "c1"})
