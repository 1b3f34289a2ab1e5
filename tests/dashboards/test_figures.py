"""Figure builders on their traces, and every view's message when it cannot draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboards import figures
from dashboards.data import DataUnavailable, FitCache, load_view
from dashboards.views import VIEW_NAMES, ViewSettings, build_views
from lawfit.bootstrap import bootstrap_fit
from lawfit.fit import FitOptions, fit_law
from lawfit.planning import plan_compute_optimal
from lawfit.points import LossPoints
from lawfit.reference_data import EXAMPLE_PARAMS
from lawfit.result import FitResult


def exact_fit(law: str = "sms") -> FitResult:
    points = LossPoints.from_frame(pd.DataFrame({"run_id": ["a", "b", "c"], "N": [1e6, 3e6, 1e7], "D": [1e8, 1e8, 1e8],
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
    loss[500] = np.nan  # a missing value is not the curve's minimum
    assert loss[np.nanargmin(loss)] in set(figures.thin(pd.DataFrame({"D": d, "loss": loss}))["loss"])


def test_curves_draw_one_webgl_trace_per_size_and_each_law_over_every_run(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    fit = exact_fit()
    fig = figures.curves_figure(view.points, [fit], train_max_n=1e7)
    data = [t for t in fig.data if t.name.startswith("N=")]
    assert len(data) == 5 and all(t.type == "scattergl" for t in data)
    assert sum(np.isfinite(np.asarray(t.y, dtype=float)).sum() for t in data) == len(view.points)
    assert any("held out" in t.name for t in data)
    # Law lines: one trace per model size, whatever the number of runs; each holds its 3 U_D curves.
    law_traces = [t for t in fig.data if t.name == "sms law"]
    assert len(law_traces) == 5 and all(t.type == "scattergl" for t in law_traces)
    assert all(int(np.isnan(np.asarray(t.y, dtype=float)).sum()) == 3 for t in law_traces)
    assert sorted(t.line.width for t in law_traces) == [1, 1, 2, 2, 2]  # held-out sizes drawn thin


def test_residuals_of_the_generating_law_are_only_the_noise(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    fig = figures.residuals_figure(view.final_points, [exact_fit()])
    residual = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
    assert residual.size == len(view.final_points) and np.abs(residual).max() < 0.03


def test_iso_flop_minima_are_the_planner_answers_and_the_frontier_has_its_band(synthetic_store):
    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    points = LossPoints.from_frame(view.points, "t")
    fit = fit_law(points, "chinchilla", FitOptions())
    fit = fit.with_bootstrap(bootstrap_fit(fit, points, 10, FitOptions(), level=0.9))
    fig = figures.iso_flop_figure(fit, [1e19, 1e20], None)
    stars = [t for t in fig.data if t.mode == "markers"]
    for star, flops in zip(stars, [1e19, 1e20], strict=True):
        assert star.x[0] == pytest.approx(plan_compute_optimal(fit, flops).n_opt)
    frontier = figures.frontier_figure(fit, [1e18, 1e19, 1e20], 4e8)
    assert sum(1 for t in frontier.data if t.fill == "toself") == 3  # N*, D*, epochs* bands
    bands = [t for t in frontier.data if t.fill == "toself"]
    lo, hi = plan_compute_optimal(fit, 1e19, 4e8).interval["n_opt"]
    assert set(bands[0].y) >= {lo, hi}
    plain = figures.frontier_figure(fit.with_bootstrap(None), [1e18, 1e19], 4e8)
    assert "no bootstrap band" in plain.layout.annotations[-1].text
    with pytest.raises(figures.FigureInputError, match="does not turn up"):
        figures.overfitting_figure(fit, [1e6, 1e7], [1e8, 4e8])


def test_the_overfitting_map_marks_where_the_sms_law_turns_up():
    from lawfit.planning import plan_tokens

    fit = exact_fit("sms")
    n_values, u_values = [1e6, 1e8, 1e10], [1e9, 1e10, 1e11]
    fig = figures.overfitting_figure(fit, n_values, u_values)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 3) and np.isfinite(z).sum() == 7  # the smallest models on the least data do not turn up
    for i, u in enumerate(u_values):
        for j, n in enumerate(n_values):
            plan = plan_tokens(fit, n, u)
            assert (z[i, j] == pytest.approx(plan.epochs_best)) if plan.overfits else np.isnan(z[i, j])


def test_comparison_and_progress_figures():
    fig = figures.comparison_figure([exact_fit("sms"), exact_fit("chinchilla")])
    assert fig.data[0].type == "table" and fig.data[0].cells.values[0][0].startswith("sms")
    progress = figures.progress_figure({"a": "finished", "b": "failed", "c": "finished"},
                                       [{"round": 0, "ratio": 2.0}, {"round": 1, "ratio": 1.4}])
    assert list(progress.data[0].y) == [2, 1] and list(progress.data[1].y) == [2.0, 1.4]


def test_every_view_draws_for_a_campaign_and_says_why_when_it_cannot(synthetic_store):
    uri, campaign = synthetic_store
    built = build_views(load_view(uri, campaign), ViewSettings(laws=("chinchilla", "sms")), FitCache())
    assert set(built) == set(VIEW_NAMES)
    drawn = [n for n in VIEW_NAMES if n != "overfitting"]
    assert all(len(built[name].data) > 0 for name in drawn), [n for n in drawn if not built[n].data]
    # The campaign's law may predict no overfitting onset here (these curves barely turn up): then it says so.
    overfitting = built["overfitting"]
    assert overfitting.data or "does not turn up" in overfitting.layout.annotations[0].text

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


def test_curves_draw_while_runs_land_before_any_law_can_be_fitted(synthetic_store):
    uri, _ = synthetic_store
    view = load_view(uri, "landing")
    assert view.final_points.empty and not view.points.empty
    built = build_views(view, ViewSettings(laws=("chinchilla",)), FitCache())
    assert len(built["curves"].data) == 2  # both sizes' curves, no law yet
    assert "laws not drawn" in built["curves"].layout.title.text
    assert "no finished runs" in built["comparison"].layout.annotations[0].text


def test_points_that_are_not_finite_are_left_out_and_counted(synthetic_store, campaign_writer):
    from storage.tracking import RunRecord, Tracker

    uri, _ = synthetic_store
    campaign_writer(uri, "with-nan", sizes=(1e6, 3e6, 1e7), unique=(1e8, 4e8))
    tracker = Tracker(uri)
    run = tracker.open_run(RunRecord("diverged", "with-nan", {"N": 3e6, "U_D": 1e8}))
    tracker.log_points(run, [{"D": 1e7, "loss": 4.0}, {"D": 2e7, "loss": float("nan")}])
    tracker.set_status(run, "finished")
    view = load_view(uri, "with-nan")
    assert view.left_out == 1 and np.isfinite(view.points["loss"]).all()
    built = build_views(view, ViewSettings(laws=("chinchilla",)), FitCache())
    drawn = {name: bool(built[name].data) for name in ("comparison", "curves", "residuals", "iso_flop", "frontier")}
    assert all(drawn.values()), {n: built[n].layout.annotations for n, ok in drawn.items() if not ok}


def test_recorded_rounds_give_the_campaigns_fit_its_band_and_the_interval_by_round(synthetic_store):
    uri, _ = synthetic_store
    view = load_view(uri, "recorded")
    assert view.recorded_round == 1 and set(view.recorded_fits) == {"chinchilla", "dprime"}
    assert [r["round"] for r in view.rounds] == [0, 1] and all(r["ratio"] >= 1 for r in view.rounds)
    assert view.points_setting == "final"
    built = build_views(view, ViewSettings(laws=("chinchilla", "dprime")), FitCache())
    assert list(built["progress"].data[1].x) == [0, 1]
    # The campaign's choice is its bootstrapped fit, used as recorded (no refit), with its band.
    assert "chinchilla law recorded by round 1" in built["frontier"].layout.title.text
    assert "30 bootstrap resamples" in built["iso_flop"].layout.title.text
    assert sum(1 for t in built["frontier"].data if t.fill == "toself") == 3
    assert view.recorded_fits["chinchilla"].points_hash == LossPoints.from_frame(view.final_points, "x").content_hash()


def test_the_planning_law_is_the_one_asked_for_bootstrapped_or_a_clear_message(synthetic_store):
    from dashboards.data import fits_for
    from dashboards.views import chosen_fit

    uri, campaign = synthetic_store
    view = load_view(uri, campaign)
    cache = FitCache()
    fits, _ = fits_for(view, ("chinchilla", "sms"), "all", cache)
    assert all(f.leave_one_size_out is not None for f in fits)  # scored the way campaigns choose
    sms = chosen_fit(view, fits, "sms", cache)
    assert sms.law == "sms" and sms.bootstrap is not None and sms.bootstrap.requested == 100
    assert len(sms.bootstrap.draws) == sms.bootstrap.converged >= 90  # only draws that reached an optimum
    assert chosen_fit(view, fits, "sms", cache) is sms  # bootstrapped once
    best = min(fits, key=lambda f: f.leave_one_size_out.huber_mean)
    assert chosen_fit(view, fits, None, cache).law == best.law
    built = build_views(view, ViewSettings(laws=("chinchilla",), plan_law="nd"), cache)
    assert "the nd law is not fitted here" in built["frontier"].layout.annotations[0].text


def test_an_unreachable_tracking_server_is_a_clear_error():
    with pytest.raises(DataUnavailable, match="127.0.0.1:9"):
        load_view("http://127.0.0.1:9", "anything")


def test_a_missing_store_or_campaign_is_a_clear_error_and_creates_nothing(synthetic_store, tmp_path):
    uri, _ = synthetic_store
    with pytest.raises(DataUnavailable, match="no campaign 'nope'.*campaigns: .*synthetic"):
        load_view(uri, "nope")
    missing = tmp_path / "typo" / "mlflow.db"
    with pytest.raises(DataUnavailable, match="no tracking store at"):
        load_view(f"sqlite:///{missing}", "anything")
    assert not missing.parent.exists()
