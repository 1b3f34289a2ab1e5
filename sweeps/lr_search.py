"""``[lr_search]``: the peak learning rate per preset, chosen by an Optuna TPE study over short runs.

Each preset gets a study ``<campaign>/lr/<preset>`` in the campaign's record;
its trials are runs of ``[lr_search] tokens`` on ``[lr_search] fraction``,
launched like any run (their own MLflow experiment, ``<campaign>-lr-search``),
told their final validation loss. The grid and the proposals then use each
preset's best rate. The search's compute counts against the campaign budget.
"""

from __future__ import annotations

import dataclasses
import math

from sweeps.launch import launch
from sweeps.progress import Say
from sweeps.record import existing_study, open_study
from sweeps.runs import CampaignError, read_run_state, run_cost_flops
from sweeps.spec import Campaign
from trainer.spec import RunSpec


def _lr_campaign(campaign: Campaign) -> Campaign:
    return dataclasses.replace(campaign, name=f"{campaign.name}-lr-search")


def lr_trial_spec(campaign: Campaign, preset: str, lr: float) -> RunSpec:
    """The run of one learning-rate trial: the [train] fields at peak ``lr``, the final rate scaled alike."""
    search = campaign.lr_search
    assert search is not None
    final_lr = float(campaign.train.get("final_lr", RunSpec.__dataclass_fields__["final_lr"].default))  # type: ignore[arg-type]
    ratio = final_lr / float(campaign.train.get("lr", RunSpec.__dataclass_fields__["lr"].default))  # type: ignore[arg-type]
    fields = {**campaign.train, "preset": preset, "fraction": search.fraction, "tokens": search.tokens,
              "epochs": None, "lr": lr, "final_lr": lr * ratio}
    return RunSpec(**fields)  # type: ignore[arg-type]


def search_learning_rates(campaign: Campaign, say: Say) -> dict[str, float]:
    """Run (or resume) the search for every grid preset; returns each preset's best peak rate."""
    import optuna
    from optuna.trial import TrialState

    search = campaign.lr_search
    if search is None:
        return {}
    chosen: dict[str, float] = {}
    parallel = campaign.launcher.max_parallel
    for preset in campaign.grid.presets:
        study = open_study(campaign, f"{campaign.name}/lr/{preset}", optuna.samplers.TPESampler(seed=0))
        while True:
            for t in study.get_trials(deepcopy=False):
                if t.state == TrialState.RUNNING and "lr" not in t.params:  # asked, then killed before its rate
                    study.tell(t.number, state=TrialState.FAIL)
            pending = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
            done = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
            while len(pending) + len(done) < search.trials and len(pending) < parallel:
                trial = study.ask()
                trial.suggest_float("lr", search.low, search.high, log=True)
                pending.append(study.trials[trial.number])
            if not pending:
                break
            specs = {t.number: lr_trial_spec(campaign, preset, t.params["lr"]) for t in pending}
            states = launch(_lr_campaign(campaign), list(specs.values()))
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


def searched_rates(campaign: Campaign) -> dict[str, float]:
    """The rate an earlier search chose for each preset whose search is complete (read only: nothing launches)."""
    from optuna.trial import TrialState

    if campaign.lr_search is None:
        return {}
    rates = {}
    for preset in campaign.grid.presets:
        study = existing_study(campaign, f"{campaign.name}/lr/{preset}")
        if study is None:
            continue
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
        if complete and len(ended) >= campaign.lr_search.trials:
            rates[preset] = float(study.best_params["lr"])
    return rates


def lr_search_flops(campaign: Campaign) -> float:
    """6·N·D of every learning-rate trial the campaign ran: part of its compute budget (read only)."""
    if campaign.lr_search is None:
        return 0.0
    spent = 0.0
    for preset in campaign.grid.presets:
        study = existing_study(campaign, f"{campaign.name}/lr/{preset}")
        for trial in study.get_trials(deepcopy=False) if study is not None else ():
            if "lr" in trial.params:
                state = read_run_state(_lr_campaign(campaign), lr_trial_spec(campaign, preset, trial.params["lr"]))
                spent += run_cost_flops(campaign, state)
    return spent
