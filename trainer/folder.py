"""The run folder, its one owner: what each file holds, how it is written, how it is read back.

- ``spec.json``: the run record (the run spec, its id and hash, N, U_D, planned D,
  the code version, the MLflow run when tracked, the MFU peak used);
- ``state.json``: status (running, interrupted, finished, failed) with the
  optimizer step and, when it failed or stopped, the reason and error;
- ``curve.csv``: one ``storage.points.CurvePoint`` per evaluation, read back by
  column name;
- ``checkpoints/last.ckpt``: Lightning's checkpoint (written by the trainer);
- ``.lock``: held by the process training the folder.

Every file is replaced atomically (a temporary file beside it, then a rename),
except ``curve.csv``, which the trainer appends to; readers take its last
whole line. Torch-free: sweeps reads run folders without loading torch.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from storage.points import CURVE_COLUMNS, CurvePoint, curve_point_from_row
from trainer.spec import RunBusyError

STATUSES = ("running", "interrupted", "finished", "failed")
TERMINAL = ("finished", "failed")
LOCK_ATTEMPTS = 20


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` into a temporary file beside ``path``, then rename it into place. The file is created
    like any other (its mode from the umask), so a lab group sharing a campaign folder can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, object]:
    """A JSON object file; empty when missing or unreadable (a folder being written, or never written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def curve_file(self) -> Path:
        return self.path / "curve.csv"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    def create(self) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)

    # --- the record and the state -------------------------------------------------------------------------
    def read_record(self) -> dict[str, object]:
        return read_json(self.spec_file)

    def write_record(self, record: dict[str, object]) -> None:
        write_atomic(self.spec_file, json.dumps(record, indent=2))

    def read_state(self) -> dict[str, object]:
        return read_json(self.state_file)

    def write_state(self, state: dict[str, object]) -> None:
        if state.get("status") not in STATUSES:
            raise ValueError(f"unknown run status {state.get('status')!r}; statuses are {', '.join(STATUSES)}")
        write_atomic(self.state_file, json.dumps(state, indent=2))

    def status(self) -> str:
        """The folder's status as a launcher sees it: ``not started``, ``running`` (its lock is held),
        ``interrupted`` (also a run whose process died without saying so), ``finished`` or ``failed``."""
        status = str(self.read_state().get("status", "not started"))
        if status not in TERMINAL and self.in_use():
            return "running"
        return "interrupted" if status == "running" else status

    # --- the curve ---------------------------------------------------------------------------------------
    def read_curve(self) -> list[CurvePoint]:
        """Every whole point of ``curve.csv`` (a line being appended right now is left out)."""
        if not self.curve_file.is_file():
            return []
        points = []
        with self.curve_file.open(newline="") as handle:
            for row in csv.DictReader(handle):
                try:
                    points.append(curve_point_from_row(row))
                except (TypeError, ValueError):
                    continue  # a partly written last line
        return points

    def final_loss(self) -> float | None:
        """The loss of the latest whole point, None before the first evaluation."""
        curve = self.read_curve()
        return curve[-1].loss if curve else None

    def keep_curve_until(self, step: int) -> None:
        """Cut the curve back to the points up to optimizer step ``step`` (those a checkpoint had seen)."""
        self._write_curve([p for p in self.read_curve() if p.step <= step])

    def append_point(self, point: CurvePoint) -> None:
        exists = self.curve_file.is_file()
        with self.curve_file.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS)
            if not exists:
                writer.writeheader()
            writer.writerow(point.to_row())

    def _write_curve(self, points: list[CurvePoint]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(p.to_row() for p in points)
        write_atomic(self.curve_file, text.getvalue())

    # --- the lock ----------------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on ``.lock`` while training: two processes training the same folder
        would interleave checkpoints and curves. The lock dies with its process."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / ".lock").open("a")
        try:
            # ``in_use`` probes the lock for an instant: a held lock is busy only if it stays held.
            for attempt in range(LOCK_ATTEMPTS):
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == LOCK_ATTEMPTS - 1:
                        raise RunBusyError(f"{self.path}: another process is training this run (its .lock is held)") from None
                    time.sleep(0.1)
            yield
        finally:
            handle.close()

    def in_use(self) -> bool:
        """Whether some process holds the folder's lock (is training it now)."""
        lock = self.path / ".lock"
        if not lock.is_file():
            return False
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False
