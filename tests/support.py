"""What several test folders share: generated tunes, Debian's Chromium, free local ports, waiting for a server."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling hosts this closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: /usr/bin/chromium is missing (did .ci/browser-up.sh run?)")
        pytest.skip("no Chromium here (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answering(url: str, proc: subprocess.Popen[bytes], timeout_s: float, what: str,
                         log: Callable[[], str], stop: Callable[[], None]) -> None:
    """Poll ``url`` until it answers 200; fail the test with the server's log if it dies or ``timeout_s`` passes."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop()
            pytest.fail(f"{what} did not come up: {log()[-3000:]}")
        time.sleep(0.3)


def write_tunes(folder: Path, n: int, seed: int = 0) -> None:
    """Generated reels with real structure: repeated phrases, so a model can learn them."""
    rng = random.Random(seed)
    notes = "DEFGABcdefg"
    tunes = []
    for i in range(n):
        phrase = " ".join("".join(rng.choice(notes) for _ in range(4)) for _ in range(2))
        answer = " ".join("".join(rng.choice(notes) for _ in range(4)) for _ in range(2))
        key = rng.choice("DGA")
        bars = [phrase, answer, phrase, answer[:-1] + "d"]
        tunes.append(f"X:{i + 1}\nT:Reel {i + 1}\nM:4/4\nL:1/8\nK:{key}\n|: " + " | ".join(bars) + " :|\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reels.abc").write_text("\n".join(tunes))
