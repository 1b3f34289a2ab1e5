"""Fitting a law to loss points the way MuPT (Appendix A.5) and the Chinchilla replication do.

Objective: Σ Huber_delta(log L̂ − log L) (MuPT Eq. 16), minimised by L-BFGS from
a grid of initialisations, keeping the best. Laws with a ``base`` (SMS: Eq. 4
first; data-constrained: Chinchilla first) are also fitted in stages — base law,
then the remaining parameters on top of it (MuPT Appendix A.3.2) — and jointly;
both are reported and the lower objective is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lawfit.errors import LawfitInputError
from lawfit.laws.base import Law, get_law
from lawfit.lbfgs import BatchResult, LbfgsOptions, Status, minimize_batched
from lawfit.objective import DEFAULT_DELTA, Coordinates, Objective
from lawfit.points import LossPoints
from lawfit.result import Alternative, FitResult, StartsReport
from lawfit.scoring import Metrics, metrics_from_predictions, score, split_by_size

# Above this many grid starts a law's joint fit starts from the best distinct
# optima of its base fit crossed with the grid of its extra parameters.
MAX_JOINT_GRID_STARTS = 3_000
SEED_OPTIMA = 16
# Optima within this relative objective of each other count as the same optimum.
SAME_OPTIMUM_RTOL = 1e-6
# Full-grid fits by (law, points, fixed, grid, options): the SMS law's stage 1 is
# the Eq. 4 fit that a law comparison has just run.
_GRID_RUNS: dict[tuple[object, ...], MultiStart] = {}


@dataclass(frozen=True)
class FitOptions:
    delta: float = DEFAULT_DELTA
    fixed: Mapping[str, float] = field(default_factory=dict)
    grid: Mapping[str, Sequence[float]] | None = None  # replaces the law's default grid for the named parameters
    lbfgs: LbfgsOptions = field(default_factory=LbfgsOptions)
    train_max_n: float | None = None
    leave_one_size_out: bool = False


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


def check_fixed(law: Law, fixed: Mapping[str, float]) -> None:
    for name, value in fixed.items():
        if name not in law.param_names:
            raise LawfitInputError(
                f"--fix: law {law.name!r} has no parameter {name!r}; its parameters are {', '.join(law.param_names)}"
            )
        problem = law.spec(name).check(value)
        if problem:
            raise LawfitInputError(f"--fix: {problem}")


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
        batch = minimize_batched(
            lambda t, r: objective.value_and_grad(t, rows[r]), theta0, lower, upper, options.lbfgs
        )
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


def _base_points(law: Law, points: LossPoints, n_free: int) -> LossPoints:
    """The points the base law of a staged fit is fitted on (few-epoch runs for data_constrained)."""
    if law.base_max_repeats is None or not points.has_unique_tokens:
        return points
    few = points.D / points.U_D <= law.base_max_repeats
    return points.subset(few) if int(np.sum(few)) > n_free else points


def _overfit_regression_start(law: Law, base_params: Mapping[str, float], points: LossPoints) -> dict[str, float]:
    """Initial overfitting parameters from a linear regression of the base law's residuals (MuPT A.3.2).

    The residual L − L̂_Eq4 is regressed on [D, log N, −log U_D, −1] over the
    points where it is positive (the overfitting side), giving k_d, k_n, k_u, k_in.
    """
    x = points.covariates()
    base = get_law(law.base) if law.base else law
    residual = points.loss - base.predict(base_params, x.N, x.D, x.U_D)
    rows = residual > 0 if int(np.sum(residual > 0)) >= 4 else np.ones_like(residual, dtype=bool)
    design = np.column_stack([x.D, x.log_N, -x.log_U_D, -np.ones_like(x.D)])[rows]
    scale = np.max(np.abs(design), axis=0)
    coef, *_ = np.linalg.lstsq(design / scale, residual[rows], rcond=None)
    coef = coef / scale
    start = {"k_d": max(float(coef[0]), 0.0), "k_n": float(coef[1]), "k_u": float(coef[2]), "k_in": float(coef[3])}
    return {k: float(np.clip(v, law.spec(k).lower, law.spec(k).upper)) for k, v in start.items()}


def fit_law(points: LossPoints, law_name: str, options: FitOptions | None = None) -> FitResult:
    """Fit ``law_name`` to ``points`` (train split by ``options.train_max_n``) and score it."""
    opts = options or FitOptions()
    law = get_law(law_name)
    check_fixed(law, opts.fixed)
    if law.uses_unique_tokens and not points.has_unique_tokens:
        raise LawfitInputError(f"{points.source}: law {law.name!r} needs the unique-token column U_D, which is missing")
    train, test = split_by_size(points, opts.train_max_n)
    free = [n for n in law.param_names if n not in opts.fixed]
    if len(train) < len(free):
        raise LawfitInputError(
            f"{points.source}: {len(train)} training point(s) for {len(free)} free parameter(s) of {law.name!r}; "
            "a fit needs at least as many points as free parameters"
        )

    alternatives: dict[str, Alternative] = {}
    if not free:
        params = {k: float(v) for k, v in opts.fixed.items()}
        objective = _objective_at(law, params, train, opts.delta)
        procedure, report = "scored", None
    else:
        grid = {**law.default_grid, **(opts.grid or {})}
        runs: list[MultiStart] = []
        extra_starts: list[dict[str, float]] = []
        seeds: list[dict[str, float]] = []
        if law.base:
            staged, base_run = _fit_staged(law, train, opts)
            runs.append(staged)
            alternatives["staged"] = Alternative(staged.objective, staged.params)
            extra_starts.append(staged.params)
            seeds = base_run.distinct_optima(SEED_OPTIMA)
        n_grid = int(np.prod([len(grid[n]) for n in free]))
        fixed = {k: float(v) for k, v in opts.fixed.items()}
        if not law.base:
            joint = grid_run(law, train, fixed, grid, opts)
        else:
            if n_grid > MAX_JOINT_GRID_STARTS:
                starts = _seeded_starts(law, free, grid, seeds, float(np.max(train.D)))
            else:
                starts = grid_starts(law, free, grid, float(np.max(train.D)))
            for extra in extra_starts:
                starts = {n: np.append(starts[n], extra[n]) for n in free}
            joint = minimize_from(law, train, starts, fixed, opts)
        runs.append(joint)
        if law.base:
            alternatives["joint"] = Alternative(joint.objective, joint.params)
        chosen = min(runs, key=lambda r: r.objective)
        params, objective = chosen.params, chosen.objective
        procedure = "joint" if chosen is joint else "staged"
        report = starts_report([joint], law)

    metrics: dict[str, Metrics | None] = {
        "train": score(law, params, train, opts.delta),
        "test": score(law, params, test, opts.delta) if test is not None else None,
    }
    loso = leave_one_size_out(law, params, train, opts) if opts.leave_one_size_out and free else None
    return FitResult(
        law=law.name,
        params={k: params[k] for k in law.param_names},
        units={p.name: p.unit for p in law.params},
        fixed=tuple(sorted(opts.fixed)),
        objective=objective,
        n_points=len(train),
        n_runs=train.n_runs,
        points_hash=train.content_hash(),
        delta=opts.delta,
        train_max_n=opts.train_max_n,
        metrics=metrics,
        leave_one_size_out=loso,
        starts=report,
        procedure=procedure,
        alternatives=alternatives,
        source=points.source,
    )


def _objective_at(law: Law, params: Mapping[str, float], points: LossPoints, delta: float) -> float:
    coords = Coordinates(law, (), dict(params), float(np.max(points.D)))
    objective = Objective(coords, points.covariates(), np.log(points.loss), points.weight, delta)
    return float(objective.value(np.zeros((1, 0)), np.zeros(1, dtype=int))[0])


def grid_run(
    law: Law, points: LossPoints, fixed: Mapping[str, float], grid: Mapping[str, Sequence[float]], opts: FitOptions
) -> MultiStart:
    """The multi-start fit from the full grid, remembered for the same law, points, grid and options."""
    key = (law.name, points.content_hash(), tuple(sorted(fixed.items())), repr(sorted(grid.items())), opts.delta, opts.lbfgs)
    run = _GRID_RUNS.get(key)
    if run is None:
        free = [n for n in law.param_names if n not in fixed]
        run = minimize_from(law, points, grid_starts(law, free, grid, float(np.max(points.D))), fixed, opts)
        if len(_GRID_RUNS) >= 8:
            _GRID_RUNS.pop(next(iter(_GRID_RUNS)))
        _GRID_RUNS[key] = run
    return run


def _fit_staged(law: Law, train: LossPoints, opts: FitOptions) -> tuple[MultiStart, MultiStart]:
    """Stage 1: the base law (its own full fit); stage 2: the other parameters with the base held."""
    assert law.base is not None
    base_law = get_law(law.base)
    base_fixed = {k: v for k, v in opts.fixed.items() if k in base_law.param_names}
    base_free = [n for n in base_law.param_names if n not in base_fixed]
    base_train = _base_points(law, train, len(base_free))
    base_grid = {**base_law.default_grid, **{k: v for k, v in (opts.grid or {}).items() if k in base_law.param_names}}
    base_run = grid_run(base_law, base_train, base_fixed, base_grid, opts)

    held = {k: float(np.clip(v, law.spec(k).lower, law.spec(k).upper)) for k, v in base_run.params.items()}
    held.update(opts.fixed)
    extra_free = [n for n in law.param_names if n not in held]
    grid = {**law.default_grid, **(opts.grid or {})}
    starts = grid_starts(law, extra_free, grid, float(np.max(train.D)))
    if {"k_d", "k_n", "k_u", "k_in"} <= set(extra_free):
        regression = _overfit_regression_start(law, held, train)
        starts = {n: np.append(starts[n], regression[n]) for n in extra_free}
    stage2 = minimize_from(law, train, starts, held, opts)
    return stage2, base_run


def _seeded_starts(
    law: Law, free: Sequence[str], grid: Mapping[str, Sequence[float]], seeds: Sequence[Mapping[str, float]], d_ref: float
) -> dict[str, np.ndarray]:
    """Best distinct optima of the base law × the grid of the law's extra parameters."""
    base_names = [n for n in free if seeds and n in seeds[0]]
    extra_names = [n for n in free if n not in base_names]
    extra = grid_starts(law, extra_names, grid, d_ref)
    n_extra = len(next(iter(extra.values()))) if extra else 1
    columns: dict[str, list[float]] = {n: [] for n in free}
    for seed in seeds:
        for i in range(n_extra):
            for n in base_names:
                columns[n].append(float(np.clip(seed[n], law.spec(n).lower, law.spec(n).upper)))
            for n in extra_names:
                columns[n].append(float(extra[n][i]))
    return {n: np.asarray(v) for n, v in columns.items()}


def leave_one_size_out(law: Law, params: Mapping[str, float], train: LossPoints, opts: FitOptions) -> Metrics | None:
    """Refit without each model size in turn and score the pooled held-out predictions.

    Every fold starts from the full fit's optimum (a warm start; the folds run
    as one batch, each with its own weights). None with fewer than 3 sizes.
    """
    sizes = train.sizes
    if sizes.shape[0] < 3:
        return None
    free = [n for n in law.param_names if n not in opts.fixed]
    weights = np.stack([np.where(train.N == size, 0.0, train.weight) for size in sizes])
    if np.any(np.sum(weights > 0, axis=1) < len(free)):
        return None
    starts = {n: np.full(sizes.shape[0], params[n]) for n in free}
    fixed = {k: float(v) for k, v in opts.fixed.items()}
    run = minimize_from(law, train, starts, fixed, opts, weights=weights, rows=np.arange(sizes.shape[0]))
    fold_params = run.coords.to_raw(run.batch.x)
    predicted = np.empty(len(train))
    x = train.covariates()
    for i, size in enumerate(sizes):
        mask = train.N == size
        p_i = {k: float(v[i]) for k, v in fold_params.items()}
        predicted[mask] = law.predict(p_i, x.N[mask], x.D[mask], x.U_D[mask])
    return metrics_from_predictions(train.loss, predicted, opts.delta)

