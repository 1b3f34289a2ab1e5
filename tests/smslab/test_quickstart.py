"""The README's main job, end to end: a real small campaign to a recommendation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_quickstart_runs_a_campaign_and_recommends_a_plan_with_intervals(tmp_path: Path):
    out = tmp_path / "qs"
    proc = subprocess.run([sys.executable, "-m", "smslab", "quickstart", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for law in ("chinchilla", "data_constrained", "dprime", "nd", "sms"):
        assert law in proc.stdout
        assert (out / "campaign" / "rounds" / "round-00" / "fits" / f"{law}.json").is_file()
    assert "# Campaign quickstart" in proc.stdout and "stopped:" in proc.stdout
    assert "N*" in proc.stdout and "epochs*" in proc.stdout and "90% bootstrap percentiles" in proc.stdout
    assert "[18/18" in proc.stderr  # progress of the grid was shown
    states = [json.loads(p.read_text())["status"] for p in (out / "campaign" / "runs").glob("*/state.json")]
    assert len(states) >= 18 and set(states) == {"finished"}
    plan = json.loads((out / "campaign" / "rounds" / "round-00" / "plan.json").read_text())
    assert plan["interval"]["n_opt"][0] <= plan["n_opt"] <= plan["interval"]["n_opt"][1]
    assert (out / "campaign" / "report.md").read_text().startswith("# Campaign quickstart")


@pytest.mark.slow
def test_fit_published_compares_the_laws_on_datablations_and_recommends_a_plan(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "smslab", "fit-published", "--out", str(tmp_path / "pub"), "--bootstrap", "30"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("chinchilla", "data_constrained.staged", "data_constrained.joint", "dprime", "nd", "sms.staged",
                 "sms.joint"):
        assert (tmp_path / "pub" / f"{name}.json").is_file()
    assert "staged" in proc.stdout and "joint" in proc.stdout
    assert "Recommendation" in proc.stdout and "N*" in proc.stdout and "epochs*" in proc.stdout
    assert "95% bootstrap percentiles" in proc.stdout
    chosen = [p for p in (tmp_path / "pub").glob("*.json") if json.loads(p.read_text())["bootstrap"]]
    assert len(chosen) == 1


def test_help_lists_the_commands_without_importing_torch():
    code = "import sys; from smslab.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
    help_text = subprocess.run([sys.executable, "-m", "smslab", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("quickstart", "fit-published", "fit", "plan", "sweep", "campaign"):
        assert command in help_text
