"""Which double perturbations to run next: a Bayesian low-rank model of the pair matrix.

The object is the symmetric n x n matrix R of a pair statistic (an interaction score such as
the disjointness statistic, or |GI| of a growth screen). Only the singles are measured up
front; every double costs an experiment. Following Xu et al. 2024 (arXiv 2409.07594,
section "active pair selection"; reconstructed in ``notes/methods-core.md`` 3.3) we model R
as low rank with Gaussian priors and choose the next batch of pairs with an acquisition
rule that trades finding large entries against learning about them.

Model (:class:`LowRankPairModel`)::

    R_ij = mu + b_i + b_j + <u_i, u_j> + eps,      eps ~ N(0, sigma^2)
    b_i ~ N(s_i . w, tau_b^2),  u_i ~ N(s_i W, tau_u^2 I),
    w ~ N(0, tau_b^2 / p),  W ~ N(0, tau_u^2 / p)

``s_i`` are side features of perturbation i (e.g. its single-perturbation profile): they
let the model guess a row before any of its pairs is measured. The gene offsets ``b_i``
carry "hub" genes whose pairs are all large; the low-rank part carries module structure.
The side-feature weights are scaled to the p standardised features, so that the prior of
an unmeasured gene (``s_i . w`` plus its own offset) has the spread ``tau_b`` of a measured
one whatever p is: with unit-variance weights an embedding-wide side vector (p = 64) gave
unmeasured genes a prior sd of sqrt(p) = 8 target sds.

Posterior samples come from *randomised-prior ensemble sampling* (Osband et al. 2018; Lu &
Van Roy 2017): each of E members is the MAP fit to targets perturbed with noise of the
likelihood's scale, regularised towards its own draw from the prior. For a linear-Gaussian
model this gives exact posterior samples; for the bilinear model here it is the usual
approximation, and all members are fitted at once as one batched torch problem.
This is where we differ from the paper, which uses Bayesian matrix factorisation with
(as far as the reviews tell) Gibbs or variational inference.

Acquisitions (:func:`select_batch`), all over the *unrevealed* candidates, batches
without repeats:

- ``"greedy"``: posterior mean;
- ``"ucb"``: mean + beta * sd;
- ``"thompson"``: each slot takes the argmax of one posterior sample;
- ``"ids"``: information-directed sampling (Russo & Van Roy 2018), variance form: expected
  shortfall ``Delta(a) = E[max_a' R_a'] - E[R_a]``, information ``g(a)`` = variance of
  ``E[R_a | A*]`` over the posterior of the best candidate ``A*``; pick smallest
  ``Delta^2 / g``. Batches take the best ratios in turn (no posterior update inside a batch).
- ``"random"``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from workbench.models._device import resolve_device, to_numpy, torch_threads

ACQUISITIONS = ("ids", "thompson", "ucb", "greedy", "random")

__all__ = ["LowRankPairModel", "select_batch", "soft_impute", "soft_impute_entries",
           "ACQUISITIONS"]


def _few_threads(device: torch.device, n_elements: int, limit: int = 1 << 22):
    """One intra-op thread for small CPU problems, restored afterwards (even on error).

    The ensemble's tensors are small (E x n_items x rank), so each optimiser step is a few
    dozen tiny kernels: extra threads only add synchronisation.
    """
    if device.type != "cpu" or n_elements > limit:
        return contextlib.nullcontext()
    return torch_threads(1)


class LowRankPairModel:
    """Bayesian low-rank model of a symmetric pair matrix with side information.

    Parameters
    ----------
    rank : int
        Dimension k of the factors ``u_i``.
    n_samples : int
        Ensemble size E (number of posterior samples).
    noise : float, optional
        Likelihood sd ``sigma`` in units of the standardised targets; ``None`` estimates it
        from the residuals of a first fit (floor 0.05).
    prior_scale_bias : float
        ``tau_b``, the prior sd of the gene offsets.
    prior_scale_factors : float
        ``tau_u``, the prior sd of the factors.
    steps : int
        Adam steps of the first fit; later calls of :meth:`fit` with ``warm_start`` use
        ``steps // 3`` (at least 20).
    lr : float
        Adam learning rate.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the prior draws and the target perturbations.

    Attributes
    ----------
    params_ : dict of torch.Tensor
        The ensemble's parameters, each ``(E, ...)``; set by :meth:`fit`.
    y_mean_, y_scale_ : float
        Standardisation of the targets.
    noise_ : float
        The likelihood sd used.
    """

    def __init__(self, rank: int = 4, n_samples: int = 32, noise: float | None = None,
                 prior_scale_bias: float = 1.0, prior_scale_factors: float = 0.5,
                 steps: int = 300, lr: float = 0.05, device: str = "auto", seed: int = 0):
        self.rank = rank
        self.n_samples = n_samples
        self.noise = noise
        self.prior_scale_bias = prior_scale_bias
        self.prior_scale_factors = prior_scale_factors
        self.steps = steps
        self.lr = lr
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def _init(self, n_items: int, side: torch.Tensor, gen: torch.Generator):
        e, k, p = self.n_samples, self.rank, side.shape[1]
        dev = side.device

        def rn(*shape):
            return torch.randn(*shape, generator=gen).to(dev)

        sw = self.prior_scale_bias / np.sqrt(max(p, 1))
        sW = self.prior_scale_factors / np.sqrt(max(p, 1))
        prior = {"w": rn(e, p) * sw, "W": rn(e, p, k) * sW,
                 "b": rn(e, n_items) * self.prior_scale_bias,
                 "U": rn(e, n_items, k) * self.prior_scale_factors, "mu": rn(e) * 0.0}
        return prior

    def fit(self, i, j, y, side=None, n_items: int | None = None, warm_start: bool = False):
        """Fit the ensemble to observed entries ``R[i, j] = y`` (i != j; order ignored).

        Parameters
        ----------
        i, j : array_like of int
            The observed pairs.
        y : array_like of float
            Their values.
        side : array_like, optional
            ``(n_items, p)`` per-gene side features.
        n_items : int, optional
            Number of genes (default: the largest index + 1).
        warm_start : bool
            Continue from the current fit with fewer steps.

        Returns
        -------
        LowRankPairModel
            ``self``.
        """
        dev = resolve_device(self.device)
        i = torch.as_tensor(np.asarray(i), dtype=torch.long, device=dev)
        j = torch.as_tensor(np.asarray(j), dtype=torch.long, device=dev)
        y = np.asarray(y, np.float64)
        if n_items is None:
            n_items = int(max(i.max().item(), j.max().item())) + 1 if len(y) else 0
        if side is None:
            side_np = np.zeros((n_items, 0), np.float32)
        else:
            side_np = np.asarray(side, np.float64)
            sd = side_np.std(0)
            side_np = ((side_np - side_np.mean(0)) / np.where(sd > 0, sd, 1)).astype(np.float32)
        side_t = torch.as_tensor(side_np, device=dev)
        self.y_mean_ = float(y.mean()) if len(y) else 0.0
        self.y_scale_ = float(y.std()) if len(y) > 1 and y.std() > 0 else 1.0
        yt = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32, device=dev)
        gen = torch.Generator().manual_seed(int(self.seed))
        first = not (warm_start and hasattr(self, "params_"))
        if first:
            self.prior_ = self._init(n_items, side_t, gen)
            self.params_ = {k: v.clone().requires_grad_(True) for k, v in self.prior_.items()}
            self.noise_ = self.noise if self.noise is not None else 0.5
        # perturbed targets: one noise draw per member and observation (fixed per fit)
        eps = torch.randn(self.n_samples, len(yt), generator=gen).to(dev)
        steps = self.steps if first else max(20, self.steps // 3)
        size = self.n_samples * (n_items * (self.rank + 1) + len(yt))
        with _few_threads(dev, size):
            self._optimise(i, j, yt, eps, side_t, steps)
            if first and self.noise is None and len(yt) > 4:
                with torch.no_grad():
                    res = (self._predict(i, j) - yt).std().item()
                self.noise_ = max(0.05, res)
                self._optimise(i, j, yt, eps, side_t, max(20, self.steps // 3))
        self.side_ = side_t
        self.n_items_ = n_items
        return self

    def _predict(self, i, j, params=None):
        p = params or self.params_
        u = p["U"]
        inter = (u[:, i] * u[:, j]).sum(-1)
        return p["mu"][:, None] + p["b"][:, i] + p["b"][:, j] + inter

    def _optimise(self, i, j, yt, eps, side, steps):
        p = self.params_
        prior = self.prior_
        opt = torch.optim.Adam(list(p.values()), lr=self.lr)
        target = yt[None] + self.noise_ * eps
        tb, tu = self.prior_scale_bias, self.prior_scale_factors
        nside = max(side.shape[1], 1)
        sw, sW = tb / np.sqrt(nside), tu / np.sqrt(nside)
        for _ in range(steps):
            opt.zero_grad()
            pred = self._predict(i, j)
            loss = ((pred - target) ** 2).sum(1) / (2 * self.noise_ ** 2)
            # randomised prior: pull each member towards its own prior draw
            mb = side @ p["w"].T  # (n, E) -> prior mean of b from side info
            mu_ = torch.einsum("np,epk->enk", side, p["W"])
            loss = loss + ((p["b"] - prior["b"] - mb.T) ** 2).sum(1) / (2 * tb ** 2)
            loss = loss + ((p["U"] - prior["U"] - mu_) ** 2).sum((1, 2)) / (2 * tu ** 2)
            loss = loss + ((p["w"] - prior["w"]) ** 2).sum(1) / (2 * sw ** 2)
            loss = loss + ((p["W"] - prior["W"]) ** 2).sum((1, 2)) / (2 * sW ** 2)
            loss = loss + (p["mu"] ** 2) / 2
            loss.sum().backward()
            opt.step()

    # ------------------------------------------------------------------ posterior
    def sample(self, i, j) -> np.ndarray:
        """Posterior samples (E, m) of ``R[i, j]`` in the units of the targets.

        Parameters
        ----------
        i, j : array_like of int
            The pairs to score.

        Returns
        -------
        numpy.ndarray
            ``(E, m)`` samples.
        """
        dev = resolve_device(self.device)
        i = torch.as_tensor(np.asarray(i), dtype=torch.long, device=dev)
        j = torch.as_tensor(np.asarray(j), dtype=torch.long, device=dev)
        with torch.no_grad():
            f = self._predict(i, j)
        return to_numpy(f).astype(np.float64) * self.y_scale_ + self.y_mean_

    def predict(self, i, j) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and sd of ``R[i, j]``.

        Parameters
        ----------
        i, j : array_like of int
            The pairs to score.

        Returns
        -------
        mean, sd : numpy.ndarray
            ``(m,)`` each.
        """
        s = self.sample(i, j)
        return s.mean(0), s.std(0)


def select_batch(samples: np.ndarray, acquisition: str, batch_size: int, *,
                 beta: float = 2.0, seed: int = 0) -> np.ndarray:
    """Choose ``batch_size`` distinct candidates (column indices of ``samples``).

    Parameters
    ----------
    samples : numpy.ndarray
        ``(E, m)`` posterior samples of the candidates' values (larger is better); for
        ``"random"`` only ``m`` is used.
    acquisition : str
        One of :data:`ACQUISITIONS`.
    batch_size : int
        Candidates to choose (at most ``m``).
    beta : float
        UCB width, in posterior sds.
    seed : int
        Seed of the random and Thompson choices.

    Returns
    -------
    numpy.ndarray of int
        The chosen columns, best first.
    """
    samples = np.asarray(samples, float)
    m = samples.shape[1]
    batch_size = min(batch_size, m)
    rng = np.random.default_rng(seed)
    if acquisition == "random":
        return rng.choice(m, batch_size, replace=False)
    mean, sd = samples.mean(0), samples.std(0)
    if acquisition == "greedy":
        return np.argsort(-mean, kind="stable")[:batch_size]
    if acquisition == "ucb":
        return np.argsort(-(mean + beta * sd), kind="stable")[:batch_size]
    if acquisition == "thompson":
        chosen: list[int] = []
        taken = np.zeros(m, bool)
        order = rng.permutation(len(samples))
        for t in range(batch_size):
            s = samples[order[t % len(order)]].copy()
            s[taken] = -np.inf
            a = int(np.argmax(s))
            chosen.append(a)
            taken[a] = True
        return np.asarray(chosen)
    if acquisition == "ids":
        best = samples.argmax(1)  # A* per posterior sample
        shortfall = samples.max(1).mean() - mean  # Delta(a) >= 0
        gain = np.zeros(m)
        for a_star in np.unique(best):
            sel = best == a_star
            gain += sel.mean() * (samples[sel].mean(0) - mean) ** 2
        ratio = shortfall ** 2 / np.maximum(gain, 1e-12)
        return np.argsort(ratio, kind="stable")[:batch_size]
    raise ValueError(f"unknown acquisition {acquisition!r}; use one of {ACQUISITIONS}")


def soft_impute(n_items: int, i, j, y, *, rank: int = 8, shrink: float = 0.2, iters: int = 40,
                init=None, seed: int = 0, factors: bool = False, dense_limit: int = 400):
    """Complete a symmetric pair matrix by soft-thresholded SVD (Mazumder, Hastie & Tibshirani
    2010, "Spectral regularization algorithms for learning large incomplete matrices").

    Repeats ``Z <- S_lambda(P_obs(Y) + P_unobs(Z))``, where ``S_lambda`` shrinks the singular
    values by ``lambda = shrink * sigma_1`` of the zero-filled observed matrix and keeps at
    most ``rank`` of them. Values are centred on the observed mean first.

    Up to ``dense_limit`` genes the matrix is held dense and decomposed exactly. Above it,
    ``Z`` is kept as its factors and the matrix being decomposed as "sparse residual on the
    observed entries + low rank" (the form of section 5 of the paper), so an iteration costs
    O(observed entries x rank + genes x rank^2) time and memory instead of O(genes^2), and the
    truncated SVD is a randomised range finder with power iterations (Halko, Martinsson &
    Tropp 2011) driven by products with that operator.

    Parameters
    ----------
    n_items : int
        Number of genes.
    i, j : array_like of int
        The observed pairs.
    y : array_like of float
        Their values.
    rank : int
        Most singular values kept.
    shrink : float
        ``lambda`` as a share of the largest singular value of the observed matrix.
    iters : int
        Iterations.
    init : numpy.ndarray or tuple, optional
        An earlier result of the same kind to warm-start from.
    seed : int
        Seed of the randomised SVD (factored form).
    factors : bool
        Return the factors instead of the dense matrix (forces the factored form).
    dense_limit : int
        Most genes for the dense form.

    Returns
    -------
    numpy.ndarray or tuple
        The ``(n, n)`` completed matrix, or with ``factors=True`` the tuple
        ``(U, s, Vh, mean)`` (read entries with :func:`soft_impute_entries`).
    """
    i, j = np.asarray(i, int), np.asarray(j, int)
    y = np.asarray(y, float)
    mean = float(y.mean()) if len(y) else 0.0
    if n_items > dense_limit or factors or isinstance(init, tuple):
        F = _soft_impute_factored(n_items, i, j, y - mean, rank=rank, shrink=shrink,
                                  iters=iters, init=init, seed=seed)
        F = (*F, mean)
        if factors:
            return F
        return (F[0] * F[1]) @ F[2] + mean
    obs = np.zeros((n_items, n_items), bool)
    obs[i, j] = obs[j, i] = True
    target = np.zeros((n_items, n_items))
    target[i, j] = target[j, i] = y - mean
    Z = np.zeros_like(target) if init is None else np.asarray(init, float) - mean
    if not len(y):
        return Z + mean

    def svd(a):
        u, s, vh = torch.linalg.svd(torch.as_tensor(a), full_matrices=False)
        return u[:, :rank].numpy(), s[:rank].numpy(), vh[:rank].numpy()

    lam = shrink * float(svd(target)[1][0])
    for _ in range(iters):
        u, s, vh = svd(np.where(obs, target, Z))
        s = np.maximum(s - lam, 0.0)
        Z = (u * s) @ vh
        Z = (Z + Z.T) / 2
    return Z + mean


def soft_impute_entries(F, i, j) -> np.ndarray:
    """Entries ``Z[i, j]`` (symmetrised) of a factored soft-impute result ``(U, s, Vh, mean)``.

    Parameters
    ----------
    F : tuple
        ``(U, s, Vh, mean)`` from :func:`soft_impute` with ``factors=True``.
    i, j : array_like of int
        The entries to read.

    Returns
    -------
    numpy.ndarray
        One value per pair.
    """
    U, s, Vh, mean = F
    i, j = np.asarray(i, int), np.asarray(j, int)
    us = U * s
    return ((us[i] * Vh[:, j].T).sum(1) + (us[j] * Vh[:, i].T).sum(1)) / 2 + mean


def _randomised_svd(matmul, rmatmul, n: int, rank: int, gen, niter: int = 3):
    """Top ``rank`` singular triplets of an n x n operator known by its products (torch
    float64 tensors in and out)."""
    q = min(rank + 6, n)
    Q = torch.linalg.qr(matmul(torch.randn(n, q, generator=gen, dtype=torch.float64)))[0]
    for _ in range(niter):
        Q = torch.linalg.qr(rmatmul(Q))[0]
        Q = torch.linalg.qr(matmul(Q))[0]
    B = rmatmul(Q).T  # Q^T A, (q, n)
    ub, s, vh = torch.linalg.svd(B, full_matrices=False)
    return (Q @ ub)[:, :rank], s[:rank], vh[:rank]


def _soft_impute_factored(n, i, j, yc, *, rank, shrink, iters, init, seed):
    # torch with one thread: these are thin (n x rank) problems, where a BLAS thread pool
    # competing for busy cores made each QR tens of times slower
    with torch_threads(1):
        return _soft_impute_factored_run(n, i, j, yc, rank=rank, shrink=shrink, iters=iters,
                                         init=init, seed=seed)


def _soft_impute_factored_run(n, i, j, yc, *, rank, shrink, iters, init, seed):
    gen = torch.Generator().manual_seed(int(seed))
    oi = torch.as_tensor(np.concatenate([i, j]))
    oj = torch.as_tensor(np.concatenate([j, i]))
    yy = torch.as_tensor(np.concatenate([yc, yc]), dtype=torch.float64)
    empty = np.zeros((n, 0)), np.zeros(0), np.zeros((0, n))
    if not len(yc):
        return empty
    idx = torch.stack([oi, oj])

    def sp(vals):
        return torch.sparse_coo_tensor(idx, vals, (n, n), check_invariants=False).coalesce()

    Y = sp(yy)
    s1 = _randomised_svd(lambda X: Y @ X, lambda X: Y.T @ X, n, 1, gen)[1][0]
    lam = shrink * float(s1)
    U, s, Vh = (torch.as_tensor(np.asarray(a, float)) for a in
                (init[:3] if isinstance(init, tuple) else empty))
    for _ in range(iters):
        z = ((U * s)[oi] * Vh[:, oj].T).sum(1)  # Z on the observed entries
        R = sp(yy - z)
        Rt = R.t().coalesce()
        U0, s0, Vh0 = U, s, Vh

        def mm(X, R=R, U0=U0, s0=s0, Vh0=Vh0):
            return R @ X + U0 @ (s0[:, None] * (Vh0 @ X))

        def rmm(X, Rt=Rt, U0=U0, s0=s0, Vh0=Vh0):
            return Rt @ X + Vh0.T @ (s0[:, None] * (U0.T @ X))

        U, s, Vh = _randomised_svd(mm, rmm, n, rank, gen)
        s = torch.clamp(s - lam, min=0.0)
        keep = s > 0
        U, s, Vh = U[:, keep], s[keep], Vh[keep]
    return U.numpy(), s.numpy(), Vh.numpy()
