"""Nested step results made storable in AnnData ``uns`` (written to Zarr by the Study)."""

from __future__ import annotations

import numpy as np

__all__ = ["clean_uns"]


def clean_uns(obj):
    """Make nested results storable in AnnData ``uns`` (no None, no tuples, str keys).

    Parameters
    ----------
    obj : object
        A nested structure of dicts, lists, tuples, numbers and strings.

    Returns
    -------
    object
        The same content: dicts with string keys; numeric or string lists as arrays, other
        lists as dicts keyed ``"0"``, ``"1"``, ...; None as ``"none"``; numpy scalars as Python
        ones.
    """
    if isinstance(obj, dict):
        return {str(k): clean_uns(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        vals = [clean_uns(v) for v in obj]
        if vals and all(isinstance(v, (int, float, bool, np.number)) for v in vals):
            return np.asarray(vals)
        if vals and all(isinstance(v, str) for v in vals):
            return np.asarray(vals, dtype=object)
        return {str(i): v for i, v in enumerate(vals)} if vals else np.asarray([])
    if obj is None:
        return "none"
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
