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
    """A sparse asymmetric ``A`` with off-diagonal magnitudes in ``scale`` and a stable diagonal.

    Parameters
    ----------
    p : int
        Number of variables.
    sparsity : float
        Probability that an off-diagonal entry is zero.
    seed : int
        Seed of the entries.
    scale : tuple of float
        Range ``(low, high)`` of the off-diagonal magnitudes; signs are random.

    Returns
    -------
    numpy.ndarray
        ``(p, p)`` matrix whose eigenvalues all have a negative real part (the diagonal is
        shifted by the spectral abscissa plus 0.01 to 0.11).
    """
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

    Parameters
    ----------
    system : str
        ``"linear"`` (``dx/dt = A x``) or ``"sigmoid"`` (``dx/dt = sigmoid(A x)``).
    p : int
        Number of base variables.
    n_copies : int
        Negated copies appended, of the first ``n_copies`` variables.
    sparsity : float
        Probability that an off-diagonal entry of ``A`` is zero.
    n_traj : int
        Trajectories, each from ``x0 ~ N(0, I)``.
    n_points : int
        States kept per trajectory, ``dt`` apart (integrated by RK4 in ten sub-steps).
    dt : float
        Time between kept states.
    noise : float
        Gaussian velocity noise, in velocity sds per variable (0: exact drift).
    seed : int
        Seed of ``A`` (``seed``) and of the states and noise (``seed + 1``).

    Returns
    -------
    dict
        ``x``, ``v`` ``(n_traj * n_points, p + n_copies)`` float32, ``trajectory``
        ``(n,)``, ``A`` ``(p, p)``, ``adjacency`` ``(d, d)`` (one admissible graph: copies
        unused), ``groups`` ``(d,)`` (columns in one group are interchangeable) and
        ``names``.
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
    """Boolean masks (train, val, test) that keep each trajectory's points together.

    Parameters
    ----------
    trajectory : numpy.ndarray
        Trajectory label of each point.
    fractions : tuple of float
        Shares of the trajectories for train and validation (rounded); the test part
        gets the rest, so the third entry is not read.
    seed : int
        Seed of the shuffle of trajectories.

    Returns
    -------
    tuple of numpy.ndarray
        Three boolean masks over the points: train, validation, test.
    """
    ids = np.unique(trajectory)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    parts = [ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]]
    return tuple(np.isin(trajectory, part) for part in parts)


# ------------------------------------------------- harder systems for the headline benchmark
def simulate_panel(system: str = "linear", p: int = 10, hidden: int = 0, n_traj: int = 200,
                   n_points: int = 2, noise: float = 0.0, sparsity: float = 0.8,
                   seed: int = 13) -> dict:
    """A sparse system of ``p + hidden`` variables of which only the first ``p`` are observed.

    Same dynamics as :func:`simulate_unidentifiable_system` without copies; ``noise`` adds
    Gaussian velocity noise of that many velocity sds per gene, and the ``hidden``
    variables act on the observed ones without being measured (a partially observed panel:
    their effects show up as confounding between observed genes). ``adjacency`` holds the
    edges among observed variables, self-loops included (the stable diagonal).

    Parameters
    ----------
    system : str
        ``"linear"`` (``dx/dt = A x``) or ``"sigmoid"`` (``dx/dt = sigmoid(A x)``).
    p : int
        Observed variables.
    hidden : int
        Unobserved variables, simulated and then dropped.
    n_traj : int
        Trajectories.
    n_points : int
        States kept per trajectory.
    noise : float
        Gaussian velocity noise, in velocity sds per variable.
    sparsity : float
        Probability that an off-diagonal entry of ``A`` is zero.
    seed : int
        Seed of the system and the states.

    Returns
    -------
    dict
        ``x``, ``v`` (points x ``p``), ``trajectory``, ``adjacency`` ``(p, p)`` and
        ``names``.
    """
    sim = simulate_unidentifiable_system(system, p=p + hidden, n_copies=0, sparsity=sparsity,
                                         n_traj=n_traj, n_points=n_points, noise=noise,
                                         seed=seed)
    keep = np.arange(p)
    return {"x": sim["x"][:, keep], "v": sim["v"][:, keep], "trajectory": sim["trajectory"],
            "adjacency": sim["adjacency"][np.ix_(keep, keep)],
            "names": [f"g{j}" for j in keep]}


def simulate_kinetic(p: int = 10, n_traj: int = 30, cells_per_traj: int = 40,
                     t_max: float = 6.0, library: float = 30.0, seed: int = 13) -> dict:
    """Unspliced and spliced counts from a transcription/splicing model driven by a GRN.

    Per gene ``i`` (La Manno et al. 2018; Bergen et al. 2020)::

        du_i/dt = alpha_i(s) - beta u_i,      ds_i/dt = beta u_i - gamma_i s_i
        alpha_i(s) = a / (1 + exp(-(sum_j W_ij (s_j / s*_j - 1) + b_i)))

    with ``beta = 1``, ``gamma_i`` in ``[0.3, 0.8]``, sparse signed ``W`` (about two
    regulators per gene, no self-regulation) and ``s*`` the level at ``alpha = a / 2``.
    Trajectories start from scattered states, cells are sampled at random times, and the
    observed layers are Poisson counts with mean ``library * u`` and ``library * s``. No
    velocity is returned: it has to come from the steady-state path
    (:func:`workbench.tools.velocity.steady_state_velocity`). ``adjacency[i, j] = 1`` where
    ``s_j`` drives ``alpha_i``; the diagonal is set (``gamma_i s_i`` enters ``ds_i/dt``).

    Parameters
    ----------
    p : int
        Genes.
    n_traj : int
        Trajectories.
    cells_per_traj : int
        Cells sampled per trajectory, at random times.
    t_max : float
        Length of each trajectory (integrated in steps of 0.02).
    library : float
        Count scale: the Poisson means are ``library * u`` and ``library * s``.
    seed : int
        Seed of the system, the paths, the sampling and the counts.

    Returns
    -------
    dict
        ``unspliced`` and ``spliced`` counts (cells x genes), ``true_velocity`` (the exact
        ``ds/dt`` of each cell), ``trajectory``, ``W``, ``gamma``, ``adjacency`` ``(p, p)``
        and ``names``.
    """
    rng = np.random.default_rng(seed)
    keep = rng.random((p, p)) < 2.0 / (p - 1)
    np.fill_diagonal(keep, False)
    W = np.where(keep, rng.uniform(1.5, 3.0, (p, p)) * rng.choice([-1.0, 1.0], (p, p)), 0.0)
    b = rng.normal(0.0, 0.5, p)
    a, beta = 1.0, 1.0
    gamma = rng.uniform(0.3, 0.8, p)
    s_ref = 0.5 * a / gamma

    def alpha(s):
        return a / (1.0 + np.exp(-((s / s_ref - 1.0) @ W.T + b)))

    dt = 0.02
    steps = int(round(t_max / dt))
    s = s_ref * rng.uniform(0.0, 2.0, (n_traj, p))
    u = gamma * s * rng.uniform(0.0, 2.0, (n_traj, p))
    path_u, path_s = np.empty((steps + 1, n_traj, p)), np.empty((steps + 1, n_traj, p))
    path_u[0], path_s[0] = u, s
    for k in range(steps):  # explicit midpoint
        du, ds = alpha(s) - beta * u, beta * u - gamma * s
        um, sm = u + 0.5 * dt * du, s + 0.5 * dt * ds
        u = u + dt * (alpha(sm) - beta * um)
        s = s + dt * (beta * um - gamma * sm)
        path_u[k + 1], path_s[k + 1] = u, s
    times = rng.integers(0, steps + 1, (n_traj, cells_per_traj))
    traj = np.repeat(np.arange(n_traj), cells_per_traj)
    uu, ss = path_u[times.ravel(), traj], path_s[times.ravel(), traj]
    adjacency = (W != 0).astype(np.uint8) | np.eye(p, dtype=np.uint8)
    return {"unspliced": rng.poisson(library * uu).astype(np.float64),
            "spliced": rng.poisson(library * ss).astype(np.float64),
            "true_velocity": beta * uu - gamma * ss, "trajectory": traj, "W": W,
            "gamma": gamma, "adjacency": adjacency, "names": [f"k{j}" for j in range(p)]}
