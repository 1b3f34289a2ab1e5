"""``smslab report``: every view of a campaign in one self-contained HTML file (plotly.js inlined once)."""

from __future__ import annotations

import html
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from dashboards.app import TITLES
from dashboards.data import FitCache, load_view
from dashboards.views import ViewSettings, build_views, view_names


def write_report(tracking_uri: str, campaign: str, out: str | Path, settings: ViewSettings | None = None) -> Path:
    view = load_view(tracking_uri, campaign)
    names = view_names(view)
    built = build_views(view, settings or ViewSettings(), FitCache(), names)
    parts = []
    for i, name in enumerate(names):
        # The first figure carries plotly.js itself, so the file opens with no network.
        body = built[name].to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"plot-{name}")
        parts.append(f"<section id='fig-{name}'><h2>{html.escape(TITLES[name])}</h2>\n{body}\n</section>")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    finished = sum(1 for s in view.statuses.values() if s == "finished")
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>smslab report: {html.escape(campaign)}</title>"
        "<style>body{font-family:sans-serif;margin:24px;max-width:1200px}</style></head><body>"
        f"<h1>Campaign {html.escape(campaign)}</h1>"
        f"<p>{len(view.statuses)} runs ({finished} finished), {len(view.points):,} loss points"
        + (f" ({view.left_out} left out: not finite positive numbers)" if view.left_out else "") + "; "
        f"tracking store {html.escape(tracking_uri)}; written {stamp}.</p>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    target = Path(out)
    if target.is_dir():
        raise IsADirectoryError(21, "it is a folder, give a file name", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    # A report is for sharing: created like any file (mode from the umask, unlike mkstemp's 0600).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
