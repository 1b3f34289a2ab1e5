"""Fitting a law to loss points the way MuPT (Appendix A.5) and the Chinchilla replication do.

Objective: Σ Huber_delta(log L̂ − log L) (MuPT Eq. 16), minimised by L-BFGS from
a grid of initialisations, keeping the best. Laws with a ``base`` (SMS: Eq. 4
first; data-constrained: Chinchilla first) are also fitted in stages — base law,
then the remaining parameters on top of it (MuPT Appendix A.3.2) — and jointly;
both are reported and the lower objective is used. A law's ``guess`` adds a
start to the second stage, from the base fit's residuals (lmfit's ``guess()``).

The multi-start runs themselves, and the ``GridCache`` that a comparison
passes to ``fit_law`` for each of its laws, are in ``lawfit.multistart``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lawfit.errors import LawfitInputError
from lawfit.laws.base import Law, get_law
from lawfit.multistart import FitOptions, GridCache, MultiStart, grid_run, grid_starts, minimize_from, starts_report
from lawfit.objective import Coordinates, Objective
from lawfit.points import LossPoints
from lawfit.result import Alternative, FitResult
from lawfit.scoring import Metrics, metrics_from_predictions, score, split_by_size

# Above this many grid starts a law's joint fit starts from the best distinct
# optima of its base fit crossed with the grid of its extra parameters.
MAX_JOINT_GRID_STARTS = 3_000
SEED_OPTIMA = 16


def check_fixed(law: Law, fixed: Mapping[str, float]) -> None:
    for name, value in fixed.items():
        if name not in law.param_names:
            raise LawfitInputError(
                f"--fix: law {law.name!r} has no parameter {name!r}; its parameters are {', '.join(law.param_names)}"
            )
        problem = law.spec(name).check(value)
        if problem:
            raise LawfitInputError(f"--fix: {problem}")


def _base_points(law: Law, points: LossPoints, n_free: int) -> LossPoints:
    """The points the base law of a staged fit is fitted on (few-epoch runs for data_constrained)."""
    if law.base_max_repeats is None or not points.has_unique_tokens:
        return points
    few = points.D / points.U_D <= law.base_max_repeats
    return points.subset(few) if int(np.sum(few)) > n_free else points


def fit_law(
    points: LossPoints, law_name: str, options: FitOptions | None = None, cache: GridCache | None = None
) -> FitResult:
    """Fit ``law_name`` to ``points`` (train split by ``options.train_max_n``) and score it.

    ``cache`` keeps the full-grid fits for the next call (another law of the same
    comparison); without one, they are made for this call alone.
    """
    opts = options or FitOptions()
    law = get_law(law_name)
    check_fixed(law, opts.fixed)
    if law.uses_unique_tokens and not points.has_unique_tokens:
        raise LawfitInputError(f"{points.source}: law {law.name!r} needs the unique-token column U_D, which is missing")
    train, test = split_by_size(points, opts.train_max_n)
    free = [n for n in law.param_names if n not in opts.fixed]
    if len(train.sizes) < 2 and {"A", "alpha"} & set(free):
        # With one N the size term A/N^alpha is a constant: any alpha fits (the starts scatter A over 1e24).
        raise LawfitInputError(
            f"{points.source}: every training point has the same model size (N = {train.sizes[0]:g}); the size term "
            "A/N^alpha cannot be identified from one size: add runs of another size, or hold it with --fix A=...,alpha=..."
        )
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
            staged, base_run = _fit_staged(law, train, opts, cache)
            runs.append(staged)
            alternatives["staged"] = Alternative(staged.objective, staged.params)
            extra_starts.append(staged.params)
            seeds = base_run.distinct_optima(SEED_OPTIMA)
        n_grid = int(np.prod([len(grid[n]) for n in free]))
        fixed = {k: float(v) for k, v in opts.fixed.items()}
        if not law.base:
            joint = grid_run(law, train, fixed, grid, opts, cache)
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


def _fit_staged(
    law: Law, train: LossPoints, opts: FitOptions, cache: GridCache | None
) -> tuple[MultiStart, MultiStart]:
    """Stage 1: the base law (its own full fit); stage 2: the other parameters with the base held."""
    assert law.base is not None
    base_law = get_law(law.base)
    base_fixed = {k: v for k, v in opts.fixed.items() if k in base_law.param_names}
    base_free = [n for n in base_law.param_names if n not in base_fixed]
    base_train = _base_points(law, train, len(base_free))
    base_grid = {**base_law.default_grid, **{k: v for k, v in (opts.grid or {}).items() if k in base_law.param_names}}
    base_run = grid_run(base_law, base_train, base_fixed, base_grid, opts, cache)

    held = {k: float(np.clip(v, law.spec(k).lower, law.spec(k).upper)) for k, v in base_run.params.items()}
    held.update(opts.fixed)
    extra_free = [n for n in law.param_names if n not in held]
    grid = {**law.default_grid, **(opts.grid or {})}
    starts = grid_starts(law, extra_free, grid, float(np.max(train.D)))
    if law.guess is not None and extra_free:
        # One more start: the law's guess from the base fit's residuals (for SMS, MuPT A.3.2's regression).
        guess = law.guess(held, train.covariates(), train.loss)
        missing = [n for n in extra_free if n not in guess]
        if missing:
            raise ValueError(f"law {law.name!r}: its guess gave no start for {', '.join(missing)}")
        spec = law.spec
        starts = {n: np.append(starts[n], np.clip(guess[n], spec(n).lower, spec(n).upper)) for n in extra_free}
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

