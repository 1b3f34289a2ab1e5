"""Conversions and exports say what they did: bad inputs and outputs are refused before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TUNE = "X:1\nT:One\nM:4/4\nL:1/8\nK:D\n|: ABcd efga | g2 f2 e4 :|\n"


def smslab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no tunes found"),
        (b"\x00\x01\x02binary\xff" * 20, "not a UTF-8 text file"),
        (TUNE.encode("utf-16"), "not a UTF-8 text file"),
    ],
    ids=["empty", "binary", "utf-16"],
)
@pytest.mark.parametrize("direction", ["to-smt", "from-smt"])
def test_a_file_with_no_tunes_to_convert_exits_2_and_writes_nothing(tmp_path: Path, direction: str, content: bytes,
                                                                     message: str):
    source = tmp_path / "in.abc"
    source.write_bytes(content)
    proc = smslab("abc", direction, str(source), "--out", str(tmp_path / "out.abc"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.abc").exists() and proc.stdout == ""


def test_a_bad_out_is_refused_before_any_work(tmp_path: Path):
    source = tmp_path / "in.abc"
    source.write_text(TUNE)
    (tmp_path / "a-file").write_text("")
    for out, message in ((tmp_path, "is a folder"), (tmp_path / "a-file" / "x.abc", "is a file, not a folder")):
        proc = smslab("abc", "to-smt", str(source), "--out", str(out))
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
        assert ".tmp" not in proc.stderr  # no internal temporary name
    fit = smslab("fit", str(source), "--law", "chinchilla", "--out", str(tmp_path))
    assert fit.returncode == 2 and f"--out {tmp_path}: is a folder" in fit.stderr
    export = smslab("runs", "export", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "--out",
                    str(tmp_path / "a-file" / "p.csv"))
    assert export.returncode == 2 and "is a file, not a folder" in export.stderr
    assert not (tmp_path / "none.db").exists()


def test_from_smt_refuses_a_voice_its_header_does_not_declare_as_to_smt_would(tmp_path: Path):
    source = tmp_path / "in.smt"
    source.write_text("X:1\nT:Two\nM:4/4\nL:1/8\nV:1\nK:D\n<|>[V:1]ABcd efga|[V:2]ABcd efga|<|>\n")
    proc = smslab("abc", "from-smt", str(source))
    assert proc.returncode == 2 and "undeclared voice V:2 (the header declares V:1)" in proc.stderr
