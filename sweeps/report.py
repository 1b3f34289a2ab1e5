"""What a campaign writes down: each round's fits, plan, proposals and report, and the final report.

Each round's files go under ``<folder>/rounds/round-NN/`` (``fits/<law>.json``,
``comparison.txt``, ``plan.json``, ``proposals.json``, ``report.md``) and are
logged as artifacts of the campaign's own MLflow run, whose params are its
[plan] settings; ``<folder>/report.md`` is the final report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lawfit.report import comparison_table, plan_report
from storage.tracking import RunRecord, Tracker
from sweeps.proposals import Proposal
from sweeps.rounds import RoundFit
from sweeps.runs import tracking_uri_of
from sweeps.spec import Campaign
from trainer.folder import write_atomic


@dataclass(frozen=True)
class RoundResult:
    number: int
    runs_finished: int
    runs_failed: int
    spent_flops: float
    searched_flops: float  # of spent_flops, what the learning-rate search took
    fit: RoundFit
    proposals: tuple[Proposal, ...]
    folder: Path
    stop: str | None  # why the campaign stopped after this round; None: it proposed and went on


def round_report(campaign: Campaign, result: RoundResult) -> str:
    """The round's report: runs, compute, the law comparison, the plan, and what comes next."""
    settings = campaign.plan
    assert settings is not None
    fit = result.fit
    if result.stop is None:
        next_step = ["", f"Proposals, launched in round {result.number + 1}:",
                     *(f"- {p.describe()}" for p in result.proposals)]
    else:
        next_step = ["", f"Stopped: {result.stop}."]
    searched = f" ({result.searched_flops:.4g} of it by the learning-rate search)" if result.searched_flops else ""
    ratio = f"N* interval upper/lower: {fit.ratio:.3g} (tolerance {settings.tolerance:g})" if fit.ratio else "no interval"
    return "\n".join([
        f"# Campaign {campaign.name}, round {result.number}", "",
        f"runs finished {result.runs_finished}, failed {result.runs_failed}; compute spent {result.spent_flops:.4g} of "
        f"{settings.budget_flops:.4g} FLOPs{searched}",
        "", "```", comparison_table(fit.fits, fit.points), "```", "", "```", plan_report(fit.best, fit.plan), "```", "",
        ratio, *next_step, "",
    ])


def write_round(campaign: Campaign, result: RoundResult) -> None:
    """The round's files, then the same files as artifacts of the campaign's MLflow run."""
    folder = result.folder
    for fit in result.fit.fits:
        fit.write(folder / "fits" / f"{fit.law}.json")
    result.fit.best.write(folder / "fits" / f"{result.fit.best.law}.json")  # the bootstrapped one
    write_atomic(folder / "comparison.txt", comparison_table(result.fit.fits, result.fit.points) + "\n")
    write_atomic(folder / "plan.json", json.dumps(result.fit.plan.to_dict(), indent=2))
    write_atomic(folder / "proposals.json", json.dumps([p.to_dict() for p in result.proposals], indent=2))
    write_atomic(folder / "report.md", round_report(campaign, result))
    log_campaign_artifacts(campaign, folder, f"rounds/round-{result.number:02d}")


def saved_proposals(folder: Path) -> list[Proposal]:
    """The proposals a round wrote before a restart (none when it wrote none, or they cannot be read)."""
    try:
        saved = json.loads((folder / "proposals.json").read_text())
        return [Proposal.from_dict(p) for p in saved] if isinstance(saved, list) else []
    except (OSError, ValueError, KeyError, TypeError):
        return []


def campaign_run(campaign: Campaign) -> tuple[Tracker, str]:
    """The campaign's own MLflow run (its [plan] settings as params), created the first time."""
    tracker = Tracker(tracking_uri_of(campaign))
    settings = dataclasses.asdict(campaign.plan) if campaign.plan is not None else {}
    params = {k: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v for k, v in settings.items()}
    return tracker, tracker.open_run(RunRecord(f"campaign-{campaign.name}", campaign.name, params, kind="campaign"))


def log_campaign_artifacts(campaign: Campaign, path: Path, artifact_path: str | None) -> None:
    tracker, run_id = campaign_run(campaign)
    if path.is_dir():
        tracker.log_artifacts(run_id, path, artifact_path)
    else:
        tracker.log_artifact(run_id, path, artifact_path)


def recommendation(plan: Mapping[str, object]) -> str:
    """The plan in one sentence, with its intervals."""
    interval: Mapping[str, Sequence[float]] = plan.get("interval") or {}  # type: ignore[assignment]

    def span(key: str, fmt: str) -> str:
        return f" [{format(interval[key][0], fmt)}, {format(interval[key][1], fmt)}]" if key in interval else ""

    text = (f"for C = {plan['flops']:.3g} FLOPs, train N* = {plan['n_opt']:.3g}{span('n_opt', '.3g')} parameters "
            f"on D* = {plan['d_opt']:.3g}{span('d_opt', '.3g')} tokens")
    if plan.get("epochs") is not None:
        text += f", {plan['epochs']:.3g}{span('epochs', '.3g')} epochs of U_D = {plan['unique_tokens']:.3g} unique tokens"
    text += f"; predicted loss {plan['loss']:.4g}{span('loss', '.4g')}"
    if plan.get("level"):
        text += f" ({plan['level']:.0%} bootstrap intervals)"
    return text


def final_report(campaign: Campaign, rounds: Sequence[RoundResult], stop: str) -> str:
    last = rounds[-1]
    lines = [f"# Campaign {campaign.name}", "", f"stopped: {stop}", "",
             f"{'round':>5} {'finished':>8} {'failed':>6} {'spent FLOPs':>12} {'law':<17} {'N*':>10} {'interval':>24} "
             f"{'hi/lo':>7}"]
    for r in rounds:
        interval = r.fit.n_opt_interval
        span = f"[{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "-"
        ratio = f"{r.fit.ratio:.3g}" if r.fit.ratio else "-"
        lines.append(f"{r.number:>5} {r.runs_finished:>8} {r.runs_failed:>6} {r.spent_flops:>12.4g} "
                     f"{r.fit.best.law:<17} {r.fit.plan.n_opt:>10.4g} {span:>24} {ratio:>7}")
    lines += ["", f"Recommendation (round {last.number}, {last.fit.best.law} law): "
              f"{recommendation(last.fit.plan.to_dict())}", f"(details: {last.folder / 'report.md'})", ""]
    lines += [(last.folder / "report.md").read_text()]
    return "\n".join(lines)
