"""Each law recovers the parameters that generated noisy synthetic curves."""

from __future__ import annotations

import numpy as np
import pytest

from lawfit.fit import FitOptions, fit_law
from lawfit.planning import plan_tokens
from lawfit.reference_data import EXAMPLE_PARAMS as TRUE
from lawfit.reference_data import synthetic_curves
from lawfit.result import FitResult

SIZES = (1e8, 2e8, 4e8, 8e8, 1.6e9)
UNIQUE = (1e9, 4e9, 1.6e10)


def curves(law: str):
    return synthetic_curves(law, TRUE[law], SIZES, UNIQUE, 30, 30.0, 0.002, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("law", ["chinchilla", "data_constrained", "dprime", "nd"])
def test_law_recovers_its_generating_parameters(law):
    fit = fit_law(curves(law), law)
    truth = TRUE[law]
    for name in ("E", "alpha", "beta"):
        assert fit.params[name] == pytest.approx(truth[name], rel=0.04), name
    assert fit.params["B"] == pytest.approx(truth["B"], rel=0.05)
    assert fit.params["A"] == pytest.approx(truth["A"], rel=0.15)  # A trades off against alpha
    for name in ("k", "R_D_star", "R_N_star", "d"):
        if name in truth:
            assert fit.params[name] == pytest.approx(truth[name], rel=0.15), name
    # The fit is at least as good as the truth on its own objective.
    assert fit.objective <= fit_law(curves(law), law, FitOptions(fixed=truth)).objective * (1 + 1e-9)


@pytest.mark.slow
def test_sms_law_recovers_parameters_and_the_overfitting_onset():
    points = curves("sms")
    fit = fit_law(points, "sms")
    truth = TRUE["sms"]
    assert {"staged", "joint"} <= set(fit.alternatives)
    assert fit.objective == min(a.objective for a in fit.alternatives.values())
    for name in ("E", "alpha", "beta", "k"):
        assert fit.params[name] == pytest.approx(truth[name], rel=0.05), name
    assert fit.params["k_d"] == pytest.approx(truth["k_d"], rel=0.15)
    # k_n, k_u and k_in are nearly collinear on 5 sizes × 3 data sizes; what must be right
    # is where the loss turns up: the overfitting onset, for the runs whose onset lies
    # inside the 30 epochs the curves cover (about 17-20 epochs at U_D = 1.6e10).
    true_fit = FitResult.from_dict({**fit.to_dict(), "params": truth})
    for n, u in [(1e8, 1.6e10), (4e8, 1.6e10), (1.6e9, 1.6e10)]:
        fitted_onset = plan_tokens(fit, n, u, max_epochs=200).epochs_best
        true_onset = plan_tokens(true_fit, n, u, max_epochs=200).epochs_best
        assert plan_tokens(true_fit, n, u, max_epochs=200).overfits
        assert fitted_onset == pytest.approx(true_onset, rel=0.05)


def test_fixed_parameters_stay_fixed_and_the_rest_is_fitted():
    points = curves("chinchilla")
    grid = {"A": (np.e**5,), "B": (np.e**5,), "E": (1.0,), "alpha": (0.5,), "beta": (0.5,)}
    fit = fit_law(points, "chinchilla", FitOptions(fixed={"alpha": 0.34, "beta": 0.30}, grid=grid))
    assert fit.params["alpha"] == 0.34 and fit.params["beta"] == 0.30
    assert fit.fixed == ("alpha", "beta")
    assert fit.params["E"] == pytest.approx(0.5, rel=0.02)
    assert fit.starts is not None and fit.starts.total == 1


def test_held_out_sizes_are_scored_separately():
    points = curves("chinchilla")
    grid = {"A": (np.e**5,), "B": (np.e**5,), "E": (1.0,), "alpha": (0.5,), "beta": (0.5,)}
    fit = fit_law(points, "chinchilla", FitOptions(train_max_n=4e8, grid=grid, leave_one_size_out=True))
    assert fit.n_points == 3 * 3 * 30
    test = fit.metrics["test"]
    assert test is not None and test.n_points == 2 * 3 * 30
    assert test.r2 > 0.99
    assert fit.leave_one_size_out is not None and fit.leave_one_size_out.n_points == fit.n_points
