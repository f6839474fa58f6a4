"""Do two perturbations interact? Disjointness and separability tests, batched over pairs.

The setting (Xu et al. 2024, "Automated Discovery of Pairwise Interactions from
Unstructured Data", arXiv 2409.07594): for a pair of perturbations A and B we hold samples
of four conditions, control (P0), A (Pa), B (Pb) and the double A+B (Pab), as embeddings
x in R^d. Two null hypotheses say "no interaction" in two different ways:

**Disjointness.** A and B act on disjoint parts of the observation (different coordinates
or groups of coordinates). For a kernel that is *additive over those parts* the kernel mean
embeddings then satisfy ``mu(Pab) + mu(P0) = mu(Pa) + mu(Pb)``, i.e. the mixture
``(Pab + P0)/2`` equals the mixture ``(Pa + Pb)/2``. :func:`disjointness_test` tests this as
a two-sample test between the pooled sample ``{x_ab} U {x_0}`` and the pooled sample
``{x_a} U {x_b}``: its statistic is the unbiased estimate of
``D = ||mu_ab + mu_0 - mu_a - mu_b||^2 = 4 MMD^2`` (Gretton et al. 2012), calibrated by
permuting labels. The kernel is part of the null hypothesis: with
``kernel="additive_rbf"`` (a sum of one Gaussian kernel per part, by default one part per
coordinate) the test rejects when effects share coordinates, even if they add up there;
with ``kernel="linear"`` only the means enter, and the test becomes an additivity-in-the-
mean test that is invariant to rotations of the embedding.

**Separability.** A and B act on disjoint sets of independent latent variables. Then the
density ratios to control multiply, ``r_ab = r_a * r_b``, so the KL divergences to control
add: ``KL(Pab||P0) = KL(Pa||P0) + KL(Pb||P0)``. :func:`separability_score` (in
:mod:`workbench.models.separability`, re-exported here) scores
``S = KL_ab + KL_00 - KL_a - KL_b`` with one density-ratio estimator for every term and
calibrates a p-value by a parametric null that holds under separability.

Where our version differs from the paper (whose method section we could not read; see
``notes/methods-core.md`` section 3):

- Sample sizes: every condition is subsampled to one common ``n`` per pair *before* testing
  (:func:`equalize_groups`), so the pooled groups have equal sizes 2n and 2n; we never pool
  unequal groups silently.
- Bandwidths are chosen on a *reference* sample (by default the controls pooled over all
  tested pairs), never on the tested pair itself: per-part median heuristic.
- Calibration by *restricted* permutations. Permuting all pooled labels assumes the 4n
  samples are exchangeable, but each pooled group is a stratified sample (exactly n from
  each of its two conditions), and the unrestricted permutation null is too wide: we
  measured a false-positive rate of 0.009 at alpha 0.05 on 322 null pairs of the demo world.
  We instead form random quadruples (ab_i, ctrl_i, a_i, b_i), write D as a U-statistic over
  ``psi_i = phi(ab_i) + phi(ctrl_i) - phi(a_i) - phi(b_i)``, and swap the two halves of
  each quadruple at random (``psi_i -> -psi_i``): the Rademacher wild bootstrap of a
  degenerate U-statistic (Chwialkowski et al. 2014), which respects the stratification.
- One set of sign flips is shared by all pairs of a call; p-values of different pairs are
  then positively dependent, under which Benjamini-Hochberg still controls the FDR.
- Separability: see :mod:`workbench.models.separability` for its estimators, its
  calibration and where it departs from the paper.
- Both tests run in torch on many pairs at once ("auto" device), chunked over pairs. The
  disjointness test builds each pair's quadruple Gram matrix H straight from the samples
  (10 of the 16 condition blocks, by symmetry) and evaluates every permutation of every pair
  of a chunk as one matmul of the flattened H against the outer products of the sign
  vectors (``eps^T H eps``); ``budget`` bounds the working memory.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.models._device import resolve_device, to_numpy
from workbench.models.interaction_result import InteractionTestResult
from workbench.models.replicates import check_finite

__all__ = [  # noqa: F822 (separability_score is imported at the end)
    "InteractionTestResult",
    "equalize_groups",
    "disjointness_test",
    "separability_score",
    "benjamini_hochberg",
    "interaction_shift",
]


# ---------------------------------------------------------------------------- helpers
def equalize_groups(groups: list[dict[str, np.ndarray]], n: int | None = None, *,
                    seed: int = 0, need: dict[str, int] | None = None,
                    names: list[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Subsample every condition of every pair to one common size and stack them.

    Parameters
    ----------
    groups : list of dict of str to ndarray
        One dict per pair mapping each condition name (``"ctrl"``, ``"a"``, ``"b"``,
        ``"ab"``) to an ``(n_i, d)`` array; every pair names the same conditions.
    n : int, optional
        The common size; ``None`` takes the smallest group size over all pairs, divided by
        the multiplier in ``need`` (e.g. ``need={"ctrl": 2}`` asks for 2n controls).
    seed : int
        Seed of the subsampling (without replacement).
    need : dict of str to int, optional
        Multiplier of n per condition; ``None`` means 1 for each.
    names : list of str, optional
        Pair names, used in the error when a group is too small.

    Returns
    -------
    stacked : dict of str to ndarray
        Condition -> ``(P, k * n, d)`` float32 array, ``k`` its multiplier.
    n : int
        The common size used.

    Raises
    ------
    ValueError
        If a condition has fewer samples than it needs.
    """
    need = need or {}
    rng = np.random.default_rng(seed)
    names = names or [f"pair {i}" for i in range(len(groups))]
    if n is None:
        n = min(len(g[c]) // need.get(c, 1) for g in groups for c in g)
    out: dict[str, list] = {c: [] for c in groups[0]}
    for name, g in zip(names, groups):
        for c, x in g.items():
            x = check_finite(x, f"{name}: condition {c!r}")
            k = need.get(c, 1) * n
            if len(x) < k:
                raise ValueError(f"{name}: condition {c!r} has {len(x)} samples, needs {k}")
            out[c].append(np.asarray(x, np.float32)[rng.choice(len(x), k, replace=False)])
    return {c: np.stack(v) for c, v in out.items()}, int(n)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) for a vector of p-values.

    ``q_(i) = min_{j >= i} p_(j) m / j``, capped at 1 (Benjamini and Hochberg 1995); ``m``
    counts the finite p-values only.

    Parameters
    ----------
    p : array_like
        The p-values; NaNs are ignored and stay NaN.

    Returns
    -------
    ndarray
        The q-values, in the order of ``p``.
    """
    p = np.asarray(p, float)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    qv = np.empty(m)
    qv[order] = np.minimum(ranked, 1.0)
    q[ok] = qv
    return q


def interaction_shift(ctrl: np.ndarray, a: np.ndarray, b: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Mean-embedding interaction ``mean(ab) + mean(ctrl) - mean(a) - mean(b)`` per pair.

    Zero in expectation when the effects of A and B add up in the mean (the linear-kernel
    version of the disjointness identity).

    Parameters
    ----------
    ctrl, a, b, ab : ndarray
        ``(P, n, d)`` samples of each condition (``n`` may differ between conditions).

    Returns
    -------
    ndarray
        ``(P, d)`` the interaction shift of each pair.
    """
    return ab.mean(1) + ctrl.mean(1) - a.mean(1) - b.mean(1)


def _as_tensor(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32), device=device)


def _parts_matrix(d: int, parts) -> np.ndarray:
    """(d, n_parts) 0/1 assignment of coordinates to the disjoint parts of the kernel."""
    if parts is None:
        return np.eye(d, dtype=np.float32)
    if isinstance(parts, int):
        labels = np.arange(d) * parts // d
    else:
        labels = np.asarray(parts)
        if labels.shape != (d,):
            raise ValueError(f"parts must label each of the {d} coordinates, got {labels.shape}")
    uniq = np.unique(labels)
    return (labels[:, None] == uniq[None, :]).astype(np.float32)


def median_bandwidths(reference: np.ndarray, assign: np.ndarray, max_n: int = 2000,
                      seed: int = 0, max_pairs: int = 50_000) -> np.ndarray:
    """Median heuristic per part: sigma_p^2 = median squared distance within part p / 2.

    The median is taken over at most ``max_pairs`` random pairs of distinct samples among
    at most ``max_n`` reference samples (a 50,000-pair median is within about 1% of the
    full one).

    Parameters
    ----------
    reference : ndarray
        ``(m, d)`` samples the distances are taken on (usually pooled controls).
    assign : ndarray
        ``(d, n_parts)`` 0/1 assignment of coordinates to the kernel's parts.
    max_n : int
        Reference samples used at most (a random subset beyond it).
    seed : int
        Seed of the subsets.
    max_pairs : int
        Sample pairs the median is taken over at most (all pairs when there are fewer).

    Returns
    -------
    ndarray
        ``(n_parts,)`` float32 ``sigma_p^2``; a part whose median is 0 gets 0.5.
    """
    ref = np.asarray(reference, np.float32)
    rng = np.random.default_rng(seed)
    if len(ref) > max_n:
        ref = ref[rng.choice(len(ref), max_n, replace=False)]
    m = len(ref)
    if m * (m - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(m, 1)
    else:
        i = rng.integers(0, m, max_pairs)
        j = (i + rng.integers(1, m, max_pairs)) % m  # j != i
    sq = ((ref[i] - ref[j]) ** 2) @ assign  # (pairs, parts)
    med = np.median(sq, axis=0)
    med[med <= 0] = 1.0
    return (med / 2.0).astype(np.float32)


_SIGNS = (1.0, 1.0, -1.0, -1.0)  # condition order [ab, ctrl, a, b] of the quadruples


def _quadruple_gram_rbf(zs: torch.Tensor, part_index: list[torch.Tensor] | None) -> torch.Tensor:
    """Quadruple Gram H (c, n, n) for an (additive) Gaussian kernel, straight from samples.

    ``zs`` (c, 4, n, d) holds the samples of the four conditions with every coordinate
    divided by ``sqrt(2 sigma^2)`` of its part, so part p contributes
    ``exp(-||zs_p(x) - zs_p(y)||^2)`` and the kernel is the mean over parts.
    ``H_ij = <psi_i, psi_j>`` with ``psi_i = phi(ab_i) + phi(0_i) - phi(a_i) - phi(b_i)``,
    i.e. ``H = sum_{u,v} s_u s_v K_uv`` over the 4 x 4 condition blocks of the pooled Gram
    matrix. Since ``K_vu = K_uv^T`` only the 10 blocks with u <= v are computed, one part
    (coordinate) at a time so that the working tensor is (c, n, 4n) whatever d is.
    ``part_index`` lists the coordinates of each part (None: one part per coordinate).
    """
    c, _, n, d = zs.shape
    parts = [None] * d if part_index is None else part_index
    acc = [torch.zeros(c, n, (4 - u) * n, dtype=zs.dtype, device=zs.device) for u in range(4)]
    for j, idx in enumerate(parts):
        if idx is None:
            col = zs[..., j]  # (c, 4, n)
            for u in range(4):
                rest = col[:, u:].reshape(c, 1, (4 - u) * n)
                acc[u] += (col[:, u, :, None] - rest).square_().neg_().exp_()
        else:
            zp = zs[..., idx]  # (c, 4, n, k)
            sq = zp.square().sum(-1)
            for u in range(4):
                rest = zp[:, u:].reshape(c, (4 - u) * n, -1)
                d2 = sq[:, u, :, None] + sq[:, u:].reshape(c, 1, -1) \
                    - 2 * zp[:, u] @ rest.transpose(1, 2)
                acc[u] += d2.clamp_min_(0).neg_().exp_()
    h = torch.zeros(c, n, n, dtype=zs.dtype, device=zs.device)
    for u in range(4):
        blocks = acc[u].reshape(c, n, 4 - u, n)
        h += blocks[:, :, 0]  # K_uu, s_u^2 = 1
        for v in range(u + 1, 4):
            kuv = blocks[:, :, v - u]
            h += (_SIGNS[u] * _SIGNS[v]) * (kuv + kuv.transpose(1, 2))
    return h / len(parts)


def _quadruple_gram(z: torch.Tensor, kernel: str, scale: torch.Tensor,
                    part_index: list[torch.Tensor] | None) -> torch.Tensor:
    """Quadruple Gram matrices H (c, n, n) of stacked samples z (c, 4, n, d) [ab, ctrl, a, b].

    Linear kernel ``<x, y> / d``: ``H = psi psi^T / d`` with ``psi = ab + ctrl - a - b``.
    """
    if kernel == "linear":
        psi = z[:, 0] + z[:, 1] - z[:, 2] - z[:, 3]
        return psi @ psi.transpose(1, 2) / z.shape[-1]
    return _quadruple_gram_rbf(z * scale, part_index)


# ---------------------------------------------------------------------------- disjointness
def disjointness_test(ctrl, a, b, ab, *, kernel: str = "additive_rbf", parts=None,
                      reference=None, n_permutations: int = 1000, seed: int = 0,
                      device: str = "auto", chunk_pairs: int | None = None,
                      budget: int = 1 << 23) -> InteractionTestResult:
    """Kernel two-sample test of ``{ab, ctrl}`` pooled against ``{a, b}`` pooled, per pair.

    Parameters
    ----------
    ctrl, a, b, ab : array_like
        ``(P, n, d)`` arrays, the same ``n >= 2`` for all four (use
        :func:`equalize_groups`). Controls should come from the batches of the pair.
    kernel : str
        ``"additive_rbf"`` (sum of Gaussian kernels, one per part; valid null for effects
        on disjoint parts), ``"linear"`` (mean additivity; rotation invariant), or
        ``"rbf"`` (one Gaussian on the whole vector: *not* additive, so the null need not
        hold even for disjoint effects; offered for comparison only).
    parts : int or array_like, optional
        ``None`` (one part per coordinate), an int (that many contiguous blocks) or a
        label per coordinate.
    reference : array_like, optional
        ``(m, d)`` samples for the bandwidths (median heuristic per part), best held out
        from the tests; ``None`` pools the controls of all pairs.
    n_permutations : int
        Number of random within-quadruple swaps (sign-flip vectors), shared by all pairs;
        p-values are at least ``1 / (n_permutations + 1)``.
    seed : int
        Seed of the sign flips and of the bandwidth subsample.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    chunk_pairs : int, optional
        Pairs per batch; ``None`` takes as many as ``budget`` allows.
    budget : int
        Largest working tensor, in elements (default 8 Mi floats, 32 MiB): bounds the
        peak memory whatever the number of pairs.

    Returns
    -------
    InteractionTestResult
        ``statistic`` the unbiased estimate of ``D = ||mu_ab + mu_0 - mu_a - mu_b||^2``
        (= 4 MMD^2 of the pooled groups), p-values ``(1 + #{T_perm >= T}) / (1 + B)``
        over B restricted permutations (sign flips of the quadruples) and
        ``effect_size = (T - mean_null) / sd_null``.
    """
    if kernel not in ("additive_rbf", "linear", "rbf"):
        raise ValueError(f"unknown kernel {kernel!r}; use 'additive_rbf', 'linear' or 'rbf'")
    ctrl, a, b, ab = (check_finite(x, f"disjointness_test: {nm}")
                      for x, nm in ((ctrl, "ctrl"), (a, "a"), (b, "b"), (ab, "ab")))
    shapes = {x.shape for x in (ctrl, a, b, ab)}
    if len(shapes) != 1 or ctrl.ndim != 3:
        raise ValueError(f"ctrl, a, b, ab must share one (pairs, n, d) shape, got {shapes}")
    n_pairs, n, d = ctrl.shape
    if n < 2:
        raise ValueError(f"the test needs at least 2 samples per condition, got {n}")
    dev = resolve_device(device)
    m = 2 * n
    big_n = 4 * n
    assign = _parts_matrix(d, parts)
    ref = ctrl.reshape(-1, d) if reference is None else np.asarray(reference, np.float32)
    if kernel == "additive_rbf":
        sig = median_bandwidths(ref, assign, seed=seed)
        scale = assign @ (1.0 / np.sqrt(2.0 * sig))  # per coordinate, from its part
    elif kernel == "rbf":
        sig = median_bandwidths(ref, np.ones((d, 1), np.float32), seed=seed)
        scale = np.full(d, 1.0 / np.sqrt(2.0 * sig[0]), np.float32)
    else:
        sig = np.zeros(0, np.float32)
        scale = np.ones(d, np.float32)
    if kernel == "rbf":
        part_index = [torch.arange(d, device=dev)]
    elif kernel == "additive_rbf" and assign.shape[1] < d:
        part_index = [torch.as_tensor(np.flatnonzero(col), device=dev) for col in assign.T]
    else:
        part_index = None  # one part per coordinate (or linear kernel)
    scale_t = _as_tensor(scale, dev)
    # restricted permutations shared by all pairs: eps_i = -1 swaps the roles of
    # (ab_i, ctrl_i) and (a_i, b_i) inside quadruple i; row 0 is the observed labelling
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randint(0, 2, (n_permutations + 1, n), generator=gen).float() * 2 - 1
    eps[0] = 1.0
    eps = eps.to(dev)
    # every labelling's statistic is the quadratic form eps^T H eps / (n (n - 1)) of the
    # pair's quadruple Gram matrix H (zero diagonal). With few quadruples all labellings of
    # all pairs of a chunk are ONE matmul against the outer products eps_i eps_j; otherwise
    # a batched matmul H @ eps^T followed by a row-wise dot.
    n_rep = n_permutations + 1
    outer = None
    if n * n * n_rep <= budget:
        outer = (eps[:, :, None] * eps[:, None, :]).reshape(n_rep, n * n).T.contiguous()
    if chunk_pairs is None:
        # accumulated Gram blocks (10 n^2) + H + one part's block + samples + statistics
        per_pair = 16 * n * n + big_n * d + n * n_rep
        chunk_pairs = int(max(1, min(n_pairs, budget // per_pair)))
    norm = float(n * (n - 1))
    stats = torch.empty(n_pairs, n_rep)
    for s in range(0, n_pairs, chunk_pairs):
        sl = slice(s, s + chunk_pairs)
        z = torch.stack([_as_tensor(ab[sl], dev), _as_tensor(ctrl[sl], dev),
                         _as_tensor(a[sl], dev), _as_tensor(b[sl], dev)], dim=1)
        h = _quadruple_gram(z, kernel, scale_t, part_index)
        h.diagonal(dim1=1, dim2=2).zero_()
        if outer is not None:
            st = h.reshape(h.shape[0], n * n) @ outer
        else:
            et = eps.T.contiguous()
            st = (torch.matmul(h, et) * et).sum(1)
        stats[sl] = (st / norm).cpu()
    obs = stats[:, 0]
    null = stats[:, 1:]
    # ties count as at least as extreme (a labelling and its mirror image give the same
    # statistic; float32 rounding must not break such ties)
    tol = 1e-5 * stats.abs().amax(1, keepdim=True).clamp_min(1e-12)
    p = (1 + (null >= obs[:, None] - tol).sum(1)).double() / (1 + n_permutations)
    sd = null.std(1).clamp_min(1e-12)
    eff = (obs - null.mean(1)) / sd
    nan = np.full(n_pairs, np.nan)
    params = {
        "kernel": kernel,
        "bandwidth_rule": "none (linear)" if kernel == "linear" else
        "median heuristic per part on the reference sample (controls pooled over pairs "
        "unless given)",
        "bandwidths_sigma2": sig.tolist() if len(sig) <= 64 else
        {"min": float(sig.min()), "median": float(np.median(sig)), "max": float(sig.max())},
        "n_parts": int(assign.shape[1]) if kernel == "additive_rbf" else 1,
        "n_per_condition": int(n), "n_per_pooled_group": int(m),
        "n_permutations": int(n_permutations), "seed": int(seed), "dim": int(d),
        "statistic": "D = unbiased ||mu_ab + mu_0 - mu_a - mu_b||^2 = 4 MMD^2 of {ab, ctrl} "
                     "vs {a, b} (U-statistic over quadruples)",
        "calibration": "restricted permutations: swaps of (ab_i, ctrl_i) with (a_i, b_i) "
                       "within random quadruples (Rademacher wild bootstrap of the "
                       "degenerate U-statistic)",
        "device": str(dev),
    }
    return InteractionTestResult("disjointness", to_numpy(obs).astype(float), to_numpy(p),
                                 to_numpy(eff).astype(float), nan.copy(), nan.copy(),
                                 {"null_mean": to_numpy(null.mean(1)).astype(float),
                                  "null_sd": to_numpy(sd).astype(float)}, params)


# ---------------------------------------------------------------------------- separability
# (kept importable from here; the estimator lives in workbench.models.separability)
from workbench.models.separability import separability_score  # noqa: E402
