"""A real `mlflow server` process on 127.0.0.1: a training run logs over HTTP and storage reads it back."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port, wait_until_answering

from storage.tracking import RunRecord, Tracker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=(root / "server.log").open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/health", proc, 120, "mlflow server", (root / "server.log").read_text, proc.kill)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_curves_logged_over_http_read_back_without_duplicates(server: str):
    tracker = Tracker(server)
    run = tracker.open_run(RunRecord("run-http", "http-campaign", {"N": 1000, "U_D": 500, "preset": "tiny-0.1m"}))
    tracker.log_points(run, [{"D": d, "loss": 5.0 - d / 1000, "train_loss": 5.0} for d in (100, 200, 300)])
    # A resumed run logs its last point again: read-back keeps one value per step, the latest.
    assert Tracker(server).open_run(RunRecord("run-http", "http-campaign", {})) == run
    tracker.log_points(run, [{"D": 300, "loss": 4.6}, {"D": 400, "loss": 4.5}])
    tracker.set_status(run, "finished")
    table = tracker.read_points("http-campaign")
    assert list(table["D"]) == [100, 200, 300, 400]
    assert list(table["loss"]) == pytest.approx([4.9, 4.8, 4.6, 4.5])
    assert set(table["N"]) == {1000} and set(table["U_D"]) == {500}
    assert tracker.run_statuses("http-campaign") == {"run-http": "finished"}
    assert tracker.campaign_fingerprint("http-campaign") is None  # no cheap check on a server: read it all


@pytest.mark.slow
def test_a_training_run_records_its_curve_on_the_tracking_server(server: str, small_corpus: Path, tmp_path: Path):
    from trainer.run import train_run
    from trainer.spec import RunSpec

    spec = RunSpec(preset="tiny-0.1m", fraction=0.25, epochs=2, context=32, batch_tokens=512, micro_batch=8,
                   eval_every_tokens=2048)
    state = train_run(spec, small_corpus, tmp_path / "run", show_progress=False, tracking_uri=server,
                      campaign="http-train")
    assert state["status"] == "finished"
    with (tmp_path / "run" / "curve.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    table = Tracker(server).read_points("http-train")
    assert list(table["D"].astype(int)) == [int(r["D"]) for r in curve]
    assert list(table["loss"]) == pytest.approx([float(r["loss"]) for r in curve])
    assert list(table["step"]) == [int(r["step"]) for r in curve]  # the optimizer step, D in its own column
    assert set(table["run_id"]) == {spec.run_id()}


def test_an_unreachable_tracking_server_is_refused_within_seconds_naming_it(small_corpus: Path, tmp_path: Path):
    import time

    from storage.tracking import StorageError

    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.perf_counter()
    with pytest.raises(StorageError, match=f"tracking server {uri} does not answer"):
        Tracker(uri)
    assert time.perf_counter() - started < 15  # MLflow's own client retried for about 250 s
    proc = subprocess.run([sys.executable, "-m", "smslab", "train", "--corpus", str(small_corpus), "--out",
                           str(tmp_path / "run"), "--preset", "tiny-0.1m", "--fraction", "0.25", "--epochs", "1",
                           "--context", "32", "--batch-tokens", "512", "--tracking-uri", uri],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and uri in proc.stderr and "Traceback" not in proc.stderr
