"""Replicate-level additivity test of the interaction shift, vectorised over pairs.

The null hypothesis is the genetic-interaction null of Norman et al. 2019 (Science 365,
786), "the double's effect is the sum of the singles' effects", carried from one fitness
or expression value to the whole profile: in the embedding,

    E[x | A+B] - E[x | ctrl] = (E[x | A] - E[x | ctrl]) + (E[x | B] - E[x | ctrl]),

i.e. the interaction contrast ``delta = mean(ab) + mean(ctrl) - mean(a) - mean(b)`` is 0.
This is additivity *in the observation*. Under a nonlinear map from a latent state to the
profile it is a different hypothesis from the latent separability of Xu et al. 2024
(arXiv 2409.07594): latent-disjoint effects seen through a mixing map need not add up in
the profile (and the test then rejects, rightly for its own null).

Replicates are the unit of inference. Each condition is summarised by the means of its
replicate units (wells, or any unit the caller names); the mean of unit ``w`` of condition
``c`` has covariance ``T + C_c / m_w``: a well-effect covariance ``T`` and the condition's
within-unit cell covariance ``C_c`` over its ``m_w`` cells (the multivariate form of the
random-effects model of :func:`workbench.models.replicates.contrast_test`). Hence

    Cov(delta) = T * sum_c 1/U_c + sum_c C_c * sum_w (1/m_cw) / U_c^2.

- ``C_c`` is estimated from the cells of the condition inside their units and shrunk
  towards its own diagonal with weight ``d / (d + nu_c)`` (a simple Ledoit-Wolf-type
  rule; Ledoit & Wolf 2004, J. Multivar. Anal. 88, 365), so that it is invertible with
  fewer cells than dimensions; conditions with fewer than 3 within-unit degrees of
  freedom borrow the within-unit covariance pooled over the call.
- ``T`` is shared by the conditions of the whole call (technical well-to-well variation)
  and estimated by the method of moments from every condition with two or more units,
  counted once: ``sum_g [R_g - (1 - 1/U_g) C_g sum_w 1/m_gw] / sum_g (U_g - 1)``, ``R_g``
  the scatter of the unit means, projected onto the positive semi-definite cone. A
  condition with a single unit can then still be tested; a call in which no condition
  has two units cannot (status, no p-value).
- The statistic is the Mahalanobis norm ``Q = delta^T Cov^-1 delta`` with the shrunken
  estimate. Its null is a parametric bootstrap at the replicate level that redraws the
  estimates as well as the contrast: ``C_c* ~ Wishart(nu_c, C_c) / nu_c`` (then shrunk
  the same way), ``T* ~ Wishart(df_T, T) / df_T`` and ``delta* ~ N(0, Cov)``, so the
  p-value accounts for having estimated ``Cov`` from few cells and wells (plug-in chi^2
  with d degrees of freedom would not).

Coordinates are standardised by the control spread first (coordinates constant in the
controls are left out and counted). The effect size is the debiased interaction norm
``sqrt(max(0, ||delta||^2 - tr Cov))`` in control-sd units, with a 95% interval from the
same bootstrap (``delta + N(0, Cov)``, bias-corrected percentiles).
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.errors import ValidationError
from workbench.models._device import numpy_generator, resolve_device
from workbench.models.replicates import (
    CONDITIONS,
    ReplicateResult,
    _groups_ok,
    check_finite,
    unit_means,
)

__all__ = ["additivity_test", "well_covariance"]

_ORDER = ("ab", "ctrl", "a", "b")
#: cap on the Wishart degrees of freedom redrawn by the bootstrap (more df: the estimate is
#: treated as better known than it is, fewer: as worse; capping errs to the safe side)
_MAX_BOOT_DF = 128


def _summaries(x: np.ndarray, units) -> dict:
    """Unit means, cells per unit, within-unit scatter and its degrees of freedom."""
    means, m, resid = unit_means(x, units)
    return {"means": means, "m": m, "scatter": resid.T @ resid, "nu": len(x) - len(m)}


def _shrink(s: np.ndarray, nu: int, corr: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Shrink ``s`` with weight ``d / (d + nu)`` towards its own variances joined by the
    correlation ``corr`` (None: the identity, i.e. towards its diagonal)."""
    d = s.shape[0]
    lam = d / (d + max(nu, 1))
    sd = np.sqrt(np.clip(np.diag(s), 0, None))
    target = np.diag(np.diag(s)) if corr is None else sd[:, None] * corr * sd[None, :]
    return (1 - lam) * s + lam * target, lam


def _correlation(c: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.clip(np.diag(c), 1e-300, None))
    r = c / sd[:, None] / sd[None, :]
    np.fill_diagonal(r, 1.0)
    return r


def well_covariance(summaries: list[dict], pooled_cells: np.ndarray) -> tuple[np.ndarray, int]:
    """Method-of-moments well-effect covariance ``T`` from conditions with >= 2 units.

    Each condition with ``U >= 2`` units contributes the scatter of its unit means less the
    part its within-unit cell covariance explains, ``R - (1 - 1/U) C sum_w 1/m_w``; the sum
    over conditions is divided by ``sum (U - 1)`` and projected onto the positive
    semi-definite cone.

    Parameters
    ----------
    summaries : list of dict
        One per distinct condition, as made by the module's private ``_summaries``: keys
        ``"means"`` (``(U, d)`` unit means), ``"m"`` (``(U,)`` cells per unit),
        ``"scatter"`` (``(d, d)`` within-unit scatter) and ``"nu"`` (its degrees of
        freedom). Duplicates must already be removed, or they count twice.
    pooled_cells : ndarray
        ``(d, d)`` within-unit cell covariance used for a condition with fewer than 3
        within-unit degrees of freedom.

    Returns
    -------
    T : ndarray
        ``(d, d)`` positive semi-definite well-effect covariance (zero when ``df`` is 0).
    df : int
        Its degrees of freedom, ``sum (U - 1)``; 0 when no condition has two units, and
        ``T`` then cannot be used.
    """
    d = pooled_cells.shape[0]
    num = np.zeros((d, d))
    df = 0
    for s in summaries:
        u = len(s["m"])
        if u < 2:
            continue
        c = s["scatter"] / s["nu"] if s["nu"] >= 3 else pooled_cells
        r = s["means"] - s["means"].mean(0)
        num += r.T @ r - (1 - 1 / u) * c * (1.0 / s["m"]).sum()
        df += u - 1
    if df == 0:
        return np.zeros((d, d)), 0
    t = num / df
    w, v = np.linalg.eigh((t + t.T) / 2)
    return (v * np.clip(w, 0, None)) @ v.T, df


def _fingerprint(x: np.ndarray, u) -> tuple:
    return (x.shape, float(np.round(x.sum(), 6)), float(np.round((x * x).sum(), 4)),
            tuple(sorted(set(map(str, u)))))


def _wishart(chol: torch.Tensor, df: torch.Tensor, b: int, gen, cap: int) -> torch.Tensor:
    """Draws ``W / df`` of Wishart(df, L L^T) for a batch of factors ``chol`` (..., d, d).

    ``df`` (...,) integers; returns (..., b, d, d)."""
    shape = chol.shape[:-2]
    d = chol.shape[-1]
    k = int(min(cap, int(df.max())))
    z = torch.as_tensor(gen.standard_normal((*shape, b, k, d)), dtype=chol.dtype,
                        device=chol.device)
    dfc = df.clamp(max=k).to(chol.dtype)
    mask = (torch.arange(k, device=chol.device)[None, :] < dfc.reshape(-1, 1)).to(chol.dtype)
    z = z * mask.reshape(*shape, 1, k, 1)
    x = (z.reshape(*shape, b * k, d) @ chol.transpose(-1, -2)).reshape(*shape, b, k, d)
    return torch.einsum("...kd,...ke->...de", x, x) / dfc.reshape(*shape, 1, 1, 1)


def additivity_test(groups: list[dict[str, np.ndarray]], units: list[dict[str, np.ndarray]],
                    *, reference=None, names: list[str] | None = None,
                    n_bootstrap: int = 500, seed: int = 0, device: str = "auto",
                    chunk_pairs: int | None = None, budget: int = 1 << 24,
                    target: str = "diagonal") -> ReplicateResult:
    """Test ``mean(ab) + mean(ctrl) - mean(a) - mean(b) = 0`` with replicates as the unit.

    Parameters
    ----------
    groups : list of dict of str to ndarray
        One dict per pair, mapping each condition (``"ctrl"``, ``"a"``, ``"b"``, ``"ab"``)
        to its ``(n_c, d)`` cell profiles. The same arrays may be shared between pairs
        (the controls, a single shared by several doubles): their summaries are computed
        once.
    units : list of dict of str to ndarray
        Parallel to ``groups``: per condition, the ``(n_c,)`` replicate unit (well) of each
        cell. To treat every cell as its own replicate (a cell-level test, invalid under
        well effects), give each cell a unit of its own.
    reference : array_like, optional
        ``(n, d)`` samples whose per-coordinate sd fixes the standardisation; ``None`` pools
        the controls of every pair. Coordinates constant in it are left out.
    names : list of str, optional
        Pair names, used in the error messages only.
    n_bootstrap : int
        Replicates of the parametric bootstrap null (at least 1); p-values are at least
        ``1 / (n_bootstrap + 1)``.
    seed : int
        Seed of the bootstrap draws; the same seed gives the same p-values.
    device : str
        Torch device of the bootstrap (``"auto"``: a GPU when there is one; float32 there,
        float64 on the CPU).
    chunk_pairs : int, optional
        Pairs per batch of the bootstrap; ``None`` takes as many as keep the largest
        working tensor under ``budget`` elements.
    budget : int
        Element budget of the largest working tensor when ``chunk_pairs`` is ``None``.
    target : str
        Shrinkage target of each condition's cell covariance: ``"diagonal"`` (its own
        variances, no correlation) or ``"pooled"`` (its own variances joined by the
        correlation of the within-unit covariance pooled over the call, itself shrunk
        towards its diagonal; the bootstrap redraws that correlation too). With strongly
        correlated features (embeddings) and fewer cells than features the diagonal
        target inflates the variance of the weak directions; the pooled one keeps them.

    Returns
    -------
    ReplicateResult
        ``statistic`` the Mahalanobis norm ``Q``, ``p_value`` from the bootstrap null,
        ``effect_size`` the debiased interaction norm (control-sd units) and its 95%
        interval in ``ci_low``/``ci_high``, one entry per pair (NaN where untested);
        ``status`` says per pair whether it was tested and, if not, why.
    """
    names = _groups_ok(groups, units, names)
    if target not in ("diagonal", "pooled"):
        raise ValidationError(f"target={target!r} is not a shrinkage target.",
                              "pass 'diagonal' or 'pooled'.")
    if n_bootstrap < 1:
        raise ValidationError(f"n_bootstrap={n_bootstrap} leaves the test without a null.",
                              "pass n_bootstrap >= 100 (500 by default).")
    ref = (np.concatenate([g["ctrl"] for g in groups]) if reference is None
           else check_finite(reference, "reference"))
    sd = np.asarray(ref, float).std(0)
    live = sd > 1e-6 * max(float(sd.max()), 1e-12)
    scale = 1.0 / sd[live]
    d = int(live.sum())
    n_pairs = len(groups)
    summ: list[dict] = []
    unique: dict[tuple, dict] = {}
    for g, u in zip(groups, units):
        row = {}
        for c in CONDITIONS:
            x = np.asarray(g[c], float)
            if len(x) == 0:
                row[c] = None
                continue
            key = _fingerprint(x, u[c])
            if key not in unique:
                unique[key] = _summaries(x[:, live] * scale, u[c])
            row[c] = unique[key]
        summ.append(row)
    nu_all = sum(s["nu"] for s in unique.values())
    # no cell shares a unit with another (cells as units): no within-unit part at all
    pooled = (sum(s["scatter"] for s in unique.values()) / nu_all if nu_all > 0
              else np.eye(d) * 1e-9)
    t_hat, df_t = well_covariance(list(unique.values()), pooled)
    pooled_s, _ = _shrink(pooled, nu_all)
    corr = _correlation(pooled_s) if target == "pooled" else None
    status = ["tested"] * n_pairs
    ulist = [{c: (0 if s[c] is None else len(s[c]["m"])) for c in CONDITIONS} for s in summ]
    ok = np.ones(n_pairs, bool)
    for k, s in enumerate(summ):
        empty = [c for c in CONDITIONS if s[c] is None]
        if empty:
            ok[k] = False
            status[k] = "no cells of " + ", ".join(empty) + " for morphology"
        elif df_t == 0:
            ok[k] = False
            status[k] = ("no p-value: one replicate unit for every condition of the screen "
                         "(the well-to-well covariance cannot be estimated; add replicate "
                         "wells)")
    stat = np.full(n_pairs, np.nan)
    p = np.full(n_pairs, np.nan)
    eff = np.full(n_pairs, np.nan)
    lo = np.full(n_pairs, np.nan)
    hi = np.full(n_pairs, np.nan)
    idx = np.flatnonzero(ok)
    # per pair: the contrast, the shrunken cell covariances with their df, the weights
    delta = np.zeros((len(idx), d))
    cells = np.zeros((len(idx), 4, d, d))
    nus = np.zeros((len(idx), 4), int)
    lams = np.zeros((len(idx), 4))
    hw = np.zeros((len(idx), 4))
    kt = np.zeros(len(idx))
    for j, k in enumerate(idx):
        for i, c in enumerate(_ORDER):
            s = summ[k][c]
            u = len(s["m"])
            delta[j] += CONDITIONS[c] * s["means"].mean(0)
            if s["nu"] >= 3:
                cells[j, i], lams[j, i] = _shrink(s["scatter"] / s["nu"], s["nu"], corr)
                nus[j, i] = s["nu"]
            else:  # too few cells inside units: borrow the pooled within-unit covariance
                cells[j, i], lams[j, i] = _shrink(pooled, nu_all, corr)
                nus[j, i] = max(nu_all, 1)
            hw[j, i] = (1.0 / s["m"]).sum() / u ** 2
            kt[j] += 1.0 / u
    dev = resolve_device(device)
    dt = torch.float32 if dev.type != "cpu" else torch.float64
    gen = numpy_generator(seed)  # its own generator (numpy draws normals fastest on CPU)
    b = int(n_bootstrap)
    if chunk_pairs is None:
        per_pair = b * (min(_MAX_BOOT_DF, max(int(nus.max(initial=1)), df_t)) * d + 4 * d * d)
        chunk_pairs = int(max(1, min(max(len(idx), 1), budget // max(per_pair, 1))))
    t_t = torch.as_tensor(t_hat, dtype=dt, device=dev)
    t_chol = torch.linalg.cholesky(t_t + 1e-9 * torch.eye(d, dtype=dt, device=dev))
    if corr is not None:  # the pooled correlation, redrawn once per bootstrap replicate
        p_t = torch.as_tensor(pooled_s, dtype=dt, device=dev)
        p_chol = torch.linalg.cholesky(p_t + 1e-9 * torch.eye(d, dtype=dt, device=dev))
    for s0 in range(0, len(idx), chunk_pairs):
        sl = slice(s0, s0 + chunk_pairs)
        dl = torch.as_tensor(delta[sl], dtype=dt, device=dev)
        cc = torch.as_tensor(cells[sl], dtype=dt, device=dev)
        w = torch.as_tensor(hw[sl], dtype=dt, device=dev)
        kk = torch.as_tensor(kt[sl], dtype=dt, device=dev)
        lam = torch.as_tensor(lams[sl], dtype=dt, device=dev)
        cov = kk[:, None, None] * t_t + (w[:, :, None, None] * cc).sum(1)
        q_obs = (dl * torch.linalg.solve(cov, dl.unsqueeze(-1)).squeeze(-1)).sum(-1)
        # bootstrap: redraw the estimates and the contrast under the fitted null
        chol_c = torch.linalg.cholesky(cc)
        cstar = _wishart(chol_c, torch.as_tensor(nus[sl], device=dev), b, gen, _MAX_BOOT_DF)
        diag = torch.diagonal(cstar, dim1=-2, dim2=-1)
        lm = lam[:, :, None, None, None]
        if corr is None:
            cstar = (1 - lm) * cstar + lm * torch.diag_embed(diag)
        else:
            pstar = _wishart(p_chol, torch.as_tensor(max(nu_all, 1), device=dev), b, gen,
                             _MAX_BOOT_DF * 4)
            psd = torch.diagonal(pstar, dim1=-2, dim2=-1).clamp_min(1e-300).sqrt()
            rstar = pstar / psd[:, :, None] / psd[:, None, :]
            sd_c = diag.clamp_min(0).sqrt()
            cstar = (1 - lm) * cstar + lm * (sd_c[..., :, None] * rstar * sd_c[..., None, :])
        if df_t > 0:
            tstar = _wishart(t_chol, torch.as_tensor(df_t, device=dev), b, gen,
                             _MAX_BOOT_DF * 4)
        else:
            tstar = torch.zeros(b, d, d, dtype=dt, device=dev)
        covstar = kk[:, None, None, None] * tstar + (w[:, :, None, None, None] * cstar).sum(1)
        lc = torch.linalg.cholesky(cov)
        e = torch.as_tensor(gen.standard_normal((len(dl), b, d)), dtype=dt, device=dev)
        e = (lc.unsqueeze(1) @ e.unsqueeze(-1)).squeeze(-1)
        q_null = (e * torch.linalg.solve(covstar, e.unsqueeze(-1)).squeeze(-1)).sum(-1)
        tol = 1e-9 * q_obs.abs().clamp_min(1e-12)
        pv = (1 + (q_null >= (q_obs - tol)[:, None]).sum(1)).to(dt) / (1 + b)
        trc = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
        th = (dl * dl).sum(-1) - trc
        th_star = ((dl[:, None, :] + e) ** 2).sum(-1) - trc[:, None] - trc[:, None]
        ql, qh = torch.quantile(th_star, torch.tensor([0.025, 0.975], dtype=dt, device=dev),
                                dim=1)
        rows = idx[sl]
        stat[rows] = q_obs.cpu().numpy()
        p[rows] = pv.cpu().numpy()
        eff[rows] = th.clamp_min(0).sqrt().cpu().numpy()
        lo[rows] = ql.clamp_min(0).sqrt().cpu().numpy()
        hi[rows] = qh.clamp_min(0).sqrt().cpu().numpy()
    params = {"statistic": "Q = delta^T Cov^-1 delta, delta = mean(ab) + mean(ctrl) - mean(a) "
                           "- mean(b) of replicate-unit means (control-sd units), Cov = well "
                           "covariance * sum 1/U_c + shrunken cell covariances",
              "calibration": "parametric bootstrap at the replicate level, redrawing the "
                             "covariance estimates (Wishart) and the contrast",
              "null": "additivity of mean shifts in the observation (not latent "
                      "separability)",
              "kernel": "none (replicate means)", "bandwidth_rule": "n/a", "dim": d,
              "unit_level": True, "n_bootstrap": b, "seed": int(seed),
              "well_covariance_df": int(df_t), "well_covariance_trace": float(np.trace(t_hat)),
              "effect": "debiased interaction norm sqrt(max(0, ||delta||^2 - tr Cov)), 95% "
                        "bootstrap interval",
              "constant_in_reference_left_out": int((~live).sum()), "device": str(dev),
              "shrinkage_target": target}
    return ReplicateResult("additivity", stat, p, eff, lo, hi, status, ulist, params)
