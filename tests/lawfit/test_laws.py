"""The laws themselves: formulas, exact gradients, D'' against MuPT Eq. 11."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lawfit.planning
from lawfit.laws import all_laws, get_law
from lawfit.laws.base import Covariates
from lawfit.laws.mupt import gelu, log_d_double_prime
from lawfit.names import FLOPS_PER_PARAM_TOKEN, LAW_NAMES, PAPER_LAW_NAMES
from lawfit.presets import DATABLATIONS, HOFFMANN
from lawfit.reference_data import EXAMPLE_PARAMS as PARAMS
from lawfit.reference_data import synthetic_curves


def test_every_law_is_registered_in_table_3_order_with_the_issue_parameter_names():
    names = [law.name for law in all_laws()]
    assert names[:5] == ["chinchilla", "data_constrained", "dprime", "nd", "sms"] == list(PAPER_LAW_NAMES)
    assert names[5:] == ["sms_repetition"]  # smslab's own, after the paper's
    allowed = {"A", "B", "E", "alpha", "beta", "R_D_star", "R_N_star", "k", "d", "k_d", "k_n", "k_u", "k_in"}
    for law in all_laws():
        own = law.name not in PAPER_LAW_NAMES
        assert set(law.param_names) <= allowed | ({"s", "k_r"} if own else set())
        # Only the paper's laws may claim a MuPT equation.
        assert law.equation.startswith("MuPT Eq.") != own
        for spec in law.params:
            assert spec.lower < spec.upper and spec.unit


def test_the_registry_holds_exactly_the_law_names_other_packages_read_without_numpy():
    assert tuple(law.name for law in all_laws()) == LAW_NAMES
    # Spec checks and command lines read the names (and C = 6·N·D) without paying for numpy.
    check = (
        "import sys, lawfit.names as n; "
        "assert 'numpy' not in sys.modules and 'scipy' not in sys.modules, sorted(sys.modules); "
        "print(','.join(n.LAW_NAMES), n.FLOPS_PER_PARAM_TOKEN)"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.split() == [",".join(LAW_NAMES), "6.0"]
    assert lawfit.planning.FLOPS_PER_PARAM_TOKEN is FLOPS_PER_PARAM_TOKEN  # one definition, planned with


def test_sms_guess_recovers_the_overfitting_term_from_the_residuals_of_eq_4():
    # Every point past the onset (z from 2.75 to 7.7, where GELU(z) = z·Φ(z) is z within 0.3 %): the
    # residuals of the true Eq. 4 part are the GELU term, and MuPT A.3.2's regression reads its coefficients.
    truth = {**PARAMS["sms"], "k_d": 1e-11, "k_in": -3.0}
    points = synthetic_curves("sms", truth, (1e8, 2e8, 4e8, 8e8, 1.6e9), (1e9, 4e9, 1.6e10), 30, 30.0, 0.0005, seed=1)
    base = {k: truth[k] for k in get_law("nd").param_names}
    sms = get_law("sms")
    assert sms.guess is not None
    guess = sms.guess(base, points.covariates(), points.loss)
    assert set(guess) == {"k_d", "k_n", "k_u", "k_in"}
    assert guess["k_d"] == pytest.approx(truth["k_d"], rel=0.01)
    assert guess["k_n"] == pytest.approx(truth["k_n"], rel=0.03)
    assert guess["k_u"] == pytest.approx(truth["k_u"], rel=0.03)
    assert guess["k_in"] == pytest.approx(truth["k_in"], rel=0.01)
    # The other staged law has no guess: its second stage starts from its grid alone.
    assert get_law("data_constrained").guess is None


def test_chinchilla_predicts_the_published_hoffmann_loss_at_chinchilla_scale():
    # A/N^a + B/D^b + E by hand at 70B parameters, 1.4T tokens.
    expected = 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28 + 1.69
    assert get_law("chinchilla").predict(HOFFMANN, 70e9, 1.4e12) == pytest.approx(expected, rel=1e-12)


def test_predict_is_vectorised_and_broadcasts():
    law = get_law("sms")
    out = law.predict(PARAMS["sms"], np.array([[1e8], [1e9]]), np.array([1e9, 1e10, 1e11]), 4e9)
    assert out.shape == (2, 3)
    assert out[0, 0] == pytest.approx(law.predict(PARAMS["sms"], 1e8, 1e9, 4e9))


def test_data_constrained_equals_chinchilla_without_repetition_or_excess_parameters():
    # One epoch (D <= U_D) and N below U_N: N' = N, D' = D.
    n, d = np.array([1e8, 2e8]), np.array([5e9, 8e9])
    dc = get_law("data_constrained").predict(DATABLATIONS, n, d, 1e10)
    core = {k: DATABLATIONS[k] for k in ("A", "B", "E", "alpha", "beta")}
    np.testing.assert_allclose(dc, get_law("chinchilla").predict(core, n, d), rtol=1e-12)


def test_data_constrained_discounts_repeated_epochs():
    law = get_law("data_constrained")
    fresh = law.predict(DATABLATIONS, 1e8, 4e10, 4e10)
    repeated = law.predict(DATABLATIONS, 1e8, 4e10, 1e9)  # 40 epochs of 1B tokens
    assert repeated > fresh


def test_gelu_is_exact_not_the_tanh_approximation():
    z = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    exact = z * 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2)) for v in z]))
    np.testing.assert_allclose(gelu(z), exact, rtol=1e-14, atol=1e-16)
    tanh_approx = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    assert np.max(np.abs(gelu(z) - tanh_approx)) > 1e-5


@settings(max_examples=200, deadline=None)
@given(
    k=st.floats(min_value=0.01, max_value=0.999),
    unique=st.floats(min_value=1e3, max_value=1e12),
    epochs=st.integers(min_value=1, max_value=60),
)
def test_d_double_prime_equals_the_discrete_sum_of_eq_11_at_whole_epochs(k, unique, epochs):
    # MuPT Eq. 11 with 1 - delta = k: D' = U + U·Σ_{i=1}^{R_D} k^i, R_D = epochs - 1 repetitions.
    discrete = unique * sum(k**i for i in range(epochs))
    x = Covariates.of(1e9, epochs * unique, unique)
    log_dpp, _ = log_d_double_prime(np.array([[k]]), x)
    assert math.exp(log_dpp[0, 0]) == pytest.approx(discrete, rel=1e-9)


def test_d_double_prime_tends_to_d_when_nothing_is_forgotten():
    x = Covariates.of(1e9, np.array([3e8, 2e9, 7e9]), 1e9)
    log_dpp, _ = log_d_double_prime(np.array([[1.0 - 1e-9]]), x)
    np.testing.assert_allclose(np.exp(log_dpp[0]), x.D, rtol=1e-6)


@pytest.mark.parametrize("law_name", list(PARAMS))
def test_analytic_gradient_matches_central_differences(law_name):
    law = get_law(law_name)
    rng = np.random.default_rng(0)
    x = Covariates.of(
        rng.choice([3e7, 1e8, 4e8, 2e9], 40), np.exp(rng.uniform(np.log(1e8), np.log(5e11), 40)), rng.choice([1e9, 4e9], 40)
    )
    base = PARAMS[law_name]
    p = {k: np.array([[v]]) for k, v in base.items()}
    _, grad = law.log_loss(p, x, True)
    assert grad is not None
    for name, value in base.items():
        h = abs(value) * 1e-6 if value else 1e-9
        up = {**p, name: np.array([[value + h]])}
        down = {**p, name: np.array([[value - h]])}
        numeric = (law.log_loss(up, x, False)[0] - law.log_loss(down, x, False)[0]) / (2 * h)
        analytic = grad.dense(name, (1, 40))
        np.testing.assert_allclose(analytic, numeric, rtol=2e-5, atol=1e-9 / max(abs(value), 1e-12), err_msg=name)


def test_data_constrained_gradient_with_excess_parameters():
    # N far above U_N makes the R_N branch active; check A and alpha through U_N.
    law = get_law("data_constrained")
    x = Covariates.of(np.array([5e9, 9e9]), np.array([2e10, 6e10]), np.array([1e8, 1e8]))
    base = PARAMS["data_constrained"]
    p = {k: np.array([[v]]) for k, v in base.items()}
    _, grad = law.log_loss(p, x, True)
    for name in ("A", "B", "alpha", "beta", "R_N_star"):
        h = base[name] * 1e-6
        up = {**p, name: np.array([[base[name] + h]])}
        down = {**p, name: np.array([[base[name] - h]])}
        numeric = (law.log_loss(up, x, False)[0] - law.log_loss(down, x, False)[0]) / (2 * h)
        np.testing.assert_allclose(grad.dense(name, (1, 2)), numeric, rtol=1e-5, err_msg=name)
