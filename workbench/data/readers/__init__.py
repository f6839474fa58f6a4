"""Readers that bring public and users' screens into a Study.

Each reader has two layers: a pure ``read_*`` function that checks a file (any path) and
returns AnnData / DataFrames, and an ``import_*`` function that writes the result into a
Study in one transaction with provenance, creating the Study if needed.

============================  ==================================  =================
reader                        input                               artefact
============================  ==================================  =================
:func:`read_images`           folder of TIFF fields + plate map   ``images``, ``fields``
:func:`read_profiles_table`   well-level table, Metadata_ columns ``profiles``
:func:`read_deepprofiler`     DeepProfiler .npz (+ index CSV)     ``profiles``
:func:`read_velocity`         AnnData with spliced/unspliced      ``velocity``
:func:`read_gi_matrix`        square GI matrix (Norman 2019)      ``gi_scores``
:func:`read_guide_counts`     pgRNA counts + library (pgPEN)      ``guide_counts``
:func:`read_relationships`    EFAAR pairs / complex clusters      ``relationships``
============================  ==================================  =================

Names are imported lazily so that ``import workbench.data.readers`` stays cheap.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "read_images": "images", "import_images": "images", "plan_crops": "images",
    "ImageCrops": "images", "scan_fields": "image_fields", "ImageFields": "image_fields",
    "NF1_PATTERN": "image_fields", "JUMP_PATTERN": "image_fields", "read_tiff": "image_fields",
    "read_profiles_table": "profiles", "read_deepprofiler": "profiles",
    "import_profiles": "profiles",
    "read_velocity": "velocity", "import_velocity": "velocity",
    "read_gi_matrix": "genetic_interactions", "import_gi": "genetic_interactions",
    "GIScores": "genetic_interactions",
    "read_guide_counts": "guide_counts", "read_library": "guide_counts",
    "guide_counts_wide": "guide_counts", "import_guide_counts": "guide_counts",
    "read_relationships": "relationships", "import_relationships": "relationships",
    "load_relationships": "relationships", "symmetrise": "relationships",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
