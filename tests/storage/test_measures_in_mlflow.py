"""Measures of runs (eval_* metrics) in a real MLflow SQLite store, read back one row per run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from storage.tracking import MEASURE_COLUMNS, RunRecord, Tracker, default_tracking_uri


def test_measures_read_back_one_row_per_run_at_its_latest_step(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri)
    a = tracker.open_run(RunRecord("run-a", "camp", {"N": 1000, "N_with_embeddings": 1500, "U_D": 500}))
    b = tracker.open_run(RunRecord("run-b", "camp", {"N": 2000, "N_with_embeddings": 2600, "U_D": 800}))
    tracker.open_run(RunRecord("run-c", "camp", {"N": 3000, "U_D": 900}))  # never evaluated: no row
    tracker.log_points(a, [{"D": 300, "loss": 4.0}])
    tracker.log_measures(a, {"eval_validity_v1": 50.0, "eval_pitch_range": 7.0}, step=200)
    # A later checkpoint's measures win; one it lacks (pitch range) is not taken from the earlier one.
    tracker.log_measures(a, {"eval_validity_v1": 75.0, "eval_real_validity_v1": 100.0}, step=300)
    tracker.log_measures(b, {"eval_validity_v1": 25.0}, step=100)
    tracker.log_measures(b, {"eval_validity_v1": 30.0}, step=100)  # evaluated again: the latest value
    frame = tracker.read_measures("camp")
    assert list(frame.columns) == [*MEASURE_COLUMNS, "eval_pitch_range", "eval_real_validity_v1", "eval_validity_v1"]
    assert list(frame["run_id"]) == ["run-a", "run-b"]
    row_a, row_b = frame.iloc[0], frame.iloc[1]
    assert (row_a["N"], row_a["N_with_embeddings"], row_a["D"], row_a["U_D"]) == (1000, 1500, 300, 500)
    assert row_a["eval_validity_v1"] == 75.0 and row_a["eval_real_validity_v1"] == 100.0
    assert pd.isna(row_a["eval_pitch_range"])
    assert row_b["D"] == 100 and row_b["eval_validity_v1"] == 30.0 and pd.isna(row_b["eval_real_validity_v1"])
    # The loss curve is untouched by the measures logged beside it.
    assert list(tracker.read_points("camp")["loss"]) == [4.0]


def test_a_campaign_without_measures_gives_an_empty_table_with_the_columns(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    tracker.open_run(RunRecord("run-a", "camp", {"N": 1000, "U_D": 500}))
    assert list(tracker.read_measures("camp").columns) == list(MEASURE_COLUMNS)
    assert tracker.read_measures("nothing").empty


def test_runs_export_measures_writes_the_table_and_the_points_export_keeps_its_shape(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri)
    a = tracker.open_run(RunRecord("run-a", "camp", {"N": 1000, "N_with_embeddings": 1500, "U_D": 500}))
    tracker.log_points(a, [{"D": 300, "loss": 4.0}])
    tracker.log_measures(a, {"eval_validity_v1": 75.0}, step=300)

    def export(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "smslab", "runs", "export", "--tracking-uri", uri,
                               "--campaign", "camp", *extra], capture_output=True, text=True, timeout=300, check=False)

    measures = export("--measures", "--out", str(tmp_path / "measures.csv"))
    assert measures.returncode == 0, measures.stderr[-3000:]
    assert "measures of 1 runs" in measures.stdout
    table = pd.read_csv(tmp_path / "measures.csv")
    assert table.to_dict("records") == [{"run_id": "run-a", "N": 1000, "N_with_embeddings": 1500, "D": 300,
                                         "U_D": 500, "eval_validity_v1": 75.0}]
    points = export("--out", str(tmp_path / "points.csv"))
    assert points.returncode == 0, points.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "points.csv").columns) == [
        "run_id", "N", "D", "U_D", "loss", "step", "split", "N_with_embeddings"]
    assert pytest.approx(pd.read_csv(tmp_path / "points.csv")["loss"].tolist()) == [4.0]
