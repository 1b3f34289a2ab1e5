"""Every view of a campaign, built from a CampaignView: shared by the app and the HTML report.

Each builder that cannot draw (no points, one model size, a fit that failed)
gives a figure that says why, so the rest of the page keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from dashboards import figures
from dashboards.data import CampaignView, FitCache, fit_provenance, fits_for, view_points
from lawfit.names import PAPER_LAW_NAMES
from lawfit.planning import ComputeOptimalPlan, plan_compute_optimal
from lawfit.result import FitResult, best_fit
from lawfit.scoring import default_train_max_n

VIEW_NAMES = ("progress", "comparison", "curves", "residuals", "iso_flop", "frontier", "overfitting")
MEASURES_VIEW = "measures"  # shown only for a campaign whose runs carry evaluation measures (eval_* metrics)


def view_names(view: CampaignView) -> tuple[str, ...]:
    """The views of ``view``: every one in ``VIEW_NAMES``, and the measures when its runs have any."""
    return (*VIEW_NAMES, MEASURES_VIEW) if view.has_measures else VIEW_NAMES


@dataclass(frozen=True)
class ViewSettings:
    laws: tuple[str, ...] = PAPER_LAW_NAMES
    split: str = "all"  # "all" sizes (as campaigns fit) or "held-out" (the largest sizes held out, MuPT Table 3)
    plan_law: str | None = None  # the law of the iso-FLOP, frontier and overfitting views; None: the campaign's choice


def guarded(build: Callable[[], go.Figure]) -> go.Figure:
    try:
        return build()
    except (figures.FigureInputError, ValueError, ArithmeticError) as exc:
        return figures.message_figure(str(exc))
    except Exception as exc:  # noqa: BLE001  a failed fit or store error: say so in place, keep the page working
        return figures.message_figure(f"this view failed: {type(exc).__name__}: {exc}")


def chosen_fit(view: CampaignView, fits: Sequence[FitResult], plan_law: str | None, cache: FitCache) -> FitResult:
    """The law to plan with, bootstrapped over runs: the one asked for; else the campaign's choice (the
    bootstrapped fit its latest round recorded); else, as campaigns choose, the lowest leave-one-size-out
    Huber (train Huber with fewer than three sizes)."""
    if not fits:
        raise figures.FigureInputError("no fit: the campaign needs finished runs of at least two model sizes")
    by_law = {f.law: f for f in fits}
    if plan_law is not None:
        recorded = view.recorded_fits.get(plan_law)
        if recorded is not None and recorded.bootstrap is not None and plan_law not in by_law:
            return recorded
        if plan_law not in by_law:
            raise figures.FigureInputError(f"the {plan_law} law is not fitted here: add it to the laws shown")
        fit = by_law[plan_law]
        if recorded is not None and recorded.bootstrap is not None and recorded.points_hash == fit.points_hash:
            return recorded
        return cache.bootstrapped(fit, view_points(view))
    for fit in view.recorded_fits.values():
        if fit.bootstrap is not None:
            return fit
    return cache.bootstrapped(best_fit(fits), view_points(view))


def planning_inputs(view: CampaignView) -> tuple[float, float | None]:
    """The recorded plan's budget and unique tokens, else the campaign's largest run budget and U_D."""
    if view.recorded_plan is not None:
        unique = view.recorded_plan.get("unique_tokens")
        return float(view.recorded_plan["flops"]), float(unique) if unique else None  # type: ignore[arg-type]
    if view.points.empty:
        raise figures.FigureInputError("no loss points yet")
    budgets = figures.default_budgets(view.points)
    return budgets[-1], float(view.points["U_D"].max())


def build_views(view: CampaignView, settings: ViewSettings, cache: FitCache,
                names: Sequence[str] = VIEW_NAMES) -> dict[str, go.Figure]:
    """The views ``names`` (default all) of ``view``; fits they share are made once (``cache``)."""
    state: dict[str, object] = {}

    errors: dict[str, str] = {}

    def fits() -> tuple[list[FitResult], float | None]:
        if "fits" not in state:
            state["fits"] = fits_for(view, settings.laws, settings.split, cache, errors)
        return state["fits"]  # type: ignore[return-value]

    def comparison() -> go.Figure:
        fig = figures.comparison_figure(fits()[0])
        if errors:
            notes = "; ".join(f"{law}: {reason}" for law, reason in errors.items())
            fig.add_annotation(text=f"not fitted: {notes}", x=0, y=-0.02, xref="paper", yref="paper",
                               showarrow=False, xanchor="left", yanchor="top", font={"color": "#b00"})
            fig.update_layout(height=fig.layout.height + 40, margin={"b": 50})
        return fig

    def plan_fit() -> FitResult:
        if "plan_fit" not in state:
            state["plan_fit"] = chosen_fit(view, fits()[0], settings.plan_law, cache)
        return state["plan_fit"]  # type: ignore[return-value]

    def curves() -> go.Figure:
        fig = curves_data_figure(view, settings)
        traces, note = curves_law_overlay(view, settings, cache)
        fig.add_traces(traces)
        return _noted(fig, note)

    def planned(build: Callable[[FitResult], go.Figure]) -> Callable[[], go.Figure]:
        def make() -> go.Figure:
            fit = plan_fit()
            return _noted(build(fit), fit_provenance(view, fit))
        return make

    def budgets() -> list[float]:
        flops, _ = planning_inputs(view)
        return figures.default_budgets(view.points, around=flops)

    def unique() -> float | None:
        return planning_inputs(view)[1]

    def overfitting() -> go.Figure:
        sizes = sorted(view.points["N"].unique()) if not view.points.empty else []
        if not sizes:
            raise figures.FigureInputError("no loss points yet")
        n_values = np.geomspace(sizes[0] / 3, sizes[-1] * 3, 24)
        u_values = np.geomspace(view.points["U_D"].min() / 3, view.points["U_D"].max() * 3, 20)
        fit = plan_fit()
        return _noted(figures.overfitting_figure(fit, n_values, u_values), fit_provenance(view, fit))

    builders: dict[str, Callable[[], go.Figure]] = {
        "progress": lambda: figures.progress_figure(view.statuses, view.rounds),
        "comparison": comparison,
        "curves": curves,
        "residuals": lambda: figures.residuals_figure(view.fit_points, fits()[0], fits()[1]),
        "iso_flop": planned(lambda fit: figures.iso_flop_figure(fit, budgets(), unique())),
        "frontier": planned(lambda fit: figures.frontier_figure(fit, budgets(), unique())),
        "overfitting": overfitting,
        MEASURES_VIEW: lambda: figures.measures_figure(view.measures),
    }
    return {name: guarded(builders[name]) for name in names}


def curves_data_figure(view: CampaignView, settings: ViewSettings) -> go.Figure:
    """The curves view without the laws: it needs no fit, so it draws at once (and while runs land)."""
    train_max_n = None
    if settings.split == "held-out":
        try:
            train_max_n = default_train_max_n(view_points(view))
        except ValueError:
            pass  # nothing to fit yet: no size is held out
    return figures.curves_figure(view.points, [], train_max_n)


def curves_law_overlay(view: CampaignView, settings: ViewSettings, cache: FitCache) -> tuple[list[go.Scattergl], str]:
    """The laws' traces over the curves, or none and the reason (no finished runs yet, one size, ...)."""
    try:
        fits, train_max_n = fits_for(view, settings.laws, settings.split, cache)
    except (figures.FigureInputError, ValueError, ArithmeticError) as exc:
        return [], f"laws not drawn: {exc}"
    return figures.law_traces(view.points, fits, train_max_n), ""


def noted_title(title: str, note: str) -> str:
    return f"{title}<br><sup>{note}</sup>" if note else title


def _noted(fig: go.Figure, note: str) -> go.Figure:
    """``note`` in small type under the figure's title (which fit a view shows, or why laws are missing)."""
    if note:
        fig.update_layout(title={"text": noted_title(fig.layout.title.text or "", note)}, margin={"t": 90})
    return fig


def planner_answer(fit: FitResult, flops: float, unique_tokens: float | None) -> ComputeOptimalPlan:
    """The same numbers as ``smslab plan --fit FIT --flops C --unique-tokens U``."""
    return plan_compute_optimal(fit, flops, unique_tokens)
