"""The validity tiers of one tune: what music21, Debian's abc2midi and abcm2ps make of it.

The tiers (each a pass or fail per tune; evals/measures.py turns them into rates):

- **V0** music21 parses the tune and finds at least one note. Lenient: music21 reads a tune without a
  ``K:`` line without complaint (FIELD_NOTES.md).
- **V1** abc2midi writes a MIDI file with at least one note: the primary tier, because every later measure
  (the MusPy metrics, bar self-similarity) reads that MIDI file.
- **V2** V1, and abc2midi prints no ``Error`` line. Strict: 48.7 % of 300 real tunes of the music21
  collections print one ("Could not find note to be tied", "Malformed note") and still convert.
- **V3** V1, and abc2midi prints no bar-length warning ("Track 0 Bar 15 has 9/4 time units while the time
  signature has 2"); 25 % of real tunes print one.
- **V4** abcm2ps engraves it (exit status 0); 7 of 100 real tunes fail.
- **V5** (SMT-ABC input only) from-smt reads it and every voice has the same number of bars.

Because even real tunes fail V2–V4 often, a tier means something only next to the same tier measured on
real tunes (``smslab eval abc --reference``).

abc2midi exits 0 even on garbage and prints its diagnostics on stdout, so a tier reads the files and the
printed lines, never the exit status alone. Each tool runs under a time limit (a tune that makes it loop is a
failure with its reason, not a stuck run); music21, which runs in this process, is stopped by an alarm.
abc2midi runs with ``-NGUI``: guitar-chord symbols would add an accompaniment that abc2midi invents, and the
measures are of the notes the tune writes.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TIERS = ("V0", "V1", "V2", "V3", "V4", "V5")
TIER_LABELS = {
    "V0": "music21 parses it, >= 1 note",
    "V1": "abc2midi writes MIDI, >= 1 note (primary)",
    "V2": "V1 and no abc2midi Error line",
    "V3": "V1 and no bar-length warning",
    "V4": "abcm2ps engraves it (exit 0)",
    "V5": "SMT-ABC: from-smt reads it, equal bar counts",
}
ABC2MIDI_MISSING = "abc2midi not found: install Debian's abcmidi"
ABCM2PS_MISSING = "abcm2ps not found: install Debian's abcm2ps"
_BAR_LENGTH_WARNING = re.compile(r"Bar \d+ has .* time units while the time signature has")


class TuneTimeout(BaseException):
    """The time limit of one tune ran out inside this process. A BaseException, so that the libraries it
    interrupts (music21 catches ``Exception`` in places) cannot swallow it."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the external tools, or None when missing (their tiers are then unavailable)."""

    abc2midi: str | None
    abcm2ps: str | None

    def unavailable(self) -> dict[str, str]:
        """tool name → the reason its tiers and measures are unavailable."""
        missing = {}
        if self.abc2midi is None:
            missing["abc2midi"] = ABC2MIDI_MISSING
        if self.abcm2ps is None:
            missing["abcm2ps"] = ABCM2PS_MISSING
        return missing


def find_tools(search_path: str | None = None) -> Tools:
    """Look the tools up on ``search_path`` (a PATH string; None: this process' PATH)."""
    return Tools(shutil.which("abc2midi", path=search_path), shutil.which("abcm2ps", path=search_path))


@dataclass(frozen=True)
class Abc2midiRun:
    """What one abc2midi run did: the MIDI path when it wrote one, its diagnostics, or why it failed."""

    midi: Path | None
    errors: tuple[str, ...]  # its "Error ..." lines
    bar_warnings: tuple[str, ...]  # its bar-length warnings
    failure: str | None  # timed out, crashed, could not start


def run_abc2midi(exe: str, abc_file: Path, midi_file: Path, time_limit_s: float) -> Abc2midiRun:
    """Convert the first tune of ``abc_file`` to ``midi_file``, as V1–V3 need."""
    try:
        done = subprocess.run([exe, str(abc_file), "-NGUI", "-o", str(midi_file)], check=False, capture_output=True,
                              timeout=time_limit_s, cwd=abc_file.parent)
    except subprocess.TimeoutExpired:
        return Abc2midiRun(None, (), (), f"abc2midi ran past the time limit ({time_limit_s:g} s)")
    except OSError as exc:
        return Abc2midiRun(None, (), (), f"abc2midi could not start: {exc.strerror or exc}")
    lines = (done.stdout + done.stderr).decode("utf-8", errors="replace").splitlines()
    errors = tuple(line.strip() for line in lines if line.startswith("Error"))
    warnings = tuple(line.strip() for line in lines if _BAR_LENGTH_WARNING.search(line))
    failure = f"abc2midi crashed (signal {-done.returncode})" if done.returncode < 0 else None
    wrote = midi_file.is_file() and midi_file.stat().st_size > 0
    return Abc2midiRun(midi_file if wrote else None, errors, warnings, failure)


def run_abcm2ps(exe: str, abc_file: Path, time_limit_s: float) -> str | None:
    """Engrave ``abc_file`` (V4); None when abcm2ps exits 0, else why not. ``-S``: secure mode, because
    the tunes may be a model's output and abcm2ps' PostScript passthrough would carry it anywhere."""
    out = abc_file.with_suffix(".ps")
    try:
        done = subprocess.run([exe, "-S", "-q", str(abc_file), "-O", str(out)], check=False, capture_output=True,
                              timeout=time_limit_s, cwd=abc_file.parent)
    except subprocess.TimeoutExpired:
        return f"abcm2ps ran past the time limit ({time_limit_s:g} s)"
    except OSError as exc:
        return f"abcm2ps could not start: {exc.strerror or exc}"
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"abcm2ps crashed (signal {-done.returncode})"
    lines = [line.strip() for line in (done.stdout + done.stderr).decode("utf-8", errors="replace").splitlines()]
    # abcm2ps names the file in each message; the temporary folder means nothing to the reader.
    lines = [line.replace(str(abc_file), abc_file.name) for line in lines]
    said = [line for line in lines if "error" in line.lower()] or [line for line in lines if line]
    return f"abcm2ps exit {done.returncode}" + (f": {said[-1][:200]}" if said else "")


def music21_note_count(abc_text: str, time_limit_s: float) -> int:
    """Notes (and chords) music21 finds in the tune (V0); raises whatever music21 raises, or TuneTimeout."""
    import warnings

    from music21 import converter

    with time_limit(time_limit_s), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # music21 warns on many real tunes; the tier is pass or fail
        score = converter.parse(abc_text, format="abc")
        return sum(1 for _ in score.recurse().notes)


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TuneTimeout in this thread after ``seconds`` (SIGALRM; only the main thread of a process can
    take signals — elsewhere no limit applies, and the worker processes of measure_tunes are main threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise TuneTimeout(f"ran past the time limit ({seconds:g} s)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
