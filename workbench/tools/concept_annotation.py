"""What a concept means: frequency, selectivity, enrichment, drivers, technical flags, pages.

Everything here reads sparse codes (samples x concepts) and the samples' ``obs`` table, and
returns plain tables and arrays that the concepts step stores in the ``concepts`` AnnData, so
the dashboards and napari only read.

* A concept is *active* on a sample when its code is nonzero (Donhauser et al., ICML 2025,
  section 5: selectivity counts activations, not magnitudes).
* **Selectivity** of concept ``m`` for label ``y`` of an ``obs`` column:
  ``P(active | y) - P(active | any other label)`` (the paper's average selectivity).
* **Enrichment**: a one-sided hypergeometric test of "more active samples carry ``y`` than
  chance", with Benjamini-Hochberg FDR over all concept x label tests of that column.
* **Drivers**: the perturbations with significant enrichment, ordered by selectivity.
* **Technical flag**: a concept is flagged when its activation follows ``batch`` or
  ``plate`` rather than biology: among *controls*, which no perturbation touches, its
  activation is enriched in one batch (FDR-controlled, selectivity >= 0.2), or over all
  samples one batch explains it at least as well as the best perturbation.
* **Pages**: exemplar samples at the top of the activation and at activation quantiles, and
  an activation histogram per concept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

TECHNICAL_COLUMNS = ("batch", "plate")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _csr(codes) -> sp.csr_matrix:
    return codes.tocsr() if sp.issparse(codes) else sp.csr_matrix(np.asarray(codes))


def active_matrix(codes) -> sp.csr_matrix:
    """Boolean-as-float CSR: 1 where a concept is active (nonzero code).

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` codes, samples x concepts.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, m)`` float32, 1 on the active entries (no stored zeros).
    """
    c = _csr(codes)
    a = c.copy()
    a.data = (a.data != 0).astype(np.float32)
    a.eliminate_zeros()
    return a


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    flat = np.asarray(p, dtype=float).ravel()
    n = flat.size
    if n == 0:
        return np.asarray(p, dtype=float)
    order = np.argsort(flat)
    ranked = flat[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(0, 1)
    out = np.empty(n)
    out[order] = q
    return out.reshape(np.shape(p))


def label_table(active: sp.csr_matrix, labels: pd.Series) -> dict:
    """Selectivity, enrichment p and q (BH) for every concept and every level of ``labels``.

    Samples whose label is missing are left out. The q-values are Benjamini-Hochberg over
    every concept x level test of the column.

    Parameters
    ----------
    active : scipy.sparse.csr_matrix
        ``(n, m)`` activity, as :func:`active_matrix` makes it.
    labels : pandas.Series
        ``(n,)`` label of each sample (compared as strings; missing values left out), in
        the row order of ``active`` (read by position, whatever its index).

    Returns
    -------
    dict
        ``levels`` (the sorted label names), ``selectivity``, ``p`` (one-sided
        hypergeometric), ``q``, ``p_in`` (``P(active | label)``) as ``(m, n_levels)``
        arrays, and ``counts`` (samples per level).
    """
    from scipy.stats import hypergeom

    lab = labels.astype("object").where(labels.notna(), None).to_numpy()
    keep = np.array([v is not None for v in lab])
    act = active[np.flatnonzero(keep)]
    codes, levels = pd.factorize(pd.Series(lab[keep]).astype(str), sort=True)
    n, n_levels = act.shape[0], len(levels)
    onehot = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), codes)), shape=(n, n_levels))
    k = np.asarray((act.T @ onehot).todense())  # (concepts, levels): active within label
    size = np.bincount(codes, minlength=n_levels).astype(float)
    total_active = np.asarray(act.sum(axis=0)).ravel()[:, None]
    p_in = k / np.maximum(size, 1)
    p_out = (total_active - k) / np.maximum(n - size, 1)
    sel = p_in - p_out
    # P(X >= k) for X ~ Hypergeom(N=n, K=active total, draws=label size)
    p = hypergeom.sf(k - 1, n, total_active, size[None, :])
    p = np.where(k > 0, p, 1.0)
    return {"levels": np.asarray(levels, dtype=str), "selectivity": sel.astype(np.float32),
            "p": p, "q": _benjamini_hochberg(p).astype(np.float32),
            "p_in": p_in.astype(np.float32), "counts": size.astype(int)}


def _drivers(table: dict, exclude: set[str], alpha: float, top: int) -> list[str]:
    out = []
    sel, q, levels = table["selectivity"], table["q"], table["levels"]
    for m in range(sel.shape[0]):
        ok = np.flatnonzero((q[m] < alpha) & (sel[m] > 0))
        ok = [j for j in ok[np.argsort(-sel[m, ok])] if levels[j] not in exclude][:top]
        out.append("; ".join(f"{levels[j]} ({sel[m, j]:.2f})" for j in ok))
    return out


def technical_flags(active: sp.csr_matrix, obs: pd.DataFrame, is_control: np.ndarray,
                    best_biological: np.ndarray, alpha: float = 0.05,
                    min_selectivity: float = 0.2) -> pd.DataFrame:
    """Flag concepts that follow batch or plate rather than biology (see module docstring).

    Parameters
    ----------
    active : scipy.sparse.csr_matrix
        ``(n, m)`` activity of every sample.
    obs : pandas.DataFrame
        The samples' ``obs``; its ``batch`` and ``plate`` columns are read when present (a
        column that repeats another's grouping is read once).
    is_control : ndarray
        ``(n,)`` bool, the control samples.
    best_biological : ndarray
        ``(m,)`` each concept's best selectivity for a perturbation other than the control.
    alpha : float
        FDR level of the control batch enrichment.
    min_selectivity : float
        Batch selectivity a flag needs.

    Returns
    -------
    pandas.DataFrame
        One row per concept: ``technical`` (bool), ``technical_reason`` (empty when not
        flagged), ``batch_selectivity`` (the best over all samples) and
        ``control_batch_q`` (the smallest q among the controls; 1 when untested).
    """
    m = active.shape[1]
    out = pd.DataFrame({"technical": np.zeros(m, bool), "technical_reason": [""] * m,
                        "batch_selectivity": np.zeros(m, np.float32),
                        "control_batch_q": np.ones(m, np.float32)})
    reasons = [[] for _ in range(m)]
    seen = set()
    for col in TECHNICAL_COLUMNS:
        if col not in obs.columns:
            continue
        values = obs[col].astype(str)
        key = tuple(pd.factorize(values)[0])
        if values.nunique() < 2 or key in seen:
            continue
        seen.add(key)
        all_t = label_table(active, values)
        best_all = all_t["selectivity"].max(axis=1)
        out["batch_selectivity"] = np.maximum(out["batch_selectivity"].to_numpy(), best_all)
        ctrl = np.flatnonzero(is_control)
        flag_ctrl = np.zeros(m, bool)
        if ctrl.size >= 4 and values.iloc[ctrl].nunique() > 1:
            ct = label_table(active[ctrl], values.iloc[ctrl].reset_index(drop=True))
            min_q = ct["q"].min(axis=1)
            out["control_batch_q"] = np.minimum(out["control_batch_q"].to_numpy(), min_q)
            strong = (ct["q"] < alpha) & (ct["selectivity"] >= min_selectivity)
            flag_ctrl = strong.any(axis=1)
        flag_all = (best_all >= min_selectivity) & (best_all >= best_biological)
        for i in np.flatnonzero(flag_ctrl):
            reasons[i].append(f"controls differ by {col}")
        for i in np.flatnonzero(flag_all):
            reasons[i].append(f"{col} explains it at least as well as any perturbation")
    out["technical_reason"] = ["; ".join(r) for r in reasons]
    out["technical"] = out["technical_reason"] != ""
    return out


def pages(codes, n_top: int = 8, quantiles=QUANTILES, n_bins: int = 20) -> dict[str, np.ndarray]:
    """Exemplar rows and histograms per concept.

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` codes, samples x concepts.
    n_top : int
        Exemplars of the largest activations per concept.
    quantiles : sequence of float
        Activation quantiles (in [0, 1]) at which an exemplar is picked.
    n_bins : int
        Bins of each activation histogram.

    Returns
    -------
    dict of str to ndarray
        ``top`` (concepts x n_top) row positions of the largest activations (-1 where
        fewer samples are active), ``quantile`` (concepts x len(quantiles)) the active
        sample nearest each activation quantile (-1 for a dead concept), and
        ``hist_counts`` / ``hist_edges`` (concepts x bins, concepts x bins+1) of the
        nonzero activations.
    """
    csc = _csr(codes).tocsc()
    m = csc.shape[1]
    top = np.full((m, n_top), -1, np.int64)
    quant = np.full((m, len(quantiles)), -1, np.int64)
    counts = np.zeros((m, n_bins), np.int64)
    edges = np.zeros((m, n_bins + 1), np.float32)
    for j in range(m):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        rows, vals = csc.indices[lo:hi], csc.data[lo:hi]
        if rows.size == 0:
            continue
        order = np.argsort(-vals, kind="stable")
        top[j, :min(n_top, rows.size)] = rows[order[:n_top]]
        asc = order[::-1]
        pos = np.clip(np.round(np.asarray(quantiles) * (rows.size - 1)).astype(int), 0,
                      rows.size - 1)
        quant[j] = rows[asc[pos]]
        c, e = np.histogram(vals, bins=n_bins)
        counts[j], edges[j] = c, e
    return {"top": top, "quantile": quant, "hist_counts": counts, "hist_edges": edges}


def annotate(codes, obs: pd.DataFrame, *, is_control: np.ndarray, control_label: str,
             label_columns: list[str], alpha: float = 0.05, n_top: int = 8,
             n_drivers: int = 5) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict]:
    """Annotate every concept: frequency, selectivity, enrichment, drivers, flags, pages.

    Parameters
    ----------
    codes : ndarray or scipy.sparse matrix
        ``(n, m)`` codes of every sample.
    obs : pandas.DataFrame
        The samples' ``obs``, one row per code row.
    is_control : ndarray
        ``(n,)`` bool, the control samples; a missing label of a control reads as
        ``control_label``.
    control_label : str
        The control perturbation's name (never a driver).
    label_columns : list of str
        ``obs`` columns to annotate; a column with fewer than two labels is skipped.
    alpha : float
        FDR level of the enrichment calls.
    n_top : int
        Exemplars of the largest activations per concept.
    n_drivers : int
        Drivers listed per concept at most.

    Returns
    -------
    table : pandas.DataFrame
        One row per concept: ``frequency``, ``dead``, ``mean_activation``, per label
        column ``<col>_best``, ``<col>_best_selectivity``, ``<col>_best_q``,
        ``<col>_n_enriched``, ``drivers`` (perturbations), and the columns of
        :func:`technical_flags`.
    obsm : dict of str to ndarray
        ``selectivity_<col>``, ``enrichment_q_<col>`` and the page arrays.
    uns : dict
        The level names and counts per column, ``alpha``, and a description of the pages.
    """
    c = _csr(codes)
    act = active_matrix(c)
    n, m = act.shape
    freq = np.asarray(act.sum(axis=0)).ravel() / max(n, 1)
    total = np.asarray(abs(c).sum(axis=0)).ravel()
    n_act = np.asarray(act.sum(axis=0)).ravel()
    table = pd.DataFrame({
        "frequency": freq.astype(np.float32),
        "dead": n_act == 0,
        "mean_activation": (total / np.maximum(n_act, 1)).astype(np.float32),
    })
    obsm: dict[str, np.ndarray] = {}
    uns: dict = {"labels": {}, "alpha": alpha}
    best_bio = np.zeros(m, np.float32)
    for col in label_columns:
        vals = obs[col]
        if isinstance(vals.dtype, pd.CategoricalDtype):
            vals = vals.astype(object)
        vals = vals.where(~(vals.isna() & pd.Series(is_control, index=vals.index)), control_label)
        if vals.astype(str).nunique(dropna=True) < 2:
            continue
        t = label_table(act, vals.reset_index(drop=True))
        best = t["selectivity"].argmax(axis=1)
        rows = np.arange(m)
        table[f"{col}_best"] = t["levels"][best]
        table[f"{col}_best_selectivity"] = t["selectivity"][rows, best]
        table[f"{col}_best_q"] = t["q"][rows, best]
        table[f"{col}_n_enriched"] = ((t["q"] < alpha) & (t["selectivity"] > 0)).sum(axis=1)
        obsm[f"selectivity_{col}"] = t["selectivity"]
        obsm[f"enrichment_q_{col}"] = t["q"]
        uns["labels"][col] = {"levels": t["levels"].tolist(), "counts": t["counts"].tolist()}
        if col == "perturbation":
            table["drivers"] = _drivers(t, {control_label}, alpha, n_drivers)
            not_ctrl = t["levels"] != control_label
            if not_ctrl.any():
                best_bio = t["selectivity"][:, not_ctrl].max(axis=1)
    if "drivers" not in table:
        table["drivers"] = [""] * m
    tech = technical_flags(act, obs, np.asarray(is_control, bool), best_bio, alpha)
    for k in tech.columns:
        table[k] = tech[k].to_numpy()
    pg = pages(c, n_top=n_top)
    obsm["exemplar_top_index"] = pg["top"]
    obsm["exemplar_quantile_index"] = pg["quantile"]
    obsm["activation_hist"] = pg["hist_counts"]
    obsm["activation_hist_edges"] = pg["hist_edges"]
    uns["pages"] = {
        "exemplar_top": "obsm['exemplar_top_index']: rows of profiles, largest activation "
                        "first (-1 = none)",
        "exemplar_quantiles": "obsm['exemplar_quantile_index']: the active row nearest each "
                              "activation quantile",
        "quantiles": list(QUANTILES),
        "histogram": "obsm['activation_hist'] counts over obsm['activation_hist_edges'] "
                     "(nonzero activations only)",
    }
    return table, obsm, uns
