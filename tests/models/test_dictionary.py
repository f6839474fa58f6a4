"""ICFL, TopK SAE and control whitening against planted ground truth."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workbench.models.dictionary import (  # noqa: E402
    ControlWhitener,
    atom_recovery,
    dead_fraction,
    r2_score,
)
from workbench.models.icfl import ICFL  # noqa: E402
from workbench.models.topk_sae import TopKSAE  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def planted(n=4000, d=32, m=48, k=3, signed=True, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(m, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    support = np.argpartition(rng.random((n, m)), k, axis=1)[:, :k]
    coef = rng.uniform(0.5, 1.5, size=(n, k))
    if signed:
        coef *= rng.choice([-1.0, 1.0], size=(n, k))
    x = np.einsum("nk,nkd->nd", coef, atoms[support]) + noise * rng.normal(size=(n, d))
    return atoms, x.astype(np.float32)


@pytest.fixture(scope="module")
def problem():
    return planted(n=2000, d=24, m=32, k=3)


def test_icfl_recovers_planted_atoms(problem):
    atoms, x = problem
    model = ICFL(40, n_rounds=3, atoms_per_round=1, selection="abs", refit=True,
                 batch_size=256, max_steps=150, lr=1e-2, fit_bias=False, progress=False,
                 device="cpu", seed=0)
    model.fit(x)
    frac, best = atom_recovery(model.components_, atoms, 0.9)
    assert frac >= 0.9, best
    assert model.score(x) > 0.95
    codes = model.transform(x)
    assert codes.shape == (len(x), 40)
    assert (codes != 0).sum(axis=1).max() <= 3
    assert np.allclose(np.linalg.norm(model.components_, axis=1), 1, atol=1e-4)
    assert model.n_steps_ == 150 and len(model.loss_history_) == 150
    assert model.loss_history_[-1] < 0.2 * model.loss_history_[0]


def test_icfl_pursuit_is_per_round_least_squares():
    """One round of L atoms must equal a least-squares fit on exactly those atoms."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 16)).astype(np.float32)
    model = ICFL(12, n_rounds=1, atoms_per_round=3, selection="signed", max_steps=1,
                 batch_size=20, progress=False, device="cpu", fit_bias=False).fit(x)
    codes = model.transform(x, dense=True)
    w = model.components_
    for i in range(5):
        sel = np.flatnonzero(codes[i])
        scores = w @ x[i]
        assert set(sel) <= set(np.argsort(-scores)[:3])
        coef, *_ = np.linalg.lstsq(w[sel].T, x[i] - model.bias_, rcond=None)
        np.testing.assert_allclose(codes[i, sel], coef, rtol=1e-3, atol=1e-4)


def test_resampling_resets_duplicated_and_dead_atoms(problem):
    _, x = problem
    model = ICFL(16, n_rounds=2, atoms_per_round=1, selection="abs", batch_size=256,
                 max_steps=2, resample_every=0, progress=False, device="cpu", seed=0).fit(x)
    atoms = model.module_.atoms
    with torch.no_grad():
        atoms[5] = atoms[2]  # a duplicate: the later one of the pair is reset
        atoms[9] = -atoms[3]  # under "abs" selection a negated atom duplicates too
    keep = atoms.detach().clone()
    window = torch.ones(16)
    window[12] = 0  # atom 12 unused since the last check: dead, reset
    opt = torch.optim.Adam(model.module_.parameters())
    gen = torch.Generator().manual_seed(0)
    model._resample(window, torch.from_numpy(x[:256]), opt, gen)
    after = atoms.detach()
    changed = sorted(np.flatnonzero((after - keep).abs().sum(1).numpy() > 1e-6).tolist())
    assert changed == [5, 9, 12]
    assert model.n_resampled_ == 3
    cos = np.abs(after.numpy() @ after.numpy().T)
    np.fill_diagonal(cos, 0)
    assert cos.max() < 0.9
    np.testing.assert_allclose(after.norm(dim=1).numpy(), 1, atol=1e-5)


def test_topk_sae_learns_and_has_more_dead_atoms_than_icfl():
    atoms, x = planted(n=2000, d=24, m=16, k=2, signed=False, seed=3)
    kw = dict(batch_size=256, max_steps=150, lr=1e-2, progress=False, device="cpu", seed=0)
    sae = TopKSAE(96, k=2, init="random", **kw).fit(x)
    icfl = ICFL(96, n_rounds=2, atoms_per_round=1, init="random", **kw).fit(x)
    assert sae.score(x) > 0.5
    assert icfl.score(x) > 0.8
    assert dead_fraction(icfl.transform(x)) < dead_fraction(sae.transform(x))


def test_checkpoint_resume_is_exact(tmp_path):
    _, x = planted(n=800, d=16, m=12, k=2, seed=5)
    kw = dict(n_rounds=2, atoms_per_round=1, batch_size=128, max_steps=60, checkpoint_every=20,
              resample_every=25, progress=False, device="cpu", seed=7)
    full = ICFL(16, **kw).fit(x)
    ck = tmp_path / "icfl.pt"
    stop = {"n": 0}

    def interrupt(step, model):
        if step == 40:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        ICFL(16, **kw).fit(x, checkpoint=ck, callback=interrupt, callback_every=20)
    assert ck.is_file()
    resumed = ICFL(16, **kw).fit(x, checkpoint=ck)
    assert resumed.n_steps_ == 60
    np.testing.assert_allclose(resumed.components_, full.components_, atol=1e-6)
    assert stop["n"] == 0


def test_unfitted_and_wrong_width_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        ICFL(4).transform(np.zeros((2, 3), np.float32))
    _, x = planted(n=200, d=8, m=6, k=1)
    model = ICFL(6, n_rounds=1, atoms_per_round=1, max_steps=5, progress=False,
                 device="cpu").fit(x)
    with pytest.raises(ValueError, match="features"):
        model.transform(np.zeros((2, 9), np.float32))


def test_control_whitener_whitens_controls_and_maps_back():
    rng = np.random.default_rng(0)
    d = 10
    mix = rng.normal(size=(d, d)) * np.linspace(0.1, 3, d)
    ctrl = rng.normal(size=(5000, d)) @ mix + 2.0
    wh = ControlWhitener(shrinkage=0.0, unit_norm=False).fit(ctrl)
    z = wh.transform(ctrl)
    np.testing.assert_allclose(np.cov(z.T), np.eye(d), atol=0.05)
    assert np.abs(z.mean(0)).max() < 1e-3
    # directions map back: whitening a shift along v and inverting recovers v
    v = rng.normal(size=(1, d))
    moved = wh.transform(wh.mean_ + v) - wh.transform(wh.mean_[None])
    back = wh.inverse_direction(moved)
    np.testing.assert_allclose(back, v / np.linalg.norm(v), atol=1e-4)
    # fewer controls than features: finite, and unit norm
    few = ControlWhitener(shrinkage=0.1).fit(rng.normal(size=(5, 40)))
    out = few.transform(rng.normal(size=(7, 40)))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_metrics():
    a = np.eye(4)
    assert atom_recovery(a, -a)[0] == 1.0
    assert atom_recovery(a, -a, signed=True)[0] == 0.0
    assert dead_fraction(np.array([[1, 0, 0], [2, 0, 1]])) == pytest.approx(1 / 3)
    assert r2_score(a, a) == 1.0
