"""95 % intervals for the measures of a set of tunes: Wilson for rates, a bootstrap over tunes for means.

Wilson's score interval (Wilson 1927; Brown, Cai & DasGupta 2001) rather than the normal ("Wald") one: with
a few hundred samples and rates near 0 or 1 — a validity tier of real tunes is near 100 % — the Wald interval
collapses to a point or leaves [0, 1]; Wilson's stays inside and keeps its coverage.

Means get a percentile bootstrap over tunes: the tunes are the sampling unit (a model's samples, a corpus'
tunes), and the per-tune values of these measures are skewed and bounded, so no normal shape is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95 % quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``successes / n`` (fractions in [0, 1]).

    ``center ± half`` with ``center = (p + z²/2n) / (1 + z²/n)`` and
    ``half = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n)``."""
    if n <= 0:
        raise ValueError("a rate needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # The exact bounds are 0 at p = 0 and 1 at p = 1; rounding would leave 0.99999999999999, which is not 100 %.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def bootstrap_mean_interval(values: Sequence[float], draws: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample the tunes with replacement ``draws`` times.

    Seeded, so the same values give the same interval; one value gives a zero-width interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("a mean needs at least one value")
    if draws < 1:
        raise ValueError("draws must be at least 1")
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    # In blocks, so 2,000 draws of a few thousand tunes never hold a draws × n index matrix at once.
    block = max(1, 1_000_000 // data.size)
    for start in range(0, draws, block):
        stop = min(draws, start + block)
        picks = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
