"""``smslab campaign simulate``: the campaign loop against a simulated trainer, to measure its strategy.

A run's final loss is the truth law's (a fit file, ``FitResult.read``) at its
N, D, U_D times log-normal noise: log L = log L_truth + SIGMA·ε, ε ~ N(0, 1),
drawn once per (seed, run id), so a run two strategies both choose gets the same
loss (common random numbers). No training, no MLflow, no submitit: N, D and U_D
come from the spec's prepared runs (``trainer.spec.prepare``, torch-free) on
the corpus, or on a stand-in for one built from ``--unique-tokens``
(``sweeps/simulate_inputs.py``).

Every seed plays the loop three times on the same grid and the same round 0:

(a) ``proposals``: the real decisions, ``sweeps.rounds.fit_points`` (fit every
    law, choose, bootstrap, plan), ``stop_reason`` and ``propose_runs``;
(b) ``denser grid``: each round adds grid points (the proposal presets × the grid
    fractions × the grid epochs with their geometric midpoints and the proposal
    epochs), each the affordable one farthest in (log N, log D, log U_D) from the
    runs made so far — a space-filling refinement that never looks at a loss;
(c) ``random runs``: each round adds affordable runs of that pool at random;

(b) and (c) may spend, by the end of each round, what (a) had spent by then, and
stop under the same rule. ``--rescale N=X,D=Y`` evaluates the truth at
(X·N, Y·D, Y·U_D): a law fitted on larger models or corpora, moved onto the
campaign's scale; the truth's N* is then read in the campaign's units.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lawfit.errors import LawfitInputError
from lawfit.laws.base import get_law
from lawfit.planning import plan_compute_optimal
from lawfit.points import LossPoints
from lawfit.result import FitResult
from sweeps.lr_search import lr_trial_spec
from sweeps.progress import Say
from sweeps.proposals import Proposal, candidate_specs, proposal_for, propose_runs
from sweeps.rounds import RoundFit, fit_points, largest_unique_tokens, stop_reason
from sweeps.settings import PlanSettings
from sweeps.simulate_inputs import SimulatedCampaign

STRATEGIES = ("proposals", "denser grid", "random runs")
NO_PROPOSAL = "no proposal fits in the remaining compute budget"  # the real loop's words (sweeps/campaign.py)


@dataclass
class Simulation:
    """The campaign, the truth and the noise: what every seed's loop reads."""

    campaign: SimulatedCampaign
    settings: PlanSettings
    truth: FitResult
    noise: float
    n_scale: float = 1.0
    d_scale: float = 1.0
    truth_path: str = "the truth fit"
    _losses: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.truth = dataclasses.replace(self.truth, bootstrap=None)
        self.unique_tokens = self.settings.unique_tokens or largest_unique_tokens(self.campaign)
        self.grid = [proposal_for(self.campaign, spec, "grid") for spec in self.campaign.runs]
        search = self.campaign.lr_search
        self.searched_flops = 0.0 if search is None else search.trials * sum(
            proposal_for(self.campaign, lr_trial_spec(self.campaign, p, search.low), "lr").cost_flops
            for p in self.campaign.grid.presets)
        plan = self.campaign.plan
        assert plan is not None
        epochs = sorted({*self.campaign.grid.epochs, *plan.epochs} or {1.0})
        ladder = sorted({*epochs, *(math.sqrt(a * b) for a, b in itertools.pairwise(epochs))}
                        | {e for spec in candidate_specs(self.campaign, {}) for e in [spec.epochs] if e is not None})
        wide = dataclasses.replace(self.campaign, plan=dataclasses.replace(plan, epochs=tuple(ladder)))
        self.pool = [proposal_for(self.campaign, s, "grid point") for s in candidate_specs(wide, {})]
        self.n_opt = self.truth_n_opt()

    def fit_n(self, run: Proposal) -> float:
        """N as the fits count it (``[plan] n_convention``), which the truth law is evaluated at too."""
        if self.settings.n_convention == "with_embeddings":
            return float(self.campaign.prepare(run.spec).n_params_with_embeddings)
        return float(run.n_params)

    def grid_flops(self) -> float:
        return sum(r.cost_flops for r in self.grid)

    def truth_loss(self, run: Proposal) -> float:
        if run.run_id not in self._losses:
            law = get_law(self.truth.law)
            value = float(law.predict(self.truth.params, self.fit_n(run) * self.n_scale, run.tokens * self.d_scale,
                                      run.unique_tokens * self.d_scale))
            if not (math.isfinite(value) and value > 0):
                raise LawfitInputError(f"{self.truth_path}: the {self.truth.law} law gives loss "
                                       f"{value} at N={self.fit_n(run):g}, D={run.tokens:g}, U_D={run.unique_tokens:g} "
                                       f"(×{self.n_scale:g}, ×{self.d_scale:g}); it cannot stand for a trainer there")
            self._losses[run.run_id] = value
        return self._losses[run.run_id]

    def truth_n_opt(self) -> float:
        """The truth's N* for the spec's budget and U_D, in the campaign's units (MuPT Eq. 1)."""
        plan = plan_compute_optimal(self.truth, self.settings.target_flops * self.n_scale * self.d_scale,
                                    self.unique_tokens * self.d_scale)
        self.truth_at_edge = plan.at_search_edge
        return plan.n_opt / self.n_scale

    def points(self, runs: Sequence[Proposal], seed: int) -> LossPoints:
        """Each run's final loss: the truth's times exp(noise·ε), ε fixed by (seed, run id)."""
        eps = [np.random.default_rng([seed, int(r.run_id, 16)]).standard_normal() for r in runs]
        loss = [self.truth_loss(r) * math.exp(self.noise * e) for r, e in zip(runs, eps, strict=True)]
        return LossPoints.from_arrays([self.fit_n(r) for r in runs], [r.tokens for r in runs], loss,
                                      U_D=[r.unique_tokens for r in runs], run_id=[r.run_id for r in runs],
                                      source="simulated runs")


@dataclass(frozen=True)
class RoundPoint:
    number: int
    runs: int
    spent_flops: float
    law: str
    n_opt: float
    interval: tuple[float, float] | None
    ratio: float | None  # None: no interval, or one from too few bootstrap draws to stop on (RoundFit.ratio)
    draws: int  # bootstrap draws kept (those that reached an optimum) of ``settings.bootstrap``


@dataclass(frozen=True)
class Trajectory:
    strategy: str
    seed: int
    rounds: tuple[RoundPoint, ...]
    stop: str
    added: tuple[str, ...]  # what each later round added, described

    def reached(self, tolerance: float) -> RoundPoint | None:
        return next((r for r in self.rounds if r.ratio is not None and r.ratio <= tolerance), None)


def round_point(fit: RoundFit, runs: int, spent: float) -> RoundPoint:
    kept = len(fit.best.bootstrap.draws) if fit.best.bootstrap is not None else 0
    return RoundPoint(fit.number, runs, spent, fit.best.law, fit.plan.n_opt, fit.n_opt_interval, fit.ratio, kept)


def describe(fit: RoundFit) -> str:
    interval = fit.n_opt_interval
    kept = len(fit.best.bootstrap.draws) if fit.best.bootstrap is not None else 0
    span = f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else ""
    return f"{fit.best.law} N* {fit.plan.n_opt:.3g}{span}, {kept} bootstrap draws kept"


def baseline_runs(sim: Simulation, strategy: str, runs: Sequence[Proposal], allowance: float,
                  rng: np.random.Generator) -> list[Proposal]:
    """Runs of the grid-point pool that fit in ``allowance``: farthest-first (denser grid) or at random."""
    known = {r.run_id for r in runs}
    pool = [p for p in sim.pool if p.run_id not in known]
    chosen: list[Proposal] = []
    if strategy == "random runs":
        for i in rng.permutation(len(pool)):
            if pool[i].cost_flops <= allowance:
                chosen.append(pool[i])
                allowance -= pool[i].cost_flops
        return chosen

    def where(p: Proposal) -> np.ndarray:
        return np.log([p.n_params, p.tokens, p.unique_tokens])

    placed = [where(r) for r in runs]
    while True:
        affordable = [p for p in pool if p.cost_flops <= allowance and p not in chosen]
        if not affordable:
            return chosen
        best = max(affordable, key=lambda p: (min(float(np.linalg.norm(where(p) - q)) for q in placed), -p.cost_flops))
        chosen.append(best)
        placed.append(where(best))
        allowance -= best.cost_flops


def play(sim: Simulation, strategy: str, seed: int, first: RoundFit, schedule: Sequence[float], say: Say,
         quiet: Say) -> Trajectory:
    """One campaign: the real loop's stop rule after every round; the strategy's runs in between."""
    settings = sim.settings
    runs, number, fit = list(sim.grid), 0, first
    rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    rounds: list[RoundPoint] = []
    added: list[str] = []
    while True:
        spent = sum(r.cost_flops for r in runs) + sim.searched_flops
        rounds.append(round_point(fit, len(runs), spent))
        stop = stop_reason(settings, fit.ratio, spent, number)
        if stop is None:
            if strategy == "proposals":
                new = propose_runs(sim.campaign, {r.run_id for r in runs}, fit.best, fit.plan,
                                   settings.budget_flops - spent, {}, number, quiet)
            else:
                allowance = schedule[number + 1] - spent if number + 1 < len(schedule) else 0.0
                new = baseline_runs(sim, strategy, runs, allowance, rng)
            if not new:
                stop = NO_PROPOSAL if strategy == "proposals" else "the FLOPs of (a) by this round are spent"
        if stop is not None:
            return Trajectory(strategy, seed, tuple(rounds), stop, tuple(added))
        added.append("; ".join(p.describe() for p in new))
        runs += new
        number += 1
        fit = fit_points(sim.points(runs, seed), settings, number, sim.unique_tokens, quiet)
        say(f"seed {seed}: {strategy}: round {number}: +{len(new)} runs, {describe(fit)}")


def simulate(sim: Simulation, seeds: int, say: Say, verbose: bool = False) -> list[Trajectory]:
    """Every seed's three campaigns (round 0 fitted once per seed and shared)."""
    quiet: Say = say if verbose else (lambda _: None)
    out: list[Trajectory] = []
    for seed in range(seeds):
        first = fit_points(sim.points(sim.grid, seed), sim.settings, 0, sim.unique_tokens, quiet)
        say(f"seed {seed}: grid ({len(sim.grid)} runs): {describe(first)} (truth N* {sim.n_opt:.3g})")
        ours = play(sim, STRATEGIES[0], seed, first, (), say, quiet)
        schedule = [r.spent_flops for r in ours.rounds]
        out += [ours, *(play(sim, s, seed, first, schedule, say, quiet) for s in STRATEGIES[1:])]
    return out

