"""Checkpoints that survive interruption and let training resume bit for bit.

A checkpoint holds the model and optimiser state, the step counter, and every random state
that training draws from: the ``torch.Generator`` objects the loop owns, and (for loops that
still draw from them, ``global_rng=True``) python's, numpy's and torch's global generators.
The states saved must be those of the step the checkpoint is labelled with: a loop that is
interrupted in the middle of a step saves the generator states it had when that step began
(see ``generator_states``) and replays the step on resume. It is written to a temporary file and renamed into place, so a crash while
saving leaves the previous checkpoint intact. Loading uses ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _rng_state(generators, global_rng: bool, generator_states=None) -> dict[str, Any]:
    gens = {k: g.get_state() for k, g in (generators or {}).items()}
    gens.update({k: v.clone() for k, v in (generator_states or {}).items()})
    state: dict[str, Any] = {"generators": gens}
    if global_rng:
        state["python"] = random.getstate()
        state["numpy"] = np.random.get_state()
        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None,
                   global_rng: bool) -> None:
    for k, g in (generators or {}).items():
        if k in state["generators"]:
            g.set_state(state["generators"][k].cpu())
    if not global_rng or "python" not in state:
        return
    random.setstate(_to_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(tuple(np_state) if isinstance(np_state, list) else np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class deferred_interrupt:
    """Hold Ctrl-C (SIGINT) back while a block runs, then deliver it.

    A training step mutates the weights, the optimiser, the schedule and the step counter
    one after another; an interrupt between two of them would checkpoint a state that no
    uninterrupted run ever had. Inside this block a SIGINT is only recorded, and the
    previous handler (normally: raise KeyboardInterrupt) runs when the block ends. Outside
    the main thread signals cannot be caught, and the block runs unguarded.
    """

    def __enter__(self):
        self.pending = None
        self.old = None
        if threading.current_thread() is threading.main_thread():
            try:
                self.old = signal.signal(signal.SIGINT, self._hold)
            except ValueError:  # pragma: no cover - e.g. an embedded interpreter
                self.old = None
        return self

    def _hold(self, signum, frame):
        self.pending = (signum, frame)

    def __exit__(self, *exc):
        if self.old is None:
            return False
        signal.signal(signal.SIGINT, self.old)
        if self.pending is not None and exc[0] is None:
            if callable(self.old):
                self.old(*self.pending)
            elif self.old != signal.SIG_IGN:
                raise KeyboardInterrupt
        return False


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
    generator_states: dict[str, torch.Tensor] | None = None,
    global_rng: bool = True,
) -> Path:
    """Atomically save ``modules`` (anything with ``state_dict``), RNG states and ``extra``.

    Parameters
    ----------
    path : str or os.PathLike
        File to write; its folder is created. It is written to a temporary file and
        renamed into place, so a crash while saving leaves the previous checkpoint intact.
    step : int
        The step counter the checkpoint is labelled with.
    modules : dict
        Name -> object with ``state_dict`` (models, optimisers, schedulers).
    generators : dict of str to torch.Generator, optional
        The loop's own generators, whose current states are saved.
    extra : dict, optional
        Further values to keep (loss history, counters): numbers, strings, lists, dicts,
        tensors and numpy arrays, what ``torch.load(weights_only=True)`` reads back.
    generator_states : dict of str to torch.Tensor, optional
        Name -> ``Generator.get_state()`` taken earlier; overrides the current state of
        the same-named generator: a loop interrupted inside a step passes the states it
        recorded at the start of that step.
    global_rng : bool
        Also save python's, numpy's and torch's global generators (and CUDA's); False
        leaves them out, for loops that draw only from their own generators.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": int(step),
        "state": {k: m.state_dict() for k, m in modules.items()},
        "rng": _rng_state(generators, global_rng, generator_states),
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
    global_rng: bool = True,
) -> dict[str, Any]:
    """Restore states saved by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file (read with ``weights_only=True``).
    modules : dict
        Name -> object with ``load_state_dict``; every name must be in the checkpoint.
    generators : dict of str to torch.Generator, optional
        Generators to restore in place; names missing from the checkpoint are left as
        they are.
    map_location : str or torch.device
        Where tensors are loaded (as for ``torch.load``).
    global_rng : bool
        Restore the global generators too, when they were saved; with False the
        process's global generators are never touched.

    Returns
    -------
    dict
        ``{"step": int, "extra": dict}`` as saved.
    """
    # numpy's RNG state holds numpy arrays/strings: allow-list exactly those types.
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        payload = torch.load(path, map_location=map_location, weights_only=True)
    for k, m in modules.items():
        m.load_state_dict(payload["state"][k])
    _set_rng_state(payload["rng"], generators, global_rng)
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
