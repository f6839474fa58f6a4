"""The ViT masked-autoencoder network: configuration, presets and torch modules.

The layout and module names follow timm's ViT and facebookresearch/mae (He et al. 2022,
"Masked Autoencoders Are Scalable Vision Learners"), so outside checkpoints map onto it
(:mod:`workbench.models.vit_weights`). The estimator that trains and uses it is
:class:`workbench.models.vit_mae.MAEEncoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ValidationError


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of the encoder and its MAE decoder.

    Parameters
    ----------
    in_chans : int
        Image channels.
    img_size : int
        Crop side in pixels (a multiple of ``patch_size``).
    patch_size : int
        Patch side in pixels.
    embed_dim : int
        Encoder token width.
    depth : int
        Encoder blocks.
    num_heads : int
        Encoder attention heads.
    mlp_ratio : float
        MLP hidden width as a multiple of the token width.
    decoder_dim : int
        Decoder token width.
    decoder_depth : int
        Decoder blocks.
    decoder_heads : int
        Decoder attention heads.
    block : str
        ``"serial"`` (timm ``Block``) or ``"parallel"`` (timm ``ParallelScalingBlock``, as in
        Recursion's Phenom models); outside weights set it from their shapes
        (:mod:`workbench.models.vit_weights`).
    layer_scale : bool
        LayerScale on the residual branches.
    qk_norm : bool
        LayerNorm on queries and keys.
    qkv_bias : bool
        Bias on the q/k/v projection.
    norm_eps : float
        LayerNorm epsilon of the encoder.
    n_registers : int
        Register tokens after the class token (DINOv2 with registers, Darcet et al. 2024).
    pos_prefix : bool
        Whether the position table has rows for the class/register tokens (timm
        ``no_embed_class=False``) or only for patches.
    channel_agnostic : bool
        Channel-agnostic patch tokens (Kraus et al. 2024, CA-MAE): one shared 1-channel
        projection, one token per channel and patch, the position table repeated per channel.
    max_chans : int
        How many channels the channel-agnostic position table holds.
    input_norm : str
        ``"fixed"`` (per-channel ``pixel_mean``/``pixel_std`` buffers: fitted mean/std or
        percentile range) or ``"self"`` (each crop and channel standardised on itself, as
        Phenom does).
    pixel_scale : float
        Divides raw pixels before the normalisation (e.g. 255).
    """

    in_chans: int = 5
    img_size: int = 64
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    decoder_dim: int = 64
    decoder_depth: int = 1
    decoder_heads: int = 4
    #: Layout of outside weights (built from their shapes by :mod:`vit_weights`):
    #: ``block`` "serial" (timm ``Block``) or "parallel" (timm ``ParallelScalingBlock``, as in
    #: Recursion's Phenom models); LayerScale; query/key LayerNorm; bias on q/k/v.
    block: str = "serial"
    layer_scale: bool = False
    qk_norm: bool = False
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    #: Register tokens after the class token (DINOv2 with registers, Darcet et al. 2024).
    n_registers: int = 0
    #: Whether the position table has rows for the class/register tokens (timm
    #: ``no_embed_class=False``) or only for patches.
    pos_prefix: bool = True
    #: Channel-agnostic patch tokens (Kraus et al. 2024, CA-MAE): one shared 1-channel
    #: projection, one token per channel and patch, the position table repeated per
    #: channel; ``max_chans`` is how many channels that table holds.
    channel_agnostic: bool = False
    max_chans: int = 0
    #: Input normalisation: "fixed" (per-channel ``pixel_mean``/``pixel_std`` buffers:
    #: fitted mean/std or percentile range) or "self" (each crop and channel standardised
    #: on itself, as Phenom does); ``pixel_scale`` divides raw pixels first (e.g. 255).
    input_norm: str = "fixed"
    pixel_scale: float = 1.0

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid ** 2


#: Size presets. ``tiny`` is for CPUs and tests; ``small``/``base``/``large`` are the ViT-S/16,
#: B/16 and L/16 shapes with the standard MAE decoder (512 wide, 8 blocks).
PRESETS: dict[str, dict] = {
    "tiny": dict(patch_size=8, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0,
                 decoder_dim=64, decoder_depth=1, decoder_heads=4),
    "small": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6,
                  decoder_dim=512, decoder_depth=8, decoder_heads=16),
    "base": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12,
                 decoder_dim=512, decoder_depth=8, decoder_heads=16),
    "large": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16,
                  decoder_dim=512, decoder_depth=8, decoder_heads=16),
}


def make_config(size: str = "tiny", in_chans: int = 5, img_size: int = 64, **overrides) -> ViTConfig:
    """A :class:`ViTConfig` from a preset name, channel count and crop size.

    Parameters
    ----------
    size : str
        A key of :data:`PRESETS`.
    in_chans : int
        Image channels.
    img_size : int
        Crop side in pixels; must be a multiple of the patch size.
    **overrides
        Fields of :class:`ViTConfig` replacing the preset's.

    Returns
    -------
    ViTConfig
        The configuration.
    """
    if size not in PRESETS:
        raise ValidationError(f"unknown encoder size {size!r}.", f"use one of {sorted(PRESETS)}.")
    cfg = ViTConfig(in_chans=in_chans, img_size=img_size, **{**PRESETS[size], **overrides})
    if img_size % cfg.patch_size:
        raise ValidationError(
            f"crop size {img_size} is not a multiple of the patch size {cfg.patch_size}.",
            "crop or pad the images to a multiple of the patch size, or pass patch_size=...")
    return cfg


def sincos_pos_embed(dim: int, grid: int, cls: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position codes (as in MAE), with a zero row for the class token.

    Parameters
    ----------
    dim : int
        Code width.
    grid : int
        Patches per side.
    cls : bool
        Prepend a zero row for the class token.

    Returns
    -------
    torch.Tensor
        ``(1, grid**2 (+ 1), dim)`` float32.
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / max(quarter, 1))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        out = coord[:, None] * omega[None]
        parts += [torch.sin(out), torch.cos(out)]
    emb = torch.cat(parts, 1)
    emb = F.pad(emb, (0, dim - emb.shape[1]))
    if cls:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], 0)
    return emb.float()[None]


class Attention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection (timm layout).

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Attention heads.
    qkv_bias : bool
        Bias on the q/k/v projection.
    qk_norm : bool
        LayerNorm on queries and keys, per head.
    eps : float
        LayerNorm epsilon.
    """
    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, qk_norm: bool = False,
                 eps: float = 1e-6):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if qk_norm:
            self.q_norm = nn.LayerNorm(dim // heads, eps=eps)
            self.k_norm = nn.LayerNorm(dim // heads, eps=eps)
        self.qk_norm = qk_norm
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        """Self-attention over the tokens.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, tokens, dim)``.

        Returns
        -------
        torch.Tensor
            The same shape.
        """
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (Touvron et al. 2021, CaiT; used by DINOv2).

    Parameters
    ----------
    dim : int
        Channels.
    init : float
        Initial scale.
    """

    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x):
        """``x * gamma``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, tokens, dim)``.

        Returns
        -------
        torch.Tensor
            The same shape.
        """
        return x * self.gamma


class Mlp(nn.Module):
    """Two-layer GELU MLP of a transformer block (timm layout).

    Parameters
    ----------
    dim : int
        Input and output width.
    hidden : int
        Hidden width.
    """
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        """``fc2(gelu(fc1(x)))``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, tokens, dim)``.

        Returns
        -------
        torch.Tensor
            The same shape.
        """
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm layout).

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Attention heads (``dim`` must divide by it).
    mlp_ratio : float
        MLP hidden width as a multiple of ``dim``.
    layer_scale : bool
        Scale the residual branches with :class:`LayerScale`.
    qkv_bias : bool
        Bias on the q/k/v projection.
    qk_norm : bool
        LayerNorm on queries and keys, per head.
    eps : float
        LayerNorm epsilon.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, layer_scale: bool = False,
                 qkv_bias: bool = True, qk_norm: bool = False, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias, qk_norm, eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x):
        """Attention then MLP, each a pre-norm residual branch.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, tokens, dim)``.

        Returns
        -------
        torch.Tensor
            The same shape.
        """
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ParallelBlock(nn.Module):
    """Attention and MLP side by side from one fused input projection (Dehghani et al.
    2023, "Scaling Vision Transformers to 22 Billion Parameters"); timm's
    ``ParallelScalingBlock`` names, the block of Recursion's Phenom encoders. The fused
    projection's rows are [MLP hidden | q | k | v].

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Attention heads (``dim`` must divide by it).
    mlp_ratio : float
        MLP hidden width as a multiple of ``dim``.
    layer_scale : bool
        Scale the residual branches with :class:`LayerScale`.
    qkv_bias : bool
        Bias on the q/k/v projection (without it, the MLP part of the fused projection keeps its own bias).
    qk_norm : bool
        LayerNorm on queries and keys, per head.
    eps : float
        LayerNorm epsilon.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, layer_scale: bool = False,
                 qkv_bias: bool = False, qk_norm: bool = False, eps: float = 1e-6):
        super().__init__()
        self.heads, self.hidden = heads, int(dim * mlp_ratio)
        self.in_norm = nn.LayerNorm(dim, eps=eps)
        self.in_proj = nn.Linear(dim, self.hidden + 3 * dim, bias=qkv_bias)
        self.mlp_bias = None if qkv_bias else nn.Parameter(torch.zeros(self.hidden))
        self.qk_norm = qk_norm
        if qk_norm:
            self.q_norm = nn.LayerNorm(dim // heads, eps=eps)
            self.k_norm = nn.LayerNorm(dim // heads, eps=eps)
        self.attn_out_proj = nn.Linear(dim, dim)
        self.mlp_out_proj = nn.Linear(self.hidden, dim)
        self.ls = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x):
        """Attention and MLP from one normalised input, added to the residual.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, tokens, dim)``.

        Returns
        -------
        torch.Tensor
            The same shape.
        """
        b, n, d = x.shape
        y = self.in_norm(x)
        if self.mlp_bias is not None:
            bias = torch.cat([self.mlp_bias, self.mlp_bias.new_zeros(3 * d)])
            y = F.linear(y, self.in_proj.weight, bias)
        else:
            y = self.in_proj(y)
        h, q, k, v = torch.split(y, [self.hidden, d, d, d], dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        return x + self.ls(self.attn_out_proj(a) + self.mlp_out_proj(F.gelu(h)))


class PatchEmbed(nn.Module):
    """Patch tokens: one per patch over all channels, or (channel-agnostic) one per channel
    and patch from a shared one-channel projection, channel-major as in CA-MAE.

    Parameters
    ----------
    cfg : ViTConfig
        Gives the channels, patch size, width and whether tokens are channel-agnostic.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.channel_agnostic = cfg.channel_agnostic
        c = 1 if cfg.channel_agnostic else cfg.in_chans
        self.proj = nn.Conv2d(c, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x):
        """Patch tokens of normalised crops.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)``.

        Returns
        -------
        torch.Tensor
            ``(batch, patches, embed_dim)``, or ``(batch, C * patches, embed_dim)`` when
            channel-agnostic (channel-major).
        """
        if self.channel_agnostic:
            b, c, h, w = x.shape
            t = self.proj(x.reshape(b * c, 1, h, w)).flatten(2).transpose(1, 2)
            return t.reshape(b, c * t.shape[1], t.shape[2])
        return self.proj(x).flatten(2).transpose(1, 2)


def make_block(cfg: ViTConfig) -> nn.Module:
    """One encoder block of the kind ``cfg.block`` names.

    Parameters
    ----------
    cfg : ViTConfig
        The architecture.

    Returns
    -------
    torch.nn.Module
        A :class:`Block` or a :class:`ParallelBlock`.
    """
    kind = {"serial": Block, "parallel": ParallelBlock}.get(cfg.block)
    if kind is None:
        raise ValidationError(f"unknown block type {cfg.block!r}.", "use 'serial' or 'parallel'.")
    return kind(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, layer_scale=cfg.layer_scale,
                qkv_bias=cfg.qkv_bias, qk_norm=cfg.qk_norm, eps=cfg.norm_eps)


class MaskedAutoencoderViT(nn.Module):
    """ViT encoder plus a light decoder that reconstructs masked patches.

    Parameters
    ----------
    cfg : ViTConfig
        The architecture.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        d, dd = cfg.embed_dim, cfg.decoder_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if cfg.n_registers:
            self.reg_token = nn.Parameter(torch.zeros(1, cfg.n_registers, d))
        pos = sincos_pos_embed(d, cfg.grid)
        if cfg.channel_agnostic:   # the grid's codes repeated for every channel
            pos = torch.cat([pos[:, :1]] + [pos[:, 1:]] * max(cfg.max_chans, cfg.in_chans), 1)
        if cfg.pos_prefix and cfg.n_registers:
            pos = torch.cat([pos[:, :1]] * (1 + cfg.n_registers) + [pos[:, 1:]], 1)
        if not cfg.pos_prefix:
            pos = pos[:, 1:]
        self.pos_embed = nn.Parameter(pos, requires_grad=False)
        self.blocks = nn.ModuleList(make_block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dd, cfg.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, cfg.patch_size ** 2 * cfg.in_chans)
        # per-channel pixel normalisation, fitted on the training crops (part of the model)
        self.register_buffer("pixel_mean", torch.zeros(cfg.in_chans))
        self.register_buffer("pixel_std", torch.ones(cfg.in_chans))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    # -- pieces
    def normalize(self, x):
        """The recorded input normalisation (see :class:`ViTConfig`), applied to raw crops.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)`` raw crops.

        Returns
        -------
        torch.Tensor
            The normalised crops, same shape.
        """
        if self.cfg.pixel_scale != 1.0:
            x = x / self.cfg.pixel_scale
        if self.cfg.input_norm == "self":
            return F.instance_norm(x)
        c = x.shape[1]   # a channel-agnostic model may see fewer channels than its table
        return (x - self.pixel_mean[None, :c, None, None]) / self.pixel_std[None, :c, None, None]

    def patchify(self, x):
        """Cut crops into flattened patches, ``(batch, patches, p * p * C)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)``.

        Returns
        -------
        torch.Tensor
            Patches in row-major grid order, each flattened as ``(p, p, C)``.
        """
        p, g = self.cfg.patch_size, self.cfg.grid
        b, c = x.shape[:2]
        x = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, g * g, p * p * c)

    @property
    def n_prefix(self) -> int:
        """Tokens before the patches: the class token and any registers."""
        return 1 + self.cfg.n_registers

    def tokens(self, x):
        """Patch tokens with position codes (no class or register token yet).

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)`` raw crops.

        Returns
        -------
        torch.Tensor
            ``(batch, patches, embed_dim)``.
        """
        t = self.patch_embed(self.normalize(x))
        start = self.n_prefix if self.cfg.pos_prefix else 0
        return t + self.pos_embed[:, start: start + t.shape[1]]

    def _with_cls(self, x):
        cls = self.cls_token
        if self.cfg.pos_prefix:
            cls = cls + self.pos_embed[:, :1]
        parts = [cls.expand(x.shape[0], -1, -1)]
        if self.cfg.n_registers:
            reg = self.reg_token
            if self.cfg.pos_prefix:
                reg = reg + self.pos_embed[:, 1: self.n_prefix]
            parts.append(reg.expand(x.shape[0], -1, -1))
        return torch.cat(parts + [x], 1)

    # -- pretraining
    def forward_loss(self, x, mask_ratio: float, generator: torch.Generator | None = None):
        """Masked-reconstruction loss: MSE on the hidden patches, per-patch normalised target.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)`` raw crops.
        mask_ratio : float
            Share of patches hidden.
        generator : torch.Generator, optional
            Draws the masks.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        tok = self.tokens(x)
        b, n, d = tok.shape
        keep = max(1, int(round(n * (1 - mask_ratio))))
        noise = torch.rand(b, n, generator=generator).to(x.device)
        order = noise.argsort(1)
        restore = order.argsort(1)
        visible = torch.gather(tok, 1, order[:, :keep, None].expand(-1, -1, d))
        h = self._with_cls(visible)
        for blk in self.blocks:
            h = blk(h)
        h = self.decoder_embed(self.norm(h))
        filler = self.mask_token.expand(b, n - keep, -1)
        y = torch.cat([h[:, 1:], filler], 1)
        y = torch.gather(y, 1, restore[:, :, None].expand(-1, -1, y.shape[2]))
        y = torch.cat([h[:, :1], y], 1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            y = blk(y)
        pred = self.decoder_pred(self.decoder_norm(y))[:, 1:].float()
        target = self.patchify(self.normalize(x)).float()
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, restore)
        per_patch = ((pred - target) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum()

    # -- features
    def block_features(self, x, max_block: int | None = None):
        """Run the encoder once; per block, the mean patch token and the class token.

        Blocks after ``max_block`` (1-based) are not computed ("trimming").

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, C, H, W)`` raw crops.
        max_block : int, optional
            Last block computed.

        Returns
        -------
        means, cls : torch.Tensor
            Each ``(batch, n_blocks, embed_dim)``, float32.
        """
        h = self._with_cls(self.tokens(x))
        means, clss = [], []
        for i, blk in enumerate(self.blocks):
            if max_block is not None and i >= max_block:
                break
            h = blk(h)
            means.append(h[:, self.n_prefix:].mean(1).float())
            clss.append(h[:, 0].float())
        return torch.stack(means, 1), torch.stack(clss, 1)
