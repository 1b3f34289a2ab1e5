"""``smslab sample``: a trained tiny run sampled end to end, first-bar prompts, and bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import write_tunes

from corpus.tokenizer import END_OF_TUNE, GROUP, NEWLINE, AbcTokenizer

TRAIN = ["--preset", "tiny-0.1m", "--context", "128", "--batch-tokens", "1024", "--micro-batch", "8", "--lr", "3e-3",
         "--final-lr", "3e-4", "--precision", "32", "--fraction", "1", "--epochs", "1", "--eval-every", "100000"]


def smslab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          check=False)


@pytest.fixture(scope="module")
def run(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sampling") / "run"
    proc = smslab("train", "--corpus", str(small_corpus), "--out", str(out), *TRAIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def rows(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sampling_a_run_writes_smt_abc_and_one_jsonl_line_per_sample(run: Path, tmp_path: Path):
    proc = smslab("sample", "--run", str(run), "--n", "4", "--max-new-tokens", "64", "--out", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 samples" in proc.stdout
    records = rows(tmp_path / "s")
    assert [r["index"] for r in records] == [0, 1, 2, 3] and [r["seed"] for r in records] == [0, 1, 2, 3]
    for r in records:
        assert r["prompt"] == "none" and r["prompt_id"] == "none" and r["prompt_tokens"] == 1
        assert r["stop"] in ("eos", "max_tokens") and 0 <= r["tokens"] <= 64  # type: ignore[operator]
        assert r["tokens"] == 64 or r["stop"] == "eos"
        assert r["converted"] == (r["error"] is None)
    smt = (tmp_path / "s" / "samples.smt").read_text()
    abc = (tmp_path / "s" / "samples.abc").read_text()
    assert [f"% sample {i}" in smt for i in range(4)] == [True] * 4
    assert abc.count("% sample ") == sum(1 for r in records if r["converted"])


@pytest.mark.slow
def test_first_bar_samples_continue_a_held_out_tune_reproducibly_with_or_without_the_cache(
        run: Path, small_corpus: Path, tmp_path: Path):
    common = ["sample", "--run", str(run), "--n", "3", "--prompt", "first-bar", "--max-new-tokens", "40"]
    seeded = ["--temperature", "0.9", "--top-p", "0.95", "--seed", "5"]
    a = smslab(*common, *seeded, "--out", str(tmp_path / "a"), "--json")
    b = smslab(*common, *seeded, "--batch-size", "1", "--out", str(tmp_path / "b"))
    greedy = smslab(*common, "--temperature", "0", "--out", str(tmp_path / "g"))
    recomputed = smslab(*common, "--temperature", "0", "--no-kv-cache", "--out", str(tmp_path / "r"))
    for proc in (a, b, greedy, recomputed):
        assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(a.stdout)
    assert summary["samples"] == 3 and summary["settings"]["prompt"] == "first-bar"
    for name in ("samples.smt", "samples.abc", "samples.jsonl"):
        # The same seed gives the same samples, whatever the batch; the cache changes no greedy token.
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
        assert (tmp_path / "g" / name).read_text() == (tmp_path / "r" / name).read_text()
    tokenizer = AbcTokenizer.load(small_corpus / "tokenizer.json")
    smt = (tmp_path / "a" / "samples.smt").read_text()
    for r in rows(tmp_path / "a"):
        assert r["seed"] == 5 + r["index"]  # type: ignore[operator]
        j = int(str(r["prompt_id"]).removeprefix("val:"))
        tune = held_out_tune(small_corpus, j)
        prompt = tune[: tune.index(tokenizer.token_id(GROUP), tune.index(tokenizer.token_id(GROUP)) + 1) + 2]
        assert prompt[-1] == tokenizer.token_id(NEWLINE) and r["prompt_tokens"] == len(prompt) + 1
        assert f"% sample {r['index']}\n{tokenizer.decode(prompt)}" in smt  # the sample begins with its prompt


def held_out_tune(corpus: Path, j: int) -> list[int]:
    starts = np.load(corpus / "val_index.npy")
    tokens = np.fromfile(corpus / "val.bin", dtype=json.loads((corpus / "manifest.json").read_text())["dtype"])
    return tokens[starts[j] : starts[j + 1] if j + 1 < len(starts) else len(tokens)].tolist()


@pytest.mark.slow
def test_a_checkpoint_of_another_vocabulary_is_refused(run: Path, tmp_path: Path):
    from corpus.shards import BuildConfig, build_corpus
    from corpus.sources import user_files

    write_tunes(tmp_path / "abc", 60, seed=3)
    build_corpus(user_files([tmp_path / "abc"]), tmp_path / "other", BuildConfig(vocab_size=270, fractions=(1.0,)))
    proc = smslab("sample", "--run", str(run), "--corpus", str(tmp_path / "other"), "--out", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "vocabulary" in proc.stderr and "last.ckpt" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("source", ["--checkpoint", "--run"])
def test_a_missing_checkpoint_or_run_is_named_with_exit_2(tmp_path: Path, source: str):
    missing = tmp_path / "nowhere" / "last.ckpt"
    proc = smslab("sample", source, str(missing), "--out", str(tmp_path / "s"), cwd=tmp_path)
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "Traceback" not in proc.stderr


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    proc = smslab("sample", "--checkpoint", str(bad), "--corpus", str(tmp_path), "--out", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "bad.ckpt: not a checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_first_bar_prompts_are_the_header_and_first_group_of_validation_tunes(small_corpus: Path):
    from evals.sampling import make_prompts

    tokenizer = AbcTokenizer.load(small_corpus / "tokenizer.json")
    eos, group = tokenizer.token_id(END_OF_TUNE), tokenizer.token_id(GROUP)
    assert [p.tokens for p in make_prompts("none", 2, small_corpus, tokenizer, 64)] == [(eos,), (eos,)]
    n_val = len(np.load(small_corpus / "val_index.npy"))
    prompts = make_prompts("first-bar", n_val + 2, small_corpus, tokenizer, 256)
    assert prompts[n_val] == prompts[0]  # more samples than held-out tunes: they cycle
    for p in prompts[:n_val]:
        tune = held_out_tune(small_corpus, int(p.prompt_id.removeprefix("val:")))
        assert p.tokens[0] == eos and list(p.tokens[1:]) == tune[: len(p.tokens) - 1]
        assert p.tokens.count(group) == 2
        text = tokenizer.decode(p.tokens[1:])
        assert text.startswith("X:") and "\nK:" in text and text.endswith("<|>\n")
