"""Measures of a set of ABC tunes, real or generated: ``measure_tunes(tunes, settings) -> MeasureSet``.

Per measure: a value, its 95 % interval (Wilson for rates, a bootstrap over tunes for means), the number of
tunes it is taken over, and, when it cannot be taken, why (``unavailable``). ``with_reference`` adds a real
set's value beside each measure and the gap in the real set's standard deviations.

The measures:

- ``validity_v0`` … ``validity_v5``: the tiers of evals/validity.py, as rates in percent over every tune given
  (V5 over the SMT-ABC tunes only). V1 is the primary one; V2–V4 fail on many real tunes too, so compare a tier
  only with the same tier on real tunes.
- ``repetition_rate``: MuPT (Qu et al. 2024) Table 4's piece-level repetition: the share (percent) of tunes
  whose body — after the first ``K:`` line — holds the repeat sign ``:|``. MuPT reports 44.3 for its model,
  43.5 for the ground truth and 16.9 for GPT-4; the music21 collections have about 71 %, so compare a model
  with its own training corpus, not with those numbers.
- ``bar_self_similarity``: our bar-level self-similarity proxy (evals/music_metrics.py), never MuPT's texture
  similarity and not comparable with Table 4.
- MusPy's metrics (evals/music_metrics.py) of abc2midi's MIDI, as means over the tunes that pass V1.

Tunes are measured in worker processes (evals/worker_pool.py), each in its own temporary folder; every tool
call and in-process stage has the per-tune time limit, and a worker that hangs or dies costs only its tune.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from evals.abc_files import TuneInput
from evals.intervals import bootstrap_mean_interval, wilson_interval
from evals.music_metrics import METRICS
from evals.one_tune import TuneReport
from evals.validity import TIER_LABELS, TIERS, Tools, find_tools
from evals.worker_pool import measure_in_workers

METRIC_LABELS = {
    "pitch_range": "pitch range (semitones)", "pitch_entropy": "pitch entropy (bits)",
    "pitch_class_entropy": "pitch-class entropy (bits)", "scale_consistency": "scale consistency",
    "polyphony": "polyphony (pitches sounding)", "empty_beat_rate": "empty-beat rate",
    "groove_consistency": "groove consistency",
}
NO_SMT = "no SMT-ABC input (V5 applies to SMT-ABC tunes only)"


@dataclass(frozen=True)
class MeasureSettings:
    time_limit_s: float = 10.0  # per tool call and per in-process stage of one tune
    workers: int = 0  # processes; 0: one per CPU core
    bootstrap_draws: int = 2000
    seed: int = 0  # of the bootstrap
    tool_path: str | None = None  # the PATH to look abc2midi and abcm2ps up on; None: this process' PATH


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    kind: str  # "rate": a percentage with Wilson's interval; "mean": a mean with a bootstrap interval
    value: float | None
    interval: tuple[float, float] | None
    n: int  # tunes it is taken over
    spread: float | None  # standard deviation over tunes (for a rate, sqrt(p(1-p)) in percent)
    unavailable: str | None = None
    reference_value: float | None = None
    reference_spread: float | None = None
    gap_sd: float | None = None  # (value - reference) / reference spread; None where that spread is 0


@dataclass(frozen=True)
class MeasureSet:
    measures: tuple[Measure, ...]
    tunes: tuple[TuneReport, ...]
    tools: dict[str, str | None]
    settings: MeasureSettings
    seconds: float
    reference_tunes: int | None = None  # size of the real set given to with_reference

    def measure(self, name: str) -> Measure:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (tuples become lists); ``measures`` keyed by name, in report order."""
        data = asdict(self)
        data["measures"] = {m["name"]: m for m in data["measures"]}
        return data


def measure_tunes(tunes: Sequence[TuneInput], settings: MeasureSettings = MeasureSettings()) -> MeasureSet:
    """Measure every tune (in parallel) and aggregate; never raises for a bad tune."""
    started = time.perf_counter()
    tools = find_tools(settings.tool_path)
    workers = settings.workers or os.cpu_count() or 1
    reports = measure_in_workers(tunes, tools, settings.time_limit_s, workers)
    measures = aggregate(reports, tools, settings)
    return MeasureSet(measures, tuple(reports), {"abc2midi": tools.abc2midi, "abcm2ps": tools.abcm2ps},
                      settings, round(time.perf_counter() - started, 3))


def aggregate(reports: Sequence[TuneReport], tools: Tools, settings: MeasureSettings) -> tuple[Measure, ...]:
    """The measures of the whole set, in report order."""
    missing = tools.unavailable()
    measures = []
    for tier in TIERS:
        tool_missing = missing.get("abc2midi") if tier in ("V1", "V2", "V3") else (
            missing.get("abcm2ps") if tier == "V4" else None)
        flags = [r.tiers[tier] for r in reports if r.tiers[tier] is not None]
        why = tool_missing or (NO_SMT if tier == "V5" and not flags else None)
        measures.append(_rate(f"validity_{tier.lower()}", f"{tier} {TIER_LABELS[tier]}", flags, why))
    measures.append(_rate("repetition_rate", "repetition rate (':|' in body, MuPT Tab. 4)",
                          [r.repeat for r in reports], None))
    no_midi = missing.get("abc2midi")
    measures.append(_mean("bar_self_similarity", "bar self-similarity (proxy)",
                          [r.bar_self_similarity for r in reports], no_midi, settings))
    for name in METRICS:
        measures.append(_mean(name, METRIC_LABELS[name], [r.metrics[name] for r in reports], no_midi, settings))
    return tuple(measures)


def _rate(name: str, label: str, flags: Sequence[bool | None], unavailable: str | None) -> Measure:
    kept = [bool(f) for f in flags if f is not None]
    if unavailable is not None or not kept:
        return Measure(name, label, "rate", None, None, 0, None, unavailable or "no tune to measure")
    p = sum(kept) / len(kept)
    low, high = wilson_interval(sum(kept), len(kept))
    return Measure(name, label, "rate", 100 * p, (100 * low, 100 * high), len(kept), 100 * math.sqrt(p * (1 - p)))


def _mean(name: str, label: str, values: Sequence[float | None], unavailable: str | None,
          settings: MeasureSettings) -> Measure:
    kept = [v for v in values if v is not None]
    if unavailable is not None or not kept:
        return Measure(name, label, "mean", None, None, 0, None,
                       unavailable or "no tune has a value (none passed V1, or none long enough)")
    mean = sum(kept) / len(kept)
    spread = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1)) if len(kept) > 1 else 0.0
    interval = bootstrap_mean_interval(kept, settings.bootstrap_draws, settings.seed)
    return Measure(name, label, "mean", mean, interval, len(kept), spread)


def with_reference(measured: MeasureSet, reference: MeasureSet) -> MeasureSet:
    """``measured`` with the real set's value and spread beside each measure, and the gap in real-set SDs."""
    real = {m.name: m for m in reference.measures}

    def compared(m: Measure) -> Measure:
        r = real.get(m.name)
        if r is None or r.value is None:
            return m
        gap = None
        if m.value is not None and r.spread:
            gap = (m.value - r.value) / r.spread
        return replace(m, reference_value=r.value, reference_spread=r.spread, gap_sd=gap)

    return replace(measured, measures=tuple(compared(m) for m in measured.measures),
                   reference_tunes=len(reference.tunes))


def failure_summary(result: MeasureSet, tier: str = "V1", limit: int = 20) -> list[str]:
    """Lines naming the tunes that fail ``tier`` and why (at most ``limit``)."""
    failed = [r for r in result.tunes if r.tiers.get(tier) is False]
    lines = []
    for r in failed[:limit]:
        why = next((x for x in r.reasons if x.startswith(f"{tier}:")), r.reasons[0] if r.reasons else "?")
        lines.append(f"{tune_name(r)}: {why}")
    if len(failed) > limit:
        lines.append(f"... and {len(failed) - limit} more (--json lists every tune)")
    return lines


def tune_name(report: TuneReport) -> str:
    """``file:line (X:3)`` or ``file:line (sample 7)``: where to find the tune."""
    where = f"{report.source}:{report.line}" if report.line else report.source
    if report.number == "-":
        return where
    return f"{where} ({report.number if report.number.startswith('sample') else 'X:' + report.number})"
