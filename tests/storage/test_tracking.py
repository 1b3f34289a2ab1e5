"""Runs and curves in a real MLflow SQLite store, read back as the loss-point table."""

from __future__ import annotations

import subprocess
import sys
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import pytest

from storage.tracking import RunRecord, Tracker, default_tracking_uri


def record(run_id: str, n: int, u: int) -> RunRecord:
    return RunRecord(run_id, "camp", {"preset": "tiny-1m", "N": n, "U_D": u, "planned_D": 10_000, "lr": 0.003})


def test_curves_round_trip_through_mlflow_and_the_sql_path_equals_the_api_path(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    assert uri.startswith("sqlite:////")
    tracker = Tracker(uri)
    a = tracker.open_run(record("run-a", 1000, 500))
    b = tracker.open_run(record("run-b", 2000, 800))
    tracker.log_points(a, [{"D": d, "loss": 5.0 - d / 1000, "train_loss": 5.1, "lr": 0.003} for d in (100, 200, 300)])
    tracker.log_points(b, [{"D": d, "loss": 4.0 - d / 1000} for d in (100, 200)])
    tracker.set_status(a, "finished")
    fast = tracker.read_points("camp")
    assert list(fast.columns) == ["run_id", "N", "D", "U_D", "loss", "step", "split", "N_with_embeddings"]
    assert len(fast) == 5 and set(fast["run_id"]) == {"run-a", "run-b"}
    run_a = fast[fast.run_id == "run-a"]
    assert list(run_a["D"]) == [100, 200, 300] and list(run_a["loss"]) == pytest.approx([4.9, 4.8, 4.7])
    assert set(run_a["N"]) == {1000} and set(run_a["U_D"]) == {500}
    pd.testing.assert_frame_equal(fast, tracker.read_points_api("camp"))
    run = tracker.client.get_run(a)
    assert run.data.params["preset"] == "tiny-1m" and run.data.tags["smslab.status"] == "finished"
    assert run.info.status == "FINISHED"


def test_a_resumed_run_logs_to_the_same_mlflow_run_and_repeated_points_appear_once(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    first = tracker.open_run(record("r", 1000, 500))
    tracker.log_points(first, [{"D": d, "loss": 3.0} for d in (100, 200, 300)])
    again = Tracker(default_tracking_uri(tmp_path)).open_run(record("r", 1000, 500))
    assert again == first
    tracker.log_points(again, [{"D": d, "loss": 2.5} for d in (300, 400)])  # 300 logged again after a resume
    points = tracker.read_points("camp")
    assert list(points["D"]) == [100, 200, 300, 400]
    assert list(points["loss"]) == [3.0, 3.0, 2.5, 2.5]  # the latest value of a repeated step


def _writer(args: tuple[str, int]) -> int:
    uri, worker = args
    tracker = Tracker(uri)
    run = tracker.open_run(record(f"w{worker}", 1000 + worker, 500))
    for d in range(1, 11):
        tracker.log_points(run, [{"D": d * 100, "loss": 1.0 + worker}])
    tracker.set_status(run, "finished")
    return worker


@pytest.mark.slow
def test_eight_jobs_writing_at_once_never_fail_on_a_locked_database(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    Tracker(uri).experiment_id("camp")  # the schema exists before the jobs start, as in a campaign
    with get_context("spawn").Pool(8) as pool:
        assert sorted(pool.map(_writer, [(uri, w) for w in range(8)])) == list(range(8))
    points = Tracker(uri).read_points("camp")
    assert len(points) == 80 and points["run_id"].nunique() == 8


def test_export_writes_parquet_and_csv(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = Tracker(uri)
    run = tracker.open_run(record("x", 1000, 500))
    tracker.log_points(run, [{"D": 100, "loss": 2.0}])
    for name in ("points.parquet", "points.csv"):
        proc = subprocess.run([sys.executable, "-m", "smslab", "runs", "export", "--tracking-uri", uri, "--campaign", "camp",
                               "--out", str(tmp_path / name)], capture_output=True, text=True, check=True)
        assert "1 points of 1 runs" in proc.stdout
    assert pd.read_parquet(tmp_path / "points.parquet")["loss"].tolist() == [2.0]
    assert pd.read_csv(tmp_path / "points.csv")["run_id"].tolist() == ["x"]
    missing = tmp_path / "typo" / "mlflow.db"
    (tmp_path / "folder.csv").mkdir()
    for args, message in ((("--tracking-uri", uri, "--campaign", "nope", "--out", str(tmp_path / "n.csv")),
                           "--campaign: no campaign 'nope'"),
                          (("--tracking-uri", f"sqlite:///{missing}", "--campaign", "camp", "--out", str(tmp_path / "n.csv")),
                           "--tracking-uri: no tracking store at"),
                          (("--tracking-uri", uri, "--campaign", "camp", "--out", str(tmp_path / "folder.csv")),
                           "--out")):
        proc = subprocess.run([sys.executable, "-m", "smslab", "runs", "export", *args], capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not missing.parent.exists() and not (tmp_path / "n.csv").exists()


def test_an_unknown_campaign_reads_as_an_empty_table(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    assert tracker.read_points("nobody").empty and tracker.read_points_api("nobody").empty


def test_the_campaign_fingerprint_changes_exactly_when_its_data_does(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    run = tracker.open_run(record("run-a", 1000, 500))
    tracker.log_points(run, [{"D": 100, "loss": 5.0}])
    other = Tracker(default_tracking_uri(tmp_path))  # what a dashboard holds: another client of the store
    seen = [other.campaign_fingerprint("camp")]
    assert seen[0] is not None and other.campaign_fingerprint("camp") == seen[0]
    tracker.log_points(run, [{"D": 200, "loss": 4.9}])  # a new point
    seen.append(other.campaign_fingerprint("camp"))
    tracker.set_status(run, "finished")  # a new state
    seen.append(other.campaign_fingerprint("camp"))
    campaign_run = tracker.open_run(RunRecord("campaign-camp", "camp", {"points": "final"}, kind="campaign"))
    seen.append(other.campaign_fingerprint("camp"))
    (tmp_path / "round-00").mkdir()
    (tmp_path / "round-00" / "plan.json").write_text("{}")
    tracker.log_artifacts(campaign_run, tmp_path / "round-00", "rounds/round-00")  # a recorded round
    seen.append(other.campaign_fingerprint("camp"))
    assert len(set(seen)) == len(seen)
    Tracker(default_tracking_uri(tmp_path)).open_run(RunRecord("elsewhere", "other-camp", {"N": 1}))
    assert other.campaign_fingerprint("camp") == seen[-1]  # another campaign's runs do not count


def test_the_laws_get_only_runs_recorded_finished_by_their_last_point_or_whole_curve(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    for run_id, status in (("done", "finished"), ("going", "running"), ("broke", "failed")):
        run = tracker.open_run(RunRecord(run_id, "camp", {"N": 1000, "U_D": 500, "tokens_per_step": 100}))
        tracker.log_points(run, [{"D": d, "loss": 5.0 - d / 1000} for d in (100, 200, 300)])
        tracker.set_status(run, status)
    final = tracker.read_fit_points("camp", "final")
    assert list(final["run_id"]) == ["done"] and list(final["D"]) == [300] and list(final["step"]) == [3]
    curve = tracker.read_fit_points("camp", "curve")
    assert list(curve["run_id"]) == ["done"] * 3 and list(curve["D"]) == [100, 200, 300]
    with pytest.raises(ValueError, match="points must be one of final, curve"):
        tracker.read_fit_points("camp", "last")  # type: ignore[arg-type]
    assert list(final["n_convention"]) == ["non_embedding"] and list(final["N"]) == [1000]
    # These runs were recorded without their count with embeddings: that convention is refused, naming the run.
    with pytest.raises(ValueError, match="run done records no N_with_embeddings"):
        tracker.read_fit_points("camp", "final", "with_embeddings")


def test_the_fit_points_count_n_with_or_without_embeddings_as_asked(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    for run_id, n, n_all in (("small", 1000, 5000), ("large", 3000, 9000)):
        run = tracker.open_run(RunRecord(run_id, "camp", {"N": n, "N_with_embeddings": n_all, "U_D": 500}))
        tracker.log_points(run, [{"D": 100, "loss": 4.0}])
        tracker.set_status(run, "finished")
    without = tracker.read_fit_points("camp", "final")
    assert dict(zip(without["run_id"], without["N"], strict=True)) == {"small": 1000, "large": 3000}
    with_emb = tracker.read_fit_points("camp", "final", "with_embeddings")
    assert dict(zip(with_emb["run_id"], with_emb["N"], strict=True)) == {"small": 5000, "large": 9000}
    assert set(with_emb["n_convention"]) == {"with_embeddings"}
    pd.testing.assert_frame_equal(tracker.read_points("camp"), tracker.read_points_api("camp"))


def test_the_step_column_is_the_optimizer_step_and_d_holds_the_tokens(tmp_path: Path):
    tracker = Tracker(default_tracking_uri(tmp_path))
    run = tracker.open_run(RunRecord("r", "camp", {"N": 1000, "U_D": 500, "tokens_per_step": 2048}))
    tracker.log_points(run, [{"D": 4096, "loss": 3.0}, {"D": 8192, "loss": 2.5}])
    old = tracker.open_run(record("old", 1000, 500))
    tracker.log_points(old, [{"D": 4096, "loss": 3.1}])  # a run recorded without its tokens per step
    table = tracker.read_points("camp")
    assert list(table["D"]) == [4096, 4096, 8192] and list(table["run_id"]) == ["old", "r", "r"]
    assert table["step"].isna().tolist() == [True, False, False] and list(table["step"][1:]) == [2, 4]
    pd.testing.assert_frame_equal(table, tracker.read_points_api("camp"))


def test_a_copied_campaign_folder_writes_its_artifacts_into_itself_not_the_original(tmp_path: Path):
    import shutil

    original, copy = tmp_path / "original" / "campaign", tmp_path / "copy" / "campaign"
    (tmp_path / "round.md").write_text("round 0")
    # The original campaign is written by another process, as a campaign run would (MLflow caches artifact
    # repositories per run id within a process).
    run = subprocess.run([sys.executable, "-c", (
        "import sys; from storage.tracking import RunRecord, Tracker, default_tracking_uri; "
        f"t = Tracker(default_tracking_uri({str(original)!r})); "
        "r = t.open_run(RunRecord('campaign-camp', 'camp', {}, kind='campaign')); "
        f"t.log_artifact(r, {str(tmp_path / 'round.md')!r}, 'rounds'); print(r)")],
        capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    shutil.copytree(original, copy)  # cp -a of the campaign folder, to share or branch it
    before = {p: p.read_bytes() for p in original.rglob("*") if p.is_file() and p.suffix != ".db"}

    copied = Tracker(default_tracking_uri(copy))
    copied_run = copied.open_run(RunRecord("campaign-camp", "camp", {}, kind="campaign"))
    assert copied_run == run  # the same MLflow run, now in the copy
    (tmp_path / "round.md").write_text("round 1 of the branch")
    copied.log_artifact(copied_run, tmp_path / "round.md", "rounds")
    after = {p: p.read_bytes() for p in original.rglob("*") if p.is_file() and p.suffix != ".db"}
    assert after == before  # nothing written into the original
    assert (copy / "mlartifacts" / "camp").is_dir()
    written = [p.read_text() for p in (copy / "mlartifacts").rglob("round.md")]
    assert written == ["round 1 of the branch"]
    location = copied.client.get_experiment_by_name("camp").artifact_location
    assert location == (copy / "mlartifacts" / "camp").resolve().as_uri()
