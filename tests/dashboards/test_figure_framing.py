"""What the figures frame and explain: the iso-FLOP loss axis around the minima, the residuals' colour bar."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboards import figures
from lawfit.fit import FitOptions, fit_law
from lawfit.points import LossPoints
from lawfit.reference_data import EXAMPLE_PARAMS
from lawfit.result import FitResult


def exact_fit(law: str) -> FitResult:
    points = LossPoints.from_frame(pd.DataFrame({"run_id": ["a", "b", "c"], "N": [1e6, 3e6, 1e7], "D": [1e8] * 3,
                                                 "U_D": [1e8] * 3, "loss": [3.0, 2.9, 2.8]}), "t")
    return fit_law(points, law, FitOptions(fixed=dict(EXAMPLE_PARAMS[law])))  # every parameter fixed: the law itself


def test_the_loss_axis_frames_the_minima_not_an_outlier_of_200():
    curves = [np.array([3.9, 3.4, 3.1, 3.2, 3.6, 200.0]), np.array([4.0, 3.3, 3.0, 3.5])]
    lo, hi = (10**v for v in figures.loss_axis_range(curves, [3.1, 3.0]))
    assert lo < 3.0 and 3.9 < hi  # every minimum, and the curves around it, in view
    assert hi < 3.0 * figures.ISO_FLOP_FRAME_FACTOR * 1.1  # the outlier does not stretch the axis
    # The frame reads each curve against its own minimum: a larger outlier changes nothing.
    worse = [curves[0].copy(), curves[1]]
    worse[0][-1] = 1e6
    assert figures.loss_axis_range(worse, [3.1, 3.0]) == figures.loss_axis_range(curves, [3.1, 3.0])
    # Non-finite or non-positive predictions (a law far from its data) are ignored, not framed.
    assert figures.loss_axis_range([np.array([np.nan, -1.0, 3.0, 3.3])], [3.0])[0] > 0
    with pytest.raises(figures.FigureInputError):
        figures.loss_axis_range([np.array([np.nan, -1.0])], [math.nan])
    # A flat curve still gets an axis of some height, centred on it.
    flat_lo, flat_hi = figures.loss_axis_range([np.full(5, 3.0)], [3.0])
    assert flat_lo < math.log10(3.0) < flat_hi


def test_the_iso_flop_view_frames_its_minima_and_keeps_the_runaway_ends_hoverable():
    fit = exact_fit("chinchilla")
    # From N = 1 the law predicts losses of about 300 at the small end, against minima near 2-3.
    fig = figures.iso_flop_figure(fit, [1e17, 1e19], None, n_range=(1.0, 1e9))
    yaxis = fig.layout.yaxis
    assert yaxis.type == "log" and yaxis.autorange is False
    lo, hi = (10**v for v in yaxis.range)
    stars = [float(t.y[0]) for t in fig.data if t.mode == "markers"]
    lines = [np.asarray(t.y, dtype=float) for t in fig.data if t.mode == "lines"]
    assert all(lo < star < hi for star in stars)
    assert hi < max(stars) * figures.ISO_FLOP_FRAME_FACTOR * 1.1
    assert max(line.max() for line in lines) > 100  # the runaway ends are drawn (hover, zoom), just out of frame
    # Each curve shows on both sides of its minimum inside the frame: the U the view exists to show.
    for line, star in zip(lines, stars, strict=True):
        inside = (line > lo) & (line < hi)
        assert inside.sum() > 10 and line[inside].max() > star * 1.05


def test_residual_colours_are_model_sizes_read_off_a_titled_colour_bar():
    fits = [exact_fit("chinchilla"), exact_fit("sms")]
    sizes = [1e6, 3e6, 1e7, 3e7]
    points = pd.DataFrame({"N": np.repeat(sizes, 3), "D": np.tile([1e8, 3e8, 1e9], 4), "U_D": 1e9, "loss": 3.0})
    fig = figures.residuals_figure(points, fits, train_max_n=1e7)
    # One colour axis shared by every trace of every panel: a colour is the same size in each.
    assert {t.marker.coloraxis for t in fig.data} == {"coloraxis"}
    colour_axis = fig.layout.coloraxis
    assert "N" in colour_axis.colorbar.title.text and "parameters" in colour_axis.colorbar.title.text
    assert (colour_axis.cmin, colour_axis.cmax) == pytest.approx((6.0, math.log10(3e7)))
    # Its ticks name sizes in parameters, not log10 values.
    assert [float(text) for text in colour_axis.colorbar.ticktext] == pytest.approx(sizes, rel=1e-2)
    for trace in fig.data:
        assert np.asarray(trace.marker.color) == pytest.approx(np.log10(np.asarray(trace.customdata, dtype=float)))
    # The legend tells train from held-out sizes (symbols), once for all panels.
    assert sorted(t.name for t in fig.data if t.showlegend) == ["held-out sizes", "train sizes"]


def measures_table() -> pd.DataFrame:
    """What ``Tracker.read_measures`` gives: a row per evaluated run, measures and the real set's values."""
    return pd.DataFrame({"run_id": ["a", "b", "c", "d"], "N": [1e6, 3e6, 1e7, 1e7], "N_with_embeddings": np.nan,
                         "D": [1e8, 2e8, 3e8, 6e8], "U_D": [1e8, 1e8, 1e8, 2e8],
                         "eval_samples": 100.0, "eval_real_tunes": 500.0,
                         "eval_validity_v1": [50.0, 70.0, 80.0, 85.0], "eval_real_validity_v1": 99.0,
                         "eval_pitch_range": [7.0, np.nan, 9.0, 9.5]})


def test_measures_are_drawn_against_n_and_d_with_the_real_set_as_a_line():
    frame = measures_table()
    # Set sizes (eval_samples, eval_real_tunes) and the real set's columns are not measures of their own.
    assert figures.measure_names(frame) == ["pitch_range", "validity_v1"]
    fig = figures.measures_figure(frame)
    by_axis = {(t.xaxis, t.yaxis): t for t in fig.data}
    assert len(by_axis) == 4  # one panel per (measure, N or D)
    for trace in fig.data:
        assert np.isfinite(np.asarray(trace.y, dtype=float)).all()  # a run without the measure is left out
    validity_n, validity_d = fig.data[2], fig.data[3]
    assert list(validity_n.x) == list(frame["N"]) and list(validity_d.x) == list(frame["D"])
    assert list(validity_n.y) == list(frame["eval_validity_v1"])
    # The real set's value is a horizontal line in both of its measure's panels, and only there.
    lines = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert [s.y0 for s in lines] == [99.0, 99.0]
    assert {s.yref for s in lines} == {validity_n.yaxis, validity_d.yaxis}
    assert "parameters" in fig.layout.coloraxis.colorbar.title.text
    with pytest.raises(figures.FigureInputError, match="no run .* evaluation measures"):
        figures.measures_figure(frame[["run_id", "N", "N_with_embeddings", "D", "U_D"]])


def test_the_measures_view_appears_in_the_views_and_the_report_only_when_runs_carry_measures(
        synthetic_store, campaign_writer, tmp_path):
    from dashboards.data import FitCache, load_view
    from dashboards.report import write_report
    from dashboards.views import MEASURES_VIEW, VIEW_NAMES, ViewSettings, build_views, view_names
    from storage.tracking import RunRecord, Tracker

    uri, campaign = synthetic_store
    assert view_names(load_view(uri, campaign)) == VIEW_NAMES  # no measures: no panel
    campaign_writer(uri, "measured", sizes=(1e6, 3e6, 1e7), unique=(1e8,), points_per_curve=4)
    tracker = Tracker(uri)
    for run_id, n, validity in (("eval-a", 1e6, 40.0), ("eval-b", 1e7, 80.0)):
        run = tracker.open_run(RunRecord(run_id, "measured", {"N": n, "U_D": 1e8}))
        tracker.log_points(run, [{"D": 1e8, "loss": 3.0}])
        tracker.log_measures(run, {"eval_validity_v1": validity, "eval_real_validity_v1": 99.0}, step=100_000_000)
    view = load_view(uri, "measured")
    assert view.has_measures and view_names(view) == (*VIEW_NAMES, MEASURES_VIEW)
    built = build_views(view, ViewSettings(laws=("chinchilla",)), FitCache(), names=(MEASURES_VIEW,))
    assert sorted(np.asarray(built[MEASURES_VIEW].data[0].y, dtype=float)) == [40.0, 80.0]
    # The report carries the panel for this campaign and not for one without measures.
    settings = ViewSettings(laws=("chinchilla",))
    with_measures = write_report(uri, "measured", tmp_path / "measured.html", settings).read_text()
    assert f"id='fig-{MEASURES_VIEW}'" in with_measures
    without = write_report(uri, "one-size", tmp_path / "one-size.html", settings).read_text()
    assert f"id='fig-{MEASURES_VIEW}'" not in without
