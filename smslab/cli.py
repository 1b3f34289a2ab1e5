"""The ``smslab`` command: wires each package's own command line together, nothing else.

Packages are imported when their commands are registered; their handlers
import the heavy libraries themselves, so ``smslab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smslab import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smslab",
        description="Scaling-law experiments for language models of symbolic music (MuPT's SMS law and its baselines).",
    )
    parser.add_argument("--version", action="version", version=f"smslab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from corpus.cli import add_commands as add_corpus_commands
    from dashboards.cli import add_commands as add_dashboard_commands
    from evals.cli import add_commands as add_evals_commands
    from lawfit.cli import add_commands as add_lawfit_commands
    from lawfit.published import add_command as add_published
    from storage.cli import add_commands as add_storage_commands
    from sweeps.cli import add_commands as add_sweeps_commands
    from sweeps.quickstart import add_command as add_quickstart
    from trainer.cli import add_commands as add_trainer_commands

    add_quickstart(commands)
    add_published(commands)
    add_lawfit_commands(commands)
    add_corpus_commands(commands)
    add_trainer_commands(commands)
    add_evals_commands(commands)
    add_storage_commands(commands)
    add_sweeps_commands(commands)
    add_dashboard_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An error of smslab's own kinds carries its exit status (``exit_status``: 2 for bad
    input, 1 for a campaign that cannot go on) and is printed as one line; so is a failure of what smslab
    talks to (exit 1); anything else is a bug, and its traceback is what a report needs."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print(f"smslab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        status = getattr(exc, "exit_status", None)
        if isinstance(status, int):
            print(f"smslab {args.command}: error: {exc}", file=sys.stderr)
            return status
        if not environment_failure(exc):
            raise
        print(f"smslab {args.command}: error: {type(exc).__name__}: {str(exc).strip()[:2000]}", file=sys.stderr)
        return 1


def environment_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of what smslab talks to (a file, a tracking store or server, the Optuna
    database, the scheduler) rather than of its own code: the user gets a message, not a traceback."""
    import sqlite3
    import subprocess

    kinds: list[type[BaseException]] = [OSError, sqlite3.Error, subprocess.SubprocessError]
    for module, name in (("mlflow.exceptions", "MlflowException"), ("sqlalchemy.exc", "SQLAlchemyError"),
                         ("optuna.exceptions", "OptunaError"), ("submitit.core.utils", "FailedSubmissionError"),
                         ("submitit.core.utils", "FailedJobError"), ("requests.exceptions", "RequestException")):
        loaded = sys.modules.get(module)  # only libraries the command has loaded can have raised
        if loaded is not None and hasattr(loaded, name):
            kinds.append(getattr(loaded, name))
    return isinstance(exc, tuple(kinds))
