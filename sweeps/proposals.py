"""What a campaign proposes after a round: the predicted optimum and the runs that most narrow N*.

1. The predicted optimum: the preset nearest N* (in log N), trained for the
   target budget (D = C / 6N) on the grid fraction nearest the target U_D.
2. The runs that most narrow N*'s bootstrap interval per FLOP
   (``lawfit.design.choose_runs``), from the candidates presets × grid
   fractions × epochs that no earlier round ran.

Both stay within the campaign's remaining compute budget; a run the corpus or
preset cannot train is left out with the reason said.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Set
from dataclasses import dataclass

from lawfit.design import Candidate, choose_runs
from lawfit.names import FLOPS_PER_PARAM_TOKEN
from lawfit.planning import ComputeOptimalPlan
from lawfit.result import FitResult
from sweeps.progress import Say
from sweeps.spec import Campaign
from trainer.spec import RunError, RunSpec, laws_n


@dataclass(frozen=True)
class Proposal:
    """A run proposed for the next round, with why and what it costs."""

    spec: RunSpec
    reason: str
    n_params: int  # N (non-embedding)
    unique_tokens: int  # U_D of its fraction
    tokens: int  # D it trains for
    n_opt: float | None = None  # the N* it was proposed for (the predicted optimum)
    variance_reduction_log_n_star: float | None = None  # how much it narrows log N* (the design's choice)
    log_n_star_sd_after: float | None = None

    @property
    def run_id(self) -> str:
        return self.spec.run_id()

    @property
    def cost_flops(self) -> float:
        return FLOPS_PER_PARAM_TOKEN * self.n_params * self.tokens

    def to_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "spec": self.spec.to_dict(), "reason": self.reason, "N": self.n_params,
                "U_D": self.unique_tokens, "tokens": self.tokens, "cost_flops": self.cost_flops, "n_opt": self.n_opt,
                "variance_reduction_log_n_star": self.variance_reduction_log_n_star,
                "log_n_star_sd_after": self.log_n_star_sd_after}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Proposal:
        return cls(RunSpec.from_dict(dict(data["spec"]), "a saved proposal"), str(data["reason"]),  # type: ignore[arg-type]
                   int(data["N"]), int(data["U_D"]), int(data["tokens"]),  # type: ignore[arg-type]
                   data.get("n_opt"), data.get("variance_reduction_log_n_star"),  # type: ignore[arg-type]
                   data.get("log_n_star_sd_after"))  # type: ignore[arg-type]

    def describe(self) -> str:
        return (f"{self.spec.preset} fraction {self.spec.fraction:g}, {self.tokens:,} tokens ({self.reason}; "
                f"{self.cost_flops:.3g} FLOPs)")


def with_rate(spec: RunSpec, rate: float) -> RunSpec:
    """``spec`` at peak learning rate ``rate``, its final rate scaled alike. Every spec of a campaign gets
    its rate here, so the same run always gets the same floats (and so the same run id)."""
    if rate == spec.lr:
        return spec
    return dataclasses.replace(spec, lr=rate, final_lr=rate * (spec.final_lr / spec.lr))


def with_learning_rate(spec: RunSpec, rates: dict[str, float]) -> RunSpec:
    """``spec`` at its preset's rate in ``rates`` (unchanged for a preset without one)."""
    return with_rate(spec, rates[spec.preset]) if spec.preset in rates else spec


def proposal_for(campaign: Campaign, spec: RunSpec, reason: str, n_opt: float | None = None) -> Proposal:
    """``spec`` as a proposal, its N, U_D and D read off the corpus (``RunError`` when it cannot run)."""
    prepared = campaign.prepare(spec)
    return Proposal(spec, reason, prepared.n_params, prepared.plan.unique_tokens, prepared.plan.total_tokens, n_opt)


def candidate_specs(campaign: Campaign, rates: dict[str, float]) -> list[RunSpec]:
    """Every run a proposal may be: [plan] presets × grid fractions × [plan] epochs, at the searched rates."""
    plan = campaign.plan
    assert plan is not None
    grid_epochs = campaign.grid.epochs or (1.0,)
    epochs = list(plan.epochs) or sorted({*campaign.grid.epochs, 2 * max(grid_epochs)})
    base = campaign.runs[0]
    return [with_learning_rate(dataclasses.replace(base, preset=preset, fraction=fraction, epochs=float(e), tokens=None),
                               rates)
            for preset in plan.presets for fraction in campaign.grid.fractions for e in epochs]


def propose_runs(campaign: Campaign, known: Set[str], fit: FitResult, compute_plan: ComputeOptimalPlan,
                 remaining_flops: float, rates: dict[str, float], round_number: int, say: Say) -> list[Proposal]:
    """The next round's runs (see the module docstring); ``known`` holds the run ids run or proposed before."""
    plan = campaign.plan
    assert plan is not None
    if remaining_flops <= 0:
        return []
    known = set(known)
    proposals: list[Proposal] = []
    base = campaign.runs[0]
    vocab_size = campaign.prepare(base).vocab_size
    sizes = {p: laws_n(p, vocab_size) for p in plan.presets}
    nearest = min(sizes, key=lambda p: abs(math.log(sizes[p]) - math.log(compute_plan.n_opt)))
    unique = compute_plan.unique_tokens
    fractions = {f: campaign.prepare(dataclasses.replace(base, fraction=f, epochs=1.0, tokens=None)).plan.unique_tokens
                 for f in campaign.grid.fractions}
    fraction = min(fractions, key=lambda f: abs(math.log(fractions[f]) - math.log(unique))) if unique else max(fractions)
    tokens = int(plan.target_flops / (FLOPS_PER_PARAM_TOKEN * sizes[nearest]))
    optimum = with_learning_rate(dataclasses.replace(base, preset=nearest, fraction=fraction, epochs=None, tokens=tokens),
                                 rates)
    label = f"the predicted optimum ({nearest}, {tokens:,} tokens on fraction {fraction:g})"
    try:
        candidate = proposal_for(campaign, optimum, "predicted optimum", compute_plan.n_opt)
    except RunError as exc:  # a budget the corpus or preset cannot run (e.g. fewer tokens than one step)
        say(f"round {round_number}: {label} is not proposed: {exc}")
    else:
        if optimum.run_id() in known:
            say(f"round {round_number}: {label} was run already")
        elif candidate.cost_flops > remaining_flops:
            say(f"round {round_number}: {label} is not proposed: it costs {candidate.cost_flops:.3g} FLOPs, "
                f"{remaining_flops:.3g} are left in the budget")
        else:
            proposals.append(candidate)
            remaining_flops -= candidate.cost_flops
            known.add(optimum.run_id())
    count = plan.runs_per_round - len(proposals)
    if count > 0 and fit.bootstrap is not None:
        pool: dict[str, Proposal] = {}
        for spec in candidate_specs(campaign, rates):
            if spec.run_id() in known:
                continue
            try:
                pool[spec.run_id()] = proposal_for(campaign, spec, "narrows N*")
            except RunError:  # combinations the corpus cannot run are not candidates
                continue
        candidates = [Candidate(k, float(v.n_params), float(v.tokens), float(v.unique_tokens)) for k, v in pool.items()]
        for choice in choose_runs(fit, candidates, compute_plan.flops, compute_plan.unique_tokens, count, remaining_flops):
            proposals.append(dataclasses.replace(pool[choice.candidate.key],
                                                 variance_reduction_log_n_star=choice.variance_reduction,
                                                 log_n_star_sd_after=choice.log_n_star_sd_after))
    return proposals
