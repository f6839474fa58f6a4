"""Screen planner with a certified stop: replayed on a demo-world pool with known labels."""

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.tools.design.pools import demo_world_pool
from workbench.tools.design.screen import screen_campaign, screen_round


@pytest.fixture(scope="module")
def pool():
    return demo_world_pool(0, wells_per_gene=16)


def test_hardest_first_certifies_earlier_than_random_and_is_right(pool):
    X, y, _ = demo_world_pool(0, wells_per_gene=40)  # batches of 52: the bound can pass early
    hard = [screen_campaign(X, y, policy="hardest", seed=0, gamma=0.9)]
    rand = [screen_campaign(X, y, policy="random", seed=s, gamma=0.9) for s in (0, 1)]
    # the realised accuracy climbs much faster when the hardest items are measured ...
    assert hard[0]["oracle_fraction"] < np.mean([r["oracle_fraction"] for r in rand]) - 0.1
    # ... and the certificate comes no later than random's
    assert hard[0]["stop_fraction"] <= np.mean([r["stop_fraction"] for r in rand])
    for r in hard + rand:
        assert r["stop_accuracy"] >= 0.9  # the certified table is as good as promised
        h = r["history"]
        assert h.bound.iloc[-1] >= 0.9 and (h.bound.iloc[:-1] < 0.9).all()  # first pass
        assert r["stop_fraction"] < 1.0


def test_random_batch_bound_holds_on_the_unmeasured_rest(pool):
    # a uniform batch is a fair sample of the inference set: the bound may be loose but
    # must sit below the realised accuracy in (nearly) every round
    X, y, _ = pool
    h = screen_campaign(X, y, policy="random", seed=3, gamma=0.999)["history"]
    assert np.mean(h.bound <= h.system_accuracy + 1e-12) >= 0.9
    assert (h.bound <= 1).all() and h.bound.iloc[-1] > h.bound.iloc[0]


def test_a_stricter_delta_stops_no_earlier(pool):
    X, y, _ = pool
    loose = screen_campaign(X, y, policy="hardest", seed=0, delta=0.3)["stop_fraction"]
    strict = screen_campaign(X, y, policy="hardest", seed=0, delta=0.001)["stop_fraction"]
    assert strict >= loose


def test_round_proposes_the_least_confident_unmeasured_items(pool):
    X, y, _ = pool
    rng = np.random.default_rng(0)
    labels = np.full(len(y), None, object)
    first = rng.choice(len(y), 60, replace=False)
    labels[first] = y[first]
    out = screen_round(X, labels, budget=10, policy="hardest", seed=0)
    assert len(out["pick"]) == 10 and not set(out["pick"]) & set(first)
    assert (np.diff(out["score"]) <= 1e-12).all()  # sorted hardest first
    conf = out["confidence"]
    open_ = np.setdiff1d(np.arange(len(y)), first)
    assert conf[out["pick"]].max() <= np.sort(conf[open_])[20]  # among the least confident
    assert all("uncertainty" in r for r in out["reason"])


def test_bad_pools_are_refused(pool):
    X, y, _ = pool
    with pytest.raises(ValidationError, match="no features"):
        screen_campaign(np.zeros((10, 0)), y[:10])
    with pytest.raises(ValidationError, match="one class"):
        screen_campaign(X[:20], np.array(["a"] * 20))
    labels = np.full(len(y), None, object)
    labels[:5] = y[:5]
    with pytest.raises(ValidationError, match="larger than the"):
        screen_round(X, labels, budget=len(y), policy="hardest")
    one = np.full(len(y), None, object)
    one[:5] = "a"
    with pytest.raises(ValidationError, match="one class only"):
        screen_round(X, one, budget=5, policy="hardest")


def test_audit_bound_counts_audited_items_and_holds(pool):
    X, y, _ = pool
    miss = []
    for seed in range(5):
        r = screen_campaign(X, y, policy="hardest", audit=30, seed=seed, gamma=0.999)
        h = r["history"]
        b = r["batch_size"]
        # each round measures its batch and the audit
        assert h.fraction_measured.iloc[0] * len(y) == pytest.approx(b + b + 30)
        h = h[h.fraction_measured < 1]
        miss += list(h.bound > h.system_accuracy + 1e-12)
    # a uniform audit makes the bound hold in each round with probability >= 1 - delta
    assert np.mean(miss) <= 0.1 and len(miss) >= 20
