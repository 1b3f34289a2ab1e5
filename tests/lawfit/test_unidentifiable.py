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
