"""One call per pair from several readouts: the Bonferroni minimum of their p-values.

A double perturbation can interact in two ways a screen sees: its cells look different from
what the singles predict (the morphology readout, :func:`workbench.models.additivity.
additivity_test`), or too few (or too many) of them survive (the viability readout,
:func:`workbench.models.replicates.count_test`). Either departure is an interaction, so the
null of the combined call is the intersection "additive in the profile *and* in the cell
count", and the call is

    p = min(1, k * min(p_1, ..., p_k)),

with ``k`` the number of readouts combined (fixed by the call, not by how many gave a
value for the pair). Why this combination:

- it is valid under *any* dependence between the readouts (``P(k min p <= a) <= sum_i
  P(p_i <= a / k) = a`` by the union bound). The two readouts are computed from the same
  wells (the cell count of a well sets the weight of its mean in the morphology contrast),
  so their dependence is real and unknown; Fisher's or Stouffer's combination assumes
  independence, and the Cauchy combination (Liu & Xie 2020, J. Am. Stat. Assoc. 115, 393)
  is valid under dependence only in the tail, asymptotically;
- it loses little when one readout carries the signal, which is the demo's pattern
  (synthetic lethality shows in the count, synergy in the morphology): the price is the
  factor ``k`` on the better p-value;
- a readout that gave no p-value for the pair (NaN: one well, no cells left) does not
  lower ``k``: which readouts exist can depend on the data (a lethal double loses its
  cells), and dropping the factor there would spend the level twice.

The q-values across pairs are Benjamini-Hochberg on the combined p (valid under positive
dependence between pairs; Benjamini & Yekutieli 2001, Ann. Stat. 29, 1165).
"""

from __future__ import annotations

import numpy as np

from workbench.errors import ValidationError

__all__ = ["bonferroni_min"]


def bonferroni_min(p_values) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``min(1, k * min p)`` over the ``k`` columns of ``p_values``.

    Parameters
    ----------
    p_values : ``(n_pairs, k)`` array, one column per readout; NaN where a readout gave no
        p-value for the pair (it still counts in ``k``).

    Returns
    -------
    p : ``(n_pairs,)`` combined p-values; NaN where no readout gave one.
    which : ``(n_pairs,)`` column index of the smallest p-value (-1 where none).
    """
    p = np.asarray(p_values, float)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValidationError(f"p_values has shape {p.shape}; the call needs one row per "
                              "pair and one column per readout.",
                              "pass a (n_pairs, k) array, NaN where a readout gave none.")
    bad = np.isfinite(p) & ((p < 0) | (p > 1))
    if bad.any() or np.isinf(p).any():
        raise ValidationError("p_values holds values outside [0, 1] (or inf), which are not "
                              "p-values.", "pass p-values in [0, 1], NaN where none.")
    k = p.shape[1]
    have = np.isfinite(p).any(1)
    filled = np.where(np.isfinite(p), p, np.inf)
    which = np.where(have, filled.argmin(1), -1)
    out = np.full(len(p), np.nan)
    out[have] = np.minimum(1.0, k * filled[have].min(1))
    return out, which
