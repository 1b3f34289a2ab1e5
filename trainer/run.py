"""One training run: a run spec in, a loss curve and checkpoints out, resumable after preemption.

The run folder (``trainer/folder.py``) is the run's record. Starting the same
run again in the same folder resumes from the last checkpoint: the data
position is a pure function of the optimizer step (see ``trainer/data.py``),
model, optimiser and scheduler come from the checkpoint, and the curve is cut
back to the checkpoint before new points are appended, so a resumed curve has
no gap and no duplicate and ends where an uninterrupted run ends. On SIGTERM,
SIGUSR1 or SIGUSR2 the run finishes its optimizer step, saves a checkpoint and
exits cleanly (status ``interrupted``), ready to be requeued
(``trainer/callback.py``). A NaN or infinite loss stops the run as ``failed``
with its step, keeping the last good checkpoint.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from corpus.shards import load_tokens
from storage.tracking import RunRecord, Tracker
from trainer.callback import CurveCallback
from trainer.config import flops_per_token
from trainer.data import ShardDataModule, validation_windows
from trainer.folder import RunFolder
from trainer.presets import N_FOR_LAWS
from trainer.provenance import code_version
from trainer.spec import Prepared, RunError, RunSpec, prepare
from trainer.throughput import resolve_precision


@dataclass(frozen=True)
class Hardware:
    """Where a run trains: Lightning's accelerator, device count (DDP processes) and strategy."""

    devices: int = 1
    strategy: str = "auto"
    accelerator: str = "auto"


def train_run(spec: RunSpec, corpus_dir: str | Path, out_dir: str | Path, hardware: Hardware = Hardware(),
              show_progress: bool = True, tracking_uri: str | None = None, campaign: str = "default") -> dict[str, object]:
    """Train (or resume) the run in ``out_dir``; returns its final state.

    With ``tracking_uri`` the run and every curve point are also recorded in
    MLflow through ``storage`` (the same MLflow run again when resuming).

    A second process starting the same folder while one trains it gets
    ``RunBusyError``. An exception during training is recorded before it
    propagates: ``state.json`` says failed with the error, and so does MLflow.
    """
    prepared = prepare(spec, corpus_dir, world_size=hardware.devices)
    folder = RunFolder(Path(out_dir))
    folder.create()
    if not _is_launching_rank_zero():
        # DDP workers started by Lightning (or srun tasks) train alongside the rank-0 process, which holds the lock.
        return _train_unlocked(prepared, folder, hardware, show_progress, tracking_uri, campaign)
    with folder.lock():
        return _train_unlocked(prepared, folder, hardware, show_progress, tracking_uri, campaign)


def _is_launching_rank_zero() -> bool:
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "RANK"))


def run_record(prepared: Prepared) -> dict[str, object]:
    """What ``spec.json`` and the MLflow params say of a run (before any tracking field)."""
    spec, plan = prepared.spec, prepared.plan
    return {
        "run_id": spec.run_id(), "spec": spec.to_dict(), "N": prepared.n_params,
        "N_with_embeddings": prepared.n_params_with_embeddings, "N_for_laws": N_FOR_LAWS,
        "U_D": plan.unique_tokens, "fraction_tokens": prepared.fraction.tokens, "planned_D": plan.total_tokens,
        "steps": plan.total_steps, "tokens_per_step": plan.tokens_per_step, "vocab_size": prepared.vocab_size,
        "corpus": str(prepared.corpus.folder), "corpus_key": prepared.corpus.manifest.cache_key,
        "spec_hash": spec.spec_hash(), "code_version": code_version(),
    }


class CheckpointError(RunError):
    """A checkpoint that cannot be loaded safely: truncated, not a checkpoint, or holding objects a
    weights-only load refuses (a pickle could run code)."""


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a checkpoint was saved at (0 without one). Loaded with ``weights_only``: a
    checkpoint is data, and unpickling arbitrary objects from it could run code."""
    if not checkpoint.is_file():
        return 0
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        return int(saved["global_step"])
    except Exception as exc:  # noqa: BLE001  torch raises many kinds for a bad file; all mean the same here
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{checkpoint}: not a checkpoint smslab can load safely ({type(exc).__name__}: {reason}); "
            "delete it to train the run again from step 0") from None


def _train_unlocked(prepared: Prepared, folder: RunFolder, hardware: Hardware, show_progress: bool,
                    tracking_uri: str | None, campaign: str) -> dict[str, object]:
    import lightning as L

    from trainer.module import DecoderModule

    spec, plan = prepared.spec, prepared.plan
    existing = folder.read_record()
    if existing and existing.get("run_id") != spec.run_id():
        raise RunError(f"{folder.path}: holds run {existing.get('run_id')}, not this spec's run {spec.run_id()}; "
                       "use another --out")
    state = folder.read_state()
    if state.get("status") == "finished":
        return state
    record = run_record(prepared)
    tracking = None
    if tracking_uri:
        tracker = Tracker(tracking_uri)
        params = {**spec.to_dict(), **{k: v for k, v in record.items() if k not in ("spec", "run_id")}}
        tracking = (tracker, tracker.open_run(RunRecord(spec.run_id(), campaign, params)))
        record["mlflow_run_id"] = tracking[1]
        record["tracking_uri"] = tracking_uri
    folder.write_record(record)

    try:
        start_step = checkpoint_step(folder.checkpoint)
    except CheckpointError as exc:
        # Not transient: the run is failed (a launcher does not retry it) until the file is dealt with.
        folder.write_state({**state, "status": "failed", "reason": "checkpoint", "error": str(exc)})
        if tracking is not None:
            tracking[0].set_status(tracking[1], "failed", error=str(exc))
        raise
    # The curve keeps what the checkpoint had seen: points logged after it are recomputed identically.
    folder.keep_curve_until(start_step)

    L.seed_everything(spec.seed, workers=True, verbose=False)
    precision = resolve_precision(spec.precision)
    cfg = prepared.preset.config(prepared.vocab_size, spec.context)
    module = DecoderModule(cfg, spec.lr, spec.final_lr, plan.total_steps)
    corpus_dir = prepared.corpus.folder
    train_tokens = load_tokens(corpus_dir, "train")[: prepared.fraction.end_offset]
    data = ShardDataModule(train_tokens, plan, spec.seed, start_step)
    accumulation = plan.micro_batches_per_step() // hardware.devices
    eval_every = max(1, round(spec.eval_every_tokens / plan.tokens_per_step))
    callback = CurveCallback(prepared, folder, eval_every, validation_windows(load_tokens(corpus_dir, "val"), spec.context),
                             flops_per_token(cfg, spec.context), precision, tracking)
    trainer = L.Trainer(
        accelerator=hardware.accelerator, devices=hardware.devices, strategy=hardware.strategy,
        precision=precision,  # type: ignore[arg-type]
        max_steps=plan.total_steps, max_epochs=-1, accumulate_grad_batches=accumulation, gradient_clip_val=1.0,
        logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=show_progress,
        use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[callback],
        plugins=_plugins(),
    )
    folder.write_state({"status": "running", "step": start_step})
    if tracking is not None and trainer.is_global_zero:
        tracking[0].set_status(tracking[1], "running")
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(folder.checkpoint) if folder.checkpoint.is_file() else None,
                    weights_only=True)
    except Exception as exc:
        if trainer.is_global_zero:
            error = f"{type(exc).__name__}: {exc}"
            folder.write_state({"status": "failed", "step": trainer.global_step, "reason": "exception", "error": error,
                                "traceback": traceback.format_exc(limit=20)})
            if tracking is not None:
                tracking[0].set_status(tracking[1], "failed", error=error)
        raise
    final = folder.read_state()
    if tracking is not None and trainer.is_global_zero:
        error = str(final.get("reason", "")) if final["status"] == "failed" else None
        tracking[0].set_status(tracking[1], str(final["status"]), error=error)
    return final


def _plugins() -> list[object]:
    # submitit owns requeueing on clusters: Lightning's own SLURM auto-requeue stays off.
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if "SLURM_JOB_ID" in os.environ else []
