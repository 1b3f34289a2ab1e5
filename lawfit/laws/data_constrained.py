"""The data-constrained law of Muennighoff et al. (2023), MuPT Eq. 8–10."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lawfit.laws.base import Array, Covariates, Gradient, Grads, Law, ParamSpec, logsumexp, register
from lawfit.laws.chinchilla import CORE_GRID, A, B, E

# alpha and beta enter G = (alpha·A / (beta·B))^(1/(alpha+beta)) (MuPT Eq. 10),
# so here they must stay strictly positive.
ALPHA_POS = ParamSpec("alpha", "1", 1e-3, 5.0, description="model-size exponent")
BETA_POS = ParamSpec("beta", "1", 1e-3, 5.0, description="data exponent")
R_D_STAR = ParamSpec(
    "R_D_star", "epochs", 1e-3, 1e6, "log", description="repetitions of the data after which extra epochs stop helping"
)
R_N_STAR = ParamSpec(
    "R_N_star", "1", 1e-3, 1e6, "log", description="excess-parameter ratio after which extra parameters stop helping"
)


def log_n_opt_for_tokens(p: Mapping[str, Array], log_tokens: Array, with_grad: bool) -> tuple[Array, Grads | None]:
    """log N_opt at the compute C whose D_opt(C) equals the given token count (MuPT Eq. 10).

    With G = (alpha·A / (beta·B))^(1/(alpha+beta)), D_opt(C) = G^-1 (C/6)^(alpha/(alpha+beta))
    and N_opt(C) = G (C/6)^(beta/(alpha+beta)); eliminating C gives
    N_opt = G · (U·G)^(beta/alpha), the ``D_to_N`` of the datablations code.
    """
    alpha, beta = p["alpha"], p["beta"]
    total = alpha + beta
    log_g = (np.log(alpha) + np.log(p["A"]) - np.log(beta) - np.log(p["B"])) / total
    ratio = beta / alpha
    value = log_g * (1.0 + ratio) + ratio * log_tokens
    if not with_grad:
        return value, None
    dg_dalpha = (1.0 / alpha - log_g) / total
    dg_dbeta = (-1.0 / beta - log_g) / total
    grads = {
        "A": (1.0 + ratio) / (p["A"] * total),
        "B": -(1.0 + ratio) / (p["B"] * total),
        "alpha": (1.0 + ratio) * dg_dalpha - (log_g + log_tokens) * beta / alpha**2,
        "beta": (1.0 + ratio) * dg_dbeta + (log_g + log_tokens) / alpha,
    }
    return value, grads


def log_effective_factor(repeats: Array, r_star: Array) -> tuple[Array, Array, Array]:
    """log h with h = 1 + R*·(1 − exp(−R/R*)), so that MuPT Eq. 9 reads D' = U_D·h(R_D, R_D*).

    Returns log h, d log h / dR and d log h / dR*.
    """
    q = repeats / r_star
    decay = np.exp(-q)
    h = 1.0 + r_star * (1.0 - decay)
    return np.log(h), decay / h, (1.0 - decay - q * decay) / h


def data_constrained_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L(N, D, U_D) = log(A/N'^alpha + B/D'^beta + E)   (MuPT Eq. 8), with

    D' = U_D + U_D·R_D*·(1 − exp(−R_D/R_D*)),  R_D = max(D/U_D − 1, 0)      (Eq. 9)
    N' = U_N + U_N·R_N*·(1 − exp(−R_N/R_N*)),  R_N = max(N/U_N − 1, 0)      (Eq. 9)
    U_N = min(N_opt(C(U_D)), N), N_opt from Eq. 10 at the compute whose D_opt is U_D.

    As MuPT §A.1.2 defines it, the unique data seen is min(D, U_D): a point inside
    the first epoch has seen D unique tokens and no repetition.
    """
    unique_seen = np.minimum(x.U_D, x.D)
    log_unique = np.log(unique_seen)
    repeats_d = np.maximum(x.D / unique_seen - 1.0, 0.0)
    log_hd, _, dlog_hd_dstar = log_effective_factor(repeats_d, p["R_D_star"])
    log_d_prime = log_unique + log_hd

    log_nopt, nopt_grads = log_n_opt_for_tokens(p, log_unique, with_grad)
    n_limited = log_nopt < x.log_N  # U_N = N_opt < N: the model has excess parameters
    log_u_n = np.where(n_limited, log_nopt, x.log_N)
    repeats_n = np.where(n_limited, np.expm1(x.log_N - log_u_n), 0.0)
    log_hn, dlog_hn_drn, dlog_hn_dstar = log_effective_factor(repeats_n, p["R_N_star"])
    log_n_prime = log_u_n + log_hn

    terms = [
        np.log(p["A"]) - p["alpha"] * log_n_prime,
        np.log(p["B"]) - p["beta"] * log_d_prime,
        np.log(p["E"]),
    ]
    if not with_grad:
        return logsumexp(terms, None)
    assert nopt_grads is not None
    # d log N' / d log U_N where U_N = N_opt: 1 + (d log h/dR_N)(dR_N/d log U_N), dR_N/d log U_N = −N/U_N.
    dlog_np_dlog_un = np.where(n_limited, 1.0 - dlog_hn_drn * (repeats_n + 1.0), 0.0)
    via_un = {name: dlog_np_dlog_un * g for name, g in nopt_grads.items()}
    term_n: Grads = {
        "A": 1.0 / p["A"] - p["alpha"] * via_un["A"],
        "B": -p["alpha"] * via_un["B"],
        "alpha": -log_n_prime - p["alpha"] * via_un["alpha"],
        "beta": -p["alpha"] * via_un["beta"],
        "R_N_star": -p["alpha"] * dlog_hn_dstar,
    }
    term_d: Grads = {"B": 1.0 / p["B"], "beta": -log_d_prime, "R_D_star": -p["beta"] * dlog_hd_dstar}
    return logsumexp(terms, [term_n, term_d, {"E": 1.0 / p["E"]}])


DATA_CONSTRAINED = register(
    Law(
        name="data_constrained",
        title="Data-constrained law",
        equation="MuPT Eq. 8-10",
        params=(A, B, E, ALPHA_POS, BETA_POS, R_D_STAR, R_N_STAR),
        log_loss=data_constrained_log_loss,
        default_grid={**CORE_GRID, "R_D_star": (5.0, 15.0, 50.0), "R_N_star": (2.0, 5.0, 20.0)},
        uses_unique_tokens=True,
        doc="L = A/N'^alpha + B/D'^beta + E with D', N' the effective data and parameters of Muennighoff et al.",
        # Muennighoff et al. fit the Chinchilla form on runs with little
        # repetition (D/U_D <= 2.5 in their notebook), then R_D*, R_N* with it held.
        base="chinchilla",
        base_max_repeats=2.5,
    )
)
