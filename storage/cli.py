"""``smslab runs export``: storage's own command line."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    runs = subparsers.add_parser("runs", help="read recorded runs back from MLflow")
    runs_cmds = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    export = runs_cmds.add_parser(
        "export",
        help="every curve of a campaign as the loss-point table (CSV or Parquet)",
        description="Write run_id, N, D, U_D, loss, step, split for every validation point of a campaign.",
    )
    export.add_argument("--tracking-uri", required=True, help="e.g. sqlite:////abs/path/mlflow.db or http://127.0.0.1:5000")
    export.add_argument("--campaign", default="default", help="the campaign (MLflow experiment) name")
    export.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    import sys

    from storage.tracking import Tracker, export_points, sqlite_path

    def error(message: str) -> int:
        print(f"smslab runs export: error: {message}", file=sys.stderr)
        return 2

    path = sqlite_path(args.tracking_uri)
    if path is not None and not path.is_file():
        return error(f"--tracking-uri: no tracking store at {path}")  # opening it would create an empty one
    tracker = Tracker(args.tracking_uri)
    if tracker.experiment_id(args.campaign, create=False) is None:
        known = sorted(e.name for e in tracker.client.search_experiments() if e.name != "Default")
        return error(f"--campaign: no campaign {args.campaign!r} in {args.tracking_uri}; campaigns: {', '.join(known) or 'none'}")
    frame = tracker.read_points(args.campaign)
    try:
        export_points(frame, args.out)
    except (OSError, ValueError) as exc:
        return error(f"--out {args.out}: cannot write the table: {exc}")
    print(f"{len(frame)} points of {frame['run_id'].nunique()} runs written to {args.out}")
    return 0
