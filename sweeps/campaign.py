"""Campaigns: launch the grid, fit every law, plan, propose the next runs, launch them, repeat.

One round:

1. launch every run of the campaign so far (grid + earlier proposals) and
   wait; finished runs are skipped, failed ones are left out of the fits;
2. read every curve back from MLflow (``storage``) as the loss-point table;
   each run gives its final validation loss (``points = "final"``, the
   Chinchilla/datablations practice) or every evaluation (``"curve"``);
3. fit every law of ``[plan] laws`` (``lawfit``), score them by
   leave-one-size-out (with 3+ sizes) and take the best; bootstrap it over runs;
4. plan N*, D*, epochs* for ``target_flops`` and ``unique_tokens``;
5. stop when N*'s interval is narrower than ``tolerance`` (upper/lower),
   when the campaign's compute (Σ 6·N·D of its runs, failed ones up to their last
   step, and of its learning-rate search) reaches ``budget_flops``,
   or after ``max_rounds`` proposal rounds;
6. otherwise propose: the run nearest the predicted optimum (the preset
   closest to N*, trained for the target budget on the fraction closest to
   the target U_D) and the runs that most narrow N*'s interval
   (``lawfit.design``), within the remaining budget.

Optuna keeps the record: one study per campaign, in ``optuna.db`` beside the
tracking store. Every run is a trial (asked when proposed, told its final
loss, or FAIL); its user attributes hold the run spec, the round and why it
was proposed — so after a restart the campaign relaunches what it had
proposed (finished runs are skipped) and carries on. Each round's fits,
plan, proposals and report are written under ``rounds/round-NN/`` and logged
as artifacts of the campaign's own MLflow run.

An optional ``[lr_search]`` runs an Optuna TPE study over the peak learning
rate per preset (short runs, their own MLflow experiment) before the grid;
the grid and the proposals then use each preset's best rate.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sweeps.launch import RunState, launch, read_run_state, tracking_uri_of
from sweeps.spec import Campaign
from trainer.run import RunSpec, prepare

Say = Callable[[str], None]
FLOPS_PER_PARAM_TOKEN = 6.0
RECORD_KEYS = {"run_id", "spec", "round", "reason", "N", "U_D"}  # a run's whole record in its Optuna trial


class CampaignError(RuntimeError):
    """A campaign that cannot go on (too few runs finished to fit a law); the message says why (exit status 1)."""


@dataclass(frozen=True)
class RoundResult:
    number: int
    runs_finished: int
    runs_failed: int
    spent_flops: float
    law: str
    n_opt: float
    n_opt_interval: tuple[float, float] | None
    ratio: float | None  # upper/lower of N*'s interval
    proposals: tuple[dict[str, Any], ...]
    folder: Path
    stop: str | None  # why the campaign stopped after this round; None: it proposed and went on
    plan: Mapping[str, Any]  # the compute-optimal plan of this round (ComputeOptimalPlan.to_dict())


@dataclass(frozen=True)
class CampaignOutcome:
    rounds: tuple[RoundResult, ...]
    stop_reason: str
    report: str


def optuna_storage(campaign: Campaign) -> str:
    """The Optuna RDB storage beside the tracking store: a SQLite file in the campaign folder."""
    return f"sqlite:///{(campaign.folder / 'optuna.db').resolve()}"


def _study(campaign: Campaign, name: str, sampler: Any = None):  # type: ignore[no-untyped-def]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign.folder.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(study_name=name, storage=optuna_storage(campaign), load_if_exists=True,
                               direction="minimize", sampler=sampler)


def _existing_study(campaign: Campaign, name: str):  # type: ignore[no-untyped-def]
    """The study ``name`` if the campaign's record holds it (read only: nothing is created); else None."""
    import optuna

    if not (campaign.folder / "optuna.db").is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=optuna_storage(campaign))
    except KeyError:  # no such study
        return None


def recorded_specs(campaign: Campaign) -> list[RunSpec]:
    """Every run the campaign's study holds (grid and proposals), in the order they were asked."""
    study = _existing_study(campaign, campaign.name)
    if study is None:
        return []
    return [RunSpec(**json.loads(t.user_attrs["spec"])) for t in study.get_trials(deepcopy=False)
            if RECORD_KEYS <= set(t.user_attrs)]


def searched_rates(campaign: Campaign) -> dict[str, float]:
    """The learning rate an earlier [lr_search] chose for each preset whose search is complete (read only)."""
    from optuna.trial import TrialState

    if campaign.lr_search is None:
        return {}
    rates = {}
    for preset in campaign.grid["presets"]:
        study = _existing_study(campaign, f"{campaign.name}/lr/{preset}")
        if study is None:
            continue
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete and len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]) >= campaign.lr_search["trials"]:
            rates[preset] = float(study.best_params["lr"])
    return rates


class RunRecordBook:
    """The campaign's runs as Optuna trials: asked when proposed, told when they end."""

    def __init__(self, campaign: Campaign) -> None:
        import optuna

        self.campaign = campaign
        self.study = _study(campaign, campaign.name)
        self.optuna = optuna
        self.trials: dict[str, Any] = {}
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False):
            if RECORD_KEYS <= set(trial.user_attrs):
                self.trials[trial.user_attrs["run_id"]] = trial
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                # A record cut short by a kill (written by an older smslab one attribute at a time).
                self.study.tell(trial.number, state=TrialState.FAIL)

    def specs(self, up_to_round: int | None = None) -> list[RunSpec]:
        """The recorded runs in the order they were asked; with ``up_to_round``, those of rounds 0..k."""
        ordered = sorted(self.trials.values(), key=lambda t: t.number)
        return [RunSpec(**json.loads(t.user_attrs["spec"])) for t in ordered
                if up_to_round is None or int(t.user_attrs.get("round", 0)) <= up_to_round]

    def reasons(self) -> dict[str, str]:
        return {run_id: str(t.user_attrs.get("reason", "")) for run_id, t in self.trials.items()}

    def recorded_proposals(self, round_number: int) -> list[dict[str, Any]]:
        """The runs the record says were proposed for ``round_number``, as proposals."""
        trials = sorted((t for t in self.trials.values() if int(t.user_attrs.get("round", 0)) == round_number),
                        key=lambda t: t.number)
        out = []
        for t in trials:
            spec = json.loads(t.user_attrs["spec"])
            tokens = int(t.params.get("tokens", 0))
            out.append({"run_id": t.user_attrs["run_id"], "spec": spec, "reason": t.user_attrs.get("reason", ""),
                        "N": t.user_attrs.get("N"), "U_D": t.user_attrs.get("U_D"), "tokens": tokens,
                        "cost_flops": FLOPS_PER_PARAM_TOKEN * float(t.user_attrs.get("N") or 0) * tokens,
                        "recorded": True})
        return out

    def last_round(self) -> int:
        return max((int(t.user_attrs.get("round", 0)) for t in self.trials.values()), default=0)

    def ask(self, spec: RunSpec, round_number: int, reason: str, n_params: int, unique_tokens: int,
            tokens: int) -> None:
        run_id = spec.run_id()
        if run_id in self.trials:
            return
        from optuna.distributions import CategoricalDistribution, FloatDistribution
        from optuna.trial import TrialState, create_trial

        from trainer.presets import PRESETS

        # One write: the whole record of the run lands in the study, or none of it (a kill cannot leave
        # half a record). The same distributions for every trial (Optuna refuses a categorical that changes).
        trial = create_trial(
            state=TrialState.RUNNING,
            params={"preset": spec.preset, "fraction": spec.fraction, "tokens": float(tokens)},
            distributions={"preset": CategoricalDistribution(sorted(PRESETS)),
                           "fraction": FloatDistribution(1e-9, 1.0, log=True),
                           "tokens": FloatDistribution(1.0, 1e18, log=True)},
            user_attrs={"run_id": run_id, "spec": json.dumps(asdict(spec), sort_keys=True), "round": round_number,
                        "reason": reason, "N": n_params, "U_D": unique_tokens},
        )
        self.study.add_trial(trial)
        self.trials[run_id] = next(t for t in reversed(self.study.get_trials(deepcopy=False))
                                   if t.user_attrs.get("run_id") == run_id)

    def tell(self, states: Sequence[RunState]) -> None:
        from optuna.trial import TrialState

        for state in states:
            trial = self.trials.get(state.run_id)
            if trial is None or trial.state != TrialState.RUNNING:
                continue
            if state.status == "finished" and state.final_loss is not None:
                self.study.tell(trial.number, state.final_loss)
            elif state.status == "failed":
                self.study.tell(trial.number, state=TrialState.FAIL)
            else:
                continue
            self.trials[state.run_id] = self.study.trials[trial.number]


def run_cost_flops(campaign: Campaign, state: RunState) -> float:
    """6·N·D of what the run trained (all of it when finished; up to its step otherwise)."""
    prepared = prepare(state.spec, campaign.corpus)
    if state.status == "finished":
        tokens = prepared.plan.total_tokens
    else:
        tokens = state.step * prepared.plan.tokens_per_step
    return FLOPS_PER_PARAM_TOKEN * prepared.n_params * tokens


def learning_rates(campaign: Campaign, say: Say) -> dict[str, float]:
    """Per preset, the peak learning rate an Optuna TPE study found best over short runs."""
    import optuna
    from optuna.trial import TrialState

    search = campaign.lr_search
    if search is None:
        return {}
    chosen: dict[str, float] = {}
    lr_campaign = dataclasses.replace(campaign, name=f"{campaign.name}-lr-search")
    parallel = max(1, int(campaign.launcher.get("max_parallel", 1)))
    for preset in campaign.grid["presets"]:
        study = _study(campaign, f"{campaign.name}/lr/{preset}", optuna.samplers.TPESampler(seed=0))
        while True:
            for t in study.get_trials(deepcopy=False):
                if t.state == TrialState.RUNNING and "lr" not in t.params:  # asked, then killed before its rate
                    study.tell(t.number, state=TrialState.FAIL)
            pending = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            done = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
            while len(pending) + len(done) < search["trials"] and len(pending) < parallel:
                trial = study.ask()
                trial.suggest_float("lr", search["low"], search["high"], log=True)
                pending.append(study.trials[trial.number])
            if not pending:
                break
            specs = {t.number: _lr_spec(campaign, preset, t.params["lr"]) for t in pending}
            states = launch(lr_campaign, list(specs.values()))
            for number, state in zip(specs, states, strict=True):
                if state.status == "finished" and state.final_loss is not None and math.isfinite(state.final_loss):
                    study.tell(number, state.final_loss)
                else:
                    study.tell(number, state=TrialState.FAIL)
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if not complete:
            raise CampaignError(f"every learning-rate trial of preset {preset} failed; see {campaign.folder / 'runs'}")
        chosen[preset] = float(study.best_params["lr"])
        say(f"learning rate for {preset}: {chosen[preset]:.3g} (best val loss {study.best_value:.4f} "
            f"over {len(complete)} trials)")
    return chosen


def lr_search_flops(campaign: Campaign) -> float:
    """6·N·D of every learning-rate trial the campaign ran: part of its compute budget."""
    if campaign.lr_search is None:
        return 0.0
    lr_campaign = dataclasses.replace(campaign, name=f"{campaign.name}-lr-search")
    spent = 0.0
    for preset in campaign.grid["presets"]:
        study = _existing_study(campaign, f"{campaign.name}/lr/{preset}")
        for trial in study.get_trials(deepcopy=False) if study is not None else ():
            if "lr" in trial.params:
                state = read_run_state(lr_campaign, _lr_spec(campaign, preset, trial.params["lr"]))
                spent += run_cost_flops(campaign, state)
    return spent


def _lr_spec(campaign: Campaign, preset: str, lr: float) -> RunSpec:
    search = campaign.lr_search or {}
    final_lr = campaign.train.get("final_lr", RunSpec.__dataclass_fields__["final_lr"].default)
    ratio = final_lr / campaign.train.get("lr", RunSpec.__dataclass_fields__["lr"].default)
    fields = {**campaign.train, "preset": preset, "fraction": search["fraction"], "tokens": search["tokens"],
              "epochs": None, "lr": lr, "final_lr": lr * ratio}
    return RunSpec(**fields)


def with_rate(spec: RunSpec, rate: float) -> RunSpec:
    """``spec`` at peak learning rate ``rate``, its final rate scaled alike. Every spec of a campaign gets
    its rate here, so the same run always gets the same floats (and so the same run id)."""
    if rate == spec.lr:
        return spec
    return dataclasses.replace(spec, lr=rate, final_lr=rate * (spec.final_lr / spec.lr))


def with_learning_rate(spec: RunSpec, rates: dict[str, float]) -> RunSpec:
    return with_rate(spec, rates[spec.preset]) if spec.preset in rates else spec


def run_campaign(campaign: Campaign, say: Say = print) -> CampaignOutcome:
    """Run (or resume) the campaign until N* is pinned down or its budget is spent."""
    from sweeps.cli import progress_printer

    if campaign.plan is None:
        from sweeps.spec import SpecError

        raise SpecError(f"{campaign.source}: a campaign needs a [plan] table (target_flops, budget_flops, ...)")
    plan = campaign.plan
    rates = learning_rates(campaign, say)
    searched_flops = lr_search_flops(campaign)
    book = RunRecordBook(campaign)
    for spec in campaign.runs:
        spec = with_learning_rate(spec, rates)
        prepared = prepare(spec, campaign.corpus)
        book.ask(spec, 0, "grid", prepared.n_params, prepared.plan.unique_tokens, prepared.plan.total_tokens)
    rounds: list[RoundResult] = []
    round_number = 0
    resumed_from = book.last_round()
    if resumed_from:
        say(f"resuming: the study holds {len(book.trials)} runs up to proposal round {resumed_from}")
    while True:
        # A restarted campaign replays its rounds: the same runs (finished ones are skipped) give
        # the same fits and proposals, so it picks up where it stopped.
        specs = book.specs(up_to_round=round_number)
        say(f"round {round_number}: {len(specs)} runs ({sum(1 for s in specs if read_run_state(campaign, s).status == 'finished')} "
            "finished before)")
        states = launch(campaign, specs, progress=progress_printer(len(specs)))
        book.tell(states)
        result = _fit_round(campaign, book, states, round_number, say, searched_flops)
        rounds.append(result)
        if result.stop is not None:
            stop = result.stop
            break
        round_number += 1
        for proposal in result.proposals:
            spec = RunSpec(**proposal["spec"])
            book.ask(spec, round_number, proposal["reason"], proposal["N"], proposal["U_D"], proposal["tokens"])
    report = _final_report(campaign, rounds, stop)
    _write_text(campaign.folder / "report.md", report)
    _log_campaign_artifacts(campaign, campaign.folder / "report.md", None)
    return CampaignOutcome(tuple(rounds), stop, report)


def _finished_points(campaign: Campaign, states: Sequence[RunState]):  # type: ignore[no-untyped-def]
    from lawfit.points import LossPoints
    from storage.tracking import Tracker

    finished = {s.run_id for s in states if s.status == "finished"}
    frame = Tracker(tracking_uri_of(campaign)).read_points(campaign.name)
    frame = frame[frame["run_id"].isin(finished)]
    if campaign.plan is not None and campaign.plan["points"] == "final":
        frame = frame.sort_values(["run_id", "D"]).groupby("run_id", as_index=False).tail(1)
    return LossPoints.from_arrays(frame["N"].to_numpy(), frame["D"].to_numpy(), frame["loss"].to_numpy(),
                                  U_D=frame["U_D"].to_numpy(), run_id=frame["run_id"].to_numpy(),
                                  source=f"campaign {campaign.name}")


def _fit_round(campaign: Campaign, book: RunRecordBook, states: Sequence[RunState], number: int,
               say: Say, searched_flops: float = 0.0) -> RoundResult:
    from lawfit.bootstrap import bootstrap_fit
    from lawfit.fit import FitOptions, fit_law
    from lawfit.planning import plan_compute_optimal
    from lawfit.report import comparison_table, plan_report
    from lawfit.result import best_fit

    plan = campaign.plan
    assert plan is not None
    folder = campaign.folder / "rounds" / f"round-{number:02d}"
    (folder / "fits").mkdir(parents=True, exist_ok=True)
    finished = [s for s in states if s.status == "finished"]
    failed = [s for s in states if s.status == "failed"]
    for state in failed:
        say(f"run {state.run_id} failed and is left out: {state.error or 'see its state.json'}")
    # The campaign's compute: every run it launched (failed ones up to where they stopped) and its lr search.
    spent = sum(run_cost_flops(campaign, s) for s in states) + searched_flops
    sizes = len({s.spec.preset for s in finished})
    if len(finished) < 3 or sizes < 2:
        raise CampaignError(f"round {number}: only {len(finished)} finished runs over {sizes} model sizes; "
                            "a law needs at least 3 runs over 2 sizes (see `smslab sweep status`)")
    points = _finished_points(campaign, states)
    sizes = len(points.sizes)
    if points.n_runs < 3 or sizes < 2:
        raise CampaignError(f"round {number}: MLflow holds curves of only {points.n_runs} finished runs over {sizes} "
                            f"model sizes ({tracking_uri_of(campaign)}); a law needs at least 3 runs over 2 sizes")
    loso = sizes >= 3
    say(f"round {number}: fitting {len(plan['laws'])} laws to {len(points)} points of {points.n_runs} runs "
        f"({sizes} sizes) ...")
    fits = []
    for law in plan["laws"]:
        started = time.perf_counter()
        fit = fit_law(points, law, FitOptions(leave_one_size_out=loso))
        fit.write(folder / "fits" / f"{law}.json")
        fits.append(fit)
        say(f"      {law:<17} objective {fit.objective:.5g}  ({time.perf_counter() - started:.1f} s)")
    table = comparison_table(fits, points)

    best = best_fit(fits)
    say(f"round {number}: {best.law} {'predicts left-out sizes best' if loso else 'fits best'}; "
        f"bootstrapping it ({plan['bootstrap']} resamples of the runs) ...")
    best = best.with_bootstrap(bootstrap_fit(best, points, plan["bootstrap"], FitOptions(), level=plan["level"], seed=number))
    best.write(folder / "fits" / f"{best.law}.json")
    unique = float(plan["unique_tokens"]) or _largest_unique_tokens(campaign)
    compute_plan = plan_compute_optimal(best, plan["target_flops"], unique)
    lo, hi = compute_plan.interval["n_opt"] if compute_plan.interval else (math.nan, math.nan)
    ratio = hi / lo if compute_plan.interval and lo > 0 else None
    say(f"round {number}: N* = {compute_plan.n_opt:.3g}"
        + (f" [{lo:.3g}, {hi:.3g}] (upper/lower {ratio:.3g})" if ratio else "")
        + f"; spent {spent:.3g} of {plan['budget_flops']:.3g} FLOPs")
    stop = _stop_reason(plan, ratio, spent, number)
    proposals: list[dict[str, Any]] = []
    if stop is None:
        # A restarted campaign takes the proposals this round saved (before any was recorded in the study),
        # else those its record holds, else it proposes.
        proposals = (_saved_proposals(folder / "proposals.json") or book.recorded_proposals(number + 1)
                     or _propose(campaign, book, number, best, compute_plan, plan["budget_flops"] - spent,
                                 rates_of(book), say))
        if not proposals:
            stop = "no proposal fits in the remaining compute budget"
    if stop is None:
        next_step = ["", f"Proposals, launched in round {number + 1}:",
                     *(f"- {p['spec']['preset']} fraction {p['spec']['fraction']:g}, {p['tokens']:,} tokens "
                       f"({p['reason']}; {p['cost_flops']:.3g} FLOPs)" for p in proposals)]
        for p in proposals:
            say(f"round {number}: proposing {p['spec']['preset']} fraction {p['spec']['fraction']:g}, "
                f"{p['tokens']:,} tokens ({p['reason']})")
    else:
        next_step = ["", f"Stopped: {stop}."]
    report = "\n".join([
        f"# Campaign {campaign.name}, round {number}", "",
        f"runs finished {len(finished)}, failed {len(failed)}; compute spent {spent:.4g} of {plan['budget_flops']:.4g} FLOPs"
        + (f" ({searched_flops:.4g} of it by the learning-rate search)" if searched_flops else ""),
        "", "```", table, "```", "", "```", plan_report(best, compute_plan), "```", "",
        f"N* interval upper/lower: {ratio:.3g} (tolerance {plan['tolerance']:g})" if ratio else "no interval",
        *next_step, "",
    ])
    _write_text(folder / "comparison.txt", table + "\n")
    _write_text(folder / "plan.json", json.dumps(compute_plan.to_dict(), indent=2))
    _write_text(folder / "proposals.json", json.dumps(proposals, indent=2))
    _write_text(folder / "report.md", report)
    _log_campaign_artifacts(campaign, folder, f"rounds/round-{number:02d}")
    return RoundResult(number, len(finished), len(failed), spent, best.law, compute_plan.n_opt,
                       (lo, hi) if compute_plan.interval else None, ratio, tuple(proposals), folder, stop,
                       compute_plan.to_dict())


def _saved_proposals(path: Path) -> list[dict[str, Any]]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return saved if isinstance(saved, list) else []


def _stop_reason(plan: Mapping[str, Any], ratio: float | None, spent: float, number: int) -> str | None:
    if ratio is not None and ratio <= plan["tolerance"]:
        return f"N*'s interval is within the tolerance (upper/lower {ratio:.3g} <= {plan['tolerance']:g})"
    if spent >= plan["budget_flops"]:
        return f"the compute budget is spent ({spent:.3g} of {plan['budget_flops']:.3g} FLOPs)"
    if number >= plan["max_rounds"]:
        return f"max_rounds ({plan['max_rounds']}) reached"
    return None


def rates_of(book: RunRecordBook) -> dict[str, float]:
    """The learning rate each preset's runs use (from the grid's recorded specs)."""
    rates: dict[str, float] = {}
    for spec in book.specs():
        rates.setdefault(spec.preset, spec.lr)
    return rates


def _largest_unique_tokens(campaign: Campaign) -> float:
    spec = campaign.runs[0]
    return float(max(prepare(dataclasses.replace(spec, fraction=f), campaign.corpus).plan.unique_tokens
                     for f in campaign.grid["fractions"]))


def _candidate_specs(campaign: Campaign, rates: dict[str, float]) -> list[RunSpec]:
    plan = campaign.plan
    assert plan is not None
    epochs = list(plan["epochs"]) or sorted({*campaign.grid.get("epochs", ()), 2 * max(campaign.grid.get("epochs", (1,)))})
    out = []
    for preset in plan["presets"]:
        base = campaign.runs[0]
        for fraction in campaign.grid["fractions"]:
            for e in epochs:
                spec = dataclasses.replace(base, preset=preset, fraction=fraction, epochs=float(e), tokens=None)
                out.append(with_learning_rate(spec, rates))
    return out


def _propose(campaign: Campaign, book: RunRecordBook, number: int, fit, compute_plan,  # type: ignore[no-untyped-def]
             remaining_flops: float, rates: dict[str, float], say: Say) -> list[dict[str, Any]]:
    from lawfit.design import Candidate, choose_runs
    from trainer.run import RunError

    plan = campaign.plan
    assert plan is not None
    if remaining_flops <= 0:
        return []
    known = {spec.run_id() for spec in book.specs(up_to_round=number)}
    proposals: list[dict[str, Any]] = []

    def describe(spec: RunSpec, reason: str, extra: dict[str, Any]) -> dict[str, Any]:
        prepared = prepare(spec, campaign.corpus)
        cost = FLOPS_PER_PARAM_TOKEN * prepared.n_params * prepared.plan.total_tokens
        return {"run_id": spec.run_id(), "spec": asdict(spec), "reason": reason, "N": prepared.n_params,
                "U_D": prepared.plan.unique_tokens, "tokens": prepared.plan.total_tokens, "cost_flops": cost, **extra}

    # The predicted optimum: the preset nearest N*, trained for the target budget.
    base = campaign.runs[0]
    sizes = {p: prepare(dataclasses.replace(base, preset=p, epochs=1.0, tokens=None), campaign.corpus).n_params
             for p in plan["presets"]}
    nearest = min(sizes, key=lambda p: abs(math.log(sizes[p]) - math.log(compute_plan.n_opt)))
    unique = compute_plan.unique_tokens
    fractions = {f: prepare(dataclasses.replace(base, fraction=f, epochs=1.0, tokens=None), campaign.corpus).plan.unique_tokens
                 for f in campaign.grid["fractions"]}
    fraction = min(fractions, key=lambda f: abs(math.log(fractions[f]) - math.log(unique))) if unique else max(fractions)
    tokens = int(plan["target_flops"] / (FLOPS_PER_PARAM_TOKEN * sizes[nearest]))
    optimum = dataclasses.replace(base, preset=nearest, fraction=fraction, epochs=None, tokens=tokens)
    optimum = with_learning_rate(optimum, rates)
    label = f"the predicted optimum ({nearest}, {tokens:,} tokens on fraction {fraction:g})"
    try:
        candidate = describe(optimum, "predicted optimum", {"n_opt": compute_plan.n_opt})
    except RunError as exc:  # a budget the corpus or preset cannot run (e.g. fewer tokens than one step)
        say(f"round {number}: {label} is not proposed: {exc}")
    else:
        if optimum.run_id() in known:
            say(f"round {number}: {label} was run already")
        elif candidate["cost_flops"] > remaining_flops:
            say(f"round {number}: {label} is not proposed: it costs {candidate['cost_flops']:.3g} FLOPs, "
                f"{remaining_flops:.3g} are left in the budget")
        else:
            proposals.append(candidate)
            remaining_flops -= candidate["cost_flops"]
            known.add(optimum.run_id())
    # The runs that narrow N*'s interval most per FLOP.
    count = plan["runs_per_round"] - len(proposals)
    if count > 0 and fit.bootstrap is not None:
        pool = {}
        for spec in _candidate_specs(campaign, rates):
            if spec.run_id() in known:
                continue
            try:
                pool[spec.run_id()] = describe(spec, "narrows N*", {})
            except RunError:  # combinations the corpus cannot run are not candidates
                continue
        candidates = [Candidate(k, float(v["N"]), float(v["tokens"]), float(v["U_D"])) for k, v in pool.items()]
        chosen = choose_runs(fit, candidates, compute_plan.flops, compute_plan.unique_tokens, count, remaining_flops)
        for choice in chosen:
            entry = pool[choice.candidate.key]
            entry["variance_reduction_log_n_star"] = choice.variance_reduction
            entry["log_n_star_sd_after"] = choice.log_n_star_sd_after
            proposals.append(entry)
    return proposals


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _log_campaign_artifacts(campaign: Campaign, path: Path, artifact_path: str | None) -> None:
    from storage.tracking import RunRecord, Tracker

    tracker = Tracker(tracking_uri_of(campaign))
    run_id = tracker.open_run(RunRecord(f"campaign-{campaign.name}", campaign.name,
                                        {k: json.dumps(v) if isinstance(v, list) else v for k, v in (campaign.plan or {}).items()},
                                        kind="campaign"))
    if path.is_dir():
        tracker.log_artifacts(run_id, path, artifact_path)
    else:
        tracker.log_artifact(run_id, path, artifact_path)


def _recommendation(plan: Mapping[str, Any]) -> str:
    interval = plan.get("interval") or {}

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


def _final_report(campaign: Campaign, rounds: Sequence[RoundResult], stop: str) -> str:
    last = rounds[-1]
    lines = [f"# Campaign {campaign.name}", "", f"stopped: {stop}", "",
             f"{'round':>5} {'finished':>8} {'failed':>6} {'spent FLOPs':>12} {'law':<17} {'N*':>10} {'interval':>24} {'hi/lo':>7}"]
    for r in rounds:
        interval = f"[{r.n_opt_interval[0]:.3g}, {r.n_opt_interval[1]:.3g}]" if r.n_opt_interval else "-"
        ratio = f"{r.ratio:.3g}" if r.ratio else "-"
        lines.append(f"{r.number:>5} {r.runs_finished:>8} {r.runs_failed:>6} {r.spent_flops:>12.4g} {r.law:<17} "
                     f"{r.n_opt:>10.4g} {interval:>24} {ratio:>7}")
    lines += ["", f"Recommendation (round {last.number}, {last.law} law): {_recommendation(last.plan)}",
              f"(details: {last.folder / 'report.md'})", ""]
    lines += [(last.folder / "report.md").read_text()]
    return "\n".join(lines)
