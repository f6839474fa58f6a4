"""Synthetic dynamical systems with known, deliberately unidentifiable regulatory graphs.

This rebuilds DynGFN's benchmark (method card section 1.8) with one change: the system
matrix ``A`` is **asymmetric**, so an implementation that confused "row = child" with
"row = parent" would score badly instead of passing by accident.

- ``p`` base variables follow ``dx/dt = A x`` (``"linear"``) or ``dx/dt = sigmoid(A x)``
  (``"sigmoid"``). Off-diagonal entries of ``A`` are kept independently with probability
  ``1 - sparsity``; the diagonal is shifted so that the system is stable, which gives every
  variable a self-loop.
- Negated copies ``y_v = -x_v`` of the first ``n_copies`` variables are appended. Any edge
  from ``x_v`` can be replaced by the same edge from ``y_v`` with an identical fit, so the
  data admit a whole set of equally good ("admissible") graphs: ``2^k`` of them, ``k`` the
  number of (row, copied parent) pairs.
- ``n_traj`` trajectories start at ``x0 ~ N(0, I)``; ``n_points`` states ``dt`` apart are
  kept per trajectory, with the exact drift (plus optional noise) as the velocity.

Orientation: ``adjacency[i, j] = 1`` means variable ``j`` enters the equation of ``i``.
"""

from __future__ import annotations

import numpy as np


def _drift(A: np.ndarray, x: np.ndarray, system: str) -> np.ndarray:
    z = x @ A.T
    if system == "linear":
        return z
    if system == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    raise ValueError(f"system must be 'linear' or 'sigmoid', got {system!r}")


def random_asymmetric_system(p: int = 17, sparsity: float = 0.9, seed: int = 13,
                             scale: tuple[float, float] = (0.1, 0.3)) -> np.ndarray:
    """A sparse asymmetric ``A`` with off-diagonal magnitudes in ``scale`` and a stable diagonal."""
    rng = np.random.default_rng(seed)
    keep = rng.random((p, p)) < (1.0 - sparsity)
    np.fill_diagonal(keep, False)
    values = rng.uniform(*scale, size=(p, p)) * rng.choice([-1.0, 1.0], size=(p, p))
    A = np.where(keep, values, 0.0)
    if np.allclose(A, A.T):  # vanishingly rare; make sure the benchmark is asymmetric
        A[0, 1], A[1, 0] = scale[1], 0.0
    abscissa = np.linalg.eigvals(A).real.max()
    A -= (abscissa + 0.01 + rng.uniform(0.0, 0.1, size=p)) * np.eye(p)
    return A


def simulate_unidentifiable_system(system: str = "linear", p: int = 17, n_copies: int = 3,
                                   sparsity: float = 0.9, n_traj: int = 1000,
                                   n_points: int = 2, dt: float = 0.05, noise: float = 0.0,
                                   seed: int = 13) -> dict:
    """Simulate the benchmark; returns arrays and the admissible-set description.

    Returns
    -------
    dict with ``x``, ``v`` ``(n_traj * n_points, p + n_copies)``, ``trajectory``
    ``(n,)``, ``A`` ``(p, p)``, ``adjacency`` ``(d, d)`` (one admissible graph: copies
    unused), ``groups`` ``(d,)`` (columns in one group are interchangeable), ``names``.
    """
    rng = np.random.default_rng(seed + 1)
    A = random_asymmetric_system(p, sparsity, seed)
    x = rng.normal(size=(n_traj, p))
    states, vels = [], []
    n_sub = 10
    for k in range(n_points):
        if k:
            h = dt / n_sub
            for _ in range(n_sub):  # RK4
                k1 = _drift(A, x, system)
                k2 = _drift(A, x + h / 2 * k1, system)
                k3 = _drift(A, x + h / 2 * k2, system)
                k4 = _drift(A, x + h * k3, system)
                x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(x.copy())
        vels.append(_drift(A, x, system))
    xs = np.stack(states, 1).reshape(-1, p)
    vs = np.stack(vels, 1).reshape(-1, p)
    if noise > 0:
        vs = vs + noise * vs.std(0) * rng.normal(size=vs.shape)
    copies = np.arange(n_copies)
    x_full = np.concatenate([xs, -xs[:, copies]], 1)
    v_full = np.concatenate([vs, -vs[:, copies]], 1)
    d = p + n_copies
    base = np.concatenate([np.arange(p), copies])
    adjacency = np.zeros((d, d), np.uint8)
    adjacency[:, :p] = (A[base] != 0)
    groups = base.copy()
    names = [f"x{j}" for j in range(p)] + [f"neg_x{j}" for j in copies]
    return {"x": x_full.astype(np.float32), "v": v_full.astype(np.float32),
            "trajectory": np.repeat(np.arange(n_traj), n_points), "A": A,
            "adjacency": adjacency, "groups": groups, "names": names}


def split_by_trajectory(trajectory: np.ndarray, fractions=(0.8, 0.1, 0.1), seed: int = 42):
    """Boolean masks (train, val, test) that keep each trajectory's points together."""
    ids = np.unique(trajectory)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    parts = [ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]]
    return tuple(np.isin(trajectory, part) for part in parts)
