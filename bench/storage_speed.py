"""storage read-back speed, measured side by side in one run.

Logs R runs × P points (default 1,000 × 1,000) into a fresh SQLite MLflow store
— one ``log_batch`` per run, the fastest public write path — then reads every
curve back two ways: the naive loop (``get_metric_history`` per run, as MLflow's
docs suggest) and smslab's read path (one SQL query over the store's tables).
Prints both times and the ratio (target >= 10x) and checks both give the same
table.

Then the launch overhead per job with submitit's local executor: the same
tiny training run (tiny-0.1m, one data fraction of a small corpus built from
the bundled tunes) trained in this process (imports already paid) and
launched through ``sweeps.launch`` one job at a time, side by side; the
difference is the per-job overhead, printed as a fraction of the launched
run's time, with the part that is submitit's alone (an empty job).

Run: .venv/bin/python bench/storage_speed.py [--runs 1000] [--points 1000] [--launch-jobs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.tracking import RunRecord, Tracker, default_tracking_uri  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--launch-jobs", type=int, default=3, help="tiny runs for the launch-overhead figure (0: skip)")
    args = parser.parse_args()
    if args.runs > 0:
        read_back(args.runs, args.points)
    if args.launch_jobs > 0:
        launch_overhead(args.launch_jobs)


def read_back(runs: int, points: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tracker = Tracker(default_tracking_uri(folder))
        started = time.perf_counter()
        for r in range(runs):
            run = tracker.open_run(RunRecord(f"run{r:05d}", "bench", {"N": 1000 + r, "U_D": 10_000}))
            tracker.log_points(run, [{"D": (p + 1) * 100, "loss": 5.0 / (p + 1) + r * 1e-6} for p in range(points)])
        write_s = time.perf_counter() - started
        print(f"logged {runs} runs x {points} points in {write_s:.1f} s ({write_s / runs * 1000:.0f} ms per run)")

        started = time.perf_counter()
        naive = tracker.read_points_api("bench")
        naive_s = time.perf_counter() - started
        started = time.perf_counter()
        fast = tracker.read_points("bench")
        fast_s = time.perf_counter() - started
        assert naive.equals(fast), "the two read paths disagree"
        print(f"read back, get_metric_history per run: {naive_s:8.2f} s")
        print(f"read back, smslab (one SQL query)    : {fast_s:8.2f} s   ({len(fast):,} points)")
        print(f"speed ratio: {naive_s / fast_s:.1f}x   (target >= 10x)")


def _noop() -> int:
    return 0


def launch_overhead(jobs: int) -> None:
    import dataclasses

    import submitit

    from corpus.shards import BuildConfig, build_corpus
    from corpus.sources import music21_files
    from sweeps.launch import launch
    from sweeps.settings import LauncherSettings
    from sweeps.spec import Campaign, Grid
    from trainer.run import train_run
    from trainer.spec import RunSpec

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        build_corpus(music21_files(), root / "corpus", BuildConfig(vocab_size=512, fractions=(0.0078125, 1.0), val_fraction=0.02))
        base = RunSpec(preset="tiny-0.1m", fraction=0.0078125, epochs=4, context=128, batch_tokens=2048, micro_batch=16,
                       eval_every_tokens=32768)
        train_run(dataclasses.replace(base, seed=999), root / "corpus", root / "warmup", show_progress=False)  # imports paid
        started = time.perf_counter()
        for seed in range(jobs):
            train_run(dataclasses.replace(base, seed=seed), root / "corpus", root / f"inproc{seed}", show_progress=False)
        inproc_s = (time.perf_counter() - started) / jobs

        specs = tuple(dataclasses.replace(base, seed=100 + seed) for seed in range(jobs))
        campaign = Campaign(name="overhead", source=root / "spec.toml", corpus=root / "corpus", folder=root / "campaign",
                            tracking_uri="", runs=specs, launcher=LauncherSettings(kind="local", timeout_min=30),
                            grid=Grid(presets=(base.preset,), fractions=(base.fraction,)))
        started = time.perf_counter()
        states = launch(campaign)
        launched_s = (time.perf_counter() - started) / jobs
        assert all(s.status == "finished" for s in states), states

        executor = submitit.AutoExecutor(folder=root / "noop" / "%j", cluster="local")
        executor.update_parameters(timeout_min=5)
        started = time.perf_counter()
        for _ in range(jobs):
            job = executor.submit(_noop)
            while not job.done():
                time.sleep(0.05)
        empty_s = (time.perf_counter() - started) / jobs
    overhead = launched_s - inproc_s
    print(f"tiny run (tiny-0.1m, 4 epochs of {states[0].steps} steps) in this process: {inproc_s:6.2f} s per run")
    print(f"the same run launched with the local executor (MLflow on): {launched_s:6.2f} s per run")
    print(f"launch overhead per job: {overhead:.2f} s = {overhead / launched_s:.0%} of the launched run's time "
          f"({overhead / inproc_s:.2f}x the run itself)")
    print(f"  of which submitit alone (an empty job, spawn + pickle + result): {empty_s:.2f} s; the rest is the job's "
          "Python start, imports (torch, lightning, mlflow) and its MLflow run")


if __name__ == "__main__":
    main()
