"""One round of a campaign: fit every law to what has finished, plan, decide whether to stop, propose.

1. The points: every finished run's final loss (``[plan] points = "final"``,
   the Chinchilla/datablations practice) or whole curve (``"curve"``), read
   back through storage (``storage.points.fit_points``: one definition of
   finished, the run's recorded status).
2. Every law of ``[plan] laws`` fitted (``lawfit``), scored by
   leave-one-size-out when there are enough sizes, the best bootstrapped over
   runs; N*, D*, epochs* planned for ``target_flops`` and ``unique_tokens``.
3. Stop when N*'s interval is within ``tolerance`` (upper/lower; an interval
   counts only when at least half of the bootstrap fits reached an optimum), when the
   campaign's compute (Σ 6·N·D of its runs, failed ones up to their last step,
   and of its learning-rate search) reaches ``budget_flops``, or after
   ``max_rounds`` proposal rounds; otherwise propose (``sweeps/proposals.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lawfit.planning import ComputeOptimalPlan
from lawfit.points import LossPoints
from lawfit.result import FitResult
from lawfit.scoring import can_leave_one_size_out
from storage.tracking import Tracker
from sweeps.progress import Say
from sweeps.runs import CampaignError, RunState, tracking_uri_of
from sweeps.settings import PlanSettings
from sweeps.spec import Campaign

# N*'s interval counts (for the stop rule) when at least this share of the bootstrap draws reached an optimum.
MIN_KEPT_SHARE = 0.5


@dataclass(frozen=True)
class RoundFit:
    """What one round learned: the points, every law's fit, the chosen (bootstrapped) one and its plan."""

    number: int
    points: LossPoints
    fits: tuple[FitResult, ...]
    best: FitResult  # with bootstrap draws
    left_out_sizes: bool  # whether the law was chosen by how well it predicts left-out sizes
    plan: ComputeOptimalPlan

    @property
    def n_opt_interval(self) -> tuple[float, float] | None:
        if not self.plan.interval:
            return None
        low, high = self.plan.interval["n_opt"]
        return (float(low), float(high))

    @property
    def interval_trusted(self) -> bool:
        """Whether enough bootstrap draws reached an optimum for N*'s interval to stop on: at least
        ``MIN_KEPT_SHARE`` of those requested, and 3. (An interval of the one draw that converged has
        upper/lower 1 and would stop any campaign: `smslab campaign simulate` met it.)"""
        bootstrap = self.best.bootstrap
        if bootstrap is None:
            return False
        return len(bootstrap.draws) >= max(3, math.ceil(MIN_KEPT_SHARE * bootstrap.requested))

    @property
    def ratio(self) -> float | None:
        """Upper/lower of N*'s interval: how well the campaign has pinned N* down (None without an interval,
        or with one of too few bootstrap draws to trust)."""
        interval = self.n_opt_interval
        return interval[1] / interval[0] if interval and interval[0] > 0 and self.interval_trusted else None


def align_storage_with_folders(campaign: Campaign, states: Sequence[RunState]) -> None:
    """The run folder is the truth about a run: a run its folder calls finished or failed whose tracking
    record says otherwise (its job was killed between the two writes, or the store's disk was full) is
    recorded so too, so storage fits exactly the finished runs."""
    tracker = Tracker(tracking_uri_of(campaign))
    recorded = tracker.run_statuses(campaign.name)
    for state in states:
        if state.status in ("finished", "failed") and recorded.get(state.run_id) not in (None, state.status):
            mlflow_run = tracker.find_run(campaign.name, state.run_id)
            if mlflow_run is not None:
                tracker.set_status(mlflow_run, state.status, error=state.error if state.status == "failed" else None)


def read_fit_points(campaign: Campaign, settings: PlanSettings) -> LossPoints:
    try:
        frame = Tracker(tracking_uri_of(campaign)).read_fit_points(
            campaign.name, settings.points, settings.n_convention)  # type: ignore[arg-type]
    except ValueError as exc:  # a finished run without the count [plan] n_convention asks for
        raise CampaignError(f"campaign {campaign.name}: {exc}") from None
    return LossPoints.from_frame(frame, f"campaign {campaign.name}")


def fit_round(campaign: Campaign, states: Sequence[RunState], number: int, say: Say) -> RoundFit:
    """Fit every law of the round, choose one, bootstrap it and plan with it."""
    settings = campaign.plan
    assert settings is not None
    finished = [s for s in states if s.status == "finished"]
    sizes = len({s.spec.preset for s in finished})
    if len(finished) < 3 or sizes < 2:
        raise CampaignError(f"round {number}: only {len(finished)} finished runs over {sizes} model sizes; "
                            "a law needs at least 3 runs over 2 sizes (see `smslab sweep status`)")
    align_storage_with_folders(campaign, states)
    points = read_fit_points(campaign, settings)
    if points.n_runs < 3 or len(points.sizes) < 2:
        raise CampaignError(f"round {number}: MLflow holds curves of only {points.n_runs} finished runs over "
                            f"{len(points.sizes)} model sizes ({tracking_uri_of(campaign)}); a law needs at least "
                            "3 runs over 2 sizes")
    return fit_points(points, settings, number, settings.unique_tokens or largest_unique_tokens(campaign), say)


def fit_points(points: LossPoints, settings: PlanSettings, number: int, unique_tokens: float, say: Say) -> RoundFit:
    """The round's decision, from its points alone (no storage, no folders): every law of ``settings.laws``
    fitted, the one that predicts left-out sizes best (or fits best) bootstrapped over runs
    (``settings.bootstrap`` draws, seeded by the round number), and N* planned for ``target_flops`` on
    ``unique_tokens``. The real loop (``fit_round``) and ``sweeps/simulate.py`` both decide here."""
    from lawfit.bootstrap import bootstrap_fit
    from lawfit.fit import FitOptions, fit_procedures
    from lawfit.multistart import GridCache
    from lawfit.planning import plan_compute_optimal
    from lawfit.result import best_fit
    from lawfit.user_law import held_values

    loso = can_leave_one_size_out(points)
    say(f"round {number}: fitting {len(settings.laws)} laws to {len(points)} points of {points.n_runs} runs "
        f"({len(points.sizes)} sizes) ...")
    cache = GridCache()  # the laws of one round share their base fits (SMS's stage 1 is the N·D fit)
    fits = []
    for law in settings.laws:
        started = time.perf_counter()
        # A law with a base is fitted by the paper's staged procedure and jointly; the one that predicts
        # left-out sizes better (or, without leave-one-size-out, fits better) stands for the law.
        options = FitOptions(leave_one_size_out=loso, fixed=held_values(law))
        fit = best_fit(fit_procedures(points, law, options, cache))
        fits.append(fit)
        say(f"      {law:<17} {fit.procedure:<7} objective {fit.objective:.5g}  "
            f"({time.perf_counter() - started:.1f} s)")
    best = best_fit(fits)
    say(f"round {number}: {best.law} ({best.procedure}) {'predicts left-out sizes best' if loso else 'fits best'}; "
        f"bootstrapping it ({settings.bootstrap} resamples of the runs) ...")
    draws = bootstrap_fit(best, points, settings.bootstrap, FitOptions(), level=settings.level, seed=number)
    best = best.with_bootstrap(draws)
    plan = plan_compute_optimal(best, settings.target_flops, unique_tokens)
    result = RoundFit(number, points, tuple(fits), best, loso, plan)
    if not result.interval_trusted:
        say(f"round {number}: only {len(draws.draws)} of {settings.bootstrap} bootstrap fits reached an optimum: "
            "too few for N*'s interval to stop the campaign")
    return result


def largest_unique_tokens(campaign: Campaign) -> float:
    import dataclasses

    spec = campaign.runs[0]
    return float(max(campaign.prepare(dataclasses.replace(spec, fraction=f)).plan.unique_tokens
                     for f in campaign.grid.fractions))


def stop_reason(settings: PlanSettings, ratio: float | None, spent_flops: float, number: int) -> str | None:
    """Why the campaign stops after round ``number``; None: it goes on and proposes."""
    if ratio is not None and ratio <= settings.tolerance:
        return f"N*'s interval is within the tolerance (upper/lower {ratio:.3g} <= {settings.tolerance:g})"
    if spent_flops >= settings.budget_flops:
        return f"the compute budget is spent ({spent_flops:.3g} of {settings.budget_flops:.3g} FLOPs)"
    if number >= settings.max_rounds:
        return f"max_rounds ({settings.max_rounds}) reached"
    return None


def interval_text(fit: RoundFit) -> str:
    interval = fit.n_opt_interval
    if interval is None or fit.ratio is None:
        return ""
    return f" [{interval[0]:.3g}, {interval[1]:.3g}] (upper/lower {fit.ratio:.3g})"
