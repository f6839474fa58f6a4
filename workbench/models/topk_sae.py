"""TopK sparse autoencoder: the baseline that ICFL is compared against.

Gao et al., "Scaling and evaluating sparse autoencoders" (2024): a linear encoder, keep the
``k`` largest pre-activations (after ReLU), decode with a unit-norm dictionary:
``x_hat = b + W_dec^T relu(TopK(W_enc (x - b) + b_enc))``. Encoder and decoder train jointly
on the reconstruction loss. Without an auxiliary loss many atoms never win the TopK and stop
receiving gradient ("dead" features); Donhauser et al. (ICML 2025) report 7640 of 8192 dead on
microscopy tokens. Resampling of unused atoms is available but off by default here, to match
the plain baseline of that comparison (``resample_every=0``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.models.dictionary import SparseDictionary


class _SAE(nn.Module):
    def __init__(self, n_atoms: int, n_features: int):
        super().__init__()
        self.atoms = nn.Parameter(torch.empty(n_atoms, n_features))  # decoder rows
        self.encoder = nn.Parameter(torch.empty(n_atoms, n_features))
        self.encoder_bias = nn.Parameter(torch.zeros(n_atoms))
        self.bias = nn.Parameter(torch.zeros(n_features))


class TopKSAE(SparseDictionary):
    """TopK sparse autoencoder with the same ``fit``/``transform`` interface as ICFL.

    Parameters
    ----------
    n_atoms : int
        Dictionary size.
    k : int
        Active atoms per sample.
    **kwargs
        Training settings of :class:`~workbench.models.dictionary.SparseDictionary`;
        ``resample_every`` defaults to 0 (no resampling: the plain baseline).

    Attributes
    ----------
    components_, bias_, usage_, loss_history_, n_steps_
        As for :class:`~workbench.models.icfl.ICFL`.
    """

    kind = "topk_sae"
    _abs_duplicates = False  # codes are non-negative: an atom and its negative differ

    def __init__(self, n_atoms: int = 512, *, k: int = 100, **kwargs):
        kwargs.setdefault("resample_every", 0)
        super().__init__(n_atoms, **kwargs)
        self.k = k

    @property
    def sparsity(self) -> int:
        return self.k

    def _build(self, n_features, x_init, gen):
        if self.k > self.n_atoms:
            raise ValueError("k cannot exceed n_atoms")
        mod = _SAE(self.n_atoms, n_features)
        with torch.no_grad():
            if self.init == "data":
                w = x_init - x_init.mean(0) if x_init.shape[0] > 1 else x_init.clone()
            else:
                bound = 1.0 / math.sqrt(n_features)
                w = (torch.rand(self.n_atoms, n_features, generator=gen) * 2 - 1) * bound
            w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)
            mod.atoms.copy_(w)
            mod.encoder.copy_(w)  # tied at the start, as Gao et al. do
        return mod

    def _pre(self, x):
        m = self.module_
        return (x - m.bias) @ m.encoder.T + m.encoder_bias

    def _topk(self, x):
        vals, idx = self._pre(x).topk(self.k, dim=1)
        return idx, torch.relu(vals)

    @torch.no_grad()
    def _encode(self, x):
        return self._topk(x)

    def _loss(self, x):
        idx, val = self._topk(x)
        recon = self._decode(idx, val)
        loss = (x - recon).pow(2).sum(1).mean()
        return loss, idx[val > 0]

    def _after_resample(self, which):
        self.module_.encoder.data[which] = self.module_.atoms.data[which]
        self.module_.encoder_bias.data[which] = 0.0

    def _rows_follow_atoms(self, p):
        return p is self.module_.encoder or p is self.module_.encoder_bias
