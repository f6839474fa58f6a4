"""Synthetic screens for calibrating the interaction tests: latents, maps, wells, counts.

Each simulated pair holds four conditions (control, A, B, A+B). Every cell has a latent
state ``z`` of :data:`LATENT_DIM` independent coordinates, ``N(0, 1)`` in controls. A moves
coordinate 0 (a shift), B moves coordinate 1 (a shift and a wider spread): on *disjoint*
latent coordinates, so the pair is separable in the sense of Xu et al. (arXiv 2409.07594)
and, when the observation map acts coordinate by coordinate, also disjoint in the
observation. The observation is ``x = g(z + w)``:

- ``map="gaussian"``: ``g`` the identity (the Gaussian world the first tests were built in);
- ``map="monotone"``: a different monotone nonlinear function per coordinate
  (``sinh(0.8 z)`` and ``exp(0.5 z)`` alternately), so densities are skewed and
  heavy-tailed but coordinates stay disjoint;
- ``map="mixing"``: a fixed random network ``x = W0 z + W2 tanh(W1 z)`` into
  :data:`MIXED_DIM` coordinates (injective in practice: the linear part has full column
  rank and dominates). Latent-disjoint effects then overlap in every observed coordinate:
  still separable, no longer disjoint in the observation.

``w`` is a per-well offset of sd ``well_sd`` (in cell-sd units) shared by the cells of one
well; each condition is seeded in ``wells`` wells (controls in ``2 * wells``) with ``n``
cells in all (controls ``2 n``). Cell counts per well are Poisson around ``n / wells``
times the condition's fitness (A 0.8, B 0.9, the double their product under the null)
times a lognormal well factor (sd ``count_sd``).

Interaction kinds (``kind``): ``"null"`` (additive, disjoint), ``"buffering"`` (the
double shows only A's effect), ``"synergy"`` (both shifts 1.8 times as large),
``"synthetic_lethal"`` (a fifth of the expected cells survive, shifted on coordinate 2 and
more variable) and ``"new_property"`` (the double also shifts coordinate 2, which neither
single moves).
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_pairs", "MAPS", "KINDS", "LATENT_DIM", "MIXED_DIM"]

LATENT_DIM = 6
MIXED_DIM = 8
MAPS = ("gaussian", "monotone", "mixing")
KINDS = ("null", "buffering", "synergy", "synthetic_lethal", "new_property")
_FITNESS = {"ctrl": 1.0, "a": 0.8, "b": 0.9}


def _mixing_weights(seed: int = 12345):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(LATENT_DIM, MIXED_DIM)) / np.sqrt(LATENT_DIM)
    w1 = rng.normal(size=(LATENT_DIM, MIXED_DIM)) * 0.8
    w2 = rng.normal(size=(MIXED_DIM, MIXED_DIM)) / np.sqrt(MIXED_DIM)
    return w0, w1, w2


def observe(z: np.ndarray, map: str) -> np.ndarray:
    """The observation ``g(z)`` of latent states.

    Parameters
    ----------
    z : ndarray
        ``(n, LATENT_DIM)`` latent states.
    map : str
        One of :data:`MAPS`: ``"gaussian"`` (the identity), ``"monotone"`` (a monotone
        function per coordinate) or ``"mixing"`` (a fixed random network).

    Returns
    -------
    ndarray
        ``(n, LATENT_DIM)`` observations, or ``(n, MIXED_DIM)`` for ``"mixing"``.
    """
    if map == "gaussian":
        return z.copy()
    if map == "monotone":
        x = np.empty_like(z)
        x[:, 0::2] = np.sinh(0.8 * z[:, 0::2])
        x[:, 1::2] = np.exp(0.5 * z[:, 1::2])
        return x
    if map == "mixing":
        w0, w1, w2 = _mixing_weights()
        return z @ w0 + np.tanh(z @ w1) @ w2
    raise ValueError(f"unknown map {map!r}; use one of {MAPS}")


def _condition(cond: str, kind: str):
    """(mean shift, sd per coordinate, fitness) of a condition."""
    shift, sd = np.zeros(LATENT_DIM), np.ones(LATENT_DIM)
    has_a = cond in ("a", "ab")
    has_b = cond in ("b", "ab")
    gain = 1.8 if (kind == "synergy" and cond == "ab") else 1.0
    if has_a:
        shift[0] = 1.0 * gain
    if has_b and not (kind == "buffering" and cond == "ab"):
        shift[1] = 1.0 * gain
        sd[1] = 1.5
    fit = _FITNESS.get(cond, _FITNESS["a"] * _FITNESS["b"])
    if cond == "ab" and kind == "synthetic_lethal":
        fit *= 0.2
        shift[2] = -0.8
        sd[[0, 1, 2]] *= 1.3
    if cond == "ab" and kind == "new_property":
        shift[2] = 1.0
    return shift, sd, fit


def simulate_pairs(n_pairs: int, *, kind: str = "null", map: str = "gaussian", n: int = 20,
                   wells: int = 2, well_sd: float = 0.0, count_sd: float = 0.2,
                   seed: int = 0):
    """Draw ``n_pairs`` independent pairs of one scenario.

    Parameters
    ----------
    n_pairs : int
        Number of pairs, all of the same scenario.
    kind : str
        One of :data:`KINDS`: ``"null"`` (additive, disjoint), ``"buffering"``,
        ``"synergy"``, ``"synthetic_lethal"`` or ``"new_property"`` (see the module
        docstring).
    map : str
        One of :data:`MAPS`, the observation map ``g`` (see :func:`observe`).
    n : int
        Cells seeded per single or double condition (controls ``2 n``); the cells imaged
        are a Poisson draw around it scaled by the condition's fitness.
    wells : int
        Wells per single or double condition (controls ``2 * wells``).
    well_sd : float
        Sd of the per-well latent offset, in cell-sd units; 0 leaves wells alike.
    count_sd : float
        Sd of the lognormal per-well factor of the cell counts.
    seed : int
        Seed of every draw (the mixing map is fixed and does not depend on it).

    Returns
    -------
    groups : list of dict of str to ndarray
        Per pair, condition -> ``(n_c, d)`` float32 observations.
    units : list of dict of str to ndarray
        Per pair, condition -> ``(n_c,)`` well labels (``"ctrl0"``, ``"a1"``, ...).
    counts : list of dict of str to ndarray
        Per pair, condition -> ``(wells_c,)`` cells imaged per well (the survivors).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")
    rng = np.random.default_rng(seed)
    groups, units, counts = [], [], []
    for _ in range(n_pairs):
        g, u, c = {}, {}, {}
        for cond in ("ctrl", "a", "b", "ab"):
            nw = 2 * wells if cond == "ctrl" else wells
            seeded = 2 * n if cond == "ctrl" else n
            shift, sd, fit = _condition(cond, kind)
            lam = seeded / nw * fit * np.exp(rng.normal(0, count_sd, nw) - count_sd ** 2 / 2)
            k = rng.poisson(lam)
            xs, us = [], []
            for w in range(nw):
                off = rng.normal(0, well_sd, LATENT_DIM) if well_sd > 0 else 0.0
                z = shift + off + sd * rng.standard_normal((k[w], LATENT_DIM))
                xs.append(observe(z, map))
                us.append(np.full(k[w], f"{cond}{w}"))
            g[cond] = np.concatenate(xs).astype(np.float32)
            u[cond] = np.concatenate(us)
            c[cond] = k
        groups.append(g)
        units.append(u)
        counts.append(c)
    return groups, units, counts
