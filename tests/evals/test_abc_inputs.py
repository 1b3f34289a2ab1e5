"""Reading tunes to measure: odd files become tunes with reasons; sample files are cut per sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.abc_files import EvalInputError, has_body_repeat, read_tunes, tune_inputs, tunes_of_bytes


def test_empty_binary_and_non_utf8_files_become_tunes_with_reasons() -> None:
    assert tunes_of_bytes(b"", "e.abc")[0].problem == "empty file"
    assert tunes_of_bytes(b"  \n\n", "e.abc")[0].problem == "empty file"
    assert "binary" in str(tunes_of_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, "b.abc")[0].problem)
    latin1 = b"X:1\nT:Caf\xe9\nK:C\nabc|\n\nX:2\nT:Fine\nK:C\ndef|\n"
    first, second = tunes_of_bytes(latin1, "l.abc")
    assert first.problem == "not UTF-8 text (undecodable bytes)"
    assert second.problem is None and second.number == "2" and second.line == 6
    assert tunes_of_bytes(b"just words, no tune\n", "w.abc")[0].problem == "no tune (no X: line) in the file"


def test_sample_files_are_cut_at_their_sample_lines_even_without_x_lines() -> None:
    text = "% sample 0\nX:1\nT:a\nK:C\nabc|\n\n% sample 1\nno header at all |\n% sample 2\n\n"
    tunes = tunes_of_bytes(text.encode(), "samples.abc")
    assert [t.number for t in tunes] == ["sample 0", "sample 1", "sample 2"]
    assert [t.line for t in tunes] == [1, 7, 9]
    assert tunes[1].problem is None and tunes[1].text == "no header at all |"
    assert tunes[2].problem == "empty tune"


def test_smt_is_recognised_by_suffix_or_delimiter(tmp_path: Path) -> None:
    smt = "X:1\nT:t\nK:C\n<|>abc|<|>\n"
    (tmp_path / "a.smt").write_text("X:1\nT:t\nK:C\nabc|\n")
    (tmp_path / "b.abc").write_text(smt)
    (tmp_path / "notes.txt").write_text("ignored: not .abc/.smt")
    tunes = read_tunes([tmp_path])
    assert [(Path(t.source).name, t.smt) for t in tunes] == [("a.smt", True), ("b.abc", True)]
    assert [t.smt for t in tune_inputs(["X:1\nK:C\nabc|\n", smt])] == [False, True]


def test_missing_paths_and_empty_folders_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="nowhere.abc: no such file"):
        read_tunes([tmp_path / "nowhere.abc"])
    with pytest.raises(EvalInputError, match="no .abc or .smt file"):
        read_tunes([tmp_path])
    assert EvalInputError.exit_status == 2


def test_only_a_repeat_sign_in_the_body_counts() -> None:
    assert not has_body_repeat("X:1\nT:Reel :| of the header\nN:see :|\nK:G\nabc|def|]\n")
    assert has_body_repeat("X:1\nT:Reel\nK:G\n|:abc|def:|\n")
    assert not has_body_repeat("X:1\nT:no key :|\nabc:|\n")  # no K: line, so no body
    assert has_body_repeat("X:1\nK:G\n<|>abc:|<|>\n")  # SMT-ABC keeps the bar lines
