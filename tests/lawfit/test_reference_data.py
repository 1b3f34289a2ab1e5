"""Published data: the Chinchilla replication and the datablations runs."""

from __future__ import annotations

import shutil

import pytest

from lawfit.fit import fit_law
from lawfit.laws import get_law
from lawfit.presets import DATABLATIONS, preset_fit
from lawfit.reference_data import (
    CHINCHILLA_REPLICATION_FILE,
    bundled_path,
    chinchilla_replication_points,
    datablations_points,
)
from lawfit.scoring import score


@pytest.fixture(scope="module")
def chinchilla_points():
    return chinchilla_replication_points()  # the copy bundled with lawfit


def test_replication_data_is_read_with_tokens_from_compute_and_the_five_highest_losses_dropped(chinchilla_points):
    assert len(chinchilla_points) == 245 - 5
    assert chinchilla_points.loss.max() < 5.0  # the dropped outliers are the highest losses
    assert chinchilla_points.n_runs == len(chinchilla_points)


def test_replication_data_is_bundled_and_a_copy_of_ones_own_reads_the_same(chinchilla_points, tmp_path):
    copy = tmp_path / "svg_extracted_data.csv"
    shutil.copyfile(bundled_path(CHINCHILLA_REPLICATION_FILE), copy)
    own = chinchilla_replication_points(copy)
    assert own.content_hash() == chinchilla_points.content_hash()
    assert own.source == str(copy)


@pytest.mark.slow
def test_full_grid_chinchilla_fit_reproduces_the_replication_estimates(chinchilla_points):
    # Besiroglu et al. (2024), Table 1: A = 482.01, B = 2085.43, E = 1.82, alpha = 0.3478, beta = 0.3658.
    fit = fit_law(chinchilla_points, "chinchilla")
    assert fit.starts is not None and fit.starts.total == 4500
    assert fit.starts.converged > 500
    assert fit.starts.near_best > 100  # many starts agree on the optimum
    p = fit.params
    assert p["A"] == pytest.approx(482.01, rel=0.05)
    assert p["B"] == pytest.approx(2085.43, rel=0.05)
    assert p["E"] == pytest.approx(1.82, abs=0.01)
    assert p["alpha"] == pytest.approx(0.3478, abs=0.005)
    assert p["beta"] == pytest.approx(0.3658, abs=0.005)


def test_datablations_preset_scores_the_fit_subset_far_better_than_plain_chinchilla():
    points = datablations_points("fit")
    assert len(points) == 182
    data_constrained = score(get_law("data_constrained"), DATABLATIONS, points)
    core = {k: DATABLATIONS[k] for k in ("A", "B", "E", "alpha", "beta")}
    chinchilla = score(get_law("chinchilla"), core, points)
    # Measured: R² 0.772 against 0.445, Huber 0.0158 against 0.0331.
    assert data_constrained.r2 > 0.75
    assert data_constrained.r2 > chinchilla.r2 + 0.25
    assert data_constrained.huber < chinchilla.huber / 2


def test_datablations_preset_is_a_plannable_fit_of_the_data_constrained_law():
    fit = preset_fit("datablations")
    assert fit.law == "data_constrained"
    assert fit.params["R_D_star"] == pytest.approx(15.387756)


@pytest.mark.slow
def test_fitting_the_data_constrained_law_beats_chinchilla_on_repeated_data():
    points = datablations_points("fit")
    dc = fit_law(points, "data_constrained")
    ch = fit_law(points, "chinchilla")
    assert dc.objective < ch.objective
    assert dc.metrics["train"].r2 > ch.metrics["train"].r2
    assert set(dc.alternatives) == {"staged", "joint"}
