"""The Chinchilla law, MuPT Eq. 7 (Hoffmann et al. 2022, approach 3)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lawfit.laws.base import Array, Covariates, Gradient, Law, ParamSpec, logsumexp, register

A = ParamSpec("A", "loss·params^alpha", 1e-12, 1e30, "log", description="model-size term scale")
B = ParamSpec("B", "loss·tokens^beta", 1e-12, 1e30, "log", description="data term scale")
E = ParamSpec("E", "loss (nats/token)", 1e-6, 1e3, "log", description="irreducible loss")
ALPHA = ParamSpec("alpha", "1", 0.0, 5.0, description="model-size exponent")
BETA = ParamSpec("beta", "1", 0.0, 5.0, description="data exponent")
CORE = (A, B, E, ALPHA, BETA)

# The grid of the Chinchilla replication (Besiroglu et al. 2024): alpha, beta in
# {0, 0.5, ..., 2}, log E in {-1, -0.5, ..., 1}, log A, log B in {0, 5, ..., 25};
# 4,500 starts. Values are raw (A = e^0 ... e^25).
REPLICATION_GRID: Mapping[str, tuple[float, ...]] = {
    "A": tuple(float(2.718281828459045**v) for v in (0, 5, 10, 15, 20, 25)),
    "B": tuple(float(2.718281828459045**v) for v in (0, 5, 10, 15, 20, 25)),
    "E": tuple(float(2.718281828459045**v) for v in (-1.0, -0.5, 0.0, 0.5, 1.0)),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}

# A smaller grid for the core five parameters of the richer laws, whose extra
# parameters multiply the number of starts.
CORE_GRID: Mapping[str, tuple[float, ...]] = {
    "A": tuple(float(2.718281828459045**v) for v in (0, 5, 10, 15, 20)),
    "B": tuple(float(2.718281828459045**v) for v in (0, 5, 10, 15, 20)),
    "E": tuple(float(2.718281828459045**v) for v in (-1.0, 0.0, 1.0)),
    "alpha": (0.25, 0.5, 1.0),
    "beta": (0.25, 0.5, 1.0),
}


def chinchilla_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L(N, D) = log(A/N^alpha + B/D^beta + E)   (MuPT Eq. 7),

    computed as LSE[log A − alpha·log N, log B − beta·log D, log E] (MuPT Eq. 16).
    """
    terms = [
        np.log(p["A"]) - p["alpha"] * x.log_N,
        np.log(p["B"]) - p["beta"] * x.log_D,
        np.log(p["E"]),
    ]
    grads = None
    if with_grad:
        grads = [
            {"A": 1.0 / p["A"], "alpha": -x.log_N},
            {"B": 1.0 / p["B"], "beta": -x.log_D},
            {"E": 1.0 / p["E"]},
        ]
    return logsumexp(terms, grads)


CHINCHILLA = register(
    Law(
        name="chinchilla",
        title="Chinchilla law",
        equation="MuPT Eq. 7",
        params=CORE,
        log_loss=chinchilla_log_loss,
        default_grid=REPLICATION_GRID,
        uses_unique_tokens=False,
        doc="L(N, D) = A/N^alpha + B/D^beta + E",
    )
)
