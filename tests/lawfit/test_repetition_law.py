"""smslab's repetition law ("sms_repetition"): exact gradients, an overfitting term for every parameter in
bounds (zero at one epoch, never negative, never rewarding repetition, fresh data never hurting), and a fit."""

from __future__ import annotations

import numpy as np
import pytest

from lawfit.fit import FitOptions, GridCache, fit_law
from lawfit.laws import get_law
from lawfit.laws.base import Covariates
from lawfit.laws.repetition import REPETITION_PARAMS, repetition_term
from lawfit.names import LAW_NAMES, LAW_PARAMETER_COUNTS
from lawfit.reference_data import EXAMPLE_PARAMS, datablations_points

NAME = "sms_repetition"
LAW = get_law(NAME)
EXAMPLE = EXAMPLE_PARAMS[NAME]  # also in tests/lawfit/test_laws.py's gradient check over EXAMPLE_PARAMS


def random_params(rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """``count`` parameter vectors drawn within the law's bounds: log-uniform for log parameters (over a
    range that keeps the loss finite), uniform for the others, with a share of each bound itself."""
    out: dict[str, np.ndarray] = {}
    for spec in LAW.params:
        if spec.transform == "log":
            lo, hi = np.log(max(spec.lower, 1e-12)), np.log(min(spec.upper, 1e30))
            values = np.exp(rng.uniform(lo, hi, count))
        else:
            lo, hi = max(spec.lower, -50.0), min(spec.upper, 50.0)
            values = rng.uniform(lo, hi, count)
        edge = rng.random(count) < 0.1
        values[edge] = rng.choice([spec.lower, spec.upper], int(edge.sum()))
        out[spec.name] = values
    return out


def test_it_is_registered_after_the_papers_laws_with_its_own_name_and_equation():
    assert LAW_NAMES.index(NAME) > LAW_NAMES.index("sms")
    assert LAW_PARAMETER_COUNTS[NAME] == len(LAW.params) == 12
    assert "smslab" in LAW.equation and "not MuPT" in LAW.equation
    assert LAW.base == "nd" and LAW.guess is not None and LAW.uses_unique_tokens
    assert set(LAW.param_names) - set(get_law("nd").param_names) == set(REPETITION_PARAMS)
    for name in REPETITION_PARAMS:  # a grid value for every parameter, inside the bounds
        spec = LAW.spec(name)
        assert LAW.default_grid[name] and all(spec.lower <= v <= spec.upper for v in LAW.default_grid[name])


def test_the_fit_command_offers_it():
    from smslab.cli import build_parser

    args = build_parser().parse_args(["fit", "points.csv", "--law", NAME])
    assert args.law == NAME


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"k_in": -2.0},  # onset before the first epoch: z_1 > 0
        {"k_in": 12.0, "k_r": 3.0},  # onset late: deep in softplus's exponential tail
        {"k_n": 0.0, "k_u": 0.0, "s": 2.0},
    ],
)
def test_analytic_gradient_matches_central_differences(overrides):
    rng = np.random.default_rng(1)
    n = 60
    # Points inside the first epoch (D < U_D), at it, and up to 500 epochs.
    unique = rng.choice([1e9, 4e9], n)
    x = Covariates.of(rng.choice([3e7, 1e8, 4e8, 2e9], n), unique * np.exp(rng.uniform(-1.0, np.log(500.0), n)), unique)
    base = {**EXAMPLE, **overrides}
    p = {k: np.array([[v]]) for k, v in base.items()}
    _, grad = LAW.log_loss(p, x, True)
    assert grad is not None
    for name, value in base.items():
        h = abs(value) * 1e-6 if value else 1e-7
        up = {**p, name: np.array([[value + h]])}
        down = {**p, name: np.array([[value - h]])}
        numeric = (LAW.log_loss(up, x, False)[0] - LAW.log_loss(down, x, False)[0]) / (2 * h)
        analytic = grad.dense(name, (1, n))
        np.testing.assert_allclose(analytic, numeric, rtol=2e-5, atol=1e-9 / max(abs(value), 1e-7), err_msg=name)


def test_the_term_is_exactly_zero_at_and_inside_the_first_epoch():
    rng = np.random.default_rng(2)
    params = random_params(rng, 500)
    n = np.array([1e7, 1e8, 1e9, 1e10])
    unique = np.array([1e8, 1e9, 1e10, 1e12])
    for fraction in (0.01, 0.5, 1.0):  # D = fraction · U_D
        x = Covariates.of(n, fraction * unique, unique)
        term, _ = repetition_term({k: v[:, None] for k, v in params.items()}, x, False)
        assert np.all(term == 0.0)
        nd = get_law("nd").predict_many({k: params[k] for k in get_law("nd").param_names}, x)
        np.testing.assert_allclose(LAW.predict_many(params, x), nd, rtol=1e-12)


def test_fresh_data_never_raises_the_predicted_loss_for_any_parameters_in_bounds():
    # dL/dD <= 0 along U_D = D (every token new), checked on a fine grid of D for 2,000 random
    # parameter vectors within the bounds, at four model sizes.
    rng = np.random.default_rng(3)
    params = random_params(rng, 2000)
    d = np.geomspace(1e6, 1e14, 200)
    for n in (1e6, 1e8, 1e9, 1e11):
        loss = LAW.predict_many(params, Covariates.of(n, d, d))
        assert np.all(np.isfinite(loss)) and np.all(loss > 0)
        step = np.diff(loss, axis=1)
        assert np.all(step <= 1e-12 * loss[:, 1:]), f"N={n:g}: the loss rose with fresh data"


def test_the_sms_flaw_it_fixes_sms_rises_with_fresh_data_the_repetition_law_does_not():
    # The fitted SMS law's GELU grows with raw D: at U_D = D it predicts more loss from more fresh tokens.
    sms = {**EXAMPLE_PARAMS["sms"], "k_d": 2e-12}
    d = np.geomspace(1e10, 1e13, 30)
    assert np.max(np.diff(get_law("sms").predict(sms, 1e9, d, d))) > 0
    assert np.max(np.diff(LAW.predict(EXAMPLE, 1e9, d, d))) <= 0


def rounding(params: dict[str, np.ndarray], n: float, unique: float) -> np.ndarray:
    """What s·[softplus(z_R) − softplus(z_1)] may be off by in float64 when |z| is large: (S, 1)."""
    z_scale = np.abs(params["k_in"]) + (params["k_n"] * np.log(n) + params["k_u"] * np.log(unique) + params["k_r"] * 10)
    return 1e-14 * params["s"] * (1.0 + z_scale)


def test_the_term_is_non_negative_and_grows_with_repetition_and_falls_with_unique_tokens():
    rng = np.random.default_rng(4)
    params = {k: v[:, None] for k, v in random_params(rng, 1000).items()}
    epochs = np.geomspace(1.0, 1e4, 120)
    for n, unique in ((1e7, 1e8), (1e9, 1e10), (1e11, 1e9)):
        term, _ = repetition_term(params, Covariates.of(n, epochs * unique, unique), False)
        assert np.all(term >= -rounding(params, n, unique))
        assert np.all(np.diff(term, axis=1) >= -2 * rounding(params, n, unique)), "repetition lowered the term"
    # More unique tokens behind the same D (fewer epochs) never raise the term (softplus is convex, k_u >= 0).
    unique = np.geomspace(1e8, 1e11, 120)
    term, _ = repetition_term(params, Covariates.of(1e9, 1e11, unique), False)
    assert np.all(np.diff(term, axis=1) <= 2 * rounding(params, 1e9, 1e11))


def test_the_guess_reads_the_term_from_the_residuals_of_eq_4():
    # Every point far past the onset (z_R from 3.9 to 11, where softplus(z) = z within 2 %) and the onset well
    # after one epoch (z_1 <= -3.7, softplus(z_1) <= 0.025): L_rep ≈ s·z_R, and the regression of the Eq. 4
    # residuals reads s·(k_r, k_n, k_u, k_in). (The guess's s is the mean residual: only products compare.)
    truth = {**EXAMPLE, "s": 0.2, "k_r": 2.5, "k_n": 0.5, "k_u": 0.4, "k_in": 6.0}
    grid = np.array(np.meshgrid([1e8, 2e8, 4e8, 8e8], [1e9, 2e9, 4e9], np.geomspace(60.0, 600.0, 6))).reshape(3, -1)
    x = Covariates.of(grid[0], grid[2] * grid[1], grid[1])
    loss = LAW.predict(truth, x.N, x.D, x.U_D)
    base = {k: truth[k] for k in get_law("nd").param_names}
    assert LAW.guess is not None
    guess = LAW.guess(base, x, loss)
    assert set(guess) == set(REPETITION_PARAMS)
    for name in ("k_r", "k_n", "k_u", "k_in"):
        assert guess["s"] * guess[name] == pytest.approx(truth["s"] * truth[name], rel=0.03), name
    # Without repeated points, a fixed start inside the bounds.
    fresh = Covariates.of(np.array([1e8] * 6), np.geomspace(1e9, 1e10, 6))
    fallback = LAW.guess(base, fresh, np.full(6, 3.0))
    assert all(LAW.spec(k).check(v) is None for k, v in fallback.items())


def test_a_fit_to_the_datablations_runs_converges_and_beats_eq_4():
    points = datablations_points("fit")
    cache = GridCache()  # the staged fit's first stage is the "nd" fit
    nd = fit_law(points, "nd", FitOptions(), cache)
    fit = fit_law(points, NAME, FitOptions(), cache)
    assert fit.starts is not None and fit.starts.converged > 0
    assert np.isfinite(fit.objective) and fit.objective < nd.objective
    for spec in LAW.params:
        assert spec.check(fit.params[spec.name]) is None
    assert fit.metrics["train"] is not None and fit.metrics["train"].r2 > 0.95
