"""Where tunes come from: the public-domain ABC collections inside the music21 wheel and
folders of .abc files the user names; each tune converted to SMT-ABC or skipped with a reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from corpus.abc import AbcError, parse_tune, read_abc_text, split_tunes
from corpus.smt import to_smt

# Collections read from the installed music21 package. Left out: essenFolksong
# (licensed for non-commercial use only) and josquin (Laura Conrad's
# transcriptions, GPL-2.0).
MUSIC21_COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk", "nottingham-dataset")
RESERVED = ("<|>", "<n>", "<|endoftext|>")


# The longest of the 4,430 tunes of music21's collections is 2,747 characters of SMT-ABC; MuPT's context is
# 8,192 tokens. Ten times that is still a tune; beyond it, a broken file.
MAX_TUNE_CHARS = 32_768


class CorpusInputError(ValueError):
    """An input path that does not exist or cannot be read."""

    exit_status = 2  # the command line's status for it (see smslab/cli.py)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    label: str  # how the file is named in reports: "music21:ryansMammoth/x.abc" or the user's path
    sha256: str


@dataclass(frozen=True)
class TuneRecord:
    source: str
    number: str
    smt: str
    n_voices: int


@dataclass(frozen=True)
class Skipped:
    source: str
    number: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason without its details, for counting."""
        return self.reason.split(" in ")[0].split(" (")[0].split(":")[0]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def music21_files() -> list[SourceFile]:
    """The .abc files of MUSIC21_COLLECTIONS in the installed music21 package."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    files = []
    for collection in MUSIC21_COLLECTIONS:
        for path in sorted((root / collection).rglob("*.abc")):
            files.append(SourceFile(path, f"music21:{path.relative_to(root)}", file_sha256(path)))
    return files


def user_files(folders: Iterable[str | Path]) -> list[SourceFile]:
    """The .abc files below each folder (or the file itself); a missing path is an error."""
    files = []
    for folder in folders:
        path = Path(folder)
        if not path.exists():
            raise CorpusInputError(f"{path}: no such file or folder")
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() == ".abc")
        for file in candidates:
            try:
                files.append(SourceFile(file, str(file), file_sha256(file)))
            except OSError as exc:
                raise CorpusInputError(f"{file}: cannot be read: {exc.strerror or exc}") from None
    return files


def convert_text(text: str, label: str) -> Iterator[TuneRecord | Skipped]:
    """Every tune of one ABC text, as SMT-ABC or as a skip with its reason."""
    found = False
    for tune_text in split_tunes(text):
        found = True
        try:
            tune = parse_tune(tune_text.text)
            smt = to_smt(tune)
        except AbcError as exc:
            yield Skipped(label, tune_text.number, str(exc))
            continue
        if len(smt) > MAX_TUNE_CHARS:
            # BPE training time grows much faster than the longest tune (one 200 kB tune: 31 s, 5 MB: over
            # 10 min): a tune this long is a broken file, not music, and would stall the whole build.
            yield Skipped(label, tune_text.number, f"too long ({len(smt):,} characters of SMT-ABC; at most "
                          f"{MAX_TUNE_CHARS:,})")
            continue
        reserved = [r for r in RESERVED if r in tune_text.text]
        if reserved:
            yield Skipped(label, tune_text.number, f"contains the reserved token {reserved[0]!r}")
            continue
        yield TuneRecord(label, tune_text.number, smt, len(tune.voices))
    if not found:
        yield Skipped(label, "-", "no tune (no X: line) in the file")


def convert_file(source: SourceFile) -> Iterator[TuneRecord | Skipped]:
    try:
        text = read_abc_text(str(source.path))
    except OSError as exc:
        raise CorpusInputError(f"{source.label}: cannot be read: {exc.strerror or exc}") from None
    yield from convert_text(text, source.label)


def dedup_key(smt: str) -> str:
    """Tunes equal but for their X: number are the same tune."""
    body = smt.split("\n", 1)[1] if "\n" in smt else ""
    return hashlib.sha256(body.encode()).hexdigest()


def remove_duplicates(records: list[TuneRecord]) -> tuple[list[TuneRecord], int]:
    seen: set[str] = set()
    kept = []
    for record in records:
        key = dedup_key(record.smt)
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept, len(records) - len(kept)


def skip_counts(skipped: Iterable[Skipped]) -> dict[str, int]:
    return dict(Counter(s.kind for s in skipped).most_common())
