"""What a launch or a campaign tells its user as it goes: one line per event, on stderr by default."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from sweeps.runs import RunState
from trainer.spec import RunSpec

Say = Callable[[str], None]
# (a run's state, what happened: submitted, skipped, already queued, already running, done)
Progress = Callable[[RunState, str], None]


def say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(spec: RunSpec) -> str:
    budget = f"{spec.epochs:g} ep" if spec.epochs is not None else f"{spec.tokens:,} tok"
    return f"{spec.preset:<10} f={spec.fraction:<7g} {budget:<12} seed {spec.seed}"


def progress_printer(total: int, say: Say = say_on_stderr) -> Progress:
    """A ``Progress`` that counts runs done out of ``total`` and says each event with the time since it began."""
    started = time.perf_counter()
    done = 0

    def show(state: RunState, event: str) -> None:
        nonlocal done
        if event in ("done", "skipped"):
            done += 1
        extra = ""
        if state.status == "finished" and state.final_loss is not None:
            extra = f" val loss {state.final_loss:.4f}"
        elif state.status == "failed":
            extra = f" ({state.error or 'see state.json'})"[:200]
        say(f"[{done}/{total} {time.perf_counter() - started:6.0f} s] {state.run_id} {describe(state.spec)} "
            f"{event}: {state.status}{extra}")

    return show
