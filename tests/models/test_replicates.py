"""Replicate-level interaction tests and the input checks every test shares."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.interaction_scenarios import simulate_pairs
from workbench.models.interaction_tests import disjointness_test, equalize_groups
from workbench.models.replicates import (
    canonical_pairs, contrast_test, count_test, replicate_disjointness_test, simes,
)
from workbench.models.separability import separability_score


def _arrays(p=3, n=8, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(p, k, d)).astype(np.float32) for k in (2 * n, n, n, n)]


def test_nan_in_a_control_row_is_refused_everywhere():
    ctrl, a, b, ab = _arrays()
    ctrl[1, 3, 2] = np.nan
    with pytest.raises(ValidationError, match="ctrl.*NaN"):
        disjointness_test(ctrl[:, :8], a, b, ab, n_permutations=10)
    with pytest.raises(ValidationError, match="ctrl.*NaN"):
        separability_score(ctrl, a, b, ab, n_null=10, n_bootstrap=0)
    groups = [{"ctrl": ctrl[i], "a": a[i], "b": b[i], "ab": ab[i]} for i in range(3)]
    with pytest.raises(ValidationError, match="pair 1: condition 'ctrl'"):
        equalize_groups(groups, 4)
    ab[0, 0, 0] = np.inf
    units = [{c: np.zeros(len(x)) for c, x in g.items()} for g in groups]
    with pytest.raises(ValidationError, match="NaN/inf"):
        replicate_disjointness_test(groups, units)


def test_pair_names_same_gene_twice_and_both_orders():
    with pytest.raises(ValidationError, match="G1\\+G1.*same gene twice"):
        canonical_pairs(["G1+G1", "G1+G2"])
    pairs, report = canonical_pairs(["B+A", "A+B", "A+C"])
    assert set(pairs) == {"A+B", "A+C"}
    assert pairs["A+B"][2] == ["A+B", "B+A"]
    assert len(report) == 1 and "B+A" in report[0] and "merged" in report[0]


def test_simes_and_contrast_basics():
    assert simes(np.array([0.01, 0.5, 0.9])) == pytest.approx(0.03)
    assert np.isnan(simes(np.array([0.1, np.nan])))
    # a known shift of the double's unit means is recovered as the contrast
    rng = np.random.default_rng(0)
    cells = {c: rng.normal(size=(40, 1)) for c in ("ctrl", "a", "b")}
    cells["ab"] = rng.normal(size=(40, 1)) + 2.0
    units = {c: np.repeat(np.arange(4), 10) for c in cells}
    r = contrast_test(cells, units)
    assert r["contrast"][0] == pytest.approx(2.0, abs=0.7)
    assert r["p"][0] < 0.01 and r["df"] == 12 and r["units"]["ab"] == 4


def test_one_well_gives_a_status_not_a_p_value():
    g, u, c = simulate_pairs(3, n=20, wells=1, seed=0)
    r = replicate_disjointness_test(g, u)
    assert np.isnan(r.p_value).all()
    assert all("one replicate unit" in s and "add replicate wells" in s for s in r.status)
    assert np.isnan(count_test(c).p_value).all()


def _rate(p):
    p = np.asarray(p, float)
    return float(np.mean(p[np.isfinite(p)] < 0.05))


@pytest.mark.parametrize("map_", ["gaussian", "monotone"])
def test_wells_as_units_hold_the_level_where_cells_as_units_do_not(map_):
    # well sd a third of the cell sd, 2 wells per condition: the null rate of the
    # replicate-level test stays at or below alpha; treating every cell as its own
    # replicate (the bug this guards against) rejects far more often
    g, u, _ = simulate_pairs(150, map=map_, n=20, well_sd=1 / 3, seed=3)
    wells = replicate_disjointness_test(g, u)
    cells = replicate_disjointness_test(
        g, [{k: np.arange(len(v)).astype(str) for k, v in gi.items()} for gi in g])
    assert _rate(wells.p_value) <= 0.06
    assert _rate(cells.p_value) >= 0.15


def test_replicate_disjointness_finds_planted_interactions_with_replicates():
    null = replicate_disjointness_test(*simulate_pairs(60, n=100, wells=4, seed=2)[:2])
    assert _rate(null.p_value) <= 0.06
    for kind in ("buffering", "synergy", "new_property"):
        r = replicate_disjointness_test(*simulate_pairs(40, kind=kind, n=100, wells=4,
                                                        seed=2)[:2])
        assert _rate(r.p_value) >= 0.6, kind


def test_count_test_finds_synthetic_lethality_and_holds_its_level():
    _, _, c0 = simulate_pairs(150, n=20, well_sd=1 / 3, seed=4)
    null = count_test(c0)
    assert _rate(null.p_value) <= 0.09  # Monte Carlo: 150 pairs at level 0.05
    assert abs(np.median(null.statistic)) < 0.2
    # 2 wells of 10 seeded cells: a lethal double keeps about 1.4 cells per well
    _, _, c1 = simulate_pairs(40, kind="synthetic_lethal", n=20, seed=4)
    assert _rate(count_test(c1).p_value) >= 0.5
    _, _, c2 = simulate_pairs(40, kind="synthetic_lethal", n=100, seed=4)
    sl = count_test(c2)
    assert _rate(sl.p_value) >= 0.9
    assert np.median(sl.statistic) < -1.5  # a fifth survive: log2(0.2) = -2.3
    assert (sl.ci_low < sl.statistic).all() and (sl.statistic < sl.ci_high).all()


def test_disjointness_leaves_out_units_constant_in_controls():
    """A dead embedding unit (constant in the controls) that perturbations switch on in
    some cells made most separable pairs significant: every value off the constant shares
    one extreme normal score, so the squared-score feature is not additive."""
    from workbench.models.interaction_scenarios import simulate_pairs
    from workbench.models.replicates import replicate_disjointness_test

    groups, units, _ = simulate_pairs(30, n=40, seed=5)
    rng = np.random.default_rng(0)
    for g in groups:
        g["ctrl"] = np.concatenate([g["ctrl"], np.zeros((len(g["ctrl"]), 1), np.float32)], 1)
        for c in ("a", "b", "ab"):
            on = ((rng.random((len(g[c]), 1)) < 0.7) * (1.0 + rng.random((len(g[c]), 1)))
                  ).astype(np.float32)
            g[c] = np.concatenate([g[c], on], 1)
    r = replicate_disjointness_test(groups, units)
    assert r.params["constant_in_reference_left_out"] == 1 and r.params["dim"] == 6
    assert (r.p_value < 0.05).mean() <= 0.1  # separable, disjoint null pairs
    assert len(np.unique(np.round(r.p_value, 12))) > 20
