"""Every run and its whole loss curve in MLflow, and the curves back as one loss-point table.

- One MLflow experiment per campaign, one MLflow run per training run, found
  again by the tag ``smslab.run_id`` — so a resumed run logs to the same MLflow
  run.
- Params: every run-spec field plus N, N with embeddings, U_D, planned D, the
  spec hash and the code version (package version and git commit);
  tags: campaign, status. Metrics ``val_loss``, ``train_loss``, ``lr``,
  ``tokens_per_s``, ``mfu`` with step = tokens seen (D).
- Logging is batched: one ``log_batch`` per evaluation (over HTTP every
  request costs tens of milliseconds).
- A point logged again after a resume is stored twice by MLflow (same step,
  later timestamp); reading keeps the latest value per (run, metric, step), so
  it never appears twice in what storage hands back.
- Reading: on a SQLite store one SQL query over MLflow's tables (the fast
  path); on any other store the public API, run by run.

The default tracking URI is a SQLite file in the campaign folder (nothing to
start). SQLite allows one writer at a time: writes retry with backoff when
the database is locked, so parallel jobs never fail on it.
"""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

LOSS_POINT_COLUMNS = ("run_id", "N", "D", "U_D", "loss", "step", "split")
METRICS = ("val_loss", "train_loss", "lr", "tokens_per_s", "mfu")
RUN_ID_TAG = "smslab.run_id"
STATUS_TAG = "smslab.status"
CAMPAIGN_TAG = "smslab.campaign"
ERROR_TAG = "smslab.error"
KIND_TAG = "smslab.kind"
MAX_TAG_CHARS = 5000  # MLflow keeps tag values up to 8,000 characters

T = TypeVar("T")


def default_tracking_uri(folder: str | Path) -> str:
    """``sqlite:////abs/path/mlflow.db`` in ``folder`` (an absolute path needs four slashes)."""
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def with_retry(call: Callable[[], T], attempts: int = 12, first_delay_s: float = 0.05) -> T:
    """Retry ``call`` while SQLite reports the database locked (jittered exponential backoff)."""
    delay = first_delay_s
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001  MLflow wraps sqlite's error in several types
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


class StorageError(ValueError):
    """A tracking URI that cannot be a store; the message names it (exit status 2)."""


def _check_sqlite_store(path: Path) -> None:
    """An existing SQLite file must be an MLflow store: MLflow would otherwise add its tables to any database."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a SQLite database ({exc})") from None
    if tables and "experiments" not in tables:
        raise StorageError(f"{path}: a SQLite database but not an MLflow tracking store (it has no experiments table)")


def open_store(tracking_uri: str) -> Tracker:
    """A store that exists: for a SQLite URI whose file is missing (a typo), an error rather than the
    empty store that opening it would create."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise StorageError(f"no tracking store at {path}")
    return Tracker(tracking_uri)


class Tracker:
    """One tracking store (an MLflow tracking URI)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        path = sqlite_path(tracking_uri)
        self.uri = tracking_uri
        if path is None:
            self.client = MlflowClient(tracking_uri)
            return
        _check_sqlite_store(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The first client to open a new SQLite store creates its schema (alembic migrations);
        # two doing it at once corrupt the version table, so creation is serialised by a file lock.
        with (path.parent / f".{path.name}.init.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.client = with_retry(lambda: MlflowClient(tracking_uri))
            with_retry(lambda: self.client.search_experiments(max_results=1))

    def experiment_id(self, campaign: str, create: bool = True) -> str | None:
        experiment = with_retry(lambda: self.client.get_experiment_by_name(campaign))
        if experiment is not None:
            return str(experiment.experiment_id)
        if not create:
            return None
        path = sqlite_path(self.uri)
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
        import hashlib

        path = sqlite_path(self.uri)
        if path is None or not path.is_file():
            return None
        query = """
            SELECT r.run_uuid, r.status, lm.step, lm.timestamp, ts.value, tk.value
            FROM runs r
            JOIN experiments e ON e.experiment_id = r.experiment_id
            LEFT JOIN latest_metrics lm ON lm.run_uuid = r.run_uuid AND lm.key = 'val_loss'
            LEFT JOIN tags ts ON ts.run_uuid = r.run_uuid AND ts.key = ?
            LEFT JOIN tags tk ON tk.run_uuid = r.run_uuid AND tk.key = ?
            WHERE e.name = ? AND r.lifecycle_stage = 'active'
            ORDER BY r.run_uuid
        """
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = connection.execute(query, (STATUS_TAG, KIND_TAG, campaign)).fetchall()
        finally:
            connection.close()
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

    def log_points(self, mlflow_run_id: str, points: Iterable[Mapping[str, float]]) -> None:
        """Log evaluation points in one batch; each point has D (the step) and any of METRICS."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(point[key]), now, int(point["D"]))
            for point in points
            for key in METRICS
            if key in point and point[key] is not None
        ]
        if metrics:
            with_retry(lambda: self.client.log_batch(mlflow_run_id, metrics=metrics))

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
        path = sqlite_path(self.uri)
        if path is not None:
            return read_points_sqlite(path, campaign)
        return self.read_points_api(campaign)

    def read_points_api(self, campaign: str):  # type: ignore[no-untyped-def]
        """The same table through MLflow's public API, one metric history per run (any store)."""
        import pandas as pd

        experiment = self.experiment_id(campaign, create=False)
        if experiment is None:
            return pd.DataFrame(columns=LOSS_POINT_COLUMNS)
        rows = []
        for run in self.client.search_runs([experiment], max_results=50_000):
            tags, params = run.data.tags, run.data.params
            history = {}
            for metric in self.client.get_metric_history(run.info.run_id, "val_loss"):
                previous = history.get(metric.step)
                if previous is None or metric.timestamp >= previous.timestamp:
                    history[metric.step] = metric
            for step, metric in history.items():
                rows.append((tags.get(RUN_ID_TAG, run.info.run_id), params.get("N"), step, params.get("U_D"), metric.value))
        return _table(rows)


def _table(rows: list[tuple[object, ...]]):  # type: ignore[no-untyped-def]
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["run_id", "N", "D", "U_D", "loss"])
    frame = frame.astype({"N": float, "D": float, "U_D": float, "loss": float})
    frame["step"] = frame["D"].astype("int64")
    frame["split"] = "val"
    return frame.sort_values(["run_id", "D"], kind="stable").reset_index(drop=True)[list(LOSS_POINT_COLUMNS)]


def read_points_sqlite(path: Path, campaign: str):  # type: ignore[no-untyped-def]
    """One SQL query over MLflow's SQLite tables (metrics, runs, params, tags, experiments)."""
    query = """
        WITH latest AS (
            SELECT m.run_uuid, m.step, m.value,
                   ROW_NUMBER() OVER (PARTITION BY m.run_uuid, m.step ORDER BY m.timestamp DESC) AS rank
            FROM metrics m
            JOIN runs r ON r.run_uuid = m.run_uuid
            JOIN experiments e ON e.experiment_id = r.experiment_id
            WHERE m.key = 'val_loss' AND e.name = ? AND r.lifecycle_stage = 'active'
        )
        SELECT COALESCE(t.value, l.run_uuid), pn.value, l.step, pu.value, l.value
        FROM latest l
        LEFT JOIN tags t ON t.run_uuid = l.run_uuid AND t.key = ?
        LEFT JOIN params pn ON pn.run_uuid = l.run_uuid AND pn.key = 'N'
        LEFT JOIN params pu ON pu.run_uuid = l.run_uuid AND pu.key = 'U_D'
        WHERE l.rank = 1
    """
    if not path.is_file():
        return _table([])
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(query, (campaign, RUN_ID_TAG)).fetchall()
    finally:
        connection.close()
    return _table(rows)


def export_points(frame, out: str | Path) -> None:  # type: ignore[no-untyped-def]
    """Write the loss-point table as Parquet (``.parquet``) or CSV, atomically."""
    import os
    import tempfile

    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        if target.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
