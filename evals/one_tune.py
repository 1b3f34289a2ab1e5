"""One tune, measured: every validity tier, the repeat sign, and the measures of abc2midi's MIDI.

``measure_one`` is what each worker process of evals/worker_pool.py runs per tune; run as
``python -m evals.one_tune`` this module is that worker: one JSON request per line on stdin
(``{"tune": …, "tools": …, "time_limit_s": …}``), one JSON ``TuneReport`` per line back. The reply goes to
the process' original stdout only; music21, muspy and anything else that prints are sent to stderr, so no
stray line can break the exchange.

Each stage has the time limit: the tools through their subprocess timeout, music21 and muspy through an
alarm (evals/validity.py), and the pool kills and replaces a worker that still does not answer.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from corpus.abc import AbcError
from corpus.smt import from_smt, to_abc
from evals.abc_files import TuneInput, has_body_repeat
from evals.music_metrics import METRICS, measure_midi
from evals.validity import (
    TIERS,
    Tools,
    TuneTimeout,
    music21_note_count,
    run_abc2midi,
    run_abcm2ps,
    time_limit,
)


@dataclass(frozen=True)
class TuneReport:
    """One tune's results. A tier is True/False, or None where it does not apply or its tool is missing."""

    source: str
    number: str
    line: int  # where the tune starts in its file (0: unknown)
    smt: bool
    tiers: dict[str, bool | None]
    repeat: bool
    notes: int | None  # in abc2midi's MIDI
    metrics: dict[str, float | None]
    bar_self_similarity: float | None
    reasons: tuple[str, ...]  # one per failed tier or stage



def measure_one(tune: TuneInput, tools: Tools, time_limit_s: float) -> TuneReport:
    """All measures of one tune, in a temporary folder of its own."""
    if tune.problem is not None:
        return failed_report(tune, tools, tune.problem)
    tiers: dict[str, bool | None] = dict.fromkeys(TIERS)
    reasons: list[str] = []
    metrics: dict[str, float | None] = dict.fromkeys(METRICS)
    notes: int | None = None
    similarity: float | None = None
    abc = tune.text
    if tune.smt:
        try:
            parsed = from_smt(tune.text)
        except AbcError as exc:
            return failed_report(tune, tools, f"V5: from-smt failed: {exc} (so no ABC for V0-V4)")
        counts = [len(v.bars) for v in parsed.voices]
        tiers["V5"] = len(set(counts)) == 1
        if not tiers["V5"]:
            reasons.append("V5: voices have different bar counts (" + ", ".join(
                f"V:{v.voice_id} {len(v.bars)}" for v in parsed.voices) + ")")
        abc = to_abc(parsed)

    try:
        tiers["V0"] = music21_note_count(abc, time_limit_s) > 0
        if not tiers["V0"]:
            reasons.append("V0: music21 finds no note")
    except TuneTimeout as exc:
        tiers["V0"] = False
        reasons.append(f"V0: music21 {exc}")
    except Exception as exc:  # noqa: BLE001  music21 raises many kinds on odd text; each is a failed tier
        tiers["V0"] = False
        reasons.append(f"V0: music21 could not parse it ({type(exc).__name__}: {str(exc)[:200]})")

    with tempfile.TemporaryDirectory(prefix="smslab-eval-") as folder:
        abc_file = Path(folder) / "tune.abc"
        abc_file.write_text(abc if abc.endswith("\n") else abc + "\n", encoding="utf-8")
        if tools.abc2midi is not None:
            notes, metrics, similarity = _midi_tiers(tools.abc2midi, abc_file, time_limit_s, tiers, reasons)
        if tools.abcm2ps is not None:
            why = run_abcm2ps(tools.abcm2ps, abc_file, time_limit_s)
            tiers["V4"] = why is None
            if why is not None:
                reasons.append(f"V4: {why}")
    return TuneReport(tune.source, tune.number, tune.line, tune.smt, tiers, has_body_repeat(tune.text), notes,
                      metrics, similarity, tuple(reasons))


def _midi_tiers(exe: str, abc_file: Path, time_limit_s: float, tiers: dict[str, bool | None],
                reasons: list[str]) -> tuple[int | None, dict[str, float | None], float | None]:
    """V1–V3 and the MIDI measures; fills ``tiers`` and ``reasons``, returns notes, metrics, similarity."""
    empty: dict[str, float | None] = dict.fromkeys(METRICS)
    run = run_abc2midi(exe, abc_file, abc_file.with_suffix(".mid"), time_limit_s)
    tiers["V1"] = tiers["V2"] = tiers["V3"] = False
    if run.failure is not None or run.midi is None:
        first = f" ({run.errors[0]})" if run.errors else ""
        reasons.append(f"V1: {run.failure or 'abc2midi wrote no MIDI file'}{first}")
        return None, empty, None
    try:
        with time_limit(time_limit_s):
            measured = measure_midi(run.midi)
    except TuneTimeout as exc:
        reasons.append(f"V1: reading abc2midi's MIDI {exc}")
        return None, empty, None
    except Exception as exc:  # noqa: BLE001  a MIDI file muspy cannot read is a failed tier, not a crash
        reasons.append(f"V1: abc2midi's MIDI file is unreadable ({type(exc).__name__}: {str(exc)[:200]})")
        return None, empty, None
    if measured.notes == 0:
        reasons.append("V1: abc2midi's MIDI file has no note")
        return 0, empty, None
    tiers["V1"] = True
    tiers["V2"] = not run.errors
    if run.errors:
        reasons.append(f"V2: {len(run.errors)} abc2midi Error line(s), first: {run.errors[0][:200]}")
    tiers["V3"] = not run.bar_warnings
    if run.bar_warnings:
        reasons.append(f"V3: {len(run.bar_warnings)} bar-length warning(s), first: {run.bar_warnings[0][:200]}")
    return measured.notes, measured.metrics, measured.bar_self_similarity


def _tool_of(tier: str, tools: Tools) -> str | None:
    """The tool a tier needs ("music21" for V0, which is always there)."""
    if tier in ("V1", "V2", "V3"):
        return tools.abc2midi
    if tier == "V4":
        return tools.abcm2ps
    return "music21"


def failed_report(tune: TuneInput, tools: Tools, reason: str) -> TuneReport:
    """Every tier that applies failed, for one reason (an unreadable tune, or a worker that hung or died)."""
    tiers: dict[str, bool | None] = {tier: None if _tool_of(tier, tools) is None else False for tier in TIERS[:5]}
    tiers["V5"] = False if tune.smt else None
    return TuneReport(tune.source, tune.number, tune.line, tune.smt, tiers, has_body_repeat(tune.text), None,
                      dict.fromkeys(METRICS), None, (reason,))


def report_from_dict(data: dict[str, object]) -> TuneReport:
    """A TuneReport back from its JSON form."""
    fields = dict(data)
    fields["reasons"] = tuple(fields["reasons"])  # type: ignore[arg-type]
    return TuneReport(**fields)  # type: ignore[arg-type]


def request(tune: TuneInput, tools: Tools, time_limit_s: float) -> str:
    """The JSON line a worker reads for one tune."""
    return json.dumps({"tune": asdict(tune), "tools": asdict(tools), "time_limit_s": time_limit_s}) + "\n"


def serve() -> None:
    """The worker loop (see the module docstring)."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, never into the replies
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        asked = json.loads(line)
        tune = TuneInput(**asked["tune"])
        tools = Tools(**asked["tools"])
        try:
            report = measure_one(tune, tools, float(asked["time_limit_s"]))
        except Exception as exc:  # noqa: BLE001  a bug on one odd tune must not end the run; it is that tune's reason
            report = failed_report(tune, tools, f"measuring failed ({type(exc).__name__}: {str(exc)[:300]})")
        replies.write(json.dumps(asdict(report)) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
