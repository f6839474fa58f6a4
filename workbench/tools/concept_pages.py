"""Concept pages: everything a concept's page shows, precomputed by the concepts step.

Following the Neuronpedia/InterPLM pattern (STYLE item 9), the step writes one page per
concept into the ``concept_pages`` JSON artefact and the dashboards only read it:

* ``top``: the most strongly activating samples (crop or well ids) with their activation
  and perturbation, largest first;
* ``quantiles``: one exemplar at each activation quantile of the active samples (what a
  typical, weak or strong activation looks like);
* ``histogram``: counts and bin edges of the nonzero activations;
* ``selectivity``: per label column, the most selective labels with selectivity and
  enrichment q-value (controls are not a label here);
* ``drivers``: the perturbations whose enrichment is significant (q < alpha) with positive
  selectivity, and ``driver_state``: "significant" or "none" (then ``best_candidate`` gives
  the most selective perturbation with its q, for the page to show as *not* significant);
* ``similar``: the concepts with the largest atom cosine;
* ``stability``: the atom cosine of the concept's Hungarian match in another seed's run,
  when the step computed it (None otherwise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PAGES_VERSION = 1
N_TOP = 8
N_SIMILAR = 5
N_LABELS = 5


def _f(v) -> float:
    return float(np.round(float(v), 6))


def build_pages(codes, obs: pd.DataFrame, concept_ids, atoms: np.ndarray, annotation,
                obsm: dict, labels: dict, *, control_label: str, alpha: float = 0.05,
                stability=None) -> dict:
    """The ``concept_pages`` document (see the module docstring).

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` codes of every sample.
    obs : pandas.DataFrame
        The samples' ``obs`` (its index gives the crop or well ids; needs
        ``perturbation``).
    concept_ids : list of str
        The ``m`` concept ids.
    atoms : ndarray
        ``(m, d)`` the dictionary's atoms, for the similar concepts.
    annotation : pandas.DataFrame
        The concepts' ``obs`` table, as
        :func:`~workbench.tools.concept_annotation.annotate` returned it.
    obsm : dict of str to ndarray
        The arrays :func:`~workbench.tools.concept_annotation.annotate` returned
        (selectivity and q per label column, page indices).
    labels : dict
        Its ``uns["labels"]``: the level names per column.
    control_label : str
        The control perturbation (not a label on the pages).
    alpha : float
        FDR level of the driver calls.
    stability : array_like, optional
        Per-concept stability scores; ``None`` writes None on every page.

    Returns
    -------
    dict
        The ``concept_pages`` document: ``version``, ``alpha``, ``control_label``,
        ``n_top``, ``quantiles`` and ``concepts`` (concept id -> its page).
    """
    import scipy.sparse as sp

    from workbench.tools.concept_annotation import QUANTILES

    csc = (codes if sp.issparse(codes) else sp.csr_matrix(np.asarray(codes))).tocsc()
    ids = np.asarray(obs.index.astype(str))
    pert = obs["perturbation"].astype(str).to_numpy()
    a = np.asarray(atoms, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    cos = a @ a.T
    np.fill_diagonal(cos, -np.inf)
    pages = {}
    for j, cid in enumerate(concept_ids):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        rows, vals = csc.indices[lo:hi], csc.data[lo:hi]
        order = np.argsort(-vals, kind="stable")
        top = [{"id": str(ids[rows[o]]), "row": int(rows[o]), "activation": _f(vals[o]),
                "perturbation": str(pert[rows[o]])} for o in order[:N_TOP]]
        quant = []
        if rows.size:
            asc = order[::-1]
            for q in QUANTILES:
                o = asc[int(np.clip(round(q * (rows.size - 1)), 0, rows.size - 1))]
                quant.append({"quantile": float(q), "id": str(ids[rows[o]]),
                              "row": int(rows[o]), "activation": _f(vals[o])})
        counts = np.asarray(obsm["activation_hist"][j]).tolist()
        edges = [_f(e) for e in np.asarray(obsm["activation_hist_edges"][j])]
        sel_pages = {}
        drivers, best = [], None
        for col, info in labels.items():
            levels = np.asarray(info["levels"], dtype=str)
            sel = np.asarray(obsm[f"selectivity_{col}"][j], np.float64)
            q = np.asarray(obsm[f"enrichment_q_{col}"][j], np.float64)
            ok = levels != control_label
            order_l = [i for i in np.argsort(-sel) if ok[i]][:N_LABELS]
            sel_pages[col] = [{"label": str(levels[i]), "selectivity": _f(sel[i]),
                               "q": _f(q[i])} for i in order_l]
            if col == "perturbation":
                sig = [i for i in np.argsort(-sel) if ok[i] and q[i] < alpha and sel[i] > 0]
                drivers = [{"perturbation": str(levels[i]), "selectivity": _f(sel[i]),
                            "q": _f(q[i])} for i in sig[:N_LABELS]]
                if order_l:
                    i = order_l[0]
                    best = {"perturbation": str(levels[i]), "selectivity": _f(sel[i]),
                            "q": _f(q[i])}
        near = np.argsort(-cos[j])[:N_SIMILAR] if len(concept_ids) > 1 else []
        row = annotation.iloc[j]
        pages[str(cid)] = {
            "frequency": _f(row["frequency"]), "dead": bool(row["dead"]),
            "technical": bool(row.get("technical", False)),
            "technical_reason": str(row.get("technical_reason", "")),
            "top": top, "quantiles": quant,
            "histogram": {"counts": counts, "edges": edges},
            "selectivity": sel_pages, "drivers": drivers,
            "driver_state": "significant" if drivers else "none",
            "best_candidate": best,
            "similar": [{"concept": str(concept_ids[i]), "cosine": _f(cos[j, i])}
                        for i in near],
            "stability": None if stability is None else _f(stability[j]),
        }
    return {"version": PAGES_VERSION, "alpha": float(alpha), "control_label": control_label,
            "n_top": N_TOP, "quantiles": list(QUANTILES), "concepts": pages}


__all__ = ["PAGES_VERSION", "build_pages"]
