"""Grid spec files: a TOML file in, the campaign's run specs (with stable ids) out.

A spec file::

    [campaign]
    name = "demo"            # the MLflow experiment
    corpus = "corpus"        # a built corpus folder (relative to this file)
    folder = "runs"          # where run folders and the embedded tracking store go
    tracking_uri = ""        # empty: sqlite in the campaign folder

    [grid]                   # the Cartesian product of these lists
    presets = ["tiny-0.1m", "tiny-1m"]
    fractions = [0.0625, 0.25]
    epochs = [1, 2, 4]       # or tokens = [...], not both
    data_mixes = ["abc"]
    seeds = [0]

    [train]                  # run-spec fields shared by every run
    context = 64
    lr = 3e-3

    [launcher]
    kind = "local"           # or "slurm"
    max_parallel = 2
    timeout_min = 60

Every table and key is checked before anything runs: an unknown key, a value
of the wrong kind, an impossible combination (epochs and tokens both, a train
key the grid already sets) or a fraction the corpus lacks is an error naming
the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.run import RunSpec

CAMPAIGN_KEYS = {"name": str, "corpus": str, "folder": str, "tracking_uri": str}
GRID_KEYS = {"presets": str, "fractions": float, "epochs": float, "tokens": int, "data_mixes": str, "seeds": int}
LAUNCHER_KEYS = {
    "kind": str, "max_parallel": int, "timeout_min": int, "partition": str, "gpus_per_node": int, "cpus_per_task": int,
    "mem_gb": int, "account": str, "qos": str, "setup": list, "array_parallelism": int, "max_array_size": int,
    "max_num_timeout": int,
}
GRID_TO_SPEC = {"presets": "preset", "fractions": "fraction", "epochs": "epochs", "tokens": "tokens",
                "data_mixes": "data_mix", "seeds": "seed"}


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file, table and key (exit status 2)."""


@dataclass(frozen=True)
class Campaign:
    name: str
    source: Path
    corpus: Path
    folder: Path
    tracking_uri: str
    runs: tuple[RunSpec, ...]
    launcher: Mapping[str, Any]


def _check_table(source: Path, table: str, data: Any, allowed: Mapping[str, type]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: [{table}] must be a table")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{source}: [{table}] unknown key {unknown[0]!r}; known keys: {', '.join(sorted(allowed))}")
    return data


def _as_list(source: Path, key: str, value: Any, kind: type) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{source}: [grid] {key} is empty")
    out = []
    for v in values:
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or isinstance(v, bool):
            raise SpecError(f"{source}: [grid] {key}: {v!r} is not a {kind.__name__}")
        out.append(v)
    return out


def load_campaign(path: str | Path) -> Campaign:
    """Read, check and expand a grid spec file."""
    source = Path(path)
    if not source.is_file():
        raise SpecError(f"{source}: no such spec file")
    try:
        data = tomllib.loads(source.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{source}: not a TOML file: {exc}") from None
    unknown = sorted(set(data) - {"campaign", "grid", "train", "launcher"})
    if unknown:
        raise SpecError(f"{source}: unknown table [{unknown[0]}]; tables are [campaign], [grid], [train], [launcher]")
    campaign = _check_table(source, "campaign", data.get("campaign", {}), CAMPAIGN_KEYS)
    for key, value in campaign.items():
        if not isinstance(value, str):
            raise SpecError(f"{source}: [campaign] {key} must be a string")
    grid = _check_table(source, "grid", data.get("grid"), GRID_KEYS) if "grid" in data else None
    if grid is None:
        raise SpecError(f"{source}: the [grid] table is missing")
    spec_fields = {f.name: f for f in dataclasses.fields(RunSpec)}
    train = _check_table(source, "train", data.get("train", {}), {k: object for k in spec_fields})
    launcher = _check_table(source, "launcher", data.get("launcher", {}), LAUNCHER_KEYS)
    for key, value in launcher.items():
        kind = LAUNCHER_KEYS[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SpecError(f"{source}: [launcher] {key}: {value!r} is not a {kind.__name__}")
    if launcher.get("kind", "local") not in ("local", "slurm"):
        raise SpecError(f"{source}: [launcher] kind must be 'local' or 'slurm', got {launcher['kind']!r}")

    if "epochs" in grid and "tokens" in grid:
        raise SpecError(f"{source}: [grid] gives both epochs and tokens; a run has one budget")
    if "epochs" not in grid and "tokens" not in grid:
        raise SpecError(f"{source}: [grid] needs epochs or tokens")
    for key in ("presets", "fractions"):
        if key not in grid:
            raise SpecError(f"{source}: [grid] needs {key}")
    clash = sorted(set(train) & {GRID_TO_SPEC[k] for k in grid})
    if clash:
        raise SpecError(f"{source}: [train] {clash[0]} is already set by [grid]; give it in one place")

    axes = {key: _as_list(source, key, value, GRID_KEYS[key]) for key, value in grid.items()}
    base = source.parent
    corpus = (base / campaign.get("corpus", "corpus")).resolve()
    folder = (base / campaign.get("folder", "runs")).resolve()
    runs = []
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        fields = {**train, **{GRID_TO_SPEC[n]: v for n, v in zip(names, combo, strict=True)}}
        try:
            runs.append(RunSpec(**fields))
        except TypeError as exc:
            raise SpecError(f"{source}: [train] {exc}") from None
    _check_against_corpus(source, corpus, runs)
    seen: dict[str, RunSpec] = {}
    for run in runs:
        seen.setdefault(run.run_id(), run)
    return Campaign(
        name=campaign.get("name", source.stem), source=source, corpus=corpus, folder=folder,
        tracking_uri=campaign.get("tracking_uri", "") or "", runs=tuple(seen.values()), launcher=dict(launcher),
    )


def _check_against_corpus(source: Path, corpus: Path, runs: list[RunSpec]) -> None:
    """Presets, contexts and fractions are checked against the corpus before anything launches."""
    from trainer.run import RunError, prepare

    if not (corpus / "manifest.json").is_file():
        raise SpecError(f"{source}: [campaign] corpus {corpus} is not a built corpus (no manifest.json)")
    checked: set[tuple[object, ...]] = set()
    for run in runs:
        key = (run.preset, run.fraction, run.context, run.batch_tokens, run.micro_batch, run.epochs, run.tokens)
        if key in checked:
            continue
        checked.add(key)
        try:
            prepare(run, corpus)
        except RunError as exc:
            raise SpecError(f"{source}: [grid]/[train]: {exc}") from None
