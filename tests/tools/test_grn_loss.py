"""The GRN step's DynGFN records the loss, divergence and parent cap it trained with."""

import inspect

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def velocity_study(tmp_path_factory):
    from workbench.data.simulate.build import velocity_anndata
    from workbench.data.simulate.world import make_world
    from workbench.data.study import Study

    world = make_world(0, "tiny")
    study = Study.create(tmp_path_factory.mktemp("grn_loss") / "demo.study", title="loss")
    with study.step("simulate", seed=0) as tx:
        tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([0, 3])),
                         screen=False)
    return study


def _retrain(study, settings):
    """DynGFN fitted directly with the settings the step recorded, on the step's data."""
    from workbench.models.gflownet import DynGFN
    from workbench.tools.grn import prepare, scale_for_grn

    data = prepare(study.read("velocity"), genes=settings["genes"], seed=0)
    x, v, _ = scale_for_grn(data["x"], data["v"])
    model = DynGFN(temperature=settings["temperature"], sparsity=settings["sparsity"],
                   n_steps=settings["n_steps"], n_envs=settings["n_envs"],
                   loss=settings["loss"], ftb_alpha=settings.get("ftb_alpha", 0.0),
                   max_parents=settings["max_parents"], device="cpu", seed=0)
    return model.fit(x, v).history_["loss"]


def test_default_dyngfn_step_records_the_loss_it_trained_with(velocity_study):
    from workbench.data.study import Study
    from workbench.tools.grn import run_grn

    default = inspect.signature(run_grn).parameters
    kw = dict(size="tiny", n_steps=6, n_envs=6, n_samples=20, n_boot=2, method="dyngfn",
              device="cpu", checkpoint_dir=velocity_study.path / "ckpt")
    info = run_grn(velocity_study, **kw)
    s = info["settings"]
    assert s["loss"] == default["loss"].default == "ftb"
    assert s["ftb_alpha"] == default["ftb_alpha"].default == 1.0
    # None picks each method's own bound: 4 for DynGFN (and the exact posterior)
    assert default["max_parents"].default is None and s["max_parents"] == 4
    params = Study.open(velocity_study.path).provenance[-1]["params"]
    assert (params["loss"], params["ftb_alpha"], params["max_parents"]) == ("ftb", 1.0, 4)
    # what was recorded is what was trained: refitting with the recorded settings gives the
    # step's loss curve, and another member of the family does not
    trained = info["history"]["loss"]
    assert np.allclose(_retrain(velocity_study, s), trained)
    assert not np.allclose(_retrain(velocity_study, {**s, "ftb_alpha": 0.0}), trained)
    samples = np.asarray(Study.open(velocity_study.path).read("grn_samples"))
    assert samples.sum(-1).max() <= s["max_parents"]
    # an explicit choice is recorded too, and modified DB records no alpha
    info = run_grn(velocity_study, **kw, loss="db")
    assert info["settings"]["loss"] == "db" and "ftb_alpha" not in info["settings"]
    assert np.allclose(_retrain(velocity_study, info["settings"]), info["history"]["loss"])


def test_hyper_warm_start_reaches_dyngfn_and_is_recorded(velocity_study):
    """The step's warm start is what DynGFN trains with: its history holds the linear
    steps before the switch (no hypernetwork loss there) and the hyper steps after."""
    from workbench.data.study import Study
    from workbench.errors import ValidationError
    from workbench.tools.grn import run_grn

    kw = dict(size="tiny", n_steps=4, n_envs=6, n_samples=10, n_boot=2, method="dyngfn",
              device="cpu", checkpoint_dir=velocity_study.path / "ckpt_hyper")
    info = run_grn(velocity_study, reward="hyper", warm_start=2, warm_start_fit=1, **kw)
    s = info["settings"]
    assert (s["reward"], s["warm_start"], s["warm_start_fit"]) == ("hyper", 2, 1)
    params = Study.open(velocity_study.path).provenance[-1]["params"]
    assert (params["warm_start"], params["warm_start_fit"]) == (2, 1)
    mse = np.asarray(info["history"]["hyper_mse"], float)
    assert len(mse) == len(info["history"]["loss"]) == 4
    assert np.isnan(mse[:2]).all() and np.isfinite(mse[2:]).all()   # linear, then hyper
    with pytest.raises(ValidationError, match="reward='hyper'"):
        run_grn(velocity_study, reward="linear", warm_start=2, **kw)
