"""Campaigns end to end: grid → fits → plan → proposals → launch, with Optuna's record, and a kill and restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.spec import load_campaign

SPEC = """
[campaign]
name = "loop"
corpus = "{corpus}"
folder = "campaign"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m", "tiny-1m"]
fractions = [0.25]
epochs = [1, 3]

[train]
context = 32
batch_tokens = 512
micro_batch = 16
eval_every_tokens = 2048

[launcher]
kind = "local"
max_parallel = 2
timeout_min = 30

[plan]
target_flops = 3e11
tolerance = 1.0001
budget_flops = 1e13
max_rounds = 1
runs_per_round = 2
bootstrap = 20
laws = ["chinchilla", "dprime"]
points = "curve"
"""


def run_campaign_cli(spec: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", "campaign", "run", str(spec)],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_campaign_fits_plans_proposes_and_survives_being_killed(small_corpus: Path, tmp_path: Path):
    import optuna

    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC.format(corpus=small_corpus))
    campaign = load_campaign(spec)
    runs = campaign.folder / "runs"

    # Kill the campaign process once two runs have finished; its jobs keep training.
    proc = subprocess.Popen([sys.executable, "-m", "smslab", "campaign", "run", str(spec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    finished: set[str] = set()
    while len(finished) < 2:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.5)
        finished = {p.parent.name for p in runs.glob("*/state.json") if json.loads(p.read_text() or "{}").get("status") == "finished"}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    jobs_before = json.loads((campaign.folder / "jobs.json").read_text())

    done = run_campaign_cli(spec)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs_after = json.loads((campaign.folder / "jobs.json").read_text())
    for run_id in finished:
        assert jobs_after[run_id]["job_id"] == jobs_before[run_id]["job_id"]  # not trained again

    # Every law was fitted and compared, a plan made, proposals launched in round 1.
    assert "chinchilla" in done.stdout and "dprime" in done.stdout
    assert "compute-optimal plan" in done.stdout and "N*" in done.stdout
    round0 = campaign.folder / "rounds" / "round-00"
    assert (round0 / "fits" / "chinchilla.json").is_file() and (round0 / "plan.json").is_file()
    proposals = json.loads((round0 / "proposals.json").read_text())
    assert 1 <= len(proposals) <= 2
    assert (campaign.folder / "rounds" / "round-01" / "report.md").is_file()
    assert "max_rounds (1) reached" in done.stdout

    # Optuna holds every run: the grid's 6 and the proposals, each told its final loss.
    study = optuna.load_study(study_name="loop", storage=f"sqlite:///{campaign.folder / 'optuna.db'}")
    trials = study.get_trials()
    assert len(trials) == 6 + len(proposals)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["reason"] for t in trials} >= {"grid"}
    assert {t.user_attrs["run_id"] for t in trials} >= {p["run_id"] for p in proposals}
    assert sorted(t.user_attrs["round"] for t in trials)[-1] == 1

    # Running it once more trains nothing and asks nothing new.
    again = run_campaign_cli(spec)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((campaign.folder / "jobs.json").read_text()) == jobs_after
    assert len(optuna.load_study(study_name="loop", storage=f"sqlite:///{campaign.folder / 'optuna.db'}").get_trials()) == len(trials)


@pytest.mark.slow
def test_a_campaign_whose_runs_all_fail_stops_with_a_message_not_a_traceback(small_corpus: Path, tmp_path: Path):
    spec = tmp_path / "campaign.toml"
    text = SPEC.format(corpus=small_corpus).replace('presets = ["tiny-0.1m", "tiny-0.3m", "tiny-1m"]',
                                                     'presets = ["tiny-0.1m", "tiny-0.3m"]')
    spec.write_text(text.replace("eval_every_tokens = 2048", "eval_every_tokens = 2048\nlr = 1e6"))  # diverges
    done = run_campaign_cli(spec)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "only 0 finished runs" in done.stderr and "Traceback" not in done.stderr
    assert "failed and is left out" in done.stderr


def test_a_candidate_run_equal_to_a_grid_run_has_its_run_id_whatever_the_learning_rate(small_corpus: Path,
                                                                                       tmp_path: Path):
    from sweeps.proposals import candidate_specs, with_learning_rate

    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC.format(corpus=small_corpus).replace("eval_every_tokens = 2048",
                                                             "eval_every_tokens = 2048\nlr = 1e-2\nfinal_lr = 1e-4"))
    campaign = load_campaign(spec)
    rng = __import__("random").Random(0)
    for _ in range(50):
        rates = {p: 10 ** rng.uniform(-4, -1) for p in campaign.grid.presets}
        grid = {with_learning_rate(s, rates).run_id() for s in campaign.runs}
        candidates = {s.run_id() for s in candidate_specs(campaign, rates)}
        assert grid <= candidates  # so a finished grid run is known, never proposed again


def test_a_record_cut_short_by_a_kill_is_marked_failed_and_the_run_asked_again(small_corpus: Path, tmp_path: Path):
    import optuna

    from sweeps.proposals import Proposal
    from sweeps.record import CampaignRecord, open_study

    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC.format(corpus=small_corpus))
    campaign = load_campaign(spec)
    run = campaign.runs[0]
    half = open_study(campaign, campaign.name).ask()  # what a kill between two attribute writes left behind
    half.set_user_attr("run_id", run.run_id())
    record = CampaignRecord(campaign)
    assert record.trials == {} and record.study.trials[half.number].state == optuna.trial.TrialState.FAIL
    record.ask(Proposal(run, "grid", 1000, 2000, 3000), 0)
    again = CampaignRecord(campaign)
    assert again.specs() == [run] and again.recorded_proposals(0)[0].tokens == 3000
    assert again.trials[run.run_id()].state == optuna.trial.TrialState.RUNNING
