"""Grid spec files: a TOML file in, the campaign's run specs (with stable ids) out.

A spec file::

    [campaign]
    name = "demo"            # the MLflow experiment
    corpus = "corpus"        # a built corpus folder (relative to this file), or one per data mix:
                             # corpora = {abc = "corpus-abc", "abc+bach" = "corpus-all"}
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

    [plan]                   # only for `smslab campaign run`
    target_flops = 2e14      # the FLOP budget the recommendation is for
    unique_tokens = 0        # U_D to plan for; 0: the largest grid fraction's U_D
    tolerance = 2.0          # stop when the N* interval's upper/lower ratio is at most this
    budget_flops = 1e15      # the campaign's own compute (Σ 6·N·D over its runs and lr search); stop when spent
    max_rounds = 3           # proposal rounds after the grid
    runs_per_round = 2
    bootstrap = 100          # resamples of the runs per round
    level = 0.9              # of the intervals
    laws = ["chinchilla", "data_constrained", "dprime", "nd", "sms"]
    points = "final"         # fit each run's final loss, or "curve": every evaluation
    presets = []             # presets proposals may use (default: the grid's)
    epochs = []              # epoch counts proposals may use (default: the grid's and twice the largest)

    [lr_search]              # optional: Optuna TPE over the peak learning rate, per preset, before the grid
    trials = 6
    tokens = 200000          # each trial's token budget
    fraction = 1.0           # the data fraction trials train on (default: the grid's largest)
    low = 1e-4
    high = 3e-2

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

CAMPAIGN_KEYS = {"name": str, "corpus": str, "corpora": dict, "folder": str, "tracking_uri": str}
# The kinds of the run-spec fields [train] may set (None: may be left out, as epochs or tokens).
TRAIN_KINDS: dict[str, type] = {
    "preset": str, "fraction": float, "epochs": float, "tokens": int, "context": int, "lr": float, "final_lr": float,
    "batch_tokens": int, "micro_batch": int, "seed": int, "data_mix": str, "eval_every_tokens": int, "precision": str,
}
PRECISIONS = ("32", "bf16-mixed", "auto")
DEFAULT_MIX = "abc"
GRID_KEYS = {"presets": str, "fractions": float, "epochs": float, "tokens": int, "data_mixes": str, "seeds": int}
LAUNCHER_KEYS = {
    "kind": str, "max_parallel": int, "timeout_min": int, "partition": str, "gpus_per_node": int, "cpus_per_task": int,
    "mem_gb": int, "account": str, "qos": str, "setup": list, "array_parallelism": int, "max_array_size": int,
    "max_num_timeout": int,
}
PLAN_KEYS = {
    "target_flops": float, "unique_tokens": float, "tolerance": float, "budget_flops": float, "max_rounds": int,
    "runs_per_round": int, "bootstrap": int, "level": float, "laws": list, "points": str, "presets": list,
    "epochs": list,
}
PLAN_DEFAULTS: dict[str, Any] = {
    "unique_tokens": 0.0, "tolerance": 2.0, "max_rounds": 3, "runs_per_round": 2, "bootstrap": 100, "level": 0.9,
    "laws": ["chinchilla", "data_constrained", "dprime", "nd", "sms"], "points": "final", "presets": [], "epochs": [],
}
LR_SEARCH_KEYS = {"trials": int, "tokens": int, "fraction": float, "low": float, "high": float}
LR_SEARCH_DEFAULTS: dict[str, Any] = {"trials": 6, "tokens": 200_000, "low": 1e-4, "high": 3e-2}
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
    grid: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    plan: Mapping[str, Any] | None = None  # the [plan] table with defaults filled in; None without one
    lr_search: Mapping[str, Any] | None = None
    corpora: Mapping[str, Path] = dataclasses.field(default_factory=dict)  # data mix → its corpus

    def corpus_for(self, spec: RunSpec) -> Path:
        """The corpus of the run's data mix (``corpus`` when the campaign has one)."""
        return self.corpora.get(spec.data_mix, self.corpus)


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


def load_campaign(path: str | Path, check_corpus: bool = True) -> Campaign:
    """Read, check and expand a grid spec file (against its corpus too, unless ``check_corpus`` is False:
    run ids do not depend on the corpus, so the state of a campaign can be read without it)."""
    source = Path(path)
    if not source.is_file():
        raise SpecError(f"{source}: no such spec file")
    try:
        data = tomllib.loads(source.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{source}: not a TOML file: {exc}") from None
    unknown = sorted(set(data) - {"campaign", "grid", "train", "launcher", "plan", "lr_search"})
    if unknown:
        raise SpecError(f"{source}: unknown table [{unknown[0]}]; tables are [campaign], [grid], [train], [launcher], "
                        "[plan], [lr_search]")
    campaign = _check_table(source, "campaign", data.get("campaign", {}), CAMPAIGN_KEYS)
    for key, value in campaign.items():
        if key == "corpora":
            if not value or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise SpecError(f"{source}: [campaign] corpora must map each data mix to a corpus folder, "
                                'e.g. corpora = {abc = "corpus-abc", "abc+bach" = "corpus-all"}')
        elif not isinstance(value, str):
            raise SpecError(f"{source}: [campaign] {key} must be a string")
    if "corpus" in campaign and "corpora" in campaign:
        raise SpecError(f"{source}: [campaign] gives both corpus and corpora; give one corpus, or one per data mix")
    grid = _check_table(source, "grid", data.get("grid"), GRID_KEYS) if "grid" in data else None
    if grid is None:
        raise SpecError(f"{source}: the [grid] table is missing")
    train = _check_table(source, "train", data.get("train", {}), TRAIN_KINDS)
    train = {key: _typed(source, "train", key, value, TRAIN_KINDS[key]) for key, value in train.items()}
    if train.get("precision", "32") not in PRECISIONS:
        raise SpecError(f"{source}: [train] precision must be one of {', '.join(PRECISIONS)}, got {train['precision']!r}")
    for key in ("lr", "final_lr"):
        if key in train and not train[key] > 0:
            raise SpecError(f"{source}: [train] {key} must be positive, got {train[key]}")
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
    mixes = axes.get("data_mixes", [train.get("data_mix", DEFAULT_MIX)])
    if "corpora" in campaign:
        corpora = {mix: (base / folder_name).resolve() for mix, folder_name in campaign["corpora"].items()}
        for mix in mixes:
            if mix not in corpora:
                raise SpecError(f"{source}: [grid] data_mixes: no corpus for data mix {mix!r} in [campaign] corpora "
                                f"(mixes: {', '.join(corpora)})")
    elif len(set(mixes)) > 1:
        raise SpecError(f"{source}: [grid] data_mixes names {len(set(mixes))} data mixes but [campaign] gives one "
                        "corpus; give [campaign] corpora, a corpus folder per data mix")
    else:
        corpora = {mixes[0]: (base / campaign.get("corpus", "corpus")).resolve()}
    corpus = corpora[mixes[0]]
    folder = (base / campaign.get("folder", "runs")).resolve()
    runs = []
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        fields = {**train, **{GRID_TO_SPEC[n]: v for n, v in zip(names, combo, strict=True)}}
        try:
            runs.append(RunSpec(**fields))
        except TypeError as exc:
            raise SpecError(f"{source}: [train] {exc}") from None
    if check_corpus:
        for mix, mix_corpus in corpora.items():
            _check_against_corpus(source, mix_corpus, [run for run in runs if run.data_mix == mix])
    seen: dict[str, RunSpec] = {}
    for run in runs:
        seen.setdefault(run.run_id(), run)
    if "plan" in data and len(set(mixes)) > 1:
        raise SpecError(f"{source}: [plan] a campaign fits its laws on one data mix (its losses are measured on that "
                        f"mix's validation set); [grid] data_mixes names {len(set(mixes))}: run a campaign per mix")
    plan = _check_plan(source, data["plan"], axes, train, corpus if check_corpus else None) if "plan" in data else None
    lr_search = (_check_lr_search(source, data["lr_search"], axes, train, corpus if check_corpus else None)
                 if "lr_search" in data else None)
    return Campaign(
        name=campaign.get("name", source.stem), source=source, corpus=corpus, corpora=corpora, folder=folder,
        tracking_uri=campaign.get("tracking_uri", "") or "", runs=tuple(seen.values()), launcher=dict(launcher),
        grid={k: tuple(v) for k, v in axes.items()}, train=dict(train), plan=plan, lr_search=lr_search,
    )


def _typed(source: Path, table: str, key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpecError(f"{source}: [{table}] {key}: {value!r} is not a {kind.__name__}")
    return value


def _check_plan(source: Path, data: Any, axes: Mapping[str, list[Any]], train: Mapping[str, Any],
                corpus: Path | None) -> dict[str, Any]:
    from lawfit.cli import LAW_NAMES as LAWS

    table = _check_table(source, "plan", data, PLAN_KEYS)
    plan = {**PLAN_DEFAULTS, **{k: _typed(source, "plan", k, v, PLAN_KEYS[k]) for k, v in table.items()}}
    for key in ("target_flops", "budget_flops"):
        if key not in plan:
            raise SpecError(f"{source}: [plan] needs {key}")
    for key in ("target_flops", "budget_flops", "tolerance", "level"):
        if not plan[key] > 0:
            raise SpecError(f"{source}: [plan] {key} must be positive, got {plan[key]}")
    if plan["tolerance"] <= 1.0:
        raise SpecError(f"{source}: [plan] tolerance is the largest upper/lower ratio of N*'s interval: above 1, "
                        f"got {plan['tolerance']}")
    if not plan["level"] < 1.0:
        raise SpecError(f"{source}: [plan] level must lie in (0, 1), got {plan['level']}")
    for key in ("max_rounds", "runs_per_round", "bootstrap"):
        if plan[key] < (3 if key == "bootstrap" else 0 if key == "max_rounds" else 1):
            raise SpecError(f"{source}: [plan] {key} is too small: {plan[key]}")
    if plan["points"] not in ("final", "curve"):
        raise SpecError(f"{source}: [plan] points must be 'final' or 'curve', got {plan['points']!r}")
    for law in plan["laws"]:
        if law not in LAWS:
            raise SpecError(f"{source}: [plan] laws: unknown law {law!r}; laws are {', '.join(LAWS)}")
    if not plan["laws"]:
        raise SpecError(f"{source}: [plan] laws is empty")
    if "tokens" in axes and not plan["epochs"]:
        raise SpecError(f"{source}: [plan] epochs is needed for proposals when the grid gives tokens")
    plan["epochs"] = [_typed(source, "plan", "epochs", e, float) for e in plan["epochs"]]
    plan["presets"] = [_typed(source, "plan", "presets", p, str) for p in plan["presets"]] or list(axes["presets"])
    if plan["unique_tokens"] < 0:
        raise SpecError(f"{source}: [plan] unique_tokens must be positive (or 0: the largest grid fraction's), "
                        f"got {plan['unique_tokens']}")
    probe = [RunSpec(**{**train, "preset": p, "fraction": axes["fractions"][0], "epochs": 1.0}) for p in plan["presets"]]
    if corpus is not None:
        _check_against_corpus(source, corpus, probe)
    return plan


def _check_lr_search(source: Path, data: Any, axes: Mapping[str, list[Any]], train: Mapping[str, Any],
                     corpus: Path | None) -> dict[str, Any]:
    table = _check_table(source, "lr_search", data, LR_SEARCH_KEYS)
    search = {**LR_SEARCH_DEFAULTS, "fraction": max(axes["fractions"]),
              **{k: _typed(source, "lr_search", k, v, LR_SEARCH_KEYS[k]) for k, v in table.items()}}
    if "lr" in train:
        raise SpecError(f"{source}: [train] lr is set, and [lr_search] would choose it; give one of them")
    if not 0 < search["low"] < search["high"]:
        raise SpecError(f"{source}: [lr_search] needs 0 < low < high, got low={search['low']}, high={search['high']}")
    if search["trials"] < 1 or search["tokens"] < 1:
        raise SpecError(f"{source}: [lr_search] trials and tokens must be positive")
    probe = [RunSpec(**{**train, "preset": p, "fraction": search["fraction"], "tokens": search["tokens"]})
             for p in axes["presets"]]
    if corpus is not None:
        _check_against_corpus(source, corpus, probe)
    return search


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
