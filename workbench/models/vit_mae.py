"""A Vision Transformer masked autoencoder (ViT-MAE) for multi-channel microscopy crops.

The idea (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", CVPR): cut a
crop into square patches, hide most of them (75 %), encode only the visible ones with a
ViT, and ask a small decoder to paint the hidden patches back. A model that can do this has
learned what cells look like, without any labels. Kraus et al. 2024 ("Masked autoencoders
for microscopy are scalable learners of cellular biology", CVPR) and Kenyon-Dean et al.
2024 ("ViTally Consistent", arXiv 2411.02572) train such models on Cell Painting crops and
find that the best features for biology often come from an *intermediate* block, so
:meth:`MAEEncoder.extract` returns every block's features in one forward pass: the mean of
the patch tokens and the class token, per block.

Sizes go from ``tiny`` (trains on a laptop CPU in seconds) to the ViT-S/B/L shapes used on
GPUs. Module names follow timm's ViT (``patch_embed.proj``, ``blocks.N.attn.qkv`` ...), so
timm and facebookresearch/mae checkpoints load directly; HuggingFace ``ViTMAE`` names are
mapped (:mod:`workbench.models.vit_weights`). Outside weights load only through
safetensors or ``torch.load(weights_only=True)``. The network itself lives in
:mod:`workbench.models.vit_arch`; its names are importable from here too.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.errors import ValidationError
from workbench.models._checkpoint import deferred_interrupt, load_checkpoint, save_checkpoint
from workbench.models._device import (
    autocast,
    isolated_torch_rng,
    make_generator,
    numpy_generator,
    resolve_device,
    to_numpy,
    torch_threads,
)
from workbench.models.vit_arch import (  # noqa: F401  (the network's public names live here too)
    PRESETS,
    Attention,
    Block,
    MaskedAutoencoderViT,
    Mlp,
    PatchEmbed,
    ViTConfig,
    make_config,
    sincos_pos_embed,
)


# ---------------------------------------------------------------------- data helpers
class cpu_threads(torch_threads):
    """Run small models single-threaded on CPU: for a tiny ViT the cost of waking OpenMP
    threads exceeds the work (20x slower on a loaded 2-core machine), so ``n`` threads are
    used inside the block and the previous setting is restored after it.

    Parameters
    ----------
    device : torch.device
        The device the model runs on; threads are changed on CPU only.
    cfg : ViTConfig
        The architecture; "small" means ``embed_dim * n_patches <= 64 * 256``.
    n : int, optional
        Threads to use instead (``None``: 1 for a small model on CPU, else unchanged).
    """

    def __init__(self, device: torch.device, cfg: ViTConfig, n: int | None = None):
        small = cfg.embed_dim * cfg.n_patches <= 64 * 256
        super().__init__(n if n is not None else (1 if small and device.type == "cpu" else None))


def take(crops, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` (sorted) of a numpy, zarr or dask array of crops, as float32 numpy.

    Parameters
    ----------
    crops : array_like
        ``(n, C, H, W)`` numpy, zarr or dask array.
    idx : numpy.ndarray of int
        Sorted row indices.

    Returns
    -------
    numpy.ndarray
        ``(len(idx), C, H, W)`` float32.
    """
    if hasattr(crops, "get_orthogonal_selection"):
        out = crops.get_orthogonal_selection((idx,))
    elif hasattr(crops, "compute"):
        out = crops[idx].compute()
    else:
        out = np.asarray(crops)[idx]
    return np.asarray(out, dtype=np.float32)


def in_memory(crops, limit_bytes: float = 2e9):
    """Load a lazy (zarr/dask) crop stack into RAM when it is small; else keep it lazy.

    Parameters
    ----------
    crops : array_like
        A numpy, zarr or dask array.
    limit_bytes : float
        Largest size loaded.

    Returns
    -------
    numpy.ndarray or array_like
        The crops in memory, or ``crops`` itself when larger than ``limit_bytes``.
    """
    if isinstance(crops, np.ndarray):
        return crops
    nbytes = int(np.prod(crops.shape)) * np.dtype(crops.dtype).itemsize
    if nbytes > limit_bytes:
        return crops
    return np.asarray(crops.compute() if hasattr(crops, "compute") else crops[...])


def _check_crops(crops, cfg: ViTConfig | None):
    shape = tuple(crops.shape)
    if len(shape) != 4:
        raise ValidationError(f"crops have shape {shape}; expected (n, channels, height, width).",
                              "stack crops as n x C x H x W.")
    if shape[2] != shape[3]:
        raise ValidationError(f"crops are {shape[2]}x{shape[3]} pixels; the encoder needs squares.",
                              "crop square tiles from the fields.")
    chans_ok = cfg is None or (shape[1] <= max(cfg.max_chans, cfg.in_chans) if
                               cfg.channel_agnostic else shape[1] == cfg.in_chans)
    if cfg is not None and (not chans_ok or shape[2] != cfg.img_size):
        raise ValidationError(
            f"crops are {shape[1]} channels x {shape[2]} px but the encoder was built for "
            f"{cfg.in_chans} channels x {cfg.img_size} px.",
            "use an encoder made for these crops (MAEEncoder(in_chans=..., img_size=...)), or "
            "resize the crops.")


def _weights_digest(model: nn.Module) -> str:
    """Hash of a model's weights (names, shapes and bytes), to key fine-tuning runs."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _has_pixel_stats(model: MaskedAutoencoderViT) -> bool:
    """Whether the model carries fitted pixel statistics (not the 0/1 defaults)."""
    return bool(model.pixel_mean.abs().sum() > 0 or (model.pixel_std - 1).abs().sum() > 0)


# ---------------------------------------------------------------------- estimator
class MAEEncoder:
    """Masked-autoencoder pretraining and block-wise feature extraction, sklearn style.

    Parameters
    ----------
    size : {"tiny", "small", "base", "large"}
        Architecture preset (:data:`PRESETS`).
    in_chans : int, optional
        Image channels (default: the data's, else 5).
    img_size : int, optional
        Crop side in pixels (default: the data's, else 64).
    patch_size : int, optional
        Patch side, replacing the preset's.
    mask_ratio : float
        Fraction of patches hidden during pretraining (0.75 as in MAE).
    steps, batch_size, grad_accum : int
        Optimiser steps; crops per micro-batch; micro-batches summed per step.
    lr, weight_decay : float
        AdamW learning rate and weight decay (linear warm-up then cosine decay to zero).
    warmup : int
        Warm-up steps.
    checkpoint_dir : str or os.PathLike, optional
        Where to checkpoint; a later ``fit`` with the same folder resumes and reaches the same
        weights as an uninterrupted run, also after a Ctrl-C in the middle of a step (the
        step is replayed from the generator state it started with).
    checkpoint_every : int
        Steps between checkpoints.
    device : str
        "auto" (CUDA, then MPS, then CPU) or a torch device name.
    bf16 : bool
        bf16 autocast where the device supports it.
    seed : int
        Seeds the encoder's own generators (initialisation, batches, masks); the caller's
        global random state is never read or changed.
    progress : bool
        Show a progress bar while training.
    callbacks : sequence of callable, optional
        Each called as ``cb(step, loss)`` after every optimiser step.
    warm_start : bool
        ``fit`` continues from the weights the encoder already holds (fine-tuning) instead
        of a fresh initialisation. :meth:`load` returns encoders with ``warm_start=True``.
    """

    def __init__(self, size: str = "tiny", *, in_chans: int | None = None,
                 img_size: int | None = None, patch_size: int | None = None,
                 mask_ratio: float = 0.75, steps: int = 200, batch_size: int = 32,
                 grad_accum: int = 1, lr: float = 1e-3, weight_decay: float = 0.05,
                 warmup: int = 10, checkpoint_dir: str | os.PathLike | None = None,
                 checkpoint_every: int = 50, device: str = "auto", bf16: bool = True,
                 seed: int = 0, progress: bool = True, callbacks=None, warm_start: bool = False):
        self.size = size
        self.in_chans = in_chans
        self.img_size = img_size
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.steps = steps
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.device = device
        self.bf16 = bf16
        self.seed = seed
        self.progress = progress
        self.callbacks = callbacks
        self.warm_start = warm_start

    # -- building
    def _config(self, crops=None) -> ViTConfig:
        if self.size not in PRESETS and hasattr(self, "config_"):
            return self.config_   # the architecture of loaded weights ("custom")
        c = self.in_chans or (crops.shape[1] if crops is not None else 5)
        s = self.img_size or (crops.shape[2] if crops is not None else 64)
        extra = {"patch_size": self.patch_size} if self.patch_size else {}
        return make_config(self.size, in_chans=int(c), img_size=int(s), **extra)

    def build(self, crops=None) -> MAEEncoder:
        """Create a randomly initialised model (no training): ``model_`` and ``config_``.

        Parameters
        ----------
        crops : array_like, optional
            Crops whose channels and size set ``in_chans`` and ``img_size`` where those are not
            given.

        Returns
        -------
        MAEEncoder
            ``self``.
        """
        cfg = self._config(crops)
        self.config_ = cfg
        self.device_ = resolve_device(self.device)
        with isolated_torch_rng(self.seed):   # module constructors draw from the global RNG
            model = MaskedAutoencoderViT(cfg)
        self.model_ = model.to(self.device_)
        self.n_steps_ = 0
        self.loss_history_ = []
        return self

    # -- pretraining
    def fit(self, crops, y=None) -> MAEEncoder:
        """Pretrain by masked reconstruction on ``crops`` (numpy, zarr or dask, ``(n,C,H,W)``).

        Batches and masks are drawn from the encoder's own seeded generator, so the run is
        reproducible and resumable. With ``warm_start`` (encoders from :meth:`load`) the
        held weights are fine-tuned. KeyboardInterrupt writes a checkpoint first (when
        ``checkpoint_dir`` is set) holding the state at the last completed step.

        Parameters
        ----------
        crops : array_like
            ``(n, C, H, W)`` crops.
        y : None
            Ignored (scikit-learn signature).

        Returns
        -------
        MAEEncoder
            ``self``, with ``model_``, ``n_steps_`` and ``loss_history_``.
        """
        from tqdm.auto import tqdm

        _check_crops(crops, None)
        crops = in_memory(crops)
        fine_tune = bool(self.warm_start and hasattr(self, "model_"))
        if fine_tune:
            _check_crops(crops, self.config_)
            self.loss_history_ = []
            init_key = _weights_digest(self.model_)
        else:
            self.build(crops)
            init_key = "init"
        model, dev = self.model_, self.device_
        gen = make_generator(self.seed)
        n = int(crops.shape[0])
        if not (fine_tune and _has_pixel_stats(model)):
            stats = take(crops, np.sort(numpy_generator(self.seed).choice(
                n, size=min(n, 512), replace=False)))
            model.pixel_mean.copy_(torch.from_numpy(stats.mean((0, 2, 3))))
            model.pixel_std.copy_(torch.from_numpy(stats.std((0, 2, 3)) + 1e-6))
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.lr, betas=(0.9, 0.95))
        total, warm = max(self.steps, 1), max(self.warmup, 0)

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        ckpt = Path(self.checkpoint_dir) / f"mae_pretrain_{self._run_key(init_key)}.pt" \
            if self.checkpoint_dir else None
        mods = {"model": model, "opt": opt, "sched": sched}
        start = 0
        if ckpt is not None and ckpt.exists():
            info = load_checkpoint(ckpt, modules=mods, generators={"data": gen},
                                   map_location=dev, global_rng=False)
            start = info["step"]
            self.loss_history_ = list(info["extra"].get("loss_history", []))
        step = start
        # the generator state at the boundary of ``step`` completed steps: what an
        # interrupted step is replayed from
        at_step = gen.get_state()
        bar = tqdm(total=self.steps, initial=start, desc="MAE pretraining",
                   disable=not self.progress, leave=False)
        model.train()
        try:
            with cpu_threads(dev, self.config_):
                while step < self.steps:
                    opt.zero_grad(set_to_none=True)
                    total_loss = 0.0
                    for _ in range(self.grad_accum):
                        idx = torch.randint(0, n, (min(self.batch_size, n),),
                                            generator=gen).numpy()
                        x = torch.from_numpy(take(crops, np.sort(idx))).to(dev)
                        with autocast(dev, self.bf16):
                            loss = model.forward_loss(x, self.mask_ratio, generator=gen)
                        (loss / self.grad_accum).backward()
                        total_loss += float(loss.detach()) / self.grad_accum
                    with deferred_interrupt():   # the step lands whole or not at all
                        torch.nn.utils.clip_grad_norm_(params, 1.0)
                        opt.step()
                        sched.step()
                        self.loss_history_.append(total_loss)
                        step += 1
                        at_step = gen.get_state()
                    bar.update(1)
                    bar.set_postfix(loss=f"{total_loss:.4f}")
                    if ckpt is not None and (step % self.checkpoint_every == 0
                                             or step == self.steps):
                        self._save_ckpt(ckpt, step, mods, at_step)
                    for cb in self.callbacks or []:
                        cb(step, total_loss)
        except KeyboardInterrupt:
            if ckpt is not None:
                self._save_ckpt(ckpt, step, mods, at_step)
            raise
        finally:
            bar.close()
        model.eval()
        self.n_steps_ = step
        return self

    def _run_key(self, init: str = "init") -> str:
        """Short hash of everything that shapes the run: a checkpoint resumes only the run
        it came from (another size, seed, schedule or starting weights starts afresh)."""
        import hashlib
        import json

        keys = ("mask_ratio", "steps", "batch_size", "grad_accum", "lr", "weight_decay",
                "warmup", "seed", "bf16")
        blob = json.dumps([asdict(self.config_), [getattr(self, k) for k in keys], init])
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def _save_ckpt(self, ckpt, step, mods, gen_state):
        save_checkpoint(ckpt, step=step, modules=mods, generator_states={"data": gen_state},
                        global_rng=False,
                        extra={"loss_history": list(self.loss_history_),
                               "config": asdict(self.config_)})

    # -- features
    def extract(self, crops, *, batch_size: int = 64, max_block: int | None = None,
                progress: bool = False) -> dict[str, np.ndarray]:
        """Every block's features in one pass: ``{"mean": (n, L, D), "cls": (n, L, D)}``.

        ``mean`` is the average of the patch tokens after block ``l`` (the OpenPhenom
        convention), ``cls`` the class token. ``max_block`` stops the forward pass early.

        Parameters
        ----------
        crops : array_like
            ``(n, C, H, W)`` crops of the encoder's channels and size.
        batch_size : int
            Crops per forward pass.
        max_block : int, optional
            Last block computed (1-based; default all).
        progress : bool
            Show a progress bar.

        Returns
        -------
        dict of numpy.ndarray
            ``mean`` and ``cls``, each ``(n, L, D)``.
        """
        from tqdm.auto import tqdm

        self._require_model()
        _check_crops(crops, self.config_)
        model, dev = self.model_.eval(), self.device_
        n = int(crops.shape[0])
        means, clss = [], []
        with torch.inference_mode(), cpu_threads(dev, self.config_):
            for start in tqdm(range(0, n, batch_size), disable=not progress, desc="embedding"):
                x = np.asarray(crops[start: start + batch_size], dtype=np.float32)
                x = torch.from_numpy(x).to(dev)
                with autocast(dev, self.bf16 and dev.type != "cpu"):
                    m, c = model.block_features(x, max_block)
                means.append(to_numpy(m))
                clss.append(to_numpy(c))
        return {"mean": np.concatenate(means), "cls": np.concatenate(clss)}

    def transform(self, crops, block: int | None = None, **kw) -> np.ndarray:
        """Mean-token features of one block (1-based; default the last): ``(n, D)``.

        Parameters
        ----------
        crops : array_like
            ``(n, C, H, W)`` crops.
        block : int, optional
            The block (1-based; default the last).
        **kw
            Passed to :meth:`extract`.

        Returns
        -------
        numpy.ndarray
            ``(n, D)``.
        """
        block = block or self.config_.depth
        return self.extract(crops, max_block=block, **kw)["mean"][:, block - 1]

    def _require_model(self):
        if not hasattr(self, "model_"):
            raise ValidationError("this encoder has no weights yet.",
                                  "call fit(crops), build(crops) or load(path) first.")

    # -- persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The weights as plain numpy arrays (cheap to ship to dask workers).

        Returns
        -------
        dict of str to numpy.ndarray
            The state dict, on the CPU.
        """
        self._require_model()
        return {k: v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights as ``.safetensors`` with the architecture in its metadata.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        import json

        from safetensors.torch import save_file

        self._require_model()
        path = Path(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        save_file(state, str(path), metadata={"workbench_vit_config": json.dumps(asdict(self.config_)),
                                              "size": self.size})
        return path

    @classmethod
    def load(cls, path_or_state, *, device: str = "auto", bf16: bool = True, in_chans=None,
             img_size=None, num_heads: int | None = None, strict_decoder: bool = False,
             config: ViTConfig | dict | None = None, channel_adapt: str | None = None,
             partial: bool = False, input_norm=None, **kw) -> MAEEncoder:
        """An encoder from outside weights (ours, timm, DINOv2, MAE, HuggingFace, Phenom).

        The architecture is built from the weights' shapes
        (:func:`~workbench.models.vit_weights.config_from_state_dict`); ``img_size``
        resizes the position codes to another crop size. Every key is accounted for:
        unknown or missing encoder keys are an error naming them unless ``partial``; what
        was loaded, ignored or kept at initialisation is in ``load_report_``. When the
        heads cannot be read off the shapes (no q/k norm) they are ``embed_dim // 64``
        unless ``num_heads`` is given.

        ``in_chans`` other than the weights' is refused unless ``channel_adapt`` is
        "repeat", "average" or "tokens" (:func:`~workbench.models.vit_weights.adapt_channels`);
        a channel-agnostic model takes any channel count up to its table. ``input_norm``
        sets the input normalisation (:meth:`set_input_norm`); weights without one keep
        the identity until it is set or fitted on crops (:meth:`fit_input_norm`).

        Parameters
        ----------
        path_or_state : str, os.PathLike or dict
            A weights file or a state dict.
        device : str
            Torch device.
        bf16 : bool
            bf16 autocast where the device supports it.
        in_chans : int, optional
            Channels of the crops to embed.
        img_size : int, optional
            Crop side in pixels.
        num_heads : int, optional
            Attention heads, when the shapes do not tell.
        strict_decoder : bool
            Require the MAE decoder's keys.
        config : ViTConfig or dict, optional
            The architecture, instead of reading it from the weights.
        channel_adapt : str, optional
            ``"repeat"``, ``"average"`` or ``"tokens"``.
        partial : bool
            Load what fits and report the rest.
        input_norm : str or dict, optional
            Passed to :meth:`set_input_norm`.
        **kw
            Further constructor options (``warm_start`` defaults to True).

        Returns
        -------
        MAEEncoder
            The encoder, with ``load_report_``.
        """
        from workbench.models.vit_weights import (
            adapt_channels, config_from_state_dict, load_into, read_weights)

        state, meta_cfg = read_weights(path_or_state)
        if isinstance(config, dict):
            config = ViTConfig(**config)
        cfg = config or meta_cfg or config_from_state_dict(state, num_heads=num_heads)
        if num_heads:
            cfg = replace(cfg, num_heads=int(num_heads))
        adapted = None
        if in_chans and in_chans != cfg.in_chans:
            if cfg.channel_agnostic and in_chans <= max(cfg.max_chans, cfg.in_chans):
                cfg = replace(cfg, in_chans=int(in_chans))
            elif channel_adapt:
                state, cfg = adapt_channels(state, cfg, int(in_chans), channel_adapt)
                adapted = channel_adapt
            else:
                raise ValidationError(
                    f"the weights were trained on {cfg.in_chans}-channel crops, not {in_chans}.",
                    "pass channel_adapt='repeat', 'average' or 'tokens' (--channel-adapt) to "
                    "adapt them, use crops with the model's channels, or pretrain a new "
                    "encoder (workbench embed --train).")
        if img_size:
            cfg = replace(cfg, img_size=int(img_size))
        kw.setdefault("warm_start", True)
        enc = cls(size="custom", in_chans=cfg.in_chans, img_size=cfg.img_size,
                  device=device, bf16=bf16, **kw)
        enc.config_ = cfg
        enc.device_ = resolve_device(device)
        with isolated_torch_rng(enc.seed):   # parts the weights lack keep a seeded init
            enc.model_ = MaskedAutoencoderViT(cfg)
        report = load_into(enc.model_, state, strict_decoder=strict_decoder, partial=partial)
        report["channel_adapt"] = adapted or "none"
        report["input_norm"] = ("from the weights" if _has_pixel_stats(enc.model_) or
                                cfg.input_norm == "self" else "none")
        enc.load_report_ = report
        if input_norm is not None:
            enc.set_input_norm(input_norm)
        enc.model_.to(enc.device_).eval()
        enc.n_steps_, enc.loss_history_ = 0, []
        return enc

    # -- input normalisation
    def has_input_norm(self) -> bool:
        """Whether the model normalises its input (fitted statistics or self-standardising).

        Returns
        -------
        bool
            True when it does.
        """
        self._require_model()
        return self.config_.input_norm == "self" or _has_pixel_stats(self.model_)

    def set_input_norm(self, norm) -> MAEEncoder:
        """Record the input normalisation with the weights (saved by :meth:`save`).

        Parameters
        ----------
        norm : str or dict
            ``"self"`` (each crop and channel standardised on itself, as Phenom does) or
            ``{"mean": [...], "std": [...]}`` per channel, or ``{"low": [...], "high": [...]}``
            (a percentile range mapped to 0..1).

        Returns
        -------
        MAEEncoder
            ``self``.
        """
        self._require_model()
        m = self.model_
        if norm == "self":
            self.config_ = replace(self.config_, input_norm="self")
            m.cfg = self.config_
        elif isinstance(norm, dict) and ({"mean", "std"} <= set(norm) or {"low", "high"} <= set(norm)):
            lo = np.asarray(norm.get("mean", norm.get("low")), dtype=np.float32).reshape(-1)
            hi = np.asarray(norm["std"] if "std" in norm else
                            np.asarray(norm["high"], np.float32) - lo, dtype=np.float32).reshape(-1)
            if lo.size != m.pixel_mean.numel() or hi.size != lo.size:
                raise ValidationError(f"input normalisation has {lo.size} values for "
                                      f"{m.pixel_mean.numel()} channels.", "give one per channel.")
            m.pixel_mean.copy_(torch.from_numpy(lo))
            m.pixel_std.copy_(torch.from_numpy(np.maximum(hi, 1e-6)))
            self.config_ = replace(self.config_, input_norm="fixed")
            m.cfg = self.config_
        else:
            raise ValidationError(f"unknown input normalisation {norm!r}.",
                                  "use 'self', {'mean','std'} or {'low','high'} per channel.")
        if hasattr(self, "load_report_"):
            self.load_report_["input_norm"] = ("self-standardised" if norm == "self" else
                                               "given: " + ",".join(sorted(norm)))
        return self

    def fit_input_norm(self, crops, how: str = "mean_std", percentiles=(1.0, 99.0),
                       max_crops: int = 512) -> dict:
        """Fit the per-channel input normalisation on (a seeded sample of) ``crops``.

        Parameters
        ----------
        crops : array_like
            ``(n, C, H, W)`` crops.
        how : str
            ``"mean_std"``, ``"percentile"`` or ``"self"``.
        percentiles : tuple of float
            The low and high percentiles of ``"percentile"``.
        max_crops : int
            Largest sample of crops.

        Returns
        -------
        dict
            ``method``, ``n_crops`` and the fitted values.
        """
        n = int(crops.shape[0])
        idx = np.sort(numpy_generator(self.seed).choice(n, size=min(n, max_crops), replace=False))
        x = take(crops, idx)
        if how == "mean_std":
            norm = {"mean": x.mean((0, 2, 3)), "std": x.std((0, 2, 3)) + 1e-6}
        elif how == "percentile":
            flat = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)
            lo, hi = np.percentile(flat, percentiles, axis=1)
            norm = {"low": lo, "high": hi}
        elif how == "self":
            norm = "self"
        else:
            raise ValidationError(f"unknown input normalisation {how!r}.",
                                  "use 'mean_std', 'percentile' or 'self'.")
        self.set_input_norm(norm)
        rec = {"method": how, "n_crops": int(len(idx))}
        if isinstance(norm, dict):
            rec.update({k: np.asarray(v, dtype=np.float64).round(4).tolist() for k, v in norm.items()})
        if hasattr(self, "load_report_"):
            self.load_report_["input_norm"] = f"fitted on the crops ({how})"
        return rec
