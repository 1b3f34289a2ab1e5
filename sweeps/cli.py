"""``smslab sweep launch|status`` and ``smslab campaign run``: sweeps' own command line."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sweep = subparsers.add_parser("sweep", help="launch a grid spec's runs through submitit, and see their state")
    sweep_cmds = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)
    launch = sweep_cmds.add_parser(
        "launch",
        help="launch every unfinished run of a grid spec (local executor or Slurm)",
        description=(
            "Expand SPEC (TOML) into run specs, check them against the corpus, and launch through submitit every run "
            "that is not finished: finished runs are skipped, interrupted ones resume from their checkpoint."
        ),
    )
    launch.add_argument("spec", help="the grid spec file (TOML)")
    launch.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the spec's, else SQLite in "
                        "the campaign folder)")
    launch.add_argument("--no-wait", action="store_true", help="return once submitted (Slurm) instead of waiting")
    launch.add_argument("--retry-failed", action="store_true", help="launch runs that failed before again")
    launch.set_defaults(handler=run_launch)
    status = sweep_cmds.add_parser("status", help="each run's state from its folder, submitit and MLflow")
    status.add_argument("spec", help="the grid spec file (TOML)")
    status.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the spec's)")
    status.set_defaults(handler=run_status)

    campaign = subparsers.add_parser("campaign", help="run a scaling-law campaign: grid, fit, plan, propose, repeat")
    campaign_cmds = campaign.add_subparsers(dest="campaign_command", metavar="SUBCOMMAND", required=True)
    run = campaign_cmds.add_parser(
        "run",
        help="launch the grid, fit every law, plan, propose and launch the next runs until N* is pinned down",
        description=(
            "Launch the grid, read every curve from MLflow, fit every law, plan for the spec's [plan] budget, propose "
            "the predicted optimum and the runs that most narrow the interval of N*, launch them, and repeat until the "
            "interval is within the tolerance or the campaign's compute budget is spent. Running it again resumes."
        ),
    )
    run.add_argument("spec", help="the campaign spec file (TOML with a [plan] table)")
    run.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the spec's, else SQLite in "
                     "the campaign folder)")
    run.set_defaults(handler=run_campaign)


def load(args: argparse.Namespace, check_corpus: bool = True):  # type: ignore[no-untyped-def]
    """The spec file's campaign, with ``--tracking-uri`` over the spec's."""
    import dataclasses

    from sweeps.spec import load_campaign

    campaign = load_campaign(args.spec, check_corpus=check_corpus)
    return dataclasses.replace(campaign, tracking_uri=args.tracking_uri) if args.tracking_uri else campaign


def run_launch(args: argparse.Namespace) -> int:
    from sweeps.launch import launch
    from sweeps.lr_search import search_learning_rates
    from sweeps.progress import progress_printer, say_on_stderr
    from sweeps.proposals import with_learning_rate
    from sweeps.runs import campaign_lock

    campaign = load(args)
    say_on_stderr(f"campaign {campaign.name}: {len(campaign.runs)} runs, launcher {campaign.launcher.kind}, "
                  f"folder {campaign.folder}")
    with campaign_lock(campaign):
        # With [lr_search], the grid's runs are those at each preset's searched rate (searched first if need be).
        rates = search_learning_rates(campaign, say_on_stderr)
        specs = [with_learning_rate(spec, rates) for spec in campaign.runs]
        states = launch(campaign, specs, wait=not args.no_wait, retry_failed=args.retry_failed,
                        progress=progress_printer(len(specs)))
    print_status(states, {})
    return 0 if all(s.status == "finished" for s in states) or args.no_wait else 1


def print_status(states, scheduler: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    header = f"{'run':<16} {'preset':<10} {'fraction':>8} {'budget':>12} {'seed':>4} {'status':<12} {'step':>11} {'val loss':>9} {'job':<14} error"
    print(header)
    print("-" * len(header))
    for s in states:
        budget = f"{s.spec.epochs:g} ep" if s.spec.epochs is not None else f"{s.spec.tokens:,}"
        steps = f"{s.step}/{s.steps}" if s.steps else str(s.step)
        loss = f"{s.final_loss:.4f}" if s.final_loss is not None else "-"
        job = f"{s.job_id or '-'}"
        if s.run_id in scheduler:
            job += f" {scheduler[s.run_id]}"
        print(f"{s.run_id:<16} {s.spec.preset:<10} {s.spec.fraction:>8g} {budget:>12} {s.spec.seed:>4} {s.status:<12} "
              f"{steps:>11} {loss:>9} {job:<14} {(s.error or '')[:80]}")


def run_status(args: argparse.Namespace) -> int:
    from sweeps.launch import submitit_states
    from sweeps.lr_search import searched_rates
    from sweeps.proposals import with_learning_rate
    from sweeps.record import recorded_specs
    from sweeps.runs import JobBook, read_run_state, tracking_uri_of

    campaign = load(args, check_corpus=False)  # the state of the runs can be read without the corpus
    book = JobBook(campaign)
    rates = searched_rates(campaign)
    grid = [with_learning_rate(spec, rates) for spec in campaign.runs]
    # Runs the campaign proposed beyond its grid (recorded in its Optuna study), if it has one.
    specs = grid + [s for s in recorded_specs(campaign) if s not in grid]
    states = [read_run_state(campaign, spec, book.jobs) for spec in specs]
    scheduler = submitit_states(campaign, states)
    print_status(states, scheduler)
    from storage.tracking import StorageError, open_store

    uri = tracking_uri_of(campaign)
    try:
        tracker = open_store(uri)
    except StorageError as exc:
        tracker = None  # no store yet (nothing launched), or a server that does not answer: the folders still tell
        print(f"note: MLflow not read: {exc}")
    if tracker is not None:
        statuses = tracker.run_statuses(campaign.name)
        mismatched = [s for s in states if s.status in ("finished", "failed") and statuses.get(s.run_id) not in (None, s.status)]
        for s in mismatched:
            print(f"note: MLflow says {statuses[s.run_id]} for run {s.run_id}, its folder says {s.status}")
        print(f"\nMLflow ({uri}): {len(statuses)} runs recorded; "
              + ", ".join(f"{v} {k}" for k, v in sorted(_count(statuses.values()).items())))
    counts = _count(s.status for s in states)
    print(f"runs: {len(states)}; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 0


def _count(values) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def run_campaign(args: argparse.Namespace) -> int:
    from sweeps.campaign import run_campaign as run
    from sweeps.progress import say_on_stderr
    from sweeps.runs import campaign_lock

    campaign = load(args)
    with campaign_lock(campaign):
        outcome = run(campaign, say=say_on_stderr)
    print(outcome.report)
    return 0
