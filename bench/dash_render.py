"""Dashboard scale: R curves × P points (default 1,000 × 1,000) in a real Chromium, side by side.

1. Logs the curves into a fresh SQLite MLflow store and reads them back (storage's fast path).
2. The curves view two ways, each written as a self-contained HTML page and
   timed in headless Chromium from navigation until Plotly has drawn:
   smslab's (one WebGL trace per model size and per (law, size), each curve
   thinned to at most 200 points, keeping first, last and minimum) against
   the naive figure (one SVG trace per run with every point, and one per
   (law, run)), both with chinchilla and dprime fitted on the final points.
   Prints both and the ratio.
3. ``smslab dash`` on the store: time from opening the page until every view
   has drawn (the app fits chinchilla and dprime itself).

Needs /usr/bin/chromium (``.ci/browser-up.sh``).
Run: .venv/bin/python bench/dash_render.py [--runs 1000] [--points 1000]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from dashboards.figures import curves_figure  # noqa: E402
from dashboards.views import VIEW_NAMES  # noqa: E402
from storage.tracking import RunRecord, Tracker, default_tracking_uri  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DRAWN = "window.__drawn = performance.now();"


def write_store(uri: str, runs: int, points: int) -> None:
    tracker = Tracker(uri)
    rng = np.random.default_rng(0)
    sizes = np.geomspace(1e6, 1e9, 10)
    for r in range(runs):
        # Every run at its own (N, U_D): the worst case for law lines, drawn per (N, U_D).
        n, u = float(sizes[r % 10]), float(1e8 * 2 ** (r // 10 % 100 / 10))
        d = np.geomspace(1e6, 8 * u, points)
        loss = 1.8 + 400 / n**0.34 + 400 / d**0.28 + 0.01 * rng.standard_normal(points)
        run = tracker.open_run(RunRecord(f"run{r:05d}", "scale", {"N": n, "U_D": u}))
        tracker.log_points(run, [{"D": float(x), "loss": float(y)} for x, y in zip(d, loss, strict=True)])
        tracker.set_status(run, "finished")


def naive_figure(points, fits) -> go.Figure:  # type: ignore[no-untyped-def]
    """One SVG trace per run with every point, and one per (law, run) for the predictions."""
    from lawfit.laws import get_law

    fig = go.Figure()
    for run_id, run in points.groupby("run_id", sort=False):
        fig.add_trace(go.Scatter(x=run["D"], y=run["loss"], mode="lines+markers", name=str(run_id)))
        n, u = float(run["N"].iloc[0]), float(run["U_D"].iloc[0])
        d = np.geomspace(run["D"].min(), run["D"].max(), 60)
        for fit in fits:
            predicted = get_law(fit.law).predict(fit.params, np.full_like(d, n), d, np.full_like(d, u))
            fig.add_trace(go.Scatter(x=d, y=predicted, mode="lines", name=f"{fit.law} {run_id}"))
    fig.update_layout(xaxis={"type": "log"}, yaxis={"type": "log"}, height=520)
    return fig


def final_fits(points):  # type: ignore[no-untyped-def]
    """chinchilla and dprime fitted on each run's final point, as a campaign fits."""
    from lawfit.fit import FitOptions, fit_law
    from lawfit.points import LossPoints

    final = points.sort_values(["run_id", "D"]).groupby("run_id").tail(1)
    table = LossPoints.from_arrays(final["N"].to_numpy(float), final["D"].to_numpy(float), final["loss"].to_numpy(float),
                                   U_D=final["U_D"].to_numpy(float), run_id=final["run_id"].to_numpy())
    return [fit_law(table, law, FitOptions()) for law in ("chinchilla", "dprime")]


def render_ms(browser, fig: go.Figure, folder: Path, name: str, limit_s: float) -> float | None:  # type: ignore[no-untyped-def]
    """Milliseconds from navigation until Plotly has drawn; None when it takes longer than ``limit_s``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    path = folder / f"{name}.html"
    path.write_text(fig.to_html(include_plotlyjs=True, full_html=True, post_script=DRAWN))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        # A synchronous newPlot of a huge SVG figure blocks the load event itself: wait from the commit.
        page.goto(path.as_uri(), wait_until="commit", timeout=int(limit_s * 1000))
        page.wait_for_function("window.__drawn !== undefined", timeout=int(limit_s * 1000))
        return float(page.evaluate("window.__drawn"))
    except PlaywrightTimeout:
        return None
    finally:
        page.close()


def app_render_s(browser, uri: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds from opening the page until the curves view has drawn, and until every view has."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "smslab", "dash", "--tracking-uri", uri, "--campaign", "scale",
                             "--port", str(port), "--laws", "chinchilla,dprime", "--refresh-s", "60"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(url)
        check = """names => names.every(n => { const p = document.querySelector(`#fig-${n} .js-plotly-plot`);
                   return p && p.data && (p.data.length > 0 || (p.layout.annotations || []).length > 0); })"""
        page.wait_for_function(check, arg=["curves"], timeout=900_000)
        curves_s = time.perf_counter() - started
        page.wait_for_function(check, arg=list(VIEW_NAMES), timeout=900_000)
        return curves_s, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--limit-s", type=float, default=300.0, help="give up on a page after this long")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        uri = default_tracking_uri(folder)
        started = time.perf_counter()
        write_store(uri, args.runs, args.points)
        print(f"logged {args.runs} runs x {args.points} points in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        points = Tracker(uri).read_points("scale")
        print(f"read back {len(points):,} points in {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        fits = final_fits(points)
        print(f"chinchilla and dprime fitted on the {points['run_id'].nunique()} final points in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        ours = curves_figure(points, fits)
        build_s = time.perf_counter() - started
        shown = sum(int(np.isfinite(np.asarray(t.y, dtype=float)).sum()) for t in ours.data)
        print(f"smslab curves figure (data + 2 laws) built in {build_s:.2f} s: {len(ours.data)} WebGL traces, "
              f"{shown:,} points drawn")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            ours_ms = render_ms(browser, ours, folder, "ours", args.limit_s)
            assert ours_ms is not None, f"smslab's figure did not draw within {args.limit_s} s"
            naive_ms = render_ms(browser, naive_figure(points, fits), folder, "naive", args.limit_s)
            naive = f"{naive_ms / 1000:8.2f} s" if naive_ms is not None else f"did not draw within {args.limit_s:g} s"
            print(f"render in Chromium, naive (SVG trace per run and per law x run, every point): {naive}")
            print(f"render in Chromium, smslab (WebGL per size and per law x size, thinned)   : {ours_ms / 1000:8.2f} s")
            if naive_ms is not None:
                print(f"speed ratio: {naive_ms / ours_ms:.1f}x")
            else:
                print(f"speed ratio: more than {args.limit_s * 1000 / ours_ms:.0f}x")
            curves_s, all_s = app_render_s(browser, uri)
            print(f"smslab dash, time until the curves view has drawn: {curves_s:.1f} s (includes reading the store)")
            print(f"smslab dash, time to first full render of all {len(VIEW_NAMES)} views: {all_s:.1f} s (includes "
                  "fitting chinchilla and dprime with leave-one-size-out, and bootstrapping the better)")
            browser.close()


if __name__ == "__main__":
    main()
