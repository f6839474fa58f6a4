"""The viability (cell-count) test: its variance model and its null on the demo's counts."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.count_scenarios import simulate_counts
from workbench.models.replicates import count_test, log_count_variance


def _rate(p):
    p = np.asarray(p, float)
    return float(np.mean(p[np.isfinite(p)] < 0.05))


def test_log_count_variance_is_that_of_poisson_draws():
    rng = np.random.default_rng(0)
    lam = np.array([2.0, 8.0, 30.0])
    got = log_count_variance(lam, pseudo=0.5)
    for m, v in zip(lam, got):
        emp = np.var(np.log2(rng.poisson(m, 200_000) + 0.5))
        assert v == pytest.approx(emp, rel=0.03), m
    assert log_count_variance(0.0)[0] == 0.0
    # fewer cells, noisier log counts: what pooling one variance over conditions ignores
    assert got[0] > got[1] > got[2]


def test_count_test_holds_its_level_when_a_single_keeps_a_quarter_of_the_cells():
    # the realistic demo's design: 32 cells a well, 4 wells a condition, 32 control wells
    counts = simulate_counts(600, fitness_b=0.25, cells_per_well=32, wells=4,
                             control_wells=32, seed=3)
    assert _rate(count_test(counts).p_value) <= 0.07
    # the former test pools one variance over conditions dominated by the controls' wells
    assert _rate(count_test(counts, variance="pooled").p_value) >= 0.10
    # and the new variance still sees a double keeping a third of the singles' product
    lethal = simulate_counts(100, fitness_b=0.25, cells_per_well=32, wells=4,
                             control_wells=32, lethal=0.33, seed=4)
    r = count_test(lethal)
    assert _rate(r.p_value) >= 0.6
    assert np.median(r.statistic) == pytest.approx(np.log2(0.33), abs=0.3)


def test_count_test_rejects_an_unknown_variance_model_and_nan_counts():
    counts = simulate_counts(2, seed=0)
    with pytest.raises(ValidationError, match="variance"):
        count_test(counts, variance="welch")
    counts[0]["ab"] = np.array([3.0, np.nan, 4.0, 5.0])
    with pytest.raises(ValidationError, match="NaN"):
        count_test(counts)


def test_the_demo_layout_draws_additive_pairs_at_the_tests_null():
    """The simulator's count model is the viability test's null for its additive pairs:
    their log2 count contrast centres on 0, the lethal doubles' well below."""
    from workbench.data.simulate.screen import layout
    from workbench.data.simulate.world import make_world

    world = make_world(1, "realistic")  # singles here change the count (G21 keeps ~0.3)
    morph = world.morphology
    pairs = [(world.genes[a], world.genes[b], world.pair_name(a, b), morph.pair_type(a, b))
             for a, b in world.doubles]
    additive = [p for p in pairs if p[3].startswith("additive")]
    lethal = [p for p in pairs if p[3] == "synthetic_lethal"]
    rng = np.random.default_rng(0)
    stats_add, stats_sl, fitness = [], [], []
    for _ in range(12):
        obs, _ = layout(world, rng)
        cpw = obs.groupby(["perturbation", "plate", "well"], observed=True).size()
        cnt = {c: cpw.loc[c].to_numpy() for c in cpw.index.get_level_values(0).unique()}
        for group, out in ((additive, stats_add), (lethal, stats_sl)):
            r = count_test([{"ctrl": cnt["control"], "a": cnt[a], "b": cnt[b], "ab": cnt[ab]}
                            for a, b, ab, _ in group])
            out.append(r.statistic)
        fitness.append(min(cnt[b].mean() for _, b, _, _ in additive) / cnt["control"].mean())
    assert np.min(fitness) < 0.5  # the check covers a single that changes the count
    assert abs(np.mean(stats_add)) < 0.08
    assert np.mean(stats_sl) < -1.5
