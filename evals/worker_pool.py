"""Measuring many tunes in parallel: worker processes (``python -m evals.one_tune``), one thread driving each.

Why plain subprocesses rather than a multiprocessing pool: a forked pool is unsafe in a caller that holds
torch or MLflow threads, a spawned one re-runs the caller's main script (a campaign script without an
``if __name__ == "__main__"`` guard breaks it), and neither can stop one stuck tune. Here each worker is a
fresh interpreter that imports only evals; a thread sends it one tune at a time and waits for the reply with
a deadline. A worker that passes the deadline or dies is killed, its tune gets the reason, and a fresh worker
takes the next tune, so one bad tune never ends the run.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from evals.abc_files import TuneInput
from evals.one_tune import TuneReport, failed_report, report_from_dict, request
from evals.validity import Tools

# Beyond its per-stage limits (music21, abc2midi, muspy, abcm2ps), a worker may need a few seconds for its
# first imports (music21, muspy); past this margin it is stuck.
STARTUP_MARGIN_S = 60.0
STAGES = 4


def measure_in_workers(tunes: Sequence[TuneInput], tools: Tools, time_limit_s: float, workers: int) -> list[TuneReport]:
    """A report per tune, in order, from ``workers`` processes (at most one per tune)."""
    if not tunes:
        return []
    results: list[TuneReport | None] = [None] * len(tunes)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(tunes)):
        todo.put(index)
    deadline = STAGES * time_limit_s + STARTUP_MARGIN_S
    drivers = [_Driver(tunes, tools, time_limit_s, deadline, todo, results) for _ in range(min(workers, len(tunes)))]
    threads = [threading.Thread(target=d.run, daemon=True) for d in drivers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for driver in drivers:  # also on Ctrl-C: no worker outlives the call
            driver.worker.stop()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} tunes were not measured (a driver thread failed)")
    return [r for r in results if r is not None]


class _Worker:
    """One ``python -m evals.one_tune`` process, started on first use and again after it is killed."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def ask(self, line: str, deadline_s: float) -> tuple[str | None, str]:
        """Send one request; the reply line, or None and why there is none."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            process.kill()

        timer = threading.Timer(deadline_s, kill)
        timer.start()
        try:
            process.stdin.write(line.encode("utf-8"))
            process.stdin.flush()
            reply = process.stdout.readline().decode("utf-8")
        except OSError:
            reply = ""
        finally:
            timer.cancel()
        if reply.strip():
            return reply, ""
        try:  # a worker that died on its own has its exit status within moments; a stuck one is killed
            code = process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        why = (f"the measuring process did not answer within {deadline_s:g} s and was killed" if killed.is_set()
               else f"the measuring process died (exit status {code}){self._log_tail()}")
        self.stop()
        return None, why

    def _start(self) -> None:
        self.stop()
        self.log = tempfile.TemporaryFile(prefix="smslab-eval-worker-")  # noqa: SIM115  closed in stop()
        root = str(Path(__file__).resolve().parents[1])  # where evals and corpus are, installed or not
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen([sys.executable, "-m", "evals.one_tune"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=root)

    def _log_tail(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - 400))
        tail = self.log.read().decode("utf-8", errors="replace").strip()
        return f": {tail.splitlines()[-1]}" if tail else ""

    def stop(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


class _Driver:
    """A thread's loop: take the next tune, have the worker measure it, store the report."""

    def __init__(self, tunes: Sequence[TuneInput], tools: Tools, time_limit_s: float, deadline_s: float,
                 todo: queue.SimpleQueue[int], results: list[TuneReport | None]) -> None:
        self.tunes, self.tools, self.time_limit_s, self.deadline_s = tunes, tools, time_limit_s, deadline_s
        self.todo, self.results = todo, results
        self.worker = _Worker()

    def run(self) -> None:
        while True:
            try:
                index = self.todo.get_nowait()
            except queue.Empty:
                return
            tune = self.tunes[index]
            reply, why = self.worker.ask(request(tune, self.tools, self.time_limit_s), self.deadline_s)
            self.results[index] = (report_from_dict(_json(reply)) if reply is not None
                                   else failed_report(tune, self.tools, why))


def _json(line: str) -> dict[str, object]:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError(f"a worker answered {line[:80]!r}")
    return data
