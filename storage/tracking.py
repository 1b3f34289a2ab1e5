"""Every run and its whole loss curve in MLflow, and the curves back as one loss-point table.

- One MLflow experiment per campaign, one MLflow run per training run, found
  again by the tag ``smslab.run_id`` — so a resumed run logs to the same MLflow
  run.
- Params: every run-spec field plus N, N with embeddings, U_D, planned D, the
  spec hash and the code version (package version and git commit);
  tags: campaign, status. Metrics: the curve point's (``storage/points.py``:
  ``loss``, ``step``, ``train_loss``, ``lr``, ``tokens_per_s``, ``mfu``), each at
  MLflow step = tokens seen (D).
- Logging is batched: one ``log_batch`` per evaluation (over HTTP every
  request costs tens of milliseconds).
- A point logged again after a resume is stored twice by MLflow (same step,
  later timestamp); reading keeps the latest value per (run, metric, step), so
  it never appears twice in what storage hands back.
- Reading: on a SQLite store one SQL query over MLflow's tables (the fast
  path, ``storage/sqlite_store.py``); on any other store the public API, run
  by run. Which applies is decided once, when the ``Tracker`` opens the store.

Contract: a ``Tracker`` holds one MLflow client; MLflow's client is safe to
share between threads (the dashboard does), and every write retries while an
embedded store is locked by another process.

The default tracking URI is a SQLite file in the campaign folder (nothing to
start). SQLite allows one writer at a time: writes retry with backoff when
the database is locked, so parallel jobs never fail on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from storage.points import CURVE_METRICS, LOSS_METRIC, NConvention, PointSelection, fit_points, points_table
from storage.sqlite_store import (
    StorageError,
    campaign_state_rows,
    check_mlflow_file,
    check_server_answers,
    default_tracking_uri,
    keep_artifacts_beside,
    read_curve_rows,
    sqlite_file,
)

__all__ = ["MEASURE_COLUMNS", "MEASURE_PREFIX", "RunRecord", "StorageError", "StoreFullError", "Tracker", "default_tracking_uri", "open_store", "with_retry"]

RUN_ID_TAG = "smslab.run_id"
STATUS_TAG = "smslab.status"
CAMPAIGN_TAG = "smslab.campaign"
ERROR_TAG = "smslab.error"
KIND_TAG = "smslab.kind"
MAX_TAG_CHARS = 5000  # MLflow keeps tag values up to 8,000 characters
# Measures of a run's samples (evals) are metrics named with this prefix, at step = the checkpoint's D.
MEASURE_PREFIX = "eval_"
# The leading columns of the measures table (``Tracker.read_measures``); one ``eval_*`` column per measure follows.
MEASURE_COLUMNS = ("run_id", "N", "N_with_embeddings", "D", "U_D")

T = TypeVar("T")


class StoreFullError(RuntimeError):
    """The disk under the tracking store is full: nothing more can be recorded until space is freed."""

    exit_status = 1


def with_retry(call: Callable[[], T], attempts: int = 12, first_delay_s: float = 0.05) -> T:
    """Retry ``call`` while SQLite reports the database locked (jittered exponential backoff); a full disk
    is one line (``StoreFullError``), not MLflow's page of SQL."""
    delay = first_delay_s
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001  MLflow wraps sqlite's error in several types
            if "database or disk is full" in str(exc) or "No space left on device" in str(exc):
                raise StoreFullError("the disk under the tracking store is full (database or disk is full); free "
                                     "space and run the command again: finished work is kept") from None
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class RunRecord:
    """What storage records about a run besides its curve."""

    run_id: str
    campaign: str
    params: Mapping[str, object]  # every run-spec field, N, N_with_embeddings, U_D, planned_D, …
    kind: str = "train"  # "train": a training run with a curve; "campaign": a campaign's own record (artifacts)


def open_store(tracking_uri: str) -> Tracker:
    """A store that exists: for a SQLite URI whose file is missing (a typo), an error rather than the
    empty store that opening it would create."""
    path = sqlite_file(tracking_uri)
    if path is not None and not path.is_file():
        raise StorageError(f"no tracking store at {path}")
    return Tracker(tracking_uri)


class Tracker:
    """One tracking store (an MLflow tracking URI)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        # MLflow logs each database error with its traceback before raising it; smslab says it once, in a line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        path = sqlite_file(tracking_uri)
        self.uri = tracking_uri
        # The embedded store's file, or None for any other store: decided here, once.
        self.sqlite_file = path
        if path is None:
            check_server_answers(tracking_uri)
            self.client = MlflowClient(tracking_uri)
            return
        check_mlflow_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The first client to open a new SQLite store creates its schema (alembic migrations);
        # two doing it at once corrupt the version table, so creation is serialised by a file lock.
        with (path.parent / f".{path.name}.init.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # A copied or moved campaign folder writes its artifacts into itself, never into the original.
            with_retry(lambda: keep_artifacts_beside(path))
            self.client = with_retry(lambda: MlflowClient(tracking_uri))
            with_retry(lambda: self.client.search_experiments(max_results=1))

    def experiment_id(self, campaign: str, create: bool = True) -> str | None:
        experiment = with_retry(lambda: self.client.get_experiment_by_name(campaign))
        if experiment is not None:
            return str(experiment.experiment_id)
        if not create:
            return None
        path = self.sqlite_file
        # Beside an embedded store, artifacts go beside the database (MLflow's default is ./mlruns of the cwd).
        location = (path.parent / "mlartifacts" / campaign).resolve().as_uri() if path is not None else None
        try:
            return str(with_retry(lambda: self.client.create_experiment(campaign, artifact_location=location)))
        except Exception:  # noqa: BLE001  another job created it first
            experiment = with_retry(lambda: self.client.get_experiment_by_name(campaign))
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def campaigns(self) -> list[str]:
        """The campaigns (MLflow experiments, MLflow's own Default left out) in the store."""
        experiments = with_retry(lambda: self.client.search_experiments())
        return sorted(e.name for e in experiments if e.name != "Default")

    def require_campaign(self, campaign: str) -> None:
        """Raise ``StorageError`` naming the known campaigns when the store has no ``campaign``."""
        if self.experiment_id(campaign, create=False) is None:
            raise StorageError(f"no campaign {campaign!r} in {self.uri}; campaigns: {', '.join(self.campaigns()) or 'none'}")

    def find_run(self, campaign: str, run_id: str) -> str | None:
        experiment = self.experiment_id(campaign, create=False)
        if experiment is None:
            return None
        runs = with_retry(
            lambda: self.client.search_runs([experiment], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
        )
        return runs[0].info.run_id if runs else None

    def open_run(self, record: RunRecord) -> str:
        """The MLflow run of ``record``: the existing one when resuming, else a new one with its params."""
        from mlflow.entities import Param

        existing = self.find_run(record.campaign, record.run_id)
        if existing is not None:
            return existing
        experiment = self.experiment_id(record.campaign)
        assert experiment is not None
        run = with_retry(
            lambda: self.client.create_run(
                experiment,
                run_name=record.run_id,
                tags={RUN_ID_TAG: record.run_id, CAMPAIGN_TAG: record.campaign, STATUS_TAG: "running", KIND_TAG: record.kind},
            )
        )
        params = [Param(k, str(v)) for k, v in sorted(record.params.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            with_retry(lambda: self.client.log_batch(run.info.run_id, params=params[start : start + 100]))
        return str(run.info.run_id)

    def log_artifacts(self, mlflow_run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
        """Copy every file under ``folder`` into the run's artifacts (under ``artifact_path``)."""
        with_retry(lambda: self.client.log_artifacts(mlflow_run_id, str(folder), artifact_path))

    def log_artifact(self, mlflow_run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        with_retry(lambda: self.client.log_artifact(mlflow_run_id, str(path), artifact_path))

    def run_statuses(self, campaign: str) -> dict[str, str]:
        """smslab's status tag of every training run of the campaign, by smslab run id."""
        experiment = self.experiment_id(campaign, create=False)
        if experiment is None:
            return {}
        runs = with_retry(lambda: self.client.search_runs([experiment], max_results=50_000))
        return {
            run.data.tags[RUN_ID_TAG]: run.data.tags.get(STATUS_TAG, "")
            for run in runs
            if RUN_ID_TAG in run.data.tags and run.data.tags.get(KIND_TAG, "train") == "train"
        }

    def campaign_fingerprint(self, campaign: str) -> str | None:
        """A token that changes when a curve of the campaign gains a point, a run changes state or the
        campaign records a round. Cheap on SQLite stores (one query over MLflow's latest_metrics and
        tags, and a listing of the campaign run's artifacts); None on other stores (read everything)."""
        path = self.sqlite_file
        if path is None or not path.is_file():
            return None
        rows = campaign_state_rows(path, campaign, STATUS_TAG, KIND_TAG, LOSS_METRIC)
        artifacts = [
            sorted(entry.path for entry in with_retry(lambda run=row[0]: self.client.list_artifacts(run, "rounds")))
            for row in rows if row[5] == "campaign"
        ]
        return hashlib.sha256(repr((rows, artifacts)).encode()).hexdigest()

    def _campaign_run(self, campaign: str):  # type: ignore[no-untyped-def]
        experiment = self.experiment_id(campaign, create=False)
        if experiment is None:
            return None
        runs = with_retry(lambda: self.client.search_runs(
            [experiment], filter_string=f"tags.`{KIND_TAG}` = 'campaign'", max_results=1))
        return runs[0] if runs else None

    def campaign_params(self, campaign: str) -> dict[str, str]:
        """The params of the campaign's own run (its [plan] settings); empty when it has none."""
        run = self._campaign_run(campaign)
        return dict(run.data.params) if run is not None else {}

    def download_campaign_artifacts(self, campaign: str, destination: str | Path) -> Path | None:
        """Copy the artifacts of the campaign's own run (round fits, plans, reports) into ``destination``;
        None when the campaign has no such run."""
        run = self._campaign_run(campaign)
        if run is None:
            return None
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        return Path(with_retry(lambda: self.client.download_artifacts(run.info.run_id, "", str(target))))

    def log_points(self, mlflow_run_id: str, points: Iterable[Mapping[str, object]]) -> None:
        """Log evaluation points in one batch; each point has D (MLflow's step) and any of ``CURVE_METRICS``
        (a ``CurvePoint.to_row()`` has them all)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(point[key]), now, int(point["D"]))  # type: ignore[arg-type]
            for point in points
            for key in CURVE_METRICS
            if key in point and point[key] is not None
        ]
        if metrics:
            with_retry(lambda: self.client.log_batch(mlflow_run_id, metrics=metrics))

    def log_measures(self, mlflow_run_id: str, measures: Mapping[str, float], step: int) -> None:
        """Log named values (e.g. ``eval_validity_v1``) in one batch at MLflow step ``step`` (tokens seen, as for
        curve points, so measures and losses of a checkpoint share a step)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, int(step)) for key, value in measures.items()]
        if metrics:
            with_retry(lambda: self.client.log_batch(mlflow_run_id, metrics=metrics))

    def read_measures(self, campaign: str, prefix: str = MEASURE_PREFIX):  # type: ignore[no-untyped-def]
        """One row per run that has metrics named ``prefix*``: ``MEASURE_COLUMNS``, then each such metric's
        value at the run's latest measured step (D). Values logged at an earlier step are left out (NaN), so a
        row never mixes measures of two checkpoints. Public API, one metric history per measure (any store)."""
        import pandas as pd

        experiment = self.experiment_id(campaign, create=False)
        rows: list[dict[str, object]] = []
        if experiment is not None:
            for run in with_retry(lambda: self.client.search_runs([experiment], max_results=50_000)):
                keys = sorted(k for k in run.data.metrics if k.startswith(prefix))
                if not keys:
                    continue
                histories = {key: self._latest_by_step(run.info.run_id, key) for key in keys}
                d = max(step for history in histories.values() for step in history)
                params = run.data.params
                row: dict[str, object] = {
                    "run_id": run.data.tags.get(RUN_ID_TAG, run.info.run_id), "N": params.get("N"),
                    "N_with_embeddings": params.get("N_with_embeddings"), "D": d, "U_D": params.get("U_D")}
                row.update({key: history.get(d) for key, history in histories.items()})
                rows.append(row)
        frame = pd.DataFrame(rows, columns=list(MEASURE_COLUMNS) if not rows else None)
        for column in ("N", "N_with_embeddings", "D", "U_D"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        measure_columns = sorted(c for c in frame.columns if c not in MEASURE_COLUMNS)
        frame = frame[[*MEASURE_COLUMNS, *measure_columns]].astype({c: float for c in measure_columns})
        return frame.sort_values("run_id", kind="stable").reset_index(drop=True)

    def set_status(self, mlflow_run_id: str, status: str, error: str | None = None) -> None:
        """Record smslab's status (running, interrupted, finished, failed), the error of a
        failed run, and MLflow's run state."""
        from mlflow.entities import RunTag

        tags = [RunTag(STATUS_TAG, status)]
        if error is not None:
            tags.append(RunTag(ERROR_TAG, error[:MAX_TAG_CHARS]))
        with_retry(lambda: self.client.log_batch(mlflow_run_id, tags=tags))
        terminal = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
        if status in terminal:
            with_retry(lambda: self.client.set_terminated(mlflow_run_id, terminal[status]))
        else:
            with_retry(lambda: self.client.update_run(mlflow_run_id, status="RUNNING"))

    def read_points(self, campaign: str):  # type: ignore[no-untyped-def]
        """Every validation curve of the campaign as the loss-point table (pandas DataFrame)."""
        if self.sqlite_file is not None:
            return points_table(read_curve_rows(self.sqlite_file, campaign, RUN_ID_TAG, LOSS_METRIC))
        return self.read_points_api(campaign)

    def read_fit_points(self, campaign: str, selection: PointSelection,  # type: ignore[no-untyped-def]
                        n_convention: NConvention = "non_embedding"):
        """What the laws are fitted on (``storage.points.fit_points``): finished runs' final points or curves,
        N counted as ``n_convention`` says."""
        return fit_points(self.read_points(campaign), self.run_statuses(campaign), selection, n_convention)

    def read_points_api(self, campaign: str):  # type: ignore[no-untyped-def]
        """The same table through MLflow's public API, one metric history per run (any store)."""
        experiment = self.experiment_id(campaign, create=False)
        if experiment is None:
            return points_table([])
        rows = []
        for run in self.client.search_runs([experiment], max_results=50_000):
            tags, params = run.data.tags, run.data.params
            for d, value in self._latest_by_step(run.info.run_id, LOSS_METRIC).items():
                rows.append((tags.get(RUN_ID_TAG, run.info.run_id), params.get("N"), d, params.get("U_D"), value,
                             params.get("tokens_per_step"), params.get("N_with_embeddings")))
        return points_table(rows)

    def _latest_by_step(self, mlflow_run_id: str, key: str) -> dict[int, float]:
        """A metric's history, the latest value at each step (a point logged again after a resume wins)."""
        latest: dict[int, tuple[int, float]] = {}
        for metric in self.client.get_metric_history(mlflow_run_id, key):
            previous = latest.get(metric.step)
            if previous is None or metric.timestamp >= previous[0]:
                latest[metric.step] = (metric.timestamp, metric.value)
        return {step: value for step, (_, value) in latest.items()}
