"""The combined false-accusation probability of a case (leaktrace.combine)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from leaktrace import combine
from leaktrace.combine import Evidence, combined_log10_p, product_tail_log10


def test_doctests():
    assert doctest.testmod(combine).failed == 0


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_product_tail_is_the_exact_law_of_a_product_of_uniforms(k):
    rng = np.random.default_rng(k)
    logs = np.log10(rng.random((200_000, k))).sum(axis=1)
    for q in (0.5, 0.1, 0.01, 0.001):
        x = float(np.quantile(logs, q))
        sd = math.sqrt(q * (1 - q) / logs.size)
        assert 10 ** product_tail_log10(x, k) == pytest.approx(q, abs=4 * sd)


def test_product_tail_far_below_floats_and_at_the_edges():
    assert product_tail_log10(0.0, 3) == 0.0
    assert product_tail_log10(5.0, 1) == 0.0
    assert product_tail_log10(-2000.0, 1) == pytest.approx(-2000.0)
    # k = 2: x(1 - ln x), in logs
    x = -2000.0
    assert product_tail_log10(x, 2) == pytest.approx(x + math.log10(1 + 2000 * math.log(10)))
    with pytest.raises(ValueError):
        product_tail_log10(-1.0, 0)


def test_one_leak_is_the_traces_own_probability():
    # a trace's p = q · pairs · tests; with one code each, pairs = people
    q, pairs, tests = -14.0, 250, 3
    trace_p = q + math.log10(pairs * tests)
    assert combined_log10_p([Evidence("m", q, tests)], people=pairs) == pytest.approx(trace_p)


def test_leaks_of_one_media_item_are_not_multiplied():
    one = combined_log10_p([Evidence("m", -20.0)], people=10)
    many = combined_log10_p([Evidence("m", -20.0)] * 5, people=10)
    assert many == pytest.approx(one + math.log10(5))  # the best one, paid for ×5
    stronger = combined_log10_p([Evidence("m", -20.0), Evidence("m", -30.0)], people=10)
    assert stronger == pytest.approx(-30.0 + math.log10(2) + 1)


def test_independent_media_items_combine_and_order_does_not_matter():
    ev = [Evidence("a", -15.0), Evidence("b", -12.0), Evidence("c", -11.0, 2)]
    p = combined_log10_p(ev, people=100)
    assert p == pytest.approx(combined_log10_p(ev[::-1], people=100))
    assert p < min(combined_log10_p([e], people=100) for e in ev) - 15


def test_weak_evidence_never_becomes_strong_by_itself():
    # many items each at p = 1 stay at 1
    assert combined_log10_p([Evidence(str(i), 0.0) for i in range(20)], people=5) == 0.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        combined_log10_p([], people=1)
    with pytest.raises(ValueError):
        combined_log10_p([Evidence("a", -1.0)], people=0)
    with pytest.raises(ValueError):
        combined_log10_p([Evidence("a", -1.0, 0)], people=1)


def test_the_stated_probability_holds_for_innocents():
    """Innocent people's per-item values are uniform and independent: the combined
    probability is at most alpha with probability at most alpha (a few items, re-shares)."""
    rng = np.random.default_rng(7)
    trials, people = 20_000, 1
    hits = {0.05: 0, 0.01: 0}
    for _ in range(trials):
        k = int(rng.integers(1, 5))
        ev = []
        for i in range(k):
            u = rng.random()
            for _ in range(int(rng.integers(1, 3))):  # re-shares read the same codeword
                ev.append(Evidence(str(i), math.log10(u)))
        p = 10 ** combined_log10_p(ev, people=people)
        for a in hits:
            hits[a] += p <= a
    for a, n in hits.items():
        assert n / trials <= a * 1.1
