"""Real tunes: every bundled tune survives the round trip; Bach chorales become 4-voice SMT-ABC."""

from __future__ import annotations

import pytest

from corpus.abc import parse_tune
from corpus.bach import chorale_paths, convert_chorale, length_text, pitch_text
from corpus.smt import from_smt, to_abc, to_smt
from corpus.sources import TuneRecord, convert_file, music21_files


@pytest.mark.slow
def test_every_bundled_tune_that_converts_survives_the_round_trip():
    n_checked = 0
    for source in music21_files():
        for record in convert_file(source):
            if not isinstance(record, TuneRecord):
                continue
            tune = from_smt(record.smt)
            assert to_smt(tune) == record.smt, (record.source, record.number)
            again = parse_tune(to_abc(tune))
            assert [v.bars for v in again.voices] == [v.bars for v in tune.voices], (record.source, record.number)
            n_checked += 1
    assert n_checked > 4000


def test_abc_pitches_and_lengths():
    assert [pitch_text("C", o) for o in (2, 3, 4, 5, 6)] == ["C,,", "C,", "C", "c", "c'"]
    assert [length_text(q) for q in (0.5, 1.0, 1.5, 0.25, 0.75, 4.0)] == ["", "2", "3", "/2", "3/2", "8"]


@pytest.mark.slow
def test_bach_chorales_are_written_as_four_voice_abc_that_reads_back_the_same():
    records = [convert_chorale(p, i) for i, p in enumerate(chorale_paths(4), start=1)]
    converted = [r for r in records if isinstance(r, TuneRecord)]
    assert len(converted) >= 3, records
    for record in converted:
        assert record.n_voices >= 4
        tune = from_smt(record.smt)
        assert len(tune.voices) == record.n_voices
        assert len({len(v.bars) for v in tune.voices}) == 1
        assert record.smt.count("<|>") == 2 * len(tune.voices[0].bars)
        assert any(line.startswith("K:") for line in tune.header)
