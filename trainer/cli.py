"""``smslab presets``: trainer's own command line (``smslab train`` lands with the Lightning run)."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    presets = subparsers.add_parser(
        "presets",
        help="list the model presets with their parameter counts",
        description=(
            "Every model preset: MuPT Table 1 sizes (counted with MuPT's 50,000-token vocabulary) and tiny CPU "
            "models (counted with a 4,096-token vocabulary). n_params excludes embeddings: it is the N the laws use."
        ),
    )
    presets.add_argument("--vocab-size", type=int, default=None, help="count with this vocabulary instead")
    presets.add_argument("--json", action="store_true", help="print a JSON list")
    presets.set_defaults(handler=run_presets)


def run_presets(args: argparse.Namespace) -> int:
    from trainer.presets import N_FOR_LAWS, PRESETS

    rows = [p.describe(args.vocab_size) for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'preset':<10} {'N (non-emb.)':>14} {'with emb.':>14} {'d_model':>8} {'layers':>6} {'heads':>5} {'d_ff':>6} {'vocab':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<10} {r['n_params']:>14,} {r['n_params_with_embeddings']:>14,} {r['d_model']:>8} "
            f"{r['n_layers']:>6} {r['n_heads']:>5} {r['d_ff']:>6} {r['vocab_size']:>6}"
        )
    print(f"\nThe laws use N = {N_FOR_LAWS.replace('_', '-')} parameters.")
    return 0
