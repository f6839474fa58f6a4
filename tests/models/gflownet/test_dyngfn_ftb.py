"""DynGFN trained with f-trajectory balance, judged against the enumerated reward posterior."""

import numpy as np
import pytest

from workbench.errors import WorkbenchError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

D = 3


def _world(seed=0):
    rng = np.random.default_rng(seed)
    w = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -0.8], [0.6, 0.0, 0.0]])
    x = rng.normal(size=(200, D))
    v = x @ w.T + 0.7 * rng.normal(size=x.shape)
    return (x - x.mean(0)) / x.std(0), v


def _exact(x, v, temp, lam):
    from workbench.models.gflownet.exact_posterior import ExactParentPosterior

    pi = 1.0 / (1.0 + np.exp(lam / D))   # the same edge price as DynGFN's lambda / d
    return ExactParentPosterior(D, temp, pi, 1e-4, occam=False).fit(x, v)


@pytest.mark.parametrize("alpha", ["forward_kl", 0.5])
def test_ftb_fit_reaches_the_enumerated_posterior(alpha):
    from workbench.models.gflownet import DynGFN

    x, v = _world()
    temp, lam = 0.1, 3.0 * D
    exact = _exact(x, v, temp, lam)
    # the reward posterior is not trivial: every node has more than one likely parent set
    assert (np.exp(exact.log_posterior_).max(1) < 0.97).all()
    model = DynGFN(temperature=temp, sparsity=lam, ridge=1e-4, n_steps=150, n_envs=32,
                   loss="ftb", ftb_alpha=alpha, local_search=0.0, device="cpu",
                   seed=0).fit(x, v)
    kl = exact.kl_to(model.log_prob_parent_set)
    assert kl.sum() < 0.1, kl
    # an untrained sampler is far away, so the bound means something
    untrained = DynGFN(temperature=temp, sparsity=lam, n_steps=0, loss="ftb", device="cpu",
                       seed=0).fit(x, v)
    assert exact.kl_to(untrained.log_prob_parent_set).sum() > 1.0


def test_ftb_options_are_checked_with_a_fix():
    from workbench.models.gflownet import DynGFN

    x, v = _world()
    with pytest.raises(WorkbenchError, match="unknown f-divergence"):
        DynGFN(n_steps=1, loss="ftb", ftb_alpha="kl", device="cpu").fit(x, v)
    with pytest.raises(WorkbenchError, match="n_envs >= 2"):
        DynGFN(n_steps=1, n_envs=1, loss="ftb", device="cpu").fit(x, v)
    # local-search trajectories join the batch (one shift per node) and training runs
    m = DynGFN(n_steps=3, n_envs=4, loss="ftb", ftb_alpha=1.0, local_search=1.0,
               device="cpu").fit(x, v)
    assert len(m.history_["loss"]) == 3 and np.isfinite(m.history_["loss"]).all()
    # the default (None) is no local search for f-TB and one trajectory per roll-out for DB
    kw = dict(n_steps=3, n_envs=4, device="cpu", seed=1)
    for loss, same, other in (("ftb", 0.0, 1.0), ("db", 1.0, 0.0)):
        runs = {ls: DynGFN(loss=loss, local_search=ls, **kw).fit(x, v).history_["loss"]
                for ls in (None, same, other)}
        assert runs[None] == runs[same] and runs[None] != runs[other], loss


@pytest.mark.slow
def test_grn_step_records_the_loss_in_its_params(tmp_path):
    from workbench.data.simulate.build import velocity_anndata
    from workbench.data.simulate.world import make_world
    from workbench.data.study import Study
    from workbench.tools.grn import run_grn

    world = make_world(0, "quick")
    study = Study.create(tmp_path / "demo.study", title="ftb")
    with study.step("simulate", seed=0) as tx:
        tx.write_anndata("velocity", velocity_anndata(world, np.random.default_rng([0, 3])),
                         screen=False)
    with pytest.raises(WorkbenchError, match="unknown GFlowNet loss"):
        run_grn(study, method="dyngfn", loss="subtb", device="cpu")
    info = run_grn(study, size="tiny", n_steps=4, n_envs=4, n_samples=20, n_boot=2,
                   method="dyngfn", loss="ftb", ftb_alpha=0.5, device="cpu")
    assert info["settings"]["loss"] == "ftb" and info["settings"]["ftb_alpha"] == 0.5
    params = Study.open(study.path).provenance[-1]["params"]
    assert params["loss"] == "ftb" and params["ftb_alpha"] == 0.5
