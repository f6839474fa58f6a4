"""A small cyclic gene-regulatory network with known dynamics, and knockouts through it.

The network is built from *modules* ("pathways"): each module has a regulatory core that
is a directed cycle (feedback loop) and a few target genes that the core drives. A handful
of extra edges cross modules, a few genes activate themselves (self-loops), and the
planted no-effect genes hang off the cores as leaves (they regulate nothing that matters).

Within a module every edge is activating, so that knocking out any member lowers the
module and its effect points the module's way; the cross-module edges, the no-effect genes'
edges and the self-loops carry the repressions and the variety.

Dynamics (one ODE per gene, child-major weights: ``W[i, j]`` is the effect of gene ``j``
on the velocity of gene ``i``)::

    dx_i/dt = alpha_i * sigmoid(sum_j W[i, j] x_j + b_i) - gamma_i * x_i

so ``adjacency[i, j] = 1`` exactly when ``W[i, j] != 0`` (the convention of the DynGFN card:
``G[i, j] = 1`` iff ``x_j`` is a parent of ``dx_i/dt``). Decay ``-gamma_i x_i`` is not counted
as an edge; a self-loop is a non-zero ``W[i, i]``. Rows are scaled so that the Jacobian is
diagonally dominant, which makes the fixed point unique and stable (a contraction) and
every knockout response finite.

Expression and velocity are sampled along trajectories that start away from the fixed
point and relax towards it, as in the synthetic benchmark of DynGFN (Atanackovic et al.,
"DynGFN: Towards Bayesian inference of gene regulatory networks with GFlowNets", NeurIPS
2023). Unspliced RNA is placed at its quasi-steady state ``u = alpha sigmoid(.) / beta`` so
that the RNA-velocity identity ``velocity = beta u - gamma s`` (La Manno et al., Nature
2018) holds exactly for the noise-free state.

A knockout of gene ``g`` clamps ``x_g`` to zero. Its effect on the other genes is the
linear response of the steady state, ``dx_{-g} = -J_{-g,-g}^{-1} J_{-g,g} dx_g`` with the
Jacobian ``J`` at the fixed point; a double knockout clamps both genes. When neither gene
is upstream of the other, the double response is exactly the sum of the single ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-a))``, elementwise.

    Parameters
    ----------
    a : numpy.ndarray
        Any array.

    Returns
    -------
    numpy.ndarray
        Values in (0, 1), the shape of ``a``.
    """
    return 1.0 / (1.0 + np.exp(-a))


@dataclass
class GRN:
    """A network and its dynamics. All matrices are child-major (row = regulated gene).

    Parameters
    ----------
    genes : list of str
        Gene names.
    weights : numpy.ndarray
        ``(g, g)``; ``W[i, j]`` is the effect of gene ``j`` on ``dx_i/dt``.
    bias : numpy.ndarray
        ``(g,)`` bias inside the sigmoid.
    alpha : numpy.ndarray
        ``(g,)`` maximal transcription rates.
    gamma : numpy.ndarray
        ``(g,)`` decay rates.
    beta : numpy.ndarray
        ``(g,)`` splicing rates.
    modules : list of list of int
        Gene indices per module, the module's core first.
    cores : list of list of int
        The feedback cycle of each module.
    no_effect : list of int
        The planted no-effect genes.
    fixed_point : numpy.ndarray, optional
        ``(g,)`` stable steady state (set by :func:`make_grn`).
    """

    genes: list[str]
    weights: np.ndarray          # (g, g) W[i, j]: effect of gene j on dx_i/dt
    bias: np.ndarray             # (g,)
    alpha: np.ndarray            # (g,) maximal transcription rate
    gamma: np.ndarray            # (g,) decay rate
    beta: np.ndarray             # (g,) splicing rate
    modules: list[list[int]]     # gene indices per module; module k's core first
    cores: list[list[int]]       # the cycle of each module
    no_effect: list[int]         # planted no-effect genes
    fixed_point: np.ndarray = field(default=None)  # (g,)

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    @property
    def adjacency(self) -> np.ndarray:
        """``A[i, j] = 1`` iff gene ``j`` regulates the velocity of gene ``i``."""
        return (self.weights != 0).astype(np.int8)

    def drift(self, x: np.ndarray) -> np.ndarray:
        """``dx/dt`` for states ``x`` of shape ``(..., g)``.

        Parameters
        ----------
        x : numpy.ndarray
            States, ``(..., g)``.

        Returns
        -------
        numpy.ndarray
            The shape of ``x``.
        """
        return self.alpha * sigmoid(x @ self.weights.T + self.bias) - self.gamma * x

    def unspliced(self, x: np.ndarray) -> np.ndarray:
        """Quasi-steady-state unspliced RNA for spliced state ``x``.

        Parameters
        ----------
        x : numpy.ndarray
            States, ``(..., g)``.

        Returns
        -------
        numpy.ndarray
            The shape of ``x``.
        """
        return self.alpha * sigmoid(x @ self.weights.T + self.bias) / self.beta

    def jacobian(self, x: np.ndarray | None = None) -> np.ndarray:
        """The Jacobian ``d drift_i / d x_j`` at a state (default: the fixed point).

        Parameters
        ----------
        x : numpy.ndarray, optional
            ``(g,)`` state.

        Returns
        -------
        numpy.ndarray
            ``(g, g)``.
        """
        x = self.fixed_point if x is None else x
        s = sigmoid(self.weights @ x + self.bias)
        return (self.alpha * s * (1 - s))[:, None] * self.weights - np.diag(self.gamma)

    def ancestors(self) -> np.ndarray:
        """``R[i, j]`` is True when gene ``j`` is upstream of gene ``i`` (path j -> ... -> i).

        Returns
        -------
        numpy.ndarray of bool
            ``(g, g)``, computed once and kept.
        """
        cached = getattr(self, "_ancestors", None)
        if cached is not None:
            return cached
        a = self.adjacency.astype(bool)
        reach = a.copy()
        for _ in range(self.n_genes):
            new = reach | ((reach.astype(np.int32) @ a.astype(np.int32)) > 0)
            if (new == reach).all():
                break
            reach = new
        self._ancestors = reach
        return reach

    def knockout_response(self, targets: list[int] | tuple[int, ...]) -> np.ndarray:
        """Relative steady-state change ``dx / x*`` of every gene when ``targets`` are knocked
        out (clamped to zero); the targets themselves get ``-1``.

        Parameters
        ----------
        targets : sequence of int
            The knocked-out genes.

        Returns
        -------
        numpy.ndarray
            ``(g,)`` relative changes.
        """
        g = self.n_genes
        x0 = self.fixed_point
        ko = np.zeros(g, bool)
        ko[list(targets)] = True
        dx = np.zeros(g)
        dx[ko] = -x0[ko]
        if (~ko).any():
            jac = self.jacobian()
            rest = ~ko
            dx[rest] = -np.linalg.solve(jac[np.ix_(rest, rest)], jac[np.ix_(rest, ko)] @ dx[ko])
        return dx / x0


def make_grn(rng: np.random.Generator, module_sizes: list[int], n_no_effect: int,
             n_cross: int = 1, n_self_loops: int = 2) -> GRN:
    """Build a modular cyclic network (see the module docstring).

    Each module of size ``m`` has a core cycle of ``max(2, m - 2)`` genes and the rest are
    targets of the core. ``n_cross`` edges go from a target of one module to a target of
    another; ``n_self_loops`` targets activate themselves; the ``n_no_effect`` genes are
    leaves fed by cores (the first two of them form a 2-cycle).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws.
    module_sizes : list of int
        Genes per module.
    n_no_effect : int
        Planted no-effect genes, added after the modules.
    n_cross : int
        Edges between targets of different modules (none with fewer than two modules with
        targets).
    n_self_loops : int
        Targets that activate themselves.

    Returns
    -------
    GRN
        With its fixed point set.
    """
    n = sum(module_sizes) + n_no_effect
    genes = [f"G{i + 1:02d}" for i in range(n)]
    w = np.zeros((n, n))

    def weight(sign=None):
        s = rng.choice([-1.0, 1.0]) if sign is None else sign
        return s * rng.uniform(1.2, 2.2)

    modules, cores, targets_all = [], [], []
    start = 0
    for size in module_sizes:
        idx = list(range(start, start + size))
        start += size
        n_core = max(2, size - 2)
        core, targets = idx[:n_core], idx[n_core:]
        for k, c in enumerate(core):  # the feedback loop c0 -> c1 -> ... -> c0
            # a positive loop (a self-sustaining switch): losing any core gene lowers the
            # whole core, so the module's genes share the direction of their effect
            w[core[(k + 1) % n_core], c] = weight(1.0)
        for t in targets:
            parents = rng.choice(core, size=min(len(core), rng.integers(1, 3)), replace=False)
            for p in parents:
                w[t, p] = weight(1.0)  # targets follow the core: coherent module programs
        modules.append(idx)
        cores.append(core)
        targets_all.append(targets)
    no_effect = list(range(start, n))
    all_cores = [c for core in cores for c in core]
    for ne in no_effect:
        w[ne, rng.choice(all_cores)] = weight()
    if len(no_effect) >= 2:
        w[no_effect[0], no_effect[1]] = weight()
        w[no_effect[1], no_effect[0]] = weight()
    mods_with_targets = [k for k, t in enumerate(targets_all) if t]
    for _ in range(n_cross if len(mods_with_targets) >= 2 else 0):
        a, b = rng.choice(mods_with_targets, size=2, replace=False)
        w[rng.choice(targets_all[b]), rng.choice(targets_all[a])] = weight()
    flat_targets = [t for ts in targets_all for t in ts]
    for t in rng.choice(flat_targets, size=min(n_self_loops, len(flat_targets)), replace=False):
        w[t, t] = rng.uniform(0.8, 1.4)
    # keep sum_j |W_ij| * max sigmoid' (= 1/4) below 0.8 * gamma: a contraction
    gamma = rng.uniform(0.8, 1.2, n)
    row = 0.25 * np.abs(w).sum(1)
    w *= np.minimum(1.0, 0.8 * gamma / np.maximum(row, 1e-9))[:, None]
    bias = -0.5 * w.sum(1) + rng.normal(0, 0.3, n)
    grn = GRN(genes=genes, weights=w, bias=bias, alpha=rng.uniform(0.8, 1.5, n), gamma=gamma,
              beta=rng.uniform(1.5, 3.0, n), modules=modules, cores=cores, no_effect=no_effect)
    x = np.full(n, 0.5)
    for _ in range(2000):  # fixed point of a contraction: plain iteration converges
        x = grn.alpha * sigmoid(grn.weights @ x + grn.bias) / grn.gamma
    grn.fixed_point = x
    return grn


def sample_trajectories(grn: GRN, rng: np.random.Generator, n_trajectories: int,
                        cells_per_trajectory: int, t_max: float = 4.0, dt: float = 0.02,
                        noise: float = 0.02, *, starts: np.ndarray | None = None,
                        scale: np.ndarray | None = None,
                        unspliced: bool = True) -> dict[str, np.ndarray]:
    """Integrate the ODE from scattered starts and sample cells along each path.

    ``velocity`` is the exact drift at the true state; the observed ``spliced`` /
    ``unspliced`` carry Gaussian measurement noise. Cells are drawn at random times, denser
    early where the motion is.

    Parameters
    ----------
    grn : GRN
        The network.
    rng : numpy.random.Generator
        Source of the draws.
    n_trajectories : int
        Trajectories to integrate.
    cells_per_trajectory : int
        Cells sampled along each.
    t_max : float
        Length of each trajectory (simulation time).
    dt : float
        Integration step (midpoint rule).
    noise : float
        Measurement noise sd, relative to the fixed-point level (or to ``scale``).
    starts : numpy.ndarray, optional
        ``(n_trajectories, g)`` starts replacing the scattered ones (uniform between 0 and
        2.5 times the fixed point).
    scale : numpy.ndarray, optional
        Per-gene scale of the spliced measurement noise (default: the fixed point).
    unspliced : bool
        Return the unspliced layer (``False``: leave it out and draw no noise for it).

    Returns
    -------
    dict of numpy.ndarray
        ``spliced``, ``unspliced`` (when asked), ``velocity`` and ``state`` (the noise-free
        state), cells x genes; ``trajectory`` and ``time``, one per cell.
    """
    g = grn.n_genes
    steps = int(round(t_max / dt))
    x = (grn.fixed_point * rng.uniform(0.0, 2.5, (n_trajectories, g)) if starts is None
         else np.asarray(starts, np.float64))
    path = np.empty((steps + 1, n_trajectories, g))
    path[0] = x
    for s in range(steps):  # RK2 (midpoint)
        k1 = grn.drift(x)
        x = x + dt * grn.drift(x + 0.5 * dt * k1)
        path[s + 1] = x
    # cells are sampled at random times, denser early where the motion is
    times = np.sort(t_max * rng.beta(0.7, 1.3, (n_trajectories, cells_per_trajectory)), axis=1)
    step_idx = np.clip(np.round(times / dt).astype(int), 0, steps)
    traj = np.repeat(np.arange(n_trajectories), cells_per_trajectory)
    states = path[step_idx.ravel(), traj]
    vel = grn.drift(states)
    scale = grn.fixed_point if scale is None else scale
    out = {"spliced": states + rng.normal(0, noise, states.shape) * scale, "velocity": vel,
           "trajectory": traj, "time": step_idx.ravel() * dt, "state": states}
    if unspliced:
        uns = grn.unspliced(states)
        out["unspliced"] = uns + rng.normal(0, noise, uns.shape) * (grn.alpha / grn.beta)
    return out
