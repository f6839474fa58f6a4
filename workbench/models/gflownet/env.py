"""Parent-set environments, one per node, stepped together as a batch.

A state of node ``i``'s environment is a binary vector ``s in {0,1}^d``: the parents chosen
so far. It starts empty. An action is either "add parent ``j``" (``0 <= j < d``, allowed
when ``j`` is not yet a parent; ``j == i`` is a self-loop and is allowed) or "stop"
(action ``d``, always allowed), which makes the current parent set terminal. Every state
can therefore terminate, as in DAG-GFlowNet (Deleu et al. 2022), but nothing enforces
acyclicity: the per-node factorisation makes cycles free.

All ``d`` environments of a graph are held in one tensor of shape ``(B, d, d)``: row ``i``
of batch element ``b`` is the parent set of node ``i``. This is exactly the adjacency
matrix in the package orientation (``G[i, j] = 1``: ``j`` is a parent of ``i``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: A large negative logit for actions that are not allowed (finite, so that ``0 * x`` and
#: gradients stay well defined).
NEG_INF = -1.0e9


@dataclass
class ParentSetEnv:
    """``n_nodes`` parent-set environments with an optional cap on the number of parents.

    Parameters
    ----------
    n_nodes : int
        Number of variables ``d``; each environment has ``d + 1`` actions.
    max_parents : int, optional
        Largest parent set allowed (``None``: up to all ``d``). When a state reaches the
        cap, only "stop" is allowed.
    """

    n_nodes: int
    max_parents: int | None = None

    @property
    def n_actions(self) -> int:
        return self.n_nodes + 1

    @property
    def stop(self) -> int:
        """Index of the stop action."""
        return self.n_nodes

    def initial(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Empty parent sets for ``batch`` graphs.

        Parameters
        ----------
        batch : int
            Number of graphs ``B``.
        device : torch.device or str
            Device of the tensor.

        Returns
        -------
        torch.Tensor
            Zeros, float ``(batch, d, d)``.
        """
        return torch.zeros(batch, self.n_nodes, self.n_nodes, device=device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Allowed actions: absent parents (while under ``max_parents``), and stop (always).

        Parameters
        ----------
        states : torch.Tensor
            ``(..., d)`` 0/1 parent sets (e.g. ``(B, d, d)``, one row per node).

        Returns
        -------
        torch.Tensor
            Boolean ``(..., d + 1)``; the last entry is the stop action.
        """
        allowed_edges = states < 0.5
        if self.max_parents is not None:
            full = states.sum(-1, keepdim=True) >= self.max_parents
            allowed_edges = allowed_edges & ~full
        stop = torch.ones_like(allowed_edges[..., :1])
        return torch.cat([allowed_edges, stop], dim=-1)

    def step(self, states: torch.Tensor, actions: torch.Tensor, done: torch.Tensor):
        """Apply ``actions`` to environments that are not ``done``.

        Parameters
        ----------
        states : torch.Tensor
            ``(B, d, d)`` current parent sets, row ``i`` that of node ``i``.
        actions : torch.Tensor
            Long ``(B, d)``, one action per node: a parent index ``j < d`` or the stop
            action ``d``. They are not checked against :meth:`forward_mask`.
        done : torch.Tensor
            Boolean ``(B, d)``: environments already stopped, left unchanged.

        Returns
        -------
        states : torch.Tensor
            The new ``(B, d, d)`` states (a new tensor).
        done : torch.Tensor
            The new ``(B, d)`` flags; a stop action marks its environment done and leaves
            its state unchanged.
        """
        add = (actions < self.stop) & ~done
        onehot = torch.zeros_like(states)
        idx = actions.clamp(min=0, max=self.n_nodes - 1).unsqueeze(-1)
        onehot.scatter_(-1, idx, add.unsqueeze(-1).to(states.dtype))
        new_done = done | (actions == self.stop)
        return states + onehot, new_done

    @staticmethod
    def n_parents(states: torch.Tensor) -> torch.Tensor:
        """Size of each parent set.

        Parameters
        ----------
        states : torch.Tensor
            ``(..., d)`` 0/1 parent sets.

        Returns
        -------
        torch.Tensor
            ``(...)`` float counts.
        """
        return states.sum(-1)
