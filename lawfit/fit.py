"""Fitting a law to loss points the way MuPT (Appendix A.5) and the Chinchilla replication do.

Objective: Σ Huber_delta(log L̂ − log L) (MuPT Eq. 16), minimised by L-BFGS from
a grid of initialisations, keeping the best. Laws with a ``base`` (SMS: Eq. 4
first; data-constrained: Chinchilla first) are fitted in stages — base law,
then the remaining parameters on top of it (MuPT Appendix A.3.2; the
procedure of Muennighoff et al.) — and jointly. The staged fit is the paper's;
the joint one, seeded by it, can only be lower on train. ``fit_procedures``
returns both as separate results (what ``fit --compare`` reports);
``fit_law`` returns the one ``FitOptions.procedure`` names. A law's ``guess``
adds a start to the second stage, from the base fit's residuals (lmfit's
``guess()``).

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
from lawfit.refit import base_points_mask, refit_rows
from lawfit.result import Alternative, FitResult, StartsReport
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


PROCEDURES = ("best", "staged", "joint")


def fit_law(
    points: LossPoints, law_name: str, options: FitOptions | None = None, cache: GridCache | None = None
) -> FitResult:
    """Fit ``law_name`` to ``points`` (train split by ``options.train_max_n``) by ``options.procedure`` and score it.

    ``"staged"`` is the paper's procedure for a law with a base (MuPT Appendix A.3.2 for SMS; Muennighoff
    et al. for the data-constrained law), ``"joint"`` fits every parameter at once (seeded by the staged
    optimum), ``"best"`` keeps the lower objective of the two. ``cache`` keeps the full-grid fits for the
    next call (another law of the same comparison); without one, they are made for this call alone.
    """
    opts = options or FitOptions()
    if opts.procedure not in PROCEDURES:
        raise LawfitInputError(f"procedure {opts.procedure!r}: choose one of {', '.join(PROCEDURES)}")
    law = get_law(law_name)
    if opts.procedure == "staged" and law.base is None:
        raise LawfitInputError(f"law {law.name!r} has no staged procedure (it has no base law); fit it jointly")
    wanted = ("staged", "joint") if opts.procedure == "best" else (opts.procedure,)
    fits = _fit(points, law, opts, cache, wanted)
    return min(fits, key=lambda f: f.objective)


def fit_procedures(
    points: LossPoints, law_name: str, options: FitOptions | None = None, cache: GridCache | None = None
) -> tuple[FitResult, ...]:
    """Every procedure of ``law_name`` as its own scored fit: (staged, joint) for a law with a base, else (joint,).

    What ``fit --compare`` reports, so that the paper's staged fits appear as themselves beside the joint ones.
    """
    opts = options or FitOptions()
    return _fit(points, get_law(law_name), opts, cache, ("staged", "joint"))


def _fit(
    points: LossPoints, law: Law, opts: FitOptions, cache: GridCache | None, wanted: tuple[str, ...]
) -> tuple[FitResult, ...]:
    check_fixed(law, opts.fixed)
    if law.uses_unique_tokens and not points.has_unique_tokens:
        raise LawfitInputError(f"{points.source}: law {law.name!r} needs the unique-token column U_D, which is missing")
    train, test = split_by_size(points, opts.train_max_n)
    free = [n for n in law.param_names if n not in opts.fixed]
    if len(train.sizes) < 2 and law.standard_names and {"A", "alpha"} & set(free):
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
    if not free:
        params = {k: float(v) for k, v in opts.fixed.items()}
        optima = {"scored": (params, _objective_at(law, params, train, opts.delta), None)}
    else:
        optima = _optimise(law, train, opts, cache, wanted)
    alternatives = {k: Alternative(objective, params) for k, (params, objective, _) in optima.items()}
    if len(alternatives) < 2:
        alternatives = {}
    results = []
    for procedure, (params, objective, report) in optima.items():
        metrics: dict[str, Metrics | None] = {
            "train": score(law, params, train, opts.delta),
            "test": score(law, params, test, opts.delta) if test is not None else None,
        }
        loso = leave_one_size_out(law, procedure, params, train, opts) if opts.leave_one_size_out and free else None
        results.append(FitResult(
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
            n_convention=points.n_convention,
            fitted_ranges=fitted_ranges(train),
        ))
    return tuple(results)


def fitted_ranges(points: LossPoints) -> dict[str, tuple[float, float]]:
    """Where the law is measured: the points' range of N, D and (with U_D) epochs."""
    ranges = {"N": (float(np.min(points.N)), float(np.max(points.N))),
              "D": (float(np.min(points.D)), float(np.max(points.D)))}
    if points.has_unique_tokens:
        epochs = points.D / points.U_D
        ranges["epochs"] = (float(np.min(epochs)), float(np.max(epochs)))
    return ranges


Optimum = tuple[dict[str, float], float, StartsReport | None]


def _optimise(
    law: Law, train: LossPoints, opts: FitOptions, cache: GridCache | None, wanted: tuple[str, ...]
) -> dict[str, Optimum]:
    """The optimum of each wanted procedure ("staged" only for a law with a base; "joint" always possible)."""
    free = [n for n in law.param_names if n not in opts.fixed]
    fixed = {k: float(v) for k, v in opts.fixed.items()}
    grid = {**law.default_grid, **(opts.grid or {})}
    if not law.base:
        joint = grid_run(law, train, fixed, grid, opts, cache)
        return {"joint": (joint.params, joint.objective, starts_report([joint], law))}
    staged, base_run = _fit_staged(law, train, opts, cache)
    out: dict[str, Optimum] = {}
    if "staged" in wanted:
        out["staged"] = (staged.params, staged.objective, starts_report([staged], law))
    if "joint" in wanted:
        if int(np.prod([len(grid[n]) for n in free])) > MAX_JOINT_GRID_STARTS:
            starts = _seeded_starts(law, free, grid, base_run.distinct_optima(SEED_OPTIMA), float(np.max(train.D)))
        else:
            starts = grid_starts(law, free, grid, float(np.max(train.D)))
        # The staged optimum is one more start: the joint fit is never worse than it on train.
        starts = {n: np.append(starts[n], staged.params[n]) for n in free}
        joint = minimize_from(law, train, starts, fixed, opts)
        out["joint"] = (joint.params, joint.objective, starts_report([joint], law))
    return out


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
    base_train = train.subset(base_points_mask(law, train, len(base_free)))
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


def leave_one_size_out(
    law: Law, procedure: str, params: Mapping[str, float], train: LossPoints, opts: FitOptions
) -> Metrics | None:
    """Refit without each model size in turn, by the fit's own procedure, and score the pooled held-out predictions.

    Every fold starts from the full fit's optimum (a warm start). None with fewer than 3 sizes.
    """
    sizes = train.sizes
    if sizes.shape[0] < 3:
        return None
    free = [n for n in law.param_names if n not in opts.fixed]
    weights = np.stack([np.where(train.N == size, 0.0, train.weight) for size in sizes])
    if np.any(np.sum(weights > 0, axis=1) < len(free)):
        return None
    fixed = {k: float(v) for k, v in opts.fixed.items()}
    folds = refit_rows(law, procedure, params, train, weights, fixed, opts)
    predicted = np.empty(len(train))
    x = train.covariates()
    for size, fold_params in zip(sizes, folds.params, strict=True):
        mask = train.N == size
        predicted[mask] = law.predict(fold_params, x.N[mask], x.D[mask], x.U_D[mask])
    return metrics_from_predictions(train.loss, predicted, opts.delta)
