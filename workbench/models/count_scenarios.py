"""Synthetic cell counts for calibrating the viability test: screens whose singles change
how many cells a well holds.

The scenarios of :mod:`workbench.models.interaction_scenarios` give every condition nearly
the same count (fitness 0.8 and 0.9), which is also what the quick demo world does (its
modules leave ``cell_count`` alone: every condition but a lethal double expects 9 cells a
well). Real screens, and the realistic demo world, hold essential genes that keep a quarter
of the cells and others that let cells crowd: then the log count of a well is noisier in
the conditions with few cells than in the controls, and a test that pools one variance
over the four conditions (whose controls have most of the wells) underestimates the spread
of the contrast.

:func:`simulate_counts` draws, per pair, cells per well for control, A, B and A+B:
Poisson around ``cells_per_well`` times the condition's fitness times a lognormal well
factor of sd ``count_sd``. The double's fitness is the product of the singles' under the
null (Bliss independence, the viability test's null) and ``lethal`` times that product for
a synthetic-lethal pair. As in the demo's screen layout, a well holds at least one cell
when ``floor_one`` (only wells with cells are seen when cells are what is recorded).
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError

__all__ = ["simulate_counts"]


def simulate_counts(n_pairs: int, *, fitness_a: float = 1.0, fitness_b: float = 0.25,
                    cells_per_well: float = 32.0, wells: int = 4, control_wells: int = 32,
                    count_sd: float = 0.0, lethal: float = 1.0, floor_one: bool = True,
                    seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Cells per well of control, A, B and A+B for ``n_pairs`` independent pairs.

    Parameters
    ----------
    n_pairs : int
        Pairs drawn.
    fitness_a, fitness_b : float
        Expected cells of a single's well relative to a control well (0.25: an essential
        gene keeping a quarter of the cells; 2: crowding).
    cells_per_well : float
        Expected cells in a control well.
    wells : int
        Wells of each single and of the double.
    control_wells : int
        Control wells the pair is compared with.
    count_sd : float
        sd of the lognormal well factor (well-to-well overdispersion; 0: Poisson only).
    lethal : float
        The double's fitness relative to the product of the singles' (1: the null).
    floor_one : bool
        Give every well at least one cell, as the demo's layout does.
    seed : int
        Seed of the draws.

    Returns
    -------
    list of dict
        Per pair, condition (``ctrl``, ``a``, ``b``, ``ab``) -> ``(wells_c,)`` counts, the
        input of :func:`workbench.models.replicates.count_test`.
    """
    if min(fitness_a, fitness_b, cells_per_well, lethal) <= 0 or min(wells, control_wells) < 1:
        raise ValidationError("fitness, cells_per_well and lethal must be positive and the "
                              "well numbers at least 1.",
                              "pass e.g. fitness_b=0.25, cells_per_well=32, wells=4.")
    rng = np.random.default_rng(seed)
    fit = {"ctrl": 1.0, "a": fitness_a, "b": fitness_b, "ab": fitness_a * fitness_b * lethal}
    nw = {"ctrl": control_wells, "a": wells, "b": wells, "ab": wells}
    out = []
    for _ in range(n_pairs):
        pair = {}
        for c in ("ctrl", "a", "b", "ab"):
            factor = np.exp(rng.normal(0.0, count_sd, nw[c]) - count_sd ** 2 / 2)
            k = rng.poisson(cells_per_well * fit[c] * factor)
            pair[c] = np.maximum(k, 1) if floor_one else k
        out.append(pair)
    return out
