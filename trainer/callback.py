"""The callback that turns Lightning's steps into a run's record: curve points, checkpoints, stops.

After every optimizer step it takes the step's training loss from Lightning's
``outputs``; every ``eval_every`` steps (and at the last) it measures the
validation loss over the whole held-out set and records one
``storage.points.CurvePoint`` in the run folder and, when tracked, in MLflow.
It checkpoints every fourth evaluation and at the end, and on a stop signal
(see ``STOP_SIGNALS``) every rank saves at the same step and the run ends
``interrupted``. A non-finite loss ends it ``failed`` with its step.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from storage.points import CurvePoint
from storage.tracking import Tracker
from trainer.folder import RunFolder
from trainer.spec import Prepared, RunError
from trainer.throughput import measure_peak_flops

# Signals that mean "checkpoint at the end of this optimizer step and stop": SIGTERM (Slurm
# preemption and scancel), SIGUSR1 (Lightning's convention) and SIGUSR2 (submitit's
# preemption/timeout signal; sweeps hands the stop over to submitit's requeue).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
CHECKPOINT_EVERY_EVALUATIONS = 4


class CurveCallback(Callback):
    """Logs the curve, evaluates every ``eval_every`` steps, checkpoints, and handles signals and NaN."""

    def __init__(self, prepared: Prepared, folder: RunFolder, eval_every: int, val_windows: torch.Tensor,
                 flops_per_token: float, precision: str, tracking: tuple[Tracker, str] | None = None) -> None:
        self.prepared = prepared
        self.run_id = prepared.spec.run_id()
        self.folder = folder
        self.eval_every = eval_every
        self.val_windows = val_windows
        self.flops_per_token = flops_per_token
        self.precision = precision
        self.tracking = tracking
        self.stop_reason: str | None = None
        self.losses: list[float] = []
        self.step_started = time.perf_counter()
        self.tokens_timed = 0
        self.peak_flops = math.nan
        self._previous_handlers: dict[int, object] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        peak = measure_peak_flops(pl_module.device, self.precision)
        self.peak_flops = peak.flops_per_s
        if trainer.is_global_zero:
            self.folder.write_record({**self.folder.read_record(), "mfu_peak": peak.to_dict()})
        for sig in STOP_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        self.step_started = time.perf_counter()

    def _on_signal(self, signum: int, frame: object) -> None:
        # Slurm sends SIGTERM before the preemption signal: the more specific one names the stop.
        if self.stop_reason is None or signum != signal.SIGTERM:
            self.stop_reason = f"signal {signal.Signals(signum).name}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        loss = float(outputs["train_loss"])
        plan = self.prepared.plan
        self.losses.append(loss)
        self.tokens_timed += plan.micro_batch * plan.context * trainer.world_size
        if not math.isfinite(loss):
            trainer.should_stop = True
            self.stop_reason = "nan"
            self.folder.write_state({"status": "failed", "step": trainer.global_step,
                                     "reason": f"non-finite training loss ({loss}) at optimizer step {trainer.global_step}"})
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # inside an accumulation: the optimizer has not stepped yet
        step = trainer.global_step
        # The train loss of this optimizer step (its micro-batches on this rank): the same
        # whether or not the run was resumed in between.
        step_loss = sum(self.losses) / len(self.losses)
        self.losses = []
        finished = step >= plan.total_steps
        if step % self.eval_every == 0 or finished:
            self._record_point(trainer, pl_module, step, step_loss)
        if finished:
            self._save(trainer)
            self.folder.write_state({"status": "finished", "step": step, "D": step * plan.tokens_per_step})
        elif self._stop_requested(trainer):
            self._save(trainer)
            self.folder.write_state({"status": "interrupted", "step": step, "reason": self.stop_reason})
            trainer.should_stop = True
        elif step % (self.eval_every * CHECKPOINT_EVERY_EVALUATIONS) == 0:
            self._save(trainer)

    def _stop_requested(self, trainer) -> bool:  # type: ignore[no-untyped-def]
        """Whether any rank got a stop signal: every rank must save and stop at the same step,
        or the collectives of the checkpoint would wait forever."""
        stop = trainer.strategy.reduce_boolean_decision(self.stop_reason is not None, all=False)
        if stop and self.stop_reason is None:
            self.stop_reason = "signal on another rank"
        return bool(stop)

    def _record_point(self, trainer, pl_module, step: int, step_loss: float) -> None:  # type: ignore[no-untyped-def]
        plan = self.prepared.plan
        elapsed = time.perf_counter() - self.step_started
        tokens_per_s = self.tokens_timed / elapsed if elapsed > 0 else math.nan
        val_loss = pl_module.validation_loss(self.val_windows, batch_size=max(1, plan.micro_batch))
        if trainer.is_global_zero:
            point = CurvePoint(
                run_id=self.run_id, N=self.prepared.n_params, D=step * plan.tokens_per_step, U_D=plan.unique_tokens,
                loss=val_loss, step=step, split="val", train_loss=step_loss,
                lr=trainer.optimizers[0].param_groups[0]["lr"], tokens_per_s=tokens_per_s,
                mfu=tokens_per_s * self.flops_per_token / self.peak_flops,
            )
            self.folder.append_point(point)
            if self.tracking is not None:
                tracker, mlflow_run_id = self.tracking
                tracker.log_points(mlflow_run_id, [point.to_row()])
        self.tokens_timed = 0
        self.step_started = time.perf_counter()  # throughput excludes the evaluation

    def _save(self, trainer) -> None:  # type: ignore[no-untyped-def]
        final = self.folder.checkpoint
        tmp = final.with_name(final.name + ".tmp")
        try:
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a half-written checkpoint (a full disk) is not left beside the good one
            raise
        trainer.strategy.barrier()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:  # type: ignore[no-untyped-def]
        # The data position is the optimizer step Lightning saves; the RNG states cover
        # anything random a model variant adds (dropout), and the run id ties the
        # checkpoint to its run (and its tracking record).
        checkpoint["smslab"] = {
            "run_id": self.run_id,
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:  # type: ignore[no-untyped-def]
        saved = checkpoint.get("smslab", {})
        if saved.get("run_id") not in (None, self.run_id):
            raise RunError(f"{self.folder.path}: the checkpoint belongs to run {saved['run_id']}, not {self.run_id}")
        rng = saved.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            name, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(rng["python"])

    def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _numpy_rng_state() -> tuple[object, ...]:
    """numpy's global RNG state with its key array as a tensor: checkpoints load with weights_only."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
