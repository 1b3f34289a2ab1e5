"""The Eq. 16 objective and the batched L-BFGS that minimises it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from lawfit.fit import FitOptions, fit_law
from lawfit.laws import get_law
from lawfit.lbfgs import Status, minimize_batched
from lawfit.objective import Coordinates, Objective, huber
from lawfit.points import LossPoints
from lawfit.presets import HOFFMANN


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    r = np.array([-0.01, -5e-4, 0.0, 5e-4, 0.01])
    np.testing.assert_allclose(huber(r, 1e-3), [1e-3 * (0.01 - 5e-4), 0.5 * 25e-8, 0.0, 0.5 * 25e-8, 1e-3 * (0.01 - 5e-4)])


def test_objective_at_known_parameters_is_the_sum_of_huber_terms_on_log_loss():
    n = np.array([1e8, 1e9, 1e10])
    d = np.array([2e9, 2e10, 2e11])
    loss = np.array([3.1, 2.6, 2.2])
    points = LossPoints.from_arrays(N=n, D=d, loss=loss)
    predicted = 406.4 / n**0.34 + 410.7 / d**0.28 + 1.69
    expected = np.sum(huber(np.log(predicted) - np.log(loss), 1e-3))
    result = fit_law(points, "chinchilla", FitOptions(fixed=HOFFMANN))
    assert result.procedure == "scored"
    assert result.starts is None
    assert result.objective == pytest.approx(expected, rel=1e-12)
    assert result.metrics["train"].huber == pytest.approx(expected, rel=1e-12)


def test_objective_is_a_sum_so_duplicating_points_doubles_it():
    law = get_law("chinchilla")
    n, d = np.array([1e8, 1e9]), np.array([1e9, 1e10])
    loss = np.array([3.0, 2.5])
    coords = Coordinates(law, (), HOFFMANN, 1e10)
    once = Objective(coords, LossPoints.from_arrays(N=n, D=d, loss=loss).covariates(), np.log(loss), np.ones(2))
    twice_points = LossPoints.from_arrays(N=np.tile(n, 2), D=np.tile(d, 2), loss=np.tile(loss, 2))
    twice = Objective(coords, twice_points.covariates(), np.log(np.tile(loss, 2)), np.ones(4))
    rows = np.zeros(1, dtype=int)
    assert twice.value(np.zeros((1, 0)), rows)[0] == pytest.approx(2 * once.value(np.zeros((1, 0)), rows)[0])


def _rosenbrock(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = theta[:, 0], theta[:, 1]
    f = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    g = np.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], axis=1)
    return f, g


def test_batched_lbfgs_solves_many_rosenbrocks_at_once_like_scipy():
    rng = np.random.default_rng(0)
    starts = rng.uniform(-2, 2, size=(50, 2))
    result = minimize_batched(_rosenbrock, starts, np.array([-5.0, -5.0]), np.array([5.0, 5.0]))
    assert np.all(result.converged)
    np.testing.assert_allclose(result.x, np.ones((50, 2)), atol=1e-6)
    reference = minimize(lambda v: _rosenbrock(v[None, :], np.zeros(1))[0][0], starts[0], method="L-BFGS-B")
    np.testing.assert_allclose(result.x[0], reference.x, atol=1e-4)


def test_batched_lbfgs_respects_box_bounds():
    # The unconstrained optimum (1, 1) lies outside x <= 0.5: the solution sits on the bound.
    starts = np.array([[-1.0, 0.0], [0.2, 2.0]])
    result = minimize_batched(_rosenbrock, starts, np.array([-5.0, -5.0]), np.array([0.5, 5.0]))
    np.testing.assert_allclose(result.x[:, 0], 0.5, atol=1e-12)
    np.testing.assert_allclose(result.x[:, 1], 0.25, atol=1e-5)
    assert set(result.status) <= {Status.CONVERGED_GRADIENT, Status.CONVERGED_NO_PROGRESS}


def test_a_start_where_the_objective_is_not_finite_is_reported_not_crashed():
    def value_and_grad(theta, rows):
        f = np.where(theta[:, 0] > 0, theta[:, 0] ** 2, np.nan)
        return f, 2 * theta

    result = minimize_batched(value_and_grad, np.array([[-1.0], [1.0]]), np.array([-5.0]), np.array([5.0]))
    assert result.status[0] == Status.NONFINITE_START
    assert result.converged[1]


def test_a_zero_weight_removes_a_point_from_the_fit():
    from lawfit.reference_data import EXAMPLE_PARAMS, synthetic_curves

    clean = synthetic_curves("chinchilla", EXAMPLE_PARAMS["chinchilla"], (1e8, 4e8, 1.6e9), (1e10,), 8, 1.0, 0.002, seed=5)
    outlier_loss = clean.loss.copy()
    outlier_loss[3] *= 3.0
    weights = np.ones(len(clean))
    weights[3] = 0.0
    weighted = LossPoints.from_arrays(N=clean.N, D=clean.D, loss=outlier_loss, weight=weights)
    keep = np.arange(len(clean)) != 3
    dropped = LossPoints.from_arrays(N=clean.N[keep], D=clean.D[keep], loss=outlier_loss[keep])
    grid = {"A": (np.e**5,), "B": (np.e**5,), "E": (1.0,), "alpha": (0.5,), "beta": (0.5,)}
    with_weight = fit_law(weighted, "chinchilla", FitOptions(grid=grid))
    without_point = fit_law(dropped, "chinchilla", FitOptions(grid=grid))
    assert with_weight.objective == pytest.approx(without_point.objective, rel=1e-6)
    for name in ("E", "alpha", "beta"):
        assert with_weight.params[name] == pytest.approx(without_point.params[name], rel=1e-4)
