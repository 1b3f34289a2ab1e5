"""A corpus is checked against its manifest before it is trusted, and a damaged one is rebuilt, not reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpus.shards import BuildConfig, build_corpus, verify_corpus
from corpus.sources import CorpusInputError, user_files
from trainer.spec import CorpusInfo, RunError

CONFIG = BuildConfig(vocab_size=300, fractions=(0.5, 1.0), val_fraction=0.1)


@pytest.fixture()
def corpus(small_corpus: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "corpus"
    shutil.copytree(small_corpus, copy)
    return copy


def truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.mark.parametrize("name", ["val.bin", "train.bin"])
def test_a_truncated_shard_is_refused_naming_it(corpus: Path, name: str):
    truncate(corpus / name, (corpus / name).stat().st_size // 2)
    with pytest.raises(CorpusInputError, match=rf"{name}: .* bytes, but the manifest says"):
        verify_corpus(corpus)
    with pytest.raises(RunError, match=name):  # and so no run trains on it
        CorpusInfo.read(corpus)


def test_a_shard_changed_in_place_is_refused_by_its_fingerprint(corpus: Path):
    data = bytearray((corpus / "val.bin").read_bytes())
    data[:4] = bytes(4 - i for i in range(4))  # same size, different tokens
    (corpus / "val.bin").write_bytes(bytes(data))
    with pytest.raises(CorpusInputError, match="val.bin: changed since the corpus was built"):
        verify_corpus(corpus)


@pytest.mark.parametrize("text", ["", "{not json", '{"format": "smslab.corpus/1"}'], ids=["empty", "garbage", "partial"])
def test_a_broken_manifest_is_named_not_a_traceback(corpus: Path, text: str):
    (corpus / "manifest.json").write_text(text)
    with pytest.raises(CorpusInputError, match="manifest.json: not a whole corpus manifest"):
        verify_corpus(corpus)


def test_building_again_rebuilds_a_damaged_folder_instead_of_reusing_it(tmp_path: Path):
    from support import write_tunes

    write_tunes(tmp_path / "abc", 60)
    sources = user_files([tmp_path / "abc"])
    manifest, built = build_corpus(sources, tmp_path / "c", CONFIG)
    assert built and verify_corpus(tmp_path / "c").files == manifest.files
    assert build_corpus(sources, tmp_path / "c", CONFIG)[1] is False  # whole: reused
    truncate(tmp_path / "c" / "val.bin", 10)
    again, rebuilt = build_corpus(sources, tmp_path / "c", CONFIG)
    assert rebuilt and verify_corpus(tmp_path / "c").counts == manifest.counts


def test_an_absurdly_long_tune_is_skipped_with_a_counted_reason_and_the_build_goes_on(tmp_path: Path):
    from support import write_tunes

    write_tunes(tmp_path / "abc", 40)
    (tmp_path / "abc" / "long.abc").write_text("X:999\nT:Runaway\nM:4/4\nL:1/8\nK:D\n" + "ABcd efga | " * 60_000 + "\n")
    # A 700 kB tune stalled the BPE trainer for minutes: it never reaches the tokenizer.
    manifest, _ = build_corpus(user_files([tmp_path / "abc"]), tmp_path / "c", CONFIG)
    assert manifest.counts["skipped_by_reason"] == {"too long": 1}
    assert manifest.counts["tunes"] == 40
