"""The GRN knock-out planner: its information gain, its batches, the Study path and the replay."""

import math

import numpy as np
import pytest

from workbench.cli import main
from workbench.errors import ValidationError
from workbench.models.knockout_eig import KnockoutScorer, greedy_batch, mixture_information
from workbench.testing import copy_study
from workbench.tools.design import propose
from workbench.tools.design.knockout import plan_knockouts
from workbench.tools.design.knockout_campaign import (knockout_campaign, knockout_cells,
                                                      refit_posterior)


def two_graphs(d=4, w=1.0):
    """Two equally weighted graphs: they differ only in edge 0 -> 1 (weight ``w``); both
    hold 2 -> 3 with the same weight."""
    s = np.zeros((2, d, d), np.uint8)
    wt = np.zeros((2, d, d))
    s[0, 1, 0], wt[0, 1, 0] = 1, w
    s[:, 3, 2], wt[:, 3, 2] = 1, 0.7
    return s, wt


def quadrature_information(delta, sd):
    """I(y; c) for y ~ N(0, sd^2) or N(delta, sd^2), each with weight 1/2, by a fine grid."""
    y = np.linspace(-10 * sd, delta + 10 * sd, 200001)
    p0 = np.exp(-0.5 * (y / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    p1 = np.exp(-0.5 * ((y - delta) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    m = 0.5 * (p0 + p1)
    h_mix = -np.trapezoid(m * np.log(np.maximum(m, 1e-300)), y)
    return h_mix - 0.5 * math.log(2 * math.pi * math.e * sd ** 2)


@pytest.mark.parametrize("delta", [0.5, 1.5, 4.0])
def test_mixture_information_matches_quadrature(delta):
    eps = np.random.default_rng(0).standard_normal((20000, 1))
    got = mixture_information(np.array([[0.0], [delta]]), np.array([0.5, 0.5]), 1.0, eps)
    assert got == pytest.approx(quadrature_information(delta, 1.0), abs=0.01)
    assert 0 <= got <= math.log(2)


def test_separating_knockout_outranks_one_all_samples_agree_on():
    s, w = two_graphs()
    sc = KnockoutScorer(s, w, shift=3.0, noise_sd=0.2, seed=0)
    sep, agree = sc.score([0]), sc.score([2])
    assert agree == 0.0                       # both graphs predict the same response of 3
    assert sep == pytest.approx(math.log(2), abs=0.02)   # well separated: one bit settled
    assert sc.gains([0])[1] == pytest.approx(sep)         # and it is about gene 1's parents
    edges = sc.disambiguated(0)
    assert edges[0][0] == 1 and edges[0][2] == pytest.approx(0.5)
    # noise as large as the effect: less than the bit, more than nothing
    noisy = KnockoutScorer(s, w, shift=1.0, noise_sd=1.0, seed=0).score([0])
    assert 0.05 < noisy < 0.6 * math.log(2)


def test_zero_gain_when_every_sample_is_the_same_graph():
    s, w = two_graphs()
    same_s, same_w = np.repeat(s[:1], 5, 0), np.repeat(w[:1], 5, 0)
    sc = KnockoutScorer(same_s, same_w, shift=3.0, noise_sd=0.1)
    assert all(sc.score([g]) == 0.0 for g in range(4))
    assert sc.score([0, 1, 2, 3]) == 0.0


def test_knocked_out_gene_does_not_inform_its_own_parents():
    s = np.zeros((2, 3, 3), np.uint8)
    w = np.zeros((2, 3, 3))
    s[0, 1, 1], w[0, 1, 1] = 1, -1.0          # the samples differ only on the self-loop of 1
    sc = KnockoutScorer(s, w, shift=3.0, noise_sd=0.1)
    assert sc.score([1]) == 0.0


def test_greedy_batch_is_diverse():
    """Genes 0 and 1 inform the same uncertain parent set of gene 3; gene 2 informs gene 4's
    a little less. The greedy batch of two takes 0 (or 1) and 2, not the redundant pair."""
    d, n = 5, 4
    s = np.zeros((n, d, d), np.uint8)
    w = np.zeros((n, d, d))
    # gene 3: parent {0, 1} (collinear pair) in samples 0, 1, none in 2, 3
    for k in (0, 1):
        s[k, 3, [0, 1]], w[k, 3, [0, 1]] = 1, 1.0
    # gene 4: parent 2 in samples 0 and 2 only (independent of gene 3's split)
    for k in (0, 2):
        s[k, 4, 2], w[k, 4, 2] = 1, 1.0
    sc = KnockoutScorer(s, w, shift=np.array([3, 3, 1.2, 3, 3.0]), noise_sd=0.5, seed=1)
    single = [sc.score([g]) for g in range(d)]
    assert single[0] == pytest.approx(single[1]) and single[0] > single[2] > 0.1
    picks = [g for g, _ in greedy_batch(sc, [0, 1, 2, 3, 4], 2)]
    assert picks[0] in (0, 1) and picks[1] == 2
    # a top-2 by single gain would have taken the redundant pair
    assert sorted(np.argsort(single)[::-1][:2]) == [0, 1]


def test_plan_policies_and_bad_input():
    s, w = two_graphs()
    setup = {"shift": np.full(4, 3.0), "noise_sd": np.full(4, 0.2)}
    out = plan_knockouts(s, w, setup, 1, "eig", genes=list("ABCD"))
    assert out["pick"] == [0] and "parents of B" in out["reason"][0]
    assert "A->B p=0.50" in out["reason"][0]
    assert not out["stop"]
    old = plan_knockouts(s, w, setup, 1, "edge_eig", genes=list("ABCD"))
    assert old["pick"] == [0] and "A->B (p=0.50)" in old["reason"][0]
    rnd = plan_knockouts(s, w, setup, 2, "random", seed=3)
    assert len(set(rnd["pick"])) == 2
    with pytest.raises(ValidationError, match="larger than the 4 candidate"):
        plan_knockouts(s, w, setup, 5, "eig")
    with pytest.raises(ValidationError, match="unknown knock-out policy"):
        plan_knockouts(s, w, setup, 1, "greedy")
    for pol in ("eig", "edge_eig", "uncertain_edges", "random"):
        with pytest.raises(ValidationError, match="has 1 sample"):
            plan_knockouts(s[:1], w[:1], setup, 1, pol)
    # all samples alike: nothing to learn, the planner says stop
    same = plan_knockouts(np.repeat(s[:1], 3, 0), np.repeat(w[:1], 3, 0), setup, 1, "eig")
    assert same["stop"] and same["batch_gain"] == 0.0


# ------------------------------------------------------------------ the simulator and refit
def test_knockout_cells_clamp_the_gene():
    from workbench.data.simulate import make_world

    world = make_world(seed=0, size="tiny")
    ko = knockout_cells(world.grn, [2], np.random.default_rng(0), 2, 20)
    assert np.all(ko["state"][:, 2] == 0) and np.all(ko["velocity"][:, 2] == 0)
    assert np.all(ko["state"][:, [0, 1]] > 0)


def test_refit_matches_the_grn_step_and_leaves_knocked_rows_out():
    from workbench.models.gflownet import exact_posterior as ep

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    v = x @ np.array([[-1, 0, 0, 0], [0.8, -1, 0, 0], [0, 0.7, -1, 0], [0, 0, 0, -1.0]]).T
    v = v + 0.3 * rng.normal(size=v.shape)
    sigma2, hyper = np.full(4, 0.09), dict(ratio=1.0, edge_prior=0.2, prior_sd=1.0)
    post = refit_posterior(x, v, np.full(300, -1), sigma2=sigma2, **hyper)
    model = ep.ExactParentPosterior(4, np.sqrt(2 * sigma2 / 300), 0.2,
                                    float(0.09 / 300)).fit(x, v)
    assert np.allclose(post["edge_probability"], model.edge_probability_)
    # the same cells marked as knock-outs of gene 1, plus junk velocity for gene 1 there
    xk = np.vstack([x, rng.normal(size=(100, 4))])
    vk = np.vstack([v, rng.normal(size=(100, 4)) * 5])
    knocked = np.r_[np.full(300, -1), np.full(100, 1)]
    both = refit_posterior(xk, vk, knocked, sigma2=sigma2, **hyper)
    assert np.allclose(both["edge_probability"][1], post["edge_probability"][1])
    assert not np.allclose(both["edge_probability"][2], post["edge_probability"][2])


def test_campaign_records_rounds():
    rec = knockout_campaign("eig", seed=0, size="tiny", rounds=2, budget=2, n_samples=100)
    assert [r["round"] for r in rec] == [0, 1, 2]
    chosen = [g for r in rec for g in r["chosen"]]
    assert len(chosen) == 4 and len(set(chosen)) == 4
    assert all(0 <= r["entropy"] <= math.log(2) and 0 <= r["auroc"] <= 1 for r in rec)
    assert all(math.isnan(r["copy_confusion"]) for r in rec)      # the demo has no copies
    ctrl = knockout_campaign("more_cells", seed=0, size="tiny", rounds=1, n_samples=100)
    assert ctrl[1]["chosen"] == [] and ctrl[0]["entropy"] == rec[0]["entropy"]


# ------------------------------------------------------------------ on a Study
@pytest.fixture()
def study(tiny_study_path, tmp_path):
    return copy_study(tiny_study_path, tmp_path / "s.study")


def test_propose_knockout_on_a_demo_study(study, capsys):
    b = propose(study, 2, "eig", kind="knockout")
    plan = study.read("design_plan")
    genes = list(study.read("grn").var_names)
    assert b.kind == "knockout" and len(b.table) == 2
    assert list(plan.candidate) == genes and (plan.status == "proposed").sum() == 2
    assert all("nats" in r and "->" in r for r in b.table.reason)
    assert (plan.score >= 0).all() and plan.entropy.notna().all()
    assert study.provenance[-1]["notes"]["planner"] == "knockout"
    with pytest.raises(ValidationError, match="larger than the"):
        propose(study, len(genes) + 1, "eig", kind="knockout")
    assert main(["design", "knockout", str(study.path), "--budget", "2",
                 "--policy", "uncertain_edges"]) == 0
    out = capsys.readouterr().out
    assert "next 2:" in out and "edge entropy" in out


def test_one_sample_posterior_in_a_study_is_refused(study):
    samples = np.asarray(study.read("grn_samples"))[:1]
    weights = np.asarray(study.read("grn_sample_weights"))[:1]
    genes = [str(g) for g in study.read("grn").var_names]
    with study.step("grn", params={"note": "one sample"}, inputs=["grn"]) as tx:
        tx.write_array("grn_samples", samples, attrs={"genes": genes})
        tx.write_array("grn_sample_weights", weights, attrs={"genes": genes, "units": "sd"})
    with pytest.raises(ValidationError, match="one graph carries no uncertainty"):
        propose(study, 1, "eig", kind="knockout")


def test_setup_noise_comes_from_the_data_and_shrinks_with_cells():
    from workbench.tools.design.knockout import knockout_setup

    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3))
    x = (x - x.mean(0)) / x.std(0)
    v = x @ np.array([[-1, 0.5, 0], [0, -1, 0], [0.3, 0, -1.0]]).T
    v = v + rng.normal(size=v.shape) * np.array([0.1, 0.3, 0.6])
    level = np.array([-2.0, -3.0, -1.0])
    a = knockout_setup(x, v, cells_per_knockout=50, knocked_level=level)
    b = knockout_setup(x, v, cells_per_knockout=200, knocked_level=level)
    # the clamp step is trusted only as far as the cells reach
    far = knockout_setup(x, v, knocked_level=np.array([-2.0, -30.0, 1.0]))
    reach = np.abs(x - x.mean(0)).max(0)
    assert far["offset"][0] == pytest.approx(-2.0 - x.mean(0)[0])
    assert far["offset"][1] == pytest.approx(-reach[1]) and 2 < reach[1] < 5
    raw = knockout_setup(x, v, knocked_level=np.array([-2.0, -30.0, 1.0]), clip_offset=False)
    assert raw["offset"][1] == pytest.approx(-30.0 - x.mean(0)[1])
    assert np.allclose(far["gram"], np.cov(x.T, bias=True))
    assert np.allclose(a["noise_variance"], [0.01, 0.09, 0.36], rtol=0.2)
    assert np.allclose(b["noise_sd"], a["noise_sd"] / 2)
    assert np.allclose(a["shift"], np.sqrt(level ** 2 + 1))
    # noisier genes make the same weight difference less informative
    s = np.zeros((2, 3, 3), np.uint8)
    w = np.zeros((2, 3, 3))
    s[0, [0, 2], 1], w[0, [0, 2], 1] = 1, 0.2
    gains = KnockoutScorer(s, w, a["shift"], a["noise_sd"]).gains([1])
    assert gains[0] > gains[2] > 0


# ------------------------------------------------------------------ the whole-graph score
def graph_scorer(samples, weights, gram=None, offset=2.0, noise_sd=0.5, **kw):
    from workbench.models.knockout_eig import GraphKnockoutScorer

    d = samples.shape[1]
    return GraphKnockoutScorer(samples, weights, np.eye(d) if gram is None else gram,
                               offset, noise_sd, **kw)


def test_pairwise_bounds_hold_the_monte_carlo_information():
    from workbench.models.knockout_eig import pairwise_information

    rng = np.random.default_rng(3)
    eps = rng.standard_normal((20000, 3))
    for _ in range(4):
        mu = rng.normal(scale=1.5, size=(5, 3))
        pi = rng.dirichlet(np.ones(5))
        dist = ((mu[:, None] - mu[None]) ** 2).sum(-1)
        lo = pairwise_information(dist, pi, c=0.125)
        hi = pairwise_information(dist, pi, c=0.5)
        mc = mixture_information(mu, pi, 1.0, eps)
        assert lo - 0.02 <= mc <= hi + 0.02
        assert 0 <= lo <= hi <= -(pi * np.log(pi)).sum() + 1e-12


def test_graph_distances_match_the_clamped_cells():
    """The precomputed distances equal ||(X_g - xbar) (w_u - w_t)||^2 / (n s^2) computed on
    explicit cells with gene g clamped, for every candidate g and every gene's pair."""
    rng = np.random.default_rng(0)
    d, n = 4, 400
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    xbar = x.mean(0)
    gram = (x - xbar).T @ (x - xbar) / n
    level = np.array([-2.0, -1.0, -3.0, -0.5])
    s = np.zeros((3, d, d), np.uint8)
    w = np.zeros((3, d, d))
    s[0, 1, [0, 2]], w[0, 1, [0, 2]] = 1, [0.8, -0.4]
    s[1, 1, 3], w[1, 1, 3] = 1, 0.6
    s[2, 3, 0], w[2, 3, 0] = 1, 1.1
    noise = np.array([0.3, 0.5, 0.7, 0.4])
    sc = graph_scorer(s, w, gram, level - xbar, noise)
    for i in (1, 3):
        _, first = np.unique(s[:, i], axis=0, return_index=True)
        wu = w[first, i]
        for g in range(d):
            xg = x.copy()
            xg[:, g] = level[g]
            mu = (xg - xbar) @ wu.T                                      # (n, U)
            want = ((mu[:, :, None] - mu[:, None, :]) ** 2).mean(0) / noise[i] ** 2
            want = 0 * want if g == i else want
            assert np.allclose(sc.dist_[i][g], want, rtol=1e-4, atol=1e-6), (i, g)


def test_isolated_gene_gets_only_the_generic_information():
    """Gene 4 has no edges in or out; the samples disagree on 0 -> 1 and 2 -> 3. Its
    knock-out's cells teach what any new cells teach (the edges' natural variation), less
    than a knock-out that also steps an uncertain edge; the edge-only score gives it zero,
    the lowest."""
    from workbench.models.knockout_eig import pairwise_information

    d = 5
    s = np.zeros((4, d, d), np.uint8)
    w = np.zeros((4, d, d))
    for k, (a, b) in enumerate([(1, 1), (1, 0), (0, 1), (0, 0)]):
        s[k, 1, 0], w[k, 1, 0] = a, 0.5 * a
        s[k, 3, 2], w[k, 3, 2] = b, 0.5 * b
    sc = graph_scorer(s, w, offset=2.5, noise_sd=0.5)
    single = sc.single_scores()
    generic = 2 * pairwise_information(np.array([[0, 1.0], [1.0, 0]]), [0.5, 0.5])
    assert single[4] == pytest.approx(generic)
    assert single[0] > single[4] and single[2] > single[4]
    assert np.allclose(single, [sc.score([g]) for g in range(d)])
    edge = KnockoutScorer(s, w, shift=2.5, noise_sd=0.5)
    edge_single = [edge.score([g]) for g in range(d)]
    assert edge_single[4] == 0.0 and edge_single[4] == min(edge_single)


def test_transposed_adjacency_would_be_caught():
    """``G[i, j] = 1`` is j -> i: samples split on 0 -> 1 (row 1). Knocking out 1 uses none
    of its own velocity, so it teaches nothing; knocking out 0 steps the edge."""
    s, w = two_graphs(w=0.6)
    sc = graph_scorer(s, w, offset=2.5, noise_sd=0.4)
    assert sc.score([1]) == 0.0
    assert sc.score([0]) > sc.score([2]) > 0
    assert sc.gains([0])[0] == 0.0 and sc.gains([0])[1] > 0


def test_copy_pair_is_told_apart_only_by_knocking_out_one_of_them():
    """Gene 2 follows gene 0 (correlation 0.98): whether 0 or 2 drives gene 1 is hardly
    visible in new unperturbed-like cells, but a knock-out of either breaks the tie."""
    d = 4
    gram = np.eye(d)
    gram[0, 2] = gram[2, 0] = 0.98
    s = np.zeros((2, d, d), np.uint8)
    w = np.zeros((2, d, d))
    s[0, 1, 0], w[0, 1, 0] = 1, 0.8
    s[1, 1, 2], w[1, 1, 2] = 1, 0.8
    sc = graph_scorer(s, w, gram, offset=2.0, noise_sd=0.3)
    single = sc.single_scores()
    assert single[3] < 0.05 < 0.6 < min(single[0], single[2])
    assert single[1] == 0.0


def test_greedy_batch_never_repeats_and_its_gains_add_up():
    rng = np.random.default_rng(4)
    d, n = 6, 30
    s = (rng.random((n, d, d)) < 0.3).astype(np.uint8)
    s[:, np.arange(d), np.arange(d)] = 0
    w = rng.normal(size=(n, d, d)) * s
    sc = graph_scorer(s, w, offset=2.0, noise_sd=1.0)
    picks = greedy_batch(sc, [3, 3, 1, 0, 5, 2, 4, 1], d)
    genes = [g for g, _ in picks]
    assert sorted(genes) == list(range(d))                 # every gene once, none twice
    gains = [gain for _, gain in picks]
    assert all(a >= -1e-9 for a in gains)
    for k in range(1, d + 1):
        assert sum(gains[:k]) == pytest.approx(sc.score(genes[:k]), rel=1e-5)
    # the first pick is the best single knock-out
    assert genes[0] == int(np.argmax(sc.single_scores()))
    setup = {"shift": np.full(d, 2.0), "noise_sd": np.ones(d)}
    for pol in ("eig", "edge_eig", "uncertain_edges", "random"):
        out = plan_knockouts(s, w, setup, d, pol, seed=1)
        assert sorted(out["pick"]) == list(range(d)), pol


def test_graph_scorer_bad_input():
    s, w = two_graphs()
    with pytest.raises(ValidationError, match="one graph carries no uncertainty"):
        graph_scorer(s[:1], w[:1])
    with pytest.raises(ValidationError, match="gram is"):
        graph_scorer(s, w, gram=np.eye(3))
    with pytest.raises(ValidationError, match="noise_sd must be positive"):
        graph_scorer(s, w, noise_sd=0.0)


def test_hard_world_plants_copies_that_regulate_nothing():
    from workbench.tools.design.knockout_campaign import hard_world

    world = hard_world(seed=1)
    grn = world.grn
    assert grn.n_genes == 22 and len(world.copies) == 3
    for a, b in world.copies:
        assert np.array_equal(grn.weights[b], grn.weights[a]) and grn.weights[b].any()
        assert not grn.weights[:, b].any()                 # the copy regulates nothing
        assert grn.weights[:, a].any()                     # the original does
        assert grn.fixed_point[b] == pytest.approx(grn.fixed_point[a])
    cells = knockout_cells(grn, [], np.random.default_rng(0), 4, 25)
    a, b = world.copies[0]
    r = np.corrcoef(cells["spliced"][:, a], cells["spliced"][:, b])[0, 1]
    assert 0.5 < r < 0.999                                 # close, not identical


def test_near_steady_knockout_moves_only_the_descendants():
    from workbench.tools.design.knockout_campaign import hard_world

    world = hard_world(seed=0, start_spread=0.2)
    assert world.size == "steady"
    grn = world.grn
    g = grn.cores[0][0]
    ko = knockout_cells(grn, [g], np.random.default_rng(0), 3, 40, start_spread=0.0)
    assert np.all(ko["spliced"][:, g] == 0) and np.all(ko["velocity"][:, g] == 0)
    reach = grn.ancestors()
    late = ko["state"][ko["time"] > 3.0]
    moved = np.abs(late / grn.fixed_point - 1).max(0)
    child = int(np.flatnonzero(grn.weights[:, g])[0])
    assert moved[child] > 0.05                              # the response spreads down
    others = [i for i in range(grn.n_genes) if i != g and not reach[i, g]]
    assert others and moved[others].max() < 1e-6            # and nowhere else


@pytest.mark.slow
def test_knocking_out_the_copies_tells_them_apart():
    """On the steady world, knocking out the three copies (the candidates restricted to
    them) lowers the posterior probability of the copies' false edges."""
    from workbench.tools.design.knockout_campaign import hard_world

    world = hard_world(seed=0, start_spread=0.2)
    copies = [b for _, b in world.copies]
    rec = knockout_campaign("random", seed=0, world=world, rounds=1, budget=3,
                            n_samples=50, candidates=copies)
    assert sorted(rec[1]["chosen"]) == sorted(world.grn.genes[b] for b in copies)
    assert 0 <= rec[1]["copy_confusion"] < rec[0]["copy_confusion"]
