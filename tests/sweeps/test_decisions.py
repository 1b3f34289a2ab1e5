"""A campaign's decisions, pinned in-process: which runs it proposes for a given fit, when it stops.

Launching goes through submitit's DebugExecutor (``[launcher] kind = "debug"``): every job runs in this
process, so the whole round loop takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lawfit.bootstrap import bootstrap_fit
from lawfit.fit import FitOptions, fit_law
from lawfit.names import FLOPS_PER_PARAM_TOKEN
from lawfit.planning import plan_compute_optimal
from lawfit.points import LossPoints
from lawfit.reference_data import EXAMPLE_PARAMS
from storage.tracking import Tracker
from sweeps.proposals import propose_runs
from sweeps.rounds import stop_reason
from sweeps.runs import tracking_uri_of
from sweeps.settings import PlanSettings
from sweeps.spec import Campaign, load_campaign

SPEC = """
[campaign]
name = "decide"
corpus = "{corpus}"
folder = "campaign"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m"]
fractions = [0.25, 0.5]
epochs = [1, 2]

[train]
context = 32
batch_tokens = 512
micro_batch = 16
eval_every_tokens = 8192

[launcher]
kind = "debug"

[plan]
target_flops = 2e10
tolerance = 1.0001
budget_flops = 1e13
max_rounds = 1
runs_per_round = 2
bootstrap = 10
laws = ["chinchilla"]
presets = ["tiny-0.1m", "tiny-0.3m", "tiny-1m"]
"""


@pytest.fixture()
def campaign(small_corpus: Path, tmp_path: Path) -> Campaign:
    spec = tmp_path / "decide.toml"
    spec.write_text(SPEC.format(corpus=small_corpus))
    return load_campaign(spec)


def chinchilla_fit(campaign: Campaign):  # type: ignore[no-untyped-def]
    """A bootstrapped Chinchilla fit to losses the law itself gives at the campaign's own sizes."""
    params = EXAMPLE_PARAMS["chinchilla"]
    sizes = [campaign.prepare(dataclasses.replace(campaign.runs[0], preset=p)).n_params for p in ("tiny-0.1m", "tiny-0.3m", "tiny-1m")]
    rng = np.random.default_rng(0)
    n, d = np.meshgrid(sizes, np.geomspace(1e4, 1e6, 6))
    loss = (params["E"] + params["A"] / n**params["alpha"] + params["B"] / d**params["beta"]) * np.exp(
        0.002 * rng.standard_normal(n.shape))
    points = LossPoints.from_arrays(n.ravel(), d.ravel(), loss.ravel(), run_id=[f"r{i}" for i in range(n.size)])
    fit = fit_law(points, "chinchilla", FitOptions())
    return fit.with_bootstrap(bootstrap_fit(fit, points, 10, FitOptions(), level=0.9, seed=0)), sizes


def test_the_predicted_optimum_is_the_preset_nearest_n_star_trained_for_the_target_budget(campaign: Campaign):
    fit, sizes = chinchilla_fit(campaign)
    plan = plan_compute_optimal(fit, 2e10, 2e4)
    # N* between tiny-0.3m and tiny-1m (about 3x apart) but nearer tiny-0.3m in log N: that preset is proposed.
    n_opt = sizes[1] * 1.5
    assert abs(math.log(n_opt / sizes[1])) < abs(math.log(n_opt / sizes[2]))
    said: list[str] = []
    proposals = propose_runs(campaign, set(), fit, dataclasses.replace(plan, n_opt=n_opt), 1e13, {}, 0, said.append)
    optimum = proposals[0]
    assert optimum.reason == "predicted optimum" and optimum.spec.preset == "tiny-0.3m"
    assert optimum.spec.tokens == int(campaign.plan.target_flops / (FLOPS_PER_PARAM_TOKEN * sizes[1])) and optimum.spec.epochs is None
    assert optimum.tokens == campaign.prepare(optimum.spec).plan.total_tokens  # D rounded to whole optimizer steps
    # The fraction whose U_D is nearest the plan's unique tokens.
    u = {f: campaign.prepare(dataclasses.replace(campaign.runs[0], fraction=f)).plan.unique_tokens for f in (0.25, 0.5)}
    expected_fraction = min(u, key=lambda f: abs(math.log(u[f]) - math.log(plan.unique_tokens)))
    assert optimum.spec.fraction == expected_fraction
    # The others narrow N*: chosen by the design among presets x fractions x epochs, none run before.
    assert [p.reason for p in proposals[1:]] == ["narrows N*"] * (len(proposals) - 1) and len(proposals) <= 2
    assert all(p.variance_reduction_log_n_star is not None for p in proposals[1:])


def test_a_known_or_unaffordable_optimum_is_not_proposed_and_the_reason_is_said(campaign: Campaign):
    fit, sizes = chinchilla_fit(campaign)
    plan = dataclasses.replace(plan_compute_optimal(fit, 2e10, 2e4), n_opt=sizes[0])
    said: list[str] = []
    first = propose_runs(campaign, set(), fit, plan, 1e13, {}, 3, said.append)[0]
    again = propose_runs(campaign, {first.run_id}, fit, plan, 1e13, {}, 3, said.append)
    assert first.run_id not in {p.run_id for p in again}
    assert any("round 3: the predicted optimum (tiny-0.1m" in line and "was run already" in line for line in said)
    poor = propose_runs(campaign, set(), fit, plan, first.cost_flops / 2, {}, 3, said.append)
    assert all(p.reason != "predicted optimum" for p in poor)
    assert sum(p.cost_flops for p in poor) <= first.cost_flops / 2
    assert any("it costs" in line and "left in the budget" in line for line in said)
    assert propose_runs(campaign, set(), fit, plan, 0.0, {}, 3, said.append) == []


@pytest.mark.parametrize(
    ("ratio", "spent", "number", "stop"),
    [
        (1.05, 9e12, 0, "N*'s interval is within the tolerance"),  # the interval wins over a spent budget
        (1.5, 1e13, 0, "the compute budget is spent"),
        (1.5, 5e12, 2, "max_rounds (2) reached"),
        (None, 5e12, 1, None),  # no interval yet: go on
        (1.5, 5e12, 1, None),
    ],
)
def test_the_stop_rule_stops_for_the_first_reason_that_holds(ratio, spent, number, stop):  # type: ignore[no-untyped-def]
    settings = PlanSettings(target_flops=1e12, budget_flops=1e13, tolerance=1.1, max_rounds=2)
    reason = stop_reason(settings, ratio, spent, number)
    assert (reason is None) if stop is None else (reason is not None and reason.startswith(stop))


def test_a_campaign_in_process_proposes_once_then_stops_and_a_rerun_trains_nothing(campaign: Campaign):
    from sweeps.campaign import run_campaign
    from sweeps.record import CampaignRecord

    said: list[str] = []
    outcome = run_campaign(campaign, say=said.append)
    assert [r.number for r in outcome.rounds] == [0, 1]
    assert outcome.stop_reason == "max_rounds (1) reached"
    round0 = outcome.rounds[0]
    assert round0.stop is None and 1 <= len(round0.proposals) <= 2
    saved = json.loads((round0.folder / "proposals.json").read_text())
    assert [p["run_id"] for p in saved] == [p.run_id for p in round0.proposals]
    record = CampaignRecord(campaign)
    assert [s.run_id() for s in record.specs()] == [s.run_id() for s in campaign.runs] + [p.run_id for p in round0.proposals]
    jobs = json.loads((campaign.folder / "jobs.json").read_text())
    again = run_campaign(campaign, say=said.append)
    assert json.loads((campaign.folder / "jobs.json").read_text()) == jobs  # nothing launched again
    assert [p.run_id for p in again.rounds[0].proposals] == [p.run_id for p in round0.proposals]
    assert "Recommendation (round 1, chinchilla law)" in again.report
    # The campaign's own MLflow run ends with the campaign (it stayed RUNNING before).
    tracker = Tracker(tracking_uri_of(campaign))
    own = tracker.client.get_run(tracker.find_run(campaign.name, f"campaign-{campaign.name}"))
    assert own.info.status == "FINISHED" and own.data.tags["smslab.status"] == "finished"
