"""The README's main job, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_compares_the_laws_and_recommends_a_plan_with_intervals(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "smslab", "quickstart", "--out", str(tmp_path / "qs"), "--bootstrap", "30"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    for law in ("chinchilla", "data_constrained", "dprime", "nd", "sms"):
        assert law in proc.stdout
        assert (tmp_path / "qs" / f"{law}.json").is_file()
    assert "Recommendation" in proc.stdout and "N*" in proc.stdout and "epochs*" in proc.stdout
    assert "95% bootstrap percentiles" in proc.stdout
    chosen = [p for p in (tmp_path / "qs").glob("*.json") if json.loads(p.read_text())["bootstrap"]]
    assert len(chosen) == 1


def test_help_lists_the_commands_without_importing_torch():
    code = "import sys; from smslab.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
    help_text = subprocess.run([sys.executable, "-m", "smslab", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("quickstart", "fit", "plan"):
        assert command in help_text
