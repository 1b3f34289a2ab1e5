"""The optional learning-rate search: an Optuna TPE study per preset over short real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.tracking import Tracker
from sweeps.lr_search import lr_search_flops, search_learning_rates
from sweeps.proposals import with_learning_rate
from sweeps.runs import tracking_uri_of
from sweeps.spec import load_campaign

SPEC = """
[campaign]
name = "lr"
corpus = "{corpus}"
folder = "campaign"

[grid]
presets = ["tiny-0.1m"]
fractions = [0.25]
epochs = [1]

[train]
context = 32
batch_tokens = 512
micro_batch = 16
eval_every_tokens = 4096

[launcher]
max_parallel = 2

[lr_search]
trials = 3
tokens = 4096
low = 1e-4
high = 3e-2
"""


@pytest.mark.slow
def test_learning_rate_search_runs_tpe_trials_and_the_grid_uses_the_best_rate(small_corpus: Path, tmp_path: Path):
    import optuna

    spec = tmp_path / "lr.toml"
    spec.write_text(SPEC.format(corpus=small_corpus))
    campaign = load_campaign(spec)
    said: list[str] = []
    rates = search_learning_rates(campaign, said.append)
    study = optuna.load_study(study_name="lr/lr/tiny-0.1m", storage=f"sqlite:///{campaign.folder / 'optuna.db'}")
    trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 3 and len({t.params["lr"] for t in trials}) == 3
    assert all(1e-4 <= t.params["lr"] <= 3e-2 for t in trials)
    assert rates == {"tiny-0.1m": study.best_params["lr"]}
    assert any("learning rate for tiny-0.1m" in line for line in said)
    # The trials are real runs, recorded in their own MLflow experiment (kept out of the law fits).
    assert len(Tracker(tracking_uri_of(campaign)).run_statuses("lr-lr-search")) == 3
    assert Tracker(tracking_uri_of(campaign)).run_statuses("lr") == {}
    grid_spec = with_learning_rate(campaign.runs[0], rates)
    assert grid_spec.lr == rates["tiny-0.1m"]
    assert grid_spec.final_lr / grid_spec.lr == pytest.approx(campaign.runs[0].final_lr / campaign.runs[0].lr)
    # Its compute counts against the campaign's budget: 3 trials x 6·N·4096 tokens.
    n_params = campaign.prepare(campaign.runs[0]).n_params
    assert lr_search_flops(campaign) == pytest.approx(3 * 6 * n_params * 4096)
    # Asking again finds the study complete: nothing is trained twice.
    assert search_learning_rates(campaign, said.append) == rates
    assert len(study.get_trials()) == 3
