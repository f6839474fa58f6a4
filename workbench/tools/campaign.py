"""Active pair-selection campaigns: hide a complete screen's doubles, reveal them as chosen.

A campaign simulates the loop of Xu et al. 2024 (arXiv 2409.07594) on a screen whose
doubles are all known: it starts from a small random set of revealed pairs, fits the
Bayesian low-rank model (:class:`workbench.models.pair_selection.LowRankPairModel`) to
the revealed values, lets an acquisition choose the next batch among the hidden pairs,
reveals them, and repeats until the budget is spent. The metric is the share of the top
pairs (top 5% by value, e.g. |GI|) found so far; random choice finds, in expectation, the
share of pairs revealed.

:func:`propose_batch` is the same step for a real screen: fit on the measured pairs and
return the next batch among the candidates not yet measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["run_campaign", "propose_batch", "campaign_summary"]


def _model(seed: int, device: str, **kw):
    from workbench.models.pair_selection import LowRankPairModel

    return LowRankPairModel(seed=seed, device=device, **kw)


def propose_batch(n_items: int, cand_i, cand_j, obs_i, obs_j, obs_y, *, side=None,
                  acquisition: str = "ids", batch_size: int = 10, seed: int = 0,
                  device: str = "auto", model=None, **model_kw) -> tuple[np.ndarray, dict]:
    """Choose ``batch_size`` of the candidate pairs ``(cand_i, cand_j)`` to measure next.

    Returns the chosen candidate positions and ``{"mean", "sd"}`` of the posterior over all
    candidates (for display). ``model`` may be a fitted model to warm-start.
    """
    from workbench.models.pair_selection import select_batch

    cand_i, cand_j = np.asarray(cand_i), np.asarray(cand_j)
    if acquisition == "random" or len(obs_y) == 0:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(cand_i), min(batch_size, len(cand_i)), replace=False)
        return pick, {"mean": np.full(len(cand_i), np.nan), "sd": np.full(len(cand_i), np.nan),
                      "model": model}
    warm = model is not None
    model = model or _model(seed, device, **model_kw)
    model.fit(obs_i, obs_j, obs_y, side=side, n_items=n_items, warm_start=warm)
    samples = model.sample(cand_i, cand_j)
    pick = select_batch(samples, acquisition, batch_size, seed=seed)
    return pick, {"mean": samples.mean(0), "sd": samples.std(0), "model": model}


def run_campaign(values: np.ndarray, *, side=None, candidates=None, acquisition: str = "ids",
                 budget: float = 0.2, initial: float = 0.02, batch_size: int | None = None,
                 top_fraction: float = 0.05, seed: int = 0, device: str = "auto",
                 **model_kw) -> pd.DataFrame:
    """Run one campaign on a complete matrix of pair values (larger = more wanted).

    Parameters
    ----------
    values : (n, n) symmetric matrix (NaN where a pair does not exist).
    side : (n, p) side features of the items (singles), or None.
    candidates : optional (m, 2) index pairs; default every i < j with a finite value.
    budget : fraction of the candidates revealed at the end (initial ones included).
    initial : fraction revealed at random before the first model fit.
    batch_size : pairs per round; default ``max(1, m // 100)``.
    top_fraction : the top pairs the campaign tries to find.

    Returns
    -------
    One row per revealed pair, in order: ``round, i, j, value, is_top, acquisition, seed,
    n_revealed, frac_revealed, top_found_share``.
    """
    values = np.asarray(values, float)
    n = values.shape[0]
    if candidates is None:
        iu = np.triu_indices(n, 1)
        ok = np.isfinite(values[iu])
        cand = np.stack([iu[0][ok], iu[1][ok]], 1)
    else:
        cand = np.asarray(candidates)
    m = len(cand)
    v = values[cand[:, 0], cand[:, 1]]
    n_top = max(1, int(round(top_fraction * m)))
    top = np.zeros(m, bool)
    top[np.argsort(-v, kind="stable")[:n_top]] = True
    batch_size = batch_size or max(1, m // 100)
    total = int(round(budget * m))
    rng = np.random.default_rng(seed)
    revealed = np.zeros(m, bool)
    order: list[tuple[int, int]] = []  # (candidate, round)
    first = rng.choice(m, max(1, int(round(initial * m))), replace=False)
    revealed[first] = True
    order += [(int(c), 0) for c in first]
    model = None
    rnd = 0
    while revealed.sum() < total:
        rnd += 1
        hidden = np.flatnonzero(~revealed)
        obs = np.flatnonzero(revealed)
        k = min(batch_size, total - int(revealed.sum()))
        pick, info = propose_batch(
            n, cand[hidden, 0], cand[hidden, 1], cand[obs, 0], cand[obs, 1], v[obs],
            side=side, acquisition=acquisition, batch_size=k, seed=seed * 7919 + rnd,
            device=device, model=model, **model_kw)
        model = info["model"]
        chosen = hidden[pick]
        revealed[chosen] = True
        order += [(int(c), rnd) for c in chosen]
    idx = np.array([c for c, _ in order])
    hist = pd.DataFrame({"round": [r for _, r in order], "i": cand[idx, 0], "j": cand[idx, 1],
                         "value": v[idx], "is_top": top[idx]})
    hist["acquisition"] = acquisition
    hist["seed"] = seed
    hist["n_revealed"] = np.arange(1, len(hist) + 1)
    hist["frac_revealed"] = hist.n_revealed / m
    hist["top_found_share"] = hist.is_top.cumsum() / n_top
    return hist


def top_share_curve(histories: pd.DataFrame, fractions=(0.05, 0.1, 0.15, 0.2)) -> pd.DataFrame:
    """Top share found at each budget fraction, one row per (acquisition, seed, budget)."""
    rows = []
    for (acq, seed), h in histories.groupby(["acquisition", "seed"]):
        for f in fractions:
            sub = h[h.frac_revealed <= f + 1e-9]
            rows.append({"acquisition": acq, "seed": seed, "budget": f,
                         "top_found_share": float(sub.top_found_share.iloc[-1]) if len(sub) else 0.0})
    return pd.DataFrame(rows)


def campaign_summary(histories: pd.DataFrame, fractions=(0.05, 0.1, 0.15, 0.2)) -> pd.DataFrame:
    """Mean and 95% interval (over seeds) of the top share found at each budget fraction."""
    df = top_share_curve(histories, fractions)
    out = df.groupby(["acquisition", "budget"]).top_found_share.agg(["mean", "std", "count"])
    half = 1.96 * out["std"].fillna(0) / np.sqrt(out["count"])
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out.reset_index()
