"""Data a law cannot be identified from is refused with the reason, not fitted silently."""

from __future__ import annotations

import pytest

from lawfit.cli import parse_fix
from lawfit.errors import LawfitInputError
from lawfit.fit import FitOptions, fit_law
from lawfit.laws import get_law
from lawfit.points import LossPoints
from lawfit.reference_data import EXAMPLE_PARAMS


def chinchilla_points(sizes: list[float], run_ids: list[str] | None = None) -> LossPoints:
    law = get_law("chinchilla")
    n = [s for s in sizes for _ in range(4)]
    d = [1e9, 2e9, 4e9, 8e9] * len(sizes)
    loss = law.predict(EXAMPLE_PARAMS["chinchilla"], n, d)
    return LossPoints.from_arrays(n, d, loss, run_id=run_ids or [f"N{x:g}-{i}" for i, x in enumerate(n)])


def test_one_run_id_with_two_model_sizes_is_refused_naming_the_run_and_row():
    with pytest.raises(LawfitInputError, match=r"row 5, column 'N': run 'a' has N = 1e\+08 in an earlier row"):
        chinchilla_points([1e8, 3e8], run_ids=["a"] * 8)


def test_a_single_model_size_cannot_identify_the_size_term_unless_it_is_held():
    points = chinchilla_points([1e8])
    with pytest.raises(LawfitInputError, match="the size term A/N\\^alpha cannot be identified from one size"):
        fit_law(points, "chinchilla")
    held = fit_law(points, "chinchilla", FitOptions(fixed={"A": 300.0, "alpha": 0.34}))
    assert held.params["A"] == 300.0 and held.params["alpha"] == 0.34


def test_a_parameter_fixed_twice_is_refused():
    with pytest.raises(LawfitInputError, match="--fix: alpha is given twice"):
        parse_fix("alpha=0.3,alpha=0.5")


def test_a_staged_law_whose_base_is_held_fits_the_rest_as_datablations_does():
    # Muennighoff et al. hold the Chinchilla part and fit only R_D*, R_N*: the first stage has nothing free
    # (this ended in "zero-size array to reduction operation maximum").
    from lawfit.presets import DATABLATIONS
    from lawfit.reference_data import datablations_points

    held = {k: DATABLATIONS[k] for k in ("A", "B", "E", "alpha", "beta")}
    fit = fit_law(datablations_points("fit"), "data_constrained", FitOptions(fixed=held))
    assert {k: fit.params[k] for k in held} == held and fit.fixed == tuple(sorted(held))
    assert 1.0 < fit.params["R_D_star"] < 1e3 and 0.1 < fit.params["R_N_star"] < 1e3


def test_sms_with_its_eq4_part_held_fits_the_overfitting_term_alone():
    from lawfit.reference_data import synthetic_curves

    truth = dict(EXAMPLE_PARAMS["sms"])
    points = synthetic_curves("sms", truth, (1e7, 3e7, 1e8), (1e8, 4e8), 12, 30.0, 0.002, seed=0)
    held = {k: truth[k] for k in ("A", "B", "E", "alpha", "beta", "k", "d")}
    fit = fit_law(points, "sms", FitOptions(fixed=held))
    assert {k: fit.params[k] for k in held} == held
    assert fit.metrics["train"] is not None and fit.metrics["train"].r2 > 0.9
