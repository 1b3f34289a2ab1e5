"""The fitting objective of MuPT Eq. 16 and the optimiser's coordinates.

Objective: Σ_i w_i · Huber_delta(log L̂_i − log L_i) over the points, a **sum**
(a mean shrinks the gradient by the point count and makes L-BFGS stop at its
start, the flaw of the original Chinchilla fit), delta = 1e-3 by default.

Coordinates: the optimiser sees θ, one column per free parameter: log(value)
for "log" parameters, value × D_ref for token-scaled ones (k_d), the value
itself otherwise. Fixed parameters are constants outside θ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from lawfit.laws.base import Array, Covariates, Law

DEFAULT_DELTA = 1e-3
# Batches above this many (start, point) pairs are split across threads: numpy
# releases the GIL inside its array loops, so the halves run on separate cores.
_PARALLEL_MIN_ELEMENTS = 100_000


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="lawfit")


def huber(residual: Array, delta: float) -> Array:
    """Huber_delta(r) = r²/2 if |r| ≤ delta, else delta·(|r| − delta/2)   (MuPT Eq. 15)."""
    abs_r = np.abs(residual)
    return np.where(abs_r <= delta, 0.5 * residual**2, delta * (abs_r - 0.5 * delta))


def huber_derivative(residual: Array, delta: float) -> Array:
    """d Huber_delta / dr = clip(r, −delta, delta)."""
    return np.clip(residual, -delta, delta)


# Centring: log A − alpha·log N = (log A − alpha·c_N) − alpha·(log N − c_N), and
# likewise for B, d and the overfitting offset. The optimiser fits the bracketed
# combinations (target, shifted by sign·c·partner) instead of log A itself: with
# log N ≈ 20, log A and alpha would otherwise move almost in lockstep and L-BFGS
# crawls along that valley. The optimum is the same; only the coordinates change.
# (target, partner, covariate whose mean is c, sign)
CENTRING: tuple[tuple[str, str, str, float], ...] = (
    ("A", "alpha", "log_N", 1.0),
    ("B", "beta", "log_D", 1.0),
    ("d", "alpha", "log_N", 1.0),
    ("d", "beta", "log_D", 1.0),
    ("k_in", "k_n", "log_N", 1.0),
    ("k_in", "k_u", "log_U_D", -1.0),
)


@dataclass(frozen=True)
class Coordinates:
    """The map between raw law parameters and the optimiser's θ for one law and data set.

    Natural coordinates u: log(value) for "log" parameters, value × D_ref for
    token-scaled ones, the value otherwise. θ is u with the centring shifts of
    ``CENTRING`` applied, using the means of the data's log N, log D, log U_D
    in ``centers`` (no centring without them).
    """

    law: Law
    free: tuple[str, ...]
    fixed: Mapping[str, float]
    d_ref: float
    centers: Mapping[str, float] = field(default_factory=dict)

    def _factor(self, name: str) -> float:
        return self.d_ref if self.law.spec(name).scale_by_tokens else 1.0

    def _shifts(self) -> list[tuple[int, int, float]]:
        """(target column, partner column, sign·c) for the centring shifts that apply."""
        if not self.law.standard_names:
            return []
        index = {name: j for j, name in enumerate(self.free)}
        return [
            (index[target], index[partner], sign * self.centers[covariate])
            for target, partner, covariate, sign in CENTRING
            if target in index and partner in index and covariate in self.centers
        ]

    def to_theta(self, raw: Mapping[str, Array]) -> Array:
        """Raw values (each of shape (S,)) to θ of shape (S, len(free))."""
        cols = []
        for name in self.free:
            value = np.asarray(raw[name], dtype=float)
            if self.law.spec(name).transform == "log":
                cols.append(np.log(value))
            else:
                cols.append(value * self._factor(name))
        if not cols:
            n_rows = len(np.atleast_1d(next(iter(raw.values())))) if raw else 1
            return np.zeros((n_rows, 0))
        natural = np.stack(cols, axis=1)
        theta = natural.copy()
        for target, partner, shift in self._shifts():
            theta[:, target] -= shift * natural[:, partner]
        return theta

    def natural(self, theta: Array) -> Array:
        """θ back to the natural coordinates u."""
        natural = np.array(theta, dtype=float, copy=True)
        for target, partner, shift in self._shifts():
            natural[:, target] += shift * natural[:, partner]
        return natural

    def to_raw(self, theta: Array) -> dict[str, Array]:
        """θ (S, F) to raw values, each of shape (S,); fixed parameters included."""
        natural = self.natural(np.asarray(theta, dtype=float))
        out: dict[str, Array] = {}
        for j, name in enumerate(self.free):
            col = natural[:, j]
            with np.errstate(over="ignore"):  # a start wandering off: its objective becomes inf
                out[name] = np.exp(col) if self.law.spec(name).transform == "log" else col / self._factor(name)
        for name, value in self.fixed.items():
            out[name] = np.full(natural.shape[0], float(value))
        return out

    def params_of(self, theta: Array) -> dict[str, Array]:
        """θ (S, F) to the law's parameter mapping of (S, 1) columns."""
        return {name: col[:, None] for name, col in self.to_raw(theta).items()}

    def chain(self, params: dict[str, Array], name: str) -> Array | float:
        """d value / d u for free parameter ``name``: value for log, 1/factor for linear."""
        if self.law.spec(name).transform == "log":
            return params[name]
        return 1.0 / self._factor(name)

    def gradient_in_theta(self, grad_natural: Array) -> Array:
        """∂f/∂θ from ∂f/∂u: each partner also moves its centred target."""
        grad = grad_natural.copy()
        for target, partner, shift in self._shifts():
            grad[:, partner] += shift * grad_natural[:, target]
        return grad

    def bounds(self) -> tuple[Array, Array]:
        """Box bounds on θ; centred targets (scale parameters of huge range) are left unbounded."""
        lower, upper = [], []
        for name in self.free:
            spec = self.law.spec(name)
            if spec.transform == "log":
                lower.append(np.log(spec.lower))
                upper.append(np.log(spec.upper))
            else:
                lower.append(spec.lower * self._factor(name))
                upper.append(spec.upper * self._factor(name))
        lo, hi = np.array(lower), np.array(upper)
        for target, _, _ in self._shifts():
            lo[target], hi[target] = -np.inf, np.inf
        return lo, hi


@dataclass(frozen=True)
class Objective:
    """MuPT Eq. 16 for one law over one set of points, for many starts at once.

    ``weights`` has shape (n,) — the same for every start — or (R, n), one row
    per batch row (bootstrap resamples, held-out folds); ``rows`` in the calls
    below say which weight row each start uses.
    """

    coords: Coordinates
    x: Covariates
    log_loss_observed: Array
    weights: Array
    delta: float = DEFAULT_DELTA

    def _weights_for(self, rows: Array) -> Array:
        return self.weights[rows] if self.weights.ndim == 2 else self.weights[None, :]

    def per_point(self, theta: Array) -> Array:
        """Unweighted Huber terms, (S, n)."""
        log_hat, _ = self.coords.law.log_loss(self.coords.params_of(theta), self.x, False)
        return huber(log_hat - self.log_loss_observed, self.delta)

    def value(self, theta: Array, rows: Array) -> Array:
        """Objective of each start, (S,); inf where the prediction is not finite or not positive."""
        with np.errstate(all="ignore"):
            f = np.sum(self._weights_for(rows) * self.per_point(theta), axis=1)
        return np.where(np.isfinite(f), f, np.inf)

    def value_and_grad(self, theta: Array, rows: Array) -> tuple[Array, Array]:
        """Objective and its exact gradient with respect to θ, for each start."""
        n_workers = _pool()._max_workers
        n_starts = theta.shape[0]
        if n_workers < 2 or n_starts < 2 or n_starts * self.x.N.shape[0] < _PARALLEL_MIN_ELEMENTS:
            return self._value_and_grad(theta, rows)
        chunks = np.array_split(np.arange(n_starts), min(n_workers, n_starts))
        results = list(_pool().map(lambda idx: self._value_and_grad(theta[idx], rows[idx]), chunks))
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    def _value_and_grad(self, theta: Array, rows: Array) -> tuple[Array, Array]:
        params = self.coords.params_of(theta)
        with np.errstate(all="ignore"):
            log_hat, grads = self.coords.law.log_loss(params, self.x, True)
            assert grads is not None
            residual = log_hat - self.log_loss_observed
            w = self._weights_for(rows)
            f = np.sum(w * huber(residual, self.delta), axis=1)
            outer = w * huber_derivative(residual, self.delta)
            by_param = grads.contract(outer)
            g = np.empty_like(theta)
            for j, name in enumerate(self.coords.free):
                g[:, j] = by_param.get(name, 0.0) * np.ravel(self.coords.chain(params, name))
            g = self.coords.gradient_in_theta(g)
        return np.where(np.isfinite(f), f, np.inf), g
