"""``smslab dash``: the interactive app (Dash) over a tracking store.

Pick the campaign, the laws and the split; every view redraws; new runs
appear as they land (the store is read again every ``refresh_s`` seconds).
The planner panel answers with the same numbers as ``smslab plan``. A view
that cannot draw says why in its place; the rest of the page keeps working.
"""

from __future__ import annotations

import math
import threading
import time

from dash import Dash, Input, Output, Patch, State, dcc, html, no_update

from dashboards import figures
from dashboards.data import (
    CampaignView,
    DataUnavailable,
    FitCache,
    campaigns,
    fingerprint,
    fit_provenance,
    fits_for,
    load_view,
)
from dashboards.views import (
    MEASURES_VIEW,
    VIEW_NAMES,
    ViewSettings,
    build_views,
    chosen_fit,
    curves_data_figure,
    curves_law_overlay,
    guarded,
    noted_title,
    planner_answer,
    planning_inputs,
)
from lawfit.names import LAW_NAMES, PAPER_LAW_NAMES

TITLES = {
    "progress": "Campaign progress", "comparison": "Law comparison (Table 3)", "curves": "Curves and laws (Fig. 4-5)",
    "residuals": "Residuals (Fig. 6)", "iso_flop": "Iso-FLOP curves", "frontier": "Compute-optimal frontier",
    "overfitting": "Overfitting onset", MEASURES_VIEW: "Evaluation measures against N and D",
}


class ViewSource:
    """Campaign views read from the store at most every ``refresh_s`` seconds, and read again only when
    the store's fingerprint of the campaign changed (a thousand curves take seconds to read)."""

    def __init__(self, tracking_uri: str, refresh_s: float) -> None:
        self.tracking_uri = tracking_uri
        self.refresh_s = refresh_s
        self.cache = FitCache()
        self._views: dict[str, tuple[float, str | None, CampaignView]] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def view(self, campaign: str) -> CampaignView:
        with self._lock:
            loading = self._loading.setdefault(campaign, threading.Lock())
        with loading:  # the views asking at once wait for one read
            hit = self._views.get(campaign)
            if hit is not None and time.monotonic() - hit[0] < self.refresh_s:
                return hit[2]
            token = fingerprint(self.tracking_uri, campaign)
            view = hit[2] if hit is not None and token is not None and token == hit[1] else load_view(self.tracking_uri, campaign)
            self._views[campaign] = (time.monotonic(), token, view)
            return view


def create_app(tracking_uri: str, campaign: str | None = None, refresh_s: float = 10.0,
               laws: tuple[str, ...] = PAPER_LAW_NAMES) -> Dash:
    source = ViewSource(tracking_uri, refresh_s)
    app = Dash(__name__, title="smslab", serve_locally=True)
    try:
        options = campaigns(tracking_uri)
        store_message = ""
    except DataUnavailable as exc:
        options, store_message = [], str(exc)
    initial = campaign if campaign is not None else (options[0] if options else None)
    controls = html.Div([
        html.Label("campaign"), dcc.Dropdown(id="campaign", options=options, value=initial, clearable=False),
        html.Label("laws"), dcc.Dropdown(id="laws", options=list(LAW_NAMES), value=list(laws), multi=True),
        html.Label("split"),
        dcc.RadioItems(id="split", value="all", inline=True, options=[
            {"label": "fit all sizes", "value": "all"},
            {"label": "hold out the largest sizes (Table 3)", "value": "held-out"}]),
        html.Label("law for planning"),
        dcc.RadioItems(id="plan-law", value="", inline=True,
                       options=[{"label": "the campaign's choice", "value": ""}] + [{"label": x, "value": x} for x in LAW_NAMES]),
    ], style={"display": "grid", "gridTemplateColumns": "140px 1fr", "gap": "6px", "maxWidth": "900px"})
    planner = html.Div([
        html.H3("Planner"),
        html.Label("FLOPs C "), dcc.Input(id="plan-flops", type="number", debounce=True),
        html.Label(" unique tokens U_D "), dcc.Input(id="plan-unique", type="number", debounce=True),
        html.Button("plan", id="plan-go", n_clicks=0),
        html.Button("download this fit (JSON, for smslab plan --fit)", id="fit-download-go", n_clicks=0,
                    style={"marginLeft": "12px"}),
        dcc.Download(id="fit-download"),
        html.Pre(id="plan-answer", style={"whiteSpace": "pre-wrap"}),
    ], id="planner")
    app.layout = html.Div([
        html.H2("smslab: scaling laws of symbolic music"),
        html.Div(store_message, id="store-message", style={"color": "#b00"}),
        controls, planner,
        dcc.Interval(id="refresh", interval=int(refresh_s * 1000), n_intervals=0),
        dcc.Store(id="data-version"),
        dcc.Store(id="curves-drawn"),
        *[html.Div([html.H3(TITLES[name]), dcc.Graph(id=f"fig-{name}", config={"displaylogo": False})])
          for name in VIEW_NAMES],
        # Hidden until the campaign's runs carry evaluation measures (the callback below shows it).
        html.Div([html.H3(TITLES[MEASURES_VIEW]), dcc.Graph(id=f"fig-{MEASURES_VIEW}", config={"displaylogo": False})],
                 id=f"section-{MEASURES_VIEW}", style={"display": "none"}),
    ], style={"fontFamily": "sans-serif", "margin": "16px"})

    @app.callback(Output("data-version", "data"), [Input("refresh", "n_intervals"), Input("campaign", "value")],
                  State("data-version", "data"))
    def data_version(_tick, campaign_name, current):  # type: ignore[no-untyped-def]
        # The views redraw only when the campaign's data changed: a redraw that takes longer than the
        # refresh interval would otherwise be superseded by the next one forever.
        try:
            view = source.view(campaign_name) if campaign_name else None
        except DataUnavailable as exc:
            version = f"unavailable: {exc}"
        else:
            version = "none" if view is None else (f"{campaign_name}:{len(view.points)}:{sorted(view.statuses.items())}:"
                                                   f"{len(view.rounds)}:{int(view.measures.notna().sum().sum())}")
        return no_update if version == current else version

    inputs = [Input("campaign", "value"), Input("laws", "value"), Input("split", "value"), Input("plan-law", "value"),
              Input("data-version", "data")]

    def view_or_message(campaign_name):  # type: ignore[no-untyped-def]
        """The campaign's view, or the figure that says why there is none."""
        if not campaign_name:
            return None, figures.message_figure(store_message or "no campaign in this tracking store yet")
        try:
            return source.view(campaign_name), None
        except DataUnavailable as exc:
            return None, figures.message_figure(str(exc))

    def add_view(name: str) -> None:
        # One callback per view: each draws as soon as it is ready; views that share a fit wait for
        # the one fit in the cache.
        @app.callback(Output(f"fig-{name}", "figure"), inputs)
        def draw(campaign_name, laws, split, plan_law, _version):  # type: ignore[no-untyped-def]
            view, message_figure = view_or_message(campaign_name)
            if view is None:
                return message_figure
            settings = ViewSettings(tuple(laws or ()), split or "all", plan_law or None)
            return build_views(view, settings, source.cache, names=(name,))[name]

    for view_name in (*VIEW_NAMES, MEASURES_VIEW):
        if view_name != "curves":
            add_view(view_name)

    @app.callback(Output(f"section-{MEASURES_VIEW}", "style"), [Input("campaign", "value"), Input("data-version", "data")])
    def show_measures(campaign_name, _version):  # type: ignore[no-untyped-def]
        view, _ = view_or_message(campaign_name)
        return {"display": "block" if view is not None and view.has_measures else "none"}

    # The curves draw first without the laws (no fit needed), then the laws' traces are patched in.
    @app.callback([Output("fig-curves", "figure"), Output("curves-drawn", "data")], inputs)
    def draw_curves(campaign_name, laws, split, plan_law, _version):  # type: ignore[no-untyped-def]
        view, message_figure = view_or_message(campaign_name)
        if view is None:
            return message_figure, None
        settings = ViewSettings(tuple(laws or ()), split or "all", plan_law or None)
        return guarded(lambda: curves_data_figure(view, settings)), time.time()

    @app.callback(Output("fig-curves", "figure", allow_duplicate=True), Input("curves-drawn", "data"),
                  [State("campaign", "value"), State("laws", "value"), State("split", "value")],
                  prevent_initial_call=True)
    def add_laws(drawn, campaign_name, laws, split):  # type: ignore[no-untyped-def]
        if not drawn or not campaign_name:
            return no_update
        try:
            view = source.view(campaign_name)
            traces, note = curves_law_overlay(view, ViewSettings(tuple(laws or ()), split or "all"), source.cache)
        except Exception:  # noqa: BLE001  the curves stay as drawn; the other views say what is wrong
            return no_update
        patch = Patch()
        patch["data"].extend([trace.to_plotly_json() for trace in traces])
        if note:
            patch["layout"]["title"]["text"] = noted_title(figures.CURVES_TITLE, note)
        return patch

    @app.callback(Output("store-message", "children"), [Input("campaign", "value"), Input("data-version", "data")])
    def message(campaign_name, _version):  # type: ignore[no-untyped-def]
        if not campaign_name:
            return store_message
        try:
            view = source.view(campaign_name)
        except DataUnavailable as exc:
            return str(exc)
        return (f"{view.left_out} loss points left out: their loss, N, D or U_D is not a finite positive number"
                if view.left_out else "")

    @app.callback([Output("plan-flops", "value"), Output("plan-unique", "value")], Input("campaign", "value"))
    def planner_defaults(campaign_name):  # type: ignore[no-untyped-def]
        try:
            flops, unique = planning_inputs(source.view(campaign_name))
        except (DataUnavailable, figures.FigureInputError, TypeError, KeyError):
            return None, None
        return flops, unique

    def planning_fit(campaign_name, laws, split, plan_law):  # type: ignore[no-untyped-def]
        view = source.view(campaign_name)
        fits, _ = fits_for(view, tuple(laws or PAPER_LAW_NAMES), split or "all", source.cache)
        return view, chosen_fit(view, fits, plan_law or None, source.cache)

    @app.callback(Output("plan-answer", "children"), Input("plan-go", "n_clicks"),
                  [State("campaign", "value"), State("plan-flops", "value"), State("plan-unique", "value"),
                   State("laws", "value"), State("split", "value"), State("plan-law", "value")])
    def plan(n_clicks, campaign_name, flops, unique, laws, split, plan_law):  # type: ignore[no-untyped-def]
        if not n_clicks:
            return "Give a FLOP budget (and unique tokens), then press plan."
        try:
            if flops is None or not math.isfinite(float(flops)) or float(flops) <= 0:
                return "FLOPs C must be a positive number."
            if unique not in (None, "") and not (math.isfinite(float(unique)) and float(unique) > 0):
                return "unique tokens U_D must be a positive number (leave it empty for unlimited unique data)."
            view, fit = planning_fit(campaign_name, laws, split, plan_law)
            answer = planner_answer(fit, float(flops), float(unique) if unique not in (None, "") else None)
        except Exception as exc:  # noqa: BLE001  any bad input is shown in the panel, never a stack trace
            return f"cannot plan: {exc}"
        return format_plan(fit.law, answer) + "\n" + fit_provenance(view, fit)

    @app.callback(Output("fit-download", "data"), Input("fit-download-go", "n_clicks"),
                  [State("campaign", "value"), State("laws", "value"), State("split", "value"),
                   State("plan-law", "value")], prevent_initial_call=True)
    def download_fit(n_clicks, campaign_name, laws, split, plan_law):  # type: ignore[no-untyped-def]
        try:
            _, fit = planning_fit(campaign_name, laws, split, plan_law)
        except Exception:  # noqa: BLE001  nothing to download; the planner says why
            return no_update
        return {"content": fit.to_json(), "filename": f"{campaign_name}-{fit.law}.json"}

    return app


def format_plan(law: str, plan) -> str:  # type: ignore[no-untyped-def]
    interval = plan.interval or {}

    def span(key: str) -> str:
        return f"   [{interval[key][0]:.4g}, {interval[key][1]:.4g}]" if key in interval else ""

    lines = [f"law {law}, C = {plan.flops:.4g} FLOPs"
             + (f", U_D = {plan.unique_tokens:.4g}" if plan.unique_tokens else ", unlimited unique data"),
             f"N*      = {plan.n_opt:.4g} parameters{span('n_opt')}",
             f"D*      = {plan.d_opt:.4g} tokens{span('d_opt')}"]
    if plan.epochs is not None:
        lines.append(f"epochs* = {plan.epochs:.4g}{span('epochs')}")
    lines.append(f"loss    = {plan.loss:.4g}{span('loss')}")
    if plan.level:
        lines.append(f"({plan.level:.0%} bootstrap intervals)")
    return "\n".join(lines)
