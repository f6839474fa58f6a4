"""Exact resume after a Ctrl-C at random points *inside* training steps.

An interrupt between the draw of a batch and the optimiser update must not leave a
checkpoint whose generator state is ahead of its step counter (the resumed run would then
see other batches and masks), and one between the update and the counter must not count a
step twice. Each test stops a run with a real SIGINT at several seeded random line events
of the training loop, resumes, and asks for bit-identical results.
"""

from __future__ import annotations

import signal
import sys

import numpy as np
import pytest
import torch

import workbench.models._checkpoint as checkpoint_mod
import workbench.models.dictionary as dictionary_mod
import workbench.models.icfl as icfl_mod
import workbench.models.vit_arch as vit_arch_mod
import workbench.models.vit_mae as vit_mae_mod
from workbench.models.icfl import ICFL
from workbench.models.vit_mae import MAEEncoder

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class InterruptAt:
    """A real Ctrl-C: SIGINT at line event number ``at`` (1-based) of ``modules``' code.

    Line events are counted with ``sys.settrace``, so the signal can land anywhere in a
    step; it goes through the process's SIGINT handler as a key press would. ``at=None``
    only counts (``count``).
    """

    def __init__(self, modules, at: int | None = None):
        self.files = {m.__file__ for m in modules}
        self.at = at
        self.count = 0
        self.fired = False

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename in self.files:
            return self._local
        return None

    def _local(self, frame, event, arg):
        if event == "line":
            self.count += 1
            if self.at is not None and self.count == self.at and not self.fired:
                self.fired = True
                signal.raise_signal(signal.SIGINT)
        return self._local

    def __enter__(self):
        self.previous = sys.gettrace()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(self.previous)
        return False


def crops(n=48, c=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.2, (n, c, size, size)).astype(np.float32)
    for i in range(n):
        r, q = rng.integers(0, size - 6, 2)
        x[i, i % c, r:r + 6, q:q + 6] += 2.0
    return x


def encoder(tmp=None, **kw):
    return MAEEncoder("tiny", steps=6, batch_size=8, grad_accum=2, progress=False, bf16=False,
                      device="cpu", patch_size=4, warmup=2, checkpoint_dir=tmp,
                      checkpoint_every=4, seed=3, **kw)


def state(enc):
    return {k: v.detach().clone() for k, v in enc.model_.state_dict().items()}


def run_until_done(make, fit, modules, at: int, max_tries: int = 4):
    """Fit with a SIGINT at line event ``at``; then resume (uninterrupted) until done."""
    interrupted = False
    with InterruptAt(modules, at=at) as hook:
        try:
            model = fit(make())
        except KeyboardInterrupt:
            interrupted = True
    assert hook.fired
    if interrupted:
        model = fit(make())
    return model, interrupted


def test_encoder_resumes_bit_identically_after_interrupts_inside_steps(tmp_path):
    x = crops()
    ref = encoder().fit(x)
    modules = [vit_mae_mod, vit_arch_mod, checkpoint_mod]   # the loop, the loss, saving
    with InterruptAt(modules) as counter:
        encoder(tmp_path / "count").fit(x)
    rng = np.random.default_rng(11)
    points = sorted(rng.integers(1, counter.count, size=5).tolist())
    n_interrupted = 0
    for i, at in enumerate(points):
        folder = tmp_path / f"run{i}"
        model, interrupted = run_until_done(lambda folder=folder: encoder(folder), lambda e: e.fit(x),
                                            modules, at)
        n_interrupted += interrupted
        assert model.n_steps_ == ref.n_steps_
        assert model.loss_history_ == ref.loss_history_, f"interrupt at line event {at}"
        for k, v in state(ref).items():
            assert torch.equal(v, state(model)[k]), (at, k)
    assert n_interrupted >= 4   # the signal did stop (almost) every run


def test_encoder_resumes_after_two_interrupts_in_one_run(tmp_path):
    x = crops()
    ref = encoder().fit(x)
    modules = [vit_mae_mod]
    with InterruptAt(modules) as counter:
        encoder(tmp_path / "count").fit(x)
    for at in (counter.count // 3, counter.count // 3):   # twice into the same folder
        with InterruptAt(modules, at=at), pytest.raises(KeyboardInterrupt):
            encoder(tmp_path / "run").fit(x)
    resumed = encoder(tmp_path / "run").fit(x)
    for k, v in state(ref).items():
        assert torch.equal(v, state(resumed)[k]), k


def test_dictionary_resumes_bit_identically_after_interrupts_inside_steps(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 6)) @ rng.normal(size=(6, 12))).astype(np.float32)
    kw = dict(n_rounds=2, atoms_per_round=1, batch_size=64, max_steps=30,
              checkpoint_every=7, resample_every=10, progress=False, device="cpu", seed=2)
    ref = ICFL(10, **kw).fit(x)
    modules = [dictionary_mod, icfl_mod]
    with InterruptAt(modules) as counter:
        ICFL(10, **kw).fit(x, checkpoint=tmp_path / "count.pt")
    points = sorted(np.random.default_rng(5).integers(1, counter.count, size=5).tolist())
    for i, at in enumerate(points):
        ck = tmp_path / f"run{i}.pt"
        model, _ = run_until_done(lambda: ICFL(10, **kw),
                                  lambda m, ck=ck: m.fit(x, checkpoint=ck), modules, at)
        assert model.n_steps_ == 30
        assert model.loss_history_ == ref.loss_history_, f"interrupt at line event {at}"
        np.testing.assert_array_equal(model.components_, ref.components_)
        assert model.n_resampled_ == ref.n_resampled_
