"""One training run: a run spec in, a loss curve and checkpoints out, resumable after preemption.

A run folder holds ``spec.json`` (the run spec and its id), ``state.json``
(status: running, interrupted, finished or failed, with the step and reason),
``curve.csv`` (the loss-point table of ARCHITECTURE.md — run_id, N, D, U_D,
loss, step, split — plus train_loss, lr, tokens_per_s and mfu) and
``checkpoints/last.ckpt``.

Starting the same run again in the same folder resumes from the last
checkpoint: the data position is a pure function of the optimizer step (see
``trainer/data.py``), model, optimiser and scheduler come from the checkpoint,
and the curve is cut back to the checkpoint before new points are appended,
so a resumed curve has no gap and no duplicate and ends where an
uninterrupted run ends. On SIGTERM or SIGUSR1 the run finishes its optimizer
step, saves a checkpoint and exits cleanly (status ``interrupted``), ready to
be requeued. A NaN or infinite loss stops the run as ``failed`` with its step,
keeping the last good checkpoint.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import random
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from corpus.shards import Manifest, load_tokens
from trainer.data import ShardDataModule, StreamPlan, plan_stream, validation_windows
from trainer.model import count_params, flops_per_token
from trainer.provenance import code_version
from trainer.presets import N_FOR_LAWS, get_preset

# Signals that mean "checkpoint at the end of this optimizer step and stop": SIGTERM (Slurm
# preemption and scancel), SIGUSR1 (Lightning's convention) and SIGUSR2 (submitit's
# preemption/timeout signal; sweeps hands the stop over to submitit's requeue).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
CURVE_COLUMNS = ("run_id", "N", "D", "U_D", "loss", "step", "split", "train_loss", "lr", "tokens_per_s", "mfu")


@dataclass(frozen=True)
class RunSpec:
    """What a run is. Its id is a hash of this canonical form: the same spec is the same run."""

    preset: str
    fraction: float
    epochs: float | None = None
    tokens: int | None = None
    context: int = 256
    lr: float = 3e-3
    final_lr: float = 3e-4
    batch_tokens: int = 8192
    micro_batch: int = 8
    seed: int = 0
    data_mix: str = "abc"
    eval_every_tokens: int = 65_536
    precision: str = "32"  # "32", "bf16-mixed" or "auto" (bf16 where the device supports it)

    def spec_hash(self) -> str:
        """SHA-256 of the spec's canonical JSON: the same spec is the same run."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def run_id(self) -> str:
        return self.spec_hash()[:16]


class RunError(ValueError):
    """A run that cannot start: the message says which input is wrong (exit status 2)."""


class RunBusyError(RunError):
    """Another process is training in this run folder right now."""


LOCK_ATTEMPTS = 20


@contextmanager
def run_folder_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out/.lock`` while training: two processes training the
    same folder would interleave checkpoints and curves. The lock dies with its process."""
    handle = (out / ".lock").open("a")
    try:
        # ``folder_in_use`` probes the lock for an instant: a held lock is busy only if it stays held.
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == LOCK_ATTEMPTS - 1:
                    raise RunBusyError(f"{out}: another process is training this run (its .lock is held)") from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


def folder_in_use(out: Path) -> bool:
    """Whether some process holds the run folder's lock (is training it now)."""
    lock = out / ".lock"
    if not lock.is_file():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _write_atomic(path: Path, write: Callable[[TextIO], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json_atomic(path: Path, data: object) -> None:
    _write_atomic(path, lambda handle: json.dump(data, handle, indent=2))


def read_curve(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _write_curve(path: Path, rows: list[dict[str, object]]) -> None:
    def write(handle: TextIO) -> None:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    _write_atomic(path, write)


def resolve_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


def measure_peak_flops(seconds: float = 0.3) -> float:
    """This machine's fp32 matmul throughput (2048² × 2048²), the MFU denominator."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - started)


@dataclass(frozen=True)
class Prepared:
    spec: RunSpec
    plan: StreamPlan
    n_params: int
    n_params_with_embeddings: int
    vocab_size: int
    fraction_tokens: int


def prepare(spec: RunSpec, corpus_dir: Path, world_size: int = 1) -> Prepared:
    """Check the spec against the corpus before anything trains."""
    try:
        preset = get_preset(spec.preset)
    except KeyError as exc:
        raise RunError(str(exc.args[0])) from None
    if spec.context > preset.max_seq_len:
        raise RunError(f"context {spec.context} is longer than preset {spec.preset} allows ({preset.max_seq_len})")
    if spec.context < 2:
        raise RunError(f"context must be at least 2 tokens, got {spec.context}")
    manifest_path = corpus_dir / "manifest.json"
    if not manifest_path.is_file():
        raise RunError(f"{corpus_dir}: no corpus here (no manifest.json); build one with `smslab corpus build --out {corpus_dir}`")
    manifest = Manifest.read(corpus_dir)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        if not (corpus_dir / name).is_file():
            raise RunError(f"{corpus_dir}: the shard {name} is missing; rebuild the corpus")
    try:
        fraction = manifest.fraction(spec.fraction)
    except KeyError as exc:
        raise RunError(f"{corpus_dir}: {exc.args[0]}") from None
    try:
        plan = plan_stream(fraction.tokens, spec.context, spec.batch_tokens, spec.micro_batch, world_size, spec.epochs, spec.tokens)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    cfg = preset.config(manifest.vocab_size, spec.context)
    return Prepared(spec, plan, count_params(cfg, False), count_params(cfg, True), manifest.vocab_size, fraction.tokens)


def train_run(spec: RunSpec, corpus_dir: str | Path, out_dir: str | Path, devices: int = 1, strategy: str = "auto",
              accelerator: str = "auto", show_progress: bool = True, tracking_uri: str | None = None,
              campaign: str = "default") -> dict[str, object]:
    """Train (or resume) the run in ``out_dir``; returns its final state.

    With ``tracking_uri`` the run and every curve point are also recorded in
    MLflow through ``storage`` (the same MLflow run again when resuming).

    A second process starting the same folder while one trains it gets
    ``RunBusyError``. An exception during training is recorded before it
    propagates: ``state.json`` says failed with the error, and so does MLflow.
    """
    corpus_dir, out = Path(corpus_dir), Path(out_dir)
    prepared = prepare(spec, corpus_dir, world_size=devices)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    if not _is_launching_rank_zero():
        # DDP workers started by Lightning (or srun tasks) train alongside the rank-0 process, which holds the lock.
        return _train_unlocked(spec, prepared, corpus_dir, out, devices, strategy, accelerator, show_progress,
                               tracking_uri, campaign)
    with run_folder_lock(out):
        return _train_unlocked(spec, prepared, corpus_dir, out, devices, strategy, accelerator, show_progress,
                               tracking_uri, campaign)


def _is_launching_rank_zero() -> bool:
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "RANK"))


def _train_unlocked(spec: RunSpec, prepared: Prepared, corpus_dir: Path, out: Path, devices: int, strategy: str,
                    accelerator: str, show_progress: bool, tracking_uri: str | None, campaign: str) -> dict[str, object]:
    import lightning as L

    from trainer.module import DecoderModule

    plan = prepared.plan
    spec_file = out / "spec.json"
    if spec_file.is_file():
        existing = json.loads(spec_file.read_text())
        if existing.get("run_id") != spec.run_id():
            raise RunError(f"{out}: holds run {existing.get('run_id')}, not this spec's run {spec.run_id()}; use another --out")
    state_file = out / "state.json"
    if state_file.is_file() and json.loads(state_file.read_text()).get("status") == "finished":
        return json.loads(state_file.read_text())
    record = {
        "run_id": spec.run_id(), "spec": asdict(spec), "N": prepared.n_params,
        "N_with_embeddings": prepared.n_params_with_embeddings, "N_for_laws": N_FOR_LAWS,
        "U_D": plan.unique_tokens, "fraction_tokens": prepared.fraction_tokens, "planned_D": plan.total_tokens,
        "steps": plan.total_steps, "tokens_per_step": plan.tokens_per_step, "vocab_size": prepared.vocab_size,
        "corpus": str(corpus_dir), "corpus_key": Manifest.read(corpus_dir).cache_key,
        "spec_hash": spec.spec_hash(), "code_version": code_version(),
    }
    tracking = None
    if tracking_uri:
        from storage.tracking import RunRecord, Tracker

        tracker = Tracker(tracking_uri)
        params = {**asdict(spec), **{k: v for k, v in record.items() if k not in ("spec", "run_id")}}
        tracking = (tracker, tracker.open_run(RunRecord(spec.run_id(), campaign, params)))
        record["mlflow_run_id"] = tracking[1]
        record["tracking_uri"] = tracking_uri
    _write_json_atomic(spec_file, record)

    ckpt = out / "checkpoints" / "last.ckpt"
    start_step = 0
    if ckpt.is_file():
        start_step = int(torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"])
    # The curve keeps what the checkpoint had seen: points logged after it are recomputed identically.
    curve_file = out / "curve.csv"
    kept = [r for r in read_curve(curve_file) if int(r["step"]) <= start_step]
    _write_curve(curve_file, kept)  # type: ignore[arg-type]

    L.seed_everything(spec.seed, workers=True, verbose=False)
    precision = resolve_precision(spec.precision)
    cfg = get_preset(spec.preset).config(prepared.vocab_size, spec.context)
    module = DecoderModule(cfg, spec.lr, spec.final_lr, plan.total_steps)
    train_tokens = load_tokens(corpus_dir, "train")[: Manifest.read(corpus_dir).fraction(spec.fraction).end_offset]
    data = ShardDataModule(train_tokens, plan, spec.seed, start_step)
    accumulation = plan.micro_batches_per_step() // devices
    eval_every = max(1, round(spec.eval_every_tokens / plan.tokens_per_step))
    callback = CurveCallback(spec, prepared, out, eval_every, validation_windows(load_tokens(corpus_dir, "val"), spec.context),
                             flops_per_token(cfg, spec.context), tracking)
    trainer = L.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, precision=precision,  # type: ignore[arg-type]
        max_steps=plan.total_steps, max_epochs=-1, accumulate_grad_batches=accumulation, gradient_clip_val=1.0,
        logger=False, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=show_progress,
        use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[callback],
        plugins=_plugins(),
    )
    _write_state(out, {"status": "running", "step": start_step})
    if tracking is not None and trainer.is_global_zero:
        tracking[0].set_status(tracking[1], "running")
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if ckpt.is_file() else None)
    except Exception as exc:
        if trainer.is_global_zero:
            error = f"{type(exc).__name__}: {exc}"
            _write_state(out, {"status": "failed", "step": trainer.global_step, "reason": "exception", "error": error,
                               "traceback": traceback.format_exc(limit=20)})
            if tracking is not None:
                tracking[0].set_status(tracking[1], "failed", error=error)  # type: ignore[attr-defined]
        raise
    final = json.loads(state_file.read_text())
    if tracking is not None and trainer.is_global_zero:
        error = str(final.get("reason", "")) if final["status"] == "failed" else None
        tracking[0].set_status(tracking[1], str(final["status"]), error=error)  # type: ignore[attr-defined]
    return final


def _numpy_rng_state() -> tuple[object, ...]:
    """numpy's global RNG state with its key array as a tensor: checkpoints load with weights_only."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _plugins() -> list[object]:
    # submitit owns requeueing on clusters: Lightning's own SLURM auto-requeue stays off.
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if "SLURM_JOB_ID" in os.environ else []


def _write_state(out: Path, state: dict[str, object]) -> None:
    _write_json_atomic(out / "state.json", state)


class CurveCallback(Callback):
    """Logs the curve, evaluates every k steps, checkpoints, and handles signals and NaN."""

    def __init__(self, spec: RunSpec, prepared: Prepared, out: Path, eval_every: int, val_windows: torch.Tensor,
                 flops_per_token: float, tracking: tuple[object, str] | None = None) -> None:
        self.tracking = tracking
        self.spec = spec
        self.prepared = prepared
        self.out = out
        self.eval_every = eval_every
        self.val_windows = val_windows
        self.flops_per_token = flops_per_token
        self.stop_reason: str | None = None
        self.losses: list[float] = []
        self.step_started = time.perf_counter()
        self.tokens_timed = 0
        self.peak_flops = 1.0
        self._previous_handlers: dict[int, object] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.peak_flops = measure_peak_flops()
        for sig in STOP_SIGNALS:
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        self.step_started = time.perf_counter()

    def _on_signal(self, signum: int, frame: object) -> None:
        # Slurm sends SIGTERM before the preemption signal: the more specific one names the stop.
        if self.stop_reason is None or signum != signal.SIGTERM:
            self.stop_reason = f"signal {signal.Signals(signum).name}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        loss = float(pl_module.last_train_loss)
        self.losses.append(loss)
        self.tokens_timed += self.prepared.plan.micro_batch * self.prepared.plan.context * trainer.world_size
        if not math.isfinite(loss):
            trainer.should_stop = True
            self.stop_reason = "nan"
            _write_state(self.out, {"status": "failed", "step": trainer.global_step,
                                    "reason": f"non-finite training loss ({loss}) at optimizer step {trainer.global_step}"})
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # inside an accumulation: the optimizer has not stepped yet
        step = trainer.global_step
        plan = self.prepared.plan
        # The train loss of this optimizer step (its micro-batches on this rank): the same
        # whether or not the run was resumed in between.
        step_loss = sum(self.losses) / len(self.losses)
        self.losses = []
        finished = step >= plan.total_steps
        if step % self.eval_every == 0 or finished:
            self._log_point(trainer, pl_module, step, step_loss)
        if finished:
            self._save(trainer)
            _write_state(self.out, {"status": "finished", "step": step, "D": step * plan.tokens_per_step})
        elif self._stop_requested(trainer):
            self._save(trainer)
            _write_state(self.out, {"status": "interrupted", "step": step, "reason": self.stop_reason})
            trainer.should_stop = True
        elif step % (self.eval_every * 4) == 0:
            self._save(trainer)

    def _stop_requested(self, trainer) -> bool:  # type: ignore[no-untyped-def]
        """Whether any rank got a stop signal: every rank must save and stop at the same step,
        or the collectives of the checkpoint would wait forever."""
        stop = trainer.strategy.reduce_boolean_decision(self.stop_reason is not None, all=False)
        if stop and self.stop_reason is None:
            self.stop_reason = "signal on another rank"
        return bool(stop)

    def _log_point(self, trainer, pl_module, step: int, step_loss: float) -> None:  # type: ignore[no-untyped-def]
        plan = self.prepared.plan
        elapsed = time.perf_counter() - self.step_started
        tokens_per_s = self.tokens_timed / elapsed if elapsed > 0 else float("nan")
        val_loss = pl_module.validation_loss(self.val_windows, batch_size=max(1, plan.micro_batch))
        if trainer.is_global_zero:
            row = {
                "run_id": self.spec.run_id(), "N": self.prepared.n_params, "D": step * plan.tokens_per_step,
                "U_D": plan.unique_tokens, "loss": val_loss, "step": step, "split": "val",
                "train_loss": step_loss, "lr": trainer.optimizers[0].param_groups[0]["lr"],
                "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * self.flops_per_token / self.peak_flops,
            }
            curve_file = self.out / "curve.csv"
            with curve_file.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=CURVE_COLUMNS).writerow(row)
            if self.tracking is not None:
                tracker, mlflow_run_id = self.tracking
                tracker.log_points(mlflow_run_id, [{**row, "val_loss": row["loss"]}])  # type: ignore[attr-defined]
        self.tokens_timed = 0
        self.step_started = time.perf_counter()  # throughput excludes the evaluation

    def _save(self, trainer) -> None:  # type: ignore[no-untyped-def]
        final = self.out / "checkpoints" / "last.ckpt"
        tmp = self.out / "checkpoints" / "last.ckpt.tmp"
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, final)
        trainer.strategy.barrier()

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:  # type: ignore[no-untyped-def]
        # The data position is the optimizer step Lightning saves; the RNG states cover
        # anything random a model variant adds (dropout), and the run id ties the
        # checkpoint to its run (and its tracking record).
        checkpoint["smslab"] = {
            "run_id": self.spec.run_id(),
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:  # type: ignore[no-untyped-def]
        saved = checkpoint.get("smslab", {})
        if saved.get("run_id") not in (None, self.spec.run_id()):
            raise RunError(f"{self.out}: the checkpoint belongs to run {saved['run_id']}, not {self.spec.run_id()}")
        rng = saved.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            name, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(rng["python"])

    def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
