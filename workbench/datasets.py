"""Demo Studies built by the real steps: ``wb.datasets.demo("quick")``.

The demo world is one simulator with ground truth for every view: a small cyclic
gene-regulatory network, a morphology model that renders five-channel Cell-Painting-like
crops, single and double knockouts with planted interacting pairs, and gene groups in the
format of the real relationship databases. See ``workbench demo --help`` for the command
line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from workbench.data.study import Study

__all__ = ["SIZES", "demo"]

#: Sizes of the demo world: ``tiny`` (seconds; tests), ``quick`` (about a minute on two
#: cores), ``realistic`` (thousands of crops per plate; several minutes).
SIZES = ("tiny", "quick", "realistic")


def demo(size: str = "quick", path: str | os.PathLike | None = None, *, seed: int = 0,
         analyzed: bool = True, overwrite: bool = False) -> Study:
    """Build the demo Study, or reuse the one already at ``path``.

    The world is simulated first, then every analysis step runs with the settings of
    ``workbench demo`` (embed and benchmark, concepts, interactions and pair planning,
    GRN). A build that was interrupted resumes where it stopped; a Study at ``path`` made
    with another size or seed is an error unless ``overwrite``.

    Parameters
    ----------
    size : str
        ``"tiny"``, ``"quick"`` or ``"realistic"`` (see :data:`SIZES`).
    path : str or os.PathLike, optional
        Where the ``NAME.study`` folder goes; default ``demo-<size>.study`` in the current
        folder.
    seed : int
        Seed of the demo world and of every step.
    analyzed : bool
        ``False`` stops after the simulation: images, ground truth and velocity only, for
        running the :mod:`workbench.tl` steps yourself.
    overwrite : bool
        Rebuild from scratch instead of reusing or resuming.

    Returns
    -------
    Study
        The open Study; ``study.summary()`` lists its artefacts.
    """
    from workbench.tl import check_int

    if not isinstance(size, str) or size not in SIZES:
        raise ValidationError(f"unknown demo size {size!r}.", f"use one of {', '.join(SIZES)}.")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"path must be a folder path, got {type(path).__name__}.",
                              "pass a string or pathlib.Path, or leave it None.")
    seed = check_int("seed", seed, minimum=0)
    from workbench.commands.demo import build_demo

    out = Path(path) if path is not None else Path(f"demo-{size}.study")
    return build_demo(out, size=size, seed=seed, overwrite=bool(overwrite),
                      steps="all" if analyzed else ["simulate"], log=lambda *_: None)
