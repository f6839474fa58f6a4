"""Loading outside weights into the ViT encoder: strict, general, and with clear errors.

Checkpoints come in several dialects, all brought to timm's names
(``patch_embed.proj``, ``blocks.N.attn.qkv`` ...) by :func:`remap_state_dict`:

* timm ViT and facebookresearch/mae, often under ``model.``/``module.`` prefixes or a
  ``{"model": ...}`` wrapper;
* DINOv2 (Oquab et al. 2024) with LayerScale (``ls1.gamma``/``ls2.gamma``) and register
  tokens (``reg_token``, Darcet et al. 2024), in timm's layout;
* HuggingFace ``ViTMAE`` (q, k, v kept apart; ``vit.``-prefixed or bare, ``layer`` or
  ``layers``, as transformers 4 and 5 store them in memory);
* the channel-agnostic MAE of Recursion's open Phenom model (Kraus et al. 2024): one
  one-channel patch projection shared by all channels, a position table repeated per
  channel, parallel blocks (``in_proj``/``attn_out_proj``/``mlp_out_proj``) with q/k
  LayerNorm and LayerScale.

:func:`config_from_state_dict` builds the architecture from the tensor shapes, and
:func:`load_into` accounts for every key: a key the encoder does not know, or an encoder
key the weights lack, is an error naming it, unless the caller asks for partial loading,
which the returned report records. Heads the features never use (classifier, pooled-norm,
MAE decoders of other layouts) are listed as ignored. Files are read only through
safetensors or ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from workbench.errors import InputFormatError, ValidationError
from workbench.models.vit_arch import MaskedAutoencoderViT, ViTConfig

#: Keys of outside checkpoints that block features never use: accounted for, not loaded.
IGNORED = ("head.", "fc_norm.", "head_drop.", "encoder_decoder_proj.", "decoder.",
           "norm_pre.", "input_norm.")
_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.", "vit_backbone.", "vit.",
             "encoder.")
#: How 3-channel weights meet crops with more channels (see :func:`adapt_channels`).
CHANNEL_ADAPT = ("repeat", "average", "tokens")


def read_weights(path_or_state) -> tuple[dict[str, torch.Tensor], ViTConfig | None]:
    """Read a state dict safely: safetensors, or ``torch.load(weights_only=True)``.

    Common wrappers (``{"model": ...}``, ``state_dict``, ``module``) are unwrapped and the
    keys brought to timm's names (:func:`remap_state_dict`).

    Parameters
    ----------
    path_or_state : str, pathlib.Path or dict
        A weights file or a state dict already in memory.

    Returns
    -------
    state : dict of str to torch.Tensor
        The remapped tensors.
    config : ViTConfig or None
        The architecture a workbench safetensors file records in its metadata, else ``None``.
    """
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
    state = {str(k): torch.as_tensor(v) for k, v in state.items() if hasattr(v, "shape")}
    return remap_state_dict(state), meta_cfg


_HF = [  # HuggingFace ViTMAE -> timm names (after the prefixes are gone)
    ("embeddings.patch_embeddings.projection.", "patch_embed.proj."),
    ("embeddings.cls_token", "cls_token"), ("embeddings.position_embeddings", "pos_embed"),
    ("layernorm_before.", "norm1."), ("layernorm_after.", "norm2."), ("layernorm.", "norm."),
    ("attention.output.dense.", "attn.proj."), ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."), ("decoder.decoder_layers.", "decoder_blocks."),
    ("decoder.decoder_embed.", "decoder_embed."), ("decoder.decoder_norm.", "decoder_norm."),
    ("decoder.decoder_pred.", "decoder_pred."), ("decoder.mask_token", "mask_token"),
    ("decoder.decoder_pos_embed", "decoder_pos_embed"),
]
_LAYER = re.compile(r"^(?:encoder\.)?layers?\.(\d+)\.")
_QKV = re.compile(r"^(blocks\.\d+\.)(?:attention\.attention|attention\.self|attention|attn)\."
                  r"(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)$")


def _strip(k: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if k.startswith(prefix) and not _LAYER.match(k):
                k, changed = k[len(prefix):], True
    return k


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bring timm / MAE / DINOv2 / HuggingFace / Phenom key names to timm's names.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        The checkpoint's tensors.

    Returns
    -------
    dict of str to torch.Tensor
        The same tensors under timm's names, HuggingFace q/k/v fused into ``attn.qkv``.
    """
    out = {}
    hf = any("patch_embeddings.projection" in k for k in state)
    for k, v in state.items():
        k = _strip(k)
        m = _LAYER.match(k)
        if m:
            k = f"blocks.{m.group(1)}." + k[m.end():]
        if hf:
            for old, new in _HF:
                k = k.replace(old, new)
        out[k] = v
    # HuggingFace keeps q, k, v apart: fuse them into timm's qkv
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k in list(out):
        m = _QKV.match(k)
        if m:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)[0]] = out.pop(k)
    for (base, kind), d in parts.items():
        if set(d) != {"q", "k", "v"}:
            raise ValidationError(f"{base}attention has only {sorted(d)} of query/key/value "
                                  f"{kind}.", "give the complete checkpoint.")
        out[f"{base}attn.qkv.{kind}"] = torch.cat([d["q"], d["k"], d["v"]], 0)
    return out


def _largest_square_grid(n: int) -> int:
    """Largest g with g*g dividing n (the patch grid of a per-channel position table)."""
    for g in range(math.isqrt(n), 0, -1):
        if n % (g * g) == 0:
            return g
    return 1


def config_from_state_dict(state: dict[str, torch.Tensor], img_size: int | None = None,
                           num_heads: int | None = None) -> ViTConfig:
    """The architecture (layout, channels, patch, width, depth, heads, decoder) from shapes.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        Tensors under timm's names (:func:`remap_state_dict`).
    img_size : int, optional
        Crop side in pixels (default: from the position table, else 8 patches).
    num_heads : int, optional
        Attention heads (default: from the q/k norm width, else ``embed_dim // 64``).

    Returns
    -------
    ViTConfig
        The architecture.
    """
    w = state.get("patch_embed.proj.weight")
    if w is None or w.ndim != 4:
        shown = ", ".join(sorted(state)[:6]) or "none"
        raise ValidationError(
            f"the weights hold no ViT patch embedding (patch_embed.proj.weight); first keys: "
            f"{shown}.",
            "give a ViT / MAE checkpoint (timm, DINOv2, facebookresearch/mae, HuggingFace "
            "ViTMAE, Recursion Phenom or one saved by MAEEncoder.save).")
    d, c, p = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
    blocks = sorted({int(k.split(".")[1]) for k in state if re.match(r"blocks\.\d+\.", k)})
    if not blocks:
        raise ValidationError("the weights hold a patch embedding but no transformer blocks "
                              "(no blocks.N.* keys after renaming).",
                              "check that the checkpoint holds the encoder, not only a head.")
    parallel = "blocks.0.in_proj.weight" in state
    if parallel:
        hidden = int(state["blocks.0.in_proj.weight"].shape[0]) - 3 * d
        qk = "blocks.0.q_norm.weight"
        qkv_bias = "blocks.0.in_proj.bias" in state
        ls = "blocks.0.ls.gamma" in state
    else:
        hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
        qk = "blocks.0.attn.q_norm.weight"
        qkv_bias = "blocks.0.attn.qkv.bias" in state
        ls = "blocks.0.ls1.gamma" in state
    regs = int(state["reg_token"].shape[1]) if "reg_token" in state else 0
    heads = num_heads or (d // int(state[qk].shape[0]) if qk in state else max(1, d // 64))
    n_pos = int(state["pos_embed"].shape[1]) if "pos_embed" in state else None
    agnostic = c == 1 and n_pos is not None
    pos_prefix, max_chans, grid = True, 0, None
    if img_size:
        grid = img_size // p
    if n_pos is not None:
        if agnostic:
            grid = grid or _largest_square_grid(n_pos - 1 - regs)
            max_chans = (n_pos - 1 - regs) // (grid * grid)
        else:
            for prefix in (1 + regs, 0):
                if math.isqrt(n_pos - prefix) ** 2 == n_pos - prefix:
                    grid, pos_prefix = grid or math.isqrt(n_pos - prefix), prefix > 0
                    break
    grid = grid or 8
    dec = {}
    if "decoder_embed.weight" in state:
        dd = int(state["decoder_embed.weight"].shape[0])
        ddepth = 1 + max([int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks.")] or [0])
        dec = dict(decoder_dim=dd, decoder_depth=ddepth, decoder_heads=max(1, dd // 32))
    return ViTConfig(in_chans=max(c, max_chans) if agnostic else c, img_size=grid * p,
                     patch_size=p, embed_dim=d, depth=blocks[-1] + 1, num_heads=int(heads),
                     mlp_ratio=hidden / d, block="parallel" if parallel else "serial",
                     layer_scale=ls, qk_norm=qk in state, qkv_bias=qkv_bias, n_registers=regs,
                     pos_prefix=pos_prefix, channel_agnostic=agnostic, max_chans=max_chans, **dec)


def adapt_channels(state: dict[str, torch.Tensor], cfg: ViTConfig, n_chans: int,
                   how: str) -> tuple[dict[str, torch.Tensor], ViTConfig]:
    """Fit weights made for ``cfg.in_chans`` (e.g. 3, ImageNet) to ``n_chans``-channel crops.

    * ``"repeat"``: the patch filters are cycled over the new channels and scaled by
      ``in_chans / n_chans`` (timm's ``adapt_input_conv``): a crop whose channels are
      copies of an RGB image gives the RGB features.
    * ``"average"``: every channel gets the mean filter times ``in_chans / n_chans``, i.e.
      the model sees the mean of the crop's channels as a grey image.
    * ``"tokens"``: the filters are summed into one grey filter applied to each channel
      separately (per-channel tokens, as channel-agnostic models do), the position table
      repeated per channel: no channel is blended with another.

    A channel-agnostic model needs no change of weights: only its configuration follows.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        Tensors under timm's names.
    cfg : ViTConfig
        Their architecture.
    n_chans : int
        Channels of the crops.
    how : str
        One of :data:`CHANNEL_ADAPT`.

    Returns
    -------
    state : dict of str to torch.Tensor
        The adapted tensors.
    cfg : ViTConfig
        The adapted architecture.
    """
    if how not in CHANNEL_ADAPT:
        raise ValidationError(f"unknown channel adaptation {how!r}.", f"use one of {CHANNEL_ADAPT}.")
    if cfg.channel_agnostic:
        return state, replace(cfg, in_chans=n_chans, max_chans=max(cfg.max_chans, n_chans))
    state = dict(state)
    w = state["patch_embed.proj.weight"]
    c = w.shape[1]
    if how == "repeat":
        state["patch_embed.proj.weight"] = w[:, [i % c for i in range(n_chans)]] * (c / n_chans)
        return state, replace(cfg, in_chans=n_chans)
    if how == "average":
        mean = w.mean(1, keepdim=True) * (c / n_chans)
        state["patch_embed.proj.weight"] = mean.expand(-1, n_chans, -1, -1).clone()
        return state, replace(cfg, in_chans=n_chans)
    state["patch_embed.proj.weight"] = w.sum(1, keepdim=True)
    pos = state.get("pos_embed")
    if pos is not None:
        lead = (1 + cfg.n_registers) if cfg.pos_prefix else 0
        state["pos_embed"] = torch.cat([pos[:, :lead]] + [pos[:, lead:]] * n_chans, 1)
    return state, replace(cfg, in_chans=n_chans, channel_agnostic=True, max_chans=n_chans)


def _resize_pos(pos: torch.Tensor, own: torch.Tensor, cfg: ViTConfig) -> torch.Tensor:
    """Interpolate a position table to the encoder's grid (bicubic, per channel block)."""
    lead = (1 + cfg.n_registers) if cfg.pos_prefix else 0
    reps = max(cfg.max_chans, cfg.in_chans) if cfg.channel_agnostic else 1
    head, body = pos[:, :lead], pos[:, lead:]
    g_old = math.isqrt(body.shape[1] // reps)
    g_new = cfg.grid
    if g_old * g_old * reps != body.shape[1] or body.shape[1] // reps * reps != body.shape[1]:
        return pos
    chunks = body.reshape(1, reps, g_old, g_old, -1)
    out = []
    for r in range(reps):
        img = chunks[:, r].permute(0, 3, 1, 2).float()
        img = F.interpolate(img, size=(g_new, g_new), mode="bicubic", align_corners=False)
        out.append(img.permute(0, 2, 3, 1).reshape(1, g_new * g_new, -1))
    return torch.cat([head] + [o.to(pos.dtype) for o in out], 1)


def _decoderish(k: str) -> bool:
    return k.startswith(("decoder", "mask_token", "pixel_"))


def load_into(model: MaskedAutoencoderViT, state: dict[str, torch.Tensor], *,
              strict_decoder: bool = False, partial: bool = False) -> dict:
    """Copy ``state`` into ``model``, accounting for every key; returns the load report.

    Unknown keys, encoder keys the weights lack, and shape mismatches are an error that
    names them, unless ``partial`` (then they are skipped and listed in the report). The
    MAE decoder is optional (a classifier checkpoint has none: it stays at its seeded
    initialisation, reported as such) unless ``strict_decoder``. Heads in
    :data:`IGNORED` are reported as ignored.

    Parameters
    ----------
    model : MaskedAutoencoderViT
        The network to fill (in place).
    state : dict of str to torch.Tensor
        Tensors under timm's names; position tables of another grid are interpolated.
    strict_decoder : bool
        Require the MAE decoder's keys too.
    partial : bool
        Skip what does not fit instead of raising.

    Returns
    -------
    dict
        ``loaded`` (count), ``partial``, ``missing``, ``shape_mismatch``, ``unknown``,
        ``ignored``, ``kept_init`` and ``decoder_loaded``.

    Raises
    ------
    ValidationError
        When keys are unknown, missing or of the wrong shape and ``partial`` is False.
    """
    own = model.state_dict()
    state = dict(state)
    for key in ("pos_embed", "decoder_pos_embed"):
        if key in state and state[key].shape != own[key].shape:
            state[key] = _resize_pos(state[key], own[key], model.cfg)
    missing, wrong, unknown, ignored, kept_init = [], [], [], [], []
    for k, v in own.items():
        if k not in state:
            if k.startswith("pixel_"):
                continue
            if _decoderish(k) and not strict_decoder:
                kept_init.append(k)
            elif k.startswith("norm."):
                kept_init.append(k)     # a pooled-norm model has fc_norm instead: unused
            else:
                missing.append(k)
        elif tuple(state[k].shape) != tuple(v.shape):
            if _decoderish(k) and not strict_decoder:   # another layout's decoder: unused
                ignored.append(k)
                kept_init.append(k)
                continue
            wrong.append(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}")
    for k in state:
        if k in own or k in ignored:
            continue
        (ignored if k.startswith(IGNORED) else unknown).append(k)
    problems = wrong + [f"{k}: missing" for k in missing] + [f"{k}: unknown" for k in unknown]
    if problems and not partial:
        raise ValidationError(
            f"the weights do not fit this encoder ({len(wrong)} shape mismatch(es), "
            f"{len(missing)} missing key(s), {len(unknown)} unknown key(s)): "
            f"{'; '.join(problems[:8])}{' ...' if len(problems) > 8 else ''}.",
            "build the encoder from the weights (MAEEncoder.load(path) reads the architecture), "
            "choose the matching size preset and crop channels, or pass partial=True to load "
            "what fits (recorded in the provenance).")
    bad = {p.split(":")[0] for p in wrong} | set(ignored)
    model.load_state_dict({k: state[k] for k in own if k in state and k not in bad}, strict=False)
    n_decoder = sum(k in state for k in own if _decoderish(k) and not k.startswith("pixel_"))
    return {"loaded": int(sum(k in state and k not in bad for k in own)),
            "partial": bool(partial and problems), "missing": missing,
            "shape_mismatch": wrong, "unknown": unknown, "ignored": ignored,
            "kept_init": kept_init, "decoder_loaded": bool(n_decoder)}
