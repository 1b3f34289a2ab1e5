"""``smslab quickstart``: the main job — a small real scaling-law campaign on the embedded default.

It builds the SMT-ABC corpus from the ABC collections bundled with music21
(no Bach, a 2,048-token BPE, 2 % of the tunes for validation; seconds), writes the campaign spec
``sweeps/data/quickstart.toml`` into the output folder and runs it: tiny
LLaMA-style decoders (0.1M, 0.3M, 1M) on two data fractions for 1, 4 and 16 epochs through
submitit's local executor, every curve into the embedded MLflow store, all
five laws fitted and compared, the best bootstrapped, and proposal rounds
until the budget is spent. It prints the law comparison and the
recommendation. Running it again resumes: nothing finished is trained again.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

FRACTIONS = (0.0078125, 0.015625, 1.0)  # the spec's two, and the whole corpus for anyone who goes on from here


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = subparsers.add_parser(
        "quickstart",
        help="the main job: a small real campaign (train tiny decoders, fit every law, recommend N*, epochs*)",
        description=(
            "Build the bundled ABC corpus, train a grid of tiny decoders through submitit's local executor with every "
            "curve in MLflow, fit and compare all five laws, and propose and train the next runs until the budget is "
            "spent; prints the law comparison and the recommendation. About 5 minutes on 2 CPU cores."
        ),
    )
    cmd.add_argument("--out", default="smslab-quickstart", help="folder for corpus, runs, MLflow store and reports")
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from corpus.shards import BuildConfig, build_corpus
    from corpus.sources import music21_files
    from sweeps.campaign import run_campaign
    from sweeps.progress import say_on_stderr as say
    from sweeps.runs import campaign_lock
    from sweeps.spec import load_campaign
    from trainer.folder import write_atomic

    started = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "campaign.toml"
    shipped = resources.files("sweeps").joinpath("data/quickstart.toml").read_text()
    if not spec_path.is_file() or spec_path.read_text() != shipped:
        write_atomic(spec_path, shipped)
    say(f"[1/2] corpus: the ABC collections bundled with music21 -> {out / 'corpus'}")
    manifest, _ = build_corpus(music21_files(), out / "corpus", BuildConfig(vocab_size=2048, fractions=FRACTIONS, val_fraction=0.02))
    say("      U_D per fraction: " + ", ".join(f"{f:g}: {manifest.fraction(f).tokens:,}" for f in FRACTIONS))
    campaign = load_campaign(spec_path)
    say(f"[2/2] campaign {campaign.name}: {len(campaign.runs)} grid runs, up to {campaign.launcher.max_parallel} "
         f"at a time; MLflow store {campaign.folder / 'mlflow.db'}")
    with campaign_lock(campaign):
        outcome = run_campaign(campaign, say=say)
    print()
    print(outcome.report)
    print(f"\nfolder: {out}   (smslab sweep status {spec_path}; smslab runs export --tracking-uri "
          f"sqlite:///{campaign.folder / 'mlflow.db'} --campaign {campaign.name} --out points.csv)")
    say(f"quickstart done in {time.perf_counter() - started:.0f} s")
    return 0
