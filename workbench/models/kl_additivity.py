"""Separability as a graded score: KL additivity from flexible density ratios, per pair.

Xu et al. 2024 (arXiv 2409.07594) call A and B *separable* when they act on disjoint sets
of independent latent variables seen through an unknown injective map ``x = g(z)``. The
Jacobian of ``g`` cancels in every density ratio to control, so under that null
``r_ab = r_a r_b`` in the observation space and the KL divergences to control add,
whatever ``g`` is. The score is

    S = KL(P_ab || P_0) + KL(P_0' || P_0) - KL(P_a || P_0) - KL(P_b || P_0)

with ``P_0'`` a held-out set of control *wells* (true KL 0, but it carries the same
estimator bias and the same well-to-well variation as the other three terms, so both
cancel in S on average).

Density ratios. Each ``log r_c`` is the logit of a probabilistic classifier of condition
``c`` against the reference controls (Sugiyama et al. 2012, "Density Ratio Estimation in
Machine Learning"): ridge logistic regression on flexible features, ``[x, x^2]`` per
coordinate plus random Fourier features of a Gaussian kernel (Rahimi and Recht 2007), so
that ratios of non-Gaussian, skewed or mixed densities can be represented. It is
*cross-fitted*: trained on one half of both samples, evaluated on the other half of ``c``,
and the halves swapped, so that ``KL_c = E_c[log r_c]`` is not the training fit.

Uncertainty. A two-stage bootstrap: wells resampled with replacement within each
condition, then cells within the drawn wells, and the whole score recomputed; the interval
is the 2.5-97.5 percentile range. This is a *graded score with an interval, not a test*:
at a few dozen cells per condition the classifier KLs are biased (ridge-limited logits
underestimate large divergences, so the largest term KL_ab shrinks most), so no p-value is
derived from it and ``p_value`` stays NaN. The calibration benchmark
(``benchmarks/bench_interaction_calibration.py``) reports how often the interval excludes
0 under the null and how the score ranks interacting pairs, for what that is worth.

Embeddings of more than ``max_dim`` coordinates are projected onto the leading whitened
principal components of the controls first; a projection is not injective, so the
latent-disjoint null then holds only approximately. Coordinates (components) constant in
the controls are left out, and standardised values are clipped at 20 control sd, so that
a dead embedding unit that a perturbation switches on cannot break the fits.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.models._device import resolve_device
from workbench.models.replicates import CONDITIONS, check_finite
from workbench.models.separability import _fit_logistic

__all__ = ["kl_additivity_score"]

_ORDER = ("ab", "ctrl2", "a", "b", "ref")
#: Standardised coordinates are clipped to +-_CLIP control sd before the classifier fits.
_CLIP = 20.0


def _features(x: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """[1, x, x^2 - 1, sqrt(2/R) cos(x omega + phase)] for x (..., n, k)."""
    ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    rff = torch.cos(x @ omega + phase) * (2.0 / omega.shape[1]) ** 0.5
    return torch.cat([ones, x, x * x - 1.0, rff], dim=-1)


def _kl_crossfit(x, ref, l2, omega, phase):
    """Cross-fitted classifier KL(P_x || P_ref) for a batch (M, n, k) of problems."""
    n = x.shape[1]
    h = n // 2
    kls = []
    for tr, te in ((slice(0, h), slice(h, 2 * h)), (slice(h, 2 * h), slice(0, h))):
        feat = _features(torch.cat([x[:, tr], ref[:, tr]], 1), omega, phase)
        y = torch.cat([torch.ones(x.shape[0], h, device=x.device),
                       torch.zeros(x.shape[0], h, device=x.device)], 1)
        w = _fit_logistic(feat, y, l2)
        kls.append(torch.einsum("mnf,mf->mn", _features(x[:, te], omega, phase), w).mean(1))
    return (kls[0] + kls[1]) / 2


def _split_controls(x, units, rng):
    """Controls into a reference and a pseudo-condition by whole units (cells if one unit)."""
    names = np.unique(units.astype(str))
    if len(names) >= 2:
        perm = rng.permutation(names)
        pseudo = np.isin(units.astype(str), perm[: len(names) // 2])
        return (x[~pseudo], units[~pseudo]), (x[pseudo], units[pseudo]), True
    pseudo = rng.permutation(len(x)) < len(x) // 2
    return (x[~pseudo], units[~pseudo]), (x[pseudo], units[pseudo]), False


def _draw(units: np.ndarray, n: int, rng, first: bool) -> np.ndarray:
    """Indices of n cells: a plain subsample (first), else wells then cells with replacement."""
    if first:
        return rng.choice(len(units), n, replace=len(units) < n)
    names, inv = np.unique(units.astype(str), return_inverse=True)
    pick = rng.integers(0, len(names), len(names))
    pool = np.concatenate([np.flatnonzero(inv == w) for w in pick])
    return pool[rng.integers(0, len(pool), n)]


def kl_additivity_score(groups: list[dict[str, np.ndarray]], units: list[dict[str, np.ndarray]],
                        *, n_bootstrap: int = 50, max_n: int = 100, l2: float = 1.0,
                        n_fourier: int = 16, max_dim: int = 32, reference=None,
                        names: list[str] | None = None, seed: int = 0, device: str = "auto",
                        chunk_fits: int = 4096):
    """KL-additivity score ``S`` per pair with a well-level bootstrap interval.

    Parameters
    ----------
    groups : list of dict of str to ndarray
        One dict per pair, mapping each condition (``"ctrl"``, ``"a"``, ``"b"``, ``"ab"``)
        to its ``(n_c, d)`` cell profiles.
    units : list of dict of str to ndarray
        Parallel to ``groups``: per condition, the ``(n_c,)`` replicate unit (well) of each
        cell. The controls are split into the reference and the held-out ``P_0'`` by whole
        units (by cells when they have a single unit; the status says so).
    n_bootstrap : int
        Two-stage (wells, then cells) bootstrap replicates for the interval; with 1 or
        fewer there is no interval (NaN) and no ``effect_size``.
    max_n : int
        Cells per condition used by every KL term (the smallest condition and half the
        controls bound it too); the same n for all four terms. Pairs with fewer than 4 are
        not scored.
    l2 : float
        Ridge penalty of the logistic classifier.
    n_fourier : int
        Number of random Fourier features of the classifier (shared by all pairs).
    max_dim : int
        Embeddings with more live coordinates are projected onto this many whitened
        principal components of the controls.
    reference : array_like, optional
        ``(n, d)`` samples that fix the standardisation (and the principal components);
        ``None`` pools the controls of every pair. The density ratios are always taken
        against each pair's own reference half of its controls.
    names : list of str, optional
        Pair names, used in the error messages only.
    seed : int
        Seed of the control split, the bootstrap draws and the Fourier features.
    device : str
        Torch device of the classifier fits (``"auto"``: a GPU when there is one).
    chunk_fits : int
        Classifier fits solved at once (a memory bound; the result does not depend on it).

    Returns
    -------
    InteractionTestResult
        ``test="separability_score"``, ``statistic`` the score ``S``, ``p_value`` NaN (a
        graded score), the percentile interval in ``ci_low``/``ci_high``,
        ``effect_size = S / bootstrap sd``, the four KLs and the cells used in ``terms``,
        with a per-pair ``terms["status"]``.
    """
    from workbench.models.interaction_result import InteractionTestResult

    names = names or [f"pair {i}" for i in range(len(groups))]
    for name, g in zip(names, groups):
        for c in CONDITIONS:
            check_finite(g[c], f"{name}: condition {c!r}")
    rng = np.random.default_rng(seed)
    ref_all = (np.concatenate([g["ctrl"] for g in groups]) if reference is None
               else check_finite(reference, "reference"))
    mu, sd = ref_all.mean(0), ref_all.std(0)
    # coordinates (or components) constant in the controls have no density ratio to
    # estimate (scaled by 1/sd they would reach 1e6 and break the fit): they are left out
    live = sd > 1e-6 * max(float(sd.max()), 1e-12)
    proj = np.diag(1.0 / np.where(live, sd, 1.0))[:, live]
    if live.sum() > max_dim:
        _, sv, vt = np.linalg.svd((ref_all - mu)[:5000], full_matrices=False)
        vt = vt[sv > 1e-6 * sv[0]][:max_dim]
        proj = vt.T / ((ref_all - mu) @ vt.T).std(0)
    dev = resolve_device(device)
    k = proj.shape[1]
    packs, status, ns = [], [], []
    for g, u in zip(groups, units):
        (rx, ru), (px, pu), by_unit = _split_controls(np.asarray(g["ctrl"]), np.asarray(u["ctrl"]),
                                                      rng)
        conds = {"ab": (g["ab"], u["ab"]), "ctrl2": (px, pu), "a": (g["a"], u["a"]),
                 "b": (g["b"], u["b"]), "ref": (rx, ru)}
        n = min(max_n, *(len(conds[c][0]) for c in _ORDER))
        packs.append(conds)
        ns.append(n)
        status.append("score (no p-value)" if by_unit else
                      "score (no p-value; one control unit, split by cells)")
    n_pairs = len(groups)
    s_out = np.full(n_pairs, np.nan)
    lo, hi, eff = s_out.copy(), s_out.copy(), s_out.copy()
    kl_out = np.full((n_pairs, 4), np.nan)
    gen = torch.Generator().manual_seed(int(seed))
    # the random Fourier features are shared by every pair (bandwidth sqrt(k): the median
    # distance of standardised controls)
    omega = (torch.randn(k, n_fourier, generator=gen) / np.sqrt(k)).to(dev)
    phase = (torch.rand(n_fourier, generator=gen) * 2 * np.pi).to(dev)
    by_n: dict[int, list[int]] = {}
    for i, n in enumerate(ns):
        if n >= 4:
            by_n.setdefault(n, []).append(i)
        else:
            status[i] = f"too few cells for the separability score (n={n} < 4)"
    n_rep = n_bootstrap + 1
    for n, idx_pairs in by_n.items():
        # (R, P, 5, n, k) samples for this block of pairs
        xs = np.empty((n_rep, len(idx_pairs), 5, n, k), np.float32)
        for j, i in enumerate(idx_pairs):
            for ci, c in enumerate(_ORDER):
                x, uu = packs[i][c]
                z = np.clip((np.asarray(x, np.float32) - mu) @ proj, -_CLIP, _CLIP)
                for r in range(n_rep):
                    xs[r, j, ci] = z[_draw(np.asarray(uu), n, rng, r == 0)]
        xt = torch.as_tensor(xs, device=dev)
        kl = torch.empty(n_rep, len(idx_pairs), 4)
        per = max(1, chunk_fits // (4 * len(idx_pairs)))
        for r0 in range(0, n_rep, per):
            blk = xt[r0:r0 + per]
            r = blk.shape[0]
            ref = blk[:, :, 4:5].expand(-1, -1, 4, -1, -1)
            est = _kl_crossfit(blk[:, :, :4].reshape(-1, n, k), ref.reshape(-1, n, k), l2,
                               omega, phase)
            kl[r0:r0 + r] = est.reshape(r, len(idx_pairs), 4).cpu()
        s_all = (kl[..., 0] + kl[..., 1] - kl[..., 2] - kl[..., 3]).numpy().astype(float)
        for j, i in enumerate(idx_pairs):
            s_out[i] = s_all[0, j]
            kl_out[i] = kl[0, j].numpy()
            if n_bootstrap > 1:
                lo[i], hi[i] = np.percentile(s_all[1:, j], [2.5, 97.5])
                eff[i] = s_all[0, j] / max(s_all[1:, j].std(), 1e-12)
    params = {"estimator": "classifier (ridge logistic on [x, x^2] + random Fourier "
                           "features, cross-fitted over halves)",
              "kernel": "none (classifier density ratios)", "bandwidth_rule": "n/a",
              "statistic": "KL_ab + KL_ctrl'_ctrl - KL_a - KL_b (ctrl' = held-out control "
                           "wells)",
              "calibration": "none: graded score (no p-value); interval from a two-stage "
                             "bootstrap over wells then cells",
              "interval": "2.5-97.5 percentile of the well-level bootstrap",
              "n_bootstrap": int(n_bootstrap), "l2": float(l2), "n_fourier": int(n_fourier),
              "n_components": int(k), "max_n": int(max_n), "seed": int(seed),
              "device": str(dev)}
    terms = {"kl_ab": kl_out[:, 0], "kl_ctrl_ctrl": kl_out[:, 1], "kl_a": kl_out[:, 2],
             "kl_b": kl_out[:, 3], "n_used": np.array(ns), "status": np.array(status)}
    return InteractionTestResult("separability_score", s_out, np.full(n_pairs, np.nan), eff,
                                 lo, hi, terms, params)
