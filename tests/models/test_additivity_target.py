"""The additivity test's pooled-correlation shrinkage target at embedding-like widths."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.additivity import additivity_test


def _world(n_pairs, d=24, cells=12, wells=2, norm=0.0, seed=0):
    """Pairs in ``d`` features with five strong shared factors (an embedding's correlation),
    a well effect of sd 0.33 and, with ``norm`` > 0, an interaction of that norm in a random
    direction (mostly outside the factors)."""
    rng = np.random.default_rng(seed)
    load = rng.normal(size=(d, 5)) * 1.5
    groups, units = [], []
    for _ in range(n_pairs):
        ea, eb = rng.normal(size=d) * 0.5, rng.normal(size=d) * 0.5
        inter = rng.normal(size=d)
        inter *= norm / np.linalg.norm(inter)
        g, u = {}, {}
        for c, mu, nw in (("ctrl", 0.0, 2 * wells), ("a", ea, wells), ("b", eb, wells),
                          ("ab", ea + eb + inter, wells)):
            xs = [mu + rng.normal(size=d) * 0.33 + rng.normal(size=(cells, 5)) @ load.T
                  + rng.normal(size=(cells, d)) for _ in range(nw)]
            g[c] = np.vstack(xs)
            u[c] = np.repeat([f"w{w}" for w in range(nw)], cells)
        groups.append(g)
        units.append(u)
    return groups, units


@pytest.fixture(scope="module")
def wide():
    return _world(30, seed=1), _world(12, norm=3.0, seed=2)


def test_pooled_target_holds_its_level_and_finds_more_than_the_diagonal(wide):
    (g0, u0), (g1, u1) = wide
    null = additivity_test(g0, u0, n_bootstrap=100, seed=0, device="cpu", target="pooled")
    assert null.params["shrinkage_target"] == "pooled"
    # at most 3 of 30 null pairs (a level-0.05 test exceeds that with probability ~0.06)
    assert float(np.mean(null.p_value < 0.05)) <= 0.1
    assert 0.3 < float(np.mean(null.p_value)) < 0.7
    pooled = additivity_test(g1, u1, n_bootstrap=100, seed=0, device="cpu", target="pooled")
    diag = additivity_test(g1, u1, n_bootstrap=100, seed=0, device="cpu", target="diagonal")
    # shrinking towards the diagonal inflates the weak directions the interaction lies in
    assert float(np.mean(pooled.p_value < 0.05)) >= float(np.mean(diag.p_value < 0.05)) + 0.2
    # the effect size does not depend on the target (it is the plain debiased norm)
    np.testing.assert_allclose(pooled.effect_size, diag.effect_size, rtol=0.2)


def test_unknown_target_is_named():
    g, u = _world(1, d=4, cells=5)
    with pytest.raises(ValidationError, match="target='mean' is not a shrinkage target"):
        additivity_test(g, u, n_bootstrap=10, device="cpu", target="mean")
