"""`smslab dash` in a real headless Chromium (Debian's package, driven by Playwright).

The app starts, every view draws with data, the planner answers what
`smslab plan` answers, an unreachable store shows a message in place; the
time to the first full render is printed, and screenshots are kept in
``artifacts/dashboards/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium, wait_until_answering

from dashboards.data import load_view
from dashboards.views import VIEW_NAMES
from lawfit.points import LossPoints

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboards"


def start_dash(uri: str, campaign: str, laws: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smslab", "dash", "--tracking-uri", uri, "--campaign", campaign,
                             "--port", str(port), "--laws", laws, "--refresh-s", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    wait_until_answering(url, proc, 90, "smslab dash", lambda: proc.stderr.read().decode() if proc.stderr else "",
                         proc.kill)
    return proc, url


def figure_state(page, name: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return page.evaluate(
        """name => {
            const plot = document.querySelector(`#fig-${name} .js-plotly-plot`);
            if (!plot || !plot.data) return {drawn: false};
            const notes = (plot.layout.annotations || []).map(a => a.text);
            return {drawn: true, traces: plot.data.length, notes: notes};
        }""", name)


def wait_until_drawn(page, names, timeout_s: float) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout_s
    while True:
        states = {name: figure_state(page, name) for name in names}
        if all(s["drawn"] and (s["traces"] or s["notes"]) for s in states.values()):
            return states
        assert time.time() < deadline, f"not drawn in {timeout_s} s: {states}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.slow
def test_every_view_draws_and_the_planner_answers_what_the_cli_answers(browser, synthetic_store, tmp_path: Path):
    uri, campaign = synthetic_store
    proc, url = start_dash(uri, campaign, "chinchilla,sms")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(url)
        states = wait_until_drawn(page, VIEW_NAMES, 300)
        render_s = time.perf_counter() - started
        print(f"\ntime to first full render ({len(VIEW_NAMES)} views, fits made by the app): {render_s:.1f} s")
        for name in VIEW_NAMES:
            if name == "overfitting" and not states[name]["traces"]:
                # The campaign's law may predict no onset on these curves (they barely turn up): it says so.
                assert any("does not turn up" in note for note in states[name]["notes"]), states[name]["notes"]
                continue
            assert states[name]["traces"], f"{name} drew no data: {states[name]['notes']}"
        # The curves draw first; the laws' lines (2 laws x 5 sizes) are patched in once fitted.
        page.wait_for_function("document.querySelector('#fig-curves .js-plotly-plot').data.length === 15",
                               timeout=120_000)
        names = page.evaluate("[...new Set(document.querySelector('#fig-curves .js-plotly-plot').data.map(t => t.name))]")
        assert {"chinchilla law", "sms law"} <= set(names)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dash-synthetic.png"), full_page=True)

        # The planner, against `smslab plan` on the very fit it used (downloaded from the page).
        page.check("#plan-law input[value='sms']")
        page.fill("#plan-flops", "1e20")
        page.fill("#plan-unique", "2e8")
        page.click("#plan-go")
        page.wait_for_function("document.querySelector('#plan-answer').innerText.includes('N*')", timeout=120_000)
        answer = page.inner_text("#plan-answer")
        assert "sms law fitted by this dashboard" in answer and "100 bootstrap resamples" in answer
        with page.expect_download(timeout=120_000) as download:
            page.click("#fit-download-go")
        download.value.save_as(tmp_path / "sms.json")
        cli = subprocess.run([sys.executable, "-m", "smslab", "plan", "--fit", str(tmp_path / "sms.json"),
                              "--flops", "1e20", "--unique-tokens", "2e8", "--json"],
                             capture_output=True, text=True, check=True)
        plan = json.loads(cli.stdout)
        shown = dict(re.findall(r"^(N\*|D\*|epochs\*|loss)\s*=\s*([0-9.e+-]+)", answer, re.MULTILINE))
        intervals = dict(re.findall(r"^(N\*|D\*|epochs\*|loss)\s*=.*\[([0-9.e+-]+),", answer, re.MULTILINE))
        for label, key in (("N*", "n_opt"), ("D*", "d_opt"), ("epochs*", "epochs"), ("loss", "loss")):
            assert float(shown[label]) == pytest.approx(plan[key], rel=1e-3), label
            assert float(intervals[label]) == pytest.approx(plan["interval"][key][0], rel=1e-3), label
        # The same fit as the views' (fitted on every size, as campaigns fit).
        view = load_view(uri, campaign)
        assert json.loads((tmp_path / "sms.json").read_text())["points_hash"] == LossPoints.from_frame(
            view.final_points, "x").content_hash()
        page.fill("#plan-unique", "0")
        page.click("#plan-go")
        page.wait_for_function("document.querySelector('#plan-answer').innerText.includes('positive')", timeout=60_000)

        # The held-out split: Table 3's test columns fill in.
        page.check("#split input[value='held-out']")
        page.wait_for_function(
            "() => { const t = document.querySelector('#fig-comparison .js-plotly-plot');"
            " return t && t.data[0].cells.values[3].some(v => v !== '-'); }", timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "dash-planner.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_bad_stores_and_campaigns_show_messages_in_place(browser, synthetic_store):
    uri, _ = synthetic_store
    for store, campaign, expected in (("http://127.0.0.1:9", "anything", "tracking server http://127.0.0.1:9 does not answer"),
                                      (uri, "empty", "no runs recorded"),
                                      (uri, "one-size", "one model size")):
        proc, url = start_dash(store, campaign, "chinchilla")
        try:
            page = browser.new_page()
            page.goto(url)
            states = wait_until_drawn(page, VIEW_NAMES, 120)
            notes = " ".join(" ".join(s["notes"]) for s in states.values())  # type: ignore[arg-type]
            assert expected in notes, notes
            assert "Traceback" not in page.content()
            page.screenshot(path=str(ARTIFACTS / f"dash-{campaign}.png"), full_page=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_new_runs_appear_as_they_land(browser, synthetic_store, campaign_writer):
    from storage.tracking import RunRecord, Tracker

    uri, _ = synthetic_store
    campaign_writer(uri, "live", sizes=(1e6, 3e6), unique=(1e8,))
    proc, url = start_dash(uri, "live", "chinchilla")
    try:
        page = browser.new_page()
        page.goto(url)
        wait_until_drawn(page, VIEW_NAMES, 120)
        count = "() => document.querySelector('#fig-progress .js-plotly-plot').data[0].y.reduce((a, b) => a + b, 0)"
        assert page.evaluate(count) == 2
        tracker = Tracker(uri)
        run = tracker.open_run(RunRecord("late-run", "live", {"N": 1e7, "U_D": 1e8}))
        tracker.log_points(run, [{"D": 1e8, "loss": 3.0}, {"D": 2e8, "loss": 2.9}])
        tracker.set_status(run, "finished")
        page.wait_for_function(f"({count})() === 3", timeout=60_000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_the_report_is_one_file_that_draws_every_view_with_no_network(browser, synthetic_store, tmp_path: Path):
    uri, _ = synthetic_store
    out = tmp_path / "shared" / "report.html"
    proc = subprocess.run([sys.executable, "-m", "smslab", "report", "--tracking-uri", uri, "--campaign", "recorded",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?://""", text)  # nothing fetched on load
    assert text.count("Plotly.newPlot") == len(VIEW_NAMES) and text.count("plotly.js v") == 1  # the library inlined once
    context = browser.new_context(offline=True)
    page = context.new_page()
    page.goto(out.as_uri())
    states = wait_until_drawn(page, VIEW_NAMES, 120)
    # The campaign's chosen law is chinchilla, which has no overfitting term: that view says so in place.
    assert all(states[name]["traces"] for name in VIEW_NAMES if name != "overfitting"), states
    assert "chinchilla law does not turn up" in " ".join(states["overfitting"]["notes"])  # type: ignore[arg-type]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-recorded.png"), full_page=True)
    context.close()
