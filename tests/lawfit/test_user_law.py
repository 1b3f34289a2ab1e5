"""User-defined laws (issue 12, item 8): a law file's law fitted like the built-in ones."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lawfit.laws.base
import lawfit.user_law
from lawfit.errors import LawfitInputError
from lawfit.fit import FitOptions, fit_law
from lawfit.laws import get_law
from lawfit.laws.base import Covariates, Law
from lawfit.reference_data import EXAMPLE_PARAMS, datablations_points, synthetic_curves
from lawfit.uncertainty import fit_standard_errors
from lawfit.user_law import LoadedLaw, load_law_file

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "my_law.py"

CHINCHILLA_PARAMS = """
PARAMS = Parameters()
PARAMS.add("A", value=400.0, min=1e-12, max=1e30)
PARAMS.add("B", value=1e4, min=1e-12, max=1e30)
PARAMS.add("E", value=1.7, min=1e-6, max=1e3)
PARAMS.add("alpha", value=0.3, min=0.0, max=5.0)
PARAMS.add("beta", value=0.3, min=0.0, max=5.0)
"""


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers its user laws in a copy of the registry: the built-ins' order checks stay true."""
    monkeypatch.setattr(lawfit.laws.base, "_REGISTRY", dict(lawfit.laws.base._REGISTRY))
    monkeypatch.setattr(lawfit.user_law, "_LOADED", {})


def law_file(tmp_path: Path, body: str, name: str = "law.py") -> Path:
    path = tmp_path / name
    path.write_text("from lmfit import Parameters\n" + textwrap.dedent(body))
    return path


def chinchilla_file(tmp_path: Path, name: str = "my_chinchilla", extra: str = "") -> Path:
    return law_file(tmp_path, f'NAME = "{name}"\nEXPRESSION = "A/N^alpha + B/D^beta + E"\n{CHINCHILLA_PARAMS}{extra}')


def fd_check(law: Law, params: dict[str, float], x: Covariates) -> None:
    """The law's exact d log L̂/dp against central differences, for every parameter."""
    batch = {n: np.array([[params[n]]]) for n in law.param_names}
    value, grad = law.log_loss(batch, x, True)
    assert grad is not None and np.all(np.isfinite(value))
    for name in law.param_names:
        h = 1e-6 * abs(params[name])
        up = law.log_loss({**batch, name: batch[name] + h}, x, False)[0]
        down = law.log_loss({**batch, name: batch[name] - h}, x, False)[0]
        np.testing.assert_allclose(grad.dense(name, value.shape), (up - down) / (2 * h), rtol=1e-5, atol=1e-12)


def test_user_chinchilla_computes_what_the_builtin_computes_value_and_gradient(tmp_path: Path) -> None:
    law = load_law_file(chinchilla_file(tmp_path)).law
    builtin = get_law("chinchilla")
    rng = np.random.default_rng(0)
    x = Covariates.of(rng.uniform(1e7, 1e10, 20), rng.uniform(1e9, 1e12, 20))
    batch = {n: np.array([[v], [2 * v]]) for n, v in EXAMPLE_PARAMS["chinchilla"].items()}
    mine, mine_grad = law.log_loss(batch, x, True)
    theirs, their_grad = builtin.log_loss(batch, x, True)
    np.testing.assert_allclose(mine, theirs, rtol=1e-12)
    assert mine_grad is not None and their_grad is not None
    for name in builtin.param_names:
        np.testing.assert_allclose(mine_grad.dense(name, mine.shape), their_grad.dense(name, mine.shape), rtol=1e-10)
    assert [p.transform for p in law.params] == [p.transform for p in builtin.params]
    assert not law.uses_unique_tokens


def test_user_chinchilla_recovers_the_builtin_fit_on_datablations(tmp_path: Path) -> None:
    loaded = load_law_file(chinchilla_file(tmp_path))
    points = datablations_points()
    # The same starts for both: the user law's default grid (3 per parameter, 243 starts).
    options = FitOptions(grid=loaded.law.default_grid)
    mine = fit_law(points, "my_chinchilla", options)
    theirs = fit_law(points, "chinchilla", options)
    assert mine.objective == pytest.approx(theirs.objective, rel=1e-9)
    for name, value in theirs.params.items():
        assert mine.params[name] == pytest.approx(value, rel=1e-5), name
    assert mine.objective == pytest.approx(0.0089526528, rel=1e-6)  # the full 4,500-start built-in optimum


def test_example_law_file_loads_registers_and_is_idempotent() -> None:
    loaded = load_law_file(EXAMPLE)
    assert isinstance(loaded, LoadedLaw)
    assert get_law("one_exponent_dprime") is loaded.law
    assert loaded.law.param_names == ("A", "B", "E", "alpha", "k")  # beta is tied, not a parameter
    assert dict(loaded.tied) == {"beta": "alpha"}
    assert dict(loaded.fixed) == {}
    assert loaded.law.uses_unique_tokens
    assert loaded.law.default_grid["k"] == (0.5, 0.9, 0.99)  # GRID
    assert loaded.law.spec("A").unit == "loss·params^alpha"
    assert [loaded.law.spec(n).transform for n in ("A", "alpha", "k")] == ["log", "linear", "log"]
    assert load_law_file(EXAMPLE) is loaded
    with pytest.raises(TypeError):
        loaded.fixed["E"] = 1.0  # type: ignore[index]


def test_example_law_recovers_its_parameters_with_stderr() -> None:
    loaded = load_law_file(EXAMPLE)
    truth = {"A": 300.0, "B": 800.0, "E": 0.5, "alpha": 0.3, "beta": 0.3, "k": 0.9}
    points = synthetic_curves("dprime", truth, (1e7, 3e7, 1e8, 3e8, 1e9), (1e9, 1e10), 8, 20.0, 2e-4, seed=0)
    fit = fit_law(points, loaded.law.name, FitOptions(fixed=loaded.fixed))
    errors = fit_standard_errors(fit, points)
    for name in loaded.law.param_names:
        assert abs(fit.params[name] - truth[name]) < 4 * errors.stderr[name], name
    assert loaded.tied_values(fit.params) == {"beta": fit.params["alpha"]}


def test_dpp_is_the_builtin_d_double_prime_with_exact_gradients(tmp_path: Path) -> None:
    body = 'NAME = "my_dprime"\nEXPRESSION = "A/N**alpha + B/Dpp**beta + E"\n' + CHINCHILLA_PARAMS
    path = law_file(tmp_path, body + 'PARAMS.add("k", value=0.9, min=1e-6, max=1 - 1e-9)\n')
    law = load_law_file(path).law
    assert law.uses_unique_tokens
    x = Covariates.of([1e8, 3e8, 1e9, 2e9], [5e8, 4e10, 2e9, 1e11], [1e9, 1e10, 1e9, 1e10])
    params = {**EXAMPLE_PARAMS["dprime"], "k": 0.93}
    np.testing.assert_allclose(law.predict(params, x.N, x.D, x.U_D), get_law("dprime").predict(params, x.N, x.D, x.U_D),
                               rtol=1e-13)
    fd_check(law, params, x)


def test_gradients_match_finite_differences_with_functions_and_ties() -> None:
    law = load_law_file(EXAMPLE).law
    x = Covariates.of([1e8, 3e8, 1e9], [5e8, 4e10, 1e11], [1e9, 1e10, 2e10])
    fd_check(law, {"A": 400.0, "B": 1e4, "E": 1.7, "alpha": 0.3, "k": 0.9}, x)


def test_gradients_of_an_expression_with_functions(tmp_path: Path) -> None:
    path = law_file(tmp_path, """
        NAME = "smooth"
        EXPRESSION = "E + A*exp(-alpha*log(N)) + sqrt(B)/D^beta * (1 + tanh(c*log(D/U_D)))"
        PARAMS = Parameters()
        PARAMS.add("A", value=300.0, min=1e-6, max=1e9)
        PARAMS.add("B", value=1e5, min=1e-6, max=1e12)
        PARAMS.add("E", value=0.5, min=1e-3, max=10)
        PARAMS.add("alpha", value=0.3, min=0, max=2)
        PARAMS.add("beta", value=0.25, min=0, max=2)
        PARAMS.add("c", value=0.4, min=-5, max=5)
    """)
    law = load_law_file(path).law
    assert [law.spec(n).transform for n in law.param_names] == ["log", "log", "log", "linear", "linear", "linear"]
    assert law.default_grid["c"] == (-2.5, 0.4, 2.5)  # the value, the quarter and three-quarter points
    assert law.default_grid["A"] == pytest.approx((300 * np.exp(-3), 300, 300 * np.exp(3)))
    fd_check(law, {"A": 300.0, "B": 1e5, "E": 0.5, "alpha": 0.3, "beta": 0.25, "c": 0.4},
             Covariates.of([1e8, 1e9], [1e9, 4e10], [1e9, 1e10]))


def test_an_expr_tie_is_honoured_in_the_fit(tmp_path: Path) -> None:
    path = chinchilla_file(tmp_path, "tied_chinchilla", '\nPARAMS["beta"].set(expr="alpha")\n')
    loaded = load_law_file(path)
    assert "beta" not in loaded.law.param_names
    truth = {**EXAMPLE_PARAMS["chinchilla"], "alpha": 0.32, "beta": 0.32}
    points = synthetic_curves("chinchilla", truth, (1e7, 3e7, 1e8, 3e8, 1e9), (1e9, 1e10), 8, 1.0, 2e-4, seed=0)
    fit = fit_law(points, "tied_chinchilla")
    assert "beta" not in fit.params
    beta = loaded.tied_values(fit.params)["beta"]
    assert beta == fit.params["alpha"]
    assert fit.params["alpha"] == pytest.approx(0.32, rel=0.01)
    predicted = get_law("chinchilla").predict({**fit.params, "beta": beta}, points.N, points.D)
    np.testing.assert_allclose(loaded.law.predict(fit.params, points.N, points.D), predicted, rtol=1e-13)


def test_vary_false_holds_a_value(tmp_path: Path) -> None:
    path = chinchilla_file(tmp_path, "held_e", '\nPARAMS["E"].set(value=0.45, vary=False)\n')
    loaded = load_law_file(path)
    assert dict(loaded.fixed) == {"E": 0.45}
    assert loaded.law.default_grid["E"] == (0.45,)
    points = synthetic_curves("chinchilla", EXAMPLE_PARAMS["chinchilla"], (1e7, 1e8, 1e9), (1e9, 1e10), 8, 1.0,
                              2e-4, seed=1)
    fit = fit_law(points, "held_e", FitOptions(fixed=loaded.fixed))
    assert fit.params["E"] == 0.45
    assert fit.fixed == ("E",)


def test_another_definition_under_a_registered_name_is_refused(tmp_path: Path) -> None:
    load_law_file(chinchilla_file(tmp_path))
    (tmp_path / "other").mkdir()
    changed = chinchilla_file(tmp_path / "other", extra='\nPARAMS["E"].set(value=1.0)\n')
    with pytest.raises(LawfitInputError, match=rf"{re.escape(str(changed))}.*already registered.*another NAME"):
        load_law_file(changed)


def chinchilla_with(extra: str, expression: str = "A/N^alpha + B/D^beta + E") -> str:
    """A law file body: the Chinchilla parameters, then ``extra``."""
    return f"NAME = 'x'\nEXPRESSION = '{expression}'\n{CHINCHILLA_PARAMS}{extra}"


BAD_FILES = {
    "syntax": ("NAME = 'x'\nEXPRESSION = 'A'\nPARAMS = (", "syntax error on line"),
    "raises": ("raise RuntimeError('boom')", "running the law file failed: RuntimeError: boom"),
    "no_name": ("EXPRESSION = 'A'\nPARAMS = Parameters()", "defines no NAME"),
    "no_expression": ("NAME = 'x'\nPARAMS = Parameters()", "defines no EXPRESSION"),
    "no_params": ("NAME = 'x'\nEXPRESSION = 'A'", "defines no PARAMS"),
    "params_not_lmfit": ("NAME = 'x'\nEXPRESSION = 'A'\nPARAMS = {'A': 1.0}", "lmfit.Parameters"),
    "builtin_name": (chinchilla_with("").replace("NAME = 'x'", "NAME = 'chinchilla'"), "'chinchilla' is a built-in law"),
    "bad_name": (chinchilla_with("").replace("NAME = 'x'", "NAME = 'my law'"), "NAME must be"),
    "unknown_symbol": (chinchilla_with("", "A/N^alpha + B/D^beta + E + Q"), "unknown name 'Q'"),
    "unknown_function": (chinchilla_with("", "A/N^alpha + B/D^beta + gelu(E)"), "unknown function 'gelu'"),
    "unparsable": (chinchilla_with("", "A/N^alpha + "), "EXPRESSION: cannot parse"),
    "tie_unknown_name": (chinchilla_with("PARAMS.add('gamma', expr='zz')"), "'zz'"),  # lmfit itself refuses it
    "tie_on_covariate": (chinchilla_with("PARAMS['beta'].set(expr='alpha')\nPARAMS['beta']._expr = 'alpha*N'"),
                         "expr of 'beta': unknown name 'N'"),
    "tie_cycle": (chinchilla_with("PARAMS['beta'].set(expr='alpha')\nPARAMS['alpha'].set(expr='beta')"), "cycle"),
    "outside_bounds": (chinchilla_with("PARAMS.add('c', value=3.0, min=0, max=2)"),
                       "'c': value 3.0 is outside its bounds"),
    "unused": (chinchilla_with("PARAMS.add('c', value=1.0, min=0, max=2)"), "'c' does not appear in EXPRESSION"),
    "dpp_without_k": (chinchilla_with("", "A/N^alpha + B/Dpp^beta + E"), "has no k"),
    "dpp_k_bounds": (chinchilla_with("PARAMS.add('k', value=0.5, min=0, max=1)", "A/N^alpha + B/Dpp^beta + E"),
                     "0 < min and max < 1"),
    "reserved_name": ("NAME = 'x'\nEXPRESSION = 'exp'\nPARAMS = Parameters()\nPARAMS.add('Dpp', value=1)",
                      "reserved name"),
    "grid_unknown": (chinchilla_with("GRID = {'k': (1,)}"), "GRID names 'k'"),
    "grid_outside": (chinchilla_with("GRID = {'alpha': (0.5, 9.0)}"), "GRID['alpha']: alpha=9.0 is outside"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_law_files_are_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    body, message = BAD_FILES[case]
    path = law_file(tmp_path, body, f"{case}.py")
    with pytest.raises(LawfitInputError) as info:
        load_law_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_a_missing_law_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(LawfitInputError, match=rf"{re.escape(str(tmp_path / 'nope.py'))}: no such law file"):
        load_law_file(tmp_path / "nope.py")
