"""``smslab abc`` and ``smslab corpus build`` as a user runs them, bad input included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.abc import parse_tune
from corpus.smt import to_smt

GOOD = 'X:1\nT:Good\nM:2/4\nL:1/8\nV:1\nV:2\nK:C\nV:1\nab cd|ef g2|]\nV:2\nAB CD|EF G2|]\n'
MALFORMED = {
    "quote": 'X:2\nK:C\n"Am ab|cd|\n',
    "voice": "X:3\nV:1\nK:C\nV:7\nab|\n",
    "counts": "X:4\nV:1\nV:2\nK:C\nV:1\nab|cd|\nV:2\nAB|\n",
}


def smslab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=900)


def test_to_smt_converts_good_tunes_and_reports_each_skipped_one(tmp_path: Path):
    path = tmp_path / "mixed.abc"
    path.write_text(GOOD + "\n" + "\n".join(MALFORMED.values()))
    proc = smslab("abc", "to-smt", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("<|>") == 4 and proc.stdout.startswith("X:1\nT:Good")
    assert f"{path}: tune X:2: skipped: unbalanced quote" in proc.stderr
    assert f"{path}: tune X:3: skipped: undeclared voice V:7" in proc.stderr
    assert f"{path}: tune X:4: skipped: voices have different bar counts" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_binary_junk_wrong_encoding_and_empty_files_never_stop_the_rest(tmp_path: Path):
    junk = tmp_path / "junk.abc"
    junk.write_bytes(b"X:1\nK:C\nab\x00\x01|\n\nX:2\nK:C\n" + "é".encode("latin-1") + b"ab|\n\n" + GOOD.replace("X:1", "X:3").encode())
    empty = tmp_path / "empty.abc"
    empty.write_bytes(b"")
    proc = smslab("abc", "to-smt", str(junk), str(empty))
    assert proc.returncode == 0, proc.stderr
    assert "tune X:1: skipped: binary junk" in proc.stderr
    assert "tune X:2: skipped: binary junk" in proc.stderr  # not UTF-8: undecodable bytes
    assert f"{empty}: no tunes found" in proc.stderr
    assert proc.stdout.startswith("X:3")


def test_a_missing_file_is_an_error_with_status_2(tmp_path: Path):
    proc = smslab("abc", "to-smt", str(tmp_path / "nope.abc"))
    assert proc.returncode == 2 and "nope.abc: no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_from_smt_writes_playable_multi_voice_abc_to_out(tmp_path: Path):
    source = tmp_path / "good.abc"
    source.write_text(GOOD)
    smt = tmp_path / "good.smt"
    assert smslab("abc", "to-smt", str(source), "--out", str(smt)).returncode == 0
    out = tmp_path / "back.abc"
    proc = smslab("abc", "from-smt", str(smt), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    back = parse_tune(out.read_text())
    assert [[b.text for b in v.bars] for v in back.voices] == [["ab cd|", "ef g2|]"], ["AB CD|", "EF G2|]"]]
    assert to_smt(back) == smt.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_corpus_build_cli_prints_a_summary_and_reuses_its_cache(tmp_path: Path):
    folder = tmp_path / "abc"
    folder.mkdir()
    (folder / "a.abc").write_text("\n\n".join(GOOD.replace("X:1", f"X:{i}").replace("ab cd", f"ab c{'d' * (i % 5 + 1)}") + f"w: {i}" for i in range(1, 13)))
    (folder / "bad.abc").write_text(MALFORMED["quote"])
    args = ("corpus", "build", "--no-music21", "--bach", "0", "--abc", str(folder), "--vocab-size", "300",
            "--fractions", "0.25,1", "--out", str(tmp_path / "out"))
    proc = smslab(*args)
    assert proc.returncode == 0, proc.stderr
    assert "built" in proc.stdout and "fraction 0.25" in proc.stdout and "unbalanced quote" in proc.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["skipped_by_reason"] == {"unbalanced quote": 1}
    again = smslab(*args)
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--abc", "/no/such/folder"), "/no/such/folder: no such file or folder"),
        (("--fractions", "0.5,2"), "--fractions: every fraction must lie in (0, 1]"),
        (("--fractions", "half"), "is not a comma-separated list"),
        (("--vocab-size", "10"), "--vocab-size must be at least 260"),
        (("--no-music21", "--bach", "0"), "no inputs"),
    ],
)
def test_corpus_build_rejects_bad_input_before_writing(tmp_path: Path, extra, message):
    proc = smslab("corpus", "build", "--bach", "0", *extra, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
