"""storage read-back speed, measured side by side in one run.

Logs R runs × P points (default 1,000 × 1,000) into a fresh SQLite MLflow store
— one ``log_batch`` per run, the fastest public write path — then reads every
curve back two ways: the naive loop (``get_metric_history`` per run, as MLflow's
docs suggest) and smslab's read path (one SQL query over the store's tables).
Prints both times and the ratio (target >= 10x) and checks both give the same
table.

(The issue's second figure, submitit's launch overhead per job, comes with
``sweeps/``.)

Run: .venv/bin/python bench/storage_speed.py [--runs 1000] [--points 1000]
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tracker = Tracker(default_tracking_uri(folder))
        started = time.perf_counter()
        for r in range(args.runs):
            run = tracker.open_run(RunRecord(f"run{r:05d}", "bench", {"N": 1000 + r, "U_D": 10_000}))
            tracker.log_points(run, [{"D": (p + 1) * 100, "val_loss": 5.0 / (p + 1) + r * 1e-6} for p in range(args.points)])
        write_s = time.perf_counter() - started
        print(f"logged {args.runs} runs x {args.points} points in {write_s:.1f} s ({write_s / args.runs * 1000:.0f} ms per run)")

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


if __name__ == "__main__":
    main()
