"""The loss-point table lawfit reads: ``run_id, N, D, U_D, loss`` (+ optional ``weight``).

N, D and U_D are raw counts (parameters, tokens seen, unique tokens of one
epoch). A run contributes one point (its final loss) or many (its curve); the
bootstrap resamples runs, never single points of a curve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lawfit.errors import LawfitInputError
from lawfit.laws.base import Covariates
from lawfit.names import N_CONVENTIONS, N_UNSTATED

Array = np.ndarray
REQUIRED_COLUMNS = ("N", "D", "loss")
OPTIONAL_COLUMNS = ("run_id", "U_D", "weight", "n_convention")
ALL_COLUMNS = ("run_id", "N", "D", "U_D", "loss", "weight")


@dataclass(frozen=True, eq=False)
class LossPoints:
    """A validated table of loss points. ``U_D`` is NaN everywhere when the input has none."""

    run_id: Array  # str, (n,)
    N: Array
    D: Array
    U_D: Array
    loss: Array
    weight: Array
    source: str = "<memory>"
    # What N counts: lawfit.names.N_CONVENTIONS, or N_UNSTATED when the table does not say.
    n_convention: str = N_UNSTATED

    def __len__(self) -> int:
        return int(self.N.shape[0])

    @property
    def has_unique_tokens(self) -> bool:
        return bool(np.all(np.isfinite(self.U_D)))

    @property
    def sizes(self) -> Array:
        """The distinct model sizes, ascending."""
        return np.unique(self.N)

    @property
    def n_runs(self) -> int:
        return int(np.unique(self.run_id).shape[0])

    def covariates(self) -> Covariates:
        """The law inputs; without U_D, every point counts as one epoch (U_D = D)."""
        return Covariates(self.N, self.D, self.U_D if self.has_unique_tokens else self.D)

    def subset(self, mask: Array) -> LossPoints:
        return LossPoints(
            self.run_id[mask],
            self.N[mask],
            self.D[mask],
            self.U_D[mask],
            self.loss[mask],
            self.weight[mask],
            self.source,
            self.n_convention,
        )

    def content_hash(self) -> str:
        """sha256 of the points in canonical order: the same data gives the same hash."""
        order = np.lexsort((self.loss, self.U_D, self.D, self.N, self.run_id.astype(str)))
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.run_id[order].astype(str)).encode())
        for column in (self.N, self.D, self.U_D, self.loss, self.weight):
            digest.update(np.ascontiguousarray(column[order], dtype="<f8").tobytes())
        return "sha256:" + digest.hexdigest()

    @classmethod
    def from_arrays(
        cls,
        N: object,
        D: object,
        loss: object,
        U_D: object | None = None,
        run_id: object | None = None,
        weight: object | None = None,
        source: str = "<memory>",
    ) -> LossPoints:
        """Build and validate a table from arrays (one run per point when run_id is None)."""
        table: dict[str, object] = {"N": N, "D": D, "loss": loss}
        if U_D is not None:
            table["U_D"] = U_D
        if run_id is not None:
            table["run_id"] = run_id
        if weight is not None:
            table["weight"] = weight
        return _validate(table, source, row_offset=0)

    @classmethod
    def from_frame(cls, frame: object, source: str) -> LossPoints:
        """A table from a data frame with lawfit's column names (storage's loss-point table has them);
        ``run_id``, ``U_D`` and ``weight`` are used when present."""
        columns = set(getattr(frame, "columns", ()))
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise LawfitInputError(f"{source}: missing column(s) {', '.join(missing)}")
        table = {name: frame[name].to_numpy() for name in ALL_COLUMNS if name in columns}  # type: ignore[index]
        if "n_convention" in columns:
            table["n_convention"] = frame["n_convention"].to_numpy()  # type: ignore[index]
        return _validate(table, source, row_offset=0)


def parse_column_map(text: str | None) -> dict[str, str]:
    """``N=params_N,D=tokens_D`` → {"N": "params_N", "D": "tokens_D"}; names lawfit's columns."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if "=" not in item:
            raise LawfitInputError(f"--columns: {item!r} is not of the form NAME=COLUMN (e.g. N=params_N)")
        key, _, column = (part.strip() for part in item.partition("="))
        if key not in ALL_COLUMNS:
            raise LawfitInputError(f"--columns: unknown name {key!r}; names are {', '.join(ALL_COLUMNS)}")
        if not column:
            raise LawfitInputError(f"--columns: {key}= names no column")
        mapping[key] = column
    return mapping


def read_points(
    path: str | Path, columns: Mapping[str, str] | None = None, n_convention: str | None = None
) -> LossPoints:
    """Read a CSV or Parquet table of loss points, mapping column names with ``columns``.

    ``n_convention`` states what N counts when the table has no ``n_convention`` column; given for a table
    that has one, the two must agree.
    """
    import pandas as pd

    file = Path(path)
    if not file.exists():
        raise LawfitInputError(f"{file}: no such file")
    if not file.is_file():
        raise LawfitInputError(f"{file}: not a file")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(file)
            row_offset = 0
        else:
            frame = pd.read_csv(file, dtype=str, keep_default_na=False)
            row_offset = 1  # the header is line 1
    except (OSError, ValueError, UnicodeDecodeError, ImportError) as exc:
        raise LawfitInputError(f"{file}: cannot be read as a {'Parquet' if file.suffix == '.parquet' else 'CSV'} table: {exc}") from None
    mapping = dict(columns or {})
    table: dict[str, object] = {}
    for name in ALL_COLUMNS:
        column = mapping.get(name, name)
        if column in frame.columns:
            table[name] = frame[column].to_numpy()
        elif name in mapping:
            raise LawfitInputError(
                f"{file}: column {column!r} (given for {name}) is missing; the table has {', '.join(map(str, frame.columns))}"
            )
    if "n_convention" in frame.columns:
        table["n_convention"] = frame["n_convention"].to_numpy()
    missing = [name for name in REQUIRED_COLUMNS if name not in table]
    if missing:
        hint = "; map other names with --columns, e.g. --columns N=params_N,D=tokens_D,loss=val_loss"
        raise LawfitInputError(
            f"{file}: missing column(s) {', '.join(missing)}; the table has {', '.join(map(str, frame.columns))}{hint}"
        )
    points = _validate(table, str(file), row_offset=row_offset, column_names=mapping)
    if n_convention is not None:
        if n_convention not in N_CONVENTIONS:
            raise LawfitInputError(f"--n-convention {n_convention!r}: choose one of {', '.join(N_CONVENTIONS)}")
        if points.n_convention not in (N_UNSTATED, n_convention):
            raise LawfitInputError(f"{file}: its n_convention column says N counts {points.n_convention} "
                                   f"parameters, but --n-convention says {n_convention}")
        points = replace(points, n_convention=n_convention)
    return points


def _validate(
    table: Mapping[str, object], source: str, row_offset: int, column_names: Mapping[str, str] | None = None
) -> LossPoints:
    names = column_names or {}
    n_rows = len(np.asarray(table["N"]).reshape(-1))
    if n_rows == 0:
        raise LawfitInputError(f"{source}: the table has no rows")

    def where(name: str, index: int) -> str:
        column = names.get(name, name)
        line = f" (line {index + 1 + row_offset})" if row_offset else ""
        return f"{source}: row {index + 1}{line}, column {column!r}"

    numeric: dict[str, Array] = {}
    for name in ("N", "D", "U_D", "loss", "weight"):
        if name not in table:
            continue
        raw = np.asarray(table[name], dtype=object).reshape(-1)
        if raw.shape[0] != n_rows:
            raise LawfitInputError(f"{source}: column {name!r} has {raw.shape[0]} values, expected {n_rows}")
        values = np.empty(n_rows)
        for i, cell in enumerate(raw):
            try:
                values[i] = float(cell.strip()) if isinstance(cell, str) else float(cell)
            except (TypeError, ValueError):
                raise LawfitInputError(f"{where(name, i)}: {cell!r} is not a number") from None
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise LawfitInputError(f"{where(name, int(bad[0]))}: {values[bad[0]]} is not a finite number")
        non_positive = np.flatnonzero(values <= 0) if name != "weight" else np.flatnonzero(values < 0)
        if non_positive.size:
            need = "must be positive" if name != "weight" else "must not be negative"
            raise LawfitInputError(f"{where(name, int(non_positive[0]))}: {values[non_positive[0]]} {need}")
        numeric[name] = values
    if "run_id" in table:
        run_id = np.asarray([str(v).strip() for v in np.asarray(table["run_id"], dtype=object).reshape(-1)], dtype=object)
        empty = np.flatnonzero(run_id == "")
        if empty.size:
            raise LawfitInputError(f"{where('run_id', int(empty[0]))}: empty run id")
    else:
        run_id = np.asarray([f"row{i + 1}" for i in range(n_rows)], dtype=object)
    if "run_id" in table:
        # A run is one model: its points share one N (a second N under the same id is two runs mixed up).
        first_n: dict[str, float] = {}
        for i, (run, n) in enumerate(zip(run_id, numeric["N"], strict=True)):
            if first_n.setdefault(run, n) != n:
                raise LawfitInputError(f"{where('N', i)}: run {run!r} has N = {first_n[run]:g} in an earlier row and "
                                       f"{n:g} here; a run is one model size (give each model its own run id)")
    weight = numeric.get("weight", np.ones(n_rows))
    if not np.any(weight > 0):
        raise LawfitInputError(f"{source}: every weight is zero")
    return LossPoints(
        n_convention=_n_convention(table, where),
        run_id=run_id,
        N=numeric["N"],
        D=numeric["D"],
        U_D=numeric.get("U_D", np.full(n_rows, np.nan)),
        loss=numeric["loss"],
        weight=weight,
        source=source,
    )


def _n_convention(table: Mapping[str, object], where: Callable[[str, int], str]) -> str:
    """The table's one ``n_convention`` value (every row the same), or N_UNSTATED without the column."""
    if "n_convention" not in table:
        return N_UNSTATED
    values = [str(v).strip() for v in np.asarray(table["n_convention"], dtype=object).reshape(-1)]
    for i, value in enumerate(values):
        if value not in N_CONVENTIONS:
            raise LawfitInputError(f"{where('n_convention', i)}: {value!r} is not one of "
                                   f"{', '.join(N_CONVENTIONS)}")
        if value != values[0]:
            raise LawfitInputError(f"{where('n_convention', i)}: {value!r} differs from row 1's {values[0]!r}; "
                                   "one table counts N one way (fit each convention on its own)")
    return values[0]
