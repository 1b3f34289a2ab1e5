"""The campaign's record in Optuna: one study per campaign, every run a trial.

A run is asked when it is proposed (the grid in round 0) and told its final
loss when it finishes, or FAIL. The trial's user attributes hold the run
spec, the round and why it was proposed — so after a restart the campaign
relaunches what it had proposed (finished runs are skipped) and carries on.
The studies live in ``optuna.db`` beside the tracking store, in the campaign
folder; the learning-rate search keeps one study per preset there too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sweeps.proposals import Proposal
from sweeps.runs import RunState
from sweeps.spec import Campaign
from trainer.spec import RunSpec

RECORD_KEYS = {"run_id", "spec", "round", "reason", "N", "U_D"}  # a run's whole record in its Optuna trial


def optuna_storage(campaign: Campaign) -> str:
    """The Optuna RDB storage beside the tracking store: a SQLite file in the campaign folder."""
    return f"sqlite:///{(campaign.folder / 'optuna.db').resolve()}"


def open_study(campaign: Campaign, name: str, sampler: Any = None):  # type: ignore[no-untyped-def]
    """The study ``name`` of the campaign's record, created when missing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    campaign.folder.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(study_name=name, storage=optuna_storage(campaign), load_if_exists=True,
                               direction="minimize", sampler=sampler)


def existing_study(campaign: Campaign, name: str):  # type: ignore[no-untyped-def]
    """The study ``name`` if the campaign's record holds it (read only: nothing is created); else None."""
    import optuna

    if not (campaign.folder / "optuna.db").is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=optuna_storage(campaign))
    except KeyError:  # no such study
        return None


def _spec_of(trial: Any) -> RunSpec:
    return RunSpec.from_dict(json.loads(trial.user_attrs["spec"]), f"trial {trial.number} of the campaign's record")


def recorded_specs(campaign: Campaign) -> list[RunSpec]:
    """Every run the campaign's study holds (grid and proposals), in the order they were asked (read only)."""
    study = existing_study(campaign, campaign.name)
    if study is None:
        return []
    return [_spec_of(t) for t in study.get_trials(deepcopy=False) if RECORD_KEYS <= set(t.user_attrs)]


class CampaignRecord:
    """The campaign's runs as Optuna trials: asked when proposed, told when they end."""

    def __init__(self, campaign: Campaign) -> None:
        from optuna.trial import TrialState

        self.campaign = campaign
        self.study = open_study(campaign, campaign.name)
        self.trials: dict[str, Any] = {}
        for trial in self.study.get_trials(deepcopy=False):
            if RECORD_KEYS <= set(trial.user_attrs):
                self.trials[trial.user_attrs["run_id"]] = trial
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                # A record cut short by a kill (written by an older smslab one attribute at a time).
                self.study.tell(trial.number, state=TrialState.FAIL)

    def specs(self, up_to_round: int | None = None) -> list[RunSpec]:
        """The recorded runs in the order they were asked; with ``up_to_round``, those of rounds 0..k."""
        ordered = sorted(self.trials.values(), key=lambda t: t.number)
        return [_spec_of(t) for t in ordered if up_to_round is None or int(t.user_attrs.get("round", 0)) <= up_to_round]

    def recorded_proposals(self, round_number: int) -> list[Proposal]:
        """The runs the record says were proposed for ``round_number``."""
        trials = sorted((t for t in self.trials.values() if int(t.user_attrs.get("round", 0)) == round_number),
                        key=lambda t: t.number)
        return [Proposal(_spec_of(t), str(t.user_attrs.get("reason", "")), int(t.user_attrs["N"]),
                         int(t.user_attrs["U_D"]), int(t.params.get("tokens", 0))) for t in trials]

    def last_round(self) -> int:
        return max((int(t.user_attrs.get("round", 0)) for t in self.trials.values()), default=0)

    def grid_rates(self) -> dict[str, float]:
        """The learning rate each preset's recorded runs use (the grid's, asked first)."""
        rates: dict[str, float] = {}
        for spec in self.specs():
            rates.setdefault(spec.preset, spec.lr)
        return rates

    def ask(self, proposal: Proposal, round_number: int) -> None:
        """Record ``proposal`` as a trial of ``round_number`` (nothing when the run is recorded already)."""
        if proposal.run_id in self.trials:
            return
        from optuna.distributions import CategoricalDistribution, FloatDistribution
        from optuna.trial import TrialState, create_trial

        from trainer.presets import PRESETS

        spec = proposal.spec
        # One write: the whole record of the run lands in the study, or none of it (a kill cannot leave
        # half a record). The same distributions for every trial (Optuna refuses a categorical that changes).
        trial = create_trial(
            state=TrialState.RUNNING,
            params={"preset": spec.preset, "fraction": spec.fraction, "tokens": float(proposal.tokens)},
            distributions={"preset": CategoricalDistribution(sorted(PRESETS)),
                           "fraction": FloatDistribution(1e-9, 1.0, log=True),
                           "tokens": FloatDistribution(1.0, 1e18, log=True)},
            user_attrs={"run_id": proposal.run_id, "spec": json.dumps(spec.to_dict(), sort_keys=True),
                        "round": round_number, "reason": proposal.reason, "N": proposal.n_params,
                        "U_D": proposal.unique_tokens},
        )
        self.study.add_trial(trial)
        self.trials[proposal.run_id] = next(t for t in reversed(self.study.get_trials(deepcopy=False))
                                            if t.user_attrs.get("run_id") == proposal.run_id)

    def tell(self, states: Sequence[RunState]) -> None:
        """Record each finished run's final loss, each failed run's FAIL."""
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
