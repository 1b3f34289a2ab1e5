"""``smslab runs export``: storage's own command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    runs = subparsers.add_parser("runs", help="read recorded runs back from MLflow")
    runs_cmds = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)
    export = runs_cmds.add_parser(
        "export",
        help="every curve of a campaign as the loss-point table (CSV or Parquet)",
        description=("Write run_id, N, D, U_D, loss, step, split for every validation point of a campaign; with "
                     "--measures, one row per evaluated run instead: run_id, N, N_with_embeddings, D, U_D and each "
                     "eval_* measure (smslab eval run) at the run's latest evaluated D."),
    )
    export.add_argument("--tracking-uri", required=True, help="e.g. sqlite:////abs/path/mlflow.db or http://127.0.0.1:5000")
    export.add_argument("--campaign", default="default", help="the campaign (MLflow experiment) name")
    export.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    export.add_argument("--measures", action="store_true",
                        help="export the runs' eval_* measures (one row per run) instead of the loss points")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    import sys

    from storage.points import export_points
    from storage.tracking import StorageError, open_store

    def error(message: str) -> int:
        print(f"smslab runs export: error: {message}", file=sys.stderr)
        return 2

    try:
        check_output(Path(args.out))
    except StorageError as exc:
        return error(str(exc))
    try:
        tracker = open_store(args.tracking_uri)
    except StorageError as exc:
        return error(f"--tracking-uri: {exc}")
    try:
        tracker.require_campaign(args.campaign)
    except StorageError as exc:
        return error(f"--campaign: {exc}")
    # The measures are a table of their own: the loss-point table keeps its shape (lawfit reads it).
    frame = tracker.read_measures(args.campaign) if args.measures else tracker.read_points(args.campaign)
    try:
        export_points(frame, args.out)
    except (OSError, ValueError) as exc:
        return error(f"--out {args.out}: cannot write the table: {exc}")
    if args.measures:
        print(f"measures of {len(frame)} runs written to {args.out}")
    else:
        print(f"{len(frame)} points of {frame['run_id'].nunique()} runs written to {args.out}")
    return 0


def check_output(path: Path) -> None:
    """Refuse an output file before any work: a folder where the file goes, or a place under a file or in a
    folder that cannot be written."""
    from storage.sqlite_store import StorageError

    if path.is_dir():
        raise StorageError(f"--out {path}: is a folder; give a file name")
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise StorageError(f"--out {path}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise StorageError(f"--out {path}: {existing} is not writable")
