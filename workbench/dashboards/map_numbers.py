"""The numbers the embedding view shows beside its map: the linear probe of each
transformer block and the map benchmarks, as the embed and benchmark steps stored them
under ``uns["workbench"]`` (read without loading the matrices, cached per artefact version).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.dashboards.cache import cached


def _read_uns(study, name: str) -> dict:
    """``uns["workbench"]`` of an AnnData artefact, read without loading its matrices."""
    import zarr
    from anndata.io import read_elem

    group = zarr.open_group(study.artefact_path(name), mode="r")
    return read_elem(group["uns"]["workbench"]) if "uns" in group and "workbench" in group["uns"] else {}


def block_probe(study) -> pd.DataFrame | None:
    """The linear probe of each transformer block that the embed step ran
    (``profiles.uns["workbench"]["embedding"]["probe"]``): columns ``block`` and
    ``balanced_accuracy``; ``attrs`` hold ``best_block`` and ``chance``. None when the
    profiles were not embedded from images (imported profiles have no blocks).

    Parameters
    ----------
    study : Study
        The Study.

    Returns
    -------
    pandas.DataFrame or None
        The probe table, or None.
    """
    if not study.has("profiles"):
        return None

    def _read(study):
        probe = (_read_uns(study, "profiles").get("embedding") or {}).get("probe")
        if not isinstance(probe, dict) or "blocks" not in probe:   # a block was given
            return None
        df = pd.DataFrame({"block": np.asarray(probe["blocks"]).astype(int),
                           "balanced_accuracy": np.asarray(probe["balanced_accuracy"], float)})
        df.attrs.update(best_block=int(probe["best_block"]), chance=float(probe["chance"]))
        return df

    return cached(study, ["profiles"], "block-probe", _read)


def flat_numbers(d, prefix: str = "") -> dict[str, float]:
    """Scalar numbers of a nested dict, with dotted keys.

    Parameters
    ----------
    d : dict or None
        A nested dict (None is empty); booleans, arrays and text are left out.
    prefix : str
        Prepended to every key.

    Returns
    -------
    dict
        Dotted key to float.
    """
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_numbers(v, key + "."))
        elif np.ndim(v) == 0 and isinstance(v, int | float | np.number) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def benchmark_numbers(study) -> pd.DataFrame:
    """The map benchmarks of the perturbation map
    (``perturbations.uns["workbench"]["benchmarks"]``, written by ``workbench benchmark``
    and the demo's embed step), flattened to dotted metric names.

    Parameters
    ----------
    study : Study
        The Study.

    Returns
    -------
    pandas.DataFrame
        ``metric`` and ``value``; empty without a perturbation map.
    """
    if not study.has("perturbations"):
        return pd.DataFrame(columns=["metric", "value"])

    def _read(study):
        nums = flat_numbers(_read_uns(study, "perturbations").get("benchmarks"))
        return pd.DataFrame({"metric": list(nums), "value": list(nums.values())})

    return cached(study, ["perturbations"], "benchmarks", _read)


#: The numbers a biologist reads first, with short names; the rest follow under their keys.
HEADLINE = {
    "relationship_recall.relationships.recall.0.05_0.95": "known-pair recall (5/95 pct)",
    "relationship_recall.relationships.random_baseline.0.05_0.95": "  random baseline",
    "relationship_recall.planted_groups.recall.0.05_0.95": "planted-group recall (5/95 pct)",
    "retrieval_map.map": "same-label mAP",
    "retrieval_map.p_value": "  permutation p",
    "planted_group_retrieval.map": "planted-group mAP",
    "replicate_consistency.fraction_consistent_p05": "replicate-consistent fraction",
    "batch_effect.gap": "batch gap (same - cross batch)",
    "without_tvn.batch_gap": "  batch gap without TVN",
}


def headline_first(bench: pd.DataFrame) -> pd.DataFrame:
    """Benchmark rows with the :data:`HEADLINE` metrics first, under their short names.

    Parameters
    ----------
    bench : pandas.DataFrame
        ``metric`` and ``value``, as from :func:`benchmark_numbers`.

    Returns
    -------
    pandas.DataFrame
        The same columns: the headline metrics renamed and first, then the others.
    """
    known = [k for k in HEADLINE if k in set(bench["metric"])]
    rest = bench[~bench["metric"].isin(known)]
    lookup = dict(zip(bench["metric"], bench["value"], strict=True))
    head = pd.DataFrame({"metric": [HEADLINE[k] for k in known],
                         "value": [lookup[k] for k in known]})
    return pd.concat([head, rest], ignore_index=True)
