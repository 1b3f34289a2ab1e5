"""``smslab eval abc`` as a user runs it: a subprocess, real tools, JSON and table output, exit statuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TUNES = (
    "X:1\nT:Reel\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB:|\n\n"
    "X:2\nT:Air\nM:3/4\nL:1/4\nK:D\nDEF|GAB|AFD|D3|]\n"
)


def smslab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], check=False, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.mark.slow
def test_eval_abc_json_and_table(tmp_path: Path) -> None:
    if shutil.which("abc2midi") is None or shutil.which("abcm2ps") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the eval CLI tests: abc2midi/abcm2ps missing (did .ci/abc-tools-up.sh run?)")
        pytest.skip("Debian's abcmidi and abcm2ps are not installed (make abctools)")
    file = tmp_path / "two.abc"
    file.write_text(TUNES)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "r.abc").write_text(TUNES)
    done = smslab("eval", "abc", str(file), "--json", "--workers", "1", "--reference", str(tmp_path / "real"))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    v1 = data["measures"]["validity_v1"]
    assert v1["value"] == 100 and v1["n"] == 2 and len(v1["interval"]) == 2 and v1["unavailable"] is None
    assert data["measures"]["repetition_rate"]["value"] == 50
    assert data["measures"]["pitch_range"]["reference_value"] == data["measures"]["pitch_range"]["value"]
    assert data["reference_tunes"] == 2
    assert [t["number"] for t in data["tunes"]] == ["1", "2"]

    table = smslab("eval", "abc", str(file), "--workers", "1")
    assert table.returncode == 0, table.stderr
    assert "V1 abc2midi writes MIDI" in table.stdout and "100.0 %" in table.stdout
    assert "--reference" in table.stdout  # the advice to compare tiers with real tunes


@pytest.mark.slow
def test_a_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-samples.abc"
    done = smslab("eval", "abc", str(missing))
    assert done.returncode == 2
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_tools_missing_from_path_are_unavailable_not_failures(tmp_path: Path) -> None:
    file = tmp_path / "two.abc"
    file.write_text(TUNES)
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}  # a real PATH without abc2midi and abcm2ps
    done = smslab("eval", "abc", str(file), "--json", "--workers", "1", env=env)
    assert done.returncode == 0, done.stderr
    measures = json.loads(done.stdout)["measures"]
    assert measures["validity_v1"]["unavailable"] == "abc2midi not found: install Debian's abcmidi"
    assert measures["validity_v4"]["unavailable"] == "abcm2ps not found: install Debian's abcm2ps"
    assert measures["validity_v0"]["value"] == 100
    table = smslab("eval", "abc", str(file), "--workers", "1", env=env)
    assert table.returncode == 0 and "abc2midi not found: install Debian's abcmidi" in table.stdout


def test_help_of_eval_and_eval_abc() -> None:
    for args in (("eval", "--help"), ("eval", "abc", "--help")):
        done = smslab(*args)
        assert done.returncode == 0, done.stderr
        assert "95 %" in done.stdout and "%%" not in done.stdout
