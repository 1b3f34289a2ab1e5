"""Standard errors and correlations of fitted law parameters from the Hessian of the fit objective.

The objective is F(θ) = Σ_i w_i · Huber_delta(r_i), r_i = log L̂_i − log L_i (MuPT Eq. 15–16). Its
Hessian H is taken by central differences of the exact gradient (``lawfit.objective.Objective``) in the
optimiser's natural coordinates u (log(value) for scale parameters, the value otherwise; no centring),
and the covariance is mapped to raw units by the Jacobian diag(d value/d u) — lmfit's
``_int2ext_cov_x`` recipe; at a stationary point this equals using the Hessian in raw units.
Only free parameters count: fixed ones are constants, tied ones (user laws) are not parameters.

Two forms (``form``):

- ``"sandwich"`` (default): cov = n/(n − p) · H⁻¹ B H⁻¹, B = Σ_i s_i s_iᵀ with s_i = w_i·ψ(r_i)·∂r_i/∂u
  and ψ = Huber' = clip(r, −delta, delta): the covariance of an M-estimator (Huber 1967), with the
  n/(n − p) small-sample factor (HC1). It holds whether the residuals lie inside ±delta (then it is
  σ̂²·(JᵀJ)⁻¹, least squares) or mostly outside (then, as for least absolute deviations, H counts only
  the points inside ±delta and the result is the L1 estimator's 1/(4f(0)²)·(JᵀJ)⁻¹).
- ``"lmfit"``: cov = H⁻¹ · Σ_i w_i r_i² / (n − p), lmfit's convention (covar = inverse(Hessian of χ²)·2,
  scaled by redchi = χ²/(n − p)), since F = χ²/2 when every residual is inside ±delta. With residuals
  beyond delta it overstates the errors (H sees only the points inside): use the sandwich.

A parameter whose Hessian row is zero, or that has weight in a direction of zero or negative
curvature (H not positive definite there), is not identifiable: its stderr and correlations are NaN,
and the note says so. The others come from the pseudo-inverse over the positive-curvature directions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import numpy as np

from lawfit.laws.base import Law, get_law
from lawfit.objective import DEFAULT_DELTA, Coordinates, Objective, huber_derivative
from lawfit.points import LossPoints
from lawfit.result import FitResult, ParameterErrors
from lawfit.scoring import split_by_size

Form = Literal["sandwich", "lmfit"]
# Finite-difference step, relative to max(1, |u|). Small on purpose: a step that moves residuals across ±delta
# changes which points the Hessian counts (at 1e-5 the datablations Chinchilla Hessian came out indefinite).
REL_STEP = 1e-7
NULL_RTOL = 1e-9  # eigenvalues of the scaled Hessian below this × the largest count as zero curvature
NULL_WEIGHT = 1e-3  # a parameter with this much weight in a zero-curvature direction is not identifiable

NOTES: dict[str, str] = {
    "sandwich": "sandwich covariance n/(n-p)·H⁻¹BH⁻¹ of the Huber objective (MuPT Eq. 16), "
    "H its Hessian, B = Σ (w·Huber'·∂r)(w·Huber'·∂r)ᵀ",
    "lmfit": "lmfit convention: inverse Hessian of the Huber objective (MuPT Eq. 16) × residual variance Σw·r²/(n-p)",
}


def standard_errors(
    law: Law,
    params: Mapping[str, float],
    points: LossPoints,
    fixed: Collection[str] | Mapping[str, float] = (),
    delta: float = DEFAULT_DELTA,
    form: Form = "sandwich",
) -> ParameterErrors:
    """Standard errors of ``law``'s free parameters at ``params`` (the optimum of a fit on ``points``).

    ``fixed`` names the held parameters (a mapping's values override ``params``).
    """
    if form not in NOTES:
        raise ValueError(f"unknown form {form!r}; choose one of {', '.join(NOTES)}")
    values = {n: float(params[n]) for n in law.param_names if n in params}
    if isinstance(fixed, Mapping):
        values.update({n: float(v) for n, v in fixed.items()})
    free = tuple(n for n in law.param_names if n not in fixed)
    notes = [NOTES[form]]
    n_points = int(np.sum(points.weight > 0))
    if not free or n_points <= len(free):
        notes.append(f"not computed: {n_points} point(s) for {len(free)} free parameter(s)")
        return _result(free, np.full((len(free), len(free)), np.nan), set(free), form, notes)

    coords = Coordinates(law, free, {n: v for n, v in values.items() if n not in free}, float(np.max(points.D)))
    x, observed = points.covariates(), np.log(points.loss)
    objective = Objective(coords, x, observed, points.weight, delta)
    u0 = coords.to_theta({n: np.array([values[n]]) for n in free})
    hessian = _hessian(objective, u0[0], *coords.bounds())

    # Per-point scores s_i = w_i·ψ(r_i)·∂r_i/∂u, from the law's exact gradient.
    raw = coords.params_of(u0)
    log_hat, grads = law.log_loss(raw, x, True)
    assert grads is not None
    residual = (log_hat - observed)[0]
    jac = np.stack([grads.dense(n, log_hat.shape)[0] * np.ravel(coords.chain(raw, n)) for n in free], axis=1)
    scale = n_points / (n_points - len(free))

    h_inv, unidentified = _pseudo_inverse(hessian)
    if form == "sandwich":
        scores = (points.weight * huber_derivative(residual, delta))[:, None] * jac
        cov_u = scale * h_inv @ (scores.T @ scores) @ h_inv
    else:
        cov_u = h_inv * float(np.sum(points.weight * residual**2)) / (n_points - len(free))
    to_raw = np.array([float(np.ravel(coords.chain(raw, n))[0]) for n in free])
    cov = cov_u * np.outer(to_raw, to_raw)
    cov = 0.5 * (cov + cov.T)  # exactly symmetric: the products above round differently on each side

    names_unidentified = {free[j] for j in unidentified}
    inside = int(np.sum((np.abs(residual) <= delta) & (points.weight > 0)))
    if inside < len(free):
        # H's data term Σ ψ'·∂r∂rᵀ counts only the residuals inside ±delta: what is left is curvature noise.
        names_unidentified = set(free)
        notes.append(f"not computed: {inside} residual(s) inside ±delta={delta:g} for {len(free)} free parameters "
                     "(the Hessian of the Huber objective sees only those); use the bootstrap or a larger delta")
    elif names_unidentified:
        notes.append(f"not identifiable (zero or negative curvature): {', '.join(sorted(names_unidentified))}")
    if len(free) <= inside < n_points:
        notes.append(f"{inside} of {n_points} residuals inside ±delta={delta:g}")
    lower, upper = coords.bounds()
    at_bound = [n for j, n in enumerate(free) if u0[0, j] <= lower[j] or u0[0, j] >= upper[j]]
    if at_bound:
        notes.append(f"at a bound (its stderr ignores the bound): {', '.join(at_bound)}")
    return _result(free, cov, names_unidentified, form, notes)


def fit_standard_errors(fit: FitResult, points: LossPoints, form: Form = "sandwich") -> ParameterErrors:
    """``standard_errors`` for a fit of ``points``: its law, optimum, held parameters, delta and training split."""
    train, _ = split_by_size(points, fit.train_max_n)
    return standard_errors(get_law(fit.law), fit.params, train, fit.fixed, fit.delta, form)


def _hessian(objective: Objective, u: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """∂²F/∂u² by central differences of the exact gradient (one-sided at a bound), symmetrised."""
    n_free = u.shape[0]
    step = REL_STEP * np.maximum(1.0, np.abs(u))
    plus = np.minimum(u + step, upper)
    minus = np.maximum(u - step, lower)
    thetas = np.concatenate([np.tile(u, (n_free, 1)), np.tile(u, (n_free, 1))])
    thetas[np.arange(n_free), np.arange(n_free)] = plus
    thetas[n_free + np.arange(n_free), np.arange(n_free)] = minus
    _, grad = objective.value_and_grad(thetas, np.zeros(2 * n_free, dtype=int))
    hessian = (grad[:n_free] - grad[n_free:]) / (plus - minus)[:, None]
    return 0.5 * (hessian + hessian.T)


def _pseudo_inverse(hessian: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """H⁻¹ over the directions of positive curvature, and the parameters touching any other direction.

    The Hessian is scaled to unit diagonal first, so that the test for zero curvature does not
    depend on the parameters' units.
    """
    n_free = hessian.shape[0]
    diag = np.diag(hessian)
    finite = bool(np.all(np.isfinite(hessian)))
    top = float(np.max(np.abs(diag))) if finite and n_free else 0.0
    ok = np.isfinite(diag) & (diag > NULL_RTOL * top) if finite and top > 0 else np.zeros(n_free, dtype=bool)
    idx = np.flatnonzero(ok)
    bad = set(np.flatnonzero(~ok).tolist())
    inverse = np.zeros((n_free, n_free))
    if idx.size:
        s = 1.0 / np.sqrt(diag[idx])
        eigval, eigvec = np.linalg.eigh(hessian[np.ix_(idx, idx)] * np.outer(s, s))
        positive = eigval > NULL_RTOL * np.max(eigval)
        null_weight = np.max(np.abs(eigvec[:, ~positive]), axis=1) if np.any(~positive) else np.zeros(idx.size)
        bad |= {int(idx[i]) for i in np.flatnonzero(null_weight > NULL_WEIGHT)}
        inv_scaled = (eigvec[:, positive] / eigval[positive]) @ eigvec[:, positive].T
        inverse[np.ix_(idx, idx)] = inv_scaled * np.outer(s, s)
    return inverse, sorted(bad)


def _result(free: tuple[str, ...], cov: np.ndarray, unidentified: set[str], form: str, notes: list[str]) -> ParameterErrors:
    variance = np.diag(cov).copy()
    bad = np.array([n in unidentified for n in free], dtype=bool) | ~(variance > 0)
    variance[bad] = np.nan
    stderr = np.sqrt(variance)
    cov = cov.copy()
    cov[bad, :] = np.nan
    cov[:, bad] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(stderr, stderr)
    np.fill_diagonal(corr, np.where(bad, np.nan, 1.0))
    return ParameterErrors(
        stderr={n: float(stderr[j]) for j, n in enumerate(free)},
        correlation={a: {b: float(corr[i, j]) for j, b in enumerate(free)} for i, a in enumerate(free)},
        covariance={a: {b: float(cov[i, j]) for j, b in enumerate(free)} for i, a in enumerate(free)},
        form=form,
        note="; ".join(notes),
    )
