"""ViT-MAE encoder: pretraining, resume, block features, and loading outside weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import InputFormatError, ValidationError
from workbench.models.vit_mae import (
    MAEEncoder, MaskedAutoencoderViT, make_config,
)
from workbench.models.vit_weights import remap_state_dict


def blobs(n=96, c=3, size=16, seed=0):
    """Crops with one bright square whose channel and place carry the 'phenotype'."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.2, (n, c, size, size)).astype(np.float32)
    for i in range(n):
        ch, r, q = i % c, rng.integers(0, size - 6), rng.integers(0, size - 6)
        x[i, ch, r:r + 6, q:q + 6] += 2.0
    return x


def small(**kw):
    kw = {"steps": 6, "batch_size": 8, "progress": False, "bf16": False, "device": "cpu",
          "patch_size": 4, "lr": 1e-3, "warmup": 2, **kw}
    return MAEEncoder("tiny", **kw)


def weights(enc):
    return {k: v.detach().clone() for k, v in enc.model_.state_dict().items()}


def test_pretraining_lowers_reconstruction_loss_and_extracts_every_block():
    x = blobs()
    enc = small(steps=40, batch_size=16).fit(x)
    first, last = np.mean(enc.loss_history_[:5]), np.mean(enc.loss_history_[-5:])
    assert last < 0.9 * first, (first, last)
    f = enc.extract(x[:10], batch_size=4)
    assert f["mean"].shape == (10, 4, 64) and f["cls"].shape == (10, 4, 64)
    assert np.isfinite(f["mean"]).all()
    # blocks differ, and trimming at block 2 gives the same first two blocks
    assert not np.allclose(f["mean"][:, 0], f["mean"][:, 3])
    trimmed = enc.extract(x[:10], max_block=2)
    assert trimmed["mean"].shape[1] == 2
    np.testing.assert_allclose(trimmed["mean"], f["mean"][:, :2], atol=1e-5)
    np.testing.assert_allclose(enc.transform(x[:10], block=2), f["mean"][:, 1], atol=1e-5)


def test_same_seed_same_weights_and_batch_size_does_not_change_features():
    x = blobs()
    a, b = small().fit(x), small().fit(x)
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k
    np.testing.assert_allclose(a.extract(x[:12], batch_size=3)["mean"],
                               a.extract(x[:12], batch_size=12)["mean"], atol=1e-5)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_resume_after_interruption_gives_the_same_final_weights(tmp_path, interrupt):
    """Stop at step 5 (Ctrl-C writes a checkpoint; a crash falls back to the step-4 one)."""
    x = blobs()
    ref = small(steps=8, grad_accum=2).fit(x)

    def stop(step, loss):
        if step == 5:
            raise interrupt()

    with pytest.raises(interrupt):
        small(steps=8, grad_accum=2, checkpoint_dir=tmp_path, checkpoint_every=2,
              callbacks=[stop]).fit(x)
    assert len(list(tmp_path.glob("mae_pretrain_*.pt"))) == 1
    # another schedule does not pick up this run's checkpoint
    other = small(steps=3, checkpoint_dir=tmp_path).fit(x)
    assert len(other.loss_history_) == 3
    resumed = small(steps=8, grad_accum=2, checkpoint_dir=tmp_path, checkpoint_every=2).fit(x)
    assert resumed.n_steps_ == 8 and len(resumed.loss_history_) == 8
    np.testing.assert_allclose(resumed.loss_history_, ref.loss_history_, rtol=1e-6)
    for k, v in weights(ref).items():
        assert torch.equal(v, weights(resumed)[k]), k


def test_safetensors_round_trip_and_plain_state_dict(tmp_path):
    x = blobs(n=20)
    enc = small(steps=2).fit(x)
    f = enc.extract(x)["mean"]
    loaded = MAEEncoder.load(enc.save(tmp_path / "w.safetensors"), device="cpu")
    np.testing.assert_allclose(loaded.extract(x)["mean"], f, atol=1e-6)
    torch.save({"model": enc.model_.state_dict()}, tmp_path / "w.pt")
    plain = MAEEncoder.load(tmp_path / "w.pt", device="cpu", num_heads=4)
    np.testing.assert_allclose(plain.extract(x)["mean"], f, atol=1e-5)


def timm_style_state(model):
    """What a timm ViT checkpoint looks like: our encoder keys, a head, no decoder,
    a learned position table, under a 'model.' prefix (as trainer checkpoints store it)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()
          if not k.startswith(("decoder", "mask_token", "pixel_"))}
    sd["head.weight"] = torch.zeros(10, model.cfg.embed_dim)
    sd["head.bias"] = torch.zeros(10)
    return {f"model.{k}": v for k, v in sd.items()}


def hf_style_state(model):
    """HuggingFace ViTMAE names, q/k/v kept apart."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            base = f"vit.encoder.layer.{i}."
            if rest.startswith("attn.qkv."):
                part = rest.rsplit(".", 1)[1]
                for name, t in zip(("query", "key", "value"), v.chunk(3, 0)):
                    out[f"{base}attention.attention.{name}.{part}"] = t.clone()
                continue
            rest = (rest.replace("norm1.", "layernorm_before.").replace("norm2.", "layernorm_after.")
                    .replace("attn.proj.", "attention.output.dense.")
                    .replace("mlp.fc1.", "intermediate.dense.").replace("mlp.fc2.", "output.dense."))
            out[base + rest] = v.clone()
        elif k.startswith("patch_embed.proj."):
            out["vit.embeddings.patch_embeddings.projection." + k.rsplit(".", 1)[1]] = v.clone()
        elif k in ("cls_token", "pos_embed"):
            out[{"cls_token": "vit.embeddings.cls_token",
                 "pos_embed": "vit.embeddings.position_embeddings"}[k]] = v.clone()
        elif k.startswith("norm."):
            out["vit.layernorm." + k.split(".", 1)[1]] = v.clone()
    return out


@pytest.mark.parametrize("style", [timm_style_state, hf_style_state])
def test_outside_checkpoints_map_onto_the_encoder(tmp_path, style):
    torch.manual_seed(1)
    cfg = make_config("tiny", in_chans=3, img_size=16, patch_size=4)
    src = MaskedAutoencoderViT(cfg).eval()
    torch.save(style(src), tmp_path / "ckpt.pth")
    enc = MAEEncoder.load(tmp_path / "ckpt.pth", device="cpu", num_heads=cfg.num_heads)
    assert enc.config_.depth == 4 and enc.config_.patch_size == 4 and enc.config_.in_chans == 3
    x = torch.from_numpy(blobs(n=6))
    with torch.no_grad():
        want = src.block_features(x)[0].numpy()
    np.testing.assert_allclose(enc.extract(x.numpy())["mean"], want, atol=1e-5)


def test_mismatched_architecture_and_unsafe_files_give_clear_errors(tmp_path):
    cfg = make_config("tiny", in_chans=3, img_size=16, patch_size=4)
    model = MaskedAutoencoderViT(cfg)
    other = MaskedAutoencoderViT(make_config("tiny", in_chans=3, img_size=16, patch_size=4,
                                             embed_dim=32, num_heads=2))
    from workbench.models.vit_weights import load_into

    with pytest.raises(ValidationError, match="do not fit this encoder") as err:
        load_into(model, other.state_dict())
    assert "patch_embed.proj.weight" in str(err.value) and "MAEEncoder.load" in str(err.value)
    with pytest.raises(ValidationError, match="channel"):
        MAEEncoder.load(dict(model.state_dict()), in_chans=5)
    with pytest.raises(ValidationError, match="no ViT patch embedding"):
        MAEEncoder.load({"fc.weight": torch.zeros(2, 2)})

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputFormatError, match="weights_only"):
        MAEEncoder.load(tmp_path / "evil.pt")
    enc = MAEEncoder.load(dict(model.state_dict()), num_heads=4)
    with pytest.raises(ValidationError, match="channels"):
        enc.extract(np.zeros((2, 5, 16, 16), np.float32))


def test_position_table_is_resized_for_another_crop_size():
    cfg = make_config("tiny", in_chans=3, img_size=16, patch_size=4)
    state = dict(MaskedAutoencoderViT(cfg).state_dict())
    enc = MAEEncoder.load(state, img_size=32, num_heads=4, device="cpu")
    assert enc.config_.img_size == 32
    assert enc.extract(np.zeros((2, 3, 32, 32), np.float32))["mean"].shape == (2, 4, 64)


def test_remap_strips_wrappers():
    sd = remap_state_dict({"module.blocks.0.norm1.weight": torch.ones(2)})
    assert list(sd) == ["blocks.0.norm1.weight"]


def test_real_timm_vit_loads_when_timm_is_installed():
    timm = pytest.importorskip("timm", reason="timm (needs torchvision) is not installed")
    m = timm.create_model("vit_small_patch16_224", pretrained=False, in_chans=5, img_size=64,
                          num_classes=0).eval()
    enc = MAEEncoder.load(m.state_dict(), device="cpu")
    x = torch.randn(2, 5, 64, 64)
    feats = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: feats.append(o[:, 1:].mean(1)))
             for b in m.blocks]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    np.testing.assert_allclose(enc.extract(x.numpy())["mean"][:, -1], feats[-1].numpy(),
                               atol=1e-4)


def test_loaded_encoder_fine_tunes_its_weights(tmp_path):
    """load(path).fit(crops) starts from the loaded weights (no re-initialisation)."""
    x = blobs()
    base = small(steps=30, batch_size=16).fit(x)
    path = base.save(tmp_path / "enc.safetensors")
    frozen = MAEEncoder.load(path, device="cpu", bf16=False, steps=3, batch_size=8,
                             lr=0.0, progress=False)
    frozen.fit(x)   # lr 0: fine-tuning must leave every loaded weight as it was
    for k, v in weights(base).items():
        assert torch.equal(v, weights(frozen)[k]), k
    tuned = MAEEncoder.load(path, device="cpu", bf16=False, steps=5, batch_size=16,
                            lr=1e-3, warmup=1, progress=False, checkpoint_dir=tmp_path / "ck")
    tuned.fit(x)
    assert tuned.n_steps_ == 5
    assert any(not torch.equal(v, weights(tuned)[k]) for k, v in weights(base).items())
    # it starts where the base run ended, far below a fresh model's first loss
    fresh = small(steps=1, batch_size=16).fit(x)
    assert tuned.loss_history_[0] < 0.9 * fresh.loss_history_[0]
    # the pixel normalisation learned by the base run is kept
    assert torch.equal(tuned.model_.pixel_mean, base.model_.pixel_mean)
    # a checkpoint of this fine-tuning run is keyed on its starting weights
    assert len(list((tmp_path / "ck").glob("mae_pretrain_*.pt"))) == 1
    other = small(steps=5, batch_size=16, lr=1e-3, warmup=1, checkpoint_dir=tmp_path / "ck")
    other.fit(x)
    assert len(list((tmp_path / "ck").glob("mae_pretrain_*.pt"))) == 2


def test_loaded_encoder_without_warm_start_reinitialises_with_its_architecture(tmp_path):
    x = blobs()
    base = small(steps=2).fit(x)
    path = base.save(tmp_path / "enc.safetensors")
    enc = MAEEncoder.load(path, device="cpu", bf16=False, steps=2, batch_size=8,
                          progress=False, warm_start=False)
    enc.fit(x)   # "custom" size: the loaded architecture, fresh weights
    assert enc.config_ == base.config_ and enc.n_steps_ == 2
