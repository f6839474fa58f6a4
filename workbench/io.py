"""Readers of public and users' formats, and the paths that bring them into a Study.

Each format has a ``read_*`` function (any path in, AnnData or DataFrames out, checked)
and an ``import_*`` function that writes the result into a Study in one step with
provenance, creating the Study when needed; ``workbench import`` on the command line calls
the same functions.

=======================  =================================  ===============================
reader                   input                              import path -> artefact
=======================  =================================  ===============================
``read_images``          folder of TIFF fields + plate map  ``import_images`` -> images
``read_profiles_table``  well-level profile table (CSV)     ``import_profiles`` -> profiles
``read_deepprofiler``    DeepProfiler .npz (+ index CSV)    ``import_profiles``
``read_velocity``        AnnData with spliced/unspliced     ``import_velocity`` -> velocity
``read_gi_matrix``       square GI matrix (Norman 2019)     ``import_gi`` -> gi_scores
``read_guide_counts``    pgRNA counts + library (pgPEN)     ``import_guide_counts``
``read_relationships``   EFAAR pairs / complex clusters     ``import_relationships``
=======================  =================================  ===============================

``open_study`` and ``create_study`` open and create Study folders. Names load lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and linters; loaded lazily
    from workbench.data.readers import (
        import_gi,
        import_guide_counts,
        import_images,
        import_profiles,
        import_relationships,
        import_velocity,
        read_deepprofiler,
        read_gi_matrix,
        read_guide_counts,
        read_images,
        read_profiles_table,
        read_relationships,
        read_velocity,
    )
    from workbench.data.study import create_study, open_study

__all__ = [
    "create_study", "import_gi", "import_guide_counts", "import_images", "import_profiles",
    "import_relationships", "import_velocity", "open_study", "read_deepprofiler",
    "read_gi_matrix", "read_guide_counts", "read_images", "read_profiles_table",
    "read_relationships", "read_velocity",
]

_STUDY = ("open_study", "create_study")


def __getattr__(name: str):
    if name in _STUDY:
        return getattr(importlib.import_module("workbench.data.study"), name)
    if name in __all__:
        return getattr(importlib.import_module("workbench.data.readers"), name)
    raise AttributeError(f"module 'workbench.io' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
