"""Refits of one fit under many point weightings (leave-one-size-out folds, bootstrap resamples).

A refit repeats the fit's own procedure, warm-started from its optimum: a
joint fit refits every free parameter at once; a staged fit (MuPT Appendix
A.3.2; Muennighoff et al. for the data-constrained law) refits the base law
first and then the remaining parameters with that row's base held — otherwise
the held-out score and the intervals of a staged fit would be those of a joint
fit started from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lawfit.laws.base import Law, get_law
from lawfit.lbfgs import Status
from lawfit.multistart import FitOptions, minimize_from
from lawfit.points import LossPoints

# A draw that stopped on a failed line search sits at the optimum to the optimiser's precision;
# one that hit the iteration limit (or started where the law is undefined) is not an optimum.
USABLE = (Status.CONVERGED_GRADIENT, Status.CONVERGED_NO_PROGRESS, Status.LINE_SEARCH_FAILED)


@dataclass(frozen=True)
class Refits:
    """One parameter set per weighting row, raw units, fixed ones included; ``usable[i]``: row i reached an optimum."""

    params: tuple[dict[str, float], ...]
    usable: np.ndarray


def refit_rows(
    law: Law,
    procedure: str,
    start: Mapping[str, float],
    train: LossPoints,
    weights: np.ndarray,
    fixed: Mapping[str, float],
    opts: FitOptions,
) -> Refits:
    """Refit ``law`` from ``start`` under each row of ``weights`` (rows × points), by the fit's ``procedure``."""
    if procedure == "staged" and law.base is not None:
        return _staged(law, start, train, weights, fixed, opts)
    return _joint(law, start, train, weights, fixed, opts)


def _joint(
    law: Law, start: Mapping[str, float], train: LossPoints, weights: np.ndarray, fixed: Mapping[str, float],
    opts: FitOptions,
) -> Refits:
    rows = weights.shape[0]
    free = [n for n in law.param_names if n not in fixed]
    starts = {n: np.full(rows, start[n]) for n in free}
    run = minimize_from(law, train, starts, fixed, opts, weights=weights, rows=np.arange(rows))
    raw = run.coords.to_raw(run.batch.x)
    params = tuple({k: float(raw[k][i]) for k in law.param_names} for i in range(rows))
    return Refits(params, np.isin(run.batch.status, USABLE) & np.isfinite(run.batch.f))


def _staged(
    law: Law, start: Mapping[str, float], train: LossPoints, weights: np.ndarray, fixed: Mapping[str, float],
    opts: FitOptions,
) -> Refits:
    assert law.base is not None
    base_law = get_law(law.base)
    base_fixed = {k: v for k, v in fixed.items() if k in base_law.param_names}
    in_base = base_points_mask(law, train, len([n for n in base_law.param_names if n not in base_fixed]))
    base_train = train.subset(in_base)
    base = _joint(base_law, start, base_train, weights[:, in_base], base_fixed, opts)
    params: list[dict[str, float]] = []
    usable = base.usable.copy()
    for i, base_params in enumerate(base.params):
        held = {k: float(np.clip(v, law.spec(k).lower, law.spec(k).upper)) for k, v in base_params.items()}
        held.update(fixed)
        extra = [n for n in law.param_names if n not in held]
        if not extra:
            params.append(held)
            continue
        run = minimize_from(law, train, {n: np.array([start[n]]) for n in extra}, held, opts,
                            weights=weights[i : i + 1], rows=np.zeros(1, dtype=int))
        params.append({k: float(run.params[k]) for k in law.param_names})
        usable[i] &= bool(np.isin(run.batch.status[0], USABLE) and np.isfinite(run.batch.f[0]))
    return Refits(tuple(params), usable)


def base_points_mask(law: Law, points: LossPoints, n_free: int) -> np.ndarray:
    """Which points a staged fit's base law is fitted on: those with at most ``law.base_max_repeats`` epochs
    (the data-constrained law's Chinchilla stage), when enough remain; else all."""
    everything = np.ones(len(points), dtype=bool)
    if law.base_max_repeats is None or not points.has_unique_tokens:
        return everything
    few = points.D / points.U_D <= law.base_max_repeats
    return few if int(np.sum(few)) > n_free else everything
