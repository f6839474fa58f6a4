"""ICFL: iterative codict feature learning, a decoder-only sparse dictionary.

Donhauser et al., "Towards scientific discovery with dictionary learning: extracting
biological concepts from microscopy foundation models" (ICML 2025, arXiv:2412.16247),
Algorithm 1. There is no learned encoder. A sample's code comes from a batched greedy
pursuit against the current dictionary:

1. the residual starts as ``r = x - b``;
2. for ``J`` rounds: pick the ``L`` atoms with the largest inner product with the residual,
   fit their coefficients by least squares *to this round's residual only*, subtract their
   contribution from the residual;
3. the code is the sum of the rounds' coefficients.

**Exact sparsity.** The paper's budget is ``J * L`` selections, so a sparsity that is not a
multiple of ``L`` would be rounded up to whole rounds. Here ``n_nonzero=k`` sets the budget
directly: ``ceil(k / L)`` rounds, the last one choosing only the ``k - (J - 1) L`` atoms that
remain. An atom already chosen in an earlier round is not chosen again (the paper allows a
repeat, which then only adds to its coefficient and leaves the code with fewer than ``k``
nonzeros); with that, every code has exactly ``k`` distinct atoms. Two named pursuits:

* ``pursuit="signed"`` (default): the paper's Algorithm 1, selection by signed inner product,
  per-round least squares, no joint re-fit;
* ``pursuit="abs_refit"``: classic orthogonal matching pursuit choices, selection by absolute
  inner product and one joint least-squares re-fit over all chosen atoms at the end; suited
  to problems whose planted coefficients take both signs.

Unlike textbook orthogonal matching pursuit, a round does not re-fit the atoms chosen in
earlier rounds: this is the paper's algorithm, kept on purpose (it is what makes the encoder a
handful of batched matrix products). The codes are then held fixed (no gradient through the
pursuit) and the dictionary and bias take an Adam step on ``||x - b - W z||^2``. Every atom
that some residual points at gets selected, and so gets gradient, which is why ICFL has few
dead atoms where a TopK autoencoder has many.

Choices the paper leaves open, made here on purpose: atoms are kept at unit norm after every
step; codes are signed (least squares, no non-negativity); duplicated atoms (cosine > 0.9) and atoms unused
since the last check are re-initialised every ``resample_every`` steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from workbench.models._device import autocast
from workbench.models.dictionary import SparseDictionary


class _Decoder(nn.Module):
    def __init__(self, n_atoms: int, n_features: int):
        super().__init__()
        self.atoms = nn.Parameter(torch.empty(n_atoms, n_features))
        self.bias = nn.Parameter(torch.zeros(n_features))


class ICFL(SparseDictionary):
    """Sparse dictionary learned with batched greedy pursuit codes (ICFL).

    Parameters
    ----------
    n_atoms : int
        Dictionary size ``M`` (the paper uses 8192 on 40 M tokens).
    n_rounds : int
        Pursuit rounds ``J`` (paper: 20).
    atoms_per_round : int
        Atoms chosen per round ``L`` (paper: 5). A code has at most ``J * L`` nonzeros.
    n_nonzero : int, optional
        Exact number of atoms per code (``k``); None keeps the paper's ``n_rounds * L``.
        Given, it sets the number of rounds to ``ceil(k / L)`` with a partial last round.
    pursuit : str, optional
        A named pursuit that sets ``selection`` and ``refit`` together: "signed" (the paper:
        signed selection, no re-fit) or "abs_refit" (absolute selection and a joint re-fit).
    selection : str
        "signed" (the paper) or "abs" (largest absolute inner product).
    refit : bool
        After the last round, re-fit all chosen atoms jointly by least squares (the final step
        of orthogonal matching pursuit). Off by default, as in the paper; it lowers the
        reconstruction error at a given sparsity for a small extra cost.
    bf16_scores : bool or str
        Score atoms in bf16 autocast (the large matrix product); the least squares stay in
        fp32. "auto" uses it on CUDA only.
    **kwargs
        Training settings of :class:`~workbench.models.dictionary.SparseDictionary`
        (``batch_size``, ``max_steps``, ``lr``, ``resample_every``, ``device``, ``seed``...).

    Attributes
    ----------
    components_ : ndarray (n_atoms, n_features)
        Unit-norm atoms.
    bias_ : ndarray (n_features,)
        The pre-bias ``b``.
    usage_ : ndarray (n_atoms,)
        Fraction of training codes in which each atom was active.
    loss_history_ : list of float
        Training loss per step.
    n_steps_ : int
        Steps taken.
    """

    kind = "icfl"

    #: The named pursuits: (selection, refit).
    PURSUITS = {"signed": ("signed", False), "abs_refit": ("abs", True)}

    def __init__(self, n_atoms: int = 512, *, n_rounds: int = 20, atoms_per_round: int = 5,
                 n_nonzero: int | None = None, pursuit: str | None = None,
                 selection: str = "signed", refit: bool = False,
                 bf16_scores: bool | str = "auto", **kwargs):
        super().__init__(n_atoms, **kwargs)
        if pursuit is not None:
            if pursuit not in self.PURSUITS:
                raise ValueError(f"pursuit must be one of {sorted(self.PURSUITS)}, "
                                 f"not {pursuit!r}")
            selection, refit = self.PURSUITS[pursuit]
        self.pursuit = pursuit
        self.refit = refit
        self.n_nonzero = n_nonzero
        if n_nonzero is not None:
            if n_nonzero < 1:
                raise ValueError(f"n_nonzero must be positive, not {n_nonzero}")
            atoms_per_round = min(atoms_per_round, n_nonzero)
            n_rounds = math.ceil(n_nonzero / atoms_per_round)
        self.n_rounds = n_rounds
        self.atoms_per_round = atoms_per_round
        self.selection = selection
        self.bf16_scores = bf16_scores

    @property
    def sparsity(self) -> int:
        return int(self.n_nonzero or self.n_rounds * self.atoms_per_round)

    @property
    def pursuit_name(self) -> str:
        """The pursuit that runs, by name ("signed", "abs_refit", or the two settings)."""
        for name, (sel, refit) in self.PURSUITS.items():
            if (sel, refit) == (self.selection, bool(self.refit)):
                return name
        return f"{self.selection}{'+refit' if self.refit else ''}"

    def round_sizes(self) -> list[int]:
        """Atoms chosen in each pursuit round (the last one partial under ``n_nonzero``).

        Returns
        -------
        list of int
            One entry per round, ``n_rounds`` in all; they sum to :attr:`sparsity`.
        """
        k, L = self.sparsity, self.atoms_per_round
        return [min(L, k - r * L) for r in range(self.n_rounds)]

    @property
    def _abs_duplicates(self) -> bool:  # an atom and its negative are duplicates under "abs"
        return self.selection == "abs"

    def _build(self, n_features, x_init, gen):
        if self.selection not in ("signed", "abs"):
            raise ValueError(f"selection must be 'signed' or 'abs', not {self.selection!r}")
        if self.atoms_per_round > self.n_atoms or self.sparsity > self.n_atoms:
            raise ValueError("the number of atoms per code cannot exceed n_atoms")
        mod = _Decoder(self.n_atoms, n_features)
        with torch.no_grad():
            if self.init == "data":
                centred = x_init - x_init.mean(0) if x_init.shape[0] > 1 else x_init
                noise = torch.randn(centred.shape, generator=gen).to(centred.device)
                scale = centred.norm(dim=1, keepdim=True).mean().clamp_min(1e-8)
                w = centred + 0.05 * scale * noise / math.sqrt(n_features)
            else:  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                bound = 1.0 / math.sqrt(n_features)
                w = (torch.rand(self.n_atoms, n_features, generator=gen) * 2 - 1) * bound
            mod.atoms.copy_(w / w.norm(dim=1, keepdim=True).clamp_min(1e-8))
        return mod

    def _use_bf16(self, device: torch.device) -> bool:
        if self.bf16_scores == "auto":
            return device.type == "cuda"
        return bool(self.bf16_scores)

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched pursuit: ``(indices, values)``, each ``(B, k)``; ``k`` distinct atoms."""
        atoms = self.module_.atoms.detach()
        r = x - self.module_.bias.detach()
        bf16 = self._use_bf16(atoms.device)
        taken = torch.zeros(x.shape[0], atoms.shape[0], dtype=torch.bool, device=x.device)
        rows = torch.arange(x.shape[0], device=x.device)[:, None]
        all_idx, all_val = [], []
        for L in self.round_sizes():
            with autocast(atoms.device, enabled=bf16):
                scores = r @ atoms.T
            scores = scores.float()
            if self.selection == "abs":
                scores = scores.abs()
            scores = scores.masked_fill(taken, float("-inf"))  # each atom at most once
            if L == 1:
                sel = scores.argmax(dim=1, keepdim=True)
            else:
                sel = scores.topk(L, dim=1).indices  # (B, L)
            taken[rows, sel] = True
            chosen = atoms[sel]  # (B, L, d)
            rhs = torch.einsum("bld,bd->bl", chosen, r)
            if L == 1:  # unit-norm atoms: the least-squares coefficient is the inner product
                z = rhs
            else:
                eye = torch.eye(L, device=x.device, dtype=x.dtype) * 1e-6
                gram = torch.einsum("bld,bmd->blm", chosen, chosen) + eye
                z = torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)
            r = r - torch.einsum("bl,bld->bd", z, chosen)
            all_idx.append(sel)
            all_val.append(z)
        idx, val = torch.cat(all_idx, 1), torch.cat(all_val, 1)
        if self.refit and len(all_idx) > 1:
            chosen = atoms[idx]  # (B, k, d), distinct atoms
            target = x - self.module_.bias.detach()
            gram = torch.einsum("bld,bmd->blm", chosen, chosen)
            gram = gram + torch.eye(idx.shape[1], device=x.device, dtype=x.dtype) * 1e-5
            rhs = torch.einsum("bld,bd->bl", chosen, target)
            val = torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)
        return idx, val

    def _loss(self, x):
        idx, val = self._encode(x)  # codes held fixed: no gradient through the pursuit
        recon = self._decode(idx, val)
        loss = (x - recon).pow(2).sum(1).mean()
        return loss, idx
