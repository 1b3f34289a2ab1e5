"""SMT-ABC, MuPT's synchronized multi-track ABC notation (§3.2, Figure 2), both ways.

The format, exactly
-------------------
An SMT-ABC tune is its **header unchanged** (every line from ``X:`` to the
first ``K:``, as in the source), then **one bar group per bar index**, each
group on its own line::

    <|>[V:1]"G" G2 G2 G4|[V:2]"C" C2 C2 C4|<|>
    <|>[V:1]"C" e2 e2 e4|[V:2]"G7" B2 B2 B4|<|>

- A group holds bar *i* of every voice, in voice order (the order in which the
  voices first appear), each with its right bar line, enclosed by the
  delimiter ``<|>`` on both sides.
- Each voice's bar is prefixed with ``[V:id]``; the first bar of a voice
  carries the rest of its body ``V:`` line too (``[V:2 clef=bass]``). A tune
  without voices (one unnamed voice) has no prefix: one bar per group.
- A bar's music is white-space normalised (runs of white space become one
  space). A bar line that opens a bar (``|:`` at a line start) stays at the
  start of that bar's music.
- Lines attached to a bar — lyrics ``w:``, words ``W:``, trailing field lines —
  follow the bar on their own lines, inside the group::

      <|>[V:1]abc|
      w: la la la
      [V:2]def|<|>

- Tunes whose voices have different bar counts cannot be synchronised and are
  skipped (MuPT skips them too: 0.01 % of its data).

``from_smt`` reads this back; ``to_abc`` writes standard multi-voice ABC (one
``V:`` block per voice, four bars a line, attached lines after their bar) for
playing and engraving. Guarantees (tested on generated tunes and every
bundled tune): ``from_smt(to_smt(t))`` has t's header and, per voice, t's bars;
``to_smt(from_smt(to_smt(t))) == to_smt(t)``; and ``parse_tune(to_abc(…))``
gives the same bars again.
"""

from __future__ import annotations

import re

from corpus.abc import AbcError, Bar, Tune, Voice, parse_bars, split_voice_field

GROUP_DELIMITER = "<|>"
BARS_PER_LINE = 4
_GROUP = re.compile(re.escape(GROUP_DELIMITER) + r"(.*?)" + re.escape(GROUP_DELIMITER), re.DOTALL)
_VOICE_PREFIX = re.compile(r"\[V:([^\]\n]*)\]")


def _segment(voice: Voice, index: int) -> str:
    bar = voice.bars[index]
    prefix = ""
    if voice.voice_id is not None:
        declaration = f" {voice.declaration}" if index == 0 and voice.declaration else ""
        prefix = f"[V:{voice.voice_id}{declaration}]"
    text = prefix + bar.text
    if bar.attached:
        text += "\n" + "\n".join(bar.attached) + "\n"
    return text


def to_smt(tune: Tune) -> str:
    """The SMT-ABC text of a tune; raises AbcError when its voices have different bar counts."""
    counts = [len(v.bars) for v in tune.voices]
    if len(set(counts)) > 1:
        detail = ", ".join(f"V:{v.voice_id} {len(v.bars)}" for v in tune.voices)
        raise AbcError(f"voices have different bar counts ({detail})")
    lines = list(tune.header)
    for index in range(counts[0]):
        lines.append(GROUP_DELIMITER + "".join(_segment(v, index) for v in tune.voices) + GROUP_DELIMITER)
    return "\n".join(lines) + "\n"


def from_smt(text: str) -> Tune:
    """Read one SMT-ABC tune back into header and voices."""
    lines = text.rstrip("\n").split("\n")
    if not lines or not lines[0].startswith("X:"):
        raise AbcError("an SMT-ABC tune must start with an X: line")
    for end, line in enumerate(lines):
        if line.startswith("K:"):
            break
    else:
        raise AbcError("no K: line ends the header")
    header = tuple(lines[: end + 1])
    body = "\n".join(lines[end + 1 :])
    leftover = _GROUP.sub("", body).strip()
    if leftover:
        raise AbcError(f"text outside the {GROUP_DELIMITER} groups: {leftover[:60]!r}")
    order: list[str | None] = []
    bars: dict[str | None, list[Bar]] = {}
    declarations: dict[str | None, str] = {}
    for group in _GROUP.finditer(body):
        content = group.group(1).strip("\n")
        for voice_id, declaration, segment in _segments(content):
            if voice_id not in bars:
                order.append(voice_id)
                bars[voice_id] = []
                declarations[voice_id] = declaration
            bars[voice_id].append(_bar_of(segment))
    if not order:
        raise AbcError("the tune has no bar groups")
    # The reader's rule (corpus/abc.py): when the header declares voices, every voice of the body is one of them;
    # ABC written otherwise would be refused when read back.
    declared = [split_voice_field(line[2:])[0] for line in header if line.startswith("V:")]
    undeclared = [v for v in order if v is not None and declared and v not in declared]
    if undeclared:
        raise AbcError(f"undeclared voice V:{undeclared[0]} (the header declares {', '.join('V:' + d for d in declared)})")
    return Tune(header[0][2:].strip(), header, tuple(Voice(v, tuple(bars[v]), declarations[v]) for v in order))


def _segments(content: str) -> list[tuple[str | None, str, str]]:
    prefixes = list(_VOICE_PREFIX.finditer(content))
    if not prefixes:
        return [(None, "", content)]
    if content[: prefixes[0].start()].strip():
        raise AbcError(f"music before the first [V:] of a group: {content[:40]!r}")
    out = []
    for i, m in enumerate(prefixes):
        end = prefixes[i + 1].start() if i + 1 < len(prefixes) else len(content)
        parts = m.group(1).strip().split(None, 1)
        if not parts:
            raise AbcError("[V:] without a voice id in a group")
        out.append((parts[0], parts[1] if len(parts) > 1 else "", content[m.end() : end]))
    return out


def _bar_of(segment: str) -> Bar:
    lines = [line for line in segment.split("\n") if line.strip()]
    if not lines:
        raise AbcError("an empty bar in a group")
    parsed = parse_bars(lines[0])
    if len(parsed) != 1:
        raise AbcError(f"a group segment must hold one bar, found {len(parsed)} in {lines[0]!r}")
    return Bar(parsed[0].music, parsed[0].barline, tuple(line.rstrip() for line in lines[1:]))


def to_abc(tune: Tune) -> str:
    """Standard ABC: the header, then each voice's bars in a V: block, four bars a line."""
    lines = list(tune.header)
    for voice in tune.voices:
        if voice.voice_id is not None:
            lines.append(f"V:{voice.voice_id}" + (f" {voice.declaration}" if voice.declaration else ""))
        row: list[str] = []
        for bar in voice.bars:
            row.append(bar.text)
            if bar.attached or len(row) == BARS_PER_LINE:
                lines.append(" ".join(row))
                lines.extend(bar.attached)
                row = []
        if row:
            lines.append(" ".join(row))
    return "\n".join(lines) + "\n"


def smt_to_abc(text: str) -> str:
    """SMT-ABC text of one tune to standard ABC."""
    return to_abc(from_smt(text))
