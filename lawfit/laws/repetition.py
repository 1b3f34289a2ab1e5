"""smslab's repetition law: MuPT's Eq. 4 with an overfitting term driven by repetition, not by raw tokens.

This law is smslab's own, not the paper's. MuPT's SMS law (Eq. 5–6) adds
GELU(k_d·D + k_n·log N − k_u·log U_D − k_in) to Eq. 4. Its argument grows with
the raw token count D, so it penalises *fresh* data too: with U_D = D (no
repetition) the predicted loss eventually rises with D, and with k_n, k_u free
in sign the term can turn into a general correction of Eq. 4 rather than an
overfitting term. Here the term is driven by the epoch count R = D/U_D and is
built so that it is an overfitting term for every parameter value in bounds:

    L = d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E + L_rep
    L_rep = s·[softplus(z_R) − softplus(z_1)]
    z_R = k_r·log R + k_n·log N − k_u·log U_D − k_in,   z_1 = z_R at R = 1
    R = max(D/U_D, 1)

- Zero at one epoch: inside the first epoch (D ≤ U_D) R = 1 and L_rep = 0
  exactly, so on fresh data (U_D = D, growing) the law is Eq. 4 with D'' = D,
  which never rises with D (d, B ≥ 0, beta ≥ 0).
- Never negative and never decreasing in R: softplus is increasing and k_r ≥ 0,
  s ≥ 0. (GELU dips to −0.17 below zero and decreases for z < −0.75: a term
  built on it could reward a little repetition; softplus has no dip.)
- Never rewards repetition through N or U_D: k_n, k_u ≥ 0 only move the onset
  (bigger models overfit sooner; more unique tokens later), and since softplus
  is convex, more unique tokens at the same D never raise L_rep.
- Why log R: the datablations runs go from 1 to 9,000 epochs; the loss past
  the onset grows roughly with the log of the epoch count there, and the onset
  is then a power law in N and U_D: R_on ∝ N^(−k_n/k_r)·U_D^(k_u/k_r).
  Past the onset L_rep ≈ s·k_r·log(R/R_on); before it, L_rep ≈ c·(R^k_r − 1).

Leave-one-size-out scores against SMS and the other laws: ``bench/law_loso.py``. It wins where the data
repeat (datablations) and, having no term without repetition, is Eq. 4 on one-epoch data (the OLMo ladder),
where SMS's D-driven term scores better as a general correction.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import expit

from lawfit.laws.base import Array, Covariates, Gradient, Grads, Law, ParamSpec, register
from lawfit.laws.chinchilla import CORE, CORE_GRID
from lawfit.laws.mupt import _D_GRID, _K_GRID, D_ND, ND, K, nd_log_loss

# s <= 10: more than 10 nats/token per unit of the argument exceeds any language model's loss. With 1e3 a
# leave-one-size-out fold of the quickstart campaign put s = 1e3 and predicted 329 nats for the held-out size.
S_REP = ParamSpec("s", "loss", 1e-8, 10.0, "log", description="scale of the repetition term (loss per unit of softplus)")
# k_r <= 10 keeps the onset at least ~0.1 log-epochs wide; k_n, k_u <= 10 keep it from becoming a step in N or
# U_D (a switch that turns the term on for one model size, which a fold of leave-one-size-out cannot place).
K_R = ParamSpec("k_r", "1/ln(epochs)", 0.0, 10.0, description="growth of the repetition term's argument per log epoch")
K_N_REP = ParamSpec("k_n", "1/ln(params)", 0.0, 10.0, description="onset shift per log model size (bigger: sooner)")
K_U_REP = ParamSpec("k_u", "1/ln(tokens)", 0.0, 10.0, description="onset shift per log unique tokens (more: later)")
K_IN_REP = ParamSpec("k_in", "1", -1e4, 1e4, description="repetition term offset (sets the onset)")

REPETITION_PARAMS = ("s", "k_r", "k_n", "k_u", "k_in")


def softplus(z: Array) -> Array:
    """log(1 + e^z), without overflow."""
    return np.logaddexp(0.0, z)


def log_epochs(x: Covariates) -> Array:
    """log R with R = max(D/U_D, 1): no repetition inside the first epoch."""
    return np.maximum(x.log_D - x.log_U_D, 0.0)


def repetition_term(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Grads | None]:
    """L_rep = s·[softplus(z_R) − softplus(z_1)] and its partial derivatives (see the module docstring)."""
    log_r = log_epochs(x)
    z_1 = p["k_n"] * x.log_N - p["k_u"] * x.log_U_D - p["k_in"]
    z_r = z_1 + p["k_r"] * log_r
    rise = softplus(z_r) - softplus(z_1)
    value = p["s"] * rise
    if not with_grad:
        return value, None
    sig_r = expit(z_r)
    shift = p["s"] * (sig_r - expit(z_1))  # d L_rep / d z_1, through both softplus terms
    partials: Grads = {
        "s": rise,
        "k_r": p["s"] * sig_r * log_r,
        "k_n": shift * x.log_N,
        "k_u": -shift * x.log_U_D,
        "k_in": -shift,
    }
    return value, partials


def repetition_log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
    """log L with L = Eq. 4 + s·[softplus(z_R) − softplus(z_1)]; L_rep ≥ 0, so L > 0 for every parameter in bounds."""
    log_nd, nd_grads = nd_log_loss(p, x, with_grad)
    base = np.exp(log_nd)
    term, partials = repetition_term(p, x, with_grad)
    total = base + term
    value = np.log(total)
    if not with_grad:
        return value, None
    assert nd_grads is not None and partials is not None
    return value, nd_grads.scaled(base / total).plus(1.0 / total, partials)


# Fewer repeated points than this with a positive Eq. 4 residual: the guess regresses on every repeated point.
_MIN_GUESS_ROWS = 5
_FALLBACK_GUESS = {"s": 0.05, "k_r": 1.0, "k_n": 0.0, "k_u": 0.0, "k_in": 1.0}


def repetition_guess(base_params: Mapping[str, float], x: Covariates, loss: Array) -> dict[str, float]:
    """Start values for s, k_r, k_n, k_u, k_in from the residuals of an Eq. 4 fit (as SMS's ``overfit_guess``).

    Past the onset L_rep ≈ s·z_R (softplus(z) ≈ z for z ≫ 0, and softplus(z_1) ≈ 0 when
    the onset comes after one epoch), so the residual r = L − L̂_Eq4 of the repeated
    points (R > 1) with r > 0 is regressed by least squares on [log R, log N,
    −log U_D, −1], giving s·(k_r, k_n, k_u, k_in). s is taken as the mean positive
    residual (the loss scale of the term); the coefficients are divided by it.
    With fewer than five repeated points, a fixed start. Values are not clipped.
    """
    log_r = log_epochs(x)
    repeated = log_r > 0
    residual = loss - ND.predict(base_params, x.N, x.D, x.U_D)
    rows = repeated & (residual > 0)
    if int(np.sum(rows)) < _MIN_GUESS_ROWS:
        rows = repeated
    if int(np.sum(rows)) < _MIN_GUESS_ROWS:
        return dict(_FALLBACK_GUESS)
    design = np.column_stack([log_r, x.log_N, -x.log_U_D, -np.ones_like(log_r)])[rows]
    scale = np.max(np.abs(design), axis=0)
    coef, *_ = np.linalg.lstsq(design / scale, residual[rows], rcond=None)
    coef = coef / scale
    positive = residual[rows][residual[rows] > 0]
    s = float(np.mean(positive)) if positive.size else _FALLBACK_GUESS["s"]
    k = coef / s
    return {"s": s, "k_r": float(k[0]), "k_n": float(k[1]), "k_u": float(k[2]), "k_in": float(k[3])}


REPETITION = register(
    Law(
        name="sms_repetition",
        title="SMS law with a repetition-driven overfitting term (smslab's own, not MuPT's)",
        equation="smslab, not MuPT: Eq. 4 + repetition term",
        params=(*CORE, K, D_ND, S_REP, K_R, K_N_REP, K_U_REP, K_IN_REP),
        log_loss=repetition_log_loss,
        default_grid={
            **CORE_GRID,
            "k": _K_GRID,
            "d": _D_GRID,
            "s": (0.02, 0.2),
            "k_r": (0.5, 2.0),
            # One value each: the guess start (from the residuals) and the joint fit move them; a second value
            # doubled the fit time for the same optimum on datablations.
            "k_n": (0.05,),
            "k_u": (0.05,),
            "k_in": (0.0, 3.0),
        },
        uses_unique_tokens=True,
        doc=(
            "L = d/(N^alpha·D''^beta) + A/N^alpha + B/D''^beta + E + s·[softplus(z_R) − softplus(z_1)], "
            "z_R = k_r·log R + k_n·log N − k_u·log U_D − k_in, R = max(D/U_D, 1), z_1 = z_R at R = 1"
        ),
        # As SMS (MuPT Appendix A.3.2): fit Eq. 4 first, then the repetition term on its residuals.
        base="nd",
        guess=repetition_guess,
    )
)
