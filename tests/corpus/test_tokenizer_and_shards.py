"""The BPE tokenizer and the token shards with nested data fractions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from corpus.shards import BuildConfig, Manifest, build_corpus, load_tokens
from corpus.sources import TuneRecord, convert_file, music21_files, user_files
from corpus.tokenizer import END_OF_TUNE, GROUP, NEWLINE, AbcTokenizer

TUNES = [
    "X:{n}\nT:Reel {n}\nM:4/4\nL:1/8\nK:D\n|: A{n}B cd | e2 fe dB | \"G\"g2 fg ec :|\nw: la  la\n",
    "X:{n}\nT:Duet {n}\nM:3/4\nL:1/8\nV:1\nV:2 clef=bass\nK:G\nV:1\nG2 A2 B{n} | c6 |]\nV:2\nG,,6 | C,6 |]\n",
]


def write_abc_folder(folder: Path, n_tunes: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n\n".join(TUNES[i % 2].format(n=i + 1) for i in range(n_tunes))
    (folder / "tunes.abc").write_text(text)
    return folder


@pytest.fixture(scope="module")
def bundled_records() -> list[TuneRecord]:
    return [r for f in music21_files() for r in convert_file(f) if isinstance(r, TuneRecord)]


def test_tokenizer_is_lossless_on_every_bundled_tune(bundled_records):
    texts = [r.smt for r in bundled_records]
    assert len(texts) > 4000
    tok = AbcTokenizer.train(texts, 1024)
    ids = tok.encode_batch(texts)
    assert all(tok.decode(e) == t for e, t in zip(ids, texts))
    assert sum(map(len, ids)) < 0.75 * sum(map(len, texts))  # BPE merges characters


def test_special_tokens_are_atomic_and_there_is_no_dummy_prefix():
    tok = AbcTokenizer.train(["X:1\nK:C\n<|>abc|<|>\n"] * 20, 300)
    ids = tok.encode("<|>  abc|<|>\nde")
    assert ids.count(tok.token_id(GROUP)) == 2 and tok.token_id(NEWLINE) in ids
    assert tok.decode(ids) == "<|>  abc|<|>\nde"
    assert tok.decode(tok.encode("abc")) == "abc"  # no space added in front
    assert tok.decode(tok.encode(" x\t\ty  ")) == " x\t\ty  "


def test_build_writes_nested_fractions_and_a_disjoint_validation_set(tmp_path: Path):
    folder = write_abc_folder(tmp_path / "abc", 40)
    config = BuildConfig(vocab_size=300, fractions=(0.25, 0.5, 1.0), val_fraction=0.1, seed=3)
    manifest, rebuilt = build_corpus(user_files([folder]), tmp_path / "corpus", config)
    assert rebuilt
    out = tmp_path / "corpus"
    assert manifest.dtype == "uint16"
    counts = manifest.counts
    assert counts["tunes"] == 40 and counts["val_tunes"] == 4 and counts["train_tunes"] == 36
    assert counts["multi_voice_tunes"] == 20
    train = load_tokens(out, "train")
    val = load_tokens(out, "val")
    assert len(train) == counts["train_tokens"] and len(val) == counts["val_tokens"]
    tok = AbcTokenizer.load(out / "tokenizer.json")
    assert manifest.tokenizer_hash == tok.content_hash()
    eos = tok.token_id(END_OF_TUNE)
    # Fractions are prefixes of train.bin ending on a tune boundary: nested by construction.
    ends = [f.end_offset for f in manifest.fractions]
    assert ends == sorted(ends) and ends[-1] == len(train)
    assert [f.tunes for f in manifest.fractions] == [9, 18, 36]
    for f in manifest.fractions:
        assert f.tokens == f.end_offset and train[f.end_offset - 1] == eos
    decoded_train = set(tok.decode(list(train)).split(END_OF_TUNE)) - {""}
    decoded_val = set(tok.decode(list(val)).split(END_OF_TUNE)) - {""}
    assert len(decoded_train) == 36 and len(decoded_val) == 4
    assert not decoded_train & decoded_val  # a tune is never in both
    index = np.load(out / "train_index.npy")
    assert index[0] == 0 and len(index) == 36


def test_rebuilding_with_the_same_inputs_reuses_the_cache_and_a_change_rebuilds(tmp_path: Path):
    folder = write_abc_folder(tmp_path / "abc", 20)
    config = BuildConfig(vocab_size=300, fractions=(0.5, 1.0), val_fraction=0.1)
    build_corpus(user_files([folder]), tmp_path / "c", config)
    stamp = os.stat(tmp_path / "c" / "train.bin").st_mtime_ns
    _, rebuilt = build_corpus(user_files([folder]), tmp_path / "c", config)
    assert not rebuilt and os.stat(tmp_path / "c" / "train.bin").st_mtime_ns == stamp
    (folder / "more.abc").write_text(TUNES[0].format(n=999))
    manifest, rebuilt = build_corpus(user_files([folder]), tmp_path / "c", config)
    assert rebuilt and manifest.counts["tunes"] == 21
    _, rebuilt = build_corpus(user_files([folder]), tmp_path / "c", BuildConfig(vocab_size=320, fractions=(0.5, 1.0), val_fraction=0.1))
    assert rebuilt
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folders left


def test_the_same_seed_gives_the_same_split_and_another_seed_another(tmp_path: Path):
    folder = write_abc_folder(tmp_path / "abc", 30)
    a, _ = build_corpus(user_files([folder]), tmp_path / "a", BuildConfig(vocab_size=300, seed=1))
    b, _ = build_corpus(user_files([folder]), tmp_path / "b", BuildConfig(vocab_size=300, seed=1))
    c, _ = build_corpus(user_files([folder]), tmp_path / "c", BuildConfig(vocab_size=300, seed=2))
    read = lambda p: bytes(np.asarray(load_tokens(p, "val")))  # noqa: E731
    assert read(tmp_path / "a") == read(tmp_path / "b") != read(tmp_path / "c")
    assert a.fractions == b.fractions


def test_build_refuses_to_replace_a_folder_that_is_not_a_corpus(tmp_path: Path):
    folder = write_abc_folder(tmp_path / "abc", 10)
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a smslab corpus folder"):
        build_corpus(user_files([folder]), precious, BuildConfig(vocab_size=300))
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_manifest_names_sources_with_hashes_and_fraction_lookup(tmp_path: Path):
    folder = write_abc_folder(tmp_path / "abc", 10)
    build_corpus(user_files([folder]), tmp_path / "c", BuildConfig(vocab_size=300))
    manifest = Manifest.read(tmp_path / "c")
    assert manifest.sources[0]["file"].endswith("tunes.abc") and len(manifest.sources[0]["sha256"]) == 64
    assert manifest.fraction(0.25).tunes >= 1
    with pytest.raises(KeyError, match="no data fraction 0.5"):
        manifest.fraction(0.5)
    json.loads((tmp_path / "c" / "manifest.json").read_text())
