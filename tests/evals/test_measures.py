"""Measures of ABC sets with the real tools (Debian's abc2midi and abcm2ps), on real and broken tunes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import music21
import pytest

from corpus.abc import parse_tune, read_abc_text
from corpus.smt import to_smt
from evals.abc_files import TuneInput, read_tunes, tune_inputs, tunes_of_bytes, tunes_of_text
from evals.measures import Measure, MeasureSet, MeasureSettings, measure_tunes, with_reference
from evals.music_metrics import bar_self_similarity
from evals.one_tune import request
from evals.validity import ABC2MIDI_MISSING, ABCM2PS_MISSING, find_tools
from evals.worker_pool import _Worker

# The first ten tunes of the American fife book in music21's miscFolk collection (one has two voices).
# Counted by hand, the bodies of eight hold ':|'; "God Save the King" (X:10) and "Hail to the Chief"
# (X:12) end their sections with '|]' and '||' only.
REAL_FILE = Path(music21.__file__).parent / "corpus" / "miscFolk" / "americanfifeopus.abc"
REAL_REPEATS = {"1": True, "5": True, "6": True, "7": True, "8": True, "9": True, "10": False, "11": True,
                "12": False, "13": True}
ONE_WORKER = MeasureSettings(workers=1, bootstrap_draws=500)


def require_tools() -> None:
    if shutil.which("abc2midi") is None or shutil.which("abcm2ps") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the measure tests: abc2midi/abcm2ps missing (did .ci/abc-tools-up.sh run?)")
        pytest.skip("Debian's abcmidi and abcm2ps are not installed (make abctools)")


def real_tunes() -> list[TuneInput]:
    return tunes_of_text(read_abc_text(str(REAL_FILE)), "americanfifeopus.abc")[:10]


@pytest.fixture(scope="module")
def real_result() -> MeasureSet:
    require_tools()
    return measure_tunes(real_tunes(), MeasureSettings(workers=2, bootstrap_draws=500))


@pytest.mark.slow
def test_real_tunes_convert_and_repeat_as_counted_by_hand(real_result: MeasureSet) -> None:
    v1 = real_result.measure("validity_v1")
    assert v1.n == 10 and v1.value is not None and v1.value >= 90
    assert v1.interval is not None and v1.interval[0] < v1.value <= v1.interval[1]
    assert real_result.measure("validity_v0").value == 100
    repeats = {r.number: r.repeat for r in real_result.tunes}
    assert repeats == REAL_REPEATS
    assert real_result.measure("repetition_rate").value == pytest.approx(80.0)
    assert real_result.measure("validity_v5").unavailable is not None  # no SMT-ABC given
    for name in ("bar_self_similarity", "pitch_range", "pitch_entropy", "pitch_class_entropy", "scale_consistency",
                 "polyphony", "empty_beat_rate", "groove_consistency"):
        m = real_result.measure(name)
        assert m.unavailable is None and m.n >= 9 and m.value is not None and m.interval is not None, name
        assert m.interval[0] <= m.value <= m.interval[1], name
    # Fife tunes: a major-scale melody, one or two voices, no long silences.
    assert real_result.measure("scale_consistency").value > 0.9  # type: ignore[operator]
    assert 1.0 <= real_result.measure("polyphony").value < 2.1  # type: ignore[operator]
    two_voices = next(r for r in real_result.tunes if r.number == "8")
    assert two_voices.tiers["V1"] and two_voices.metrics["polyphony"] > 1.5  # type: ignore[operator]
    data = real_result.to_dict()
    assert set(data["measures"]["validity_v1"]) >= {"value", "interval", "n", "unavailable"}  # type: ignore[index]


@pytest.mark.slow
def test_garbage_binary_empty_and_smt_inputs_get_reasons_not_crashes() -> None:
    require_tools()
    real = real_tunes()[0].text
    two_voices = "X:1\nT:t\nM:4/4\nL:1/8\nV:1\nV:2\nK:C\n"
    tunes = [
        *tunes_of_bytes(b"", "empty.abc"),
        *tunes_of_bytes(bytes(range(256)) * 8, "binary.abc"),
        *tunes_of_bytes(b"X:1\nT:Caf\xe9\nK:C\nabc|\n", "latin1.abc"),
        *tune_inputs(["X:1\nT:garbage\nK:C\n@@@###~~~\n", "no header, no tune"], source="garbage"),
        *tune_inputs([to_smt(parse_tune(real))], source="good.smt", smt=True),
        *tune_inputs([two_voices + "<|>[V:1]abcd efga|[V:2]CDEF GABc|<|>\n<|>[V:1]abcd efga|<|>\n"],
                     source="uneven.smt"),
        *tune_inputs(["X:1\nT:t\nK:C\nabc|\n"], source="plain.smt", smt=True),
    ]
    result = measure_tunes(tunes, ONE_WORKER)
    by_source = {r.source: r for r in result.tunes}
    assert len(result.tunes) == len(tunes)
    assert by_source["empty.abc"].reasons == ("empty file",)
    assert "binary" in by_source["binary.abc"].reasons[0]
    assert "UTF-8" in by_source["latin1.abc"].reasons[0]
    for broken in ("empty.abc", "binary.abc", "latin1.abc"):
        assert set(by_source[broken].tiers.values()) == {False, None}, broken
    garbage = [r for r in result.tunes if r.source == "garbage"]
    assert all(r.tiers["V1"] is False and r.reasons for r in garbage)
    assert any("V1:" in reason for r in garbage for reason in r.reasons)
    good, uneven, plain = by_source["good.smt"], by_source["uneven.smt"], by_source["plain.smt"]
    assert good.tiers["V5"] is True and good.tiers["V1"] is True
    assert uneven.tiers["V5"] is False and uneven.tiers["V1"] is True  # it still converts to ABC
    assert any("different bar counts" in r for r in uneven.reasons)
    assert plain.tiers["V5"] is False and plain.tiers["V1"] is False
    assert plain.reasons[0].startswith("V5: from-smt failed")
    v5 = result.measure("validity_v5")
    assert v5.n == 3 and v5.value == pytest.approx(100 / 3)
    v1 = result.measure("validity_v1")
    assert v1.n == len(tunes) and v1.value == pytest.approx(100 * 2 / len(tunes))


@pytest.mark.slow
def test_a_tune_past_the_time_limit_gets_its_reason(tmp_path: Path) -> None:
    require_tools()
    tune = real_tunes()[0]
    result = measure_tunes([tune], MeasureSettings(time_limit_s=0.001, workers=1, bootstrap_draws=10))
    report = result.tunes[0]
    assert report.tiers["V1"] is False
    assert any("time limit" in r for r in report.reasons), report.reasons


@pytest.mark.slow
def test_missing_tools_make_their_measures_unavailable(tmp_path: Path) -> None:
    # A search path without the tools is a real absence, not a mock.
    result = measure_tunes(real_tunes()[:2], MeasureSettings(workers=1, tool_path=str(tmp_path)))
    for name in ("validity_v1", "validity_v2", "validity_v3", "pitch_entropy", "bar_self_similarity"):
        assert result.measure(name).unavailable == ABC2MIDI_MISSING, name
        assert result.measure(name).value is None
    assert result.measure("validity_v4").unavailable == ABCM2PS_MISSING
    assert result.measure("validity_v0").value == 100  # music21 needs no tool
    assert result.measure("repetition_rate").value == 100
    assert all(r.tiers["V1"] is None and r.tiers["V4"] is None for r in result.tunes)
    assert result.tools == {"abc2midi": None, "abcm2ps": None}


def test_bar_self_similarity_is_one_for_a_repeated_bar_and_lower_otherwise() -> None:
    bar = [(0, 24, 60), (24, 24, 64), (48, 48, 67)]  # one 4/4 bar at 24 steps a quarter note
    repeated = [(onset + 96 * k, duration, pitch) for k in range(4) for onset, duration, pitch in bar]
    assert bar_self_similarity(repeated, 96) == pytest.approx(1.0)
    other = [(0, 12, 61), (12, 12, 63), (24, 72, 66)]
    mixed = bar + [(onset + 96, duration, pitch) for onset, duration, pitch in other]
    similarity = bar_self_similarity(mixed, 96)
    assert similarity is not None and 0 <= similarity < 0.5
    assert bar_self_similarity(bar, 96) is None  # one bar: no pair


def test_reference_gap_is_in_real_standard_deviations() -> None:
    def measure_set(value: float, spread: float) -> MeasureSet:
        m = Measure("pitch_range", "pitch range", "mean", value, (value - 1, value + 1), 100, spread)
        return MeasureSet((m,), (), {}, MeasureSettings(), 0.0)

    compared = with_reference(measure_set(14.0, 3.0), measure_set(18.0, 2.0)).measure("pitch_range")
    assert compared.reference_value == 18.0 and compared.gap_sd == pytest.approx(-2.0)
    flat = with_reference(measure_set(14.0, 3.0), measure_set(18.0, 0.0)).measure("pitch_range")
    assert flat.gap_sd is None


@pytest.mark.slow
def test_header_only_repeat_sign_does_not_count(tmp_path: Path) -> None:
    file = tmp_path / "t.abc"
    file.write_text("X:1\nT:Reel :| in the title\nK:G\nabc|def|]\n\nX:2\nT:Real repeat\nK:G\n|:abc|def:|\n")
    tunes = read_tunes([file])
    result = measure_tunes(tunes, MeasureSettings(workers=1, tool_path=str(tmp_path)))  # no tools: fast
    assert [r.repeat for r in result.tunes] == [False, True]
    assert result.measure("repetition_rate").value == pytest.approx(50.0)


@pytest.mark.slow
def test_a_stuck_or_dying_worker_is_replaced_and_named() -> None:
    # The real worker process: one that passes its deadline is killed, one that dies is reported with its
    # exit status, and the next request gets a fresh worker.
    worker = _Worker()
    tune = tune_inputs(["X:1\nT:t\nL:1/8\nK:C\nabc|\n"])[0]
    try:
        assert worker.ask(request(tune, find_tools(), 10), 0.2) == (
            None, "the measuring process did not answer within 0.2 s and was killed")
        reply, why = worker.ask("not a request\n", 60)
        assert reply is None and why.startswith("the measuring process died (exit status 1)")
        reply, _ = worker.ask(request(tune, find_tools(), 10), 60)
        assert reply is not None and '"V0": true' in reply
    finally:
        worker.stop()
