"""The embedded store: an MLflow tracking store in one SQLite file, and its fast read paths.

MLflow's public API reads curves one run at a time; on a SQLite store one SQL
query over MLflow's own tables (``metrics``, ``runs``, ``params``, ``tags``,
``experiments``) reads a whole campaign at once (FIELD_NOTES: 0.2 s against
4.1 s for 200 curves). These readers open the file read-only and never write;
``keep_artifacts_beside`` is the one writer, for a store that was copied or moved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

SQLITE_SCHEME = "sqlite:///"


class StorageError(ValueError):
    """A tracking URI that cannot be a store, or a campaign it lacks; the message names it."""

    exit_status = 2


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite tracking URI; None for any other store (a server, a folder)."""
    return Path(uri[len(SQLITE_SCHEME) :]) if uri.startswith(SQLITE_SCHEME) else None


SERVER_SCHEMES = ("http://", "https://")
SERVER_ANSWER_S = 10.0


def check_server_answers(uri: str, timeout_s: float = SERVER_ANSWER_S) -> None:
    """A tracking server must answer its ``/health`` within seconds: MLflow's client would otherwise retry
    an unreachable one for minutes before saying anything."""
    import urllib.error
    import urllib.request

    if not uri.startswith(SERVER_SCHEMES):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise StorageError(f"tracking server {uri} answers /health with HTTP {exc.code}; see its log") from None
    except (OSError, ValueError) as exc:  # refused, no route, timed out, a malformed URI
        reason = getattr(exc, "reason", exc)
        raise StorageError(f"tracking server {uri} does not answer ({reason}) within {timeout_s:g} s; start it "
                           "(docs/storage.md) or give another --tracking-uri") from None


def default_tracking_uri(folder: str | Path) -> str:
    """``sqlite:////abs/path/mlflow.db`` in ``folder`` (an absolute path needs four slashes)."""
    return f"{SQLITE_SCHEME}{Path(folder).resolve() / 'mlflow.db'}"


def check_mlflow_file(path: Path) -> None:
    """An existing SQLite file must be an MLflow store: MLflow would otherwise add its tables to any database."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        tables = {row[0] for row in _query(path, "SELECT name FROM sqlite_master WHERE type = 'table'", ())}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a SQLite database ({exc})") from None
    if tables and "experiments" not in tables:
        raise StorageError(f"{path}: a SQLite database but not an MLflow tracking store (it has no experiments table)")


def keep_artifacts_beside(path: Path) -> int:
    """Point the store's artifact locations at the folder it now lies in; returns how many were moved.

    MLflow records absolute artifact locations (``file:///…/campaign/mlartifacts/<campaign>``): in a copied
    or moved campaign folder they still name the original, so logging an artifact would write into the
    original. Locations smslab laid out itself (``<folder>/mlartifacts/<experiment name>``) that name another
    folder are rewritten to this one, for the experiment and each of its runs; any other location is the
    user's and is left alone."""
    from urllib.parse import unquote, urlparse

    if not path.is_file() or path.stat().st_size == 0:
        return 0
    here = (path.parent / "mlartifacts").resolve()
    connection = sqlite3.connect(path, timeout=30)
    moved = 0
    try:
        with connection:  # one transaction: every location moves, or none
            rows = connection.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()
            for experiment_id, name, location in rows:
                if not isinstance(location, str) or not location.startswith("file://"):
                    continue
                old = Path(unquote(urlparse(location).path))
                if old.name != name or old.parent.name != "mlartifacts" or old.parent == here:
                    continue
                new = (here / name).as_uri()
                connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                                   (new, experiment_id))
                connection.execute(
                    "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                    "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                    (new, len(location) + 1, experiment_id, len(location), location))
                moved += 1
    finally:
        connection.close()
    return moved


def _query(path: Path, sql: str, args: Sequence[object]) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, tuple(args)).fetchall()
    finally:
        connection.close()


def read_curve_rows(path: Path, campaign: str, run_id_tag: str, loss_metric: str) -> list[tuple[object, ...]]:
    """(run_id, N, D, U_D, loss, tokens per step, N with embeddings) of every evaluation of the campaign: the
    latest value per (run, D), since a point logged again after a resume is stored twice by MLflow."""
    query = """
        WITH latest AS (
            SELECT m.run_uuid, m.step, m.value,
                   ROW_NUMBER() OVER (PARTITION BY m.run_uuid, m.step ORDER BY m.timestamp DESC) AS rank
            FROM metrics m
            JOIN runs r ON r.run_uuid = m.run_uuid
            JOIN experiments e ON e.experiment_id = r.experiment_id
            WHERE m.key = ? AND e.name = ? AND r.lifecycle_stage = 'active'
        )
        SELECT COALESCE(t.value, l.run_uuid), pn.value, l.step, pu.value, l.value, ps.value, pe.value
        FROM latest l
        LEFT JOIN tags t ON t.run_uuid = l.run_uuid AND t.key = ?
        LEFT JOIN params pn ON pn.run_uuid = l.run_uuid AND pn.key = 'N'
        LEFT JOIN params pu ON pu.run_uuid = l.run_uuid AND pu.key = 'U_D'
        LEFT JOIN params ps ON ps.run_uuid = l.run_uuid AND ps.key = 'tokens_per_step'
        LEFT JOIN params pe ON pe.run_uuid = l.run_uuid AND pe.key = 'N_with_embeddings'
        WHERE l.rank = 1
    """
    if not path.is_file():
        return []
    return _query(path, query, (loss_metric, campaign, run_id_tag))


def campaign_state_rows(path: Path, campaign: str, status_tag: str, kind_tag: str,
                        loss_metric: str) -> list[tuple[object, ...]]:
    """Per run of the campaign: its MLflow id and state, its latest loss point (step and time), its status
    and kind tags — what changes when a curve gains a point or a run changes state."""
    query = """
        SELECT r.run_uuid, r.status, lm.step, lm.timestamp, ts.value, tk.value
        FROM runs r
        JOIN experiments e ON e.experiment_id = r.experiment_id
        LEFT JOIN latest_metrics lm ON lm.run_uuid = r.run_uuid AND lm.key = ?
        LEFT JOIN tags ts ON ts.run_uuid = r.run_uuid AND ts.key = ?
        LEFT JOIN tags tk ON tk.run_uuid = r.run_uuid AND tk.key = ?
        WHERE e.name = ? AND r.lifecycle_stage = 'active'
        ORDER BY r.run_uuid
    """
    return _query(path, query, (loss_metric, status_tag, kind_tag, campaign))
