"""Velocity models that score a regulatory graph, and a bootstrap baseline posterior.

DynGFN's reward for the parent set ``G_i`` of gene ``i`` is a Gibbs energy (method card
section 1.5)::

    log R(G_i) = -( MSE_i(G_i) / T^2  +  lambda * |G_i| / d )

where ``MSE_i`` is how well the parents predict the velocity of gene ``i``, ``T`` is the
``temperature`` (a Gaussian noise scale) and ``lambda`` the ``sparsity`` weight (a prior of
``exp(-lambda / d)`` per edge). They are separate settings on purpose: ``T`` sets how sharply
the data speaks, ``lambda`` how much an extra edge costs.

Two velocity models give ``MSE_i``:

- :class:`LinearVelocityReward` (l-DynGFN): ridge regression of ``v_i`` on the *actual
  columns of the parents* ``{x_j : j in G_i}`` (plus an intercept), predicted with the same
  design. It works from sufficient statistics (``X^T X``, ``X^T V``), so scoring a parent
  set costs one small ``d x d`` solve, independent of the number of cells.
- :class:`HyperVelocityModel` (h-DynGFN): a hypernetwork maps ``G_i`` to the weights of a
  small per-gene network acting on ``G_i * x``; it is trained on graphs drawn from the
  current posterior, by mean squared velocity error only (no prior, no ``1/T^2``).

:class:`BootstrapLassoPosterior` is the non-GFlowNet baseline: sparse regressions refitted
on bootstrap resamples of the cells, whose edge frequencies form a posterior-like summary.

Orientation: ``G[i, j] = 1`` means gene ``j`` regulates the velocity of gene ``i``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def fit_linear_parents(x: np.ndarray, v: np.ndarray, graph: np.ndarray, ridge: float = 1e-6,
                       fit_intercept: bool = True) -> np.ndarray:
    """Per-gene least squares of ``v[:, i]`` on the parent columns ``x[:, G[i] == 1]``.

    Parameters
    ----------
    x : ndarray
        ``(n, d)`` expression states.
    v : ndarray
        ``(n, g)`` velocities (``g`` genes, usually ``g = d``).
    graph : ndarray
        ``(g, d)`` 0/1 parent masks, ``G[i, j] = 1``: ``j`` regulates ``i``.
    ridge : float
        Ridge penalty on the per-sample scale (``ridge * n`` on the raw sums); the tiny
        default only keeps collinear parents solvable.
    fit_intercept : bool
        Centre ``x`` and ``v`` first (an intercept per gene).

    Returns
    -------
    ndarray
        ``W`` ``(g, d)`` with ``W[i, j]`` the effect of gene ``j`` on the velocity of gene
        ``i`` (zero where ``G[i, j] == 0``).
    """
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    if fit_intercept:
        x = x - x.mean(0)
        v = v - v.mean(0)
    d = x.shape[1]
    out = np.zeros((v.shape[1], d))
    for i in range(v.shape[1]):
        cols = np.flatnonzero(np.asarray(graph)[i])
        if cols.size:
            xs = x[:, cols]
            out[i, cols] = np.linalg.solve(xs.T @ xs + ridge * len(x) * np.eye(cols.size),
                                           xs.T @ v[:, i])
    return out


class LinearVelocityReward:
    """Closed-form ridge reward of every parent set, from sufficient statistics.

    For a parent mask ``m`` of gene ``i`` the weights solve
    ``(M C M + ridge * I) w = M c_i``, where ``C = X^T X / n`` and ``c_i = X^T v_i / n`` after
    centring (the intercept), ``M = diag(m)``; coordinates outside the mask get ``w = 0``.
    The fit term is the penalised error at the optimum, ``v_i^T v_i / n - w^T c_i`` (equal
    to the training MSE up to ``ridge |w|^2``); :meth:`start` gives an incremental version
    for roll-outs (:class:`IncrementalRidge`).

    Parameters
    ----------
    x, v : array_like
        Expression states and velocities, ``(n, d)`` each (already scaled).
    temperature : float
        ``T`` of the energy above (a noise scale in velocity units): smaller makes the
        reward sharper.
    sparsity : float
        ``lambda`` of the energy above, the cost of ``d`` edges in log-reward units.
    ridge : float
        Ridge penalty on the per-sample scale (``ridge * n`` on raw sums).
    fit_intercept : bool
        Centre ``x`` and ``v`` first (an intercept per gene).
    device : torch.device or str
        Device of the sufficient statistics (float64).
    """

    def __init__(self, x, v, *, temperature: float = 0.01, sparsity: float = 100.0,
                 ridge: float = 1e-4, fit_intercept: bool = True,
                 device: torch.device | str = "cpu"):
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)
        v = torch.as_tensor(np.asarray(v), dtype=torch.float64, device=device)
        if fit_intercept:
            x = x - x.mean(0)
            v = v - v.mean(0)
        n = x.shape[0]
        self.d = x.shape[1]
        self.gram = x.T @ x / n
        self.cross = (x.T @ v / n).T.contiguous()  # row i: X^T v_i / n
        self.vv = (v * v).mean(0)
        self.temperature = float(temperature)
        self.sparsity = float(sparsity)
        self.ridge = float(ridge)
        self.device = device

    def start(self, batch: int) -> IncrementalRidge:
        """A tracker of empty parent sets for ``batch`` graphs, updated one edge at a time.

        Parameters
        ----------
        batch : int
            Number of graphs ``B`` rolled out together.

        Returns
        -------
        IncrementalRidge
            Its ``log_reward`` is that of the empty sets until parents are added.
        """
        return IncrementalRidge(self, batch)

    def energy_from_fit(self, fit: torch.Tensor, n_parents: torch.Tensor) -> torch.Tensor:
        """``log R = -(fit / T^2 + lambda * |G_i| / d)`` from a fit term and a set size.

        Parameters
        ----------
        fit : torch.Tensor
            Penalised errors ``MSE_i(G_i)``, any shape.
        n_parents : torch.Tensor
            Parent-set sizes ``|G_i|``, the same shape.

        Returns
        -------
        torch.Tensor
            float32 log-rewards, the same shape.
        """
        energy = fit / self.temperature ** 2 + self.sparsity * n_parents.to(torch.float64) / self.d
        return (-energy).to(torch.float32)

    def mse(self, states: torch.Tensor, budget: int = 1 << 22) -> torch.Tensor:
        """Penalised training error of each node's parent set: ``(..., d, d)`` -> ``(..., d)``.

        This is the ridge objective at its optimum, ``min_w MSE(w) + ridge |w|^2
        = v_i^T v_i / n - c_S^T (C_SS + ridge I)^{-1} c_S``; with the default tiny ridge it
        equals the training MSE to within ``ridge |w|^2``. Each set is solved in its own
        coordinates: its ``k`` parents are gathered into a ``K x K`` system (``K`` the largest
        set in the batch, smaller sets padded with ``ridge`` on the diagonal and zeros
        elsewhere, which leave their solution unchanged), so a batch of ``M`` sets costs
        ``O(M K^3)`` time and, in chunks of about ``budget`` matrix entries, bounded memory
        whatever ``d`` is.

        Parameters
        ----------
        states : torch.Tensor
            ``(..., d, d)`` 0/1 parent sets, row ``i`` that of gene ``i``.
        budget : int
            Matrix entries solved at a time (memory only).

        Returns
        -------
        torch.Tensor
            ``(..., d)`` float64 penalised errors, clamped at 0.
        """
        shape = states.shape[:-1]
        d = self.d
        rows = states.reshape(-1, d) > 0.5
        m_rows = rows.shape[0]
        node = torch.arange(d, device=rows.device).repeat(m_rows // d)
        out = torch.empty(m_rows, dtype=torch.float64, device=rows.device)
        k = rows.sum(-1)
        kmax = int(k.max()) if m_rows else 0
        if kmax == 0:
            out[:] = self.vv[node]
            return out.reshape(shape)
        # parents first, in increasing index order (a stable sort of the 0/1 rows)
        idx = torch.sort(rows.to(torch.int8), dim=-1, descending=True, stable=True)[1][:, :kmax]
        valid = torch.arange(kmax, device=rows.device) < k.unsqueeze(-1)
        eye = torch.eye(kmax, dtype=torch.float64, device=rows.device) * self.ridge
        chunk = max(1, budget // (kmax * kmax))
        for s in range(0, m_rows, chunk):
            ix, ok, nd = idx[s:s + chunk], valid[s:s + chunk], node[s:s + chunk]
            okf = ok.to(torch.float64)
            a = self.gram[ix[:, :, None], ix[:, None, :]] * (okf[:, :, None] * okf[:, None, :]) + eye
            b = self.cross[nd[:, None], ix] * okf
            w = torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)
            out[s:s + chunk] = (self.vv[nd] - (w * b).sum(-1)).clamp(min=0.0)
        return out.reshape(shape)

    def log_reward(self, states: torch.Tensor) -> torch.Tensor:
        """``log R`` of each node's parent set.

        Parameters
        ----------
        states : torch.Tensor
            ``(..., d, d)`` 0/1 parent sets.

        Returns
        -------
        torch.Tensor
            ``(..., d)`` float32 log-rewards.
        """
        return self.energy_from_fit(self.mse(states), states.sum(-1))


class IncrementalRidge:
    """Ridge fits of ``B x d`` growing parent sets, updated in ``O(k^2)`` per added parent.

    Adding parent ``j`` to the set ``S`` of gene ``i`` changes the penalised error by the
    partial-regression formula ``J(S + j) = J(S) - r^2 / q`` with
    ``r = c_ij - C_jS w_S`` (the correlation of ``x_j`` with the current residual) and
    ``q = C_jj + ridge - C_jS (C_SS + ridge I)^{-1} C_Sj`` (the part of ``x_j`` that the
    current parents do not explain). The inverse is kept up to date by the matching
    rank-one (block-inverse) update, so a roll-out scores every state it visits without a
    single matrix solve.

    Everything is held in the parent sets' own coordinates: slot ``t`` of gene ``i`` in
    graph ``b`` is the ``t``-th parent added (``parents``), and the inverse ``(C_SS + ridge
    I)^{-1}`` and the weights live on those slots. The slots grow one at a time as the
    largest set grows, so memory is ``O(B d k^2)`` for sets of at most ``k`` parents
    (instead of ``O(B d^3)`` for inverses over all ``d`` genes).

    Parameters
    ----------
    reward : LinearVelocityReward
        The reward whose sufficient statistics, temperature, sparsity and ridge are used.
    batch : int
        Number of graphs ``B``; every gene of every graph starts with no parent.

    Attributes
    ----------
    log_reward : torch.Tensor
        ``(B, d)`` float32 log-reward of the current sets.
    fit : torch.Tensor
        ``(B, d)`` their penalised errors.
    k : torch.Tensor
        ``(B, d)`` their sizes (float).
    """

    def __init__(self, reward: LinearVelocityReward, batch: int):
        self.r = reward
        d = reward.d
        dev = reward.gram.device
        self.parents = torch.zeros(batch, d, 0, dtype=torch.long, device=dev)
        self.w = torch.zeros(batch, d, 0, dtype=torch.float64, device=dev)
        self.p = torch.zeros(batch, d, 0, 0, dtype=torch.float64, device=dev)
        self.fit = reward.vv.expand(batch, d).clone()
        self.k = torch.zeros(batch, d, dtype=torch.float64, device=dev)
        self._count = torch.zeros(batch, d, dtype=torch.long, device=dev)

    @property
    def log_reward(self) -> torch.Tensor:
        return self.r.energy_from_fit(self.fit.clamp(min=0.0), self.k)

    def _grow(self) -> None:
        """One more slot for every set (zeros: no parent, no weight, no inverse entry)."""
        b, d, m = self.w.shape
        self.parents = torch.cat([self.parents, self.parents.new_zeros(b, d, 1)], -1)
        self.w = torch.cat([self.w, self.w.new_zeros(b, d, 1)], -1)
        p = self.p.new_zeros(b, d, m + 1, m + 1)
        p[..., :m, :m] = self.p
        self.p = p

    def add(self, actions: torch.Tensor, active: torch.Tensor) -> None:
        """Add parent ``actions[b, i]`` to gene ``i`` of graph ``b`` where ``active``.

        Parameters
        ----------
        actions : torch.Tensor
            Long ``(B, d)`` parent indices (entries where ``active`` is False are ignored,
            whatever they hold). A parent already in the set must not be added again.
        active : torch.Tensor
            Boolean ``(B, d)``: which sets gain a parent.
        """
        r, d = self.r, self.r.d
        if not bool(active.any()):
            return
        if int(self._count[active].max()) >= self.w.shape[-1]:
            self._grow()
        j = actions.clamp(0, d - 1)
        m = self.w.shape[-1]
        slot = self._count.clamp(max=m - 1)
        filled = (torch.arange(m, device=j.device) < self._count.unsqueeze(-1)).to(torch.float64)
        cj = r.gram[j.unsqueeze(-1), self.parents] * filled      # (B, d, m): C[j, S]
        u = (self.p @ cj.unsqueeze(-1)).squeeze(-1)              # (C_SS + ridge I)^-1 C[S, j]
        q = r.gram[j, j] + r.ridge - (cj * u).sum(-1)
        node = torch.arange(d, device=j.device).expand_as(j)
        resid = r.cross[node, j] - (cj * self.w).sum(-1)
        step = torch.where(active, resid / q, torch.zeros_like(q))
        e = torch.nn.functional.one_hot(slot, m).to(torch.float64)
        g = u - e
        self.w = self.w - g * step.unsqueeze(-1)
        scale = torch.where(active, 1.0 / q, torch.zeros_like(q))
        self.p = self.p + g.unsqueeze(-1) * g.unsqueeze(-2) * scale[..., None, None]
        self.parents = torch.where(active.unsqueeze(-1) & (e > 0), j.unsqueeze(-1), self.parents)
        self.fit = self.fit - torch.where(active, resid * resid / q, torch.zeros_like(q))
        self.k = self.k + active.to(torch.float64)
        self._count = self._count + active.to(torch.long)

    def weights(self) -> torch.Tensor:
        """Current ridge weights in gene coordinates.

        Returns
        -------
        torch.Tensor
            ``(B, d, d)`` float64, ``W[b, i, j]`` the weight of ``j -> i`` in graph ``b``
            (zero off the parent sets).
        """
        b, d, m = self.w.shape
        out = self.w.new_zeros(b, d, d)
        filled = torch.arange(m, device=self.w.device) < self._count.unsqueeze(-1)
        out.scatter_add_(-1, self.parents, torch.where(filled, self.w, torch.zeros_like(self.w)))
        return out


class _NodeMLP(nn.Module):
    """``d`` independent MLPs (one per node), stacked weights, one contraction per layer."""

    def __init__(self, n_nodes: int, sizes: list[int]):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / np.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(n_nodes, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_nodes, b).uniform_(-bound, bound)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.einsum("...nk,nko->...no", h, w) + b
            if k < last:
                h = F.elu(h)
        return h


class HyperVelocityModel(nn.Module):
    """h-DynGFN's hypernetwork: graph -> weights of a small per-gene velocity network.

    For gene ``i`` an MLP (ELU, hidden sizes ``hidden``) reads the parent vector ``G_i`` and
    emits ``W1 (d x width)``, ``b1``, ``w2 (width)``, ``b2`` of the per-gene model
    ``v_i = w2 . act(W1^T (G_i * x) + b1) + b2``. ``activation=None`` gives DynGFN's
    reference behaviour (no non-linearity between the two layers, so the model is linear
    in ``x``); the default ``"tanh"`` makes it non-linear, which suits the sigmoid system.

    Parameters
    ----------
    n_nodes : int
        Number of genes ``d``.
    hidden : tuple of int
        Hidden sizes of each gene's hypernetwork MLP.
    width : int
        Hidden width of the per-gene velocity network it emits.
    activation : str, optional
        Non-linearity of the velocity network: ``"tanh"``, ``"elu"`` or ``None`` (linear
        in ``x``, DynGFN's reference).
    """

    def __init__(self, n_nodes: int, hidden: tuple[int, ...] = (64, 64), width: int = 12,
                 activation: str | None = "tanh"):
        super().__init__()
        self.n_nodes, self.width = n_nodes, width
        self.activation = activation
        n_out = n_nodes * width + width + width + 1
        self.net = _NodeMLP(n_nodes, [n_nodes, *hidden, n_out])

    def predict(self, graphs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocities predicted under each graph.

        Parameters
        ----------
        graphs : torch.Tensor
            ``(B, d, d)`` 0/1 graphs; gene ``i``'s network sees only ``G_i * x``.
        x : torch.Tensor
            ``(n, d)`` states.

        Returns
        -------
        torch.Tensor
            ``(B, n, d)`` predicted velocities.
        """
        d, w = self.n_nodes, self.width
        p = self.net(graphs)  # (B, d, n_out)
        w1 = p[..., : d * w].reshape(*p.shape[:2], d, w) * graphs.unsqueeze(-1)
        b1 = p[..., d * w: d * w + w]
        w2 = p[..., d * w + w: d * w + 2 * w]
        b2 = p[..., -1]
        h = torch.einsum("tk,bikw->btiw", x, w1) + b1.unsqueeze(1)
        if self.activation == "tanh":
            h = torch.tanh(h)
        elif self.activation == "elu":
            h = F.elu(h)
        return (h * w2.unsqueeze(1)).sum(-1) + b2.unsqueeze(1)

    def mse(self, graphs: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Per-graph, per-gene mean squared velocity error on a data batch.

        Parameters
        ----------
        graphs : torch.Tensor
            ``(B, d, d)`` 0/1 graphs.
        x, v : torch.Tensor
            ``(n, d)`` states and their velocities.

        Returns
        -------
        torch.Tensor
            ``(B, d)`` MSE over the ``n`` cells.
        """
        return (self.predict(graphs, x) - v.unsqueeze(0)).pow(2).mean(1)

    def log_reward(self, states: torch.Tensor, x: torch.Tensor, v: torch.Tensor, *,
                   temperature: float, sparsity: float, chunk: int = 256) -> torch.Tensor:
        """``log R = -(MSE / T^2 + lambda |G_i| / d)`` with this model's MSE.

        Parameters
        ----------
        states : torch.Tensor
            ``(..., d, d)`` 0/1 parent sets.
        x, v : torch.Tensor
            ``(n, d)`` the data batch the MSE is taken on.
        temperature : float
            ``T`` of the energy.
        sparsity : float
            ``lambda`` of the energy.
        chunk : int
            Graphs evaluated at a time (memory only).

        Returns
        -------
        torch.Tensor
            ``(..., d)`` log-rewards.
        """
        shape = states.shape[:-1]
        flat = states.reshape(-1, self.n_nodes, self.n_nodes)
        mse = torch.cat([self.mse(flat[s:s + chunk], x, v) for s in range(0, len(flat), chunk)])
        energy = mse / temperature ** 2 + sparsity * flat.sum(-1) / self.n_nodes
        return (-energy).reshape(shape)


class BootstrapLassoPosterior:
    """Baseline posterior: per-gene Lasso (BIC-chosen penalty) on bootstrap resamples.

    Each of ``n_boot`` resamples of the cells gives one graph (an edge where the Lasso
    coefficient is non-zero); the graphs are the baseline's "samples" and their mean its
    edge probabilities. For a likelihood of any graph (needed by KL) the baseline is read as
    independent Bernoulli edges with Jeffreys-smoothed frequencies ``(count + 1/2) / (B + 1)``.

    The default ``solver="gram"`` computes the same estimator as scikit-learn's
    ``LassoLarsIC(criterion="bic", noise_variance=...)`` per gene, but from the resample's
    weighted sufficient statistics: one Gram matrix per resample (``X^T W X`` with ``W`` the
    resampling counts) is shared by every gene's LARS path (``lars_path_gram``), and the
    residual sums of squares along each path come from the Gram matrix instead of the cells,
    so a resample costs ``O(n d^2 + d^4)`` instead of ``d`` passes over the cells.
    ``solver="sklearn"`` runs ``LassoLarsIC`` on the materialised resample (the reference).

    Parameters
    ----------
    n_boot : int
        Number of bootstrap resamples.
    seed : int
        Seed of the resampling. ``fit(x, v, groups=...)`` resamples whole groups (e.g.
        trajectories, whose points are correlated) instead of single cells.
    solver : str
        ``"gram"`` (default) or ``"sklearn"``; both give the same graphs.

    Attributes
    ----------
    samples_ : ndarray (n_boot, g, d)
        uint8 graph of each resample.
    coef_ : ndarray (n_boot, g, d)
        Their Lasso coefficients.
    edge_probability_ : ndarray (g, d)
        Edge frequency over the resamples.
    """

    def __init__(self, n_boot: int = 50, seed: int = 0, solver: str = "gram"):
        self.n_boot = n_boot
        self.seed = seed
        self.solver = solver

    def fit(self, x, v, groups=None) -> BootstrapLassoPosterior:
        """Fit one BIC-chosen Lasso per gene on each bootstrap resample.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` expression states.
        v : array_like
            ``(n, g)`` velocities.
        groups : array_like, optional
            ``(n,)`` group of each cell; resamples draw whole groups with replacement.
            ``None`` draws single cells.

        Returns
        -------
        BootstrapLassoPosterior
            ``self``, fitted.

        Raises
        ------
        ValidationError
            If ``solver`` is not ``"gram"`` or ``"sklearn"``.
        """
        from workbench.errors import ValidationError

        if self.solver not in ("gram", "sklearn"):
            raise ValidationError(f"unknown solver {self.solver!r}.", "use 'gram' or 'sklearn'.")
        x = np.asarray(x, np.float64)
        v = np.asarray(v, np.float64)
        n, d = x.shape
        rng = np.random.default_rng(self.seed)
        groups = np.arange(n) if groups is None else np.asarray(groups)
        labels, lab = np.unique(groups, return_inverse=True)
        g_out = v.shape[1]
        samples = np.zeros((self.n_boot, g_out, d), np.uint8)
        coefs = np.zeros((self.n_boot, g_out, d), np.float32)
        members = [np.flatnonzero(lab == k) for k in range(len(labels))]
        for b in range(self.n_boot):
            pick = rng.choice(len(labels), size=len(labels), replace=True)
            if self.solver == "sklearn":
                idx = np.concatenate([members[k] for k in pick])
                coef = _lasso_bic_sklearn(x[idx], v[idx])
            else:
                w = np.bincount(pick, minlength=len(labels))[lab].astype(np.float64)
                coef = _lasso_bic_gram(x, v, w)
            samples[b] = np.abs(coef) > 1e-10
            coefs[b] = coef
        self.samples_ = samples
        self.coef_ = coefs
        self.edge_probability_ = samples.mean(0)
        return self

    def log_prob(self, graphs) -> np.ndarray:
        """``log Q(G)`` under the smoothed independent-edge reading of the ensemble.

        Parameters
        ----------
        graphs : array_like
            ``(..., g, d)`` graphs (nonzero: an edge).

        Returns
        -------
        ndarray
            ``(...)`` log-probabilities with Jeffreys-smoothed edge frequencies.
        """
        p = (self.samples_.sum(0) + 0.5) / (self.n_boot + 1.0)
        g = np.asarray(graphs) > 0
        return (np.where(g, np.log(p), np.log1p(-p))).sum((-2, -1))


def _noise_floor(resid_var, yy_mean):
    return np.maximum(resid_var, 1e-8 * yy_mean + 1e-12)


def _lasso_bic_sklearn(xb, vb) -> np.ndarray:
    """Per-gene ``LassoLarsIC`` (BIC, noise from the OLS residuals) on one resample."""
    import warnings

    from sklearn.linear_model import LassoLarsIC

    n, d = xb.shape
    xc, vc = xb - xb.mean(0), vb - vb.mean(0)
    coef_ols, *_ = np.linalg.lstsq(xc, vc, rcond=None)
    resid_var = ((vc - xc @ coef_ols) ** 2).sum(0) / max(n - d - 1, 1)
    noise = _noise_floor(resid_var, vc.var(0))
    out = np.zeros((vb.shape[1], d))
    for i in range(vb.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[i] = LassoLarsIC(criterion="bic", noise_variance=float(noise[i])).fit(
                xb, vb[:, i]).coef_
    return out


def _lasso_bic_gram(x, v, w) -> np.ndarray:
    """The same fits as :func:`_lasso_bic_sklearn`, on cells weighted by counts ``w``."""
    import warnings

    from sklearn.linear_model import lars_path_gram

    n = float(w.sum())
    d = x.shape[1]
    xm, vm = w @ x / n, w @ v / n
    xc, vc = x - xm, v - vm
    gram = (xc * w[:, None]).T @ xc
    xy = (xc * w[:, None]).T @ vc                                  # (d, genes)
    yy = (vc * vc * w[:, None]).sum(0)
    coef_ols, *_ = np.linalg.lstsq(gram, xy, rcond=None)
    rss_ols = np.maximum(yy - 2 * (coef_ols * xy).sum(0)
                         + np.einsum("dg,de,eg->g", coef_ols, gram, coef_ols), 0.0)
    noise = _noise_floor(rss_ols / max(n - d - 1, 1), yy / n)
    out = np.zeros((v.shape[1], d))
    eps = np.finfo(np.float64).eps
    for i in range(v.shape[1]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, _, path = lars_path_gram(xy[:, i].copy(), gram.copy(), n_samples=int(round(n)),
                                        alpha_min=0.0, method="lasso")
        rss = (yy[i] - 2 * xy[:, i] @ path + np.einsum("dk,de,ek->k", path, gram, path))
        dof = (np.abs(path) > eps).sum(0)
        crit = n * np.log(2 * np.pi * noise[i]) + rss / noise[i] + np.log(n) * dof
        out[i] = path[:, int(np.argmin(crit))]
    return out


# ------------------------------------------------------------- point-score baselines
def edge_scores(x, v, method: str, *, seed: int = 0, n_trees: int = 200) -> np.ndarray:
    """Edge scores ``(d, d)`` of a simple baseline (row ``i``: regulators of gene ``i``).

    ``"corr"``: ``|corr(v_i, x_j)|``; ``"ols"``: ``|w|`` of the least-squares fit of ``v_i``
    on every ``x`` (standardised ``x``, so weights are comparable); ``"ridge"``: the same
    with a ridge penalty per gene chosen by leave-one-out (``RidgeCV``); ``"trees"``: a
    GENIE3-style ensemble (Huynh-Thu et al. 2010, *PLoS ONE* 5:e12776), extremely
    randomised trees with ``sqrt(d)`` candidate features per split regressing each
    standardised ``v_i`` on ``x``, scored by impurity importance. These are rankings, not
    probabilities.

    Parameters
    ----------
    x : array_like
        ``(n, d)`` expression states.
    v : array_like
        ``(n, g)`` velocities.
    method : str
        ``"corr"``, ``"ols"``, ``"ridge"`` or ``"trees"``.
    seed : int
        Seed of the trees (gene ``i`` uses ``seed + i``); the other methods are
        deterministic.
    n_trees : int
        Trees per gene for ``"trees"``.

    Returns
    -------
    ndarray
        ``(g, d)`` non-negative scores, row ``i`` the candidate regulators of gene ``i``.

    Raises
    ------
    ValidationError
        If ``method`` is not one of the four.
    """
    from workbench.errors import ValidationError

    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)
    xs = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    vc = v - v.mean(0)
    if method == "corr":
        vs = vc / np.where(vc.std(0) > 0, vc.std(0), 1.0)
        return np.abs(vs.T @ xs / len(x))
    if method == "ols":
        coef, *_ = np.linalg.lstsq(xs, vc, rcond=None)
        return np.abs(coef.T)
    if method == "ridge":
        from sklearn.linear_model import RidgeCV

        fit = RidgeCV(alphas=np.logspace(-3, 4, 15), alpha_per_target=True).fit(xs, vc)
        return np.abs(fit.coef_)
    if method == "trees":
        from sklearn.ensemble import ExtraTreesRegressor

        out = np.zeros((v.shape[1], x.shape[1]))
        for i in range(v.shape[1]):
            target = vc[:, i] / (vc[:, i].std() or 1.0)
            et = ExtraTreesRegressor(n_estimators=n_trees, max_features="sqrt",
                                     random_state=seed + i, n_jobs=1).fit(xs, target)
            out[i] = et.feature_importances_
        return out
    raise ValidationError(f"unknown baseline {method!r}.", "use 'corr', 'ols', 'ridge' or 'trees'.")
