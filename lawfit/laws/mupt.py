"""The laws MuPT introduces (§3.4.2, Appendix A.2–A.3): D'' (Eq. 2–3), the N·D
term (Eq. 4) and the Symbolic Music Scaling law with its overfitting term (Eq. 5–6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.special import ndtr

from lawfit.laws.base import Array, Covariates, Gradient, Grads, Law, ParamSpec, logsumexp, register
from lawfit.laws.chinchilla import CORE, CORE_GRID

K = ParamSpec(
    "k", "1", 1e-6, 1.0 - 1e-9, description="fraction of a token's value kept per repetition (k = 1 − forgetting rate)"
)
D_ND = ParamSpec("d", "loss·params^alpha·tokens^beta", 1e-12, 1e40, "log", description="N·D interaction term scale")
K_D = ParamSpec(
    "k_d", "loss/token", 0.0, 1.0, scale_by_tokens=True, description="growth of the overfitting term per token seen"
)
# MuPT A.3.2: larger models overfit earlier, more unique data later. Non-negative k_n and k_u keep Eq. 6 an
# overfitting term; free signs let it become a general correction that, e.g., rewards size.
K_N = ParamSpec("k_n", "loss/ln(params)", 0.0, 100.0, description="overfitting term per log model size (>= 0)")
K_U = ParamSpec("k_u", "loss/ln(tokens)", 0.0, 100.0, description="overfitting relief per log unique tokens (>= 0)")
K_IN = ParamSpec("k_in", "loss", -1e4, 1e4, description="overfitting term offset")

_E = math.e
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def log_d_double_prime(k: Array, x: Covariates) -> tuple[Array, Array]:
    """log D'' with D'' = (1 − k^(D/U_D)) / (1 − k) · U_D   (MuPT Eq. 3 / Eq. 13), and d log D''/dk.

    Continuous in D: equals the discrete sum U_D Σ_{i=0}^{R−1} k^i of Eq. 11
    when D = R·U_D, and is also defined inside the first epoch (D < U_D).
    Written with expm1/log1p so that k close to 1 (little forgetting) keeps
    its precision.
    """
    epochs = x.D / x.U_D
    one_minus_kr = -np.expm1(epochs * np.log(k))
    value = x.log_U_D + np.log(one_minus_kr) - np.log1p(-k)
    # d/dk [log(1 − k^R) − log(1 − k)] = −R·k^(R−1)/(1 − k^R) + 1/(1 − k)
    d_dk = 1.0 / (1.0 - k) - epochs * np.exp((epochs - 1.0) * np.log(k)) / one_minus_kr
    return value, d_dk


def gelu(z: Array) -> Array:
    """The exact GELU, z·Φ(z) with Φ the standard normal CDF (not the tanh approximation)."""
    return z * ndtr(z)


def gelu_derivative(z: Array) -> Array:
    """d GELU/dz = Φ(z) + z·φ(z)."""
    return ndtr(z) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def _dprime_terms(
    p: Mapping[str, Array], x: Covariates, log_dpp: Array, dlog_dpp_dk: Array, with_grad: bool
) -> tuple[list[Array], list[Grads]]:
    terms = [
        np.log(p["A"]) - p["alpha"] * x.log_N,
        np.log(p["B"]) - p["beta"] * log_dpp,
        np.log(p["E"]),
    ]
    grads: list[Grads] = []
    if with_grad:
        grads = [
            {"A": 1.0 / p["A"], "alpha": -x.log_N},
            {"B": 1.0 / p["B"], "beta": -log_dpp, "k": -p["beta"] * dlog_dpp_dk},
            {"E": 1.0 / p["E"]},
        ]
    return terms, grads


def dprime_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L(N, D, U_D) = log(A/N^alpha + B/D''^beta + E)   (MuPT Eq. 2 with D'' of Eq. 3)."""
    terms, grads = _dprime_terms(p, x, *log_d_double_prime(p["k"], x), with_grad)
    return logsumexp(terms, grads if with_grad else None)


def nd_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L = log(d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E)   (MuPT Eq. 4, Eq. 16's LSE form)."""
    log_dpp, dlog_dpp_dk = log_d_double_prime(p["k"], x)
    terms, grads = _dprime_terms(p, x, log_dpp, dlog_dpp_dk, with_grad)
    interaction = np.log(p["d"]) - p["alpha"] * x.log_N - p["beta"] * log_dpp
    if not with_grad:
        return logsumexp([interaction, *terms], None)
    interaction_grads: Grads = {
        "d": 1.0 / p["d"],
        "alpha": -x.log_N,
        "beta": -log_dpp,
        "k": -p["beta"] * dlog_dpp_dk,
    }
    return logsumexp([interaction, *terms], [interaction_grads, *grads])


def overfit_argument(p: Mapping[str, Array], x: Covariates) -> Array:
    """z = k_d·D + k_n·log N − k_u·log U_D − k_in, the argument of the GELU in MuPT Eq. 6."""
    return p["k_d"] * x.D + p["k_n"] * x.log_N - p["k_u"] * x.log_U_D - p["k_in"]


def sms_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L with L = d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E + L_overfit   (MuPT Eq. 5–6),

    L_overfit = GELU(k_d·D + k_n·log N − k_u·log U_D − k_in).
    GELU may be slightly negative, so the overfitting term is added outside the
    log-sum-exp; a prediction ≤ 0 gives NaN, which the fit treats as infeasible.
    """
    log_nd, nd_grads = nd_log_loss(p, x, with_grad)
    base = np.exp(log_nd)
    z = overfit_argument(p, x)
    total = base + gelu(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.log(total)
    if not with_grad:
        return value, None
    assert nd_grads is not None
    slope = gelu_derivative(z) / total
    overfit_partials: Grads = {"k_d": x.D, "k_n": x.log_N, "k_u": -x.log_U_D, "k_in": -1.0}
    return value, nd_grads.scaled(base / total).plus(slope, overfit_partials)


def overfit_guess(base_params: Mapping[str, float], x: Covariates, loss: Array) -> dict[str, float]:
    """Start values for k_d, k_n, k_u, k_in from the residuals of an Eq. 4 fit (MuPT Appendix A.3.2).

    The residual r = L − L̂_Eq4 is regressed by least squares on
    [D, log N, −log U_D, −1], the columns of the GELU argument of Eq. 6, over
    the points where r > 0 (past the onset, where GELU(z) ≈ z); with fewer than
    four such points, over all of them. The values are not clipped to the bounds.
    """
    residual = loss - ND.predict(base_params, x.N, x.D, x.U_D)
    rows = residual > 0 if int(np.sum(residual > 0)) >= 4 else np.ones_like(residual, dtype=bool)
    design = np.column_stack([x.D, x.log_N, -x.log_U_D, -np.ones_like(x.D)])[rows]
    scale = np.max(np.abs(design), axis=0)  # D is ~1e10 where the other columns are ~10: solve on columns of order one
    coef, *_ = np.linalg.lstsq(design / scale, residual[rows], rcond=None)
    coef = coef / scale
    return {"k_d": float(coef[0]), "k_n": float(coef[1]), "k_u": float(coef[2]), "k_in": float(coef[3])}


_K_GRID = (0.5, 0.9, 0.99)
_D_GRID = (_E**4, _E**12)

DPRIME = register(
    Law(
        name="dprime",
        title="MuPT Eq. 2 (D'')",
        equation="MuPT Eq. 2-3",
        params=(*CORE, K),
        log_loss=dprime_log_loss,
        default_grid={**CORE_GRID, "k": _K_GRID},
        uses_unique_tokens=True,
        doc="L = A/N^alpha + B/D''^beta + E, D'' = (1 - k^(D/U_D))/(1 - k)·U_D",
    )
)

ND = register(
    Law(
        name="nd",
        title="MuPT Eq. 4 (N·D term)",
        equation="MuPT Eq. 4",
        params=(*CORE, K, D_ND),
        log_loss=nd_log_loss,
        default_grid={**CORE_GRID, "k": _K_GRID, "d": _D_GRID},
        uses_unique_tokens=True,
        doc="L = d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E",
    )
)

SMS = register(
    Law(
        name="sms",
        title="SMS law",
        equation="MuPT Eq. 5-6",
        params=(*CORE, K, D_ND, K_D, K_N, K_U, K_IN),
        log_loss=sms_log_loss,
        # k_d is listed in units of 1/D_ref (D_ref = largest D in the data): see ParamSpec.
        default_grid={
            **CORE_GRID,
            "k": _K_GRID,
            "d": _D_GRID,
            "k_d": (0.05, 0.5),
            "k_n": (0.0, 0.05),
            "k_u": (0.0, 0.05),
            "k_in": (0.25, 2.0),
        },
        uses_unique_tokens=True,
        doc="L = d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E + GELU(k_d·D + k_n·log N − k_u·log U_D − k_in)",
        # MuPT Appendix A.3.2: fit Eq. 4 first, then the overfitting term on its residuals.
        base="nd",
        guess=overfit_guess,
        plan_without_unique_tokens=(
            "planned without --unique-tokens, so U_D = D (all data fresh); but SMS's overfitting term (Eq. 6) "
            "grows with raw D, not with repetition, so it still penalises large D and pushes the plan toward "
            "fewer tokens: give --unique-tokens, or plan with a law whose overfitting follows repetition"
        ),
    )
)
