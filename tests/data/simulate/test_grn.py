"""The network: cyclic, asymmetric, stable, and its velocity follows its dynamics."""

from __future__ import annotations

import numpy as np

from workbench.data.simulate import make_world
from workbench.data.simulate.grn import sample_trajectories, sigmoid


def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_network_is_cyclic_asymmetric_with_some_self_loops(realistic_world):
    grn = realistic_world.grn
    a = grn.adjacency
    assert 20 <= grn.n_genes <= 30
    assert not np.array_equal(a, a.T)
    off = a - np.diag(np.diag(a))
    # a directed cycle: some gene reaches itself through other genes
    reach = off.astype(bool)
    for _ in range(grn.n_genes):
        reach = reach | ((reach.astype(int) @ off) > 0)
    assert np.diag(reach).sum() >= 6  # every module core is a feedback loop
    assert 1 <= np.diag(a).sum() < grn.n_genes
    # stable fixed point: all Jacobian eigenvalues in the left half plane
    assert np.linalg.eigvals(grn.jacobian()).real.max() < 0
    assert np.allclose(grn.drift(grn.fixed_point), 0, atol=1e-8)


def test_no_effect_genes_are_upstream_of_nothing_with_an_effect(realistic_world):
    grn, m = realistic_world.grn, realistic_world.morphology
    anc = grn.ancestors()
    for g in grn.no_effect:
        assert np.all(m.programs[g] == 0)
        downstream = np.flatnonzero(anc[:, g])
        assert all(np.all(m.programs[d] == 0) for d in downstream)
        assert np.all(m.effects[g] == 0)


def test_velocity_is_the_drift_and_matches_splicing(quick_world):
    grn = quick_world.grn
    d = sample_trajectories(grn, np.random.default_rng(0), 5, 30)
    assert np.allclose(d["velocity"], grn.drift(d["state"]))
    u = grn.alpha * sigmoid(d["state"] @ grn.weights.T + grn.bias) / grn.beta
    assert np.allclose(d["velocity"], grn.beta * u - grn.gamma * d["state"])
    assert len(np.unique(d["trajectory"])) == 5


def test_regressing_velocity_on_expression_finds_the_parents(realistic_world):
    """Per gene, least squares of velocity on all expressions: true parents get larger
    coefficients than non-parents (AUROC well above the 0.5 of chance)."""
    grn = realistic_world.grn
    d = sample_trajectories(grn, np.random.default_rng(1), 40, 60)
    x = np.column_stack([d["spliced"], np.ones(len(d["spliced"]))])
    coef, *_ = np.linalg.lstsq(x, d["velocity"], rcond=None)
    w = np.abs(coef[:-1].T)  # w[i, j]: |effect of x_j on v_i|
    off = ~np.eye(grn.n_genes, dtype=bool)
    auc = _auroc(w[off], grn.adjacency.astype(bool)[off])
    assert auc > 0.85, auc


def test_knockout_of_unlinked_genes_is_additive_and_linked_is_not(realistic_world):
    grn = realistic_world.grn
    anc = grn.ancestors()
    n = grn.n_genes
    unlinked = [(a, b) for a in range(n) for b in range(a + 1, n)
                if not anc[a, b] and not anc[b, a]]
    linked = [(a, b) for a in range(n) for b in range(a + 1, n) if anc[a, b] and anc[b, a]]
    assert unlinked and linked
    for a, b in unlinked[:20]:
        single = grn.knockout_response([a]) + grn.knockout_response([b])
        assert np.allclose(grn.knockout_response([a, b]), single)
    devs = [np.abs(grn.knockout_response([a, b]) - grn.knockout_response([a])
                   - grn.knockout_response([b])).max() for a, b in linked]
    assert max(devs) > 0.1


def test_world_is_deterministic_per_seed():
    a, b, c = make_world(3, "quick"), make_world(3, "quick"), make_world(4, "quick")
    assert np.array_equal(a.grn.weights, b.grn.weights)
    assert a.ground_truth() == b.ground_truth()
    assert not np.array_equal(a.grn.weights, c.grn.weights)
