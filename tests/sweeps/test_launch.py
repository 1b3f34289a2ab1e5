"""Launching through submitit's local executor: skip finished, resume interrupted, record crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.tracking import Tracker
from sweeps.launch import launch, make_executor
from sweeps.runs import JobBook, read_run_state, run_folder, tracking_uri_of
from sweeps.spec import load_campaign
from trainer.folder import RunFolder

SPEC = """
[campaign]
name = "{name}"
corpus = "{corpus}"
folder = "runs"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m"]
fractions = [0.25]
epochs = [{epochs}]

[train]
context = 32
batch_tokens = 512
micro_batch = 8
eval_every_tokens = 2048

[launcher]
kind = "local"
max_parallel = 2
timeout_min = 20
"""


def child_pids(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    assert children, f"no task process under the local controller {parent}"
    return children


def write_spec(folder: Path, corpus: Path, name: str = "grid", epochs: str = "1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.toml"
    path.write_text(SPEC.format(name=name, corpus=corpus, epochs=epochs))
    return path


@pytest.mark.slow
def test_launch_trains_every_run_records_it_in_mlflow_and_skips_it_next_time(small_corpus: Path, tmp_path: Path):
    campaign = load_campaign(write_spec(tmp_path, small_corpus))
    events: list[tuple[str, str]] = []
    states = launch(campaign, progress=lambda state, event: events.append((state.run_id, event)))
    assert [s.status for s in states] == ["finished", "finished"]
    assert all(s.final_loss is not None and s.final_loss < 6 for s in states)
    points = Tracker(tracking_uri_of(campaign)).read_points(campaign.name)
    assert set(points["run_id"]) == {s.run_id for s in states}
    assert not points.duplicated(["run_id", "D"]).any()
    jobs_before = json.loads((campaign.folder / "jobs.json").read_text())
    assert {e for _, e in events} >= {"submitted", "done"}

    events.clear()
    again = launch(campaign, progress=lambda state, event: events.append((state.run_id, event)))
    assert [s.status for s in again] == ["finished", "finished"]
    assert events == [(s.run_id, "skipped") for s in states]
    assert json.loads((campaign.folder / "jobs.json").read_text()) == jobs_before  # nothing submitted again

    status = subprocess.run([sys.executable, "-m", "smslab", "sweep", "status", str(campaign.source)],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("finished") >= 2 and "2 finished" in status.stdout
    assert all(s.run_id in status.stdout for s in states)


@pytest.mark.slow
def test_a_preempted_job_checkpoints_is_requeued_by_submitit_and_resumes_with_an_unbroken_curve(
        small_corpus: Path, tmp_path: Path):
    from sweeps.job import TrainJob, job_arguments

    campaign = load_campaign(write_spec(tmp_path, small_corpus, name="preempt", epochs="6"))
    spec = campaign.runs[1]
    folder = run_folder(campaign, spec).path
    folder.mkdir(parents=True)
    Tracker(tracking_uri_of(campaign)).experiment_id(campaign.name)
    job = make_executor(campaign).submit(TrainJob(), *job_arguments(spec, campaign.corpus, folder,
                                                                     tracking_uri_of(campaign), campaign.name, 1, 1))
    deadline = time.time() + 300
    while len((folder / "curve.csv").read_text().splitlines() if (folder / "curve.csv").is_file() else []) < 3:
        assert time.time() < deadline and not job.done(), job.stderr()
        time.sleep(0.2)
    # submitit's preemption signal (USR2) to the task, as Slurm would send it; the local controller
    # forwards it this way itself when a job nears its time limit.
    for pid in child_pids(int(job.job_id)):
        os.kill(pid, signal.SIGUSR2)
    state = job.result()
    assert state["status"] == "finished"
    log = Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()
    assert "Requeued job" in log and "preempted" in log
    curve = RunFolder(folder).read_curve()
    tokens = [p.D for p in curve]
    assert tokens == sorted(set(tokens))  # no duplicate, no step back
    steps = json.loads((folder / "spec.json").read_text())["steps"]
    every = round(2048 / 512)
    assert [p.step for p in curve] == [*range(every, steps, every), steps]  # no gap either
    points = Tracker(tracking_uri_of(campaign)).read_points(campaign.name)
    assert list(points["D"].astype(int)) == tokens


@pytest.mark.slow
def test_a_crashing_job_is_recorded_as_failed_and_the_others_go_on(small_corpus: Path, tmp_path: Path):
    campaign = load_campaign(write_spec(tmp_path, small_corpus, name="crash"))
    broken = run_folder(campaign, campaign.runs[0]).path
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    states = launch(campaign)
    assert [s.status for s in states] == ["failed", "finished"]
    assert states[0].error and "UnpicklingError" in states[0].error or "checkpoint" in (states[0].error or "")
    assert json.loads((broken / "state.json").read_text())["status"] == "failed"
    assert JobBook(campaign).jobs[states[0].run_id]["error"]
    # Launching again does not retry the failed run unless asked.
    events: list[str] = []
    launch(campaign, progress=lambda state, event: events.append(event))
    assert events == ["skipped", "skipped"]
    assert read_run_state(campaign, campaign.runs[0]).status == "failed"
