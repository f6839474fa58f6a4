"""Loading outside weights into the ViT-MAE encoder, safely and with clear errors.

Checkpoints come in several dialects: timm ViTs and facebookresearch/mae use the names of
:class:`~workbench.models.vit_mae.MaskedAutoencoderViT` (``patch_embed.proj``,
``blocks.N.attn.qkv`` ...), often under a ``model.``/``module.`` prefix or inside a
``{"model": ...}`` wrapper; HuggingFace ``ViTMAE`` names its layers differently and keeps
query, key and value apart. :func:`remap_state_dict` brings all of them to one naming,
:func:`config_from_state_dict` reads the architecture off the tensor shapes, and
:func:`load_into` refuses weights that do not fit, naming the keys. Files are read only
through safetensors or ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.errors import InputFormatError, ValidationError
from workbench.models.vit_mae import MaskedAutoencoderViT, ViTConfig


def read_weights(path_or_state) -> tuple[dict[str, torch.Tensor], ViTConfig | None]:
    """Read a state dict safely: safetensors, or ``torch.load(weights_only=True)``."""
    import json

    meta_cfg = None
    if isinstance(path_or_state, dict):
        state = path_or_state
    else:
        path = Path(path_or_state)
        if not path.is_file():
            raise InputFormatError(f"weights file {path} does not exist.", "check the path.")
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                state = {k: fh.get_tensor(k) for k in fh.keys()}
                meta = fh.metadata() or {}
            if "workbench_vit_config" in meta:
                meta_cfg = ViTConfig(**json.loads(meta["workbench_vit_config"]))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise InputFormatError(
                    f"{path.name} cannot be loaded as plain weights ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}).",
                    "only tensors are read (weights_only=True); re-save the checkpoint as "
                    "safetensors or as a plain state dict from a trusted environment.") from exc
    for key in ("model", "state_dict", "module"):   # common wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k: torch.as_tensor(v) for k, v in state.items() if hasattr(v, "shape")}
    return remap_state_dict(state), meta_cfg


_HF = [  # HuggingFace ViTMAE -> timm names (after the "vit."/"encoder." prefixes are gone)
    ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
    ("embeddings.cls_token", "cls_token"), ("embeddings.position_embeddings", "pos_embed"),
    ("layernorm.", "norm."), ("layernorm_before.", "norm1."), ("layernorm_after.", "norm2."),
    ("attention.output.dense.", "attn.proj."), ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."), ("decoder.decoder_layers.", "decoder_blocks."),
    ("decoder.decoder_embed.", "decoder_embed."), ("decoder.decoder_norm.", "decoder_norm."),
    ("decoder.decoder_pred.", "decoder_pred."), ("decoder.mask_token", "mask_token"),
    ("decoder.decoder_pos_embed", "decoder_pos_embed"),
]


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring timm / MAE / HuggingFace ViTMAE key names to this module's (timm) names."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "model.", "backbone.", "vit.", "encoder."):
            if k.startswith(prefix) and not k.startswith("encoder.layer."):
                k = k[len(prefix):]
        if k.startswith("encoder.layer.") or k.startswith("layer."):
            k = "blocks." + k.split("layer.", 1)[1]
        for old, new in _HF:
            k = k.replace(old, new)
        out[k] = v
    # HuggingFace keeps q, k, v apart: fuse them into timm's qkv
    for name in [k for k in out if k.endswith("attention.attention.query.weight")]:
        base = name[: -len("attention.attention.query.weight")]
        for part in ("weight", "bias"):
            q, kk, vv = (out.pop(f"{base}attention.attention.{w}.{part}") for w in ("query", "key", "value"))
            out[f"{base}attn.qkv.{part}"] = torch.cat([q, kk, vv], 0)
    return out


def config_from_state_dict(state: dict[str, torch.Tensor], img_size: int | None = None) -> ViTConfig:
    """Infer the architecture (channels, patch, width, depth, heads, decoder) from weights."""
    w = state.get("patch_embed.proj.weight")
    if w is None or w.ndim != 4:
        raise ValidationError(
            "the weights hold no ViT patch embedding (patch_embed.proj.weight).",
            "give a ViT / MAE checkpoint (timm, facebookresearch/mae, HuggingFace ViTMAE "
            "or one saved by MAEEncoder.save).")
    d, c, p = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    n_pos = int(state["pos_embed"].shape[1]) if "pos_embed" in state else 64
    grid = int(round(math.sqrt(n_pos - 1 if math.isqrt(n_pos - 1) ** 2 == n_pos - 1 else n_pos)))
    heads = max(1, d // 64)
    dec = {}
    if "decoder_embed.weight" in state:
        dd = int(state["decoder_embed.weight"].shape[0])
        ddepth = 1 + max([int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks.")] or [0])
        dec = dict(decoder_dim=dd, decoder_depth=ddepth, decoder_heads=max(1, dd // 32))
    return ViTConfig(in_chans=c, img_size=img_size or grid * p, patch_size=p, embed_dim=d,
                     depth=depth, num_heads=heads, mlp_ratio=hidden / d, **dec)


def _resize_pos(pos: torch.Tensor, n_target: int) -> torch.Tensor:
    """Interpolate a (1, [1+]g*g, D) position table to another grid (bicubic)."""
    has_cls = math.isqrt(pos.shape[1] - 1) ** 2 == pos.shape[1] - 1
    cls, grid_part = (pos[:, :1], pos[:, 1:]) if has_cls else (torch.zeros_like(pos[:, :1]), pos)
    g_old, g_new = math.isqrt(grid_part.shape[1]), math.isqrt(n_target - 1)
    if g_old != g_new:
        img = grid_part.reshape(1, g_old, g_old, -1).permute(0, 3, 1, 2).float()
        img = F.interpolate(img, size=(g_new, g_new), mode="bicubic", align_corners=False)
        grid_part = img.permute(0, 2, 3, 1).reshape(1, g_new * g_new, -1)
    return torch.cat([cls, grid_part.to(pos.dtype)], 1)


def load_into(model: MaskedAutoencoderViT, state: dict[str, torch.Tensor],
              strict_decoder: bool = False) -> None:
    """Copy ``state`` into ``model``; a clear error naming the keys that do not fit.

    Encoder weights must all be present with matching shapes. Decoder weights are optional
    (a timm classifier checkpoint has none: the decoder stays random), and heads such as
    ``head.*`` or ``fc_norm.*`` are ignored.
    """
    own = model.state_dict()
    state = dict(state)
    for key in ("pos_embed", "decoder_pos_embed"):
        if key in state and state[key].shape != own[key].shape:
            state[key] = _resize_pos(state[key], own[key].shape[1])
    missing, wrong = [], []
    for k, v in own.items():
        decoderish = k.startswith(("decoder", "mask_token")) or k.startswith("pixel_")
        if k not in state:
            if not decoderish or (strict_decoder and not k.startswith("pixel_")):
                missing.append(k)
            continue
        if tuple(state[k].shape) != tuple(v.shape):
            wrong.append(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}")
    if missing or wrong:
        shown = "; ".join(wrong[:4] + [f"{k}: missing" for k in missing[:4]])
        raise ValidationError(
            f"the weights do not fit this encoder ({len(wrong)} shape mismatch(es), "
            f"{len(missing)} missing key(s)): {shown}.",
            "build the encoder from the weights (MAEEncoder.load(path) reads the architecture), "
            "or choose the matching size preset and crop channels.")
    model.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
