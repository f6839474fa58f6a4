"""Checkpoints that survive interruption and let training resume bit for bit.

A checkpoint holds the model and optimiser state, the step counter, and every random state
that training draws from (python, numpy, torch CPU and CUDA, plus any ``torch.Generator``
the loop owns). It is written to a temporary file and renamed into place, so a crash while
saving leaves the previous checkpoint intact. Loading uses ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _rng_state(generators: dict[str, torch.Generator] | None) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None) -> None:
    random.setstate(_to_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(tuple(np_state) if isinstance(np_state, list) else np_state)
    torch.set_rng_state(state["torch"])
    for k, g in (generators or {}).items():
        if k in state["generators"]:
            g.set_state(state["generators"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    if isinstance(x, list):
        return tuple(_to_tuple(v) for v in x)
    return x


def save_checkpoint(
    path: str | os.PathLike,
    *,
    step: int,
    modules: dict[str, torch.nn.Module | torch.optim.Optimizer | Any],
    generators: dict[str, torch.Generator] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically save ``modules`` (anything with ``state_dict``), RNG states and ``extra``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": int(step),
        "state": {k: m.state_dict() for k, m in modules.items()},
        "rng": _rng_state(generators),
        "extra": extra or {},
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    modules: dict[str, torch.nn.Module | torch.optim.Optimizer | Any],
    generators: dict[str, torch.Generator] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Restore states saved by :func:`save_checkpoint`; return ``{"step", "extra"}``."""
    # numpy's RNG state holds numpy arrays/strings: allow-list exactly those types.
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        payload = torch.load(path, map_location=map_location, weights_only=True)
    for k, m in modules.items():
        m.load_state_dict(payload["state"][k])
    _set_rng_state(payload["rng"], generators)
    return {"step": payload["step"], "extra": payload["extra"]}


def _numpy_safe_globals():
    out = [np.ndarray, np.dtype, np.core.multiarray._reconstruct] if hasattr(np, "core") else []
    try:
        from numpy._core.multiarray import _reconstruct

        out.append(_reconstruct)
    except ImportError:  # pragma: no cover
        pass
    out.append(type(np.dtype("uint32")))
    return out
