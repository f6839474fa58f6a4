"""Models leave the caller's global state alone and depend on nothing but their seed.

``fit`` must not reseed (or draw from) python's, numpy's or torch's global generators, nor
leave torch's thread count changed; and the result must be the same whatever state the
caller's generators are in.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from workbench.models.icfl import ICFL
from workbench.models.topk_sae import TopKSAE
from workbench.models.vit_mae import MAEEncoder


def snapshot():
    return (random.getstate(), np.random.get_state(), torch.get_rng_state().clone(),
            torch.get_num_threads())


def assert_untouched(before):
    py, npy, tch, threads = before
    assert random.getstate() == py, "python's global RNG changed"
    after = np.random.get_state()
    assert after[0] == npy[0] and np.array_equal(after[1], npy[1]) and after[2:] == npy[2:], \
        "numpy's global RNG changed"
    assert torch.equal(torch.get_rng_state(), tch), "torch's global RNG changed"
    assert torch.get_num_threads() == threads, "torch's thread count changed"


def crops(n=24, c=2, size=16):
    return np.random.default_rng(0).normal(size=(n, c, size, size)).astype(np.float32)


def small_encoder(**kw):
    return MAEEncoder("tiny", steps=3, batch_size=8, progress=False, bf16=False, device="cpu",
                      patch_size=4, warmup=1, seed=4, **kw)


def table():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(200, 5)) @ rng.normal(size=(5, 10))).astype(np.float32)


FITS = {
    "mae": lambda: small_encoder().fit(crops()),
    "icfl": lambda: ICFL(8, n_rounds=2, atoms_per_round=1, max_steps=25, resample_every=10,
                         batch_size=64, progress=False, device="cpu", seed=4).fit(table()),
    "icfl_random_init": lambda: ICFL(8, n_rounds=1, atoms_per_round=1, max_steps=5,
                                     init="random", resample="random", resample_every=2,
                                     progress=False, device="cpu", seed=4).fit(table()),
    "topk": lambda: TopKSAE(8, k=2, max_steps=25, resample_every=10, batch_size=64,
                            progress=False, device="cpu", seed=4).fit(table()),
}


def learned(model) -> dict:
    if isinstance(model, MAEEncoder):
        return {k: v.detach().clone() for k, v in model.model_.state_dict().items()}
    return {"components": torch.from_numpy(model.components_.copy())}


@pytest.mark.parametrize("name", sorted(FITS))
def test_fit_leaves_global_generators_and_threads_unchanged(name):
    old_threads = torch.get_num_threads()
    torch.set_num_threads(3)   # not what the small-model context uses (1)
    try:
        random.seed(123)
        np.random.seed(123)
        torch.manual_seed(123)
        before = snapshot()
        FITS[name]()
        assert_untouched(before)
    finally:
        torch.set_num_threads(old_threads)


@pytest.mark.parametrize("name", sorted(FITS))
def test_result_does_not_depend_on_the_callers_global_generators(name):
    outs = []
    for caller_seed in (1, 2):
        random.seed(caller_seed)
        np.random.seed(caller_seed)
        torch.manual_seed(caller_seed)
        outs.append(learned(FITS[name]()))
    for k, v in outs[0].items():
        assert torch.equal(v, outs[1][k]), k


def test_extract_and_load_leave_global_state_unchanged(tmp_path):
    enc = small_encoder().fit(crops())
    path = enc.save(tmp_path / "enc.safetensors")
    before = snapshot()
    loaded = MAEEncoder.load(path, device="cpu", bf16=False)
    loaded.extract(crops()[:5])
    assert_untouched(before)
