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


def _reference_pursuit(w, x, k, L, signed=True, refit=False):
    """Numpy statement of the pursuit: rounds of L atoms (the last partial), each atom chosen
    at most once, per-round least squares on the residual, optional joint re-fit."""
    code = np.zeros(w.shape[0])
    r = x.astype(np.float64).copy()
    taken = np.zeros(w.shape[0], bool)
    left = k
    while left > 0:
        size = min(L, left)
        s = w @ r
        if not signed:
            s = np.abs(s)
        s[taken] = -np.inf
        sel = np.argsort(-s, kind="stable")[:size]
        coef, *_ = np.linalg.lstsq(w[sel].T, r, rcond=None)
        code[sel] += coef
        r = r - w[sel].T @ coef
        taken[sel] = True
        left -= size
    if refit:
        sel = np.flatnonzero(taken)
        coef, *_ = np.linalg.lstsq(w[sel].T, x, rcond=None)
        code[:] = 0
        code[sel] = coef
    return code


def _fixed_dictionary(w, **kw):
    """An ICFL whose atoms are set to ``w`` (no training), bias 0."""
    n, d = w.shape
    model = ICFL(n, max_steps=1, batch_size=8, progress=False, device="cpu", fit_bias=False,
                 **kw).fit(np.random.default_rng(0).normal(size=(8, d)).astype(np.float32))
    with torch.no_grad():
        model.module_.atoms.copy_(torch.from_numpy(w.astype(np.float32)))
        model.module_.bias.zero_()
    return model


@pytest.mark.parametrize("k", [1, 3, 5, 6, 7, 8, 11])
def test_icfl_gives_exactly_k_nonzeros_for_any_k(k):
    """Old behaviour rounded k up to whole rounds of L (k=6, L=5 gave 10 nonzeros)."""
    from workbench.tools.concepts import make_model

    rng = np.random.default_rng(k)
    w = rng.normal(size=(40, 16))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    x = rng.normal(size=(30, 16)).astype(np.float32)
    model = _fixed_dictionary(w, atoms_per_round=5, n_nonzero=k)
    assert model.sparsity == k and sum(model.round_sizes()) == k
    codes = model.transform(x, dense=True)
    assert ((codes != 0).sum(axis=1) == k).all()
    built = make_model("icfl", 40, k, progress=False, device="cpu")
    assert built.sparsity == k and sum(built.round_sizes()) == k
    assert built.pursuit_name == "signed"          # the paper's pursuit is the default


@pytest.mark.parametrize("pursuit,k", [("signed", 7), ("signed", 4), ("abs_refit", 7)])
def test_icfl_pursuit_matches_the_reference_statement(pursuit, k):
    """Codes equal the numpy statement of the pursuit (selection rule, partial last round,
    per-round least squares, re-fit only for abs_refit)."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(24, 12))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    x = rng.normal(size=(10, 12)).astype(np.float32)
    model = _fixed_dictionary(w, atoms_per_round=3, n_nonzero=k, pursuit=pursuit)
    codes = model.transform(x, dense=True)
    for i in range(len(x)):
        ref = _reference_pursuit(w, x[i], k, 3, signed=pursuit == "signed",
                                 refit=pursuit == "abs_refit")
        assert set(np.flatnonzero(codes[i])) == set(np.flatnonzero(ref)), i
        np.testing.assert_allclose(codes[i], ref, rtol=2e-2, atol=5e-3)


def test_signed_and_absolute_selection_differ_where_they_should():
    """x = -3 e0 + e1: the paper's signed rule picks e1 (inner product +1), the absolute
    rule picks e0 (|-3|). A default that selected by absolute value fails here."""
    w = np.eye(4)
    x = np.array([[-3.0, 1.0, 0.0, 0.0]], np.float32)
    signed = _fixed_dictionary(w, atoms_per_round=1, n_nonzero=1).transform(x, dense=True)
    absolute = _fixed_dictionary(w, atoms_per_round=1, n_nonzero=1,
                                 pursuit="abs_refit").transform(x, dense=True)
    assert np.flatnonzero(signed[0]).tolist() == [1]
    assert signed[0, 1] == pytest.approx(1.0)
    assert np.flatnonzero(absolute[0]).tolist() == [0]
    assert absolute[0, 0] == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="pursuit"):
        ICFL(4, pursuit="omp")


def test_whitener_transform_in_chunks_equals_one_pass():
    rng = np.random.default_rng(3)
    ctrl = rng.normal(size=(30, 12)) * np.linspace(0.2, 3, 12)
    x = rng.normal(size=(101, 12)).astype(np.float32)
    wh = ControlWhitener().fit(ctrl)
    whole = wh.transform(x, chunk=10_000)
    parts = wh.transform(x, chunk=7)
    assert parts.dtype == np.float32 and parts.shape == x.shape
    np.testing.assert_array_equal(parts, whole)
    back = ControlWhitener.from_state(*wh.state_arrays())
    np.testing.assert_allclose(back.transform(x), whole, atol=1e-6)
