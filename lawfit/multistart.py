"""Batched multi-start minimisation of the fit objective, and the cache of full-grid fits.

Objective: Σ Huber_delta(log L̂ − log L) (MuPT Eq. 16) over the points, minimised
by the batched L-BFGS of ``lawfit.lbfgs`` from many starts at once; a start's
coordinates are those of ``lawfit.objective.Coordinates``. ``lawfit.fit`` builds
each law's fitting procedure from these runs.

Full-grid fits are kept in a ``GridCache`` that the caller owns and passes to
``fit_law``: a comparison passes one to all its laws, so that the SMS law's
stage 1 is the Eq. 4 fit the "nd" law has just made.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lawfit.laws.base import Law
from lawfit.lbfgs import BatchResult, LbfgsOptions, Status, minimize_batched
from lawfit.memo import Memo
from lawfit.objective import DEFAULT_DELTA, Coordinates, Objective
from lawfit.points import LossPoints
from lawfit.result import StartsReport

# Optima within this relative objective of each other count as the same optimum.
SAME_OPTIMUM_RTOL = 1e-6
# Full-grid fits a GridCache keeps: one per law and split of a comparison is plenty.
GRID_CACHE_SIZE = 8


@dataclass(frozen=True)
class FitOptions:
    """How ``fit_law`` fits: the objective's Huber delta, held parameters, starts, optimiser and split."""

    delta: float = DEFAULT_DELTA
    fixed: Mapping[str, float] = field(default_factory=dict)
    grid: Mapping[str, Sequence[float]] | None = None  # replaces the law's default grid for the named parameters
    lbfgs: LbfgsOptions = field(default_factory=LbfgsOptions)
    train_max_n: float | None = None
    leave_one_size_out: bool = False
    # "staged" (the paper's procedure for a law with a base), "joint", or "best": the lower objective of the two.
    procedure: str = "best"


@dataclass(frozen=True)
class MultiStart:
    """The outcome of one batched multi-start minimisation."""

    coords: Coordinates
    batch: BatchResult
    params: dict[str, float]  # best start, raw units, fixed included
    objective: float

    def distinct_optima(self, limit: int) -> list[dict[str, float]]:
        """Up to ``limit`` converged optima with distinct objectives, best first."""
        ok = np.flatnonzero(self.batch.converged | (self.batch.status == Status.LINE_SEARCH_FAILED))
        ok = ok[np.isfinite(self.batch.f[ok])]
        order = ok[np.argsort(self.batch.f[ok])]
        chosen: list[int] = []
        for i in order:
            if all(abs(self.batch.f[i] - self.batch.f[j]) > SAME_OPTIMUM_RTOL * abs(self.batch.f[j]) for j in chosen):
                chosen.append(int(i))
            if len(chosen) >= limit:
                break
        raw = self.coords.to_raw(self.batch.x[chosen])
        return [{k: float(v[i]) for k, v in raw.items()} for i in range(len(chosen))]


class GridCache(Memo[tuple[object, ...], MultiStart]):
    """Full-grid multi-start fits by (law, points, fixed, grid, options), for the fits of one comparison to share.

    The caller owns it (one per comparison, campaign round or dashboard) and
    passes it to ``fit_law`` for each law; thread-safe, as every ``Memo``.
    """

    def __init__(self, size: int = GRID_CACHE_SIZE) -> None:
        super().__init__(size)


def grid_starts(law: Law, free: Sequence[str], grid: Mapping[str, Sequence[float]], d_ref: float) -> dict[str, np.ndarray]:
    """The Cartesian product of the grid over the free parameters, in raw units."""
    axes = []
    for name in free:
        values = np.asarray(grid[name], dtype=float)
        if law.spec(name).scale_by_tokens:
            values = values / d_ref  # grid values of token-scaled parameters are per D_ref
        axes.append(values)
    combos = np.array(list(itertools.product(*axes))) if axes else np.zeros((1, 0))
    return {name: combos[:, j] for j, name in enumerate(free)}


def minimize_from(
    law: Law,
    points: LossPoints,
    starts: Mapping[str, np.ndarray],
    fixed: Mapping[str, float],
    options: FitOptions,
    weights: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> MultiStart:
    """Run the batched L-BFGS from ``starts`` (raw values per free parameter)."""
    free = tuple(n for n in law.param_names if n not in fixed)
    x = points.covariates()
    centers = {"log_N": float(np.mean(x.log_N)), "log_D": float(np.mean(x.log_D)), "log_U_D": float(np.mean(x.log_U_D))}
    coords = Coordinates(law, free, dict(fixed), float(np.max(points.D)), centers)
    objective = Objective(
        coords, x, np.log(points.loss), points.weight if weights is None else weights, options.delta
    )
    lower, upper = coords.bounds()
    theta0 = coords.to_theta(starts)
    if rows is None:
        batch = minimize_batched(objective.value_and_grad, theta0, lower, upper, options.lbfgs)
    else:
        # Rows are different problems (their own weights): one row's objective says nothing about whether
        # another can still win, so no start is abandoned by comparison with the best.
        lbfgs = replace(options.lbfgs, abandon_after_iter=None)
        batch = minimize_batched(lambda t, r: objective.value_and_grad(t, rows[r]), theta0, lower, upper, lbfgs)
    best = int(np.argmin(batch.f))
    raw = coords.to_raw(batch.x[best : best + 1])
    return MultiStart(coords, batch, {k: float(v[0]) for k, v in raw.items()}, float(batch.f[best]))


def starts_report(runs: Sequence[MultiStart], law: Law) -> StartsReport:
    """How many starts converged and how far apart their optima are."""
    f = np.concatenate([r.batch.f for r in runs])
    status = np.concatenate([r.batch.status for r in runs])
    converged = np.isin(status, [Status.CONVERGED_GRADIENT, Status.CONVERGED_NO_PROGRESS])
    by_status = {s.name.lower(): int(np.sum(status == s)) for s in Status if s != Status.RUNNING}
    best = float(np.min(f))
    conv_f = np.sort(f[converged & np.isfinite(f)])
    distinct: list[float] = []
    for value in conv_f:
        if not distinct or value - distinct[-1] > SAME_OPTIMUM_RTOL * abs(distinct[-1]):
            distinct.append(float(value))
    near = np.flatnonzero(np.isfinite(f) & (f <= best * (1 + SAME_OPTIMUM_RTOL) + 1e-300))
    spread: dict[str, float] = {}
    best_params = min(runs, key=lambda r: r.objective).params
    for r in runs:
        idx = np.flatnonzero(np.isfinite(r.batch.f) & (r.batch.f <= best * (1 + SAME_OPTIMUM_RTOL) + 1e-300))
        if idx.size == 0:
            continue
        raw = r.coords.to_raw(r.batch.x[idx])
        for name in r.coords.free:
            ref = abs(best_params[name]) or 1.0
            dev = float(np.max(np.abs(raw[name] - best_params[name])) / ref)
            spread[name] = max(spread.get(name, 0.0), dev)
    quantiles = (
        {
            "best": best,
            "median": float(np.median(conv_f)),
            "worst": float(conv_f[-1]),
        }
        if conv_f.size
        else {"best": best, "median": float("nan"), "worst": float("nan")}
    )
    return StartsReport(
        total=int(f.shape[0]),
        converged=int(np.sum(converged)),
        by_status=by_status,
        near_best=int(near.shape[0]),
        distinct_optima=len(distinct),
        converged_objective=quantiles,
        param_spread_near_best={k: spread[k] for k in law.param_names if k in spread},
    )


def grid_run(
    law: Law,
    points: LossPoints,
    fixed: Mapping[str, float],
    grid: Mapping[str, Sequence[float]],
    opts: FitOptions,
    cache: GridCache | None = None,
) -> MultiStart:
    """The multi-start fit from the full grid, taken from ``cache`` for the same law, points, grid and options."""
    free = [n for n in law.param_names if n not in fixed]

    def run() -> MultiStart:
        return minimize_from(law, points, grid_starts(law, free, grid, float(np.max(points.D))), fixed, opts)

    if cache is None:
        return run()
    # Only the grid of the free parameters counts: a comparison's grid may name other laws' parameters.
    free_grid = repr([(n, tuple(grid[n])) for n in free])
    key = (law.name, points.content_hash(), tuple(sorted(fixed.items())), free_grid, opts.delta, opts.lbfgs)
    return cache.get(key, run)
