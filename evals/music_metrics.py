"""Symbolic-music measures of one tune, read from the MIDI file abc2midi wrote for it.

MusPy's metrics (Dong et al., "MusPy: A Toolkit for Symbolic Music Generation", ISMIR 2020;
``muspy.metrics``), called, not reimplemented:

- ``pitch_range``: highest minus lowest pitch, in semitones;
- ``pitch_entropy`` / ``pitch_class_entropy``: Shannon entropy (bits) of the pitch / pitch-class histogram
  of the notes;
- ``scale_consistency``: the largest share of notes inside one major or minor scale (of the 24);
- ``polyphony``: mean number of pitches sounding, over the time steps where at least one sounds;
- ``empty_beat_rate``: share of beats (quarter notes) where no note sounds;
- ``groove_consistency``: one minus the mean Hamming distance between the onset patterns of neighbouring
  measures (Wu & Yang 2020). It needs a measure length: the MIDI's first time signature (4/4 without one);
  like MusPy, it assumes that signature holds throughout.

muspy 0.5.0 cannot read ABC under music21 10 (``Stream.flat`` is gone), but ``muspy.read_midi`` reads
abc2midi's MIDI. Every metric is taken after ``adjust_resolution(24)`` (MusPy's default of 24 steps per
quarter note): the same grid for every tune, whatever the MIDI's ticks, and small piano rolls.

``bar_self_similarity`` is ours, a documented proxy of how much a tune repeats itself at the bar level —
not MuPT's texture similarity, and not comparable with MuPT Table 4. Each bar (the time-signature grid from
the first note; a pickup shifts every bar alike, so repeated passages still match) becomes a vector: its
pitch-class duration histogram (12 values, summing to 1) followed by its onset grid (one slot per step of
the bar, summing to 1). The measure is the mean cosine similarity over all pairs of different non-empty
bars. abc2midi has already expanded the repeats, so a repeated section counts as the bars one hears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = ("pitch_range", "pitch_entropy", "pitch_class_entropy", "scale_consistency", "polyphony",
           "empty_beat_rate", "groove_consistency")
RESOLUTION = 24  # steps per quarter note (muspy.DEFAULT_RESOLUTION)


@dataclass(frozen=True)
class MidiMeasures:
    """The measures of one MIDI file; a value is None where its definition gives none (NaN in MusPy)."""

    notes: int
    metrics: dict[str, float | None]
    bar_self_similarity: float | None


def measure_midi(path: Path) -> MidiMeasures:
    """Read ``path`` with muspy and take every measure; ``notes`` 0 leaves the rest None."""
    import muspy

    music = muspy.read_midi(str(path))
    music.adjust_resolution(RESOLUTION)
    notes = [(n.time, n.duration, n.pitch) for track in music.tracks if not track.is_drum for n in track.notes]
    if not notes:
        return MidiMeasures(0, dict.fromkeys(METRICS), None)
    bar_steps = measure_steps(music.time_signatures[0].numerator, music.time_signatures[0].denominator) \
        if music.time_signatures else measure_steps(4, 4)
    values: dict[str, float | None] = {
        "pitch_range": muspy.pitch_range(music),
        "pitch_entropy": muspy.pitch_entropy(music),
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "scale_consistency": muspy.scale_consistency(music),
        "polyphony": muspy.polyphony(music),
        "empty_beat_rate": muspy.empty_beat_rate(music),
        "groove_consistency": muspy.groove_consistency(music, bar_steps),
    }
    clean = {name: _finite(value) for name, value in values.items()}
    return MidiMeasures(len(notes), clean, bar_self_similarity(notes, bar_steps))


def measure_steps(numerator: int, denominator: int) -> int:
    """Steps of one measure at RESOLUTION steps per quarter note (6/8 → 72, 4/4 → 96)."""
    return max(1, round(RESOLUTION * 4 * numerator / denominator))


def bar_self_similarity(notes: list[tuple[int, int, int]], bar_steps: int) -> float | None:
    """Mean off-diagonal cosine similarity of per-bar vectors (see the module docstring).

    ``notes``: (onset, duration, MIDI pitch) in steps. None when fewer than two bars hold a note."""
    end = max(onset + max(duration, 1) for onset, duration, _ in notes)
    n_bars = (end - 1) // bar_steps + 1
    pitch_classes = np.zeros((n_bars, 12))
    onsets = np.zeros((n_bars, bar_steps))
    for onset, duration, pitch in notes:
        bar, position = divmod(onset, bar_steps)
        onsets[bar, position] = 1.0
        # A note held across a bar line adds to each bar the part of its duration that falls in it.
        start, stop = onset, onset + duration
        while start < stop:
            bar = start // bar_steps
            bar_end = (bar + 1) * bar_steps
            pitch_classes[bar, pitch % 12] += min(stop, bar_end) - start
            start = bar_end
    vectors = np.hstack([_unit_sum(pitch_classes), _unit_sum(onsets)])
    vectors = vectors[np.abs(vectors).sum(axis=1) > 0]  # bars where nothing starts or sounds have no direction
    if len(vectors) < 2:
        return None
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    m = len(unit)
    return float((similarity.sum() - np.trace(similarity)) / (m * (m - 1)))


def _unit_sum(rows: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows of zeros stay zero), so both halves of a bar's vector weigh alike."""
    sums = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, sums, out=np.zeros_like(rows), where=sums > 0)


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
