"""``smslab corpus build`` and ``smslab abc to-smt|from-smt``: corpus's own command line."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    corpus = subparsers.add_parser("corpus", help="build the tokenised SMT-ABC corpus")
    corpus_cmds = corpus.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)
    build = corpus_cmds.add_parser(
        "build",
        help="ABC collections → SMT-ABC → BPE → token shards with nested data fractions",
        description=(
            "Convert the public-domain ABC collections in the music21 wheel (and any --abc folders) to "
            "SMT-ABC, remove duplicates, split train/validation by tune, train a byte-level BPE and write "
            "token shards with a manifest. Rebuilding with unchanged inputs reuses the folder."
        ),
    )
    build.add_argument("--abc", action="append", default=[], metavar="DIR", help="a folder (or file) of .abc tunes; repeatable")
    build.add_argument("--no-music21", action="store_true", help="leave out the collections bundled with music21")
    build.add_argument("--bach", type=int, default=-1, metavar="N",
                       help="Bach chorales from music21 converted to 4-voice ABC: N of them (default all, 0 for none)")
    build.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size (default 4096; MuPT: 50,000)")
    build.add_argument("--fractions", default="0.0625,0.25,1", help="nested data fractions (default 0.0625,0.25,1)")
    build.add_argument("--val-fraction", type=float, default=0.05, help="share of tunes held out for validation")
    build.add_argument("--seed", type=int, default=0, help="seed of the split and of the fractions")
    build.add_argument("--out", required=True, help="the corpus folder")
    build.set_defaults(handler=run_build)

    abc = subparsers.add_parser("abc", help="convert ABC tunes to SMT-ABC and back")
    abc_cmds = abc.add_subparsers(dest="abc_command", metavar="SUBCOMMAND", required=True)
    for name, help_text in (("to-smt", "standard ABC → SMT-ABC"), ("from-smt", "SMT-ABC → standard multi-voice ABC")):
        cmd = abc_cmds.add_parser(name, help=help_text, description=f"{help_text}; skipped tunes are reported on stderr")
        cmd.add_argument("files", nargs="+", metavar="FILE")
        cmd.add_argument("--out", default=None, help="write here instead of stdout")
        cmd.set_defaults(handler=run_abc, direction=name)


def _fractions(text: str) -> tuple[float, ...]:
    from corpus.sources import CorpusInputError

    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CorpusInputError(f"--fractions: {text!r} is not a comma-separated list of numbers") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise CorpusInputError(f"--fractions: every fraction must lie in (0, 1], got {text!r}")
    return values


def run_build(args: argparse.Namespace) -> int:
    from corpus.shards import BuildConfig, build_corpus
    from corpus.sources import CorpusInputError, music21_files, user_files

    if args.vocab_size < 260 or args.vocab_size > 2**32:
        raise CorpusInputError(f"--vocab-size must be at least 260 (256 bytes + special tokens), got {args.vocab_size}")
    if not 0 < args.val_fraction < 1:
        raise CorpusInputError(f"--val-fraction must lie in (0, 1), got {args.val_fraction}")
    config = BuildConfig(args.vocab_size, _fractions(args.fractions), args.val_fraction, args.seed)
    sources = user_files(args.abc)
    if not args.no_music21:
        sources = music21_files() + sources
    extra = None
    extra_key: list[str] = []
    if args.bach != 0:
        from corpus.bach import bach_chorale_records, bach_key

        limit = None if args.bach < 0 else args.bach
        extra_key = [bach_key(limit)]

        def extra():  # type: ignore[no-untyped-def]
            return bach_chorale_records(limit, progress=_progress)

    if not sources and extra is None:
        raise CorpusInputError("no inputs: give --abc DIR or leave out --no-music21")
    out = Path(args.out)
    try:
        manifest, rebuilt = build_corpus(sources, out, config, extra, extra_key, progress=_progress)
    except (ValueError, FileExistsError) as exc:
        raise CorpusInputError(str(exc)) from None
    print(file=sys.stderr)
    print(("built" if rebuilt else "up to date (inputs unchanged):") + f" {out}")
    print(summary_table(manifest))
    return 0


_bars: dict[str, object] = {}


def _progress(stage: str, done: int, total: int) -> None:
    from tqdm import tqdm

    bar = _bars.get(stage)
    if bar is None:
        bar = _bars[stage] = tqdm(total=total, desc=stage, unit="item", file=sys.stderr, leave=True)
    bar.update(done - bar.n)  # type: ignore[attr-defined]
    if done >= total:
        bar.close()  # type: ignore[attr-defined]


def summary_table(manifest) -> str:  # type: ignore[no-untyped-def]
    c = manifest.counts
    rows = [
        ("tunes converted", f"{c['tunes_converted']:,}"),
        ("duplicates removed", f"{c['duplicates_removed']:,}"),
        ("tunes kept", f"{c['tunes']:,} ({c['multi_voice_tunes']:,} with several voices)"),
        ("train / validation tunes", f"{c['train_tunes']:,} / {c['val_tunes']:,}"),
        ("train / validation tokens", f"{c['train_tokens']:,} / {c['val_tokens']:,}"),
        ("vocabulary", f"{manifest.vocab_size:,} ({manifest.dtype})"),
        ("skipped tunes", f"{c['skipped']:,}"),
    ]
    rows += [(f"  {reason}", f"{n:,}") for reason, n in c["skipped_by_reason"].items()]
    rows += [(f"fraction {f.fraction:g}", f"{f.tunes:,} tunes, U_D = {f.tokens:,} tokens") for f in manifest.fractions]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def run_abc(args: argparse.Namespace) -> int:
    from corpus.abc import AbcError, read_abc_text, split_tunes
    from corpus.smt import smt_to_abc
    from corpus.sources import CorpusInputError, TuneRecord, convert_text

    if args.out:
        check_output(Path(args.out))
    texts = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise CorpusInputError(f"{path}: no such file")
        try:
            texts.append((name, read_abc_text(str(path))))
        except OSError as exc:
            raise CorpusInputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    outputs: list[str] = []
    for name, text in texts:
        if next(split_tunes(text), None) is None:
            # UTF-16 text or a binary file has NUL bytes and no X: line a reader could find.
            why = "not a UTF-8 text file (it holds NUL bytes: UTF-16 or binary)" if "\x00" in text else "no tunes found"
            print(f"{name}: {why} (a tune starts with an X: line)", file=sys.stderr)
            continue
        if args.direction == "to-smt":
            for item in convert_text(text, name):
                if isinstance(item, TuneRecord):
                    outputs.append(item.smt)
                else:
                    print(f"{name}: tune X:{item.number}: skipped: {item.reason}", file=sys.stderr)
        else:
            for tune in split_tunes(text):
                try:
                    outputs.append(smt_to_abc(tune.text))
                except AbcError as exc:
                    print(f"{name}: tune X:{tune.number}: skipped: {exc}", file=sys.stderr)
    if not outputs:
        raise CorpusInputError(f"{', '.join(args.files)}: no tune could be converted (see the reasons above); "
                               "nothing written")
    result = "\n".join(outputs)
    if args.out:
        _write_atomic(Path(args.out), result)
    else:
        sys.stdout.write(result)
    return 0


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created like any file (mode from the umask, unlike mkstemp's 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output(path: Path) -> None:
    """Refuse an output file before any work: a folder where the file goes, or a place under a file or in a
    folder that cannot be written."""
    from corpus.sources import CorpusInputError

    if path.is_dir():
        raise CorpusInputError(f"--out {path}: is a folder; give a file name")
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CorpusInputError(f"--out {path}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise CorpusInputError(f"--out {path}: {existing} is not writable")
