"""`smslab dash` and `smslab report` refuse bad input with exit status 2, a message naming it, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def smslab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=300, check=False)


def test_bad_report_and_dash_arguments_exit_2_naming_the_input(synthetic_store, tmp_path: Path):
    uri, campaign = synthetic_store
    missing = tmp_path / "typo" / "mlflow.db"
    cases = [
        (("report", "--tracking-uri", uri, "--campaign", "nope", "--out", str(tmp_path / "r.html")),
         "no campaign 'nope'"),
        (("report", "--tracking-uri", uri, "--campaign", campaign, "--out", str(tmp_path)), f"--out {tmp_path}"),
        (("report", "--tracking-uri", f"sqlite:///{missing}", "--campaign", campaign, "--out", str(tmp_path / "r.html")),
         f"no tracking store at {missing}"),
        (("dash", "--tracking-uri", f"sqlite:///{missing}"), f"no tracking store at {missing}"),
        (("dash", "--tracking-uri", uri, "--campaign", "nope"), "--campaign: no campaign 'nope'"),
        (("dash", "--tracking-uri", uri, "--refresh-s", "0"), "--refresh-s must be a positive number"),
        (("dash", "--tracking-uri", uri, "--laws", "chinchilla,gpt"), "--laws: unknown law 'gpt'"),
        (("dash", "--tracking-uri", uri, "--port", "99999"), "--port must be a TCP port (1-65535), got 99999"),
    ]
    for args, message in cases:
        proc = smslab(*args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
    assert not missing.parent.exists()  # a mistyped store is not created
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_report_replaces_a_file_whole(synthetic_store, tmp_path: Path):
    uri, campaign = synthetic_store
    out = tmp_path / "report.html"
    out.write_text("an older report")
    proc = smslab("report", "--tracking-uri", uri, "--campaign", campaign, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind
