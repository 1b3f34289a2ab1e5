"""``smslab sample`` and ``smslab eval``: evals' own command line.

Handlers import torch themselves, so ``smslab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from evals.eval_cli import add_commands as add_eval_commands

    add_sample_command(subparsers)
    add_run_command(add_eval_commands(subparsers))


def add_sample_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sample = subparsers.add_parser(
        "sample",
        help="draw tunes from a checkpoint (SMT-ABC, ABC and a JSONL record of each sample)",
        description=(
            "Sample N tunes from a run's checkpoint with a KV cache: temperature, top-k, top-p, a seed per "
            "sample (seed + i). Each sample stops at the end-of-tune token or after --max-new-tokens (or at the "
            "end of the context). Writes OUT/samples.smt (every sample), OUT/samples.abc (those that convert to "
            "standard ABC) and OUT/samples.jsonl (one line per sample: prompt, token count, stop reason, seed, "
            "converted or why not). --prompt first-bar conditions each sample on the header and first bar group "
            "of a held-out (validation) tune of the corpus, as MuPT Tables 4-5 do."
        ),
    )
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", default=None, metavar="RUN_DIR", help="a run folder (its checkpoints/last.ckpt)")
    source.add_argument("--checkpoint", default=None, metavar="FILE", help="a checkpoint file")
    sample.add_argument("--corpus", default=None, metavar="DIR",
                        help="the corpus of the tokenizer and held-out tunes (default: the one the run trained on)")
    sample.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    sample.add_argument("--prompt", choices=("none", "first-bar"), default="none",
                        help="none: start from the end-of-tune token; first-bar: a held-out tune's header and first bar group")
    sample.add_argument("--max-new-tokens", type=int, default=1024, help="token cap of each sample (default 1024)")
    sample.add_argument("--temperature", type=float, default=1.0, help="0 is greedy (default 1.0)")
    sample.add_argument("--top-k", type=int, default=0, help="keep the K most likely tokens (default 0: off)")
    sample.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0: off)")
    sample.add_argument("--seed", type=int, default=0, help="sample i uses seed + i (default 0)")
    sample.add_argument("--batch-size", type=int, default=16, help="samples decoded together (default 16)")
    sample.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    sample.add_argument("--no-kv-cache", action="store_true", help="recompute the whole prefix every step (slow; a check)")
    sample.add_argument("--json", action="store_true", help="print the summary as JSON")
    sample.add_argument("--out", required=True, metavar="DIR", help="the folder the three files go to")
    sample.set_defaults(handler=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evals.sampling import check_request, resolve_source, sample_checkpoint
    from trainer.sample import SamplingSettings

    settings = SamplingSettings(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                max_new_tokens=args.max_new_tokens, seed=args.seed, kv_cache=not args.no_kv_cache)
    check_request(settings, args.n, args.batch_size, Path(args.out))
    source = resolve_source(args.run, args.checkpoint, args.corpus)
    summary = sample_checkpoint(source, args.prompt, args.n, settings, Path(args.out), args.batch_size, args.device)
    if args.json:
        print(json.dumps(summary))
        return 0
    stops: dict[str, int] = summary["stops"]  # type: ignore[assignment]
    speed = summary["tokens_per_s"]
    print(f"{summary['samples']} samples in {summary['out']}: {summary['converted']} convert to ABC; "
          f"stopped at end-of-tune {stops['eos']}, at the token cap {stops['max_tokens']}; "
          f"{summary['new_tokens']:,} new tokens" + (f" at {speed:,} tokens/s" if speed else ""))
    return 0


def add_run_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser(
        "run",
        help="sample a run's final checkpoint and measure the samples beside the corpus' held-out tunes",
        description=(
            "Draw N tunes from RUN_DIR/checkpoints/last.ckpt (as smslab sample does), measure them as SMT-ABC "
            "(a sample that does not convert counts as invalid) and measure up to R held-out (validation) tunes "
            "of the run's corpus the same way; write RUN_DIR/eval/ (samples.*, reference.smt, report.txt, "
            "measures.json with samples, reference and gaps). When the run is recorded in MLflow (or "
            "--tracking-uri/--campaign name it), log eval_<measure> and eval_real_<measure> at step = the "
            "checkpoint's D. The same settings at the same checkpoint are skipped unless --force."
        ),
    )
    run.add_argument("run", metavar="RUN_DIR", help="a run folder with its checkpoint")
    run.add_argument("--samples", type=int, default=100, metavar="N", help="tunes to draw (default 100)")
    run.add_argument("--prompt", choices=("none", "first-bar"), default="none",
                     help="none: from the end-of-tune token; first-bar: a held-out tune's header and first bar group")
    run.add_argument("--max-new-tokens", type=int, default=1024, metavar="M", help="token cap of each sample (default 1024)")
    run.add_argument("--temperature", type=float, default=1.0, metavar="T", help="0 is greedy (default 1.0)")
    run.add_argument("--top-k", type=int, default=0, metavar="K", help="keep the K most likely tokens (default 0: off)")
    run.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling mass (default 1.0: off)")
    run.add_argument("--seed", type=int, default=0, metavar="S", help="sample i uses seed + i; the bootstrap's seed (default 0)")
    run.add_argument("--reference-tunes", type=int, default=100, metavar="R",
                     help="held-out tunes of the corpus to measure beside the samples (default 100)")
    run.add_argument("--corpus", default=None, metavar="DIR", help="the corpus (default: the one the run trained on)")
    run.add_argument("--tracking-uri", default=None, metavar="URI",
                     help="the MLflow store to log to (default: the one the run was recorded in, if any)")
    run.add_argument("--campaign", default=None, metavar="NAME",
                     help="the campaign the run was recorded in (with --tracking-uri; default: the run's own record)")
    run.add_argument("--force", action="store_true", help="evaluate again even when measures.json has these settings")
    run.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="seconds per tool call and stage (default 10)")
    run.add_argument("--workers", type=int, default=0, help="measuring processes (default 0: one per CPU core)")
    run.add_argument("--batch-size", type=int, default=16, help="samples decoded together (default 16)")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    run.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    run.set_defaults(handler=run_run)


def run_run(args: argparse.Namespace) -> int:
    # Sampling needs torch: imported only when the command runs. The table is `eval abc`'s (format_table),
    # passed down because evals.run_eval sits below the command line.
    from evals.eval_cli import format_table
    from evals.run_eval import run_command

    return run_command(args, format_table)
