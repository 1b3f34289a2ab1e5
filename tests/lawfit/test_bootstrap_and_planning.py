"""Bootstrap intervals over runs, and plans computed from fits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lawfit.bootstrap import bootstrap_fit, resample_weights
from lawfit.fit import FitOptions, fit_law
from lawfit.planning import chinchilla_closed_form, plan_compute_optimal, plan_tokens
from lawfit.points import LossPoints
from lawfit.presets import HOFFMANN, preset_fit
from lawfit.reference_data import synthetic_curves
from lawfit.result import FitResult

CORE = {"A": 300.0, "B": 800.0, "E": 0.5, "alpha": 0.34, "beta": 0.30}
SMALL_GRID = {"A": (np.e**5,), "B": (np.e**5,), "E": (1.0,), "alpha": (0.5,), "beta": (0.5,)}


def test_resampling_draws_whole_runs_never_single_points_of_a_curve():
    points = LossPoints.from_arrays(
        N=[1e8] * 3 + [2e8] * 3 + [4e8] * 2,
        D=[1e9, 2e9, 3e9] * 2 + [1e9, 2e9],
        loss=[3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4, 2.3],
        run_id=["a"] * 3 + ["b"] * 3 + ["c"] * 2,
    )
    weights = resample_weights(points, 200, seed=1)
    for run in ("a", "b", "c"):
        block = weights[:, points.run_id == run]
        assert np.all(block == block[:, :1])  # every point of a run has its run's count
    assert np.all(weights[:, points.run_id == "a"][:, 0] + weights[:, points.run_id == "b"][:, 0] + weights[:, points.run_id == "c"][:, 0] == 3)


def test_bootstrap_interval_covers_the_generating_parameters():
    points = synthetic_curves("chinchilla", CORE, (1e8, 2e8, 4e8, 8e8, 1.6e9), (1e10,), 20, 1.0, 0.01, seed=3)
    fit = fit_law(points, "chinchilla", FitOptions(grid=SMALL_GRID))
    boot = bootstrap_fit(fit, points, 100, FitOptions(grid=SMALL_GRID), level=0.95, seed=0)
    assert len(boot.draws) == 100 and boot.converged > 80
    for name in ("E", "alpha", "beta"):
        lo, hi = boot.intervals[name]
        assert lo < CORE[name] < hi, name
        assert lo < fit.params[name] < hi


def test_fit_result_round_trips_through_json(tmp_path):
    points = synthetic_curves("chinchilla", CORE, (1e8, 4e8, 1.6e9), (1e10,), 10, 1.0, 0.01, seed=3)
    fit = fit_law(points, "chinchilla", FitOptions(grid=SMALL_GRID))
    fit = fit.with_bootstrap(bootstrap_fit(fit, points, 10, FitOptions(grid=SMALL_GRID)))
    path = tmp_path / "fit.json"
    fit.write(path)
    json.loads(path.read_text())  # strict JSON: no NaN
    again = FitResult.read(path)
    assert again.params == pytest.approx(fit.params)
    assert again.points_hash == fit.points_hash and again.points_hash.startswith("sha256:")
    assert len(again.bootstrap.draws) == 10
    assert plan_compute_optimal(again, 1e21).n_opt == pytest.approx(plan_compute_optimal(fit, 1e21).n_opt)


def test_numeric_chinchilla_plan_matches_the_closed_form_of_eq_10():
    plan = plan_compute_optimal(preset_fit("hoffmann"), 5.88e23)
    closed = chinchilla_closed_form(HOFFMANN, 5.88e23)
    assert plan.n_opt == pytest.approx(closed["n_opt"], rel=1e-6)
    assert plan.d_opt == pytest.approx(closed["d_opt"], rel=1e-6)
    assert plan.n_opt * plan.d_opt * 6 == pytest.approx(5.88e23)
    assert plan.epochs is None and not plan.at_search_edge


def test_a_fit_with_an_exponent_at_its_bound_plans_without_a_closed_form():
    import dataclasses

    flat = dataclasses.replace(preset_fit("hoffmann"), params={**HOFFMANN, "beta": 0.0})
    assert chinchilla_closed_form(flat.params, 1e21) is None
    plan = plan_compute_optimal(flat, 1e21)
    assert plan.closed_form is None and plan.at_search_edge  # loss does not fall with D: all compute goes to N


def test_scarce_unique_data_makes_the_data_constrained_plan_spend_compute_on_epochs():
    # Muennighoff et al.: with R_N* < R_D*, repeated data is better spent on more
    # epochs than on more parameters, so N* shrinks as unique data gets scarce.
    fit = preset_fit("datablations")
    plenty = plan_compute_optimal(fit, 1e21, 1e13)
    scarce = plan_compute_optimal(fit, 1e21, 1e9)
    assert plenty.epochs < 1 < scarce.epochs
    assert scarce.n_opt < plenty.n_opt
    assert scarce.loss > plenty.loss


def test_plan_has_bootstrap_intervals_around_the_point_estimate():
    points = synthetic_curves("chinchilla", CORE, (1e8, 2e8, 4e8, 8e8, 1.6e9), (1e10,), 20, 1.0, 0.01, seed=3)
    fit = fit_law(points, "chinchilla", FitOptions(grid=SMALL_GRID))
    fit = fit.with_bootstrap(bootstrap_fit(fit, points, 60, FitOptions(grid=SMALL_GRID)))
    plan = plan_compute_optimal(fit, 1e20, 5e9)
    assert plan.interval is not None and plan.level == 0.95
    for key, value in (("n_opt", plan.n_opt), ("d_opt", plan.d_opt), ("epochs", plan.epochs), ("loss", plan.loss)):
        lo, hi = plan.interval[key]
        assert lo <= value * 1.02 and value <= hi * 1.02, key


def test_sms_token_plan_finds_the_overfitting_onset_and_chinchilla_finds_none():
    sms = {**CORE, "k": 0.9, "d": 2e5, "k_d": 2e-12, "k_n": 0.05, "k_u": 0.05, "k_in": 1.0}
    fit = FitResult.from_dict({**preset_fit("hoffmann").to_dict(), "law": "sms", "params": sms, "units": {}})
    plan = plan_tokens(fit, 4e8, 1.6e10, max_epochs=100)
    assert plan.overfits and 5 < plan.epochs_best < 100
    assert min(plan.losses) >= plan.loss_best - 1e-12
    assert plan.losses[-1] > plan.loss_best  # the loss has turned up by the last epoch count
    chin = plan_tokens(preset_fit("hoffmann"), 4e8, 1.6e10, max_epochs=100)
    assert not chin.overfits and chin.epochs_best == pytest.approx(100)
