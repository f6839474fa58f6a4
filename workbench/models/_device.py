"""Device choice, autocast and seeding shared by every model."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a concrete device: "auto" takes CUDA, then MPS, then CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def supports_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is worth using on this device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on devices that support it; a no-op context otherwise."""
    if enabled and supports_bf16(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int | None) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator seeded the same way."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
        return gen
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen.manual_seed(seed)
    return gen


def to_numpy(x) -> np.ndarray:
    """Detach a tensor to a float32/int numpy array on the CPU (arrays pass through)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)
