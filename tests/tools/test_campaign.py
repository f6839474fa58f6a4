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
                  model_kw={"steps": 20} if planner in ("exchangeable",) or
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


def test_auto_takes_the_rule_that_fits_the_screen():
    for make, want in ((_hub_matrix, "gene_mean"), (_singles_matrix, "singles")):
        R, s = make()
        iu = np.triu_indices(len(R), 1)
        obs = np.random.default_rng(5).random(len(iu[0])) < 0.15
        used, why = choose_planner(len(R), iu[0][obs], iu[1][obs], R[iu][obs], singles=s)
        assert used == want, why
        assert "rank correlation" in why


def test_campaign_rules_beat_random_where_they_should_and_auto_keeps_up():
    res = {}
    for name, make in (("hub", _hub_matrix), ("singles", _singles_matrix)):
        R, s = make()
        for planner in ("random", "gene_mean", "singles", "auto"):
            h = [run_campaign(R, planner=planner, singles=s, seed=k, budget=0.2, initial=0.02)
                 for k in range(3)]
            c = top_share_curve(__import__("pandas").concat(h), (0.2,))
            res[name, planner] = c.top_found_share.mean()
    assert res["hub", "gene_mean"] > res["hub", "random"] + 0.3
    assert res["singles", "singles"] > res["singles", "random"] + 0.3
    assert res["singles", "gene_mean"] > res["singles", "random"]  # hubs via |single| too
    for name, best in (("hub", "gene_mean"), ("singles", "singles")):
        assert res[name, "auto"] >= res[name, best] - 0.05, res


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
