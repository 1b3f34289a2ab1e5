"""Training runs end to end: learning, exact resume after SIGTERM, DDP parity, bad input, NaN."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAST = ["--preset", "tiny-0.1m", "--context", "32", "--batch-tokens", "512", "--micro-batch", "8",
        "--lr", "3e-3", "--final-lr", "3e-4", "--precision", "32"]


def train(corpus: Path, out: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", "train", "--corpus", str(corpus), "--out", str(out), *FAST, *extra],
                          capture_output=True, text=True, timeout=timeout)


def curve(out: Path) -> list[dict[str, str]]:
    with (out / "curve.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_tiny_model_drives_the_loss_far_below_its_start(small_corpus: Path, tmp_path: Path):
    proc = train(small_corpus, tmp_path / "run", "--fraction", "1", "--epochs", "3", "--eval-every", "4096")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "finished"
    points = curve(tmp_path / "run")
    first, last = float(points[0]["loss"]), float(points[-1]["loss"])
    assert last < 0.6 * first
    assert {p["split"] for p in points} == {"val"}
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    # D is exact: steps × batch tokens; U_D is one epoch of the fraction's windows.
    assert int(points[-1]["D"]) == spec["planned_D"] == spec["steps"] * 512
    assert spec["planned_D"] == pytest.approx(3 * spec["U_D"], rel=0.02)
    assert all(int(p["U_D"]) == spec["U_D"] and int(p["N"]) == spec["N"] for p in points)
    assert spec["N_for_laws"] == "non_embedding"


@pytest.mark.slow
def test_a_run_killed_by_sigterm_resumes_to_the_same_curve_and_final_loss(small_corpus: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("--fraction", "1", "--epochs", "1", "--eval-every", "1024", "--tracking-uri", uri, "--campaign", "resume")
    reference = train(small_corpus, tmp_path / "whole", *args)
    assert reference.returncode == 0, reference.stderr[-3000:]
    cmd = [sys.executable, "-m", "smslab", "train", "--corpus", str(small_corpus), "--out", str(tmp_path / "cut"), *FAST, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.2)
        if (tmp_path / "cut" / "curve.csv").is_file() and len(curve(tmp_path / "cut")) >= 3:
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert state["status"] == "interrupted" and state["reason"] == "signal SIGTERM"
    interrupted_points = len(curve(tmp_path / "cut"))
    resumed = train(small_corpus, tmp_path / "cut", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole, cut = curve(tmp_path / "whole"), curve(tmp_path / "cut")
    assert len(whole) > interrupted_points
    assert [p["D"] for p in cut] == [p["D"] for p in whole]  # no gap, no duplicate
    for a, b in zip(whole, cut):
        assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-5, abs=1e-6)
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-5, abs=1e-6)
    # MLflow holds both runs; the resumed one is one MLflow run whose curve reads back without duplicates.
    from storage.tracking import Tracker

    points = Tracker(uri).read_points("resume")
    resumed_points = points[points.run_id == cut[0]["run_id"]]
    assert resumed_points["run_id"].nunique() == 1
    assert [int(d) for d in resumed_points["D"]] == [int(p["D"]) for p in cut]
    assert list(resumed_points["loss"]) == pytest.approx([float(p["loss"]) for p in cut])
    mlflow_run = Tracker(uri).client.get_run(json.loads((tmp_path / "cut" / "spec.json").read_text())["mlflow_run_id"])
    assert mlflow_run.data.tags["smslab.status"] == "finished" and mlflow_run.data.params["N"] == cut[0]["N"]
    params = mlflow_run.data.params
    assert params["spec_hash"].startswith(cut[0]["run_id"]) and len(params["spec_hash"]) == 64
    assert params["code_version"].startswith("0.1.0")
    assert {"preset", "fraction", "epochs", "lr", "seed", "N_with_embeddings", "U_D", "planned_D"} <= set(params)


@pytest.mark.slow
def test_two_gloo_processes_give_the_loss_of_one_at_the_same_global_batch(small_corpus: Path, tmp_path: Path):
    args = ("--fraction", "0.25", "--tokens", "8192", "--eval-every", "2048")
    one = train(small_corpus, tmp_path / "one", *args)
    assert one.returncode == 0, one.stderr[-3000:]
    two = train(small_corpus, tmp_path / "two", *args, "--devices", "2", "--strategy", "ddp")
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = curve(tmp_path / "one"), curve(tmp_path / "two")
    assert [p["D"] for p in a] == [p["D"] for p in b]
    for p, q in zip(a, b):
        assert float(q["loss"]) == pytest.approx(float(p["loss"]), rel=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--preset", "tiny-9m"), "unknown preset 'tiny-9m'"),
        (("--context", "4096"), "context 4096 is longer than preset tiny-0.1m allows (1024)"),
        (("--fraction", "0.75"), "no data fraction 0.75"),
        (("--batch-tokens", "500"), "not a multiple of the context 32"),
        (("--epochs", "inf"), "epochs must be a positive finite number"),
        (("--batch-tokens", "0"), "batch_tokens must be a positive finite number"),
        (("--micro-batch", "0"), "micro_batch must be a positive finite number"),
        (("--lr", "-1"), "lr must be a positive finite number"),
    ],
)
def test_bad_input_is_refused_before_training(small_corpus: Path, tmp_path: Path, extra, message):
    proc = train(small_corpus, tmp_path / "run", "--fraction", "1", "--epochs", "1", *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "curve.csv").exists()


def test_missing_shards_are_refused(small_corpus: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((small_corpus / "manifest.json").read_text())
    proc = train(broken, tmp_path / "run", "--fraction", "1", "--epochs", "1")
    assert proc.returncode == 2 and "missing from the corpus" in proc.stderr and "Traceback" not in proc.stderr
    proc = train(tmp_path / "nothing", tmp_path / "run", "--fraction", "1", "--epochs", "1")
    assert proc.returncode == 2 and "no corpus here" in proc.stderr


@pytest.mark.slow
def test_a_diverging_run_stops_as_failed_with_its_step(small_corpus: Path, tmp_path: Path):
    proc = train(small_corpus, tmp_path / "run", "--fraction", "1", "--epochs", "2", "--eval-every", "512", "--lr", "1e6",
                 "--final-lr", "1e6")
    assert proc.returncode == 1
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["status"] == "failed" and "non-finite training loss" in state["reason"]
    assert isinstance(state["step"], int)
