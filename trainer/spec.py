"""What a run is (``RunSpec``, its stable id) and what it will do on a corpus (``prepare``).

Torch-free: sweeps, dashboards and the command line read and check run specs,
and learn a run's N, U_D and planned D, without loading torch or Lightning.
``prepare`` reads the corpus manifest once and hands everything it read on in
``Prepared``, so training never reads it again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from corpus.shards import FractionInfo, Manifest, verify_corpus
from corpus.sources import CorpusInputError
from trainer.config import count_params
from trainer.presets import Preset, get_preset
from trainer.stream_plan import StreamPlan, plan_stream

PRECISIONS = ("32", "bf16-mixed", "auto")


class RunError(ValueError):
    """A run that cannot start: the message says which input is wrong."""

    exit_status = 2


class RunBusyError(RunError):
    """Another process is training in this run folder right now."""


@dataclass(frozen=True)
class RunSpec:
    """What a run is. Its id is a hash of this canonical form: the same spec is the same run."""

    preset: str
    fraction: float
    epochs: float | None = None
    tokens: int | None = None
    context: int = 256
    lr: float = 3e-3
    final_lr: float = 3e-4
    batch_tokens: int = 8192
    micro_batch: int = 8
    seed: int = 0
    data_mix: str = "abc"
    eval_every_tokens: int = 65_536
    precision: str = "32"  # one of PRECISIONS; "auto": bf16 where the device supports it

    def spec_hash(self) -> str:
        """SHA-256 of the spec's canonical JSON: the same spec is the same run."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def run_id(self) -> str:
        return self.spec_hash()[:16]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, object], source: str = "run spec") -> RunSpec:
        """A spec from its JSON form; unknown or missing keys are a ``RunError`` naming ``source``."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(fields) - known)
        if unknown:
            raise RunError(f"{source}: unknown key(s) {', '.join(unknown)}; keys are {', '.join(sorted(known))}")
        try:
            return cls(**fields)  # type: ignore[arg-type]
        except TypeError as exc:
            raise RunError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class CorpusInfo:
    """A built corpus as ``prepare`` needs it: its folder and manifest, checked once."""

    folder: Path
    manifest: Manifest

    @classmethod
    def read(cls, folder: str | Path) -> CorpusInfo:
        """The corpus, its shards checked against its manifest (``corpus.shards.verify_corpus``)."""
        path = Path(folder)
        if not (path / "manifest.json").is_file():
            raise RunError(f"{path}: no corpus here (no manifest.json); build one with `smslab corpus build --out {path}`")
        try:
            return cls(path, verify_corpus(path))
        except CorpusInputError as exc:
            raise RunError(str(exc)) from None

    def fraction(self, value: float) -> FractionInfo:
        try:
            return self.manifest.fraction(value)
        except KeyError as exc:
            raise RunError(f"{self.folder}: {exc.args[0]}") from None


@dataclass(frozen=True)
class Prepared:
    """A spec checked against its corpus, with everything that was read to check it."""

    spec: RunSpec
    corpus: CorpusInfo
    preset: Preset
    plan: StreamPlan
    n_params: int  # without embeddings: the N the laws use (trainer/presets.py N_FOR_LAWS)
    n_params_with_embeddings: int
    fraction: FractionInfo

    @property
    def vocab_size(self) -> int:
        return self.corpus.manifest.vocab_size


def laws_n(preset: str, vocab_size: int, n_convention: str = "non_embedding") -> int:
    """N the laws use for ``preset`` on a vocabulary of ``vocab_size``: without embeddings (N_FOR_LAWS, the
    default) or, for ``n_convention="with_embeddings"``, with them."""
    try:
        return count_params(get_preset(preset).config(vocab_size), include_embeddings=n_convention == "with_embeddings")
    except KeyError as exc:
        raise RunError(str(exc.args[0])) from None


# More repetition than any data-constrained study has trained (datablations went to about 1,500 epochs):
# a budget above it is a typo, not an experiment.
MAX_EPOCHS = 10_000.0


def check_spec(spec: RunSpec) -> None:
    """Every field of the spec a number of the right sign and size; ``RunError`` naming the field."""
    def positive(name: str, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise RunError(f"{name} must be a positive finite number, got {value!r}")

    for name in ("lr", "final_lr", "batch_tokens", "micro_batch", "eval_every_tokens", "context"):
        positive(name, getattr(spec, name))
    if not (isinstance(spec.fraction, (int, float)) and 0 < spec.fraction <= 1):
        raise RunError(f"fraction must lie in (0, 1], got {spec.fraction!r}")
    if spec.epochs is not None:
        positive("epochs", spec.epochs)
        if spec.epochs > MAX_EPOCHS:
            raise RunError(f"epochs {spec.epochs:g} is beyond {MAX_EPOCHS:g}; a budget that large is a typo")
    if spec.tokens is not None:
        positive("tokens", spec.tokens)
    if spec.seed < 0:
        raise RunError(f"seed must not be negative, got {spec.seed}")
    if spec.precision not in PRECISIONS:
        raise RunError(f"precision must be one of {', '.join(PRECISIONS)}, got {spec.precision!r}")


def prepare(spec: RunSpec, corpus: CorpusInfo | str | Path, world_size: int = 1) -> Prepared:
    """Check the spec against the corpus before anything trains; errors are ``RunError``."""
    check_spec(spec)
    try:
        preset = get_preset(spec.preset)
    except KeyError as exc:
        raise RunError(str(exc.args[0])) from None
    if spec.context > preset.max_seq_len:
        raise RunError(f"context {spec.context} is longer than preset {spec.preset} allows ({preset.max_seq_len})")
    if spec.context < 2:
        raise RunError(f"context must be at least 2 tokens, got {spec.context}")
    info = corpus if isinstance(corpus, CorpusInfo) else CorpusInfo.read(corpus)
    fraction = info.fraction(spec.fraction)
    try:
        plan = plan_stream(fraction.tokens, spec.context, spec.batch_tokens, spec.micro_batch, world_size, spec.epochs,
                           spec.tokens)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    cfg = preset.config(info.manifest.vocab_size, spec.context)
    return Prepared(spec, info, preset, plan, count_params(cfg, False), count_params(cfg, True), fraction)
