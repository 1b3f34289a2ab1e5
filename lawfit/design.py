"""Choosing the next runs: the ones whose outcome would narrow the bootstrap interval of N* most.

The bootstrap draws of a fit are an ensemble of plausible laws. For each draw
b we know its compute-optimal size log N*_b (MuPT Eq. 1) and what it predicts
for a candidate run c, f_b(c) = log L̂(N_c, D_c, U_c; θ_b). Treating the
ensemble as jointly Gaussian (the ensemble Kalman update), observing run c
with measurement noise σ² (the fit's residual variance in log loss) shrinks
the variance of log N* by

    ΔVar(c) = Cov(log N*, f(c))² / (Var f(c) + σ²),

and the ensemble covariance after that observation is
Σ' = Σ − Σ[:, c] Σ[c, :] / (Σ[c, c] + σ²). Runs are chosen greedily: the
affordable candidate with the largest ΔVar per FLOP, then the covariance is
conditioned on it, and so on — so a batch does not pick two runs that tell the
same thing. A run far from where the draws disagree about N* scores near 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lawfit.laws.base import Covariates, get_law
from lawfit.names import FLOPS_PER_PARAM_TOKEN
from lawfit.planning import optimum_per_draw
from lawfit.result import FitResult


@dataclass(frozen=True)
class Candidate:
    """A run that could be launched: its N (the laws' N), tokens D, unique tokens U_D and a caller's key."""

    key: str
    n_params: float
    tokens: float
    unique_tokens: float

    @property
    def cost_flops(self) -> float:
        """C ≈ 6·N·D (MuPT Eq. 1's constraint)."""
        return FLOPS_PER_PARAM_TOKEN * self.n_params * self.tokens


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    variance_reduction: float  # of log N*, given the runs chosen before it in the batch
    log_n_star_sd_after: float  # the standard deviation of log N* once this and the earlier choices are observed


def choose_runs(fit: FitResult, candidates: Sequence[Candidate], flops: float, unique_tokens: float | None,
                count: int, budget_flops: float, noise_sd: float | None = None) -> list[Choice]:
    """Up to ``count`` candidates, greedily, by variance reduction of log N* per FLOP within ``budget_flops``."""
    if fit.bootstrap is None or len(fit.bootstrap.draws) < 3:
        raise ValueError("choosing runs needs a fit with at least 3 bootstrap draws")
    if not candidates or count < 1:
        return []
    draw_n, _ = optimum_per_draw(fit, flops, unique_tokens)
    law = get_law(fit.law)
    x = Covariates.of(
        np.array([c.n_params for c in candidates]),
        np.array([c.tokens for c in candidates]),
        np.array([c.unique_tokens for c in candidates]),
    )
    stacked = {k: np.array([d[k] for d in fit.bootstrap.draws]) for k in law.param_names}
    with np.errstate(all="ignore"):
        predictions = np.log(law.predict_many(stacked, x))  # (draws, candidates)
    usable = np.all(np.isfinite(predictions), axis=1)
    ensemble = np.column_stack([np.log(draw_n)[usable], predictions[usable]])
    if ensemble.shape[0] < 3:
        return []
    cov = np.cov(ensemble, rowvar=False)
    if noise_sd is None:
        train = fit.metrics.get("train")
        noise_sd = train.rmse_log if train is not None else 0.01
    noise = max(float(noise_sd), 1e-6) ** 2
    costs = np.array([c.cost_flops for c in candidates])
    remaining = float(budget_flops)
    chosen: list[Choice] = []
    available = np.ones(len(candidates), dtype=bool)
    for _ in range(count):
        cov_z = cov[0, 1:]
        var_f = np.diag(cov)[1:]
        reduction = cov_z**2 / (var_f + noise)
        score = np.where(available & (costs <= remaining), reduction / costs, -np.inf)
        best = int(np.argmax(score))
        if not math.isfinite(score[best]) or reduction[best] <= 0:
            break
        column = cov[:, best + 1].copy()
        cov = cov - np.outer(column, column) / (cov[best + 1, best + 1] + noise)
        available[best] = False
        remaining -= costs[best]
        chosen.append(Choice(candidates[best], float(reduction[best]), float(math.sqrt(max(cov[0, 0], 0.0)))))
    return chosen
