"""The certified-stop bounds against direct binomial tail sums."""

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.models.design_bounds import (
    binomial_tail_ge, clopper_pearson_lower, kl_bernoulli, kl_lower_bound,
    system_accuracy_bound,
)


def exact_tail_ge(k, n, q):
    """P(Bin(n, q) >= k) with exact rational arithmetic."""
    q = Fraction(q)
    return float(sum(comb(n, j) * q ** j * (1 - q) ** (n - j) for j in range(k, n + 1)))


@pytest.mark.parametrize("k,n,q", [(7, 10, 0.4), (18, 20, 0.83), (1, 5, 0.01), (50, 60, 0.9)])
def test_binomial_tail_matches_exact_sum(k, n, q):
    assert binomial_tail_ge(k, n, q) == pytest.approx(exact_tail_ge(k, n, q), rel=1e-10)


@pytest.mark.parametrize("k,n", [(9, 10), (18, 20), (30, 40), (95, 100), (3, 7)])
@pytest.mark.parametrize("delta", [0.01, 0.05, 0.2])
def test_kl_bound_is_a_valid_lower_tail_bound(k, n, delta):
    low = kl_lower_bound(k, n, delta)
    cp = clopper_pearson_lower(k, n, delta)
    # a lower bound: below the observed rate, and below the exact bound
    assert 0 < low < k / n
    assert low <= cp + 1e-9
    # the Chernoff inequality at the bound: P(X >= k | q = L) <= exp(-n KL) = delta
    assert n * kl_bernoulli(k / n, low) == pytest.approx(np.log(1 / delta), rel=1e-6)
    assert exact_tail_ge(k, n, low) <= delta + 1e-12
    # the exact bound sits where the upper tail equals delta (the right tail, not P(X <= k))
    assert exact_tail_ge(k, n, cp) == pytest.approx(delta, rel=1e-6)
    lower_tail = 1 - exact_tail_ge(k + 1, n, low)
    assert lower_tail > 1 - delta  # the wrong tail would give a bound above k/n


def test_kl_bound_closed_forms():
    # k = n: KL(1 || q) = -log q, so L = delta ** (1/n)
    for n in (5, 20, 100):
        assert kl_lower_bound(n, n, 0.05) == pytest.approx(0.05 ** (1 / n), rel=1e-9)
    assert kl_lower_bound(0, 10, 0.05) == 0.0
    assert clopper_pearson_lower(10, 10, 0.05) == pytest.approx(0.05 ** 0.1, rel=1e-9)


def test_bound_uses_delta_and_batch_size():
    a, b = kl_lower_bound(45, 50, 0.01), kl_lower_bound(45, 50, 0.2)
    assert a < b - 0.02  # more confidence, lower bound
    assert kl_lower_bound(90, 100, 0.05) > kl_lower_bound(9, 10, 0.05) + 0.1  # more items


def test_bound_is_valid_by_simulation():
    rng = np.random.default_rng(3)
    q, n, delta = 0.85, 40, 0.05
    ks = rng.binomial(n, q, size=4000)
    bounds = np.array([kl_lower_bound(int(k), n, delta) for k in ks])
    miss = np.mean(bounds > q)
    assert miss <= delta  # never more often wrong than delta
    assert miss > 0.0005 or np.mean(bounds) > 0.6  # and not the trivial bound 0


def test_system_accuracy_bound():
    assert system_accuracy_bound(30, 70, 0.9) == pytest.approx((30 + 63) / 100)
    assert system_accuracy_bound(100, 0, 0.0) == 1.0


@pytest.mark.parametrize("args", [(11, 10, 0.05), (-1, 10, 0.05), (3, 0, 0.05), (3, 10, 0.0),
                                  (3, 10, 1.0)])
def test_bad_counts_are_refused(args):
    with pytest.raises(ValidationError):
        kl_lower_bound(*args)
