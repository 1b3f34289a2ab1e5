"""Campaigns: launch the grid, fit every law, plan, propose the next runs, launch them, repeat.

The round loop. Each round launches every run of the campaign so far (grid
and earlier proposals; finished runs are skipped), records how each ended
(``sweeps/record.py``), fits and plans (``sweeps/rounds.py``), stops or
proposes (``sweeps/proposals.py``) and writes its report
(``sweeps/report.py``). An optional ``[lr_search]`` chooses each preset's
learning rate first (``sweeps/lr_search.py``).

A restarted campaign replays its rounds from the record: the same runs give
the same fits, a round that had proposed takes its saved (or recorded)
proposals rather than proposing again, so it picks up where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweeps.launch import launch
from sweeps.lr_search import lr_search_flops, search_learning_rates
from sweeps.progress import Progress, Say, progress_printer, say_on_stderr
from sweeps.proposals import Proposal, proposal_for, propose_runs, with_learning_rate
from sweeps.record import CampaignRecord
from sweeps.report import RoundResult, campaign_run, final_report, log_campaign_artifacts, saved_proposals, write_round
from sweeps.rounds import fit_round, interval_text, stop_reason
from sweeps.runs import CampaignError, RunState, read_run_state, run_cost_flops
from sweeps.settings import SpecError
from sweeps.spec import Campaign
from trainer.folder import write_atomic


@dataclass(frozen=True)
class CampaignOutcome:
    rounds: tuple[RoundResult, ...]
    stop_reason: str
    report: str


def run_campaign(campaign: Campaign, say: Say = say_on_stderr, progress: Progress | None = None) -> CampaignOutcome:
    """Run (or resume) the campaign until N* is pinned down or its budget is spent. ``progress`` hears of
    every run's launch events (by default a counter per round, through ``say``)."""
    if campaign.plan is None:
        raise SpecError(f"{campaign.source}: a campaign needs a [plan] table (target_flops, budget_flops, ...)")
    rates = search_learning_rates(campaign, say)
    searched_flops = lr_search_flops(campaign)
    record = CampaignRecord(campaign)
    for spec in campaign.runs:
        record.ask(proposal_for(campaign, with_learning_rate(spec, rates), "grid"), 0)
    resumed_from = record.last_round()
    if resumed_from:
        say(f"resuming: the study holds {len(record.trials)} runs up to proposal round {resumed_from}")
    rounds: list[RoundResult] = []
    number = 0
    tracker, mlflow_run = campaign_run(campaign)
    tracker.set_status(mlflow_run, "running")
    try:
        while True:
            specs = record.specs(up_to_round=number)
            finished_before = sum(1 for s in specs if read_run_state(campaign, s).status == "finished")
            say(f"round {number}: {len(specs)} runs ({finished_before} finished before)")
            states = launch(campaign, specs, progress=progress or progress_printer(len(specs), say))
            record.tell(states)
            result = play_round(campaign, record, states, number, searched_flops, say)
            rounds.append(result)
            if result.stop is not None:
                break
            number += 1
            for proposal in result.proposals:
                record.ask(proposal, number)
    except CampaignError as exc:
        tracker.set_status(mlflow_run, "failed", error=str(exc))
        raise
    stop = rounds[-1].stop
    assert stop is not None
    report = final_report(campaign, rounds, stop)
    write_atomic(campaign.folder / "report.md", report)
    log_campaign_artifacts(campaign, campaign.folder / "report.md", None)
    tracker.set_status(mlflow_run, "finished")  # the campaign's own run ends with it (MLflow: FINISHED)
    return CampaignOutcome(tuple(rounds), stop, report)


def play_round(campaign: Campaign, record: CampaignRecord, states: list[RunState], number: int,
               searched_flops: float, say: Say) -> RoundResult:
    """Fit, decide (stop or propose), write: one round after its runs have ended."""
    settings = campaign.plan
    assert settings is not None
    for state in states:
        if state.status == "failed":
            say(f"run {state.run_id} failed and is left out: {state.error or 'see its state.json'}")
    # The campaign's compute: every run it launched (failed ones up to where they stopped) and its lr search.
    spent = sum(run_cost_flops(campaign, s) for s in states) + searched_flops
    fit = fit_round(campaign, states, number, say)
    say(f"round {number}: N* = {fit.plan.n_opt:.3g}{interval_text(fit)}; spent {spent:.3g} of "
        f"{settings.budget_flops:.3g} FLOPs")
    stop = stop_reason(settings, fit.ratio, spent, number)
    folder = campaign.folder / "rounds" / f"round-{number:02d}"
    proposals: list[Proposal] = []
    if stop is None:
        # A restarted campaign takes the proposals this round saved (before any was recorded in the study),
        # else those its record holds, else it proposes.
        known = {spec.run_id() for spec in record.specs(up_to_round=number)}
        proposals = (saved_proposals(folder) or record.recorded_proposals(number + 1)
                     or propose_runs(campaign, known, fit.best, fit.plan, settings.budget_flops - spent,
                                     record.grid_rates(), number, say))
        if not proposals:
            stop = "no proposal fits in the remaining compute budget"
        for proposal in proposals:
            say(f"round {number}: proposing {proposal.describe()}")
    result = RoundResult(number, sum(1 for s in states if s.status == "finished"),
                         sum(1 for s in states if s.status == "failed"), spent, searched_flops, fit,
                         tuple(proposals), folder, stop)
    write_round(campaign, result)
    return result
