"""Pair planners and campaigns on planted matrices: rules, the auto choice, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.tools.campaign import (PLANNERS, choose_planner, gene_mean_scores, propose,
                                      run_campaign, top_share_curve)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _hub_matrix(n=40, seed=0):
    """Pair values driven by per-gene hubs; singles carry no information."""
    rng = np.random.default_rng(seed)
    hub = rng.gamma(1.0, 1.0, n)
    R = hub[:, None] + hub[None] + 0.2 * rng.normal(size=(n, n))
    R = (R + R.T) / 2
    np.fill_diagonal(R, np.nan)
    return R, rng.normal(size=n)


def _singles_matrix(n=40, seed=1):
    """Pair values driven by |single A| + |single B|; each gene in many pairs."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    R = np.abs(s)[:, None] + np.abs(s)[None] + 0.3 * rng.normal(size=(n, n))
    R = (R + R.T) / 2
    np.fill_diagonal(R, np.nan)
    return R, s


def test_gene_mean_scores_shrink_towards_the_overall_mean():
    g, cnt = gene_mean_scores(3, [0, 0], [1, 2], [4.0, 2.0], k=2.0)
    assert cnt.tolist() == [2, 1, 1]
    assert np.allclose(g, [(6 + 2 * 3) / 4, (4 + 2 * 3) / 3, (2 + 2 * 3) / 3])


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_every_planner_returns_a_batch_of_distinct_candidates(planner):
    R, s = _singles_matrix(12)
    iu = np.triu_indices(12, 1)
    obs = np.arange(len(iu[0])) % 3 == 0
    out = propose(planner, 12, iu[0][~obs], iu[1][~obs], iu[0][obs], iu[1][obs], R[iu][obs],
                  side=s[:, None], singles=s, batch_size=5, seed=0, device="cpu",
                  model_kw={"steps": 20} if "exchangeable" in planner or
                  planner.startswith("bpmf") else None)
    pick = out["pick"]
    assert len(pick) == 5 and len(set(pick.tolist())) == 5
    assert len(out["reason"]) == 5 and all(isinstance(r, str) and r for r in out["reason"])
    assert len(out["mean"]) == (~obs).sum()
    if planner != "random":
        assert np.isfinite(out["mean"][pick]).all()
        assert (out["low"] <= out["high"]).all()


def test_unknown_planner_and_missing_singles_are_clear_errors():
    with pytest.raises(ValidationError, match="unknown planner"):
        propose("bogus", 3, [0], [1], [1], [2], [1.0])
    with pytest.raises(ValidationError, match="single effect"):
        propose("singles", 3, [0], [1], [1], [2], [1.0])


def test_rule_ties_are_broken_at_random_not_by_list_order():
    # every gene in one pair: the gene-mean rule has no information, so its pick must not
    # be the first candidates of the list (which would look like skill on a sorted table)
    n = 200
    cand_i, cand_j = np.arange(0, n, 2), np.arange(1, n, 2)
    out = propose("gene_mean", n, cand_i[10:], cand_j[10:], cand_i[:10], cand_j[:10],
                  np.arange(10.0), batch_size=10, seed=3)
    assert out["pick"].max() > 20


def test_rule_intervals_cover_new_values_about_nine_times_in_ten():
    rng = np.random.default_rng(4)
    n = 60
    s = rng.normal(size=n)
    R = 2 * (np.abs(s)[:, None] + np.abs(s)[None]) + rng.normal(size=(n, n))
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.3
    out = propose("singles", n, iu[0][~obs], iu[1][~obs], iu[0][obs], iu[1][obs], R[iu][obs],
                  singles=s, batch_size=(~obs).sum(), seed=0)
    truth = R[iu][~obs][out["pick"]]
    cover = np.mean((out["low"] <= truth) & (truth <= out["high"]))
    assert 0.8 < cover < 0.97


def test_campaign_rules_beat_random_where_they_should_and_auto_keeps_up():
    res = {}
    for name, make in (("hub", _hub_matrix), ("singles", _singles_matrix)):
        R, s = make()
        for planner in ("random", "gene_mean", "singles", "auto_rules"):
            h = [run_campaign(R, planner=planner, singles=s, seed=k, budget=0.2, initial=0.02)
                 for k in range(3)]
            c = top_share_curve(__import__("pandas").concat(h), (0.2,))
            res[name, planner] = c.top_found_share.mean()
    assert res["hub", "gene_mean"] > res["hub", "random"] + 0.3
    assert res["singles", "singles"] > res["singles", "random"] + 0.3
    assert res["singles", "gene_mean"] > res["singles", "random"]  # hubs via |single| too
    for name, best in (("hub", "gene_mean"), ("singles", "singles")):
        assert res[name, "auto_rules"] >= res[name, best] - 0.05, res


@pytest.mark.slow
def test_auto_campaign_keeps_up_with_the_best_rule_and_passes_it_where_the_model_ranks():
    import pandas as pd

    small = dict(steps=40, n_members=3, width=8)
    res = {}
    for name, make in (("side", _side_matrix), ("singles", _singles_matrix)):
        R, *rest = make(30)
        side, s = (rest[0], rest[1]) if name == "side" else (rest[0][:, None], rest[0])
        for planner in ("gene_mean", "singles", "auto"):
            h = [run_campaign(R, planner=planner, singles=s, side=side, seed=k, budget=0.25,
                              initial=0.05, batch_size=10, device="cpu", **small)
                 for k in range(2)]
            res[name, planner] = top_share_curve(pd.concat(h), (0.25,)).top_found_share.mean()
    assert res["side", "auto"] > max(res["side", "gene_mean"], res["side", "singles"]) + 0.1, res
    assert res["singles", "auto"] >= res["singles", "singles"] - 0.05, res


def test_campaign_history_counts_top_pairs_exactly():
    R, s = _hub_matrix(20)
    h = run_campaign(R, planner="gene_mean", seed=0, budget=0.3, batch_size=5)
    iu = np.triu_indices(20, 1)
    v = R[iu]
    n_top = int(round(0.05 * len(v)))
    top_values = np.sort(v)[::-1][:n_top]
    assert h.is_top.sum() == np.isin(h.value, top_values).sum()
    assert np.isclose(h.top_found_share.iloc[-1], h.is_top.sum() / n_top)
    assert h[["i", "j"]].drop_duplicates().shape[0] == len(h)
    assert len(h) == int(round(0.3 * len(v)))


def _fitted_exchangeable(n=30, seed=0):
    from workbench.models.exchangeable import ExchangeablePairModel

    R, s = _singles_matrix(n, seed)
    iu = np.triu_indices(n, 1)
    obs = np.random.default_rng(seed).random(len(iu[0])) < 0.3
    m = ExchangeablePairModel(steps=20, n_members=3, width=8, seed=0, device="cpu")
    m.fit(iu[0][obs], iu[1][obs], R[iu][obs], side=s[:, None], n_items=n)
    return m, iu[0][~obs], iu[1][~obs]


def test_chunked_scoring_equals_one_pass():
    from workbench.tools.campaign import score_pairs

    m, qi, qj = _fitted_exchangeable()
    whole = m.sample(qi, qj, chunk_size=10 ** 6)
    assert np.allclose(m.sample(qi, qj, chunk_size=7), whole, atol=1e-6)
    got = score_pairs(m, qi, qj, chunk_size=50)
    assert got.shape == whole.shape and np.allclose(got, whole, atol=1e-6)
    # each pair keeps its own score: a chunk-order mix-up would move them
    rev = score_pairs(m, qi[::-1], qj[::-1], chunk_size=50)
    assert np.allclose(rev[:, ::-1], whole, atol=1e-6)


def test_scoring_on_a_dask_cluster_equals_the_local_run():
    import pickle

    distributed = pytest.importorskip("distributed")
    from workbench.tools.campaign import score_pairs

    m, qi, qj = _fitted_exchangeable(seed=2)
    local = score_pairs(m, qi, qj, chunk_size=40)
    # the model travels to worker processes by pickling
    assert np.allclose(pickle.loads(pickle.dumps(m)).sample(qi, qj), local, atol=1e-6)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = score_pairs(m, qi, qj, chunk_size=40, scheduler=client)
        assert len(qi) > 3 * 40  # several chunks
        assert np.allclose(remote, local, atol=1e-6)
        # and propose hands the scheduler on: same batch as the local run
        R, s = _singles_matrix(30, 2)
        iu = np.triu_indices(30, 1)
        obs = np.arange(len(iu[0])) % 4 == 0
        args = ("exchangeable", 30, iu[0][~obs], iu[1][~obs], iu[0][obs], iu[1][obs], R[iu][obs])
        kw = dict(side=s[:, None], batch_size=5, seed=0, device="cpu",
                  model_kw={"steps": 10, "n_members": 2, "width": 8})
        a = propose(*args, **kw)
        b = propose(*args, **kw, scheduler=client)
        assert np.array_equal(a["pick"], b["pick"]) and np.allclose(a["mean"], b["mean"])


# ---------------------------------------------------------------------- auto with the model
def _side_matrix(n=40, seed=2):
    """Pair values set by a low-rank product of the side features: no gene hubs, and the
    singles' sizes say nothing; only a model that reads the side features ranks them."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 2))
    R = np.tanh(u @ u.T) + 0.05 * rng.normal(size=(n, n))
    R = (R + R.T) / 2
    np.fill_diagonal(R, np.nan)
    return R, u, rng.normal(size=n)


def _observed(R, frac, seed):
    iu = np.triu_indices(len(R), 1)
    obs = np.random.default_rng(seed).random(len(iu[0])) < frac
    return iu, obs


def test_auto_takes_the_model_where_it_ranks_better_and_a_rule_where_the_rule_does():
    R, u, s = _side_matrix()
    iu, obs = _observed(R, 0.25, 0)
    used, why = choose_planner(len(R), iu[0][obs], iu[1][obs], R[iu][obs], singles=s, side=u,
                               device="cpu", seed=0)
    assert "exchangeable" in used, why
    assert "cross-fitted" in why and "resamples" in why
    # singles explain the matrix; the model sees the same singles as side features
    R, s = _singles_matrix()
    iu, obs = _observed(R, 0.25, 1)
    used, why = choose_planner(len(R), iu[0][obs], iu[1][obs], R[iu][obs], singles=s,
                               side=s[:, None], device="cpu", seed=0)
    assert used == "singles", why


def test_rule_choice_alone_takes_the_rule_that_fits_the_screen():
    from workbench.tools.planner_choice import rule_choice

    for make, want in ((_hub_matrix, "gene_mean"), (_singles_matrix, "singles")):
        R, s = make()
        iu, obs = _observed(R, 0.15, 5)
        used, why = rule_choice(len(R), iu[0][obs], iu[1][obs], R[iu][obs], singles=s)
        assert used == want, why
        assert "rank correlation" in why


def test_held_out_check_never_scores_a_pair_its_model_was_fitted_on(monkeypatch):
    # a check that leaked the evaluated pairs into the fit (or a fold assignment that moves
    # pairs between folds as more are measured, so that a warm-started fold model has
    # already seen them) would fail here
    from workbench.models import exchangeable
    from workbench.tools.planner_choice import held_out_scores

    seen: dict[int, set] = {}
    real_fit, real_predict = exchangeable.ExchangeablePairModel.fit, \
        exchangeable.ExchangeablePairModel.predict

    def fit(self, i, j, y, **kw):
        seen.setdefault(id(self), set()).update(map(frozenset, zip(i, j)))
        return real_fit(self, i, j, y, **kw)

    def predict(self, i, j):
        asked = set(map(frozenset, zip(i, j)))
        assert not asked & seen[id(self)], "held-out pairs were in the fit"
        return real_predict(self, i, j)

    monkeypatch.setattr(exchangeable.ExchangeablePairModel, "fit", fit)
    monkeypatch.setattr(exchangeable.ExchangeablePairModel, "predict", predict)
    R, u, s = _side_matrix(24)
    iu = np.triu_indices(24, 1)
    order = np.random.default_rng(0).permutation(len(iu[0]))
    models: dict = {}
    kw = dict(singles=s, side=u, device="cpu", model_kw={"steps": 5, "n_members": 2,
                                                          "width": 4}, fold_models=models)
    for n_obs in (60, 120):  # the second check warm-starts the first one's fold models
        o = np.sort(order[:n_obs])[::-1]  # a new order of the same pairs, plus new pairs
        r, n_eval = held_out_scores(24, iu[1][o], iu[0][o], R[iu][o], **kw)
        assert n_eval == n_obs and set(r) >= {"gene_mean", "singles", "exchangeable"}
    assert len(models) == 3


def test_held_out_model_score_is_near_zero_on_structureless_values():
    # pure noise: a fit that saw the held-out pairs would rank them above zero
    from workbench.tools.planner_choice import held_out_scores

    rng = np.random.default_rng(3)
    n = 40
    iu = np.triu_indices(n, 1)
    obs = rng.random(len(iu[0])) < 0.4
    y = rng.normal(size=obs.sum())
    side = rng.normal(size=(n, 2))
    r, _ = held_out_scores(n, iu[0][obs], iu[1][obs], y, side=side, device="cpu",
                           model_kw={"steps": 60})
    assert abs(r["exchangeable"]) < 0.12 and abs(r["gene_mean"]) < 0.12, r


def test_win_probability_is_paired_and_ordered():
    from workbench.tools.planner_choice import win_probability

    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    good, bad = y + 0.5 * rng.normal(size=200), y + 2.0 * rng.normal(size=200)
    kept = [({"a": good[:100], "b": bad[:100]}, y[:100]),
            ({"a": good[100:], "b": bad[100:]}, y[100:])]
    assert win_probability(kept, "a", "b") > 0.95
    assert win_probability(kept, "b", "a") < 0.05
    same = [({"a": good, "b": good.copy()}, y)]
    assert win_probability(same, "a", "b") == 0.0  # a tie is not a win


def test_pair_folds_depend_on_the_pair_not_its_order_or_position():
    from workbench.tools.planner_choice import pair_folds

    i, j = np.array([0, 5, 7, 2]), np.array([3, 1, 9, 8])
    f = pair_folds(i, j, 3)
    assert np.array_equal(pair_folds(j, i, 3), f)
    assert np.array_equal(pair_folds(i[::-1], j[::-1], 3), f[::-1])
    big = pair_folds(*np.triu_indices(60, 1), 3)
    assert set(big.tolist()) == {0, 1, 2} and np.bincount(big).min() > 0.28 * len(big)


def test_rank_average_planner_mixes_rule_and_model():
    R, u, s = _side_matrix(20)
    iu, obs = _observed(R, 0.4, 2)
    out = propose("singles+exchangeable", 20, iu[0][~obs], iu[1][~obs], iu[0][obs],
                  iu[1][obs], R[iu][obs], side=u, singles=s, batch_size=4, seed=0,
                  device="cpu", model_kw={"steps": 20, "n_members": 2, "width": 8})
    assert len(set(out["pick"].tolist())) == 4
    assert all("rank average" in r and "singles rule rank" in r for r in out["reason"])
    assert (out["low"] < out["high"]).all()


def test_auto_campaign_records_the_planner_it_ran_each_round():
    R, s = _singles_matrix(20)
    h = run_campaign(R, planner="auto", singles=s, side=s[:, None], seed=0, budget=0.3,
                     batch_size=10, device="cpu", steps=10, n_members=2, width=4)
    used = h.groupby("round").planner_used.first()
    assert used.iloc[0] == "initial"
    assert set(used.iloc[1:]) <= set(PLANNERS) and "auto" not in set(used)
