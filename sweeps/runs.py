"""What state each run of a campaign is in, read from its run folder and its job record.

Each run trains in ``<folder>/runs/<run id>``; the run folder (owned by
``trainer/folder.py``) is the truth about a run, so launching again skips
finished runs, resumes interrupted or half-done ones from their checkpoint and
leaves alone runs another process is training now (their folder lock is held).
Job ids are kept in ``<folder>/jobs.json`` so that ``smslab sweep status`` can
ask submitit (and through it ``sacct``) about them later.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lawfit.names import FLOPS_PER_PARAM_TOKEN
from storage.sqlite_store import default_tracking_uri
from storage.tracking import Tracker
from sweeps.spec import Campaign
from trainer.folder import TERMINAL, RunFolder, read_json, write_atomic
from trainer.spec import RunSpec

MAX_JOB_FAILURES = 3


@dataclass(frozen=True)
class RunState:
    """One run as its folder (and its job record) tells it."""

    spec: RunSpec
    folder: Path
    status: str  # not started, running (some process holds the folder), interrupted, finished, failed
    step: int
    steps: int | None
    final_loss: float | None
    error: str | None
    job_id: str | None

    @property
    def run_id(self) -> str:
        return self.spec.run_id()


class CampaignError(RuntimeError):
    """A campaign that cannot go on (too few runs finished to fit a law); the message says why."""

    exit_status = 1


class CampaignBusyError(RuntimeError):
    """Another smslab process is launching this campaign now."""

    exit_status = 1


def tracking_uri_of(campaign: Campaign) -> str:
    return campaign.tracking_uri or default_tracking_uri(campaign.folder)


def run_folder(campaign: Campaign, spec: RunSpec) -> RunFolder:
    return RunFolder(campaign.folder / "runs" / spec.run_id())


def read_run_state(campaign: Campaign, spec: RunSpec, jobs: Mapping[str, Mapping[str, Any]] | None = None) -> RunState:
    folder = run_folder(campaign, spec)
    state = folder.read_state()
    steps = folder.read_record().get("steps")
    status = folder.status()
    job = (jobs or {}).get(spec.run_id(), {})
    error = state.get("error") or (state.get("reason") if status == "failed" else None) or job.get("error")
    return RunState(spec, folder.path, status, int(state.get("step", 0) or 0),  # type: ignore[call-overload]
                    int(steps) if isinstance(steps, int) else None, folder.final_loss(),
                    str(error) if error else None, job.get("job_id"))


@contextmanager
def campaign_lock(campaign: Campaign) -> Iterator[None]:
    """Hold ``<folder>/.campaign.lock`` while launching: two launchers of one campaign would submit the same
    runs twice and overwrite each other's ``jobs.json``. The lock dies with its process."""
    campaign.folder.mkdir(parents=True, exist_ok=True)
    path = campaign.folder / ".campaign.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CampaignBusyError(f"{campaign.folder}: another smslab process (pid {holder}) is launching campaign "
                                    f"{campaign.name!r}; wait for it or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


class JobBook:
    """``jobs.json``: the submitit job of every run (id, kind, when, and its error if the job failed)."""

    def __init__(self, campaign: Campaign) -> None:
        self.path = campaign.folder / "jobs.json"
        self.jobs: dict[str, dict[str, Any]] = read_json(self.path)  # type: ignore[assignment]

    def record(self, run_id: str, **fields: Any) -> None:
        self.jobs.setdefault(run_id, {}).update(fields)
        write_atomic(self.path, json.dumps(self.jobs, indent=2, sort_keys=True))

    def failures(self, run_id: str) -> int:
        return int(self.jobs.get(run_id, {}).get("failures", 0))


def record_job_failure(campaign: Campaign, spec: RunSpec, error: str, failures: int = 1) -> None:
    """A job that died outside the trainer's own handling (before training, or killed): the run
    folder says failed, with the job's error, so the campaign goes on without it. A checkpointed
    run stays resumable, unless its jobs keep failing (``MAX_JOB_FAILURES``)."""
    folder = run_folder(campaign, spec)
    state = folder.read_state()
    if state.get("status") in TERMINAL or folder.in_use():
        return
    resumable = state.get("status") == "interrupted" and "timed-out too many times" not in error
    if resumable and failures < MAX_JOB_FAILURES:
        return  # checkpointed: a relaunch resumes it
    reason = "job" if failures < MAX_JOB_FAILURES else f"{failures} jobs failed"
    folder.write_state({**state, "status": "failed", "reason": reason, "error": error})
    tracker = Tracker(tracking_uri_of(campaign))
    mlflow_run = tracker.find_run(campaign.name, spec.run_id())
    if mlflow_run is not None:
        tracker.set_status(mlflow_run, "failed", error=error)


def run_cost_flops(campaign: Campaign, state: RunState) -> float:
    """6·N·D of what the run trained (all of it when finished; up to its step otherwise)."""
    prepared = campaign.prepare(state.spec)
    tokens = prepared.plan.total_tokens if state.status == "finished" else state.step * prepared.plan.tokens_per_step
    return FLOPS_PER_PARAM_TOKEN * prepared.n_params * tokens
