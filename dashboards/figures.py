"""Figure builders: the loss-point table and fit results in, a plotly Figure out (pure, no I/O).

- ``curves_figure``: validation loss against tokens for each (N, U_D), with
  every law's prediction over it (MuPT Figures 4–5); held-out sizes drawn
  with crosses and thin law lines.
- ``residuals_figure``: log L̂ − log L against tokens, per law (Figure 6).
- ``comparison_figure``: train/test/leave-one-size-out R² and Huber (Table 3).
- ``iso_flop_figure``: loss against N at fixed C, with each curve's minimum.
- ``frontier_figure``: N*(C), D*(C) and epochs*(C) with bootstrap bands.
- ``overfitting_figure``: the epoch count where the loss turns up, over N and U_D.
- ``progress_figure``: runs by state, and N*'s interval width by round.
- ``measures_figure``: each evaluation measure against N and D, the real set's value as a line.

Curves use WebGL traces (``Scattergl``), one per model size for the data and
one per (law, size) for the predictions, whatever the number of runs; each
curve is thinned to at most ``MAX_POINTS_PER_CURVE`` points (keeping the
first, last and minimum), so a thousand curves of a thousand points stay
responsive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lawfit.laws.base import get_law
from lawfit.names import FLOPS_PER_PARAM_TOKEN
from lawfit.planning import plan_compute_optimal, plan_tokens
from lawfit.result import FitResult

MAX_POINTS_PER_CURVE = 200
CURVES_TITLE = "Validation loss against tokens seen, with each law's prediction (MuPT Fig. 4-5)"
LAW_DASH = {"chinchilla": "dot", "data_constrained": "dash", "dprime": "dashdot", "nd": "longdash", "sms": "solid"}
ISO_FLOP_FRAME_FACTOR = 1.5  # the iso-FLOP loss axis shows each curve up to this multiple of its minimum
AXIS_PAD = 0.05  # of a framed axis' log span, either side
MEASURE_PREFIX = "eval_"  # storage.tracking.MEASURE_PREFIX: evaluation measures are the runs' eval_* metrics
REAL_MEASURE_PREFIX = "eval_real_"  # the real (held-out) set's value of the same measure
MEASURE_SET_SIZES = ("eval_samples",)  # the sampled set's size, logged beside the measures (eval_real_tunes: the real set's)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


class FigureInputError(ValueError):
    """The data cannot make this figure; the message says why (shown where the figure would be)."""


def message_figure(text: str) -> go.Figure:
    """A blank figure that says ``text`` where the plot would be."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 15})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, template="plotly_white", height=360)
    return fig


def thin(frame: pd.DataFrame, limit: int = MAX_POINTS_PER_CURVE) -> pd.DataFrame:
    """At most ``limit`` rows of one curve (sorted by D), evenly spaced in log D, keeping first, last and minimum."""
    if len(frame) <= limit:
        return frame
    log_d = np.log(frame["D"].to_numpy(dtype=float))
    targets = np.linspace(log_d[0], log_d[-1], limit)
    keep = set(np.searchsorted(log_d, targets).clip(0, len(frame) - 1).tolist())
    keep |= {0, len(frame) - 1, int(np.nanargmin(frame["loss"].to_numpy(dtype=float)))}
    return frame.iloc[sorted(keep)]


def _check_points(points: pd.DataFrame) -> None:
    if points.empty:
        raise FigureInputError("no loss points yet: the campaign has no finished evaluations")


def _size_colours(points: pd.DataFrame) -> dict[float, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(points["N"].unique()))}


def _groups(points: pd.DataFrame) -> list[tuple[tuple[float, float], pd.DataFrame]]:
    return [(key, group) for key, group in points.groupby(["N", "U_D"], sort=True)]


def curves_figure(points: pd.DataFrame, fits: Sequence[FitResult], train_max_n: float | None = None) -> go.Figure:
    """Validation loss against D per run, each (N, U_D) in its colour; each law's prediction over its runs."""
    _check_points(points)
    fig = go.Figure()
    colour = _size_colours(points)
    runs = list(points.groupby("run_id", sort=False))
    # One WebGL trace per model size, its runs separated by gaps: a thousand curves stay a handful of traces.
    by_size: dict[float, list[pd.DataFrame]] = {}
    for run_id, run in runs:
        thinned = thin(run.sort_values("D")).assign(run_id=run_id)
        by_size.setdefault(float(run["N"].iloc[0]), []).append(thinned)
    for n, parts in sorted(by_size.items()):
        held_out = train_max_n is not None and n > train_max_n
        name = f"N={n:.3g}" + (" (held out)" if held_out else "")
        gap = pd.DataFrame({"D": [np.nan], "loss": [np.nan], "U_D": [np.nan], "run_id": [""]})
        joined = pd.concat([frame for part in parts for frame in (part[["D", "loss", "U_D", "run_id"]], gap)],
                           ignore_index=True)
        fig.add_trace(go.Scattergl(
            x=joined["D"], y=joined["loss"], mode="lines+markers", name=name, legendgroup=name,
            marker={"size": 4, "color": colour[n], "symbol": "x" if held_out else "circle"},
            line={"color": colour[n], "width": 1}, opacity=0.75, connectgaps=False,
            customdata=np.stack([joined["run_id"].to_numpy(), joined["U_D"].to_numpy()], axis=1),
            hovertemplate=f"N={n:.4g}, U_D=%{{customdata[1]:.4g}}<br>run %{{customdata[0]}}<br>D=%{{x:.4g}}<br>"
                          "loss=%{y:.4f}<extra></extra>",
        ))
    fig.add_traces(law_traces(points, fits, train_max_n))
    fig.update_layout(title=CURVES_TITLE,
                      xaxis={"title": "tokens seen D", "type": "log"}, yaxis={"title": "validation loss", "type": "log"},
                      template="plotly_white", height=520, legend={"itemsizing": "constant"})
    return fig


def law_traces(points: pd.DataFrame, fits: Sequence[FitResult], train_max_n: float | None = None) -> list[go.Scattergl]:
    """Each law's predictions over the curves: one WebGL trace per (law, model size), its (N, U_D) curves
    joined by gaps; in the size's colour and the law's dash, thin for held-out sizes."""
    colour = _size_colours(points)
    traces = []
    for fit in fits:
        law = get_law(fit.law)
        lines: dict[float, list[np.ndarray]] = {}
        for (n, u), group in _groups(points):
            d = np.geomspace(max(group["D"].min(), 1.0), group["D"].max(), 60)
            predicted = law.predict(fit.params, np.full_like(d, n), d, np.full_like(d, u))
            lines.setdefault(float(n), []).append(np.stack([d, predicted, np.full_like(d, u)], axis=1))
        label = f"{fit.law} law"
        for k, (n, parts) in enumerate(sorted(lines.items())):
            gap = np.full((1, 3), np.nan)
            joined = np.concatenate([block for part in parts for block in (part, gap)])
            held_out = train_max_n is not None and n > train_max_n
            traces.append(go.Scattergl(
                x=joined[:, 0], y=joined[:, 1], mode="lines", name=label, legendgroup=label, showlegend=k == 0,
                connectgaps=False, customdata=joined[:, 2:],
                line={"color": colour[n], "dash": LAW_DASH.get(fit.law, "solid"), "width": 1 if held_out else 2},
                hovertemplate=f"{fit.law}: N={n:.3g}{' (held out)' if held_out else ''}, U_D=%{{customdata[0]:.3g}}"
                              "<br>D=%{x:.4g}<br>L̂=%{y:.4f}<extra></extra>",
            ))
    return traces


def _predictions(fit: FitResult, points: pd.DataFrame) -> np.ndarray:
    law = get_law(fit.law)
    return law.predict(fit.params, points["N"].to_numpy(float), points["D"].to_numpy(float), points["U_D"].to_numpy(float))


def size_colour_axis(sizes: Sequence[float]) -> dict[str, object]:
    """The shared colour axis of points coloured by log10 N: a colour bar titled with the variable and its
    unit, ticks at the sizes (or at whole decades when there are many) labelled in parameters."""
    log_n = np.log10(np.asarray(sorted(set(sizes)), dtype=float))
    if len(log_n) > 8:
        log_n = np.arange(math.floor(log_n[0]), math.ceil(log_n[-1]) + 1, dtype=float)
    lo, hi = float(log_n.min()), float(log_n.max())
    return {"colorscale": "Viridis", "cmin": lo, "cmax": hi if hi > lo else lo + 1,
            "colorbar": {"title": {"text": "model size N<br>(parameters)"}, "tickvals": list(log_n),
                         "ticktext": [f"{10**v:.3g}" for v in log_n]}}


def residuals_figure(points: pd.DataFrame, fits: Sequence[FitResult], train_max_n: float | None = None) -> go.Figure:
    """log L̂ − log L against D for every point, one panel per law (MuPT Fig. 6).

    Points are coloured by model size N on one colour axis shared by every panel (log10 N, so a colour is
    the same size in each panel), read off its colour bar; the legend tells train from held-out sizes
    (circles, crosses)."""
    _check_points(points)
    if not fits:
        raise FigureInputError("no fitted law to take residuals of")
    fig = make_subplots(rows=len(fits), cols=1, shared_xaxes=True, subplot_titles=[f"{f.law}" for f in fits],
                        vertical_spacing=0.06)
    n_values = points["N"].to_numpy(float)
    for row, fit in enumerate(fits, start=1):
        residual = np.log(_predictions(fit, points)) - np.log(points["loss"].to_numpy(float))
        held = n_values > train_max_n if train_max_n is not None else np.zeros(len(points), bool)
        for mask, label, symbol in ((~held, "train sizes", "circle"), (held, "held-out sizes", "x")):
            if not mask.any():
                continue
            fig.add_trace(go.Scattergl(
                x=points["D"][mask], y=residual[mask], mode="markers", name=label, legendgroup=label,
                showlegend=row == 1, customdata=n_values[mask],
                marker={"size": 5, "symbol": symbol, "color": np.log10(n_values[mask]), "coloraxis": "coloraxis"},
                hovertemplate="N=%{customdata:.4g}<br>D=%{x:.4g}<br>log L̂ − log L=%{y:.4f}<extra></extra>",
            ), row=row, col=1)
        fig.add_hline(y=0, line={"color": "#888", "width": 1}, row=row, col=1)
        fig.update_yaxes(title_text="log L̂ − log L", row=row, col=1)
    fig.update_xaxes(type="log", title_text="tokens seen D", row=len(fits), col=1)
    fig.update_layout(title="Residuals of each law (MuPT Fig. 6)", template="plotly_white", height=220 * len(fits) + 120,
                      coloraxis=size_colour_axis(n_values),
                      # The colour bar takes the right margin: the legend (train / held-out) goes above the panels.
                      legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"})
    return fig


def comparison_figure(fits: Sequence[FitResult]) -> go.Figure:
    """MuPT Table 3: R² and Huber on train, held-out sizes and leave-one-size-out, per law."""
    if not fits:
        raise FigureInputError("no fitted laws to compare")

    def cell(metrics, attr: str, fmt: str) -> str:  # type: ignore[no-untyped-def]
        if metrics is None:
            return "-"
        value = getattr(metrics, attr)
        return "-" if math.isnan(value) else format(value, fmt)

    header = ["law", "R² train", "Huber train", "R² test", "Huber test", "R² LOSO", "Huber LOSO", "procedure"]
    rows = []
    for fit in fits:
        law = get_law(fit.law)
        train, test, loso = fit.metrics.get("train"), fit.metrics.get("test"), fit.leave_one_size_out
        rows.append([f"{fit.law} ({law.equation})", cell(train, "r2", ".4f"), cell(train, "huber", ".4g"),
                     cell(test, "r2", ".4f"), cell(test, "huber", ".4g"), cell(loso, "r2", ".4f"),
                     cell(loso, "huber", ".4g"), fit.procedure])
    columns = list(map(list, zip(*rows, strict=True)))
    fig = go.Figure(go.Table(header={"values": header, "fill_color": "#e8eef7", "align": "left"},
                             cells={"values": columns, "align": "left"}))
    fig.update_layout(title="Law comparison (MuPT Table 3)", height=120 + 32 * len(fits), margin={"t": 50, "b": 10})
    return fig


def loss_axis_range(curves: Sequence[np.ndarray], minima: Sequence[float],
                    factor: float = ISO_FLOP_FRAME_FACTOR, pad: float = AXIS_PAD) -> list[float]:
    """The log10 range of a log loss axis that frames each curve's minimum (see ``iso_flop_figure``).

    Each curve contributes its minimum (the lower of its lowest finite positive value and ``minima``'s entry)
    and its largest value within ``factor`` × that minimum; the axis spans the lowest such minimum to the
    highest such value, padded by ``pad`` of that span in log units either side. A curve flat to within
    rounding gets a span of ``log10(factor)``, so it still shows as a line in the middle.
    """
    lows: list[float] = []
    highs: list[float] = []
    for loss, minimum in zip(curves, minima, strict=True):
        values = np.append(np.asarray(loss, dtype=float), minimum)
        values = values[np.isfinite(values) & (values > 0)]  # a law may give NaN or ≤ 0 far from its data
        if values.size == 0:
            continue
        lowest = float(values.min())
        lows.append(lowest)
        highs.append(float(values[values <= lowest * factor].max()))
    if not lows:
        raise FigureInputError("the law predicts no finite positive loss at these budgets")
    lo, hi = math.log10(min(lows)), math.log10(max(highs))
    if hi - lo < 1e-9:  # flat curves: a zero-height axis would hide them
        half = math.log10(factor) / 2
        lo, hi = lo - half, hi + half
    margin = pad * (hi - lo)
    return [lo - margin, hi + margin]


def iso_flop_figure(fit: FitResult, budgets: Sequence[float], unique_tokens: float | None,
                    n_range: tuple[float, float] | None = None) -> go.Figure:
    """Loss against N at fixed C = 6·N·D for each budget, with its minimum marked.

    The loss axis is framed around the minima, not the whole curves (``loss_axis_range``): it runs from
    the lowest budget's minimum to the highest loss any curve reaches within ``ISO_FLOP_FRAME_FACTOR``
    (1.5) × its own minimum, plus ``AXIS_PAD`` (5 %) of that log span either side. Far from its minimum an
    iso-FLOP curve runs off (small N on many tokens: a law fitted on diverging small runs predicts losses
    of hundreds there), and an axis spanning it all squashes the minima, which this view exists to show,
    at the bottom. The rule reads only each curve against its own minimum, so no value off to the side,
    however large, moves the frame, and every minimum is inside it whatever the campaign's loss scale.
    The points outside stay in the traces: hover, zoom or autoscale (double click) shows them.
    """
    law = get_law(fit.law)
    fig = go.Figure()
    curves: list[np.ndarray] = []
    minima: list[float] = []
    for i, flops in enumerate(sorted(budgets)):
        c6 = flops / FLOPS_PER_PARAM_TOKEN
        plan = plan_compute_optimal(fit.with_bootstrap(None) if fit.bootstrap else fit, flops, unique_tokens)  # type: ignore[arg-type]
        # Two decades either side of the minimum: far from it the loss runs off and flattens the plot.
        lo, hi = n_range or (max(1e3, plan.n_opt / 100), min(c6 / 1e3, plan.n_opt * 100))
        n = np.geomspace(lo, hi, 240)
        d = c6 / n
        u = np.full_like(n, unique_tokens) if unique_tokens else d
        with np.errstate(all="ignore"):
            loss = law.predict(fit.params, n, d, u)
        curves.append(np.asarray(loss, dtype=float))
        minima.append(float(plan.loss))
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=n, y=loss, mode="lines", name=f"C={flops:.2g}", line={"color": colour},
                                 hovertemplate="N=%{x:.4g}<br>L̂=%{y:.4f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[plan.n_opt], y=[plan.loss], mode="markers", showlegend=False,
                                 marker={"color": colour, "size": 10, "symbol": "star"},
                                 hovertemplate=f"C={flops:.3g}: N*=%{{x:.4g}}, L=%{{y:.4f}}<extra></extra>"))
    data = "unlimited unique data" if not unique_tokens else f"U_D = {unique_tokens:.3g} unique tokens"
    fig.update_layout(title=f"Iso-FLOP curves of the {fit.law} law ({data}); stars: the minima",
                      xaxis={"title": "parameters N", "type": "log"},
                      # A log axis' range is in log10 units; an explicit range turns autorange off.
                      yaxis={"title": "predicted loss", "type": "log", "range": loss_axis_range(curves, minima),
                             "autorange": False},
                      template="plotly_white", height=460)
    return fig


def frontier_figure(fit: FitResult, budgets: Sequence[float], unique_tokens: float | None) -> go.Figure:
    """N*(C), D*(C) and epochs*(C), with the bootstrap band where the fit has draws."""
    budgets = sorted(budgets)
    rows = [plan_compute_optimal(fit, c, unique_tokens) for c in budgets]
    panels = ["N*", "D*", "epochs*"] if unique_tokens else ["N*", "D*"]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.08)
    keys = {"N*": ("n_opt", lambda p: p.n_opt), "D*": ("d_opt", lambda p: p.d_opt),
            "epochs*": ("epochs", lambda p: p.epochs)}
    for col, panel in enumerate(panels, start=1):
        key, value = keys[panel]
        y = [value(p) for p in rows]
        if all(p.interval and key in p.interval for p in rows):
            lo = [p.interval[key][0] for p in rows]
            hi = [p.interval[key][1] for p in rows]
            level = rows[0].level or 0
            fig.add_trace(go.Scatter(x=budgets + budgets[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                                     line={"width": 0}, fillcolor="rgba(31,119,180,0.2)", hoverinfo="skip",
                                     name=f"{level:.0%} bootstrap band", showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=budgets, y=y, mode="lines+markers", name=panel, line={"color": PALETTE[0]},
                                 showlegend=False, hovertemplate="C=%{x:.3g}<br>" + panel + "=%{y:.4g}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(type="log", title_text="FLOPs C", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    data = "unlimited unique data" if not unique_tokens else f"U_D = {unique_tokens:.3g}"
    fig.update_layout(title=f"Compute-optimal frontier of the {fit.law} law ({data})", template="plotly_white", height=420)
    if not any(p.interval for p in rows):
        fig.add_annotation(text="no bootstrap band: this fit has no bootstrap draws", x=0, y=-0.25, xref="paper",
                           yref="paper", showarrow=False, xanchor="left", font={"color": "#b00"})
    return fig


def overfitting_figure(fit: FitResult, n_values: Sequence[float], unique_values: Sequence[float],
                       max_epochs: float = 100.0) -> go.Figure:
    """The epoch count at which the law's loss is lowest (where it turns up) for each N and U_D."""
    n_values, unique_values = sorted(n_values), sorted(unique_values)
    plain = fit.with_bootstrap(None) if fit.bootstrap else fit  # type: ignore[arg-type]
    epochs = np.full((len(unique_values), len(n_values)), np.nan)
    for i, u in enumerate(unique_values):
        for j, n in enumerate(n_values):
            plan = plan_tokens(plain, n, u, max_epochs)
            epochs[i, j] = plan.epochs_best if plan.overfits else np.nan
    if np.all(np.isnan(epochs)):
        raise FigureInputError(f"the {fit.law} law does not turn up within {max_epochs:g} epochs anywhere here "
                               "(it has no overfitting term, or the data does not show one)")
    fig = go.Figure(go.Heatmap(
        x=list(n_values), y=list(unique_values), z=epochs, colorscale="Viridis", colorbar={"title": "epochs"},
        hovertemplate="N=%{x:.3g}<br>U_D=%{y:.3g}<br>loss turns up after %{z:.3g} epochs<extra></extra>",
    ))
    fig.update_layout(title=f"Overfitting onset of the {fit.law} law: epochs where the loss turns up (blank: not within {max_epochs:g})",
                      xaxis={"title": "parameters N", "type": "log"}, yaxis={"title": "unique tokens U_D", "type": "log"},
                      template="plotly_white", height=460)
    return fig


def progress_figure(statuses: Mapping[str, str], rounds: Sequence[Mapping[str, float]]) -> go.Figure:
    """Runs by state, and the upper/lower ratio of N*'s interval by round."""
    if not statuses and not rounds:
        raise FigureInputError("no runs recorded for this campaign yet")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["runs by state", "N* interval (upper/lower) by round"])
    counts = pd.Series(list(statuses.values()), dtype=str).value_counts()
    fig.add_trace(go.Bar(x=list(counts.index), y=list(counts.values), marker={"color": PALETTE[0]}, showlegend=False),
                  row=1, col=1)
    if rounds:
        fig.add_trace(go.Scatter(x=[r["round"] for r in rounds], y=[r["ratio"] for r in rounds], mode="lines+markers",
                                 showlegend=False, hovertemplate="round %{x}: %{y:.3g}<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title_text="round", dtick=1, row=1, col=2)
    fig.update_layout(title="Campaign progress", template="plotly_white", height=380)
    return fig


def measure_names(frame: pd.DataFrame) -> list[str]:
    """The evaluation measures of a measures table (``Tracker.read_measures``): each ``eval_<measure>`` column
    but the real set's (``eval_real_*``) and the set size (``eval_samples``), sorted."""
    return sorted(column.removeprefix(MEASURE_PREFIX) for column in frame.columns
                  if column.startswith(MEASURE_PREFIX) and not column.startswith(REAL_MEASURE_PREFIX)
                  and column not in MEASURE_SET_SIZES and frame[column].notna().any())


def measures_figure(frame: pd.DataFrame) -> go.Figure:
    """Each evaluation measure against N and against D, one row of two panels per measure.

    ``frame`` has a row per run (``Tracker.read_measures``): N, D, U_D and ``eval_<measure>`` at the run's
    latest evaluated checkpoint, with the real set's value in ``eval_real_<measure>``. The real set's value is a
    horizontal dashed line (the median over runs: every run is measured against the same held-out tunes, so
    they agree unless the reference set changed). Points are coloured by model size N on one colour axis
    (log10 N, the residuals' colour bar), so the D panel shows each size's runs apart.
    """
    names = measure_names(frame)
    if frame.empty or not names:
        raise FigureInputError("no run of this campaign has evaluation measures (eval_* metrics) yet: "
                               "`smslab eval run` records them")
    fig = make_subplots(rows=len(names), cols=2, shared_xaxes="columns", horizontal_spacing=0.08,
                        vertical_spacing=min(0.06, 0.3 / len(names)),
                        subplot_titles=[f"{name} against {axis}" for name in names for axis in ("N", "D")])
    usable = frame[np.isfinite(frame["N"].to_numpy(float)) & (frame["N"].to_numpy(float) > 0)]
    for row, name in enumerate(names, start=1):
        column = f"{MEASURE_PREFIX}{name}"
        rows = usable[usable[column].notna()]
        for col, axis in enumerate(("N", "D"), start=1):
            fig.add_trace(go.Scattergl(
                x=rows[axis], y=rows[column], mode="markers", showlegend=False,
                marker={"size": 7, "color": np.log10(rows["N"].to_numpy(float)), "coloraxis": "coloraxis"},
                customdata=np.stack([rows["run_id"].astype(str), rows["N"], rows["D"], rows["U_D"]], axis=1),
                hovertemplate=f"{name}=%{{y:.4g}}<br>run %{{customdata[0]}}<br>N=%{{customdata[1]:.4g}}, "
                              "D=%{customdata[2]:.4g}, U_D=%{customdata[3]:.4g}<extra></extra>",
            ), row=row, col=col)
            fig.update_xaxes(type="log", row=row, col=col)
        real_column = f"{REAL_MEASURE_PREFIX}{name}"
        real = frame[real_column].dropna() if real_column in frame else pd.Series(dtype=float)
        if not real.empty:
            level = float(real.median())
            line = {"color": "#444", "width": 1.5, "dash": "dash"}
            fig.add_hline(y=level, line=line, row=row, col=1)
            fig.add_hline(y=level, line=line, row=row, col=2, annotation_text=f"real set {level:.4g}",
                          annotation_position="top right")
        fig.update_yaxes(title_text=name, row=row, col=1)
    fig.update_xaxes(title_text="parameters N", row=len(names), col=1)
    fig.update_xaxes(title_text="tokens seen D (at the evaluated checkpoint)", row=len(names), col=2)
    fig.update_layout(title="Evaluation measures of the samples against N and D; dashed: the real set's value",
                      template="plotly_white", height=260 * len(names) + 140,
                      coloraxis=size_colour_axis(usable["N"].to_numpy(float)) if not usable.empty else None)
    return fig


def default_budgets(points: pd.DataFrame, around: float | None = None, count: int = 5) -> list[float]:
    """FLOP budgets spanning the campaign's runs (6·N·D at their ends), or decades around ``around``."""
    if around is not None:
        return [around * 10.0**k for k in np.linspace(-2, 2, count)]
    ends = points.groupby("run_id").agg(N=("N", "first"), D=("D", "max"))
    flops = FLOPS_PER_PARAM_TOKEN * ends["N"] * ends["D"]
    lo, hi = float(flops.min()), float(flops.max())
    if not (math.isfinite(lo) and lo > 0):
        raise FigureInputError("no run has trained any tokens yet")
    return list(np.geomspace(lo, max(hi, lo * 10), count))
