"""What a campaign proposes after a round: the predicted optimum and the runs that most narrow N*.

1. The predicted optimum: the preset nearest N* (in log N), trained for the
   target budget (D = C / 6N) on the grid fraction nearest the target U_D.
   It is proposed outright when it costs at most a run's share of the budget
   left, remaining / (runs_per_round · proposal rounds left); a dearer one
   is only a candidate of step 2, proposed if it narrows N* most. (In the
   quickstart it cost 2e12 of the 3.2e12 left, and as a sure pick it crowded
   out the runs that narrow N*: ``smslab campaign simulate``, docs/sweeps.md.)
2. The runs that most narrow N*'s bootstrap interval per FLOP
   (``lawfit.design.choose_runs``), from the candidates presets × grid
   fractions × epochs that no earlier round ran; a run counts as costing at
   least its share of the budget left, so that when ``runs_per_round`` binds
   a cheap run does not win by cheapness alone (``narrowing_runs``). No run
   is chosen so when fewer than 3 bootstrap fits reached an optimum.

Both stay within the campaign's remaining compute budget; a run the corpus or
preset cannot train is left out with the reason said.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from lawfit.design import Candidate, Choice, choose_runs
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
    n_params: int  # N as the campaign's [plan] n_convention counts it (the N its laws are fitted on)
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
    with_embeddings = campaign.plan is not None and campaign.plan.n_convention == "with_embeddings"
    n_params = prepared.n_params_with_embeddings if with_embeddings else prepared.n_params
    return Proposal(spec, reason, n_params, prepared.plan.unique_tokens, prepared.plan.total_tokens, n_opt)


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


@dataclass(frozen=True)
class SharedCost(Candidate):
    """A candidate whose cost, for ranking, is at least ``share``: its part of the budget a round may spend."""

    share: float = 0.0

    @property
    def cost_flops(self) -> float:
        return max(FLOPS_PER_PARAM_TOKEN * self.n_params * self.tokens, self.share)


def narrowing_runs(fit: FitResult, pool: Mapping[str, Proposal], compute_plan: ComputeOptimalPlan, count: int,
                   remaining_flops: float, rounds_left: int) -> list[Choice]:
    """Up to ``count`` runs of ``pool`` that most narrow N*'s interval (``lawfit.design.choose_runs``, greedy by
    variance reduction of log N* per FLOP), within ``remaining_flops``.

    A run is ranked as costing at least its share of what the proposal rounds left may spend,
    remaining / (count · rounds left): when ``runs_per_round`` binds before the budget does, FLOPs a round
    leaves unspent buy nothing, so a run that is merely cheap no longer wins over one that tells more about
    N* (the quickstart's simulation picked 1-epoch runs of the largest model over better ones). What is left
    after the picks (a run dearer than its share uses up more) is offered again to the rest of the count."""
    chosen: list[Choice] = []
    left = remaining_flops
    while count > len(chosen) and left > 0:
        share = left / ((count - len(chosen)) * rounds_left)
        taken = {c.candidate.key for c in chosen}
        candidates = [SharedCost(k, float(v.n_params), float(v.tokens), float(v.unique_tokens), share)
                      for k, v in pool.items() if k not in taken and v.cost_flops <= left]
        picks = choose_runs(fit, candidates, compute_plan.flops, compute_plan.unique_tokens, count - len(chosen), left)
        if not picks:
            break
        chosen += picks
        left -= sum(pool[c.candidate.key].cost_flops for c in picks)
    return chosen


def propose_runs(campaign: Campaign, known: AbstractSet[str], fit: FitResult, compute_plan: ComputeOptimalPlan,
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
    sizes = {p: laws_n(p, vocab_size, plan.n_convention) for p in plan.presets}
    nearest = min(sizes, key=lambda p: abs(math.log(sizes[p]) - math.log(compute_plan.n_opt)))
    unique = compute_plan.unique_tokens
    fractions = {f: campaign.prepare(dataclasses.replace(base, fraction=f, epochs=1.0, tokens=None)).plan.unique_tokens
                 for f in campaign.grid.fractions}
    fraction = min(fractions, key=lambda f: abs(math.log(fractions[f]) - math.log(unique))) if unique else max(fractions)
    tokens = int(plan.target_flops / (FLOPS_PER_PARAM_TOKEN * sizes[nearest]))
    optimum = with_learning_rate(dataclasses.replace(base, preset=nearest, fraction=fraction, epochs=None, tokens=tokens),
                                 rates)
    rounds_left = max(1, plan.max_rounds - round_number)  # proposal rounds left, this one included
    contender: Proposal | None = None  # the optimum when it is dear: one candidate among the others
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
        elif candidate.cost_flops > remaining_flops / (plan.runs_per_round * rounds_left):
            say(f"round {round_number}: {label} costs {candidate.cost_flops:.3g} FLOPs, more than a run's share of "
                f"the {remaining_flops:.3g} left: it is proposed only if it narrows N* most")
            contender = candidate
        else:
            proposals.append(candidate)
            remaining_flops -= candidate.cost_flops
            known.add(optimum.run_id())
    count = plan.runs_per_round - len(proposals)
    draws = len(fit.bootstrap.draws) if fit.bootstrap is not None else 0
    if count > 0 and draws < 3:
        say(f"round {round_number}: no run is chosen to narrow N*: only {draws} bootstrap fits reached an optimum "
            "(the design needs 3)")
    elif count > 0:
        pool: dict[str, Proposal] = {}
        for spec in candidate_specs(campaign, rates):
            if spec.run_id() in known:
                continue
            try:
                pool[spec.run_id()] = proposal_for(campaign, spec, "narrows N*")
            except RunError:  # combinations the corpus cannot run are not candidates
                continue
        if contender is not None:
            pool[contender.run_id] = contender
        for choice in narrowing_runs(fit, pool, compute_plan, count, remaining_flops, rounds_left):
            proposals.append(dataclasses.replace(pool[choice.candidate.key],
                                                 variance_reduction_log_n_star=choice.variance_reduction,
                                                 log_n_star_sd_after=choice.log_n_star_sd_after))
    return proposals
