"""What a scaling law is to lawfit: named parameters with bounds and units, and
one function giving log L — and, on request, its exact gradient — for many
parameter vectors at once.

The gradients are written out by hand (and checked against finite
differences in the tests): fitting evaluates them for thousands of starts per
iteration, and a tape-based autodiff cost five times the value itself there.

Shapes: parameters arrive as a mapping ``name -> array`` of shape ``(S, 1)``
(S parameter vectors, e.g. the starts of a multi-start fit) and covariates as
arrays of shape ``(n,)``; ``log_loss`` returns ``(S, n)`` and the gradient
maps each parameter name to d log L / d value, broadcastable to ``(S, n)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Array = np.ndarray
Transform = Literal["log", "linear"]


@dataclass(frozen=True)
class ParamSpec:
    """One law parameter.

    ``transform`` says how the optimiser sees it: ``"log"`` fits log(value)
    (scale parameters A, B, E, d, R*), ``"linear"`` fits the value itself.
    ``scale_by_tokens`` marks parameters multiplied by a raw token count (k_d):
    the optimiser sees value × D_ref, with D_ref the largest D of the data, so
    that every fitted coordinate is of order one.
    """

    name: str
    unit: str
    lower: float
    upper: float
    transform: Transform = "linear"
    scale_by_tokens: bool = False
    description: str = ""

    def check(self, value: float) -> str | None:
        """Return why ``value`` is outside this parameter's domain, or None."""
        if not math.isfinite(value):
            return f"{self.name} must be finite, got {value!r}"
        if not (self.lower <= value <= self.upper):
            return f"{self.name}={value!r} is outside its bounds [{self.lower}, {self.upper}]"
        return None


@dataclass(frozen=True)
class Covariates:
    """The inputs of a law for n points, raw counts and their logs."""

    N: Array
    D: Array
    U_D: Array

    @property
    def log_N(self) -> Array:
        return np.log(self.N)

    @property
    def log_D(self) -> Array:
        return np.log(self.D)

    @property
    def log_U_D(self) -> Array:
        return np.log(self.U_D)

    @classmethod
    def of(cls, N: object, D: object, U_D: object | None = None) -> Covariates:
        """Broadcast N, D and U_D (default: U_D = D, one epoch) to float arrays."""
        n_arr = np.asarray(N, dtype=float)
        d_arr = np.asarray(D, dtype=float)
        u_arr = d_arr if U_D is None else np.asarray(U_D, dtype=float)
        n_b, d_b, u_b = np.broadcast_arrays(n_arr, d_arr, u_arr)
        return cls(np.ravel(n_b), np.ravel(d_b), np.ravel(u_b))


Grads = dict[str, Array]


@dataclass(frozen=True)
class Gradient:
    """d log L̂ / d parameter, kept factorised as Σ_j coef_j · partials_j.

    A law's log L̂ is a log-sum-exp of terms, so its gradient is a softmax-weighted
    sum of each term's partial derivatives. Keeping the weights (S, n) apart from
    the partials — often (n,) or (S, 1) — lets the objective contract them with
    its Huber derivative by matrix-vector products instead of building an
    (S, n) array per parameter.
    """

    parts: tuple[tuple[Array, Grads], ...]

    def scaled(self, factor: Array) -> Gradient:
        return Gradient(tuple((coef * factor, partials) for coef, partials in self.parts))

    def plus(self, coef: Array, partials: Grads) -> Gradient:
        return Gradient((*self.parts, (coef, partials)))

    def contract(self, outer: Array) -> dict[str, Array]:
        """Σ_n outer[s, n] · d log L̂[s, n] / d param, for every parameter: (S,) each."""
        n_points = outer.shape[1]
        out: dict[str, Array] = {}
        for coef, partials in self.parts:
            weighted = outer * coef
            row_sum: Array | None = None
            for name, d in partials.items():
                d_arr = np.asarray(d)
                if d_arr.ndim == 1 and d_arr.shape[0] == n_points:
                    v = weighted @ d_arr
                elif d_arr.ndim == 0 or d_arr.shape[-1] == 1:
                    if row_sum is None:
                        row_sum = np.sum(weighted, axis=1)
                    v = row_sum * np.ravel(d_arr)
                else:
                    v = np.einsum("sn,sn->s", weighted, np.broadcast_to(d_arr, weighted.shape))
                out[name] = out[name] + v if name in out else v
        return out

    def dense(self, name: str, shape: tuple[int, int]) -> Array:
        """d log L̂ / d ``name`` as a full (S, n) array (for checks, not for fitting)."""
        total = np.zeros(shape)
        for coef, partials in self.parts:
            if name in partials:
                total = total + coef * partials[name]
        return total


# (params, covariates, with_grad) -> (log L̂ of shape (S, n), gradient or None)
LogLossFn = Callable[[Mapping[str, Array], Covariates, bool], tuple[Array, Gradient | None]]
# (the held parameters: the base law's fitted ones and any fixed, covariates, observed loss (n,))
# -> a start value per parameter the base law does not have
GuessFn = Callable[[Mapping[str, float], Covariates, Array], dict[str, float]]


@dataclass(frozen=True)
class Law:
    """A registered scaling law.

    ``log_loss(params, x, with_grad)`` is the law's log L̂, written so that the
    Huber objective of MuPT Eq. 16 can be taken on it directly.
    ``default_grid`` gives the multi-start initialisations, in raw units, as
    one sequence of values per parameter (their Cartesian product).
    """

    name: str
    title: str
    equation: str
    params: tuple[ParamSpec, ...]
    log_loss: LogLossFn
    default_grid: Mapping[str, tuple[float, ...]]
    uses_unique_tokens: bool
    doc: str = ""
    # The staged procedure: fit the law ``base`` first (on the points with at
    # most ``base_max_repeats`` epochs, if set), then the remaining parameters
    # with the base ones held.
    base: str | None = None
    base_max_repeats: float | None = None
    # lmfit's ``guess()`` for the staged procedure: start values for the
    # parameters the base law does not have, from the base fit's residuals
    # (``guess(base_params, x, loss)``, one value for each such parameter).
    # The fitter adds them, clipped to the bounds, as one more start of the
    # second stage; it uses the free ones and holds the fixed ones.
    guess: GuessFn | None = None
    # A warning a plan made without a unique-token budget carries (U_D = D: every token fresh), for a law whose
    # prediction then means something other than "unlimited data"; None: no warning.
    plan_without_unique_tokens: str | None = None
    # Whether the parameter names mean what the built-in laws mean by them: A/N^alpha the size term, B/D^beta
    # the data term, d the N·D term, k_in the overfitting offset. The optimiser's centring
    # (lawfit.objective.CENTRING) and the one-size refusal rely on it; a user law's names need not.
    standard_names: bool = True

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def spec(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"law {self.name!r} has no parameter {name!r}; it has {', '.join(self.param_names)}")

    def predict(self, params: Mapping[str, float], N: object, D: object, U_D: object | None = None) -> Array:
        """Predicted loss at (N, D, U_D); raw counts in, broadcast like numpy."""
        shape = np.broadcast_shapes(np.shape(N), np.shape(D), () if U_D is None else np.shape(U_D))
        x = Covariates.of(N, D, U_D)
        batch = {k: np.array([[float(params[k])]]) for k in self.param_names}
        return np.exp(self.log_loss(batch, x, False)[0][0]).reshape(shape)

    def predict_many(self, params: Mapping[str, Array], x: Covariates) -> Array:
        """Predicted loss for S parameter vectors (values of shape (S,)) at n points: (S, n)."""
        batch = {k: np.asarray(params[k], dtype=float).reshape(-1, 1) for k in self.param_names}
        return np.exp(self.log_loss(batch, x, False)[0])


def logsumexp(terms: list[Array], term_grads: list[Grads] | None) -> tuple[Array, Gradient | None]:
    """log Σ_j exp(t_j), the LSE of MuPT Eq. 16, and its gradient Σ_j softmax_j · dt_j.

    The parameter bounds keep every term far below exp's overflow (t < 700), so
    the plain sum is exact and skips the max-shift; should a term still
    overflow or every term underflow, the shifted form is used instead.
    """
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        expd = [np.exp(t) for t in terms]
        total = expd[0] + expd[1]
        for e in expd[2:]:
            total = total + e
        value = np.log(total)
    if not np.all(np.isfinite(value)):
        stacked = np.stack(np.broadcast_arrays(*terms), axis=0)
        top = np.max(stacked, axis=0)
        shifted = np.exp(stacked - top)
        total = np.sum(shifted, axis=0)
        value = top + np.log(total)
        expd = list(shifted)
    if term_grads is None:
        return value, None
    inv_total = 1.0 / total
    return value, Gradient(tuple((e * inv_total, tg) for e, tg in zip(expd, term_grads, strict=True)))


_REGISTRY: dict[str, Law] = {}


def register(law: Law) -> Law:
    if law.name in _REGISTRY:
        raise ValueError(f"law {law.name!r} is registered twice")
    _REGISTRY[law.name] = law
    return law


def get_law(name: str) -> Law:
    """The registered law called ``name``; unknown names list the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown law {name!r}; known laws: {known}") from None


def all_laws() -> tuple[Law, ...]:
    """Every registered law, in the order of MuPT Table 3."""
    return tuple(_REGISTRY.values())
