"""Per-node GFlowNets over parent sets: a DynGFN sampler of (cyclic) regulatory graphs.

DynGFN (Atanackovic et al., NeurIPS 2023, arXiv:2302.04178) learns an approximate posterior
``Q(G | D)`` over dependency graphs of a dynamical system from (state, velocity) pairs. The
posterior factorises over nodes, ``Q(G) = prod_i Q_i(G_i)``, where ``G_i`` is the parent set
of node ``i``; each factor is a small GFlowNet (Bengio et al. 2021) whose states are parent
sets and whose actions add one parent or stop. Cycles and self-loops are allowed.

Orientation, everywhere in this package: ``G[i, j] = 1`` means variable ``j`` is a parent
of ``i``, i.e. ``x_j`` enters the equation for the velocity of ``x_i``.

The package is split as torchgfn splits a GFlowNet:

- :mod:`.env` - the per-node parent-set environments (states, masks, transitions);
- :mod:`.estimators` - the forward policy network and the uniform backward policy;
- :mod:`.losses` - detailed balance with stop probabilities, and trajectory balance;
- :mod:`.sampler` - tempered roll-outs for training and plain sampling of graphs;
- :mod:`.exact` - exact ``log Q(G)`` by summing over all edge-addition orders;
- :mod:`.dyngfn` - the :class:`DynGFN` estimator that trains and samples.
"""

from workbench.models.gflownet.dyngfn import DynGFN

__all__ = ["DynGFN"]
