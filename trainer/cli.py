"""``smslab train`` and ``smslab presets``: trainer's own command line."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    presets = subparsers.add_parser(
        "presets",
        help="list the model presets with their parameter counts",
        description=(
            "Every model preset: the shapes of the models MuPT released (counted with MuPT's 50,000-token "
            "vocabulary) and tiny CPU models (counted with a 4,096-token vocabulary), embeddings untied. Each has "
            "hidden, layers, ffn (SwiGLU inner size), heads, head_dim, vocab and two counts: "
            "n_params_non_embedding (the N the laws use) and n_params_with_embeddings (the N MuPT's names use)."
        ),
    )
    presets.add_argument("--vocab-size", type=int, default=None, help="count with this vocabulary instead")
    presets.add_argument("--json", action="store_true", help="print a JSON list")
    presets.set_defaults(handler=run_presets)
    add_train_command(subparsers)


def add_train_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = subparsers.add_parser(
        "train",
        help="train one run (a preset on a data fraction for some epochs or tokens); resumes from --out",
        description=(
            "Train a preset on one data fraction of a built corpus with MuPT's recipe, for --epochs over the "
            "fraction or a --tokens budget; the validation loss over the whole held-out set is logged to "
            "OUT/curve.csv every --eval-every tokens. Running it again with the same --out resumes."
        ),
    )
    train.add_argument("--spec", default=None, help="a run-spec JSON file (its fields; flags below override)")
    train.add_argument("--preset", default=None)
    train.add_argument("--fraction", type=float, default=None)
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=None)
    budget.add_argument("--tokens", type=int, default=None)
    train.add_argument("--lr", type=float, default=None, help="peak learning rate")
    train.add_argument("--final-lr", type=float, default=None)
    train.add_argument("--context", type=int, default=None)
    train.add_argument("--batch-tokens", type=int, default=None, help="global batch in tokens")
    train.add_argument("--micro-batch", type=int, default=None, help="sequences per forward pass and process")
    train.add_argument("--eval-every", type=int, default=None, dest="eval_every_tokens", help="tokens between evaluations")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--precision", default=None, choices=("32", "bf16-mixed", "auto"))
    train.add_argument("--corpus", default="corpus", help="a folder built by `smslab corpus build` (default ./corpus)")
    train.add_argument("--devices", type=int, default=1, help="processes (DDP); on the CPU they use gloo")
    train.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, fsdp (GPUs) …")
    train.add_argument("--tracking-uri", default=None, help="also record the run in MLflow (e.g. sqlite:////abs/mlflow.db)")
    train.add_argument("--campaign", default="default", help="the campaign (MLflow experiment) of the run")
    train.add_argument("--out", required=True, help="the run folder")
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from trainer.run import Hardware, train_run
    from trainer.spec import RunError, RunSpec

    fields = set(RunSpec.__dataclass_fields__)
    values: dict[str, object] = {}
    if args.spec:
        spec_path = Path(args.spec)
        try:
            loaded = json.loads(spec_path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(f"{spec_path}: cannot read the run spec: {exc}") from None
        loaded = loaded.get("spec", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(loaded, dict):
            raise RunError(f"{spec_path}: a run spec is a JSON object")
        values.update(loaded)
    for name in fields:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    if args.epochs is not None or args.tokens is not None:
        values["epochs"], values["tokens"] = args.epochs, args.tokens
    for required in ("preset", "fraction"):
        if values.get(required) is None:
            raise RunError(f"--{required} is required (or give it in --spec)")
    if values.get("epochs") is None and values.get("tokens") is None:
        raise RunError("give --epochs E or --tokens D")
    spec = RunSpec.from_dict(values, args.spec or "the command line")
    state = train_run(spec, args.corpus, args.out, Hardware(devices=args.devices, strategy=args.strategy),
                      show_progress=sys.stderr.isatty(), tracking_uri=args.tracking_uri, campaign=args.campaign)
    print(json.dumps(state))
    return 0 if state.get("status") in ("finished", "interrupted") else 1


def run_presets(args: argparse.Namespace) -> int:
    from trainer.presets import N_FOR_LAWS, PRESETS

    rows = [p.describe(args.vocab_size) for p in PRESETS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'preset':<10} {'hidden':>6} {'layers':>6} {'ffn':>6} {'heads':>5} {'head_dim':>8} {'vocab':>6} "
        f"{'N (non-emb.)':>14} {'N (with emb.)':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['name']:<10} {r['hidden']:>6} {r['layers']:>6} {r['ffn']:>6} {r['heads']:>5} {r['head_dim']:>8} "
            f"{r['vocab']:>6} {r['n_params_non_embedding']:>14,} {r['n_params_with_embeddings']:>14,}"
        )
    print(f"\nThe laws use N = {N_FOR_LAWS.replace('_', '-')} parameters.")
    return 0
