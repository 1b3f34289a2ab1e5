"""``smslab dash`` and ``smslab report``: dashboards' own command line."""

from __future__ import annotations

import argparse
import sys


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dash = subparsers.add_parser(
        "dash", help="the interactive dashboard of a tracking store (curves, laws, residuals, frontier, planner)",
        description="Serve the MuPT views of every campaign in a tracking store; new runs appear as they land.",
    )
    dash.add_argument("--tracking-uri", default=None,
                      help="MLflow tracking URI (default: the quickstart's, sqlite in ./smslab-quickstart/campaign)")
    dash.add_argument("--campaign", default=None, help="the campaign to open first")
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8050)
    dash.add_argument("--refresh-s", type=float, default=10.0, help="seconds between reads of the store")
    dash.add_argument("--laws", default=None, help="laws shown at first, comma-separated (default the paper's five; sms_repetition when named)")
    dash.set_defaults(handler=run_dash)
    report = subparsers.add_parser(
        "report", help="one self-contained HTML file with every view of a campaign",
        description="Write the dashboard's views of a campaign into one HTML file that opens without a network.",
    )
    report.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the quickstart's)")
    report.add_argument("--campaign", required=True)
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.set_defaults(handler=run_report)


def _uri(value: str | None) -> str:
    from pathlib import Path

    from storage.tracking import default_tracking_uri

    return value or default_tracking_uri(Path("smslab-quickstart") / "campaign")


def _error(command: str, message: str) -> int:
    print(f"smslab {command}: error: {message}", file=sys.stderr)
    return 2


def run_dash(args: argparse.Namespace) -> int:
    from dashboards.app import create_app
    from dashboards.data import DataUnavailable, campaigns
    from lawfit.names import LAW_NAMES, PAPER_LAW_NAMES

    laws = tuple(x.strip() for x in args.laws.split(",")) if args.laws else PAPER_LAW_NAMES
    unknown = [law for law in laws if law not in LAW_NAMES]
    if unknown:
        return _error("dash", f"--laws: unknown law {unknown[0]!r}; laws are {', '.join(LAW_NAMES)}")
    if not 0 < args.port < 65536:
        return _error("dash", f"--port must be a TCP port (1-65535), got {args.port}")
    if not args.refresh_s > 0:
        return _error("dash", f"--refresh-s must be a positive number of seconds, got {args.refresh_s:g}")
    uri = _uri(args.tracking_uri)
    try:
        known: list[str] | None = campaigns(uri)
    except DataUnavailable as exc:
        if uri.startswith("sqlite:"):
            return _error("dash", str(exc))
        known = None  # a server that does not answer now may later: the page says so in place
    if args.campaign is not None and known is not None and args.campaign not in known:
        return _error("dash", f"--campaign: no campaign {args.campaign!r} in {uri}; campaigns: {', '.join(known) or 'none'}")
    app = create_app(uri, args.campaign, args.refresh_s, laws)
    print(f"smslab dash: http://{args.host}:{args.port}/  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from dashboards.data import DataUnavailable
    from dashboards.report import write_report

    try:
        target = write_report(_uri(args.tracking_uri), args.campaign, args.out)
    except DataUnavailable as exc:
        return _error("report", str(exc))
    except OSError as exc:
        return _error("report", f"--out {args.out}: cannot write the report: {exc.strerror or exc}")
    print(f"report written to {target}")
    return 0
