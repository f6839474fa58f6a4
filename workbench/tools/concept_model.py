"""A saved concept model: encode new profiles with concepts learned elsewhere, and compare runs.

The concepts step saves what it needs to encode a sample in the ``concept_model`` artefact, a
folder of two open files:

* ``tensors.safetensors``: the control whitener (``whitener.mean``, ``whitener.components``,
  ``whitener.eigenvalues``) and the dictionary's parameters (``dictionary.atoms``,
  ``dictionary.bias``, and for a TopK SAE ``dictionary.encoder``/``encoder_bias``), float32;
* ``model.json``: the format name and version, the dictionary's class and settings, the
  whitener's settings, the input feature names in order, the concept ids, the training
  split, and the checksum of the tensor file.

:func:`workbench.tools.concept_encode.encode_study` reads a model from one Study and
encodes the profiles of another with it: the features are aligned by name, the whitener is the one fitted on the *first* Study's
controls, and the concept ids are the model's, so concept ``c007`` means the same direction
in both. :func:`match_concepts` pairs the concepts of two runs or methods one to one
(Hungarian assignment on atom cosine, :func:`scipy.optimize.linear_sum_assignment`) and
gives each pair its cosine as a stability score; :func:`activation_correlation` compares the
activations of one model on two sets of samples through their per-perturbation means.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import ValidationError

FORMAT = "workbench.concept_model"
MODEL_VERSION = 1
TENSORS = "tensors.safetensors"
SETTINGS = "model.json"
REQUIRED = ("format", "version", "class", "params", "whitener", "features", "concept_ids",
            "tensors_sha256")


@dataclass
class ConceptModel:
    """A loaded model: the fitted whitener and dictionary, feature names, concept ids.

    Made by :func:`load_model`; encodes raw profiles of the model's features in the order
    of ``features`` (use :func:`align_features` first).

    Parameters
    ----------
    model : SparseDictionary
        The fitted dictionary (:class:`~workbench.models.icfl.ICFL` or
        :class:`~workbench.models.topk_sae.TopKSAE`).
    whitener : ControlWhitener
        The control whitener fitted with it.
    features : list of str
        The input feature names, in the order the whitener expects.
    concept_ids : list of str
        One id per atom (``c000``, ...), the same as in the Study the model came from.
    doc : dict
        The ``model.json`` document (settings, split, checksum, versions).
    """

    model: object
    whitener: object
    features: list
    concept_ids: list
    doc: dict

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Whiten raw rows with the model's control whitener (and scale to unit norm).

        Parameters
        ----------
        x : ndarray
            ``(n, len(features))`` raw profiles, columns in the order of ``features``.

        Returns
        -------
        ndarray
            ``(n, len(features))`` float32 prepared rows, ready for the dictionary.
        """
        return self.whitener.transform(x)

    def encode(self, x: np.ndarray):
        """Sparse codes of raw input rows with these features.

        Parameters
        ----------
        x : ndarray
            ``(n, len(features))`` raw profiles, columns in the order of ``features``.

        Returns
        -------
        scipy.sparse.csr_matrix
            ``(n, len(concept_ids))`` float32 codes.
        """
        return self.model.transform(self.prepare(x))


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(folder: Path, fit, *, concept_ids, method: str, run: str, split: dict) -> dict:
    """Write ``fit`` (a :class:`~workbench.tools.concepts.ConceptFit`) into ``folder``.

    Writes ``tensors.safetensors`` and ``model.json`` (checked against the artefact
    schema before it is written).

    Parameters
    ----------
    folder : Path
        Folder to write into (created when missing); usually a transaction's staging path
        of the ``concept_model`` artefact.
    fit : ConceptFit
        The fitted dictionary, whitener and feature names.
    concept_ids : list of str
        One id per atom, in atom order.
    method : str
        The concept method (``"icfl"``, ``"topk"``), recorded.
    run : str
        The run name, recorded.
    split : dict
        The training split (its name, sizes and held-out rows), recorded; must be JSON
        serialisable.

    Returns
    -------
    dict
        The ``model.json`` document written.
    """
    from safetensors.numpy import save_file

    from workbench import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"dictionary.{k}": np.ascontiguousarray(v)
              for k, v in fit.model.state_arrays().items()}
    w_arrays, w_settings = fit.whitener.state_arrays()
    arrays.update({f"whitener.{k}": np.ascontiguousarray(v) for k, v in w_arrays.items()})
    save_file(arrays, str(folder / TENSORS), metadata={"format": FORMAT,
                                                       "version": str(MODEL_VERSION)})
    params = {k: _jsonable(v) for k, v in fit.model.get_params().items()
              if k not in ("device", "progress")}
    doc = {"format": FORMAT, "version": MODEL_VERSION, "workbench_version": __version__,
           "class": type(fit.model).__name__, "method": method, "run": run,
           "params": params, "whitener": w_settings,
           "features": [str(f) for f in fit.features], "concept_ids": list(concept_ids),
           "split": split, "tensors": TENSORS, "tensors_sha256": _sha(folder / TENSORS)}
    from workbench.data.artefacts import check_json

    check_json("concept_model", doc, writer="concepts")
    (folder / SETTINGS).write_text(json.dumps(doc, indent=2, default=_jsonable))
    return doc


def _bad(study_name: str, what: str) -> ValidationError:
    return ValidationError(f"the concept model of {study_name} {what}.",
                           "re-run `workbench concepts` on that Study with this version of "
                           "the workbench to save a fresh model.")


def load_model(study, *, device: str = "auto") -> ConceptModel:
    """The ``concept_model`` of ``study``, checked (format, version, checksum, shapes).

    Parameters
    ----------
    study : Study
        The Study whose concepts step saved the model.
    device : str
        Torch device for the dictionary (``"auto"``: a GPU when there is one).

    Returns
    -------
    ConceptModel
        The model, ready to encode.

    Raises
    ------
    ValidationError
        If the Study has no concept model, or it cannot be read, has another format, a
        newer version, a tensor file that fails its checksum, an unknown dictionary class
        or shapes that do not match its ids and features.
    """
    from safetensors.numpy import load_file

    from workbench.models.icfl import ICFL
    from workbench.models.topk_sae import TopKSAE

    if not study.has("concept_model"):
        raise ValidationError(
            f"Study {study.path.name} has no saved concept model.",
            f"run `workbench concepts {study.path.name}` first (it saves the model).")
    folder = study.artefact_path("concept_model")
    try:
        doc = json.loads((folder / SETTINGS).read_text())
    except (OSError, ValueError) as exc:
        raise _bad(study.path.name, f"cannot be read ({exc})") from exc
    from workbench.data.artefacts import check_json

    check_json("concept_model", doc, writer="concepts")
    missing = [k for k in REQUIRED if k not in doc]
    if missing or doc.get("format") != FORMAT:
        raise _bad(study.path.name, f"is not a {FORMAT} document (missing {missing})")
    if int(doc["version"]) > MODEL_VERSION:
        raise ValidationError(
            f"the concept model of {study.path.name} has format version {doc['version']}; "
            f"this workbench reads up to {MODEL_VERSION}.", "upgrade the workbench.")
    tensors = folder / doc.get("tensors", TENSORS)
    if not tensors.is_file() or _sha(tensors) != doc["tensors_sha256"]:
        raise _bad(study.path.name, "has a tensor file that is missing or does not match "
                                    "its checksum")
    arrays = load_file(str(tensors))
    classes = {"ICFL": ICFL, "TopKSAE": TopKSAE}
    if doc["class"] not in classes:
        raise _bad(study.path.name, f"names an unknown dictionary class {doc['class']!r}")
    dic = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("dictionary.")}
    wh = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("whitener.")}
    from workbench.models.dictionary import ControlWhitener

    model = classes[doc["class"]].from_state(doc["params"], dic, device=device)
    if dic["atoms"].shape != (len(doc["concept_ids"]), len(doc["features"])):
        raise _bad(study.path.name, "has atoms whose shape does not match its concept ids "
                                    "and features")
    return ConceptModel(model, ControlWhitener.from_state(wh, doc["whitener"]),
                        list(doc["features"]), list(doc["concept_ids"]), doc)


def align_features(x: np.ndarray, names: list[str], features: list[str], where: str):
    """Columns of ``x`` (named ``names``) in the model's feature order.

    Parameters
    ----------
    x : ndarray
        ``(n, len(names))`` profiles.
    names : list of str
        The name of each column of ``x``.
    features : list of str
        The model's features, in its order.
    where : str
        What ``x`` is, as the error should name it.

    Returns
    -------
    ndarray
        ``(n, len(features))`` the selected columns (a copy).

    Raises
    ------
    ValidationError
        If some of the model's features are not among ``names``.
    """
    pos = {str(n): i for i, n in enumerate(names)}
    missing = [f for f in features if f not in pos]
    if missing:
        raise ValidationError(
            f"{where} lacks {len(missing)} of the model's {len(features)} features "
            f"(first: {missing[:5]}).",
            "encode profiles made the same way (same encoder and block, or the same "
            "CellProfiler features), or pick the matching representation with --use-rep.")
    return x[:, [pos[f] for f in features]]


def match_concepts(atoms_a: np.ndarray, atoms_b: np.ndarray, ids_a=None, ids_b=None, *,
                   signed: bool = True) -> pd.DataFrame:
    """One-to-one matching of two dictionaries' atoms (Hungarian, maximal total cosine).

    Parameters
    ----------
    atoms_a, atoms_b : ndarray
        ``(m_a, d)`` and ``(m_b, d)`` atoms in one space (any norm).
    ids_a, ids_b : list of str, optional
        Concept ids of each; ``None`` names them ``c0``, ``c1``... by row.
    signed : bool
        False treats an atom and its negative as the same concept (for
        absolute-selection pursuits).

    Returns
    -------
    pandas.DataFrame
        One row per concept of ``a`` that gets a partner (``min(m_a, m_b)`` rows):
        ``concept_a``, ``concept_b``, ``cosine`` (the stability score: 1 = the same
        direction; absolute when not ``signed``).

    Raises
    ------
    ValidationError
        If the two dictionaries have different numbers of features.
    """
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(atoms_a, np.float64)
    b = np.asarray(atoms_b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValidationError(f"the two dictionaries have {a.shape[1]} and {b.shape[1]} "
                              "features; concepts can only be matched in one space.",
                              "match runs learned on the same representation.")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cos = a @ b.T
    score = cos if signed else np.abs(cos)
    ra, cb = linear_sum_assignment(-score)
    ids_a = list(ids_a) if ids_a is not None else [f"c{i}" for i in range(len(a))]
    ids_b = list(ids_b) if ids_b is not None else [f"c{i}" for i in range(len(b))]
    return pd.DataFrame({"concept_a": [ids_a[i] for i in ra],
                         "concept_b": [ids_b[j] for j in cb],
                         "cosine": score[ra, cb].astype(np.float32)})


def seed_stability(atoms: np.ndarray, others, *, signed: bool = True) -> np.ndarray:
    """Per concept of ``atoms``: the mean cosine of its Hungarian partner in each other run.

    The stability score of the concept pages: the same data and settings are fitted again
    with other seeds, each run's atoms are matched one to one to ``atoms``
    (:func:`match_concepts`), and a concept that comes back in the same direction every
    time scores near 1; a concept that one seed happened to carve out scores low (random
    directions in ``d`` dimensions have cosines near ``1/sqrt(d)`` even at their best
    match). Stability is a graded score, not a test.

    Parameters
    ----------
    atoms : ndarray
        The main run's dictionary (concepts x features).
    others : iterable of ndarray
        The other seeds' dictionaries, each (concepts x features) in the same space.
    signed : bool
        False treats an atom and its negative as one concept (absolute-selection pursuits).

    Returns
    -------
    ndarray
        One score per concept of ``atoms`` (float32; NaN when ``others`` is empty).
    """
    a = np.asarray(atoms)
    others = list(others)
    if not others:
        return np.full(a.shape[0], np.nan, np.float32)
    total = np.zeros(a.shape[0])
    for b in others:
        m = match_concepts(a, b, signed=signed)
        rows = np.asarray([int(c[1:]) for c in m["concept_a"]])
        got = np.zeros(a.shape[0])       # a concept left without a partner scores 0
        got[rows] = m["cosine"].to_numpy(np.float64)
        total += got
    return (total / len(others)).astype(np.float32)


def group_means(codes, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean code per group.

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` codes.
    groups : ndarray
        ``(n,)`` group of each sample (compared as strings).

    Returns
    -------
    means : ndarray
        ``(n_groups, m)`` mean code of each group, in the sorted order of the names.
    names : ndarray
        ``(n_groups,)`` the sorted group names.
    """
    import scipy.sparse as sp

    names, inv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    c = codes if sp.issparse(codes) else sp.csr_matrix(np.asarray(codes))
    onehot = sp.csr_matrix((np.ones(len(inv)), (inv, np.arange(len(inv)))),
                           shape=(len(names), len(inv)))
    sums = np.asarray((onehot @ c).todense())
    return sums / np.bincount(inv)[:, None], names


def activation_correlation(codes_a, groups_a, codes_b, groups_b) -> np.ndarray:
    """Per concept: Pearson correlation, over the groups present in both sets, of the mean
    activation in ``a`` and in ``b``.

    Parameters
    ----------
    codes_a, codes_b : ndarray or scipy.sparse matrix
        ``(n_a, m)`` and ``(n_b, m)`` codes of one model on two sets of samples.
    groups_a, groups_b : ndarray
        The group (e.g. perturbation) of each sample of each set.

    Returns
    -------
    ndarray
        ``(m,)`` correlations; NaN for a concept constant over the common groups in either
        set.
    """
    ma, na = group_means(codes_a, groups_a)
    mb, nb = group_means(codes_b, groups_b)
    common = sorted(set(na) & set(nb))
    ia = [int(np.searchsorted(na, g)) for g in common]
    ib = [int(np.searchsorted(nb, g)) for g in common]
    a, b = ma[ia], mb[ib]
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (a * b).sum(0) / den, np.nan)


__all__ = ["ConceptModel", "FORMAT", "MODEL_VERSION", "activation_correlation",
           "align_features", "group_means", "load_model", "match_concepts", "save_model",
           "seed_stability"]
