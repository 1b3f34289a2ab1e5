"""Launching a campaign's runs through submitit, and asking the scheduler about them.

- ``kind = "local"`` (the default): submitit's local executor, at most
  ``max_parallel`` jobs at a time, the machine's cores split between them.
- ``kind = "slurm"``: submitit's Slurm executor; the runs go out as job arrays
  (``map_array``), split into arrays of at most ``max_array_size`` (the
  cluster's MaxArraySize unless given), ``array_parallelism`` of them running
  at once. Requeueing is submitit's (see ``sweeps/job.py``), with
  ``max_num_timeout`` set explicitly.
- ``kind = "debug"``: submitit's DebugExecutor, every job in this process, one
  at a time (tests and debugging; a failing job opens pdb, as submitit does).

Finished runs are skipped, interrupted ones resumed, and runs another process
trains now are waited for (``sweeps/runs.py`` reads their state).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from storage.tracking import Tracker
from sweeps.progress import Progress
from sweeps.runs import JobBook, RunState, read_run_state, record_job_failure, run_folder, tracking_uri_of
from sweeps.spec import Campaign
from trainer.folder import TERMINAL
from trainer.spec import RunSpec

DEFAULT_MAX_ARRAY_SIZE = 1000
POLL_S = 0.5


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
    folder = campaign.folder / "submitit" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=settings.kind, slurm_max_num_timeout=settings.max_num_timeout,
                                     local_max_num_timeout=settings.max_num_timeout)
    params: dict[str, Any] = {"name": f"smslab-{campaign.name}", "timeout_min": settings.timeout_min,
                              "tasks_per_node": 1, "nodes": 1}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
        if getattr(settings, key) is not None:
            params[key] = getattr(settings, key)
    if settings.kind == "slurm":
        # One Slurm task per GPU: Lightning's SLURM environment makes each task one DDP rank, and it
        # refuses a run whose device count differs from --ntasks-per-node.
        params["tasks_per_node"] = settings.devices
        for key in ("partition", "account", "qos", "array_parallelism"):
            if getattr(settings, key) is not None:
                params[f"slurm_{key}"] = getattr(settings, key)
        if settings.setup:
            params["slurm_setup"] = list(settings.setup)
        # Slurm writes what has no file of its own (a requeue notice, an early error) to slurm-<job>.out in the
        # job's working directory: the campaign's submitit folder, not wherever the launcher was started.
        (campaign.folder / "submitit").mkdir(parents=True, exist_ok=True)
        params["slurm_additional_parameters"] = {"chdir": str(campaign.folder / "submitit")}
    executor.update_parameters(**params)
    return executor


def _cost_estimate(campaign: Campaign, spec: RunSpec) -> float:
    """N·D of the run, embeddings included (its FLOPs / 6): the order to start runs in."""
    prepared = campaign.prepare(spec)
    return float(prepared.n_params_with_embeddings) * prepared.plan.total_tokens


def _torch_threads(campaign: Campaign) -> int:
    """Torch threads per job (0: leave torch's default)."""
    settings = campaign.launcher
    if settings.kind == "slurm":
        return settings.cpus_per_task or 0
    if settings.kind == "debug":
        return 0  # the jobs run in this process: its threads are the caller's
    return max(1, len(os.sched_getaffinity(0)) // settings.max_parallel)


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
    kind = campaign.launcher.kind
    threads = _torch_threads(campaign)

    def arguments(spec: RunSpec) -> tuple[object, ...]:
        folder = run_folder(campaign, spec).path
        folder.mkdir(parents=True, exist_ok=True)
        return job_arguments(spec, campaign.corpus_for(spec), folder, uri, campaign.name, campaign.launcher.devices,
                             threads)

    def submitted(spec: RunSpec, job: Any) -> None:
        active[spec.run_id()] = (spec, job)
        book.record(spec.run_id(), job_id=str(job.job_id), kind=kind, submitted=time.time(), error=None)
        say(read_run_state(campaign, spec, book.jobs), "submitted")

    # Longest runs first: the short ones fill the gaps, and the last job does not run alone
    # on a machine whose other cores sit idle.
    todo.sort(key=lambda spec: -_cost_estimate(campaign, spec))
    if kind == "slurm":
        limit = campaign.launcher.max_array_size or cluster_max_array_size()
        for start in range(0, len(todo), limit):
            chunk = todo[start : start + limit]
            jobs = executor.map_array(TrainJob(), *zip(*(arguments(s) for s in chunk), strict=True))
            for spec, job in zip(chunk, jobs, strict=True):
                submitted(spec, job)
        todo = []
    max_parallel = campaign.launcher.max_parallel
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
                if run_folder(campaign, spec).in_use():
                    watching.append(spec)  # another launcher's job trains it (ours found it busy): wait for that
                    say(read_run_state(campaign, spec, book.jobs), "already running")
                    continue
                error = f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
                failures = book.failures(run_id) + 1
                book.record(run_id, error=error, failures=failures)
                record_job_failure(campaign, spec, error, failures)
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
        elif job.get("kind") == "debug":
            out[state.run_id] = "ENDED"  # ran inside the launcher, which has returned
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
