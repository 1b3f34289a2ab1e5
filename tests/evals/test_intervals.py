"""Wilson intervals against known values and scipy; the bootstrap interval of a mean."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from evals.intervals import bootstrap_mean_interval, wilson_interval


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Textbook values (Newcombe 1998, Table I; Brown, Cai & DasGupta 2001), 95 %.
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 7), (146, 300), (299, 300), (4435, 6237)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_bootstrap_interval_is_seeded_and_holds_the_mean() -> None:
    values = [0.1, 0.5, 0.9, 0.4, 0.7, 0.2, 0.3, 0.8]
    low, high = bootstrap_mean_interval(values, draws=2000, seed=3)
    assert low < sum(values) / len(values) < high
    assert (low, high) == bootstrap_mean_interval(values, draws=2000, seed=3)
    assert bootstrap_mean_interval([2.5] * 20) == (2.5, 2.5)
    # More tunes, a narrower interval.
    wide = bootstrap_mean_interval(values)
    narrow = bootstrap_mean_interval(values * 25)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
