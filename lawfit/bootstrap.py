"""Bootstrap intervals: resample runs (never single points of a curve), refit, take percentiles.

A resample of runs is a multiplicity per run, so every resample is the same
objective with its own point weights: all of them are fitted as one batch by
the batched L-BFGS, each warm-started from the full-data optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lawfit.laws.base import get_law
from lawfit.multistart import FitOptions
from lawfit.points import LossPoints
from lawfit.refit import refit_rows
from lawfit.result import Bootstrap, FitResult
from lawfit.scoring import split_by_size


def resample_weights(points: LossPoints, n_draws: int, seed: int) -> np.ndarray:
    """(n_draws, n_points) weights: each run drawn with replacement, its points weighted by its count."""
    runs, run_index = np.unique(points.run_id.astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(runs.shape[0], np.full(runs.shape[0], 1.0 / runs.shape[0]), size=n_draws)
    return counts[:, run_index] * points.weight[None, :]


def percentile_interval(values: Sequence[float] | np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite values."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (float("nan"), float("nan"))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(arr, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_fit(
    fit: FitResult,
    points: LossPoints,
    n_draws: int,
    options: FitOptions | None = None,
    level: float = 0.95,
    seed: int = 0,
) -> Bootstrap:
    """Refit ``fit``'s law, by its own procedure, on ``n_draws`` resamples of the runs of its training points.

    Only draws that reached an optimum are kept: one stopped by the iteration limit is not an estimate, and
    would widen (or narrow) the percentile intervals at random. ``Bootstrap.requested`` says how many were drawn.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    opts = options or FitOptions(delta=fit.delta, train_max_n=fit.train_max_n)
    law = get_law(fit.law)
    train, _ = split_by_size(points, fit.train_max_n)
    weights = resample_weights(train, n_draws, seed)
    fixed = {k: fit.params[k] for k in fit.fixed}
    free = [n for n in law.param_names if n not in fixed]
    if not free:
        draws = tuple(dict(fit.params) for _ in range(n_draws))
        return Bootstrap(draws, level, seed, n_draws, _intervals(draws, law.param_names, level), n_draws)
    refits = refit_rows(law, fit.procedure, fit.params, train, weights, fixed, opts)
    kept = tuple(p for p, ok in zip(refits.params, refits.usable, strict=True) if ok)
    return Bootstrap(kept, level, seed, len(kept), _intervals(kept, law.param_names, level), n_draws)


def _intervals(draws: Sequence[Mapping[str, float]], names: Sequence[str], level: float) -> dict[str, tuple[float, float]]:
    return {name: percentile_interval([d[name] for d in draws], level) for name in names}
