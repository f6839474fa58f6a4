"""Helpers for tests of code that reads Studies (ours, and users' own).

A test that checks a view, a plugin or an analysis against a Study should use a Study made
by the real steps, so that a change in what a step writes shows up in the test; a Study
written by hand in the layout one believes the steps use hides exactly that change. These
helpers build such Studies quickly: the demo world at size "tiny" (a few hundred crops, ten
genes, every step run) takes seconds.

Example, in a ``conftest.py``::

    import pytest
    from workbench.testing import make_demo_study

    @pytest.fixture(scope="session")
    def study(tmp_path_factory):
        return make_demo_study(tmp_path_factory.mktemp("wb") / "demo.study")

Build it once per test session (``scope="session"``) and copy it (:func:`copy_study`)
before a test writes into it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["make_demo_study", "copy_study"]


def make_demo_study(path: str | os.PathLike, *, size: str = "tiny", seed: int = 0,
                    steps: str | list[str] = "all"):
    """Build the demo Study at ``path`` with the real steps and return it, opened.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write the ``NAME.study`` folder (replaced if it exists).
    size : str
        ``"tiny"`` (seconds; for tests), ``"quick"`` or ``"realistic"``.
    seed : int
        Seed of the demo world and of every step.
    steps : str or list of str
        ``"all"``, or the subset of ``simulate, embed, concepts, interactions, grn`` to
        run (``"simulate"`` alone gives images and ground truth without any analysis).

    Returns
    -------
    Study
        The built Study, opened.
    """
    from workbench.commands.demo import build_demo

    return build_demo(Path(path), size=size, seed=seed, overwrite=True, steps=steps,
                      log=lambda *_: None)


def copy_study(source: str | os.PathLike, target: str | os.PathLike):
    """Copy a Study folder (to write into it without changing the original) and open it.

    Parameters
    ----------
    source : str or os.PathLike
        The ``NAME.study`` folder to copy.
    target : str or os.PathLike
        Where to put the copy; it must not exist yet.

    Returns
    -------
    Study
        The copy, opened.
    """
    from workbench.data.study import Study

    target = Path(target)
    shutil.copytree(Path(source), target)
    return Study.open(target)
