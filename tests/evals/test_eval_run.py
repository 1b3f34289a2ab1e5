"""``smslab eval run``: a tiny run recorded in MLflow, sampled and measured beside its held-out tunes, logged,
skipped the second time, exported; runs that cannot be evaluated refused with their name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evals.settings import EvalSettings

TRAIN = ["--preset", "tiny-0.1m", "--context", "128", "--batch-tokens", "1024", "--micro-batch", "8", "--lr", "3e-3",
         "--final-lr", "3e-4", "--precision", "32", "--fraction", "1", "--epochs", "1", "--eval-every", "100000"]
EVAL = ["--samples", "4", "--max-new-tokens", "64", "--reference-tunes", "6", "--workers", "2"]


def smslab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def tracked_run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("eval-run")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    proc = smslab("train", "--corpus", str(small_corpus), "--out", str(root / "run"), *TRAIN,
                  "--tracking-uri", uri, "--campaign", "evals")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", uri


@pytest.mark.slow
def test_a_run_is_sampled_measured_beside_real_tunes_logged_skipped_and_exported(tracked_run: tuple[Path, str],
                                                                                 tmp_path: Path):
    run, uri = tracked_run
    proc = smslab("eval", "run", str(run), *EVAL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "logged" in proc.stdout and "repetition rate" in proc.stdout
    out = run / "eval"
    for name in ("samples.smt", "samples.abc", "samples.jsonl", "reference.smt", "report.txt", "measures.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "measures.json").read_text())
    assert set(data["samples"]["measures"]) == set(data["reference"]["measures"]) == set(data["gaps"])
    assert len(data["samples"]["tunes"]) == 4 and len(data["reference"]["tunes"]) == 6
    assert all(t["smt"] for t in data["samples"]["tunes"] + data["reference"]["tunes"])  # V5 taken on both
    assert data["settings"] == {**EvalSettings().to_dict(), "samples": 4, "max_new_tokens": 64, "reference_tunes": 6}
    final_d = int(pd.read_csv(run / "curve.csv")["D"].iloc[-1])
    assert data["checkpoint"]["D"] == final_d and data["mlflow"]["step"] == final_d

    from storage.tracking import Tracker

    tracker = Tracker(uri)
    mlflow_run = json.loads((run / "spec.json").read_text())["mlflow_run_id"]
    metrics = tracker.client.get_run(mlflow_run).data.metrics
    repetition = data["samples"]["measures"]["repetition_rate"]["value"]
    assert metrics["eval_repetition_rate"] == pytest.approx(repetition)
    assert metrics["eval_real_repetition_rate"] == pytest.approx(data["reference"]["measures"]["repetition_rate"]["value"])
    assert metrics["eval_samples"] == 4 and metrics["eval_real_tunes"] == 6
    assert {m.step for m in tracker.client.get_metric_history(mlflow_run, "eval_repetition_rate")} == {final_d}
    assert "loss" in metrics  # the curve is still there

    again = smslab("eval", "run", str(run), *EVAL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already evaluated" in again.stdout
    assert json.loads((out / "measures.json").read_text()) == data
    assert len(tracker.client.get_metric_history(mlflow_run, "eval_repetition_rate")) == 1  # nothing logged again

    export = smslab("runs", "export", "--tracking-uri", uri, "--campaign", "evals", "--measures",
                    "--out", str(tmp_path / "measures.csv"))
    assert export.returncode == 0, export.stderr[-3000:]
    table = pd.read_csv(tmp_path / "measures.csv")
    row = table[table["run_id"] == json.loads((run / "spec.json").read_text())["run_id"]].iloc[0]
    assert row["D"] == final_d and row["eval_repetition_rate"] == pytest.approx(repetition)
    assert {"N", "N_with_embeddings", "U_D", "eval_real_repetition_rate"} <= set(table.columns)


@pytest.mark.slow
def test_other_settings_evaluate_again_and_no_store_means_no_logging(tracked_run: tuple[Path, str], tmp_path: Path):
    run, _ = tracked_run
    # A copy of the run folder without its tracking record: measured, not logged, and said so.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", ".lock"))
    record = json.loads((copy / "spec.json").read_text())
    for key in ("tracking_uri", "mlflow_run_id"):
        record.pop(key, None)
    (copy / "spec.json").write_text(json.dumps(record))
    proc = smslab("eval", "run", str(copy), *EVAL, "--prompt", "first-bar", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["skipped"] is False and summary["mlflow"] is None
    assert json.loads((copy / "eval" / "measures.json").read_text())["settings"]["prompt"] == "first-bar"


def test_a_run_without_checkpoint_a_missing_run_and_a_gone_corpus_exit_2_naming_them(tmp_path: Path):
    missing = smslab("eval", "run", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere: no such run folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    untrained = tmp_path / "untrained"
    (untrained / "checkpoints").mkdir(parents=True)
    (untrained / "spec.json").write_text(json.dumps({"run_id": "r", "corpus": str(tmp_path / "corpus")}))
    proc = smslab("eval", "run", str(untrained))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{untrained}: no checkpoint" in proc.stderr and "train the run first" in proc.stderr
    bad = smslab("eval", "run", str(untrained), "--samples", "0")
    assert bad.returncode == 2 and "samples must be at least 1" in bad.stderr


@pytest.mark.slow
def test_a_run_whose_corpus_is_gone_exits_2_naming_the_corpus(tracked_run: tuple[Path, str], tmp_path: Path):
    run, _ = tracked_run
    proc = smslab("eval", "run", str(run), *EVAL, "--force", "--corpus", str(tmp_path / "gone"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"corpus {tmp_path / 'gone'}: no such folder" in proc.stderr
    assert (run / "eval" / "measures.json").is_file()  # refused before anything was replaced
