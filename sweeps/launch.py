"""Launching a campaign's runs through submitit, and what state each run is in.

Each run trains in ``<folder>/runs/<run id>``; the run folder is the truth
about a run (``state.json``, the checkpoint, the curve), so launching again
skips finished runs, resumes interrupted or half-done ones from their
checkpoint, leaves runs alone that another process is training right now
(their folder lock is held) and does not retry failed runs unless asked.

- ``kind = "local"`` (the default): submitit's local executor, at most
  ``max_parallel`` jobs at a time, the machine's cores split between them.
- ``kind = "slurm"``: submitit's Slurm executor; the runs go out as job arrays
  (``map_array``), split into arrays of at most ``max_array_size`` (the
  cluster's MaxArraySize unless given), ``array_parallelism`` of them running
  at once. Requeueing is submitit's (see ``sweeps/job.py``), with
  ``max_num_timeout`` set explicitly.

Job ids are kept in ``<folder>/jobs.json`` so that ``smslab sweep status``
can ask submitit (and through it ``sacct``) about them later.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.tracking import Tracker, default_tracking_uri
from sweeps.spec import Campaign
from trainer.run import RunSpec, folder_in_use

DEFAULT_TIMEOUT_MIN = 240
DEFAULT_MAX_NUM_TIMEOUT = 3
DEFAULT_MAX_ARRAY_SIZE = 1000
POLL_S = 0.5
TERMINAL = ("finished", "failed")


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


def tracking_uri_of(campaign: Campaign) -> str:
    return campaign.tracking_uri or default_tracking_uri(campaign.folder)


def run_folder(campaign: Campaign, spec: RunSpec) -> Path:
    return campaign.folder / "runs" / spec.run_id()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_run_state(campaign: Campaign, spec: RunSpec, jobs: Mapping[str, Mapping[str, Any]] | None = None) -> RunState:
    folder = run_folder(campaign, spec)
    state = _read_json(folder / "state.json")
    record = _read_json(folder / "spec.json")
    status = str(state.get("status", "not started"))
    if status not in TERMINAL and folder_in_use(folder):
        status = "running"
    elif status == "running":
        status = "interrupted"  # its process is gone (killed before it could checkpoint): resume it
    final_loss = None
    curve = folder / "curve.csv"
    if curve.is_file():
        # The trainer may be appending a line right now: the last whole line is the latest point.
        for line in reversed(curve.read_text().splitlines()[1:]):
            try:
                final_loss = float(line.split(",")[4])
                break
            except (IndexError, ValueError):
                continue
    job = (jobs or {}).get(spec.run_id(), {})
    error = state.get("error") or (state.get("reason") if status == "failed" else None) or job.get("error")
    return RunState(spec, folder, status, int(state.get("step", 0)), record.get("steps"), final_loss, error,
                    job.get("job_id"))


class CampaignBusyError(RuntimeError):
    """Another smslab process is launching this campaign now (exit status 1)."""


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
        self.jobs: dict[str, dict[str, Any]] = _read_json(self.path)

    def record(self, run_id: str, **fields: Any) -> None:
        self.jobs.setdefault(run_id, {}).update(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.jobs, indent=2, sort_keys=True))
        os.replace(tmp, self.path)


def cluster_max_array_size() -> int:
    """Slurm's MaxArraySize (``scontrol show config``); 1000 when it cannot be read."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(1, int(value.strip()) - 1)  # task ids run 0 .. MaxArraySize-1
    return DEFAULT_MAX_ARRAY_SIZE


def make_executor(campaign: Campaign):  # type: ignore[no-untyped-def]
    """The submitit executor the spec's [launcher] asks for, with every setting applied."""
    import submitit

    settings = campaign.launcher
    kind = settings.get("kind", "local")
    max_num_timeout = int(settings.get("max_num_timeout", DEFAULT_MAX_NUM_TIMEOUT))
    folder = campaign.folder / "submitit" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, slurm_max_num_timeout=max_num_timeout,
                                     local_max_num_timeout=max_num_timeout)
    params: dict[str, Any] = {
        "name": f"smslab-{campaign.name}",
        "timeout_min": int(settings.get("timeout_min", DEFAULT_TIMEOUT_MIN)),
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if "gpus_per_node" in settings:
        params["gpus_per_node"] = settings["gpus_per_node"]
    if "cpus_per_task" in settings:
        params["cpus_per_task"] = settings["cpus_per_task"]
    if "mem_gb" in settings:
        params["mem_gb"] = settings["mem_gb"]
    if kind == "slurm":
        # One Slurm task per GPU: Lightning's SLURM environment makes each task one DDP rank, and it
        # refuses a run whose device count differs from --ntasks-per-node.
        params["tasks_per_node"] = max(1, int(settings.get("gpus_per_node", 1) or 1))
        for key in ("partition", "account", "qos", "setup", "array_parallelism"):
            if key in settings:
                params[f"slurm_{key}"] = settings[key]
    executor.update_parameters(**params)
    return executor


def _cost_estimate(campaign: Campaign, spec: RunSpec) -> float:
    """N·D of the run (its FLOPs / 6): the order to start runs in."""
    from trainer.run import prepare

    prepared = prepare(spec, campaign.corpus_for(spec))
    return float(prepared.n_params_with_embeddings) * prepared.plan.total_tokens


def _torch_threads(campaign: Campaign) -> int:
    settings = campaign.launcher
    if settings.get("kind", "local") == "slurm":
        return int(settings.get("cpus_per_task", 0))
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // max(1, int(settings.get("max_parallel", 1))))


Progress = Callable[[RunState, str], None]


def launch(campaign: Campaign, specs: Sequence[RunSpec] | None = None, wait: bool = True, retry_failed: bool = False,
           progress: Progress | None = None) -> list[RunState]:
    """Launch every run of ``specs`` (default: the campaign's grid) that is not finished, and
    (with ``wait``) return when each is finished or failed. Returns the runs' states."""
    from sweeps.job import TrainJob, job_arguments

    specs = list(campaign.runs if specs is None else specs)
    book = JobBook(campaign)
    uri = tracking_uri_of(campaign)
    say = progress or (lambda state, event: None)
    todo: list[RunSpec] = []
    watching: list[RunSpec] = []
    active: dict[str, tuple[RunSpec, Any]] = {}
    for spec in specs:
        state = read_run_state(campaign, spec, book.jobs)
        queued = _queued_slurm_job(campaign, book.jobs.get(spec.run_id(), {}))
        if state.status == "finished" or (state.status == "failed" and not retry_failed):
            say(state, "skipped")
        elif queued is not None:
            active[spec.run_id()] = (spec, queued)  # pending, running or requeued on Slurm: wait for that job
            say(state, "already queued")
        elif state.status == "running":
            watching.append(spec)  # another process trains it now (an earlier launch): wait for it, do not start it twice
            say(state, "already running")
        else:
            todo.append(spec)
    # Create the tracking store and the experiment here, once, before any job opens it.
    Tracker(uri).experiment_id(campaign.name)
    executor = make_executor(campaign)
    kind = campaign.launcher.get("kind", "local")
    threads = _torch_threads(campaign)
    devices = int(campaign.launcher.get("gpus_per_node", 1) or 1)

    def arguments(spec: RunSpec) -> tuple[object, ...]:
        folder = run_folder(campaign, spec)
        folder.mkdir(parents=True, exist_ok=True)
        return job_arguments(spec, campaign.corpus_for(spec), folder, uri, campaign.name, devices, threads)

    def submitted(spec: RunSpec, job: Any) -> None:
        active[spec.run_id()] = (spec, job)
        book.record(spec.run_id(), job_id=str(job.job_id), kind=kind, submitted=time.time(), error=None)
        say(read_run_state(campaign, spec, book.jobs), "submitted")

    # Longest runs first: the short ones fill the gaps, and the last job does not run alone
    # on a machine whose other cores sit idle.
    todo.sort(key=lambda spec: -_cost_estimate(campaign, spec))
    if kind == "slurm":
        limit = int(campaign.launcher.get("max_array_size", 0)) or cluster_max_array_size()
        for start in range(0, len(todo), limit):
            chunk = todo[start : start + limit]
            jobs = executor.map_array(TrainJob(), *zip(*(arguments(s) for s in chunk), strict=True))
            for spec, job in zip(chunk, jobs, strict=True):
                submitted(spec, job)
        todo = []
    max_parallel = max(1, int(campaign.launcher.get("max_parallel", 1)))
    results: dict[str, RunState] = {}
    while todo or active or watching:
        while todo and len(active) + len(watching) < max_parallel:  # runs an earlier launch left going count too
            spec = todo.pop(0)
            submitted(spec, executor.submit(TrainJob(), *arguments(spec)))
        for run_id, (spec, job) in list(active.items()):
            if not job.done():
                continue
            del active[run_id]
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001  the job's own error: record it, go on without the run
                if folder_in_use(run_folder(campaign, spec)):
                    watching.append(spec)  # another launcher's job trains it (ours found it busy): wait for that
                    say(read_run_state(campaign, spec, book.jobs), "already running")
                    continue
                error = f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
                failures = int(book.jobs.get(run_id, {}).get("failures", 0)) + 1
                book.record(run_id, error=error, failures=failures)
                _record_job_failure(campaign, spec, error, failures)
            state = read_run_state(campaign, spec, book.jobs)
            results[run_id] = state
            say(state, "done")
        for spec in list(watching):
            state = read_run_state(campaign, spec, book.jobs)
            if state.status != "running":
                watching.remove(spec)
                if state.status in TERMINAL:
                    results[spec.run_id()] = state
                    say(state, "done")
                else:
                    todo.append(spec)  # its process died without finishing: resume it here
        if not wait and not todo:
            break
        if active or watching:
            time.sleep(POLL_S)
    return [results.get(s.run_id()) or read_run_state(campaign, s, book.jobs) for s in specs]


SLURM_LIVE_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "PREEMPTED",
                     "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING")


def _queued_slurm_job(campaign: Campaign, job: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """The run's Slurm job from an earlier launch when the scheduler still has it queued or running."""
    if job.get("kind") != "slurm" or not job.get("job_id"):
        return None
    import submitit

    slurm_job = submitit.SlurmJob(folder=campaign.folder / "submitit" / "%j", job_id=str(job["job_id"]))
    if slurm_job.paths.result_pickle.exists():
        return None
    state = str(slurm_job.watcher.get_state(slurm_job.job_id, mode="force")).upper()
    return slurm_job if state.split()[0] in SLURM_LIVE_STATES else None


MAX_JOB_FAILURES = 3


def _record_job_failure(campaign: Campaign, spec: RunSpec, error: str, failures: int = 1) -> None:
    """A job that died outside the trainer's own handling (before training, or killed): the run
    folder says failed, with the job's error, so the campaign goes on without it. A checkpointed
    run stays resumable, unless its jobs keep failing (``MAX_JOB_FAILURES``)."""
    folder = run_folder(campaign, spec)
    state = _read_json(folder / "state.json")
    if state.get("status") in TERMINAL or folder_in_use(folder):
        return
    resumable = state.get("status") == "interrupted" and "timed-out too many times" not in error
    if resumable and failures < MAX_JOB_FAILURES:
        return  # checkpointed: a relaunch resumes it
    record = {**state, "status": "failed", "reason": "job" if failures < MAX_JOB_FAILURES else f"{failures} jobs failed",
              "error": error}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".state.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, folder / "state.json")
    tracker = Tracker(tracking_uri_of(campaign))
    mlflow_run = tracker.find_run(campaign.name, spec.run_id())
    if mlflow_run is not None:
        tracker.set_status(mlflow_run, "failed", error=error)


def submitit_states(campaign: Campaign, states: Sequence[RunState]) -> dict[str, str]:
    """What the scheduler says of each run's last job (Slurm: ``sacct`` through submitit; local: the process)."""
    import submitit

    book = JobBook(campaign)
    out: dict[str, str] = {}
    slurm_jobs = []
    for state in states:
        job = book.jobs.get(state.run_id)
        if not job or not job.get("job_id"):
            continue
        if job.get("kind") == "slurm":
            slurm_job = submitit.SlurmJob(folder=campaign.folder / "submitit" / "%j", job_id=str(job["job_id"]))
            slurm_jobs.append((state.run_id, slurm_job))
        else:
            out[state.run_id] = "RUNNING" if _process_alive(int(job["job_id"])) else "ENDED"
    for run_id, slurm_job in slurm_jobs:
        out[run_id] = slurm_job.state
    return out


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
