"""MLflow's own web UI over a campaign's store, in a real headless Chromium (Debian's package, driven by Playwright).

A store written through storage (the "quickstart" campaign, finished runs with
curves) is served by ``python -m mlflow ui --backend-store-uri sqlite:////…`` —
the command docs/storage.md gives — and the page must show the campaign, its
runs under their smslab run ids, and a run's last validation loss as storage
reads it back. Screenshots are kept in ``artifacts/mlflow-ui/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium, wait_until_answering

from storage.points import LOSS_METRIC, CurvePoint
from storage.tracking import RunRecord, Tracker, default_tracking_uri

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "mlflow-ui"
CAMPAIGN = "quickstart"  # what the quickstart's campaign is called (sweeps/data/quickstart.toml)
PRESETS = {"tiny-0.1m": 100_000, "tiny-1m": 1_000_000}  # preset -> N
FRACTIONS = {0.0078125: 8_700, 0.015625: 17_000}  # data fraction -> U_D (unique tokens of one epoch)
POINTS_PER_CURVE = 12
EPOCHS = 16
BATCH_TOKENS = 2048


def chinchilla_loss(n: int, d: int) -> float:
    """A made-up loss of the shape E + A / N^alpha + B / D^beta (Hoffmann et al. Eq. 2), sized like the
    quickstart's tiny decoders on a 2,048-token BPE (ln 2048 = 7.6 at initialisation)."""
    return 1.7 + 250.0 / n**0.34 + 3.0 / (d / 1000) ** 0.3


def write_quickstart_store(folder: Path) -> tuple[str, list[str]]:
    """A quickstart-like campaign written through storage: 2 presets x 2 data fractions for 16 epochs, finished,
    each run's curve logged as storage's curve points. Run ids are spec hashes, as smslab's are.
    Returns the tracking URI and the run ids."""
    uri = default_tracking_uri(folder)
    tracker = Tracker(uri)
    run_ids = []
    for preset, n in PRESETS.items():
        for fraction, u in FRACTIONS.items():
            spec = {"preset": preset, "fraction": fraction, "epochs": EPOCHS, "seed": 0, "batch_tokens": BATCH_TOKENS}
            run_id = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
            run = tracker.open_run(RunRecord(run_id, CAMPAIGN, {**spec, "N": n, "U_D": u}))
            seen = [EPOCHS * u * (k + 1) // POINTS_PER_CURVE for k in range(POINTS_PER_CURVE)]
            points = [CurvePoint(run_id=run_id, N=n, D=d, U_D=u, loss=chinchilla_loss(n, d), step=d // BATCH_TOKENS,
                                 split="val", train_loss=0.97 * chinchilla_loss(n, d), lr=3e-3, tokens_per_s=4600.0,
                                 mfu=0.05)
                      for d in seen]
            tracker.log_points(run, [point.to_row() for point in points])
            tracker.set_status(run, "finished")
            run_ids.append(run_id)
    return uri, run_ids


def start_mlflow_ui(uri: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``mlflow ui`` on a free local port, once /health answers (here 17 s with one worker, 20-30 s with the
    default four)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_answering(f"{url}/health", proc, 180, "mlflow ui", log.read_text, lambda: stop(proc))
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server and its workers (its own session), killing them if they outlive 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_ui_shows_the_quickstart_campaign_its_runs_and_their_last_loss(tmp_path: Path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    uri, run_ids = write_quickstart_store(tmp_path / "campaign")
    assert uri.startswith("sqlite:////")
    tracker = Tracker(uri)
    experiment = tracker.experiment_id(CAMPAIGN, create=False)
    assert experiment is not None
    points = tracker.read_points(CAMPAIGN)
    last = points.sort_values("D").groupby("run_id").last()["loss"]
    assert set(last.index) == set(run_ids)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc, url = start_mlflow_ui(uri, tmp_path / "mlflow-ui.log")
    print(f"\nmlflow ui answered /health after {time.perf_counter() - started:.1f} s")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                # The landing page lists the campaign among the experiments (the UI itself, not the fallback
                # page mlflow-skinny serves without it).
                page.goto(f"{url}/")
                page.get_by_role("link", name=CAMPAIGN, exact=True).first.wait_for(timeout=90_000)
                page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)

                # The campaign's runs page lists every run under its smslab run id.
                page.goto(f"{url}/#/experiments/{experiment}/runs")
                for run_id in run_ids:
                    page.get_by_role("link", name=run_id, exact=True).wait_for(timeout=60_000)
                page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)

                # A run's page lists its metrics with their last values: the validation loss must be the one
                # storage reads back at the curve's last D.
                shown_run = run_ids[-1]
                page.get_by_role("link", name=shown_run, exact=True).click()
                row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=LOSS_METRIC, exact=True))
                row.first.wait_for(timeout=60_000)
                cells = row.first.get_by_role("cell").all_inner_texts()
                assert len(cells) >= 2, f"no value beside {LOSS_METRIC} on the run page: {cells!r}"
                assert float(cells[1]) == pytest.approx(float(last[shown_run]), rel=1e-9), cells
                page.get_by_role("cell", name="train_loss", exact=True).first.wait_for(timeout=30_000)
                page.get_by_text(shown_run).first.wait_for(timeout=30_000)
                page.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
            finally:
                browser.close()
    finally:
        stop(proc)
    shown_s = time.perf_counter() - started
    print(f"mlflow ui: campaign, {len(run_ids)} runs and a run's last loss shown {shown_s:.1f} s after its start")
