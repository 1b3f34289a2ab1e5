"""What a submitit job runs: one training run, resumable, handing preemption over to submitit.

``TrainJob`` is a ``submitit.helpers.Checkpointable``: when submitit's
preemption/timeout signal (USR2 by default) arrives, the trainer finishes its
optimizer step, writes a checkpoint and returns ``interrupted``; the job then
calls the handler submitit installed for that signal, which asks
``checkpoint()`` for the resubmission (the same call, which resumes from the
run folder's last checkpoint), requeues the job (``scontrol requeue`` on
Slurm, a restart of the task with the local executor) and exits. submitit
counts timeouts against ``max_num_timeout``; Lightning's own Slurm
auto-requeue stays off (see ``trainer/run.py``).

A crash is recorded by the trainer (``state.json`` and MLflow: failed, with
the error) and re-raised, so submitit reports the job as failed too.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import submitit

from trainer.run import Hardware, train_run
from trainer.spec import RunSpec


def preemption_signal() -> signal.Signals:
    """The signal submitit uses for preemption and timeouts (``SUBMITIT_PREEMPT_SIGNAL``, USR2 by default)."""
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


class TrainJob(submitit.helpers.Checkpointable):
    """Train one run spec in its run folder; ``checkpoint()`` resubmits the same call (it resumes)."""

    def __call__(self, spec: dict[str, object], corpus: str, run_folder: str, tracking_uri: str, campaign: str,
                 devices: int = 1, torch_threads: int = 0) -> dict[str, object]:
        run_spec = RunSpec.from_dict(spec, run_folder)
        if torch_threads > 0:
            # Jobs sharing a machine split its cores; oversubscribed threads are slower than fewer.
            import torch

            torch.set_num_threads(torch_threads)
        preempt = preemption_signal()
        submitit_handler = signal.getsignal(preempt)
        state = train_run(run_spec, corpus, run_folder, Hardware(devices=devices), show_progress=False,
                          tracking_uri=tracking_uri or None, campaign=campaign)
        if (state.get("status") == "interrupted" and state.get("reason") == f"signal {preempt.name}"
                and callable(submitit_handler)):
            # The checkpoint is on disk: now let submitit requeue (it calls checkpoint() and exits).
            submitit_handler(preempt, None)
        return state


def job_arguments(spec: RunSpec, corpus: Path, run_folder: Path, tracking_uri: str, campaign: str,
                  devices: int, torch_threads: int) -> tuple[object, ...]:
    """The pickled arguments of one job: plain data, so a requeued job needs nothing from the launcher."""
    return (spec.to_dict(), str(corpus), str(run_folder), tracking_uri, campaign, devices, torch_threads)
