"""Planning with a fitted law: the compute-optimal N*, D*, epochs* for a FLOP budget
(MuPT Eq. 1 with C = 6·N·D), and the best token count for a fixed model size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from lawfit.bootstrap import percentile_interval
from lawfit.errors import LawfitInputError
from lawfit.extrapolation import frontier_warning, range_warnings, unique_tokens_warning
from lawfit.laws.base import Covariates, Law, get_law
from lawfit.names import FLOPS_PER_PARAM_TOKEN  # C ≈ 6·N·D
from lawfit.result import FitResult

GRID_POINTS = 1201
MIN_PARAMS = 1e3
MIN_TOKENS = 1e3


@dataclass(frozen=True)
class ComputeOptimalPlan:
    flops: float
    unique_tokens: float | None
    n_opt: float
    d_opt: float
    epochs: float | None  # D*/U_D; None without a unique-token budget
    loss: float
    at_search_edge: bool  # the optimum lies on the edge of the searched N range
    interval: Mapping[str, tuple[float, float]] | None  # n_opt, d_opt, epochs, loss
    level: float | None
    closed_form: Mapping[str, float] | None  # Chinchilla's MuPT Eq. 10, for the chinchilla law
    warnings: tuple[str, ...] = ()  # extrapolation beyond the fitted ranges, a rising frontier (lawfit.extrapolation)

    def to_dict(self) -> dict[str, object]:
        return {
            "convention": "C = 6·N·D",
            "nd": self.flops / FLOPS_PER_PARAM_TOKEN,
            "flops": self.flops,
            "unique_tokens": self.unique_tokens,
            "n_opt": self.n_opt,
            "d_opt": self.d_opt,
            "epochs": self.epochs,
            "loss": self.loss,
            "at_search_edge": self.at_search_edge,
            "interval": None if self.interval is None else {k: list(v) for k, v in self.interval.items()},
            "level": self.level,
            "closed_form": None if self.closed_form is None else dict(self.closed_form),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class TokenPlan:
    """For a fixed N and U_D: the token count where the law's loss is lowest, and the loss over epochs."""

    n_params: float
    unique_tokens: float
    d_best: float
    epochs_best: float
    loss_best: float
    overfits: bool  # the loss rises again within max_epochs (an overfitting onset)
    epochs: tuple[float, ...]
    losses: tuple[float, ...]
    interval: Mapping[str, tuple[float, float]] | None
    level: float | None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "warnings": list(self.warnings),
            "n_params": self.n_params,
            "unique_tokens": self.unique_tokens,
            "d_best": self.d_best,
            "epochs_best": self.epochs_best,
            "loss_best": self.loss_best,
            "overfits": self.overfits,
            "loss_over_epochs": [{"epochs": e, "loss": v} for e, v in zip(self.epochs, self.losses, strict=True)],
            "interval": None if self.interval is None else {k: list(v) for k, v in self.interval.items()},
            "level": self.level,
        }


def chinchilla_closed_form(params: Mapping[str, float], flops: float) -> dict[str, float] | None:
    """N_opt = G·(C/6)^(beta/(alpha+beta)), D_opt = G^-1·(C/6)^(alpha/(alpha+beta)),
    G = (alpha·A / (beta·B))^(1/(alpha+beta))   (MuPT Eq. 10).

    None when an exponent or coefficient is 0 (a fit at its bound): the loss then does
    not fall with N or with D, and there is no interior optimum to write down."""
    a, b = params["alpha"], params["beta"]
    if min(a, b, params["A"], params["B"]) <= 0:
        return None
    g = (a * params["A"] / (b * params["B"])) ** (1.0 / (a + b))
    c6 = flops / FLOPS_PER_PARAM_TOKEN
    return {"n_opt": g * c6 ** (b / (a + b)), "d_opt": c6 ** (a / (a + b)) / g}


def _loss_on_n_grid(law: Law, draws: Sequence[Mapping[str, float]], flops: float, unique: float | None, log_n: np.ndarray) -> np.ndarray:
    n = np.exp(log_n)
    d = flops / (FLOPS_PER_PARAM_TOKEN * n)
    x = Covariates.of(n, d, unique if unique is not None else None)
    stacked = {k: np.array([dr[k] for dr in draws]) for k in law.param_names}
    with np.errstate(all="ignore"):
        return law.predict_many(stacked, x)


def _minimise_over_n(law: Law, params: Mapping[str, float], flops: float, unique: float | None, log_n: np.ndarray, start: int) -> tuple[float, float]:
    """Refine the grid minimum at index ``start`` with a bounded scalar search on log N."""
    lo = log_n[max(start - 1, 0)]
    hi = log_n[min(start + 1, log_n.shape[0] - 1)]

    def loss_at(ln: float) -> float:
        n = math.exp(ln)
        d = flops / (FLOPS_PER_PARAM_TOKEN * n)
        value = float(law.predict(params, n, d, unique if unique is not None else d))
        return value if math.isfinite(value) else float("inf")

    if hi <= lo:
        return lo, loss_at(lo)
    res = minimize_scalar(loss_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return float(res.x), float(res.fun)


def _check_budget(flops: float, unique_tokens: float | None) -> None:
    if not (math.isfinite(flops) and flops > 0):
        raise LawfitInputError(f"--flops must be a positive number, got {flops}")
    if flops / FLOPS_PER_PARAM_TOKEN < MIN_PARAMS * MIN_TOKENS * 10:
        raise LawfitInputError(f"--flops {flops:g} is too small to train anything (C/6 < {MIN_PARAMS * MIN_TOKENS * 10:g})")
    if unique_tokens is not None and not (math.isfinite(unique_tokens) and unique_tokens > 0):
        raise LawfitInputError(f"--unique-tokens must be a positive number, got {unique_tokens}")


def plan_compute_optimal(fit: FitResult, flops: float, unique_tokens: float | None = None) -> ComputeOptimalPlan:
    """argmin over N of L(N, C/(6N), U_D) (MuPT Eq. 1), with bootstrap intervals when the fit has draws.

    Without ``unique_tokens`` the data is taken as unlimited (U_D = D: one epoch).
    """
    _check_budget(flops, unique_tokens)
    law = get_law(fit.law)
    c6 = flops / FLOPS_PER_PARAM_TOKEN
    log_n = np.linspace(math.log(MIN_PARAMS), math.log(c6 / MIN_TOKENS), GRID_POINTS)
    grid_loss = _loss_on_n_grid(law, [fit.params], flops, unique_tokens, log_n)[0]
    best_index = int(np.argmin(np.where(np.isfinite(grid_loss), grid_loss, np.inf)))
    ln_opt, loss = _minimise_over_n(law, fit.params, flops, unique_tokens, log_n, best_index)
    n_opt = math.exp(ln_opt)
    d_opt = c6 / n_opt
    epochs = d_opt / unique_tokens if unique_tokens is not None else None
    at_edge = best_index in (0, GRID_POINTS - 1)

    interval = None
    level = None
    if fit.bootstrap is not None and fit.bootstrap.draws:
        level = fit.bootstrap.level
        draw_n, draw_loss = optimum_per_draw(fit, flops, unique_tokens)
        draw_d = c6 / draw_n
        interval = {
            "n_opt": percentile_interval(draw_n, level),
            "d_opt": percentile_interval(draw_d, level),
            "loss": percentile_interval(draw_loss, level),
        }
        if unique_tokens is not None:
            interval["epochs"] = percentile_interval(draw_d / unique_tokens, level)
    closed = chinchilla_closed_form(fit.params, flops) if law.name == "chinchilla" else None
    warnings = [
        *range_warnings(fit, {"N": n_opt, "D": d_opt, "epochs": epochs}),
        *unique_tokens_warning(fit, unique_tokens),
        *frontier_warning(lambda c: _optimal_loss(law, fit.params, c, unique_tokens), flops),
    ]
    return ComputeOptimalPlan(flops, unique_tokens, n_opt, d_opt, epochs, loss, at_edge, interval, level, closed,
                              tuple(warnings))


def _optimal_loss(law: Law, params: Mapping[str, float], flops: float, unique_tokens: float | None) -> float:
    """The compute-optimal loss at ``flops`` (grid argmin over log N, refined)."""
    log_n = np.linspace(math.log(MIN_PARAMS), math.log(flops / FLOPS_PER_PARAM_TOKEN / MIN_TOKENS), GRID_POINTS)
    grid_loss = _loss_on_n_grid(law, [params], flops, unique_tokens, log_n)[0]
    best = int(np.argmin(np.where(np.isfinite(grid_loss), grid_loss, np.inf)))
    return _minimise_over_n(law, params, flops, unique_tokens, log_n, best)[1]


def optimum_per_draw(fit: FitResult, flops: float, unique_tokens: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """N* and its loss for every bootstrap draw of ``fit`` (grid argmin over log N, MuPT Eq. 1)."""
    if fit.bootstrap is None or not fit.bootstrap.draws:
        raise ValueError(f"the {fit.law} fit has no bootstrap draws")
    _check_budget(flops, unique_tokens)
    law = get_law(fit.law)
    log_n = np.linspace(math.log(MIN_PARAMS), math.log(flops / FLOPS_PER_PARAM_TOKEN / MIN_TOKENS), GRID_POINTS)
    losses = _loss_on_n_grid(law, fit.bootstrap.draws, flops, unique_tokens, log_n)
    losses = np.where(np.isfinite(losses), losses, np.inf)
    idx = np.argmin(losses, axis=1)
    return np.exp(log_n[idx]), losses[np.arange(idx.shape[0]), idx]


def plan_tokens(fit: FitResult, n_params: float, unique_tokens: float, max_epochs: float = 100.0) -> TokenPlan:
    """The token count (and epochs) at which the law's loss is lowest for a fixed N and U_D.

    Laws without an overfitting term decrease in D forever; then the best lies at
    ``max_epochs`` and ``overfits`` is False. The SMS law's GELU term makes the
    loss turn up again: that turn is the overfitting onset.
    """
    if not (math.isfinite(n_params) and n_params > 0):
        raise LawfitInputError(f"--n-params must be a positive number, got {n_params}")
    if not (math.isfinite(unique_tokens) and unique_tokens > 0):
        raise LawfitInputError(f"--unique-tokens must be a positive number, got {unique_tokens}")
    if not (math.isfinite(max_epochs) and max_epochs > 0.01):
        raise LawfitInputError(f"--max-epochs must be a number above 0.01, got {max_epochs}")
    law = get_law(fit.law)
    epochs_grid = np.geomspace(0.01, max_epochs, 2001)

    def losses_for(draws: Sequence[Mapping[str, float]]) -> np.ndarray:
        x = Covariates.of(n_params, epochs_grid * unique_tokens, unique_tokens)
        stacked = {k: np.array([d[k] for d in draws]) for k in law.param_names}
        with np.errstate(all="ignore"):
            out = law.predict_many(stacked, x)
        return np.where(np.isfinite(out), out, np.inf)

    curve = losses_for([fit.params])[0]
    best = int(np.argmin(curve))
    if 0 < best < epochs_grid.shape[0] - 1:
        res = minimize_scalar(
            lambda le: float(law.predict(fit.params, n_params, math.exp(le) * unique_tokens, unique_tokens)),
            bounds=(math.log(epochs_grid[best - 1]), math.log(epochs_grid[best + 1])),
            method="bounded",
            options={"xatol": 1e-10},
        )
        epochs_best, loss_best = math.exp(float(res.x)), float(res.fun)
    else:
        epochs_best, loss_best = float(epochs_grid[best]), float(curve[best])
    overfits = best < epochs_grid.shape[0] - 1 and curve[-1] > loss_best
    report_epochs = tuple(float(e) for e in _report_epochs(max_epochs))
    report_losses = tuple(float(law.predict(fit.params, n_params, e * unique_tokens, unique_tokens)) for e in report_epochs)
    interval = None
    level = None
    if fit.bootstrap is not None and fit.bootstrap.draws:
        level = fit.bootstrap.level
        curves = losses_for(fit.bootstrap.draws)
        idx = np.argmin(curves, axis=1)
        interval = {
            "epochs_best": percentile_interval(epochs_grid[idx], level),
            "d_best": percentile_interval(epochs_grid[idx] * unique_tokens, level),
            "loss_best": percentile_interval(curves[np.arange(idx.shape[0]), idx], level),
        }
    warnings = range_warnings(fit, {"N": n_params, "D": epochs_best * unique_tokens, "epochs": epochs_best})
    return TokenPlan(
        n_params, unique_tokens, epochs_best * unique_tokens, epochs_best, loss_best, bool(overfits),
        report_epochs, report_losses, interval, level, tuple(warnings),
    )


def _report_epochs(max_epochs: float) -> list[float]:
    marks = [0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100, 200, 400, 1000]
    return [m for m in marks if m <= max_epochs] or [max_epochs]
