"""Reading ABC notation: files into tunes, tunes into header and voices, voices into bars.

What the reader understands (ABC 2.1):

- A tune starts at an ``X:`` line and ends at a blank line, the next ``X:`` or
  the end of the file. Its **header** is every line from ``X:`` up to and
  including the first ``K:`` line, kept verbatim; the rest is the **body**.
- **Voices**: ``V:`` lines in the header declare voices; ``V:`` lines in the
  body and inline ``[V:…]`` fields switch the voice that the following music
  belongs to, so voices may alternate block by block. A body voice the header
  does not declare is an error when the header declares any (undeclared
  voice). A tune with no ``V:`` at all has one voice (id None).
- **Bars**: the music of each voice is cut at every bar line — ``|``, ``||``,
  ``|]``, ``[|``, ``|:``, ``:|``, ``::``, ``:|:``, ``:||:``, dotted ``.|``, and
  voltas written with their bar line (``|1``, ``:|2``, ``|[1``) — but never
  inside chord symbols and annotations ``"…"``, decorations ``!…!`` and
  ``+…+``, grace notes ``{…}``, inline fields ``[X:…]`` or ``%`` comments. A
  bar line met before any music of the next bar (``|:`` at the start of a
  line, the ``|:`` of ``:| |:``) opens that bar and stays at its start.
  Each bar keeps its right bar line.
- A ``\\`` at the end of a line continues the line; line breaks inside a bar
  become a space; runs of white space become one space.
- Lyric lines ``w:`` and words ``W:`` stay with their voice, attached to the
  bar in which the music line they follow ends. Other field lines in the body
  (``K:``, ``M:``, ``L:``, ``P:``, ``Q:`` …) become inline fields at the start
  of the voice's next bar (or attached lines after its last bar). ``%``
  comments and ``%%`` directives in the body are dropped.

Malformed tunes raise :class:`AbcError` with a reason; files are never
rejected whole for one bad tune.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_FIELD_LINE = re.compile(r"^([A-Za-z+]):(.*)$")
# In the body a line starting with a note name and a colon ("B:|") is music: the
# fields A-H, O, S, X, Z may only stand in the header (ABC 2.1, section 3).
_BODY_FIELDS = set("IKLMmNPQRrsTUVWw+")
_INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")
# Bar lines, longest first. A volta number written with the bar line belongs to it.
_BARLINE = re.compile(
    r"""(?:\.?(?:
        \[\|\]              # [|]  invisible bar line
      | :*\|\]              # |]  :|]
      | :*\|\|:*            # ||  :||  ||:  :||:
      | :*\[\|:*            # [|  [|:
      | :*\|:*              # |  :|  |:  :|:  ::|::
      | ::+                 # ::
    ))(?:\[?[0-9]+(?:[,\-][0-9]+)*)?""",
    re.VERBOSE,
)
_DECORATION = {
    "!": re.compile(r"![A-Za-z0-9.<>()^_\-/ ]{1,32}!"),
    "+": re.compile(r"\+[A-Za-z0-9.<>()^_\-/ ]{1,32}\+"),
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class AbcError(ValueError):
    """A tune that cannot be read; the message is the reason."""


@dataclass(frozen=True)
class Bar:
    """One bar of one voice: its music (white space normalised), its right bar line, attached lines."""

    music: str
    barline: str
    attached: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return self.music + self.barline


@dataclass(frozen=True)
class Voice:
    voice_id: str | None
    bars: tuple[Bar, ...]
    declaration: str = ""  # the rest of the voice's first body V: line ("clef=bass name=…"), if any


@dataclass(frozen=True)
class Tune:
    number: str  # the X: value
    header: tuple[str, ...]
    voices: tuple[Voice, ...]

    @property
    def bar_counts(self) -> dict[str | None, int]:
        return {v.voice_id: len(v.bars) for v in self.voices}


@dataclass(frozen=True)
class TuneText:
    """The raw text of one tune in a file, before parsing."""

    number: str
    text: str
    line: int  # 1-based line of its X: in the file


@dataclass
class _VoiceState:
    voice_id: str | None
    declaration: str = ""
    bars: list[Bar] = field(default_factory=list)
    buffer: list[str] = field(default_factory=list)
    music_since_bar: bool = False  # notes, rests or chords since the last bar line (not just fields)
    pending_attached: list[str] = field(default_factory=list)
    touched_open: bool = False  # the last music line of this voice ended inside an open bar

    def has_music(self) -> bool:
        return self.music_since_bar

    def add(self, text: str, music: bool = True) -> None:
        self.buffer.append(text)
        if music and text.strip():
            self.music_since_bar = True

    def close_bar(self, barline: str) -> None:
        self.bars.append(Bar(normalise("".join(self.buffer)), barline, tuple(self.pending_attached)))
        self.buffer = []
        self.pending_attached = []
        self.music_since_bar = False

    def attach(self, line: str) -> None:
        """Attach a w:/W:/field line to the bar the last music line ended in."""
        if self.touched_open or not self.bars:
            self.pending_attached.append(line)
        else:
            last = self.bars[-1]
            self.bars[-1] = Bar(last.music, last.barline, (*last.attached, line))

    def flush_pending_into_last_bar(self) -> None:
        if self.pending_attached and self.bars:
            last = self.bars[-1]
            self.bars[-1] = Bar(last.music, last.barline, (*last.attached, *self.pending_attached))
            self.pending_attached = []


def normalise(text: str) -> str:
    """Runs of white space to one space, trimmed."""
    return " ".join(text.split())


def split_tunes(text: str) -> Iterator[TuneText]:
    """The tunes of an ABC file: from each X: line to a blank line, the next X: or the end."""
    lines = text.splitlines()
    current: list[str] | None = None
    start = 0
    number = ""
    for i, line in enumerate(lines):
        if line.startswith("X:"):
            if current is not None:
                yield TuneText(number, "\n".join(current), start)
            current, start, number = [line], i + 1, line[2:].strip()
        elif current is not None:
            if line.strip() == "":
                yield TuneText(number, "\n".join(current), start)
                current = None
            else:
                current.append(line)
    if current is not None:
        yield TuneText(number, "\n".join(current), start)


def split_voice_field(value: str) -> tuple[str, str]:
    """``1 clef=bass`` → ("1", "clef=bass")."""
    parts = value.strip().split(None, 1)
    if not parts:
        raise AbcError("V: field without a voice id")
    return parts[0], (parts[1] if len(parts) > 1 else "")


def parse_tune(text: str) -> Tune:
    """Parse the text of one tune (starting at its X: line)."""
    if _CONTROL.search(text) or "\ufffd" in text:
        raise AbcError("binary junk (control characters or undecodable bytes) in the tune")
    lines = text.split("\n")
    if not lines or not lines[0].startswith("X:"):
        raise AbcError("a tune must start with an X: line")
    header: list[str] = []
    declared: list[str] = []
    body_start = None
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        header.append(line)
        m = _FIELD_LINE.match(line)
        if m and m.group(1) == "V":
            vid, _ = split_voice_field(m.group(2))
            if vid not in declared:
                declared.append(vid)
        if m and m.group(1) == "K":
            body_start = i + 1
            break
    if body_start is None:
        raise AbcError("no K: line ends the header")

    voices: dict[str | None, _VoiceState] = {}
    order: list[str | None] = []

    def voice(vid: str | None, declaration: str = "") -> _VoiceState:
        if vid is not None and declared and vid not in declared:
            raise AbcError(f"undeclared voice V:{vid} (the header declares {', '.join('V:' + d for d in declared)})")
        if vid not in voices:
            voices[vid] = _VoiceState(vid, declaration)
            order.append(vid)
        elif declaration and not voices[vid].declaration:
            voices[vid].declaration = declaration
        return voices[vid]

    current = voice(declared[0]) if declared else None
    pending_fields: dict[str | None, list[str]] = {}
    continued = ""
    for raw in lines[body_start:]:
        line = raw.rstrip()
        if continued:
            line, continued = continued + " " + line, ""
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        m = _FIELD_LINE.match(line)
        if m and m.group(1) in _BODY_FIELDS:
            key, value = m.group(1), m.group(2)
            if key == "V":
                vid, declaration = split_voice_field(value)
                current = voice(vid, declaration)
                continue
            target = current if current is not None else voice(None)
            current = target
            if key in ("w", "W", "+"):
                target.attach(line)
            else:
                pending_fields.setdefault(target.voice_id, []).append(f"[{key}:{value.strip()}]")
            continue
        if line.endswith("\\"):
            continued = line[:-1]
            continue
        if current is None:
            current = voice(None)
        current = _scan_music_line(line, current, voice, pending_fields)
    if continued:
        if current is None:
            current = voice(None)
        current = _scan_music_line(continued, current, voice, pending_fields)

    out: list[Voice] = []
    for vid in order:
        state = voices[vid]
        _finish(state)
        for field_text in pending_fields.pop(vid, []):
            state.attach(field_text[1:-1])
        state.touched_open = False
        state.flush_pending_into_last_bar()
        if state.bars:
            out.append(Voice(vid, tuple(state.bars), state.declaration))
    if not out:
        raise AbcError("the tune has no music")
    return Tune(lines[0][2:].strip(), tuple(header), tuple(out))


def _finish(state: _VoiceState) -> None:
    """Close the voice's last bar: music without a closing bar line is a bar with none."""
    if state.has_music():
        state.close_bar("")
    else:
        # Only bar lines or fields after the last bar: they close that bar.
        leftover = normalise("".join(state.buffer))
        if state.bars and leftover:
            last = state.bars[-1]
            state.bars[-1] = Bar(last.music, last.barline + " " + leftover, last.attached)
        state.buffer = []


def parse_bars(text: str) -> list[Bar]:
    """The bars of one line of single-voice music (no voice switches)."""
    state = _VoiceState(None)

    def no_voice_switch(vid: str | None, declaration: str = "") -> _VoiceState:
        raise AbcError(f"a voice switch [V:{vid}] inside a bar")

    _scan_music_line(text, state, no_voice_switch, {})
    _finish(state)
    if state.buffer or (not state.bars and text.strip()):
        raise AbcError(f"no music in {text!r}")
    return state.bars


def _scan_music_line(line: str, current: _VoiceState, voice, pending_fields: dict[str | None, list[str]]) -> _VoiceState:  # type: ignore[no-untyped-def]
    """Cut one music line into bars, switching voices at inline [V:…] fields."""
    i, n = 0, len(line)

    def take_pending(state: _VoiceState) -> None:
        fields = pending_fields.pop(state.voice_id, None)
        if fields:
            state.add("".join(fields) + " ", music=False)

    take_pending(current)
    while i < n:
        ch = line[i]
        if ch == "%":
            break
        if ch in "!+":
            # ABC 2.1 decoration, or the legacy (ABC 1.6) "!" line break and "+" chord
            # marks: a decoration is a short name between two marks, without a bar line.
            decoration = _DECORATION[ch].match(line, i)
            if decoration:
                current.add(decoration.group(0))
                i = decoration.end()
            else:
                current.add(ch)
                i += 1
            continue
        if ch in "\"{":
            close = '"' if ch == '"' else "}"
            end = line.find(close, i + 1)
            if end < 0:
                what = "quote" if ch == '"' else "grace-note brace"
                raise AbcError(f"unbalanced {what} in {line.strip()!r}")
            current.add(line[i : end + 1])
            i = end + 1
            continue
        if ch == "[":
            inline = _INLINE_FIELD.match(line, i)
            if inline:
                if inline.group(1) == "V":
                    current.touched_open = current.has_music()
                    vid, declaration = split_voice_field(inline.group(2))
                    current = voice(vid, declaration)
                    take_pending(current)
                else:
                    current.add(inline.group(0), music=False)
                i = inline.end()
                continue
            if i + 1 < n and line[i + 1] != "|" and not line[i + 1].isdigit():
                end = line.find("]", i + 1)
                if end < 0:
                    raise AbcError(f"unbalanced chord bracket in {line.strip()!r}")
                current.add(line[i : end + 1])
                i = end + 1
                continue
        if ch in "|:[.":
            bar = _BARLINE.match(line, i)
            if bar:
                token = bar.group(0)
                if current.has_music():
                    current.close_bar(token)
                    take_pending(current)
                else:
                    current.add(token + " ", music=False)
                i = bar.end()
                continue
        if ch == "]":
            raise AbcError(f"unbalanced ']' in {line.strip()!r}")
        current.add(ch)
        i += 1
    current.add(" ")  # a line break ends beams like a space does
    current.touched_open = current.has_music()
    return current


def read_abc_text(path: str) -> str:
    """A file's text; bytes that are not UTF-8 become U+FFFD so the tunes holding them are skipped, not the file."""
    with open(path, "rb") as handle:
        data = handle.read()
    return data.decode("utf-8", errors="replace")
