"""``smslab sweep launch|status`` and ``smslab campaign run|simulate``: sweeps' own command line."""

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
    sim = campaign_cmds.add_parser(
        "simulate",
        help="measure the campaign loop on a simulated trainer: proposals vs a denser grid vs random runs",
        description=(
            "Run the campaign loop of SPEC (grid, fit every law, bootstrap, plan N*, propose, stop rule: the real "
            "loop's decision functions) in-process against a simulated trainer whose final losses are the --truth "
            "law's times log-normal noise (log L = log L_truth + SIGMA*eps, eps ~ N(0,1), one draw per run and seed). "
            "Each seed plays (a) smslab's proposals, (b) a denser grid and (c) random runs for the same FLOPs; the "
            "table gives the FLOPs and rounds to reach the tolerance, how often the final interval holds the "
            "truth's N* (coverage), and the final error in N*. Nothing is trained; progress goes to stderr."
        ),
    )
    sim.add_argument("spec", help="the campaign spec file (TOML with a [plan] table)")
    sim.add_argument("--truth", required=True, metavar="FIT.json", help="the law the simulated trainer follows: a fit "
                     "file (`smslab fit ... --out FIT.json`)")
    sim.add_argument("--noise", required=True, type=float, metavar="SIGMA",
                     help="sd of the noise on log loss (multiplicative log-normal); 0: exact losses")
    sim.add_argument("--seeds", type=int, default=10, metavar="K", help="campaigns per strategy (default 10)")
    sim.add_argument("--unique-tokens", default=None, metavar="U",
                     help="the corpus's training tokens (fraction f has f*U unique tokens), or FRACTION=TOKENS,... "
                     "per grid fraction; needed when the spec's corpus is not built (else read from it)")
    sim.add_argument("--bootstrap", type=int, default=None, metavar="K",
                     help="bootstrap draws per round instead of the spec's (fewer: faster, noisier intervals)")
    sim.add_argument("--laws", default=None, metavar="LAW,...", help="fit these laws instead of the spec's (faster)")
    sim.add_argument("--rescale", default=None, metavar="N=X,D=Y",
                     help="evaluate the truth at (X*N, Y*D, Y*U_D): a law fitted on larger models or corpora moved "
                     "onto the campaign's scale (default: as is)")
    sim.add_argument("--json", action="store_true", help="print JSON (every campaign's rounds too) instead of the table")
    sim.add_argument("--out", default=None, metavar="PATH", help="also write that JSON to PATH")
    sim.add_argument("--verbose", action="store_true", help="say every fit and proposal on stderr")
    sim.set_defaults(handler=run_simulate)


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


def run_simulate(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import time
    from pathlib import Path

    from lawfit.result import FitResult
    from sweeps.progress import say_on_stderr
    from sweeps.settings import SpecError
    from sweeps.simulate import Simulation, simulate
    from sweeps.simulate_inputs import parse_rescale, simulated_campaign
    from sweeps.simulate_report import as_json, table

    started = time.perf_counter()
    if not (args.noise >= 0 and args.noise < 10):
        raise SpecError(f"--noise is the sd of log loss: a number in [0, 10), got {args.noise}")
    if args.seeds < 1 or (args.bootstrap is not None and args.bootstrap < 3):
        raise SpecError("--seeds must be at least 1 and --bootstrap at least 3")
    n_scale, d_scale = parse_rescale(args.rescale)
    campaign, known_vocab = simulated_campaign(args.spec, args.unique_tokens)
    truth = FitResult.read(args.truth)
    settings = campaign.plan
    assert settings is not None
    notes = [f"bootstrap {settings.bootstrap} draws per round"]
    if args.bootstrap is not None and args.bootstrap != settings.bootstrap:
        notes = [(f"bootstrap {args.bootstrap} draws per round (--bootstrap; the spec's {settings.bootstrap}: fewer "
                  "draws make each interval, so coverage and the stop rule, noisier)")]
        settings = dataclasses.replace(settings, bootstrap=args.bootstrap)
    if args.laws:
        from lawfit.names import LAW_NAMES

        laws = tuple(law.strip() for law in args.laws.split(",") if law.strip())
        known = (*LAW_NAMES, *settings.user_law_names(campaign.source))
        unknown = [law for law in laws if law not in known] or ([] if laws else ["(none)"])
        if unknown:
            raise SpecError(f"--laws: unknown law {unknown[0]!r}; laws are {', '.join(known)}")
        settings = dataclasses.replace(settings, laws=laws)
        notes.append(f"laws from --laws (the spec's: {', '.join(campaign.plan.laws)})")  # type: ignore[union-attr]
    campaign = dataclasses.replace(campaign, plan=settings)
    sim = Simulation(campaign, settings, truth, args.noise, n_scale, d_scale, truth_path=str(args.truth))
    say_on_stderr(f"simulating {campaign.name}: truth {truth.law} ({args.truth}), N* {sim.n_opt:.4g}; "
                  f"{args.seeds} seeds x 3 strategies")
    trajectories = simulate(sim, args.seeds, say_on_stderr, verbose=args.verbose)
    seconds = time.perf_counter() - started
    data = as_json(sim, trajectories, seconds, known_vocab, settings.bootstrap)
    if args.out:
        from lawfit.result import write_json_atomic

        write_json_atomic(Path(args.out), data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(table(sim, trajectories, seconds, known_vocab, "; ".join(notes)))
    return 0
