"""Separability of two perturbations: do their KL divergences to control add up?

Xu et al. 2024 ("Automated Discovery of Pairwise Interactions from Unstructured Data", arXiv
2409.07594) call perturbations A and B *separable* when they act on disjoint sets of
mutually independent latent variables. The density ratios to control then multiply,
``r_ab = r_a * r_b``, and taking expectations the KL divergences add:
``KL(Pab||P0) = KL(Pa||P0) + KL(Pb||P0)``. The score is

    S = KL_ab + KL_00 - KL_a - KL_b

where ``KL_00`` is the KL of a held-out half of the controls against the reference half
(true value 0): with it the four terms carry two plus and two minus signs, so an estimator
bias that is the same for every term cancels. The same estimator, reference sample and
sample size serve every term.

Two density-ratio estimators (``estimator=``):

- ``"gaussian"`` (default): a diagonal Gaussian per condition, on the standardised
  coordinates (or, when ``n_components < d``, the whitened principal components of the
  reference controls);
  ``log r`` is the difference of the two Gaussian log densities and the KL is closed-form,
  a sum over coordinates. Its plug-in bias is (nearly) the same constant for every term, so
  it cancels in S: mean S on 322 null pairs of the demo world is near 0 (null sd about 2).
  **p-values** come from a *constrained parametric bootstrap*: under the null every
  coordinate is moved by at most one of A and B, so per coordinate we fit the null model
  (A owns it: ab and a share one Gaussian, b and the controls another; or B owns it; the
  better-fitting of the two), draw ``n_null`` synthetic data sets of the same sizes from it
  and recompute S. The p-value is equal-tailed, ``2 min(P(S* >= S), P(S* <= S))``. Measured
  false-positive rate at alpha 0.05 on four draws of 322 null pairs of the demo world
  (300 null data sets each): 0.034, 0.031, 0.019, 0.031, mean 0.029; power on planted
  interacting pairs 0.83-0.92 (``benchmarks/bench_separability_calibration.py``).
- ``"classifier"``: the realisation in ``notes/methods-core.md`` 3.2: ridge logistic
  regression on quadratic features, cross-fitted over halves, ``KL = E_x[logit]``. It is a
  graded score only (**no p-value**): at the demo's 18 samples per condition the classifier
  learns from 9 + 9 samples, its KL saturates for large divergences (ridge-limited logits),
  so the largest term, KL_ab, is underestimated most and S is biased negative under the
  null (mean -1.6, about 0.7 null sd); its bootstrap standard error (1.4) is also smaller
  than the spread of S (2.2). A normal-approximation p-value from it rejected 31% of null
  pairs, so none is reported.

Intervals (both estimators): ``S +- 1.96 se`` with the standard error of ``n_bootstrap``
resamples within each condition (for the Gaussian estimator this se is conservative, about
1.3x the spread of S in the demo: resampled duplicates shrink the variance estimates).

Where we differ from the paper (whose method section we could not read): the paper scores
``|KL_ab - KL_a - KL_b|`` from its density estimates as a graded score; we add the
control-control term, use a parametric Gaussian ratio by default, and calibrate a p-value
by a null that holds under separability. S is signed here (the paper's absolute value is
``abs(terms["S_raw"])``); the test is two-sided.
"""

from __future__ import annotations


import numpy as np
import torch

from workbench.models._device import resolve_device, to_numpy
from workbench.models.replicates import check_finite

__all__ = ["separability_score", "ESTIMATORS"]

ESTIMATORS = ("gaussian", "classifier")
_VAR_FLOOR = 1e-3  # added to every variance (whitened units)


def _as_tensor(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32), device=device)


def _whitener(ref: np.ndarray, n_components: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and projection of the reference: standardised coordinates when all of them are
    kept (``n_components`` None or >= d), else whitened principal components.

    Rotating is not harmless for the diagonal model: when A and B act on disjoint
    coordinates of the embedding, a rotation mixes them, and changes of variance then no
    longer add up coordinate by coordinate. On the demo world's 11 latent coordinates (null
    pairs) the false-positive rate was 0.026 on the standardised coordinates and 0.076
    after a full PCA rotation (mean over four draws of 322 pairs, during development).
    """
    mu = ref.mean(0)
    centred = ref - mu
    d = ref.shape[1]
    if n_components is None or n_components >= d:
        return mu, np.diag(1.0 / (centred.std(0) + 1e-6)).astype(np.float32)
    _, _, vt = np.linalg.svd(centred[: min(len(centred), 5000)], full_matrices=False)
    proj = vt[:n_components].T
    sd = (centred @ proj).std(0) + 1e-6
    return mu, (proj / sd).astype(np.float32)


# ---------------------------------------------------------------------------- Gaussian
def _gaussian_kl(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """KL of diagonal Gaussian fits, x (..., G, n, k) against ref (..., n, k) -> (..., G)."""
    m, v = x.mean(-2), x.var(-2) + _VAR_FLOOR
    m0 = ref.mean(-2).unsqueeze(-2)
    v0 = ref.var(-2).unsqueeze(-2) + _VAR_FLOOR
    return 0.5 * (v / v0 + (m - m0).square() / v0 - 1.0 + torch.log(v0 / v)).sum(-1)


def _s_gaussian(five: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """S and the four KLs from samples (..., 5, n, k) ordered [ab, ctrl2, a, b, ctrl_ref]."""
    kl = _gaussian_kl(five[..., :4, :, :], five[..., 4, :, :])
    return kl[..., 0] + kl[..., 1] - kl[..., 2] - kl[..., 3], kl


def _null_parameters(five: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Constrained fit under separability: per pair and coordinate, the better of
    "A owns it" ({ab, a} one Gaussian, {ctrl2, b, ref} another) and "B owns it".

    Returns means and variances (P, 5, k) of the five groups and the owner (P, k; True = A).
    """
    def pooled(groups):
        x = five[:, groups].flatten(1, 2)  # (P, g n, k)
        m, v = x.mean(1), x.var(1, unbiased=False) + _VAR_FLOOR
        return m, v, -0.5 * x.shape[1] * torch.log(v)

    ma1, va1, la1 = pooled([0, 2])
    ma0, va0, la0 = pooled([1, 3, 4])
    mb1, vb1, lb1 = pooled([0, 3])
    mb0, vb0, lb0 = pooled([1, 2, 4])
    a_owns = (la1 + la0) >= (lb1 + lb0)

    def pick(x_a, x_b):
        return torch.where(a_owns, x_a, x_b)

    # group order [ab, ctrl2, a, b, ref]
    mean = torch.stack([pick(ma1, mb1), pick(ma0, mb0), pick(ma1, mb0), pick(ma0, mb1),
                        pick(ma0, mb0)], 1)
    var = torch.stack([pick(va1, vb1), pick(va0, vb0), pick(va1, vb0), pick(va0, vb1),
                       pick(va0, vb0)], 1)
    return mean, var, a_owns


def _gaussian_null(five: torch.Tensor, n_null: int, gen: torch.Generator,
                   budget: int) -> torch.Tensor:
    """S under the constrained null: (n_null, P) from synthetic data sets of the same size."""
    mean, var, _ = _null_parameters(five)
    p, g, n, k = five.shape
    sd = var.sqrt()
    out = torch.empty(n_null, p)
    step = max(1, budget // max(1, p * g * n * k))
    for r0 in range(0, n_null, step):
        r = min(step, n_null - r0)
        z = torch.randn(r, p, g, n, k, generator=gen).to(five.device)
        out[r0:r0 + r] = _s_gaussian(mean[None, :, :, None] + sd[None, :, :, None] * z)[0].cpu()
    return out


# ---------------------------------------------------------------------------- classifier
def _features(x: torch.Tensor) -> torch.Tensor:
    """Quadratic features [1, x, x^2]: the log-ratio of diagonal Gaussians is linear in them."""
    ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    return torch.cat([ones, x, x * x - 1.0], dim=-1)


def _fit_logistic(feat: torch.Tensor, y: torch.Tensor, l2: float, iters: int = 15,
                  tol: float = 1e-6) -> torch.Tensor:
    """Batched ridge logistic regression by Newton's method.

    feat (M, n, f), y (M, n) in {0, 1}; returns weights (M, f). The intercept is penalised
    lightly too (tiny), which keeps separable problems finite. Stops early once no weight of
    any problem moved by more than ``tol`` (Newton converges quadratically: typically 6-9 of
    the ``iters`` steps), which changes the weights by less than ``tol``.
    """
    mm, _, f = feat.shape
    w = torch.zeros(mm, f, dtype=feat.dtype, device=feat.device)
    eye = torch.eye(f, dtype=feat.dtype, device=feat.device)
    pen = eye * l2
    pen[0, 0] = 1e-4
    ft = feat.transpose(1, 2)
    for _ in range(iters):
        prob = torch.sigmoid(torch.bmm(feat, w.unsqueeze(-1)).squeeze(-1))
        grad = torch.bmm(ft, (prob - y).unsqueeze(-1)).squeeze(-1) + w @ pen
        wt = (prob * (1 - prob)).clamp_min(1e-6)
        hess = torch.bmm(ft * wt.unsqueeze(1), feat) + pen
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)
        w = w - step
        if float(step.abs().max()) < tol:
            break
    return w


def _kl_crossfit(x: torch.Tensor, ref: torch.Tensor, l2: float) -> torch.Tensor:
    """Cross-fitted classifier estimate of KL(P_x || P_ref) for a batch (M, n, d) of problems.

    Halves h of both samples: train on one half, average the learned logit (the log
    density ratio) over the other half of x, and swap.
    """
    n = x.shape[1]
    h = n // 2
    kls = []
    for tr, te in ((slice(0, h), slice(h, 2 * h)), (slice(h, 2 * h), slice(0, h))):
        feat = _features(torch.cat([x[:, tr], ref[:, tr]], 1))
        y = torch.cat([torch.ones(x.shape[0], h, device=x.device),
                       torch.zeros(x.shape[0], h, device=x.device)], 1)
        w = _fit_logistic(feat, y, l2)
        kls.append(torch.einsum("mnf,mf->mn", _features(x[:, te]), w).mean(1))
    return (kls[0] + kls[1]) / 2


def _bootstrap_classifier(five: torch.Tensor, idx: torch.Tensor, l2: float,
                          chunk_fits: int) -> torch.Tensor:
    """KL estimates (R, P, 4) of the classifier for resampling indices idx (R, P, 5, n)."""
    n_rep, n_pairs, _, n = idx.shape
    k = five.shape[-1]
    kl = torch.empty(n_rep, n_pairs, 4)
    per_rep = max(1, chunk_fits // (4 * n_pairs))
    pair_chunk = max(1, min(n_pairs, chunk_fits // 4))
    for r0 in range(0, n_rep, per_rep):
        rs = slice(r0, min(n_rep, r0 + per_rep))
        for p0 in range(0, n_pairs, pair_chunk):
            ps = slice(p0, min(n_pairs, p0 + pair_chunk))
            ii = idx[rs, ps]  # (r, p, 5, n)
            r, p = ii.shape[:2]
            xs = torch.gather(five[ps].unsqueeze(0).expand(r, -1, -1, -1, -1), 3,
                              ii[..., None].expand(-1, -1, -1, -1, k))  # (r, p, 5, n, k)
            ref = xs[:, :, 4:5].expand(-1, -1, 4, -1, -1)
            est = _kl_crossfit(xs[:, :, :4].reshape(-1, n, k), ref.reshape(-1, n, k), l2)
            kl[rs, ps] = est.reshape(r, p, 4).cpu()
    return kl


def separability_score(ctrl, a, b, ab, *, estimator: str = "gaussian", n_null: int = 500,
                       n_bootstrap: int = 100, l2: float = 1.0,
                       n_components: int | None = 16, reference=None, seed: int = 0,
                       device: str = "auto", chunk_fits: int = 4096,
                       budget: int = 1 << 23):
    """Separability score ``S = KL_ab + KL_00 - KL_a - KL_b`` per pair, batched over pairs.

    Parameters
    ----------
    ctrl : array_like
        ``(P, 2n, d)`` controls of each pair (at least ``2n`` of them): the first n are the
        reference P0 against which every KL is taken; the next n act as a pseudo-condition
        whose true KL to P0 is zero (bias balance; see the module docstring).
    a, b, ab : array_like
        ``(P, n, d)`` samples of the singles and the double, ``n >= 4``.
    estimator : str
        ``"gaussian"`` (diagonal Gaussian density ratios; p-values from the constrained
        parametric bootstrap) or ``"classifier"`` (cross-fitted logistic density ratios; a
        graded score, ``p_value`` NaN).
    n_null : int
        Synthetic data sets of the parametric null (Gaussian estimator only); p-values are
        at least ``2 / (n_null + 1)``.
    n_bootstrap : int
        Resamples within each condition for the standard error behind the interval
        ``S +- 1.96 se``; with 1 or fewer the interval and ``effect_size`` are NaN.
    l2 : float
        Ridge penalty of the classifier (``estimator="classifier"`` only).
    n_components : int, optional
        Fewer than d: project onto this many whitened principal components of the
        reference; otherwise (or ``None``) keep the standardised coordinates.
    reference : array_like, optional
        ``(m, d)`` sample for the standardisation and the whitening; ``None`` pools the
        reference controls of every pair.
    seed : int
        Seed of the bootstrap resamples and the null draws.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    chunk_fits : int
        Classifier fits solved at once (a memory bound; the result does not depend on it).
    budget : int
        Largest working tensor of the bootstrap and null draws, in elements.

    Returns
    -------
    InteractionTestResult
        ``test="separability"``; ``terms`` holds the four KL estimates,
        ``S_raw = KL_ab - KL_a - KL_b`` (the paper's signed difference) and, for the
        Gaussian estimator, the null mean and sd. ``effect_size`` is ``S / se``.
    """
    from workbench.models.interaction_result import InteractionTestResult

    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; use one of {ESTIMATORS}")
    ctrl, a, b, ab = (check_finite(x, f"separability_score: {nm}")
                      for x, nm in ((ctrl, "ctrl"), (a, "a"), (b, "b"), (ab, "ab")))
    if a.ndim != 3:
        raise ValueError(f"a must be (pairs, n, d), got shape {a.shape}")
    n_pairs, n, d = a.shape
    if ctrl.ndim != 3 or ctrl.shape[1] < 2 * n or b.shape != a.shape or ab.shape != a.shape:
        raise ValueError("separability needs ctrl (P, 2n, d) and a, b, ab (P, n, d); got "
                         f"{ctrl.shape}, {a.shape}, {b.shape}, {ab.shape}")
    if n < 4:
        raise ValueError(f"separability needs at least 4 samples per condition, got {n}")
    dev = resolve_device(device)
    ref = ctrl[:, :n].reshape(-1, d) if reference is None else np.asarray(reference, np.float32)
    mu, proj = _whitener(ref, n_components)

    def prep(x):
        return _as_tensor((x - mu) @ proj, dev)

    # (P, 5, n, k) ordered [ab, ctrl2, a, b, ctrl_ref]
    five = torch.stack([prep(ab), prep(ctrl[:, n:2 * n]), prep(a), prep(b),
                        prep(ctrl[:, :n])], 1)
    k = five.shape[-1]
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randint(0, n, (n_bootstrap + 1, n_pairs, 5, n), generator=gen)
    idx[0] = torch.arange(n)  # replicate 0 is the data itself
    idx = idx.to(dev)
    terms: dict[str, np.ndarray] = {}
    if estimator == "gaussian":
        kl_rep = torch.empty(n_bootstrap + 1, n_pairs, 4)
        step = max(1, budget // max(1, n_pairs * 5 * n * k))
        for r0 in range(0, n_bootstrap + 1, step):
            ii = idx[r0:r0 + step]
            xs = torch.gather(five.unsqueeze(0).expand(len(ii), -1, -1, -1, -1), 3,
                              ii[..., None].expand(-1, -1, -1, -1, k))
            kl_rep[r0:r0 + len(ii)] = _s_gaussian(xs)[1].cpu()
        null = _gaussian_null(five, n_null, gen, budget)
    else:
        kl_rep = _bootstrap_classifier(five, idx, l2, chunk_fits)
        null = None
    s_all = kl_rep[..., 0] + kl_rep[..., 1] - kl_rep[..., 2] - kl_rep[..., 3]  # (R, P)
    s = s_all[0]
    nan = torch.full((n_pairs,), float("nan"))
    if n_bootstrap > 1:
        se = s_all[1:].std(0).clamp_min(1e-12)
        lo, hi, eff = s - 1.959964 * se, s + 1.959964 * se, s / se
    else:
        lo, hi, eff = nan, nan.clone(), nan.clone()
    if null is not None:
        upper = (1 + (null >= s[None]).sum(0)).double() / (1 + n_null)
        lower = (1 + (null <= s[None]).sum(0)).double() / (1 + n_null)
        p = torch.minimum(2 * torch.minimum(upper, lower), torch.ones(1, dtype=torch.float64))
        terms["null_mean"] = to_numpy(null.mean(0)).astype(float)
        terms["null_sd"] = to_numpy(null.std(0)).astype(float)
        calibration = ("constrained parametric bootstrap: per coordinate the better of "
                       "'A owns it' / 'B owns it' diagonal Gaussian null fits; equal-tailed "
                       "p over n_null synthetic data sets")
    else:
        p = torch.full((n_pairs,), float("nan"), dtype=torch.float64)
        calibration = ("none: graded score (the classifier KL is biased at small n; its "
                       "normal-approximation p-value was miscalibrated)")
    kl0 = to_numpy(kl_rep[0]).astype(float)
    terms.update({"kl_ab": kl0[:, 0], "kl_ctrl_ctrl": kl0[:, 1], "kl_a": kl0[:, 2],
                  "kl_b": kl0[:, 3], "S_raw": kl0[:, 0] - kl0[:, 2] - kl0[:, 3]})
    kernel = ("none (density ratio of diagonal Gaussians in whitened PC space)"
              if estimator == "gaussian" else
              "none (classifier density ratio: ridge logistic regression on quadratic "
              "features, cross-fitted over halves)")
    params = {
        "kernel": kernel, "estimator": estimator, "bandwidth_rule": "n/a",
        "l2": float(l2), "n_components": int(k), "n_per_condition": int(n),
        "n_controls": int(2 * n), "n_bootstrap": int(n_bootstrap),
        "n_null": int(n_null) if null is not None else 0, "seed": int(seed),
        "statistic": "KL_ab + KL_ctrl_ctrl - KL_a - KL_b", "calibration": calibration,
        "interval": "S +- 1.96 bootstrap se (resampling within conditions)",
        "device": str(dev),
    }
    return InteractionTestResult("separability", to_numpy(s).astype(float),
                                 to_numpy(p).astype(float), to_numpy(eff).astype(float),
                                 to_numpy(lo).astype(float), to_numpy(hi).astype(float),
                                 terms, params)
