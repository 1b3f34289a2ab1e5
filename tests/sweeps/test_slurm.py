"""A sweep on a real Slurm cluster through submitit: job arrays, a preempted job requeued and resumed.

CI starts a one-node cluster with accounting (``.ci/slurm-up.sh``); elsewhere
the test is skipped when no cluster answers (in CI a missing cluster fails).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from storage.tracking import Tracker
from sweeps.launch import launch
from sweeps.runs import run_folder, tracking_uri_of
from sweeps.spec import load_campaign

SPEC = """
[campaign]
name = "slurm"
corpus = "{corpus}"
folder = "campaign"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m"]
fractions = [0.25]
epochs = [5]

[train]
context = 32
batch_tokens = 512
micro_batch = 8
eval_every_tokens = 2048

[launcher]
kind = "slurm"
cpus_per_task = 1
mem_gb = 4
timeout_min = 20
max_num_timeout = 2
array_parallelism = 2
"""


def slurm_cluster() -> bool:
    os.environ.setdefault("SLURM_CONF", "/etc/slurm/slurm.conf")
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.SubprocessError:
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix", "alloc"))


def require_slurm() -> None:
    if not slurm_cluster():
        if os.environ.get("CI"):
            pytest.fail("CI must run the Slurm test: no cluster answers (did .ci/slurm-up.sh run?)")
        pytest.skip("no Slurm cluster here (CI starts one with .ci/slurm-up.sh)")


@pytest.mark.slow
def test_a_sweep_runs_as_a_slurm_job_array_and_a_preempted_job_resumes_from_its_checkpoint(
        small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import submitit

    require_slurm()
    launched_from = tmp_path / "cwd"
    launched_from.mkdir()
    monkeypatch.chdir(launched_from)
    spec_file = tmp_path / "sweep.toml"
    spec_file.write_text(SPEC.format(corpus=small_corpus))
    campaign = load_campaign(spec_file)
    launch(campaign, wait=False)
    jobs = json.loads((campaign.folder / "jobs.json").read_text())
    victim = campaign.runs[1]
    job_ids = [jobs[s.run_id()]["job_id"] for s in campaign.runs]
    assert all("_" in j for j in job_ids) and len({j.split("_")[0] for j in job_ids}) == 1  # one array

    curve = run_folder(campaign, victim).path / "curve.csv"
    deadline = time.time() + 300
    while not curve.is_file() or len(curve.read_text().splitlines()) < 3:
        assert time.time() < deadline, "the Slurm job did not start training"
        time.sleep(0.3)
    job = submitit.SlurmJob(folder=campaign.folder / "submitit" / "%j", job_id=jobs[victim.run_id()]["job_id"])
    job._interrupt(timeout=True)  # scancel --signal USR2: submitit's preemption/timeout signal

    states = launch(campaign)  # waits for the queued jobs; submits nothing new
    assert [s.status for s in states] == ["finished", "finished"]
    assert json.loads((campaign.folder / "jobs.json").read_text()) == jobs
    log = Path(job.paths.stdout).read_text() + Path(job.paths.stderr).read_text()
    assert "Requeued job" in log or "requeue" in log.lower()
    steps = [point.step for point in run_folder(campaign, victim).read_curve()]
    total = json.loads((run_folder(campaign, victim).path / "spec.json").read_text())["steps"]
    assert steps == [*range(4, total, 4), total]  # unbroken: no gap, no duplicate
    points = Tracker(tracking_uri_of(campaign)).read_points(campaign.name)
    assert sorted(points["run_id"].unique()) == sorted(s.run_id() for s in campaign.runs)
    assert not points.duplicated(["run_id", "D"]).any()
    sacct = subprocess.run(["sacct", "-n", "-X", "-j", job_ids[1].split("_")[0], "-o", "JobID,State"],
                           capture_output=True, text=True, check=True).stdout
    assert "COMPLETED" in sacct
    # Nothing Slurm writes lands where the launcher was started (requeue notices go to the campaign's folder).
    assert not list(launched_from.iterdir())
