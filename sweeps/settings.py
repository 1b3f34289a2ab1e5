"""The typed settings of a campaign spec: ``[launcher]``, ``[plan]`` and ``[lr_search]``, frozen and checked.

Each table of the TOML file becomes one frozen dataclass; its fields are the
table's keys, with their kinds and defaults. ``from_table`` refuses an unknown
key (listing the known ones) and a value of the wrong kind, naming the file,
the table and the key; each class's ``check`` refuses impossible values.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from lawfit.names import LAW_NAMES, N_CONVENTIONS, PAPER_LAW_NAMES


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file, table and key."""

    exit_status = 2


LAUNCHER_KINDS = ("local", "slurm", "debug")
POINT_SELECTIONS = ("final", "curve")


@dataclass(frozen=True)
class LauncherSettings:
    """``[launcher]``: how runs are launched. ``debug`` runs every job in this process (submitit's
    DebugExecutor): for tests and debugging, one run at a time."""

    kind: str = "local"
    max_parallel: int = 1  # local: jobs at a time
    timeout_min: int = 240
    max_num_timeout: int = 3  # requeues after a timeout or preemption before a job counts as failed
    partition: str | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    setup: tuple[str, ...] = ()  # shell lines run before each Slurm job
    array_parallelism: int | None = None
    max_array_size: int = 0  # 0: the cluster's MaxArraySize

    def check(self, source: Path) -> None:
        if self.kind not in LAUNCHER_KINDS:
            raise SpecError(f"{source}: [launcher] kind must be one of {', '.join(map(repr, LAUNCHER_KINDS))}, "
                            f"got {self.kind!r}")
        for name in ("max_parallel", "timeout_min"):
            if getattr(self, name) < 1:
                raise SpecError(f"{source}: [launcher] {name} must be at least 1, got {getattr(self, name)}")
        if self.max_num_timeout < 0 or self.max_array_size < 0:
            raise SpecError(f"{source}: [launcher] max_num_timeout and max_array_size must not be negative")

    @property
    def devices(self) -> int:
        """Processes (DDP ranks) per run: one per GPU."""
        return max(1, self.gpus_per_node or 1)


def law_file_path(source: Path, law_file: str) -> Path:
    """A ``[plan] law_files`` entry, relative to the spec's folder."""
    return (source.parent / law_file).resolve()


@dataclass(frozen=True)
class PlanSettings:
    """``[plan]``: what a campaign plans for, when it stops, and what it may propose."""

    target_flops: float  # the FLOP budget the recommendation is for
    budget_flops: float  # the campaign's own compute (Σ 6·N·D of its runs and lr search)
    unique_tokens: float = 0.0  # U_D to plan for; 0: the largest grid fraction's
    tolerance: float = 2.0  # stop when N*'s interval upper/lower is at most this
    max_rounds: int = 3  # proposal rounds after the grid
    runs_per_round: int = 2
    bootstrap: int = 100  # resamples of the runs per round
    level: float = 0.9  # of the intervals
    laws: tuple[str, ...] = PAPER_LAW_NAMES  # smslab's own laws (sms_repetition) only where named
    points: str = "final"  # fit each finished run's final loss, or "curve": every evaluation
    presets: tuple[str, ...] = ()  # presets proposals may use (the grid's when empty)
    epochs: tuple[float, ...] = ()  # epoch counts proposals may use (the grid's and twice the largest when empty)
    # What N counts in the fits: "non_embedding" (Kaplan; the default) or "with_embeddings" (MuPT's sizes).
    n_convention: str = "non_embedding"
    # Laws of one's own (lawfit.user_law files, relative to the spec's folder); ``laws`` may then name them.
    law_files: tuple[str, ...] = ()

    def check(self, source: Path) -> None:
        for name in ("target_flops", "budget_flops", "tolerance", "level"):
            if not getattr(self, name) > 0:
                raise SpecError(f"{source}: [plan] {name} must be positive, got {getattr(self, name)}")
        if self.tolerance <= 1.0:
            raise SpecError(f"{source}: [plan] tolerance is the largest upper/lower ratio of N*'s interval: above 1, "
                            f"got {self.tolerance}")
        if not self.level < 1.0:
            raise SpecError(f"{source}: [plan] level must lie in (0, 1), got {self.level}")
        for name, least in (("max_rounds", 0), ("runs_per_round", 1), ("bootstrap", 3)):
            if getattr(self, name) < least:
                raise SpecError(f"{source}: [plan] {name} is too small: {getattr(self, name)} (at least {least})")
        if self.points not in POINT_SELECTIONS:
            raise SpecError(f"{source}: [plan] points must be 'final' or 'curve', got {self.points!r}")
        if not self.laws:
            raise SpecError(f"{source}: [plan] laws is empty")
        if self.n_convention not in N_CONVENTIONS:
            raise SpecError(f"{source}: [plan] n_convention must be one of {', '.join(N_CONVENTIONS)}, "
                            f"got {self.n_convention!r}")
        known = (*LAW_NAMES, *self.user_law_names(source))
        for law in self.laws:
            if law not in known:
                raise SpecError(f"{source}: [plan] laws: unknown law {law!r}; laws are {', '.join(known)}")
        if self.unique_tokens < 0:
            raise SpecError(f"{source}: [plan] unique_tokens must be positive (or 0: the largest grid fraction's), "
                            f"got {self.unique_tokens}")
        if any(e <= 0 for e in self.epochs):
            raise SpecError(f"{source}: [plan] epochs must be positive, got {list(self.epochs)}")

    def user_law_names(self, source: Path) -> tuple[str, ...]:
        """Load (and register) each law file; the names of its laws. A bad file is a SpecError naming it."""
        if not self.law_files:
            return ()
        from lawfit.errors import LawfitInputError
        from lawfit.user_law import load_law_file

        names = []
        for law_file in self.law_files:
            try:
                names.append(load_law_file(law_file_path(source, law_file)).law.name)
            except LawfitInputError as exc:
                raise SpecError(f"{source}: [plan] law_files: {exc}") from None
        return tuple(names)

@dataclass(frozen=True)
class LrSearchSettings:
    """``[lr_search]``: an Optuna TPE search over the peak learning rate, per preset, before the grid."""

    fraction: float  # the data fraction trials train on (the grid's largest unless given)
    trials: int = 6
    tokens: int = 200_000  # each trial's token budget
    low: float = 1e-4
    high: float = 3e-2

    def check(self, source: Path) -> None:
        if not 0 < self.low < self.high:
            raise SpecError(f"{source}: [lr_search] needs 0 < low < high, got low={self.low}, high={self.high}")
        if self.trials < 1 or self.tokens < 1:
            raise SpecError(f"{source}: [lr_search] trials and tokens must be positive")


Settings = TypeVar("Settings", LauncherSettings, PlanSettings, LrSearchSettings)


def from_table(cls: type[Settings], source: Path, table: str, data: Any,
               defaults: Mapping[str, Any] | None = None) -> Settings:
    """``cls`` from a TOML table: every key known and of its field's kind, required fields present;
    ``defaults`` fill fields whose default depends on other tables. Then ``cls.check``."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: [{table}] must be a table")
    kinds = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SpecError(f"{source}: [{table}] unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    values = {**(defaults or {}), **{key: typed_value(source, table, key, value, kinds[key]) for key, value in data.items()}}
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in values]
    if missing:
        raise SpecError(f"{source}: [{table}] needs {missing[0]}")
    settings = cls(**values)
    settings.check(source)
    return settings


def typed_value(source: Path, table: str, key: str, value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (int, float, str, a tuple of one of them, optionally None), or a SpecError."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    kind = next(k for k in options if k is not type(None))
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list):
            raise SpecError(f"{source}: [{table}] {key} must be a list, got {value!r}")
        return tuple(typed_value(source, table, key, v, item) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpecError(f"{source}: [{table}] {key}: {value!r} is not a {kind.__name__}")
    return value
