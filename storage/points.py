"""The loss-point table and the curve point: one schema, one name per value, from the trainer to the laws.

A **curve point** is what a run records at each evaluation, in its run
folder's ``curve.csv`` and as MLflow metrics alike, under the same names:
the loss-point columns ``run_id, N, D, U_D, loss, step, split`` (``loss`` is
the validation loss over the whole held-out set, ``split`` says so; ``step``
is the optimizer step; D the tokens seen) and the training measures
``train_loss, lr, tokens_per_s, mfu``. MLflow's own step of every metric is D;
the optimizer step is D / ``tokens_per_step`` (a run param), not stored twice.

The **loss-point table** (ARCHITECTURE.md) is what storage hands to lawfit and
the dashboards: one row per evaluation, columns ``LOSS_POINT_COLUMNS``.
``fit_points`` is the one definition of what the laws are fitted on: the runs
whose recorded status is ``finished``, each by its final point (``"final"``)
or its whole curve (``"curve"``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

LOSS_POINT_COLUMNS = ("run_id", "N", "D", "U_D", "loss", "step", "split", "N_with_embeddings")
# What MLflow stores as metrics of a point (N, U_D and tokens_per_step are run params, run_id a tag, split is
# "val"; the optimizer step is D / tokens_per_step, so it is not stored twice).
CURVE_METRICS = ("loss", "train_loss", "lr", "tokens_per_s", "mfu")
LOSS_METRIC = "loss"
FINISHED = "finished"
PointSelection = Literal["final", "curve"]
POINT_SELECTIONS: tuple[PointSelection, ...] = ("final", "curve")
# What the table's N counts: ``N`` is without embeddings (the trainer's N for the laws), ``N_with_embeddings``
# with them (MuPT's count); a fit table says which it took in its ``n_convention`` column.
NConvention = Literal["non_embedding", "with_embeddings"]
N_COLUMN: dict[str, str] = {"non_embedding": "N", "with_embeddings": "N_with_embeddings"}


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of a run: a loss point plus the training measures at that optimizer step."""

    run_id: str
    N: int  # parameters the laws use (trainer/presets.py N_FOR_LAWS)
    D: int  # tokens seen
    U_D: int  # unique tokens of one epoch
    loss: float  # validation loss over the whole held-out set
    step: int  # optimizer step
    split: str
    train_loss: float  # mean training loss of this optimizer step's micro-batches
    lr: float
    tokens_per_s: float
    mfu: float

    def to_row(self) -> dict[str, object]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The values MLflow stores as metrics (at step D)."""
        row = asdict(self)
        return {key: float(row[key]) for key in CURVE_METRICS}


CURVE_COLUMNS = tuple(f.name for f in fields(CurvePoint))


def curve_point_from_row(row: Mapping[str, str]) -> CurvePoint:
    """A point read back from ``curve.csv`` (by column name); ValueError when a value is missing or malformed."""
    kinds = {f.name: f.type for f in fields(CurvePoint)}
    values: dict[str, object] = {}
    for name, kind in kinds.items():
        text = row.get(name)
        if text is None:
            raise ValueError(f"column {name!r} is missing")
        values[name] = int(text) if kind == "int" else float(text) if kind == "float" else text
    return CurvePoint(**values)  # type: ignore[arg-type]


def points_table(rows: list[tuple[object, ...]]):  # type: ignore[no-untyped-def]
    """The loss-point table from rows of (run_id, N, D, U_D, loss, tokens per step, N with embeddings), sorted
    by run and D. ``step`` is the optimizer step, D / tokens per step; empty for a run recorded without that
    param, as ``N_with_embeddings`` is for a run recorded before that param existed."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["run_id", "N", "D", "U_D", "loss", "tokens_per_step", "N_with_embeddings"])
    frame = frame.astype({"N": float, "D": float, "U_D": float, "loss": float})
    frame["N_with_embeddings"] = pd.to_numeric(frame["N_with_embeddings"], errors="coerce")
    per_step = pd.to_numeric(frame.pop("tokens_per_step"), errors="coerce")
    frame["step"] = (frame["D"] / per_step).round().astype("Int64")
    frame["split"] = "val"
    return frame.sort_values(["run_id", "D"], kind="stable").reset_index(drop=True)[list(LOSS_POINT_COLUMNS)]


def fit_points(points, statuses: Mapping[str, str], selection: PointSelection,  # type: ignore[no-untyped-def]
               n_convention: NConvention = "non_embedding"):
    """What the laws are fitted on: the points of runs whose status is ``finished`` — each run's last
    point (largest D) for ``"final"``, every point for ``"curve"`` — with N as ``n_convention`` counts it,
    said in an ``n_convention`` column. ValueError when a finished run lacks that count."""
    if selection not in POINT_SELECTIONS:
        raise ValueError(f"points must be one of {', '.join(POINT_SELECTIONS)}, got {selection!r}")
    if n_convention not in N_COLUMN:
        raise ValueError(f"n_convention must be one of {', '.join(N_COLUMN)}, got {n_convention!r}")
    finished = {run for run, status in statuses.items() if status == FINISHED}
    chosen = points[points["run_id"].isin(finished)]
    if selection == "final":
        chosen = chosen.sort_values(["run_id", "D"], kind="stable").groupby("run_id", as_index=False).tail(1)
    chosen = chosen.reset_index(drop=True)
    counted = chosen[N_COLUMN[n_convention]]
    if counted.isna().any():
        run = chosen.loc[counted.isna(), "run_id"].iloc[0]
        raise ValueError(f"run {run} records no {N_COLUMN[n_convention]} (recorded by an older smslab?): "
                         f"it cannot be fitted with N counted {n_convention}")
    chosen = chosen.assign(N=counted.astype(float), n_convention=n_convention)
    return chosen


def export_points(frame, out: str | Path) -> None:  # type: ignore[no-untyped-def]
    """Write the loss-point table as Parquet (``.parquet``) or CSV, atomically."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own beside the target, created like any file (mode from the umask, unlike mkstemp's 0600).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if target.suffix.lower() in (".parquet", ".pq"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
