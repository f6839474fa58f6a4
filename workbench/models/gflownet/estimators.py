"""Policy estimators: one forward-policy network per node, and the uniform backward policy.

The forward policy of node ``i`` reads the current parent set ``s`` (a 0/1 vector of
length ``d``) and returns log-probabilities over ``d + 1`` actions: add parent ``j``, or
stop. As in DynGFN, the network has a shared trunk and two heads, one scoring the ``d``
edge additions and one scoring "stop"; disallowed actions are masked before the
log-softmax.

The ``d`` per-node networks do not share weights. Instead of ``d`` separate modules, their
weights are stacked along a leading node axis and applied with one batched contraction, so
a forward pass over ``B`` graphs costs a handful of matrix products whatever ``d`` is.

The backward policy is uniform over the parents currently present: a state with ``k``
parents was reached from any of its ``k`` subsets with one parent fewer, each with
probability ``1 / k``. It has no parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from workbench.models.gflownet.env import NEG_INF


class _NodeLinear(nn.Module):
    """``d`` independent linear layers, one per node, applied in one contraction."""

    def __init__(self, n_nodes: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(n_nodes, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_nodes, n_out).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h``: ``(B, d, n_in)`` with node ``i``'s input in ``h[:, i]`` -> ``(B, d, n_out)``."""
        return torch.einsum("...nk,nko->...no", h, self.weight) + self.bias

    def forward_rows(self, node: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Rows of different nodes: ``node`` long ``(M,)``, ``h`` ``(M, n_in)`` -> ``(M, n_out)``."""
        return torch.bmm(h.unsqueeze(1), self.weight[node]).squeeze(1) + self.bias[node]


class ForwardPolicy(nn.Module):
    """Per-node forward policies ``P_F(a | s)`` over ``d + 1`` actions.

    Parameters
    ----------
    n_nodes : int
        Number of variables ``d``.
    hidden : int
        Width of the trunk and of the stop head (DynGFN uses 128).
    """

    def __init__(self, n_nodes: int, hidden: int = 128):
        super().__init__()
        self.n_nodes = n_nodes
        self.trunk = nn.ModuleList([
            _NodeLinear(n_nodes, n_nodes, hidden),
            _NodeLinear(n_nodes, hidden, hidden),
        ])
        self.edge_head = _NodeLinear(n_nodes, hidden, n_nodes)
        self.stop_hidden = _NodeLinear(n_nodes, hidden, hidden)
        self.stop_head = _NodeLinear(n_nodes, hidden, 1)

    def _heads(self, h, layer):
        for lin in self.trunk:
            h = F.leaky_relu(layer(lin, h))
        edges = layer(self.edge_head, h)
        stop = layer(self.stop_head, F.leaky_relu(layer(self.stop_hidden, h)))
        return torch.cat([edges, stop], dim=-1)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Unmasked logits of every node's actions.

        Parameters
        ----------
        states : torch.Tensor
            ``(B, d, d)`` parent sets, row ``i`` the input of node ``i``'s network.

        Returns
        -------
        torch.Tensor
            ``(B, d, d + 1)`` logits; the last column is "stop".
        """
        return self._heads(states, lambda lin, h: lin(h))

    def log_probs(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked log-probabilities of every node's actions.

        Parameters
        ----------
        states : torch.Tensor
            ``(B, d, d)`` parent sets.
        mask : torch.Tensor
            Boolean ``(B, d, d + 1)`` allowed actions (``ParentSetEnv.forward_mask``).

        Returns
        -------
        torch.Tensor
            ``(B, d, d + 1)`` log-probabilities; disallowed actions get about ``-1e9``.
        """
        return masked_log_softmax(self.logits(states), mask)

    def log_probs_rows(self, node: torch.Tensor, rows: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
        """Log-probabilities for single parent sets of given nodes.

        Used by the exact likelihood, which needs many states of one node at a time.

        Parameters
        ----------
        node : torch.Tensor
            Long ``(M,)``: whose network scores each row.
        rows : torch.Tensor
            ``(M, d)`` 0/1 parent sets.
        mask : torch.Tensor
            Boolean ``(M, d + 1)`` allowed actions.

        Returns
        -------
        torch.Tensor
            ``(M, d + 1)`` masked log-probabilities.
        """
        logits = self._heads(rows, lambda lin, h: lin.forward_rows(node, h))
        return masked_log_softmax(logits, mask)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last axis with disallowed entries pushed to ``NEG_INF``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(..., A)`` unnormalised scores.
    mask : torch.Tensor
        Boolean, broadcastable to ``logits``: True where an action is allowed.

    Returns
    -------
    torch.Tensor
        ``(..., A)`` log-probabilities; disallowed actions get about ``-1e9`` (finite).
    """
    logits = torch.where(mask, logits, torch.full_like(logits, NEG_INF))
    return torch.log_softmax(logits, dim=-1)


def uniform_backward_log_prob(next_states: torch.Tensor) -> torch.Tensor:
    """``log P_B(s | s')`` for the uniform backward policy: ``-log |s'|``.

    Parameters
    ----------
    next_states : torch.Tensor
        ``(..., d)`` 0/1 parent sets ``s'`` reached by adding a parent (``|s'| >= 1``; an
        empty set is treated as size 1).

    Returns
    -------
    torch.Tensor
        ``(...)`` the log-probability of each backward step.
    """
    k = next_states.sum(-1).clamp(min=1.0)
    return -torch.log(k)
