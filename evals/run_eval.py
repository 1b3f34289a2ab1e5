"""``smslab eval run``: sample a run's checkpoint, measure the samples beside the corpus' held-out tunes, record both.

Into ``RUN/eval/`` (each file replaced atomically): ``samples.smt|abc|jsonl`` (evals/sampling.py),
``reference.smt`` (the held-out tunes measured), ``report.txt`` (the side-by-side table) and, last,
``measures.json``: ``{"settings", "checkpoint", "samples", "reference", "gaps", "mlflow"}``. ``measures.json`` is
written only once everything else is done, so it marks a whole evaluation: the same settings at the same
checkpoint are skipped unless ``force``.

Samples are measured as SMT-ABC (``samples.smt``): a sample that does not convert to ABC counts as a failure, and
V5 is taken. The reference is the corpus' validation split (never trained on), its first ``reference_tunes``
tunes decoded from the token shards to SMT-ABC, the form the corpus keeps them in; the measures read each
through from-smt, as the corpus' own conversion does, so samples and real tunes take the same path.

When the run is recorded in MLflow (its ``spec.json`` names the tracking URI and MLflow run, trainer/run.py),
or ``tracking_uri``/``campaign`` name it, each measure's value is logged as ``eval_<measure>`` and the real
set's as ``eval_real_<measure>``, with ``eval_samples`` and ``eval_real_tunes`` (the set sizes), at step = the
checkpoint's D, the step its loss point has.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.shards import load_tokens
from corpus.tokenizer import END_OF_TUNE, AbcTokenizer
from evals.abc_files import TuneInput, read_tunes, tune_inputs
from evals.measures import MeasureSet, MeasureSettings, measure_tunes, with_reference
from evals.sampling import SamplingError, Source, open_corpus, resolve_source, sample_checkpoint
from evals.settings import EvalSettings
from storage.tracking import MEASURE_PREFIX, StorageError, Tracker, open_store
from trainer.folder import RunFolder, read_json, write_atomic
from trainer.sample import SamplingSettings

EVAL_FOLDER = "eval"
MEASURES_FILE = "measures.json"
REAL_PREFIX = f"{MEASURE_PREFIX}real_"
Formatter = Callable[[MeasureSet, list[str]], str]  # evals/eval_cli.py's format_table


class EvalRunError(ValueError):
    """A run that cannot be evaluated (missing, not trained, its corpus gone); the message names it."""

    exit_status = 2  # the command line's status for it (see smslab/cli.py)


@dataclass(frozen=True)
class Tracking:
    """Where the measures are logged: a store and the run's MLflow run there."""

    tracker: Tracker
    mlflow_run_id: str
    uri: str


def eval_folder(run: str | Path) -> Path:
    return Path(run) / EVAL_FOLDER


def check_run(run: str | Path) -> RunFolder:
    """The run folder, refused (naming it) when missing, not a run, being trained now, or without a checkpoint."""
    folder = RunFolder(Path(run))
    if not folder.path.is_dir():
        raise EvalRunError(f"{folder.path}: no such run folder")
    if not folder.spec_file.is_file():
        raise EvalRunError(f"{folder.path}: not a run folder (no spec.json)")
    status = folder.status()
    if status == "running":
        raise EvalRunError(f"{folder.path}: is being trained now (its .lock is held); evaluate it when it stops")
    if not folder.checkpoint.is_file():
        raise EvalRunError(f"{folder.path}: no checkpoint ({folder.checkpoint}; status {status}); train the run first")
    return folder


def checkpoint_tokens(folder: RunFolder) -> int:
    """D of the checkpoint: the last curve point's for a finished run (its checkpoint is saved at the end);
    otherwise the checkpoint's optimizer step × tokens per step (the curve may run past the checkpoint)."""
    curve = folder.read_curve()
    if folder.read_state().get("status") == "finished" and curve:
        return curve[-1].D
    from trainer.run import checkpoint_step  # loads the whole checkpoint: only for runs that stopped early

    per_step = folder.read_record().get("tokens_per_step")
    if not isinstance(per_step, int):
        raise EvalRunError(f"{folder.spec_file}: records no tokens_per_step; cannot place the checkpoint on the curve")
    return checkpoint_step(folder.checkpoint) * per_step


def checkpoint_stamp(folder: RunFolder, d: int) -> dict[str, object]:
    """What identifies the checkpoint evaluated: a run trained again (or further) has another stamp."""
    stat = folder.checkpoint.stat()
    return {"path": str(folder.checkpoint), "D": d, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def resolve_tracking(folder: RunFolder, tracking_uri: str | None, campaign: str | None) -> Tracking | None:
    """The MLflow run to log to: the one the run folder records, or the run found by its id in ``campaign``
    (default "default") of ``tracking_uri``; None when neither names a store."""
    record = folder.read_record()
    recorded_uri, recorded_run = record.get("tracking_uri"), record.get("mlflow_run_id")
    uri = tracking_uri or (str(recorded_uri) if recorded_uri else None)
    if uri is None:
        return None
    try:
        tracker = open_store(uri)
    except StorageError as exc:
        raise EvalRunError(f"tracking store of {folder.path}: {exc}") from None
    if campaign is None and recorded_run and uri == recorded_uri:
        return Tracking(tracker, str(recorded_run), uri)
    name = campaign or "default"
    found = tracker.find_run(name, str(record.get("run_id")))
    if found is None:
        raise EvalRunError(f"no MLflow run for run {record.get('run_id')} in campaign {name!r} of {uri}; "
                           "give the --campaign it was trained in")
    return Tracking(tracker, found, uri)


def reference_texts(corpus: Path, tokenizer: AbcTokenizer, limit: int) -> list[str]:
    """The first ``limit`` validation tunes of the corpus as SMT-ABC text (the end-of-tune token left out), read
    from the token shards the way evals/sampling.py reads first-bar prompts."""
    eos = tokenizer.token_id(END_OF_TUNE)
    tokens = np.asarray(load_tokens(corpus, "val"))
    starts = np.load(corpus / "val_index.npy").tolist()
    texts = []
    for start, end in list(zip(starts, [*starts[1:], len(tokens)], strict=True))[:limit]:
        tune = [t for t in tokens[start:end].tolist() if t != eos]
        texts.append(tokenizer.decode(tune))
    return texts


def measure_names(result: MeasureSet) -> dict[str, float]:
    """The MLflow metrics of a compared set: each measure's value and the real set's, where taken."""
    metrics: dict[str, float] = {f"{MEASURE_PREFIX}samples": float(len(result.tunes))}
    if result.reference_tunes is not None:
        metrics[f"{REAL_PREFIX}tunes"] = float(result.reference_tunes)
    for m in result.measures:
        if m.value is not None:
            metrics[f"{MEASURE_PREFIX}{m.name}"] = m.value
        if m.reference_value is not None:
            metrics[f"{REAL_PREFIX}{m.name}"] = m.reference_value
    return metrics


def evaluate_run(run: str | Path, settings: EvalSettings, formatter: Formatter, *, force: bool = False,
                 tracking_uri: str | None = None, campaign: str | None = None, corpus: str | Path | None = None,
                 batch_size: int = 16, device: str = "auto", workers: int = 0,
                 say: Callable[[str], None] = print) -> dict[str, object]:
    """Evaluate the run (see the module docstring); returns what ``measures.json`` holds, with ``skipped``.

    ``formatter`` writes the table of ``report.txt`` (evals/eval_cli.py's ``format_table``, passed in because
    that module is the command line above this one)."""
    sampling = sampling_settings(settings)
    folder = check_run(run)
    d = checkpoint_tokens(folder)
    stamp = checkpoint_stamp(folder, d)
    out = eval_folder(folder.path)
    done = read_json(out / MEASURES_FILE)
    if not force and done.get("settings") == settings.to_dict() and done.get("checkpoint") == stamp:
        say(f"{out / MEASURES_FILE}: already evaluated with these settings at this checkpoint (D={d:,}); "
            "nothing to do (--force evaluates again)")
        return {**done, "skipped": True}
    tracking = resolve_tracking(folder, tracking_uri, campaign)  # before the long work: a wrong store fails fast
    try:
        source = resolve_source(folder.path, None, corpus)
        tokenizer = open_corpus(source.corpus)
    except SamplingError as exc:
        raise EvalRunError(str(exc)) from None
    # The old marker goes first: an evaluation that stops half way leaves no measures.json beside new samples.
    (out / MEASURES_FILE).unlink(missing_ok=True)
    samples, reference = draw_and_read(source, settings, sampling, tokenizer, out, batch_size, device)
    measure_settings = MeasureSettings(time_limit_s=settings.time_limit_s, workers=workers, seed=settings.seed)
    say(f"measuring {len(samples)} samples and {len(reference)} held-out tunes of {source.corpus}")
    measured = measure_tunes(samples, measure_settings)
    real = measure_tunes(reference, measure_settings)
    compared = with_reference(measured, real)
    report = formatter(compared, [str(out / "samples.smt")])
    write_atomic(out / "report.txt", f"run {folder.path} at D={d:,}, checkpoint {folder.checkpoint}\n\n{report}\n")
    logged: dict[str, object] | None = None
    if tracking is not None:
        metrics = measure_names(compared)
        tracking.tracker.log_measures(tracking.mlflow_run_id, metrics, step=d)
        logged = {"tracking_uri": tracking.uri, "mlflow_run_id": tracking.mlflow_run_id, "step": d,
                  "metrics": len(metrics)}
        say(f"logged {len(metrics)} eval_* metrics to MLflow run {tracking.mlflow_run_id} at step D={d:,}")
    else:
        say("not logged to MLflow: the run records no tracking store and no --tracking-uri was given")
    data: dict[str, object] = {
        "run": str(folder.path), "settings": settings.to_dict(), "checkpoint": stamp, "corpus": str(source.corpus),
        "samples": measured.to_dict(), "reference": real.to_dict(),
        "gaps": {m.name: {"value": m.value, "reference_value": m.reference_value, "gap_sd": m.gap_sd}
                 for m in compared.measures},
        "mlflow": logged,
    }
    write_atomic(out / MEASURES_FILE, json.dumps(data, allow_nan=False))
    return {**data, "skipped": False}


def sampling_settings(settings: EvalSettings) -> SamplingSettings:
    """The sampling part of ``settings``, checked (``EvalRunError`` naming the first one out of range)."""
    sampling = SamplingSettings(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
                                max_new_tokens=settings.max_new_tokens, seed=settings.seed)
    try:
        settings.check()
        sampling.check()
    except ValueError as exc:
        raise EvalRunError(str(exc)) from None
    return sampling


def draw_and_read(source: Source, settings: EvalSettings, sampling: SamplingSettings, tokenizer: AbcTokenizer,
                  out: Path, batch_size: int, device: str) -> tuple[list[TuneInput], list[TuneInput]]:
    """Sample into ``out`` and read the samples back as SMT-ABC tunes; write and return the reference tunes."""
    sample_checkpoint(source, settings.prompt, settings.samples, sampling, out, batch_size, device)
    samples = read_tunes([out / "samples.smt"])
    texts = reference_texts(source.corpus, tokenizer, settings.reference_tunes)
    if not texts:
        raise EvalRunError(f"corpus {source.corpus}: its validation split holds no tune")
    write_atomic(out / "reference.smt", "\n".join(f"% sample {i}\n{t.strip()}\n" for i, t in enumerate(texts)))
    return samples, tune_inputs(texts, source=str(out / "reference.smt"), smt=True)


def run_command(args: argparse.Namespace, formatter: Formatter) -> int:
    """The handler of ``smslab eval run`` (registered by evals/eval_cli.py)."""
    settings = EvalSettings(samples=args.samples, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                            reference_tunes=args.reference_tunes, time_limit_s=args.time_limit)
    if args.workers < 0 or args.batch_size < 1:
        raise EvalRunError(f"--workers must be >= 0 and --batch-size >= 1, got {args.workers} and {args.batch_size}")
    quiet = args.json

    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    result = evaluate_run(args.run, settings, formatter, force=args.force, tracking_uri=args.tracking_uri,
                          campaign=args.campaign, corpus=args.corpus, batch_size=args.batch_size, device=args.device,
                          workers=args.workers, say=say)
    out = eval_folder(args.run)
    if args.json:
        summary = {"skipped": result["skipped"], "measures": str(out / MEASURES_FILE), "mlflow": result.get("mlflow"),
                   "gaps": result.get("gaps")}
        print(json.dumps(summary, allow_nan=False))
    elif not result["skipped"]:
        print((out / "report.txt").read_text(), end="")
        print(f"written to {out}{os.sep}: samples.smt, samples.abc, samples.jsonl, reference.smt, report.txt, "
              f"{MEASURES_FILE}")
    return 0
