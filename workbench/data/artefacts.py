"""The declared schema of every artefact a Study holds, and the checks built on it.

In the spirit of spatialdata's element models, each artefact kind that a workbench step
writes has an :class:`ArtefactSpec`: its storage kind, the step that writes it, and the keys
that a reader may rely on (``obs``/``var`` columns with their dtypes, ``obsm``/``layers``/
``varp`` matrices with their shapes, entries of ``uns["workbench"]``, table columns, array
dimensions and attributes, JSON keys). Steps check what they write before it is swapped in
(:class:`workbench.data.transaction.Transaction` calls the ``check_*`` functions), readers
use :func:`uns_entry` (``study.read_uns("grn", "cycles")``) instead of reaching into Zarr,
and an artefact that does not match is refused with an error that names the key, what was
found, and the step that writes it.

Keys not declared here may be present (a step may record more); declared optional keys are
checked when present. Artefacts a user adds under names not listed here are not checked.
:data:`SCHEMA_VERSION` bumps when a declared key changes meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Key:
    """One declared key: ``name`` (a regular expression for ``obsm``-style families),
    ``dtype`` one of str, bool, int, float, number, any, dict, frame, list; ``ndim`` for
    matrices; ``rows``/``cols`` "obs"/"vars" when the shape follows the AnnData.

    Parameters
    ----------
    name : str
        The key, or a regular expression for a family of keys (``X_mae_b\\d+``).
    dtype : str
        Expected type: ``str``, ``bool``, ``int``, ``float``, ``number``, ``any``, ``dict``,
        ``frame`` or ``list``.
    required : bool
        Whether the key must be present (an optional key is checked only when present).
    ndim : int or None
        Number of dimensions of a matrix; None leaves it unchecked.
    rows, cols : str or None
        ``"obs"`` or ``"vars"`` when that axis of the matrix follows the AnnData's; None
        leaves it unchecked.
    columns : tuple of str
        For ``dtype="frame"``: the columns the data frame must have.
    doc : str
        One line on what the key holds.
    """

    name: str
    dtype: str = "any"
    required: bool = True
    ndim: int | None = None
    rows: str | None = None
    cols: str | None = None
    columns: tuple[str, ...] = ()  # for dtype "frame": the columns it must have
    doc: str = ""


@dataclass(frozen=True)
class ArtefactSpec:
    """The declared schema of one Study artefact: its kind, the step that writes it, and the
    keys, columns and attributes it must hold.

    Parameters
    ----------
    name : str
        The artefact's name in the Study (``"profiles"``, ``"interactions"``, ...).
    kind : str
        Storage kind: ``"anndata"``, ``"table"``, ``"array"``, ``"images"``, ``"json"`` or
        ``"file"``.
    writer : str
        The step that writes it, named in error messages as what to run.
    doc : str
        One line on what it holds.
    version : int
        Version of this schema.
    obs, var : tuple of Key
        Declared columns of ``obs`` and ``var`` (AnnData artefacts).
    obsm, layers, varp, obsp : tuple of Key
        Declared entries of those AnnData mappings.
    uns : tuple of Key
        Declared entries under ``uns["workbench"]``, as ``/``-separated paths.
    columns : tuple of Key
        Declared columns of a table artefact.
    array_ndim : int or None
        Number of dimensions of an array artefact; None leaves it unchecked.
    attrs : tuple of Key
        Declared attributes of an array artefact.
    json_keys : tuple of Key
        Declared keys of a JSON artefact (or of a ``file`` artefact's manifest).
    manifest : str or None
        For a ``file`` artefact that is a folder: the JSON document inside it whose
        ``json_keys`` are checked; None for no manifest.
    extra : dict
        Further notes on the artefact, not checked.
    """
    name: str
    kind: str
    writer: str
    doc: str
    version: int = 1
    obs: tuple[Key, ...] = ()
    var: tuple[Key, ...] = ()
    obsm: tuple[Key, ...] = ()
    layers: tuple[Key, ...] = ()
    varp: tuple[Key, ...] = ()
    obsp: tuple[Key, ...] = ()
    uns: tuple[Key, ...] = ()  # paths under uns["workbench"], "/"-separated
    columns: tuple[Key, ...] = ()  # tables
    array_ndim: int | None = None
    attrs: tuple[Key, ...] = ()
    json_keys: tuple[Key, ...] = ()
    #: for ``kind="file"`` artefacts (a file or a folder): the JSON document inside the
    #: folder whose ``json_keys`` are checked
    manifest: str | None = None
    extra: dict = field(default_factory=dict)


_SCREEN = (Key("perturbation", "str"), Key("is_control", "bool"), Key("batch", "str"),
           Key("plate", "str"), Key("well", "str"), Key("genes", "str", required=False),
           Key("perturbation_type", "str", required=False), Key("dose", "number", False))

ARTEFACTS: dict[str, ArtefactSpec] = {s.name: s for s in (
    ArtefactSpec("images", "images", "`workbench import images` or `workbench demo`",
                 "single-cell crops (Zarr) with their screen table"),
    ArtefactSpec("fields", "images", "`workbench import images`", "whole microscope fields"),
    ArtefactSpec(
        "profiles", "anndata", "`workbench embed` or `workbench import profiles`",
        "one row per crop, cell or well: screen metadata, embeddings, sparse codes",
        obs=_SCREEN,
        obsm=(Key("X_umap", "number", False, ndim=2, rows="obs",
                  doc="2-D UMAP layout of X written by the embed/normalize step"),
              Key("X_pca", "number", False, ndim=2, rows="obs",
                  doc="2-D PCA layout of X (the step's fallback; the reason in uns layout)"),
              Key(r"X_.+", "number", False, ndim=2, rows="obs"),
              Key(r"concepts_.+", "number", False, ndim=2, rows="obs")),
        uns=(Key("embedding", "dict", False), Key("embedding/block", "int", False),
             Key("embedding/probe", "dict", False),
             Key("embedding/layout", "dict", False, doc="which 2-D layout ran, its key, why"),
             Key("embedding/input_norm", "dict", False,
                 doc="the encoder's input normalisation and where it came from"),
             Key("embedding/weights_load", "dict", False,
                 doc="outside weights: keys loaded, ignored, missing (partial loading)"),
             Key("layout", "dict", False, doc="layout of a normalised (imported) X"))),
    ArtefactSpec(
        "perturbations", "anndata", "`workbench embed` / `workbench benchmark`",
        "one row per perturbation: aggregated profile, similarity, map benchmarks",
        obs=(Key("n_profiles", "int"), Key("perturbation_type", "str", False)),
        obsm=(Key("X_umap", "number", False, ndim=2, rows="obs"),
              Key("X_pca", "number", False, ndim=2, rows="obs")),
        obsp=(Key("cosine", "number", False, ndim=2, rows="obs", cols="obs"),),
        uns=(Key("benchmarks", "dict", False), Key("layout", "dict", False),
             Key("benchmarks/control_null", "dict", False,
                 doc="consistency with the control null, per-query mAP, energy distance"))),
    ArtefactSpec(
        "concepts", "anndata", "`workbench concepts`",
        "one row per concept: dictionary atoms in X, annotation in obs",
        obs=(Key("frequency", "number"), Key("dead", "bool")),
        obsm=(Key("exemplar_top_index", "int", False, ndim=2, rows="obs"),),
        uns=(Key("method", "str"), Key("run", "str"), Key("profiles_key", "str", False),
             Key("metrics", "dict", False),
             Key("whitening/whiten", "bool", False,
                 doc="whether the step whitened on the controls (not after TVN by default)"),
             Key("demo/program_recovery", "dict", False,
                 doc="demo check: one array per column of the program recovery table"),
             Key("heldout", "dict", False,
                 doc="held-out evaluation: split (replicate, dose, plate or none), row "
                     "counts, held-out row positions, and metrics measured on them"),
             Key("heldout/split", "str", False, doc="how the samples were split"),
             Key("heldout/metrics", "dict", False,
                 doc="held-out R^2, dead and dense fractions, selectivity, enrichment "
                     "(controls left out of the label sets)"),
             Key("pursuit", "str", False, doc="ICFL pursuit that ran (signed, abs_refit)"),
             Key("source_model", "dict", False,
                 doc="set when the codes come from a model saved in another Study"))),
    ArtefactSpec(
        "concept_model", "file", "`workbench concepts`",
        "the fitted control whitener and dictionary (tensors.safetensors) with their "
        "settings, feature names and concept ids (model.json); read by "
        "`workbench concepts encode`",
        json_keys=(Key("format", "str"), Key("version", "int"), Key("class", "str"),
                   Key("params", "dict"), Key("whitener", "dict"), Key("features", "list"),
                   Key("concept_ids", "list"), Key("tensors_sha256", "str")),
        manifest="model.json"),
    ArtefactSpec(
        "concept_pages", "json", "`workbench concepts`",
        "one precomputed page per concept: top and quantile exemplars with activations, "
        "histogram, selectivity per label, significant drivers with q, similar concepts, "
        "stability across seeds",
        json_keys=(Key("version", "int"), Key("alpha", "number"), Key("concepts", "dict"))),
    ArtefactSpec(
        "interactions", "table", "`workbench interactions`",
        "one row per tested pair and test",
        columns=(Key("pair", "str"), Key("gene_a", "str"), Key("gene_b", "str"),
                 Key("test", "str"), Key("statistic", "number"), Key("p", "number"),
                 Key("q", "number"), Key("status", "str"),
                 Key("effect_size", "number", False), Key("ci_low", "number", False),
                 Key("ci_high", "number", False), Key("unit", "str", False),
                 Key("units_ctrl", "int", False), Key("units_a", "int", False),
                 Key("units_b", "int", False), Key("units_ab", "int", False))),
    ArtefactSpec("pair_details", "json", "`workbench interactions`",
                 "per pair: exemplar crops and embedding shifts for the pair view",
                 json_keys=(Key("pairs", "dict"),)),
    ArtefactSpec(
        "pair_selection", "table", "`workbench plan-pairs`",
        "measured pairs and the proposed next batch",
        columns=(Key("round", "int"), Key("gene_a", "str"), Key("gene_b", "str"),
                 Key("pair", "str"), Key("status", "str"),
                 Key("predicted", "number", False,
                     doc="predicted value of a proposed pair (NaN for measured ones)"),
                 Key("predicted_low", "number", False, doc="lower end of its 90% interval"),
                 Key("predicted_high", "number", False, doc="upper end of its 90% interval"),
                 Key("rank", "number", False,
                     doc="1.. order of a proposed pair in the batch (NaN for measured ones)"),
                 Key("reason", "str", False, doc="why the planner chose the pair"),
                 Key("planner", "str", False, doc="the planner that ran"),
                 Key("planner_reason", "str", False, doc="why that planner was used"))),
    ArtefactSpec(
        "design_plan", "table",
        "`workbench design screen` / `workbench design hits` / `workbench design knockout`",
        "one row per candidate of the pool: measured, proposed next, or predicted",
        columns=(Key("candidate", "str"), Key("status", "str",
                     doc="measured, proposed (the next batch) or predicted; for knock-outs "
                         "proposed or open"),
                 Key("rank", "number", doc="1.. within the proposed batch, NaN otherwise"),
                 Key("score", "number", doc="the policy's acquisition score of a proposed one "
                     "(knock-outs: every gene's own expected information gain, nats)"),
                 Key("reason", "str", doc="why the candidate was proposed ('' otherwise)"),
                 Key("label", "any", doc="measured label or value (None if not measured)"),
                 Key("predicted", "any", doc="the screen model's predicted label"),
                 Key("confidence", "number", doc="the model's probability of that label"),
                 Key("planner", "str", doc="screen, hits or knockout"), Key("policy", "str"),
                 Key("bound", "number", doc="certified lower bound on system accuracy from the "
                     "last batch's labels (NaN before any batch came back)"),
                 Key("stop", "bool", doc="the bound reached the target gamma (knock-outs: "
                     "the batch is expected to teach less than the stop gain)"),
                 Key("entropy", "number", required=False,
                     doc="knock-outs: mean edge entropy (nats) of the posterior planned on"))),
    ArtefactSpec(
        "velocity", "anndata", "`workbench import velocity` or `workbench demo`",
        "cells x genes with spliced and unspliced counts (and velocity when known)",
        layers=(Key("spliced", "number", ndim=2, rows="obs", cols="vars"),
                Key("unspliced", "number", ndim=2, rows="obs", cols="vars"),
                Key("velocity", "number", False, ndim=2, rows="obs", cols="vars"))),
    ArtefactSpec(
        "grn", "anndata", "`workbench grn`",
        "cells x genes used by the GRN step, with the posterior's edge probabilities",
        varp=(Key("edge_probability", "number", ndim=2, rows="vars", cols="vars"),
              Key("edge_weight", "number", False, ndim=2, rows="vars", cols="vars",
                  doc="mean fitted weight of j -> i over the samples that hold the edge "
                      "(0 where none does); > 0 activates, < 0 represses"),
              Key("edge_positive_share", "number", False, ndim=2, rows="vars", cols="vars",
                  doc="share of the samples holding j -> i in which its weight is > 0 "
                      "(NaN where no sample holds it)")),
        uns=(Key("cycles", "frame", True, columns=("genes", "length", "frequency"),
                 doc="one row per cycle: genes in regulation order joined by ',', its "
                     "length, and the share of posterior samples that hold it"),
             Key("metrics", "dict", False),
             Key("settings", "dict", True,
                 doc="method and the settings it used (exact or screened: temperature per "
                     "gene, edge_prior, prior_sd, ridge, n_effective, chosen from the data; "
                     "screened also n_candidates and outside_mass)"))),
    ArtefactSpec("grn_samples", "array", "`workbench grn`",
                 "posterior graph samples, samples x genes x genes",
                 array_ndim=3, attrs=(Key("genes", "list"),)),
    ArtefactSpec("grn_sample_weights", "array", "`workbench grn`",
                 "fitted weight of every edge of every posterior sample (0 off the graph), "
                 "samples x genes x genes, aligned with grn_samples",
                 array_ndim=3, attrs=(Key("genes", "list"), Key("units", "str"))),
    ArtefactSpec(
        "phenotype_search", "anndata", "`workbench find STUDY --exemplar CROP_ID`",
        "a guided phenotype search: one row per crop of profiles with its answer and score",
        obs=(Key("answer", "str", doc="'yes', 'no', or '' for crops not asked"),
             Key("score", "number", doc="the phenotype classifier's probability"),
             Key("perturbation", "str")),
        uns=(Key("exemplars", "list", doc="crop ids the person started from"),
             Key("status", "str", doc="confirmed_common, certified_rare or open"),
             Key("lower", "number", doc="lower end of the 1 - delta prevalence interval"),
             Key("upper", "number", doc="upper end of the 1 - delta prevalence interval"),
             Key("estimate", "number", doc="importance-weighted prevalence (-1 before any)"),
             Key("settings", "dict", doc="policy, tau, delta, batch, seed, embedding, ..."),
             Key("rounds", "frame", columns=("round", "labels", "lower", "upper", "status"),
                 doc="the interval and status after each batch"),
             Key("draws", "frame", columns=("round", "crop_id", "probability", "range",
                                            "policy"),
                 doc="every draw with the probability it had (NaN for active learning)"),
             Key("enrichment", "frame", columns=("perturbation", "n_positive", "p", "q"),
                 doc="perturbations enriched for the phenotype (one-sided Fisher, BH q)"),
             Key("top_crops", "list", False, doc="highest-scoring crop ids"))),
    ArtefactSpec("ground_truth", "json", "`workbench demo`", "the simulator's planted truth",
                 json_keys=(Key("genes", "list"),)),
)}


# ---------------------------------------------------------------------- checks
def _fail(name: str, where: str, found: str, want: str, writer: str | None) -> ValidationError:
    spec = ARTEFACTS.get(name)
    maker = spec.writer if spec else "the step that writes it"
    by = f" (written by step {writer!r})" if writer else ""
    return ValidationError(
        f"artefact {name!r}{by}: {where} {found}; its schema (version {SCHEMA_VERSION}) "
        f"wants {want}.",
        f"re-run {maker} with this version of the workbench; if you built the artefact "
        "yourself, give it the declared layout (see workbench.data.artefacts.ARTEFACTS).")


def _dtype_ok(values, dtype: str) -> bool:
    if dtype == "any":
        return True
    if isinstance(values, (pd.Series, pd.Index)):
        dt = values.dtype
        if dtype == "str":
            return (pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt)
                    or isinstance(dt, pd.CategoricalDtype))
        if dtype == "bool":
            return pd.api.types.is_bool_dtype(dt)
        if dtype == "int":
            return pd.api.types.is_integer_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
        if dtype in ("float", "number"):
            return pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
        return True
    if isinstance(values, np.ndarray) and dtype in ("int", "bool", "float", "number", "str"):
        dt = values.dtype
        return {"int": np.issubdtype(dt, np.integer), "bool": dt == np.bool_,
                "float": np.issubdtype(dt, np.number) and dt != np.bool_,
                "number": np.issubdtype(dt, np.number) and dt != np.bool_,
                "str": dt.kind in "UO"}[dtype]
    if dtype == "dict":
        return isinstance(values, dict)
    if dtype == "frame":
        return isinstance(values, pd.DataFrame)
    if dtype == "list":
        return isinstance(values, (list, tuple, np.ndarray))
    if dtype == "str":
        return isinstance(values, (str, np.str_))
    if dtype == "bool":
        return isinstance(values, (bool, np.bool_))
    if dtype == "int":
        return isinstance(values, (int, np.integer)) and not isinstance(values, (bool, np.bool_))
    if dtype in ("float", "number"):
        if hasattr(values, "dtype"):
            return np.issubdtype(values.dtype, np.number)
        return isinstance(values, (int, float, np.number)) and not isinstance(values, bool)
    return True


def _describe(v) -> str:
    if isinstance(v, (pd.Series, pd.Index)):
        return f"has dtype {v.dtype}"
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"is a {type(v).__name__} of shape {tuple(v.shape)} and dtype {v.dtype}"
    return f"is a {type(v).__name__} ({str(v)[:60]!r})"


def _check_frame(name, frame: pd.DataFrame, keys, label, writer) -> None:
    for key in keys:
        if key.name not in frame.columns:
            if key.required:
                raise _fail(name, f"{label} has no column {key.name!r}", "(missing)",
                            f"a {key.dtype} column {key.name!r}", writer)
            continue
        if not _dtype_ok(frame[key.name], key.dtype):
            raise _fail(name, f"{label}[{key.name!r}]", _describe(frame[key.name]),
                        f"{key.dtype} values", writer)


def _check_mapping(name, mapping, keys, label, writer, shape) -> None:
    for key in keys:
        pattern = re.compile(key.name + r"\Z")
        hits = [k for k in mapping.keys() if pattern.match(str(k))]
        if not hits:
            if key.required and not any(c in key.name for c in "*+.[("):
                raise _fail(name, f"{label} has no {key.name!r}", "(missing)",
                            f"{label}[{key.name!r}]", writer)
            continue
        for k in hits:
            v = mapping[k]
            if hasattr(v, "toarray"):
                v = v.toarray()
            v = np.asarray(v) if not isinstance(v, pd.DataFrame) else v.to_numpy()
            where = f"{label}[{k!r}]"
            if key.ndim is not None and v.ndim != key.ndim:
                raise _fail(name, where, _describe(v), f"a {key.ndim}-D matrix", writer)
            for axis, dim in ((0, key.rows), (1, key.cols)):
                if dim and v.shape[axis] != shape[dim]:
                    raise _fail(name, where, _describe(v),
                                f"length {shape[dim]} along axis {axis} (one per {dim})", writer)
            if not _dtype_ok(v, key.dtype):
                raise _fail(name, where, _describe(v), f"{key.dtype} values", writer)


def _get_path(d, path: str):
    cur = d
    for part in path.split("/"):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def check_anndata(name: str, adata, *, writer: str | None = None) -> None:
    """Check an AnnData against the declared schema of artefact ``name`` (if declared).

    Parameters
    ----------
    name : str
        The artefact's name; an undeclared name is not checked.
    adata : anndata.AnnData
        The object to check.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Raises
    ------
    ValidationError
        When a declared key is missing or has the wrong type or shape.
    """
    spec = ARTEFACTS.get(name)
    if spec is None:
        return
    if spec.kind != "anndata":
        raise _fail(name, "the object", "is an AnnData", f"a {spec.kind} artefact", writer)
    shape = {"obs": adata.n_obs, "vars": adata.n_vars}
    _check_frame(name, adata.obs, spec.obs, "obs", writer)
    _check_frame(name, adata.var, spec.var, "var", writer)
    for label, keys in (("obsm", spec.obsm), ("layers", spec.layers), ("varp", spec.varp),
                        ("obsp", spec.obsp)):
        _check_mapping(name, getattr(adata, label), keys, label, writer, shape)
    wb = adata.uns.get("workbench", {})
    for key in spec.uns:
        try:
            v = _get_path(wb, key.name)
        except KeyError:
            if key.required:
                raise _fail(name, f"uns['workbench'] has no {key.name!r}", "(missing)",
                            f"uns['workbench'][{key.name!r}] ({key.dtype})", writer) from None
            continue
        if not _dtype_ok(v, key.dtype):
            raise _fail(name, f"uns['workbench'][{key.name!r}]", _describe(v),
                        f"a {key.dtype}", writer)
        if key.dtype == "frame" and key.columns:
            missing = [c for c in key.columns if c not in v.columns]
            if missing:
                raise _fail(name, f"uns['workbench'][{key.name!r}]",
                            f"lacks the column(s) {missing}",
                            f"columns {list(key.columns)}", writer)


def check_table(name: str, df: pd.DataFrame, *, writer: str | None = None) -> None:
    """Check a table artefact's columns and their dtypes against its declared schema.

    Parameters
    ----------
    name : str
        The artefact's name; an undeclared name is not checked.
    df : pandas.DataFrame
        The table.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Raises
    ------
    ValidationError
        When a declared column is missing or of the wrong dtype.
    """
    spec = ARTEFACTS.get(name)
    if spec is None:
        return
    if spec.kind != "table":
        raise _fail(name, "the object", "is a table", f"a {spec.kind} artefact", writer)
    _check_frame(name, df, spec.columns, "the table", writer)


def check_array(name: str, arr: np.ndarray, attrs: dict, *, writer: str | None = None) -> None:
    """Check an array artefact's dimensions and attributes against its declared schema.

    Parameters
    ----------
    name : str
        The artefact's name; an undeclared name is not checked.
    arr : numpy.ndarray
        The array (only its shape is read).
    attrs : dict
        Its attributes.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Raises
    ------
    ValidationError
        When the number of dimensions, an attribute, or (for the GRN sample stacks) the
        genes x genes shape is wrong.
    """
    spec = ARTEFACTS.get(name)
    if spec is None:
        return
    if spec.array_ndim is not None and arr.ndim != spec.array_ndim:
        raise _fail(name, "the array", _describe(arr), f"{spec.array_ndim} dimensions", writer)
    for key in spec.attrs:
        if key.name not in attrs:
            if key.required:
                raise _fail(name, f"the array's attributes have no {key.name!r}", "(missing)",
                            f"attrs[{key.name!r}]", writer)
        elif not _dtype_ok(attrs[key.name], key.dtype):
            raise _fail(name, f"attrs[{key.name!r}]", _describe(attrs[key.name]),
                        f"a {key.dtype}", writer)
    if name in ("grn_samples", "grn_sample_weights") and "genes" in attrs and arr.ndim == 3:
        d = len(attrs["genes"])
        if arr.shape[1:] != (d, d):
            raise _fail(name, "the array", _describe(arr),
                        f"samples x {d} x {d} (one row and column per gene in attrs['genes'])",
                        writer)


def check_json(name: str, data: Any, *, writer: str | None = None) -> None:
    """Check a JSON artefact (a dict) against its declared keys.

    Parameters
    ----------
    name : str
        The artefact's name; an undeclared name is not checked.
    data : object
        The parsed document.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Raises
    ------
    ValidationError
        When ``data`` is not a dict, or a declared key is missing or of the wrong type.
    """
    spec = ARTEFACTS.get(name)
    if spec is None:
        return
    if not isinstance(data, dict):
        raise _fail(name, "the document", _describe(data), "a JSON object", writer)
    for key in spec.json_keys:
        if key.name not in data:
            if key.required:
                raise _fail(name, f"the document has no {key.name!r}", "(missing)",
                            f"a key {key.name!r} ({key.dtype})", writer)
        elif not _dtype_ok(data[key.name], key.dtype):
            raise _fail(name, f"[{key.name!r}]", _describe(data[key.name]),
                        f"a {key.dtype}", writer)


def uns_entry(name: str, adata, keys: tuple[str, ...]):
    """``adata.uns["workbench"][k1][k2]...`` for a key path the schema declares.

    Parameters
    ----------
    name : str
        The artefact's name.
    adata : anndata.AnnData
        The artefact as read.
    keys : tuple of str
        The key path under ``uns["workbench"]``; joined with ``/`` it must be declared.

    Returns
    -------
    object
        The stored value.

    Raises
    ------
    ValidationError
        When the key path is not declared for the artefact.
    MissingArtefactError
        When it is declared but absent (written by an older step).
    """
    spec = ARTEFACTS.get(name)
    path = "/".join(keys)
    declared = {k.name for k in spec.uns} if spec else set()
    if spec is not None and path not in declared:
        raise ValidationError(
            f"uns['workbench'][{path!r}] is not a declared key of artefact {name!r} "
            f"(declared: {sorted(declared) or 'none'}).",
            "read one of the declared keys, or add the key to the schema in "
            "workbench.data.artefacts together with the step that writes it.")
    try:
        return _get_path(adata.uns.get("workbench", {}), path)
    except KeyError:
        maker = spec.writer if spec else "the step that writes it"
        raise MissingArtefactError(
            f"artefact {name!r} has no uns['workbench'][{path!r}].",
            f"re-run {maker} with this version of the workbench.") from None


__all__ = ["ARTEFACTS", "ArtefactSpec", "Key", "SCHEMA_VERSION", "check_anndata",
           "check_array", "check_json", "check_table", "uns_entry"]


def check_artefact(name: str, obj: Any, *, writer: str | None = None) -> None:
    """Check an artefact as :meth:`Study.read` returns it (AnnData, table, array, dict).

    Parameters
    ----------
    name : str
        The artefact's name; an undeclared name is not checked.
    obj : object
        The artefact as read: an AnnData, a data frame, an array, a dict, or the path of a
        ``file`` artefact.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Raises
    ------
    ValidationError
        When the object breaks the declared schema.
    """
    spec = ARTEFACTS.get(name)
    if spec is None:
        return
    if spec.kind == "anndata":
        check_anndata(name, obj, writer=writer)
    elif spec.kind == "table":
        check_table(name, obj, writer=writer)
    elif spec.kind == "array":
        check_array(name, obj, dict(obj.attrs) if hasattr(obj, "attrs") else {},
                    writer=writer)  # only shape and attributes are read
    elif spec.kind == "json":
        check_json(name, obj, writer=writer)
    elif spec.kind == "file" and spec.manifest:
        check_json(name, read_manifest(name, obj, writer=writer), writer=writer)


def read_manifest(name: str, path, *, writer: str | None = None) -> Any:
    """The JSON document a ``file`` artefact (a folder) declares as its manifest.

    Parameters
    ----------
    name : str
        The artefact's name (it must be declared with a ``manifest``).
    path : str or os.PathLike
        The artefact's folder.
    writer : str or None
        The step that wrote the object, named in the message; None leaves it out.

    Returns
    -------
    object
        The parsed JSON document.

    Raises
    ------
    ValidationError
        When the manifest is missing or is not readable JSON.
    """
    import json
    from pathlib import Path

    spec = ARTEFACTS[name]
    doc = Path(path) / spec.manifest
    if not doc.is_file():
        raise _fail(name, f"the folder has no {spec.manifest}", "(missing)",
                    f"a JSON document {spec.manifest}", writer)
    try:
        return json.loads(doc.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(name, spec.manifest, f"unreadable ({exc})", "a JSON document",
                    writer) from None


__all__.append("check_artefact")
