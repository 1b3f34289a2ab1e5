"""Figure builders on their traces, and every view's message when it cannot draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards import figures
from dashboards.data import DataUnavailable, FitCache, as_loss_points, load_view
from dashboards.views import VIEW_NAMES, ViewSettings, build_views
from lawfit.bootstrap import bootstrap_fit
from lawfit.fit import FitOptions, fit_law
from lawfit.planning import plan_compute_optimal
from lawfit.reference_data import EXAMPLE_PARAMS
from lawfit.result import FitResult


def exact_fit(law: str = "sms") -> FitResult:
    points = as_loss_points(pd.DataFrame({"run_id": ["a", "b", "c"], "N": [1e6, 3e6, 1e7], "D": [1e8, 1e8, 1e8],
                                          "U_D": [1e8, 1e8, 1e8], "loss": [3.0, 2.9, 2.8]}), "t")
    fit = fit_law(points, law, FitOptions(fixed=dict(EXAMPLE_PARAMS[law])))  # every parameter fixed: the law itself
    return fit


def test_thinning_keeps_first_last_and_minimum_of_a_long_curve():
    d = np.geomspace(1e3, 1e9, 1000)
    loss = 3 + np.sin(np.linspace(0, 9, 1000))
    thinned = figures.thin(pd.DataFrame({"D": d, "loss": loss}))
    assert len(thinned) <= figures.MAX_POINTS_PER_CURVE + 3
    assert thinned["D"].iloc[0] == d[0] and thinned["D"].iloc[-1] == d[-1]
    assert loss.min() in set(thinned["loss"])


def test_curves_draw_one_webgl_trace_per_size_and_each_law_over_every_run(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    fit = exact_fit()
    fig = figures.curves_figure(view.points, [fit], train_max_n=1e7)
    data = [t for t in fig.data if t.name.startswith("N=")]
    assert len(data) == 5 and all(t.type == "scattergl" for t in data)
    assert sum(np.isfinite(np.asarray(t.y, dtype=float)).sum() for t in data) == len(view.points)
    assert any("held out" in t.name for t in data)
    law_traces = [t for t in fig.data if t.name == "sms law"]
    assert len(law_traces) == 15  # one per (N, U_D)


def test_residuals_of_the_generating_law_are_only_the_noise(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    fig = figures.residuals_figure(view.final_points, [exact_fit()])
    residual = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
    assert residual.size == len(view.final_points) and np.abs(residual).max() < 0.03


def test_iso_flop_minima_are_the_planner_answers_and_the_frontier_has_its_band(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    points = as_loss_points(view.points, "t")
    fit = fit_law(points, "chinchilla", FitOptions())
    fit = fit.with_bootstrap(bootstrap_fit(fit, points, 10, FitOptions(), level=0.9))
    fig = figures.iso_flop_figure(fit, [1e19, 1e20], None)
    stars = [t for t in fig.data if t.mode == "markers"]
    for star, flops in zip(stars, [1e19, 1e20], strict=True):
        assert star.x[0] == pytest.approx(plan_compute_optimal(fit, flops).n_opt)
    frontier = figures.frontier_figure(fit, [1e18, 1e19, 1e20], 4e8)
    assert sum(1 for t in frontier.data if t.fill == "toself") == 3  # N*, D*, epochs* bands
    with pytest.raises(figures.FigureInputError, match="does not turn up"):
        figures.overfitting_figure(fit, [1e6, 1e7], [1e8, 4e8])


def test_comparison_and_progress_figures(synthetic_store):
    uri, campaign = synthetic_store
    fig = figures.comparison_figure([exact_fit("sms"), exact_fit("chinchilla")])
    assert fig.data[0].type == "table" and list(fig.data[0].cells.values[0])[0].startswith("sms")
    progress = figures.progress_figure({"a": "finished", "b": "failed", "c": "finished"},
                                       [{"round": 0, "ratio": 2.0}, {"round": 1, "ratio": 1.4}])
    assert list(progress.data[0].y) == [2, 1] and list(progress.data[1].y) == [2.0, 1.4]


def test_every_view_draws_for_a_campaign_and_says_why_when_it_cannot(synthetic_store):
    uri, campaign = synthetic_store
    built = build_views(load_view(uri, campaign), ViewSettings(laws=("chinchilla", "sms")), FitCache())
    assert set(built) == set(VIEW_NAMES)
    assert all(len(built[name].data) > 0 for name in VIEW_NAMES), [n for n in VIEW_NAMES if not built[n].data]

    empty = build_views(load_view(uri, "empty"), ViewSettings(laws=("chinchilla",)), FitCache())
    assert all(not fig.data and fig.layout.annotations for fig in empty.values())
    assert "no runs recorded" in empty["progress"].layout.annotations[0].text

    one = build_views(load_view(uri, "one-size"), ViewSettings(laws=("chinchilla",)), FitCache())
    assert "one model size" in one["comparison"].layout.annotations[0].text
    assert one["progress"].data  # the rest of the page keeps working

    # A law that cannot be fitted (more free parameters than points) is left out and named; the others draw.
    few = build_views(load_view(uri, "few"), ViewSettings(laws=("chinchilla", "sms")), FitCache())
    assert few["comparison"].data and "not fitted: sms" in few["comparison"].layout.annotations[0].text
    assert few["curves"].data and few["iso_flop"].data


def test_an_unreachable_tracking_server_is_a_clear_error():
    with pytest.raises(DataUnavailable, match="127.0.0.1:9"):
        load_view("http://127.0.0.1:9", "anything")
