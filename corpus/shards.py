"""Building the token shards: tunes → SMT-ABC → dedup → split → BPE → numpy memmaps + manifest.

Layout of a built corpus folder::

    manifest.json      what was built from what (below)
    tokenizer.json     the trained tokenizer
    train.bin          training tokens (uint16 when the vocabulary fits, else uint32)
    train_index.npy    start offset of each training tune in train.bin (int64)
    val.bin, val_index.npy   the validation tunes, never trained on

Every tune is followed by ``<|endoftext|>``. The training tunes are stored in
an order shuffled by the seed, so each **data fraction** is a prefix of
``train.bin``: the 6.25 % set lies inside the 25 % set by construction
(nested). ``U_D`` of a fraction is its token count (one epoch), recorded in
the manifest with its tune count and end offset.

Building again with the same inputs (source file hashes, settings, format
version) reuses the folder — if its files still match the manifest; any
change rebuilds it. ``verify_corpus`` checks a folder before it is trusted:
the manifest must be whole, every shard the size its token count says, and
each file's cheap fingerprint (size and SHA-256 of its first and last MiB,
``files`` in the manifest) unchanged — a truncated ``val.bin`` would
otherwise give a wrong validation loss under the same run id. A build writes into a
temporary folder beside ``--out`` and renames it into place, so a failed or
interrupted build never leaves a half-written corpus.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from corpus.sources import (
    CorpusInputError,
    Skipped,
    SourceFile,
    TuneRecord,
    convert_file,
    remove_duplicates,
    skip_counts,
)
from corpus.tokenizer import END_OF_TUNE, AbcTokenizer

FORMAT = "smslab.corpus/1"
DEFAULT_FRACTIONS = (0.0625, 0.25, 1.0)


@dataclass(frozen=True)
class BuildConfig:
    vocab_size: int = 4096
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    val_fraction: float = 0.05
    seed: int = 0

    def check(self) -> None:
        if not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions must lie in (0, 1], got {', '.join(map(str, self.fractions))}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"the validation fraction must lie in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class FractionInfo:
    fraction: float
    tunes: int
    tokens: int  # U_D: unique tokens of one epoch over this fraction
    end_offset: int  # the fraction is train.bin[:end_offset]


@dataclass(frozen=True)
class Manifest:
    format: str
    cache_key: str
    config: dict[str, object]
    sources: list[dict[str, str]]
    tokenizer_hash: str
    vocab_size: int
    dtype: str
    counts: dict[str, object]
    fractions: list[FractionInfo]
    built_at: str = ""
    build_seconds: float = 0.0
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name → its fingerprint (see ``fingerprint``)

    def fraction(self, value: float) -> FractionInfo:
        for info in self.fractions:
            if math.isclose(info.fraction, value, rel_tol=1e-9):
                return info
        have = ", ".join(f"{f.fraction:g}" for f in self.fractions)
        raise KeyError(f"the corpus has no data fraction {value:g}; it has {have}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        """The manifest of a corpus folder; ``CorpusInputError`` naming the file when it is missing or not whole."""
        path = Path(folder) / "manifest.json"
        try:
            data = json.loads(path.read_text())
            data["fractions"] = [FractionInfo(**f) for f in data["fractions"]]
            return cls(**data)
        except FileNotFoundError:
            raise CorpusInputError(f"{path}: no corpus manifest here; build one with `smslab corpus build`") from None
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise CorpusInputError(f"{path}: not a whole corpus manifest ({type(exc).__name__}: {exc}); "
                                   "rebuild the corpus with `smslab corpus build`") from None


SHARD_FILES = ("tokenizer.json", "train.bin", "train_index.npy", "val.bin", "val_index.npy")
FINGERPRINT_BYTES = 1 << 20


def fingerprint(path: Path) -> str:
    """Size and SHA-256 of the first and last MiB: cheap on multi-GB shards, and it catches truncation,
    appends and a file swapped for another."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return f"{size}:{digest.hexdigest()}"


def verify_corpus(folder: str | Path) -> Manifest:
    """The manifest of a corpus whose files match it; ``CorpusInputError`` naming the first file that does not."""
    root = Path(folder)
    manifest = Manifest.read(root)
    rebuild = "rebuild the corpus with `smslab corpus build` (same inputs give the same corpus)"
    for name in SHARD_FILES:
        if not (root / name).is_file():
            raise CorpusInputError(f"{root / name}: missing from the corpus; {rebuild}")
    try:
        itemsize = np.dtype(manifest.dtype).itemsize
        for split in ("train", "val"):
            tokens = int(manifest.counts[f"{split}_tokens"])  # type: ignore[call-overload]
            size = (root / f"{split}.bin").stat().st_size
            if size != max(tokens, 1) * itemsize:
                raise CorpusInputError(f"{root / split}.bin: {size:,} bytes, but the manifest says {tokens:,} tokens "
                                       f"of {manifest.dtype} ({max(tokens, 1) * itemsize:,} bytes); {rebuild}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorpusInputError(f"{root / 'manifest.json'}: not a whole corpus manifest ({exc}); {rebuild}") from None
    for name, expected in manifest.files.items():
        if fingerprint(root / name) != expected:
            raise CorpusInputError(f"{root / name}: changed since the corpus was built (its fingerprint differs from "
                                   f"the manifest's); {rebuild}")
    return manifest


def cache_key(sources: Sequence[SourceFile], config: BuildConfig, extra: Sequence[str] = ()) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(json.dumps(asdict(config), sort_keys=True).encode())
    for source in sorted(sources, key=lambda s: s.label):
        digest.update(f"{source.label}\0{source.sha256}\0".encode())
    for item in extra:
        digest.update(item.encode())
    return "sha256:" + digest.hexdigest()


def is_up_to_date(out: Path, key: str) -> bool:
    """Whether ``out`` holds the corpus of ``key``, whole: a damaged folder is rebuilt, not reused."""
    try:
        return verify_corpus(out).cache_key == key
    except (CorpusInputError, OSError):
        return False


def split_train_val(records: Sequence[TuneRecord], val_fraction: float, seed: int) -> tuple[list[TuneRecord], list[TuneRecord]]:
    """A seeded split by tune: a tune is in exactly one of the two; the training order is shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    n_val = max(1, round(val_fraction * len(records)))
    if n_val >= len(records):
        raise ValueError(f"{len(records)} tune(s) are too few to hold out a validation set and still train")
    val = [records[i] for i in sorted(order[:n_val])]
    train = [records[i] for i in order[n_val:]]  # shuffled: fractions are prefixes
    return train, val


def _write_tokens(folder: Path, name: str, token_lists: Sequence[Sequence[int]], eos: int, dtype: np.dtype) -> int:
    lengths = np.array([len(t) + 1 for t in token_lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, dtype=np.int64)
    total = int(lengths.sum())
    array = np.memmap(folder / f"{name}.bin", dtype=dtype, mode="w+", shape=(max(total, 1),))
    for start, tokens in zip(offsets, token_lists, strict=True):
        array[start : start + len(tokens)] = tokens
        array[start + len(tokens)] = eos
    array.flush()
    del array
    np.save(folder / f"{name}_index.npy", offsets.astype(np.int64))
    return total


def build_corpus(
    sources: Sequence[SourceFile],
    out: str | Path,
    config: BuildConfig,
    extra_records: Callable[[], tuple[list[TuneRecord], list[Skipped]]] | None = None,
    extra_key: Sequence[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Manifest, bool]:
    """Build (or reuse) the corpus in ``out``; returns the manifest and whether it was rebuilt."""
    config.check()
    out = Path(out)
    key = cache_key(sources, config, extra_key)
    if is_up_to_date(out, key):
        return verify_corpus(out), False
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        # Never replace a folder that is not a corpus we built: it may hold the user's files.
        raise FileExistsError(f"{out}: exists and is not a smslab corpus folder; choose another --out")
    started = time.perf_counter()
    records: list[TuneRecord] = []
    skipped: list[Skipped] = []
    for i, source in enumerate(sources):
        for item in convert_file(source):
            (records if isinstance(item, TuneRecord) else skipped).append(item)  # type: ignore[arg-type]
        if progress:
            progress("converting ABC files", i + 1, len(sources))
    if extra_records is not None:
        more, more_skipped = extra_records()
        records += more
        skipped += more_skipped
    n_converted = len(records)
    records, n_duplicates = remove_duplicates(records)
    if len(records) < 2:
        raise ValueError(f"only {len(records)} usable tune(s) in the inputs; a corpus needs at least 2")
    train, val = split_train_val(records, config.val_fraction, config.seed)
    if progress:
        progress("training the tokenizer", 0, 1)
    tokenizer = AbcTokenizer.train((r.smt for r in train), config.vocab_size)
    if progress:
        progress("training the tokenizer", 1, 1)
    train_ids = tokenizer.encode_batch([r.smt for r in train])
    val_ids = tokenizer.encode_batch([r.smt for r in val])
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32)
    eos = tokenizer.token_id(END_OF_TUNE)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building.", dir=out.parent))
    try:
        tokenizer.save(tmp / "tokenizer.json")
        n_train_tokens = _write_tokens(tmp, "train", train_ids, eos, dtype)
        n_val_tokens = _write_tokens(tmp, "val", val_ids, eos, dtype)
        tune_tokens = np.array([len(t) + 1 for t in train_ids], dtype=np.int64)
        cumulative = np.cumsum(tune_tokens)
        fractions = []
        for fraction in sorted(set(config.fractions)):
            n_tunes = max(1, math.ceil(fraction * len(train)))
            end = int(cumulative[n_tunes - 1])
            fractions.append(FractionInfo(fraction, n_tunes, end, end))
        manifest = Manifest(
            format=FORMAT,
            cache_key=key,
            config=asdict(config),
            sources=[{"file": s.label, "sha256": s.sha256} for s in sources] + [{"file": k, "sha256": ""} for k in extra_key],
            tokenizer_hash=tokenizer.content_hash(),
            vocab_size=tokenizer.vocab_size,
            dtype=dtype.name,
            counts={
                "tunes_converted": n_converted,
                "duplicates_removed": n_duplicates,
                "tunes": len(records),
                "train_tunes": len(train),
                "val_tunes": len(val),
                "train_tokens": n_train_tokens,
                "val_tokens": n_val_tokens,
                "multi_voice_tunes": sum(1 for r in records if r.n_voices > 1),
                "skipped": len(skipped),
                "skipped_by_reason": skip_counts(skipped),
            },
            fractions=fractions,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - started, 2),
            skipped_examples=[asdict(s) for s in skipped[:50]],
            files={name: fingerprint(tmp / name) for name in SHARD_FILES},
        )
        (tmp / "manifest.json").write_text(manifest.to_json())
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest, True


def load_tokens(folder: str | Path, split: str) -> np.ndarray:
    """The token memmap of ``split`` ("train" or "val"), read-only."""
    manifest = Manifest.read(folder)
    return np.memmap(Path(folder) / f"{split}.bin", dtype=np.dtype(manifest.dtype), mode="r")
