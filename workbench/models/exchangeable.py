"""An exchangeable model of the gene x gene pair matrix (Hartford et al. 2018).

"Deep Models of Interactions Across Sets" (Hartford, Graham, Leyton-Brown, Ravanbakhsh;
ICML 2018) builds networks for a matrix whose rows and columns are sets: permuting the
genes must permute the predictions in the same way. The most expressive linear layer with
that property mixes, for every entry, its own features, the mean over its row, the mean
over its column and the overall mean, each mean running over the *observed* entries only.

Our matrix is symmetric (pair A+B is pair B+A), so a gene's row and column are one set: the
layer used here is, for the entry of pair (i, j) with hidden features ``h_ij``::

    h'_ij = relu(A h_ij + B (P_i + P_j) / 2 + C G + b)
    P_g   = mean of h over the observed entries that contain gene g   (0 when none)
    G     = mean of h over all observed entries

which is equivariant under any relabelling of the genes and symmetric in i and j. The
entries are kept as a sparse list (pooling by ``index_add``, as the authors' sparse layers
do), so cost grows with the number of pairs, not with n^2, and a screen whose genes each
appear in one pair (a paralog library) costs no more than its pairs.

Side information: each gene's single-perturbation effects ``s_g`` enter every entry as the
symmetric features ``s_i + s_j``, ``|s_i - s_j|``, ``|s_i| + |s_j|`` and ``s_i * s_j``
(scaled by their root mean square, not centred, so that zero stays "like control"), plus
how many observed pairs each gene has. Because no weight belongs to a gene, a gene that has
no measured pair yet is predicted from its singles and the pooled rest (inductive use).

Training is self-supervised as in the paper: each step hides a random share of the
observed entries from the input and reconstructs them. Uncertainty comes from an ensemble
(Lakshminarayanan et al. 2017): members differ in their initial weights and in the entries
they hide, and are trained at once as one batched problem. ``sample`` returns one
prediction per member, the shape :func:`workbench.models.pair_selection.select_batch`
takes.
"""

from __future__ import annotations

import numpy as np
import torch

from workbench.models._device import make_generator, resolve_device, to_numpy, torch_threads

__all__ = ["ExchangeablePairModel", "side_pair_features"]


def side_pair_features(side: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Symmetric features of the pairs (i, j) from per-gene side vectors (n, p) -> (m, 4p).

    Parameters
    ----------
    side : torch.Tensor
        ``(n, p)`` per-gene side features.
    i, j : torch.Tensor
        ``(m,)`` gene indices of each pair.

    Returns
    -------
    torch.Tensor
        ``(m, 4p)``: ``s_i + s_j``, ``|s_i - s_j|``, ``|s_i| + |s_j|``, ``s_i * s_j``.
    """
    a, b = side[i], side[j]
    return torch.cat([a + b, (a - b).abs(), a.abs() + b.abs(), a * b], -1)


class ExchangeablePairModel:
    """Ensemble of small exchangeable networks over the observed entries of a pair matrix.

    Parameters
    ----------
    width : int
        Hidden features per entry.
    n_layers : int
        Exchangeable layers before the linear read-out.
    n_members : int
        Ensemble size (posterior-like samples).
    hide : float
        Share of the observed entries hidden (and reconstructed) at each step.
    steps : int
        Adam steps of a first fit; a warm-started refit uses ``steps // 4`` (at least 30).
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam weight decay.
    device : str
        Torch device (``"auto"``: a GPU when there is one).
    seed : int
        Seed of the initial weights and the hidden entries.

    Attributes
    ----------
    weights_ : list of torch.Tensor
        ``(E, d_in, d_out)`` weights per layer (3 blocks and a bias each) and the read-out;
        set by :meth:`fit`.
    residual_sd_ : float
        Sd of the reconstruction error on hidden entries at the end of training, in the
        units of the targets (the noise part of a prediction interval).
    """

    def __init__(self, width: int = 32, n_layers: int = 3, n_members: int = 8,
                 hide: float = 0.2, steps: int = 200, lr: float = 0.01,
                 weight_decay: float = 1e-4, device: str = "auto", seed: int = 0):
        self.width = width
        self.n_layers = n_layers
        self.n_members = n_members
        self.hide = hide
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ network
    def _init_weights(self, d_in: int, gen: torch.Generator, dev) -> list[torch.Tensor]:
        e, d = self.n_members, self.width
        out = []
        for layer in range(self.n_layers):
            din = d_in if layer == 0 else d
            for _ in range(3):  # own, gene pools, global pool
                w = torch.randn(e, din, d, generator=gen) * np.sqrt(2.0 / (3 * din))
                out.append(w.to(dev))
            out.append(torch.zeros(e, 1, d, device=dev))
        out.append((torch.randn(e, d, 1, generator=gen) * np.sqrt(1.0 / d)).to(dev))
        out.append(torch.zeros(e, 1, 1, device=dev))
        return [w.requires_grad_(True) for w in out]

    def _inputs(self, ei, ej, y_vis, vis, n_items, side_feats):
        """Entry features (E, m, d_in) from the visible targets and the side features."""
        e = vis.shape[0]
        cnt = torch.zeros(e, n_items, device=vis.device)
        cnt.index_add_(1, ei, vis)
        cnt.index_add_(1, ej, vis)
        deg = torch.log1p(cnt[:, ei]) + torch.log1p(cnt[:, ej])
        own = torch.stack([y_vis * vis, vis, deg], -1)
        side = side_feats[None].expand(e, -1, -1)
        return torch.cat([own, side], -1)

    def _forward(self, ei, ej, x, vis, n_items):
        """Read-out (E, m) of the network on entries (ei, ej) with pooling weights ``vis``."""
        w = self.weights_
        h = x
        wsum = vis.sum(1, keepdim=True).clamp(min=1.0)  # (E, 1)
        cnt = torch.zeros(vis.shape[0], n_items, device=vis.device)
        cnt.index_add_(1, ei, vis)
        cnt.index_add_(1, ej, vis)
        cnt = cnt.clamp(min=1.0)[..., None]
        for layer in range(self.n_layers):
            wa, wb, wc, bias = w[4 * layer: 4 * layer + 4]
            hv = h * vis[..., None]
            pool = torch.zeros(h.shape[0], n_items, h.shape[2], device=h.device)
            pool.index_add_(1, ei, hv)
            pool.index_add_(1, ej, hv)
            pool = pool / cnt
            gene = (pool[:, ei] + pool[:, ej]) / 2
            glob = hv.sum(1, keepdim=True) / wsum[..., None]
            h = torch.relu(h @ wa + gene @ wb + glob @ wc + bias)
        return (h @ w[-2] + w[-1])[..., 0]

    # ------------------------------------------------------------------ fitting
    def fit(self, i, j, y, *, side=None, n_items: int | None = None,
            warm_start: bool = False) -> ExchangeablePairModel:
        """Fit the ensemble to the observed entries ``R[i, j] = y`` (order of i, j ignored).

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
        ExchangeablePairModel
            ``self``.
        """
        dev = resolve_device(self.device)
        i = np.asarray(i, int)
        j = np.asarray(j, int)
        y = np.asarray(y, float)
        if not (len(i) == len(j) == len(y)):
            raise ValueError("i, j and y must have the same length")
        if n_items is None:
            n_items = int(max(i.max(), j.max())) + 1 if len(y) else 0
        if side is None:
            side_np = np.zeros((n_items, 0))
        else:
            side_np = np.asarray(side, float).reshape(n_items, -1)
            rms = np.sqrt((side_np ** 2).mean(0))
            side_np = side_np / np.where(rms > 0, rms, 1.0)
        self.side_ = torch.as_tensor(side_np, dtype=torch.float32, device=dev)
        self.y_mean_ = float(y.mean()) if len(y) else 0.0
        self.y_scale_ = float(y.std()) if len(y) > 1 and y.std() > 0 else 1.0
        self.obs_i_ = torch.as_tensor(i, device=dev)
        self.obs_j_ = torch.as_tensor(j, device=dev)
        self.obs_y_ = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32,
                                      device=dev)
        self.n_items_ = n_items
        gen = make_generator(self.seed)
        first = not (warm_start and hasattr(self, "weights_"))
        d_in = 3 + 4 * side_np.shape[1]
        if first:
            self.weights_ = self._init_weights(d_in, gen, dev)
        else:
            gen.manual_seed(int(self.seed) + 1 + len(y))
        steps = self.steps if first else max(30, self.steps // 4)
        with torch_threads(1 if dev.type == "cpu" else None):
            self._train(steps, gen)
        return self

    def _train(self, steps: int, gen: torch.Generator) -> None:
        ei, ej, yt = self.obs_i_, self.obs_j_, self.obs_y_
        m, e = len(yt), self.n_members
        self.residual_sd_ = self.y_scale_
        if m < 3:
            return
        feats = side_pair_features(self.side_, ei, ej)
        opt = torch.optim.Adam(self.weights_, lr=self.lr, weight_decay=self.weight_decay)
        recent = []
        for step in range(steps):
            hidden = (torch.rand(e, m, generator=gen) < self.hide).to(yt.device)
            vis = (~hidden).float()
            x = self._inputs(ei, ej, yt[None].expand(e, -1), vis, self.n_items_, feats)
            pred = self._forward(ei, ej, x, vis, self.n_items_)
            err = (pred - yt[None]) ** 2
            hw = hidden.float()
            loss = ((err * hw).sum(1) / hw.sum(1).clamp(min=1.0)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= steps - 20:
                recent.append(float((err.detach() * hw).sum() / hw.sum().clamp(min=1.0)))
        self.residual_sd_ = float(np.sqrt(np.mean(recent))) * self.y_scale_

    # ------------------------------------------------------------------ posterior
    def sample(self, i, j, *, chunk_size: int = 8192) -> np.ndarray:
        """One prediction per member, (E, m), of ``R[i, j]`` in the units of the targets.

        Queries never enter the pools (only observed entries do), so they are scored
        ``chunk_size`` at a time with results identical to one pass: memory is bounded by
        (observed entries + chunk) x width per member, whatever the number of queries.

        Parameters
        ----------
        i, j : array_like of int
            The pairs to score.
        chunk_size : int
            Pairs scored at a time.

        Returns
        -------
        numpy.ndarray
            ``(E, m)`` samples.
        """
        qi_all, qj_all = np.ascontiguousarray(i, int), np.ascontiguousarray(j, int)
        step = max(1, int(chunk_size))
        parts = [self._sample_chunk(qi_all[a:a + step], qj_all[a:a + step])
                 for a in range(0, len(qi_all), step)]
        if not parts:
            return np.zeros((self.n_members, 0))
        return np.concatenate(parts, 1)

    def _sample_chunk(self, i, j) -> np.ndarray:
        qi = torch.as_tensor(i, device=self.obs_i_.device)
        qj = torch.as_tensor(j, device=self.obs_i_.device)
        e, m = self.n_members, len(self.obs_y_)
        ei = torch.cat([self.obs_i_, qi])
        ej = torch.cat([self.obs_j_, qj])
        vis = torch.cat([torch.ones(e, m), torch.zeros(e, len(qi))], 1).to(qi.device)
        y = torch.cat([self.obs_y_, torch.zeros(len(qi), device=qi.device)])
        with torch.no_grad(), torch_threads(1 if qi.device.type == "cpu" else None):
            feats = side_pair_features(self.side_, ei, ej)
            x = self._inputs(ei, ej, y[None].expand(e, -1), vis, self.n_items_, feats)
            out = self._forward(ei, ej, x, vis, self.n_items_)[:, m:]
        return to_numpy(out).astype(np.float64) * self.y_scale_ + self.y_mean_

    def predict(self, i, j) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean and sd of ``R[i, j]``.

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
