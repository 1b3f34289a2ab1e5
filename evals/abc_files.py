"""The tunes to measure: files and folders of ABC (or SMT-ABC) read into one record per tune.

Nothing here refuses a tune: an empty file, a binary file or a tune with bytes that are not UTF-8 becomes a
record with its ``problem``, so it counts as a failure of every tier instead of silently shrinking the set
(a model that writes garbage must score lower, not fewer). Only a path that does not exist, or a folder with
no .abc/.smt file, is an input error (exit status 2).

How a file is cut into tunes:

- a file written by ``smslab sample`` (``% sample i`` comment lines, evals/sampling.py) is cut at those
  lines, one tune per sample, so a sample without an ``X:`` line is still a tune (that fails);
- any other file is cut as corpus/abc.py cuts it: from each ``X:`` line to a blank line, the next ``X:``
  or the end.

A tune is SMT-ABC (MuPT's synchronized multi-track notation, corpus/smt.py) when its file ends in ``.smt``
or its text holds the bar-group delimiter ``<|>``; the V5 tier applies to those only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from corpus.abc import split_tunes
from corpus.smt import GROUP_DELIMITER

SUFFIXES = (".abc", ".smt")
_SAMPLE_MARKER = re.compile(r"^% sample (\d+)[ \t]*$", re.MULTILINE)
# Bytes no text file holds: NUL anywhere, or many C0 controls other than tab, newlines and form feed.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
BINARY_CONTROL_SHARE = 0.1


class EvalInputError(ValueError):
    """An input path that does not exist or holds nothing to measure."""

    exit_status = 2  # the command line's status for it (see smslab/cli.py)


@dataclass(frozen=True)
class TuneInput:
    """One tune to measure, as given."""

    source: str  # the file it came from (or the caller's label)
    number: str  # its X: value, "sample i" for sample files, "-" when the file has no tune
    text: str
    smt: bool  # given as SMT-ABC: the V5 tier applies and from-smt makes the ABC that the tools read
    problem: str | None = None  # why there is nothing to measure (empty, binary, not UTF-8); fails every tier
    line: int = 0  # 1-based line in its file where it starts (its X: or ``% sample`` line); 0 when none


def input_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each path itself if it is a file, else the .abc and .smt files below it (sorted)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise EvalInputError(f"{path}: no such file or folder")
        if path.is_file():
            files.append(path)
            continue
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not found:
            raise EvalInputError(f"{path}: no .abc or .smt file in this folder")
        files.extend(found)
    return files


def read_tunes(paths: Iterable[str | Path]) -> list[TuneInput]:
    """Every tune of every file (see the module docstring); a file that cannot be opened is an input error."""
    tunes: list[TuneInput] = []
    for path in input_files(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EvalInputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        tunes.extend(tunes_of_bytes(data, str(path), smt_file=path.suffix.lower() == ".smt"))
    return tunes


def tunes_of_bytes(data: bytes, source: str, smt_file: bool = False) -> list[TuneInput]:
    """The tunes of one file's bytes; an empty or binary file is one tune with its problem."""
    if not data.strip():
        return [TuneInput(source, "-", "", smt_file, "empty file")]
    head = data[:8192]
    controls = sum(head.count(bytes([b])) for b in _CONTROL_BYTES)
    if b"\x00" in data or controls > BINARY_CONTROL_SHARE * len(head):
        return [TuneInput(source, "-", "", smt_file, "binary file (NUL or control bytes), not ABC text")]
    return tunes_of_text(data.decode("utf-8", errors="replace"), source, smt_file)


def tunes_of_text(text: str, source: str, smt_file: bool = False) -> list[TuneInput]:
    """The tunes of one text: cut at ``% sample i`` lines when it has them, else at X: lines."""
    markers = list(_SAMPLE_MARKER.finditer(text))
    if markers:
        ends = [m.start() for m in markers[1:]] + [len(text)]
        pieces = [(f"sample {m.group(1)}", text[m.end(): end], text.count("\n", 0, m.start()) + 1)
                  for m, end in zip(markers, ends, strict=True)]
    else:
        pieces = [(t.number or "-", t.text, t.line) for t in split_tunes(text)]
        if not pieces:
            return [TuneInput(source, "-", "", smt_file, "no tune (no X: line) in the file")]
    return [_tune(source, number, piece.strip("\n"), smt_file, line) for number, piece, line in pieces]


def tune_inputs(texts: Sequence[str], source: str = "samples", smt: bool = False) -> list[TuneInput]:
    """Tunes held in memory (one text each, numbered "sample i"), for callers that have samples, not files.

    ``smt`` True: every text is SMT-ABC; otherwise a text is when it holds the ``<|>`` delimiter."""
    return [_tune(source, f"sample {i}", text.strip("\n"), smt) for i, text in enumerate(texts)]


def _tune(source: str, number: str, text: str, smt_file: bool, line: int = 0) -> TuneInput:
    smt = smt_file or GROUP_DELIMITER in text
    problem = None
    if not text.strip():
        problem = "empty tune"
    elif "\ufffd" in text:
        # The corpus reader skips such tunes too (corpus/abc.py): the bytes are not the text that was meant.
        problem = "not UTF-8 text (undecodable bytes)"
    return TuneInput(source, number, text, smt, problem, line)


def tune_body(text: str) -> str:
    """The body of a tune: everything after its first ``K:`` line ("" when it has none)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("K:"):
            return "\n".join(lines[i + 1:])
    return ""


def has_body_repeat(text: str) -> bool:
    """Whether the body holds the repeat sign ``:|`` — MuPT Table 4's piece-level repetition test.

    Only the body counts: a ``:|`` in a header field (a title, a note) is not a repeat of music."""
    return ":|" in tune_body(text)
