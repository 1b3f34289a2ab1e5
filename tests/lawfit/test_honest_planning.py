"""Plans say where they extrapolate: beyond the fitted ranges, SMS without a unique-token budget, a rising frontier."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lawfit.bootstrap import bootstrap_fit
from lawfit.extrapolation import EXTRAPOLATION_FACTOR
from lawfit.fit import FitOptions, fit_law
from lawfit.laws import get_law
from lawfit.planning import plan_compute_optimal, plan_tokens
from lawfit.points import LossPoints, read_points
from lawfit.errors import LawfitInputError
from lawfit.result import FitResult

CORE = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
# An SMS fit of the datablations runs, rounded, with an overfitting term that grows with raw D (k_d > 0).
SMS_RAW_D = {"A": 39.27, "B": 18628.0, "E": 1.789, "alpha": 0.1941, "beta": 0.4596, "k": 0.9615, "d": 56345.0,
             "k_d": 1e-12, "k_n": 0.1, "k_u": 0.1, "k_in": 0.5}


def chinchilla_points() -> LossPoints:
    n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 6))
    loss = get_law("chinchilla").predict(CORE, n.ravel(), d.ravel())
    return LossPoints.from_arrays(n.ravel(), d.ravel(), loss, source="synthetic")


def sms_fit() -> FitResult:
    law = get_law("sms")
    return FitResult(law="sms", params=SMS_RAW_D, units={p.name: p.unit for p in law.params}, fixed=(),
                     objective=0.0, n_points=100, n_runs=100, points_hash="", delta=1e-3, train_max_n=None,
                     metrics={"train": None, "test": None}, starts=None, procedure="staged",
                     fitted_ranges={"N": (7e6, 8.7e9), "D": (1e8, 9e11), "epochs": (1.0, 9000.0)})


def test_a_plan_inside_the_fitted_ranges_carries_no_warning_and_one_beyond_them_names_n_and_d():
    fit = fit_law(chinchilla_points(), "chinchilla")
    assert fit.fitted_ranges["N"] == pytest.approx((1e7, 1e9)) and "epochs" not in fit.fitted_ranges
    inside = plan_compute_optimal(fit, 6 * 1e8 * 1e10)
    assert inside.warnings == ()
    beyond = plan_compute_optimal(fit, 6 * 1e12 * 1e13)
    assert any(w.startswith("N = ") and "largest fitted N" in w for w in beyond.warnings)
    assert any(w.startswith("D = ") and "largest fitted D" in w for w in beyond.warnings)
    assert beyond.to_dict()["warnings"] == list(beyond.warnings)
    # Just inside the factor is not flagged.
    near = plan_tokens(fit, 1e9 * EXTRAPOLATION_FACTOR * 0.99, 1e10, max_epochs=4)
    assert not any(w.startswith("N = ") for w in near.warnings)


def test_sms_planned_without_unique_tokens_warns_and_its_rising_frontier_is_reported():
    fit = sms_fit()
    plan = plan_compute_optimal(fit, 1e25)
    assert any("without --unique-tokens" in w for w in plan.warnings)
    assert any(w.startswith("non-monotone compute frontier") for w in plan.warnings)
    # Given the unique tokens, the SMS warning about U_D = D is gone.
    with_u = plan_compute_optimal(fit, 1.2e21, unique_tokens=3.36e10)
    assert not any("without --unique-tokens" in w for w in with_u.warnings)


def test_plan_prints_warnings_on_stderr_and_in_json(tmp_path: Path):
    path = tmp_path / "sms.json"
    sms_fit().write(path)
    proc = subprocess.run([sys.executable, "-m", "smslab", "plan", "--fit", str(path), "--flops", "1e25", "--json"],
                          capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    assert out["warnings"] and all(f"warning: {w}" in proc.stderr for w in out["warnings"])
    assert out["convention"] == "C = 6·N·D" and out["nd"] == pytest.approx(1e25 / 6)


def test_the_n_convention_is_read_checked_and_recorded(tmp_path: Path):
    path = tmp_path / "points.csv"
    points = chinchilla_points()
    rows = [f"{n},{d},{loss},with_embeddings" for n, d, loss in zip(points.N, points.D, points.loss, strict=True)]
    path.write_text("N,D,loss,n_convention\n" + "\n".join(rows) + "\n")
    read = read_points(path)
    assert read.n_convention == "with_embeddings"
    assert fit_law(read, "chinchilla").n_convention == "with_embeddings"
    with pytest.raises(LawfitInputError, match="--n-convention says non_embedding"):
        read_points(path, n_convention="non_embedding")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("N,D,loss,n_convention\n1e8,1e9,3.0,with_embeddings\n2e8,1e9,2.9,non_embedding\n")
    with pytest.raises(LawfitInputError, match=r"row 2 \(line 3\).*differs from row 1"):
        read_points(mixed)
    stated = tmp_path / "plain.csv"
    stated.write_text("N,D,loss\n1e8,1e9,3.0\n2e8,1e9,2.9\n")
    assert read_points(stated).n_convention == "unstated"
    assert read_points(stated, n_convention="non_embedding").n_convention == "non_embedding"
    assert FitResult.from_dict(fit_law(read, "chinchilla").to_dict()).n_convention == "with_embeddings"


def test_bootstrap_keeps_only_draws_that_reached_an_optimum():
    exact = chinchilla_points()
    noise = np.exp(np.random.default_rng(0).normal(0.0, 0.02, len(exact)))
    points = LossPoints.from_arrays(exact.N, exact.D, exact.loss * noise, source="noisy")
    fit = fit_law(points, "chinchilla")
    lbfgs = replace(FitOptions().lbfgs, max_iter=1)
    boot = bootstrap_fit(fit, points, 20, FitOptions(lbfgs=lbfgs), seed=1)
    assert boot.requested == 20 and boot.converged == len(boot.draws) < 20
    full = bootstrap_fit(fit, points, 20, FitOptions(), seed=1)
    assert full.requested == 20 and len(full.draws) == full.converged > boot.converged
