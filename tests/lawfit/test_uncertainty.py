"""Standard errors from the Hessian of the Huber objective (MuPT Eq. 16): calibrated, lmfit-consistent, NaN if unidentifiable."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import lmfit
import numpy as np
import pytest

import lawfit.laws.base
import lawfit.user_law
from lawfit.fit import FitOptions, fit_law
from lawfit.laws import get_law
from lawfit.multistart import minimize_from
from lawfit.points import LossPoints
from lawfit.reference_data import EXAMPLE_PARAMS, synthetic_curves
from lawfit.uncertainty import ParameterErrors, fit_standard_errors, standard_errors
from lawfit.user_law import load_law_file

TRUTH = EXAMPLE_PARAMS["chinchilla"]
SIZES = (1e7, 3e7, 1e8, 3e8, 1e9)
CHINCHILLA = get_law("chinchilla")


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """User laws go into a copy of the registry: the built-ins' order checks stay true."""
    monkeypatch.setattr(lawfit.laws.base, "_REGISTRY", dict(lawfit.laws.base._REGISTRY))
    monkeypatch.setattr(lawfit.user_law, "_LOADED", {})


def synthetic(noise: float, seed: int) -> LossPoints:
    return synthetic_curves("chinchilla", TRUTH, SIZES, (1e9, 1e10), 8, 1.0, noise, seed)


def fit_from_truth(points: LossPoints, delta: float) -> dict[str, float]:
    """One L-BFGS run from the truth: the optimum, quickly (these tests are about the errors, not the search)."""
    run = minimize_from(CHINCHILLA, points, {n: np.array([TRUTH[n]]) for n in TRUTH}, {}, FitOptions(delta=delta))
    return run.params


@pytest.mark.parametrize(("noise", "seed"), [(2e-4, 0), (0.01, 0)])
def test_truth_lies_within_a_few_stderr(noise: float, seed: int) -> None:
    # noise 2e-4: every residual inside delta = 1e-3 (least squares); 0.01: most outside (least absolute deviations).
    points = synthetic(noise, seed)
    fit = fit_law(points, "chinchilla", FitOptions(grid={n: (v,) for n, v in TRUTH.items()}))
    errors = fit_standard_errors(fit, points)
    assert isinstance(errors, ParameterErrors) and errors.form == "sandwich"
    assert "sandwich" in errors.note
    for name, truth in TRUTH.items():
        assert math.isfinite(errors.stderr[name]) and errors.stderr[name] > 0, name
        assert abs(fit.params[name] - truth) < 4 * errors.stderr[name], name
    assert errors.correlation["A"]["A"] == 1.0
    assert errors.correlation["A"]["alpha"] == errors.correlation["alpha"]["A"]
    assert errors.covariance["E"]["E"] == pytest.approx(errors.stderr["E"] ** 2)


def test_sandwich_stderr_matches_the_spread_of_refits_where_residuals_exceed_delta() -> None:
    # 30 noisy data sets: the sandwich's stderr is the spread of the estimates; lmfit's form overstates it,
    # since its Hessian counts only the residuals inside delta while its variance counts them all.
    estimates, sandwich, lmfit_form = [], [], []
    for seed in range(30):
        points = synthetic(0.01, seed)
        params = fit_from_truth(points, 1e-3)
        estimates.append([params[n] for n in TRUTH])
        sandwich.append([standard_errors(CHINCHILLA, params, points).stderr[n] for n in TRUTH])
        lmfit_form.append([standard_errors(CHINCHILLA, params, points, form="lmfit").stderr[n] for n in TRUTH])
    spread = np.std(estimates, axis=0)
    ratio = np.median(sandwich, axis=0) / spread
    assert np.all((ratio > 0.6) & (ratio < 1.5)), dict(zip(TRUTH, ratio, strict=True))
    assert np.all(np.median(lmfit_form, axis=0) > 1.5 * np.median(sandwich, axis=0))


def test_lmfit_form_is_lmfits_stderr_when_every_residual_is_inside_delta() -> None:
    points = synthetic(0.01, 3)
    params = fit_from_truth(points, 1.0)  # delta = 1: the Huber objective is half the sum of squares
    ours = standard_errors(CHINCHILLA, params, points, delta=1.0, form="lmfit")
    lm_params = lmfit.Parameters()
    for name in CHINCHILLA.param_names:
        lm_params.add(name, value=params[name])

    def residual(p: lmfit.Parameters) -> np.ndarray:
        return np.log(CHINCHILLA.predict(p.valuesdict(), points.N, points.D)) - np.log(points.loss)

    theirs = lmfit.minimize(residual, lm_params, method="leastsq").params
    for name in CHINCHILLA.param_names:
        # lmfit's Jacobian form JᵀJ against our full Hessian: equal up to the residual-curvature term.
        assert ours.stderr[name] == pytest.approx(theirs[name].stderr, rel=0.02), name
    assert ours.correlation["A"]["alpha"] == pytest.approx(theirs["A"].correl["alpha"], abs=1e-3)


def test_a_parameter_the_data_cannot_identify_gets_nan_and_the_others_do_not() -> None:
    # One epoch everywhere (U_D = D): D'' = U_D whatever k is.
    points = synthetic_curves("dprime", EXAMPLE_PARAMS["dprime"], SIZES, (1e9,), 8, 1.0, 2e-4, seed=0)
    points = dataclasses.replace(points, U_D=points.D.copy())
    start = {n: (v,) for n, v in EXAMPLE_PARAMS["dprime"].items()}
    fit = fit_law(points, "dprime", FitOptions(grid=start))
    errors = fit_standard_errors(fit, points)
    assert math.isnan(errors.stderr["k"])
    assert math.isnan(errors.correlation["k"]["alpha"]) and math.isnan(errors.correlation["alpha"]["k"])
    assert all(math.isfinite(errors.stderr[n]) for n in ("A", "B", "E", "alpha", "beta"))
    assert "not identifiable" in errors.note and "k" in errors.note


def test_parameters_only_identified_together_get_nan(tmp_path: Path) -> None:
    path = tmp_path / "product.py"
    path.write_text(
        "from lmfit import Parameters\n"
        "NAME = 'product'\n"
        "EXPRESSION = 'A*B/N**alpha + E'\n"
        "PARAMS = Parameters()\n"
        "PARAMS.add('A', value=20.0, min=1e-6, max=1e12)\n"
        "PARAMS.add('B', value=20.0, min=1e-6, max=1e12)\n"
        "PARAMS.add('E', value=1.0, min=1e-3, max=10)\n"
        "PARAMS.add('alpha', value=0.3, min=0.0, max=2.0)\n"
    )
    load_law_file(path)
    truth = {"A": 20.0, "B": 20.0, "E": 0.5, "alpha": 0.34}
    points = synthetic_curves("product", truth, SIZES, (1e9,), 8, 1.0, 2e-4, seed=0)
    fit = fit_law(points, "product")
    errors = fit_standard_errors(fit, points)
    assert math.isnan(errors.stderr["A"]) and math.isnan(errors.stderr["B"])
    for name in ("E", "alpha"):
        assert math.isfinite(errors.stderr[name])
        assert abs(fit.params[name] - truth[name]) < 4 * errors.stderr[name]


def test_held_parameters_are_excluded_and_too_few_points_inside_delta_give_nan() -> None:
    points = synthetic(2e-4, 1)
    held = fit_law(points, "chinchilla", FitOptions(fixed={"E": TRUTH["E"]}, grid={n: (v,) for n, v in TRUTH.items()}))
    errors = fit_standard_errors(held, points)
    assert set(errors.stderr) == {"A", "B", "alpha", "beta"}
    assert all(math.isfinite(v) for v in errors.stderr.values())
    # Far from the data every residual is beyond delta: the Hessian has no data term, so no errors, no crash.
    off = standard_errors(CHINCHILLA, {**TRUTH, "E": 3 * TRUTH["E"]}, points)
    assert all(math.isnan(v) for v in off.stderr.values())
    assert "not computed" in off.note
