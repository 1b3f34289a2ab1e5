"""``smslab eval abc`` and ``smslab eval run`` (evals/run_eval.py): measures of any set of ABC tunes, real or generated (evals/measures.py).

``add_commands`` registers ``smslab eval`` and returns its sub-command set, so that later evaluation
commands (``smslab eval run``) can join it. Nothing heavy is imported until a handler runs.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evals.measures import Measure, MeasureSet

NOTES = (
    ("Validity tiers fail on real tunes too (V2-V4 often): compare a tier only with the same tier on real tunes "
    "(--reference)."),
    ("repetition rate: MuPT Table 4's piece-level measure (model 44.3 %, ground truth 43.5 %, GPT-4 16.9 %); the "
    "music21 collections have about 71 %, so compare a model with its own training corpus."),
    ("bar self-similarity is our proxy (mean cosine of per-bar pitch-class and onset vectors), not MuPT's texture "
    "similarity; metrics are MusPy's, on abc2midi's MIDI of the tunes that pass V1."),
)


def add_commands(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    evaluate = subparsers.add_parser("eval", help="measure sets of ABC tunes (validity, repetition, music metrics)",
                                     description="Evaluation of tunes, real or generated.")
    commands = evaluate.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    add_abc_command(commands)
    return commands


def add_abc_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    abc = commands.add_parser(
        "abc",
        help="measure ABC/SMT-ABC files: validity tiers, repetition rate, MusPy metrics, with 95 %% intervals",
        description=(
            "Measure every tune of the given .abc/.smt files and folders: validity tiers V0 (music21), V1 "
            "(abc2midi writes MIDI with a note; primary), V2 (no abc2midi Error line), V3 (no bar-length "
            "warning), V4 (abcm2ps engraves it), V5 (SMT-ABC only: from-smt, equal bar counts); MuPT Table 4's "
            "repetition rate; a bar self-similarity proxy; MusPy's metrics of abc2midi's MIDI. Rates get Wilson "
            "95 % intervals, means a bootstrap over tunes. Give PATHs first, then --reference REAL... to put a "
            "real set's value and the gap in real-set standard deviations beside each measure. Needs Debian's "
            "abcmidi and abcm2ps (their tiers are 'unavailable' without them)."
        ),
    )
    abc.add_argument("paths", nargs="+", metavar="PATH", help=".abc or .smt files, or folders of them")
    abc.add_argument("--reference", nargs="+", default=None, metavar="REAL",
                     help="real tunes to compare with (files or folders), e.g. the corpus' own ABC")
    abc.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    abc.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                     help="seconds per tool call and stage of one tune (default 10)")
    abc.add_argument("--workers", type=int, default=0, help="worker processes (default 0: one per CPU core)")
    abc.add_argument("--bootstrap", type=int, default=2000, metavar="DRAWS",
                     help="bootstrap draws for the intervals of means (default 2000)")
    abc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    abc.add_argument("--failures", type=int, default=20, metavar="N",
                     help="list at most N tunes that fail V1 under the table (default 20)")
    abc.set_defaults(handler=run_abc)


def run_abc(args: argparse.Namespace) -> int:
    from evals.abc_files import EvalInputError, read_tunes
    from evals.measures import MeasureSettings, measure_tunes, with_reference

    if args.time_limit <= 0 or args.workers < 0 or args.bootstrap < 1 or args.failures < 0:
        raise EvalInputError("--time-limit must be > 0, --workers >= 0, --bootstrap >= 1, --failures >= 0")
    tunes = read_tunes(args.paths)
    reference_tunes = read_tunes(args.reference) if args.reference else None  # read both before measuring
    settings = MeasureSettings(time_limit_s=args.time_limit, workers=args.workers,
                               bootstrap_draws=args.bootstrap, seed=args.seed)
    result = measure_tunes(tunes, settings)
    if reference_tunes is not None:
        result = with_reference(result, measure_tunes(reference_tunes, settings))
    if args.json:
        data = {"inputs": list(args.paths), "reference_inputs": args.reference, **result.to_dict()}
        print(json.dumps(data, allow_nan=False))
    else:
        print(format_table(result, args.paths, args.failures))
    return 0


def format_table(result: MeasureSet, paths: list[str], failures: int = 20) -> str:
    """The measures as a text table, with the notes and the tunes that fail V1."""
    from evals.measures import failure_summary

    compared = result.reference_tunes is not None
    tools = ", ".join(f"{name} {path or 'MISSING'}" for name, path in result.tools.items())
    lines = [f"{len(result.tunes)} tunes from {', '.join(paths)} measured in {result.seconds:.1f} s ({tools})"]
    if compared:
        lines.append(f"reference: {result.reference_tunes} real tunes")
    head = f"{'measure':<48} {'value':>9}  {'95 % interval':<18} {'n':>5}"
    if compared:
        head += f"  {'real':>9}  {'gap (real SD)':>13}"
    lines += ["", head, "-" * len(head)]
    unavailable = []
    for m in result.measures:
        if m.unavailable is not None and m.value is None:
            lines.append(f"{m.label:<48} {'unavailable':>9}  {'':<18} {m.n:>5}")
            unavailable.append(f"{m.label}: {m.unavailable}")
            continue
        row = f"{m.label:<48} {_number(m, m.value):>9}  {_interval(m):<18} {m.n:>5}"
        if compared:
            gap = "-" if m.gap_sd is None else f"{m.gap_sd:+.2f}"
            row += f"  {_number(m, m.reference_value):>9}  {gap:>13}"
        lines.append(row)
    lines += ["", *NOTES]
    if compared:
        lines.append("gap: (value - real) / the real set's standard deviation over tunes ('-' where that is 0).")
    if unavailable:
        lines += ["", "Unavailable:", *(f"  {u}" for u in unavailable)]
    failed = failure_summary(result, "V1", failures)
    if failed and failures:
        lines += ["", "Tunes that fail V1:", *(f"  {f}" for f in failed)]
    return "\n".join(lines)


def _number(m: Measure, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} %" if m.kind == "rate" else f"{value:.3f}"


def _interval(m: Measure) -> str:
    if m.interval is None:
        return ""
    low, high = m.interval
    return f"[{low:.1f}, {high:.1f}]" if m.kind == "rate" else f"[{low:.3f}, {high:.3f}]"

