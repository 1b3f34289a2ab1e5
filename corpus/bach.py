"""Real multi-voice music for SMT-ABC: the Bach chorales in music21's corpus, written as 4-voice ABC.

music21 reads MusicXML but has no ABC writer (``score.write('abc')`` silently
writes the text of the object's repr), and no maintained MusicXML → ABC
converter on PyPI runs without a network or a Java/Node runtime, so this is a
small writer of our own over music21's parsed scores:

- header: ``X``, ``T``, ``C:J. S. Bach``, ``M`` from the first time signature,
  ``L:1/8``, one ``V:`` line per part (name, clef), ``K`` from the key signature;
- per part, one bar per measure: notes as ABC pitches (``C,`` … ``c'``) with
  lengths in eighths (``2``, ``3/2``, ``/2``), rests ``z``, chords ``[…]``,
  ties ``-``, fermatas ``!fermata!``, an explicit accidental on every note
  that leaves the key signature or returns to it within a bar; time and key
  changes as inline fields.

Every chorale written is read back with music21's ABC reader and compared
note by note (pitch, duration) with the source; a chorale that does not come
back the same is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

from corpus.abc import AbcError, parse_tune
from corpus.smt import to_smt
from corpus.sources import Skipped, TuneRecord

WRITER_VERSION = "1"
UNIT = Fraction(1, 2)  # L:1/8 is half a quarter note
_MAJOR_BY_SHARPS = {0: "C", 1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#",
                    -1: "F", -2: "Bb", -3: "Eb", -4: "Ab", -5: "Db", -6: "Gb", -7: "Cb"}
_ACCIDENTAL = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


def bach_key(limit: int | None) -> str:
    import music21

    return f"music21-bach-chorales:{music21.__version__}:{'all' if limit is None else limit}:writer{WRITER_VERSION}"


def chorale_paths(limit: int | None) -> list[str]:
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith((".mxl", ".xml", ".musicxml")))
    return paths if limit is None else paths[:limit]


def length_text(quarter_length: float) -> str:
    """ABC length multiplier of a duration, in units of L:1/8."""
    ratio = Fraction(quarter_length).limit_denominator(64) / UNIT
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    if ratio.numerator == 1:
        return f"/{ratio.denominator}"
    return f"{ratio.numerator}/{ratio.denominator}"


def pitch_text(step: str, octave: int) -> str:
    if octave >= 5:
        return step.lower() + "'" * (octave - 5)
    return step.upper() + "," * (4 - octave)


def key_field(sharps: int) -> str:
    return _MAJOR_BY_SHARPS[max(-7, min(7, sharps))]


def _note_text(pitch, key_alter: dict[str, int], bar_state: dict[tuple[str, int], int]) -> str:  # type: ignore[no-untyped-def]
    step, octave = pitch.step, pitch.octave if pitch.octave is not None else 4
    alter = int(round(pitch.alter))
    in_key = key_alter.get(step, 0)
    before = bar_state.get((step, octave), in_key)
    bar_state[(step, octave)] = alter
    # Explicit wherever the note leaves the key signature, and wherever it returns to
    # it after an accidental in the bar: readers that carry accidentals through the
    # bar (ABC 2.1, abc2midi) and readers that do not (music21) then agree.
    if alter != in_key or alter != before:
        return _ACCIDENTAL[alter] + pitch_text(step, octave)
    return pitch_text(step, octave)


def score_to_abc(score, number: int, title: str) -> str:  # type: ignore[no-untyped-def]
    """A parsed music21 score as one multi-voice ABC tune (see the module docstring)."""
    from music21 import chord, expressions, key, meter, note

    parts = list(score.parts)
    if not parts:
        raise AbcError("the score has no parts")
    first_ts = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    first_ks = next(iter(score.recurse().getElementsByClass(key.KeySignature)), None)
    sharps = first_ks.sharps if first_ks is not None else 0
    header = [f"X:{number}", f"T:{title}", "C:J. S. Bach", f"M:{first_ts.ratioString if first_ts else '4/4'}", "L:1/8"]
    for i, part in enumerate(parts, start=1):
        name = (part.partName or f"Part {i}").replace('"', "'")
        clef = "bass" if part.getElementsByClass("Measure") and any(
            c.sign == "F" for c in part.recurse().getElementsByClass("Clef")
        ) else "treble"
        header.append(f'V:{i} name="{name}" clef={clef}')
    header.append(f"K:{key_field(sharps)}")
    body: list[str] = []
    for i, part in enumerate(parts, start=1):
        body.append(f"V:{i}")
        measures = list(part.getElementsByClass("Measure"))
        key_alter = {p.step: int(p.alter) for p in (first_ks.alteredPitches if first_ks else [])}
        bar_texts = []
        for m_index, measure in enumerate(measures):
            tokens: list[str] = []
            if m_index > 0:
                for ts in measure.getElementsByClass(meter.TimeSignature):
                    tokens.append(f"[M:{ts.ratioString}]")
                for ks in measure.getElementsByClass(key.KeySignature):
                    key_alter = {p.step: int(p.alter) for p in ks.alteredPitches}
                    tokens.append(f"[K:{key_field(ks.sharps)}]")
            bar_state: dict[tuple[str, int], int] = {}
            voices = list(measure.voices)
            stream = voices[0] if voices else measure
            for element in stream.notesAndRests:
                length = length_text(element.duration.quarterLength)
                if element.duration.quarterLength == 0:
                    continue  # grace notes: chorales have none worth keeping
                fermata = any(isinstance(e, expressions.Fermata) for e in element.expressions)
                prefix = "!fermata!" if fermata else ""
                tie = "-" if element.tie is not None and element.tie.type in ("start", "continue") else ""
                if isinstance(element, note.Rest):
                    tokens.append(f"{prefix}z{length}")
                elif isinstance(element, chord.Chord):
                    inner = "".join(_note_text(p, key_alter, bar_state) for p in element.pitches)
                    tokens.append(f"{prefix}[{inner}]{length}{tie}")
                else:
                    tokens.append(f"{prefix}{_note_text(element.pitch, key_alter, bar_state)}{length}{tie}")
            barline = "|]" if m_index == len(measures) - 1 else "|"
            bar_texts.append(" ".join(tokens) + " " + barline)
        for start in range(0, len(bar_texts), 4):
            body.append(" ".join(bar_texts[start : start + 4]))
    return "\n".join(header + body)


def _note_signature(score) -> list[list[tuple[object, float]]]:  # type: ignore[no-untyped-def]
    """Per part: (sorted MIDI pitches or 'rest', duration) of every note, rest and chord."""
    out = []
    for part in score.parts:
        seq = []
        for element in part.flatten().notesAndRests:
            if element.duration.quarterLength == 0:
                continue
            pitches = "rest" if element.isRest else tuple(sorted(p.midi for p in element.pitches))
            seq.append((pitches, round(float(element.duration.quarterLength), 6)))
        if seq:  # music21's ABC reader adds an empty part for each header V: line
            out.append(seq)
    return out


def convert_chorale(path: str, number: int) -> TuneRecord | Skipped:
    """One chorale: parse, write ABC, read it back and compare, then SMT-ABC."""
    from music21 import converter

    label = "music21:bach/" + path.rsplit("/", 1)[-1]
    try:
        score = converter.parse(path)
        title = (score.metadata.title if score.metadata and score.metadata.title else path.rsplit("/", 1)[-1]).strip()
        abc = score_to_abc(score, number, title)
        back = converter.parse(abc, format="abc")
        if _note_signature(back) != _note_signature(score):
            return Skipped(label, str(number), "the written ABC does not read back to the same notes")
        return TuneRecord(label, str(number), to_smt(parse_tune(abc)), len(score.parts))
    except AbcError as exc:
        return Skipped(label, str(number), str(exc))
    except Exception as exc:  # noqa: BLE001  music21 raises many kinds on odd scores; each is a skip, not a crash
        return Skipped(label, str(number), f"music21 could not convert it ({type(exc).__name__}: {exc})")


def bach_chorale_records(
    limit: int | None, progress: Callable[[str, int, int], None] | None = None, workers: int = 2
) -> tuple[list[TuneRecord], list[Skipped]]:
    """The chorales as SMT-ABC tune records (in parallel processes: music21 parsing is slow)."""
    paths = chorale_paths(limit)
    records: list[TuneRecord] = []
    skipped: list[Skipped] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(convert_chorale, paths, range(1, len(paths) + 1), chunksize=4)):
            (records if isinstance(result, TuneRecord) else skipped).append(result)  # type: ignore[arg-type]
            if progress:
                progress("converting Bach chorales", i + 1, len(paths))
    return records, skipped
