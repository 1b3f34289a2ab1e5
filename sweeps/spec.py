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
    kind = "local"           # or "slurm", or "debug" (every job in this process: tests, debugging)
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
import functools
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.settings import (
    LauncherSettings,
    LrSearchSettings,
    PlanSettings,
    SpecError,
    from_table,
    typed_value,
)
from trainer.spec import PRECISIONS, CorpusInfo, Prepared, RunError, RunSpec, prepare

__all__ = ["Campaign", "Grid", "SpecError", "load_campaign"]

CAMPAIGN_KEYS = {"name": str, "corpus": str, "corpora": dict, "folder": str, "tracking_uri": str}
# The kinds of the run-spec fields [train] may set.
TRAIN_KINDS: dict[str, type] = {
    "preset": str, "fraction": float, "epochs": float, "tokens": int, "context": int, "lr": float, "final_lr": float,
    "batch_tokens": int, "micro_batch": int, "seed": int, "data_mix": str, "eval_every_tokens": int, "precision": str,
}
DEFAULT_MIX = "abc"
GRID_KEYS = {"presets": str, "fractions": float, "epochs": float, "tokens": int, "data_mixes": str, "seeds": int}
GRID_TO_SPEC = {"presets": "preset", "fractions": "fraction", "epochs": "epochs", "tokens": "tokens",
                "data_mixes": "data_mix", "seeds": "seed"}
TABLES = ("campaign", "grid", "train", "launcher", "plan", "lr_search")
# Every run gets a folder, a job and a trial: beyond this a grid is a typo (a 10^6-run grid took sweep status
# 127 s and 1.2 GB before anything ran), and it is refused before it is expanded.
MAX_GRID_RUNS = 10_000


@dataclass(frozen=True)
class Grid:
    """``[grid]``: the axes whose Cartesian product is the campaign's runs."""

    presets: tuple[str, ...]
    fractions: tuple[float, ...]
    epochs: tuple[float, ...] = ()
    tokens: tuple[int, ...] = ()
    data_mixes: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Campaign:
    name: str
    source: Path
    corpus: Path
    folder: Path
    tracking_uri: str
    runs: tuple[RunSpec, ...]
    launcher: LauncherSettings
    grid: Grid
    # [train]: run-spec fields shared by every run, each checked against its RunSpec kind.
    train: Mapping[str, object] = field(default_factory=dict)
    plan: PlanSettings | None = None  # None without a [plan] table
    lr_search: LrSearchSettings | None = None
    corpora: Mapping[str, Path] = field(default_factory=dict)  # data mix → its corpus

    def corpus_for(self, spec: RunSpec) -> Path:
        """The corpus of the run's data mix (``corpus`` when the campaign has one)."""
        return self.corpora.get(spec.data_mix, self.corpus)

    def prepare(self, spec: RunSpec) -> Prepared:
        """The run checked against its corpus; each corpus manifest is read once per campaign."""
        return prepare(spec, _corpus_info(self.corpus_for(spec)))


@functools.lru_cache(maxsize=16)
def _corpus_info(folder: Path) -> CorpusInfo:
    # A corpus does not change under a campaign (a rebuild gets a new cache key; its runs then differ).
    return CorpusInfo.read(folder)


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
    return [typed_value(source, "grid", key, v, kind) for v in values]


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
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise SpecError(f"{source}: unknown table [{unknown[0]}]; tables are " + ", ".join(f"[{t}]" for t in TABLES))
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
    if "name" in campaign and not campaign["name"].strip():
        raise SpecError(f"{source}: [campaign] name is empty; it names the campaign's MLflow experiment and record")
    if "grid" not in data:
        raise SpecError(f"{source}: the [grid] table is missing")
    grid = _check_table(source, "grid", data["grid"], GRID_KEYS)
    train = _check_table(source, "train", data.get("train", {}), TRAIN_KINDS)
    train = {key: typed_value(source, "train", key, value, TRAIN_KINDS[key]) for key, value in train.items()}
    if train.get("precision", "32") not in PRECISIONS:
        raise SpecError(f"{source}: [train] precision must be one of {', '.join(PRECISIONS)}, got {train['precision']!r}")
    for key in ("lr", "final_lr"):
        if key in train and not train[key] > 0:
            raise SpecError(f"{source}: [train] {key} must be positive, got {train[key]}")
    launcher = from_table(LauncherSettings, source, "launcher", data.get("launcher", {}))

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
    count = math.prod(len(values) for values in axes.values())
    if count > MAX_GRID_RUNS:
        sizes = " x ".join(f"{len(values)} {key}" for key, values in axes.items())
        raise SpecError(f"{source}: [grid] means {count:,} runs ({sizes}); more than {MAX_GRID_RUNS:,} is refused: "
                        "split it into campaigns, or shorten its lists")
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
    checked_corpus = corpus if check_corpus else None
    plan = _check_plan(source, data["plan"], axes, train, checked_corpus) if "plan" in data else None
    if plan is not None:
        _check_fittable(source, plan, list(seen.values()), corpus if check_corpus else None)
    lr_search = _check_lr_search(source, data["lr_search"], axes, train, checked_corpus) if "lr_search" in data else None
    return Campaign(
        name=campaign.get("name", source.stem), source=source, corpus=corpus, corpora=corpora, folder=folder,
        tracking_uri=campaign.get("tracking_uri", "") or "", runs=tuple(seen.values()), launcher=launcher,
        grid=Grid(**{k: tuple(v) for k, v in axes.items()}), train=dict(train), plan=plan, lr_search=lr_search,
    )


def _check_plan(source: Path, data: Any, axes: Mapping[str, list[Any]], train: Mapping[str, Any],
                corpus: Path | None) -> PlanSettings:
    plan = from_table(PlanSettings, source, "plan", data)
    if "tokens" in axes and not plan.epochs:
        raise SpecError(f"{source}: [plan] epochs is needed for proposals when the grid gives tokens")
    if not plan.presets:
        plan = dataclasses.replace(plan, presets=tuple(axes["presets"]))
    probe = [RunSpec(**{**train, "preset": p, "fraction": axes["fractions"][0], "epochs": 1.0}) for p in plan.presets]
    if corpus is not None:
        _check_against_corpus(source, corpus, probe)
    return plan


def _check_fittable(source: Path, plan: PlanSettings, runs: list[RunSpec], corpus: Path | None) -> None:
    """The grid alone must give every law of [plan] enough to fit: two model sizes, and at least as many
    points as the law has parameters (one per run with points = "final", every evaluation with "curve")
    — otherwise the campaign would train everything and then fail."""
    from lawfit.names import LAW_PARAMETER_COUNTS

    sizes = {run.preset for run in runs}
    if len(sizes) < 2:
        raise SpecError(f"{source}: [plan] needs runs of at least two model sizes to fit a law; [grid] presets "
                        f"gives {len(sizes)}")
    if plan.points == "final" or corpus is None:
        points = len(runs)
    else:
        info = CorpusInfo.read(corpus)
        points = sum(_evaluations(prepare(run, info)) for run in runs)
    counts = {law: _free_parameters(law) for law in plan.laws}
    short = [law for law in plan.laws if counts[law] > points]
    if short:
        law = max(short, key=lambda name: counts[name])
        raise SpecError(f"{source}: [plan] laws: {law} has {counts[law]} parameters but the grid gives "
                        f"{points} loss points (points = {plan.points!r}); add runs to [grid] or leave the law out")


def _free_parameters(law: str) -> int:
    """A built-in law's parameter count (numpy-free), or a user law's, loaded by ``PlanSettings.check``."""
    from lawfit.names import LAW_PARAMETER_COUNTS

    if law in LAW_PARAMETER_COUNTS:
        return LAW_PARAMETER_COUNTS[law]
    from lawfit.laws import get_law

    return len(get_law(law).params)


def _evaluations(prepared: Prepared) -> int:
    """How many curve points a run records: every ``eval_every`` optimizer steps, and at its last step
    (``trainer/callback.py``)."""
    every = max(1, round(prepared.spec.eval_every_tokens / prepared.plan.tokens_per_step))
    steps = prepared.plan.total_steps
    return steps // every + (1 if steps % every else 0)


def _check_lr_search(source: Path, data: Any, axes: Mapping[str, list[Any]], train: Mapping[str, Any],
                     corpus: Path | None) -> LrSearchSettings:
    search = from_table(LrSearchSettings, source, "lr_search", data, defaults={"fraction": max(axes["fractions"])})
    if "lr" in train:
        raise SpecError(f"{source}: [train] lr is set, and [lr_search] would choose it; give one of them")
    probe = [RunSpec(**{**train, "preset": p, "fraction": search.fraction, "tokens": search.tokens})
             for p in axes["presets"]]
    if corpus is not None:
        _check_against_corpus(source, corpus, probe)
    return search


def _check_against_corpus(source: Path, corpus: Path, runs: list[RunSpec]) -> None:
    """Presets, contexts and fractions are checked against the corpus before anything launches."""
    if not (corpus / "manifest.json").is_file():
        raise SpecError(f"{source}: [campaign] corpus {corpus} is not a built corpus (no manifest.json)")
    try:
        info = CorpusInfo.read(corpus)
    except RunError as exc:
        raise SpecError(f"{source}: [campaign] {exc}") from None
    checked: set[tuple[object, ...]] = set()
    for run in runs:
        key = (run.preset, run.fraction, run.context, run.batch_tokens, run.micro_batch, run.epochs, run.tokens)
        if key in checked:
            continue
        checked.add(key)
        try:
            prepare(run, info)
        except RunError as exc:
            raise SpecError(f"{source}: [grid]/[train]: {exc}") from None
