"""corpus speed over the whole bundled ABC corpus, measured side by side in one run.

1. SMT-ABC conversion: tunes/s of parse + to_smt over every tune of the
   music21 ABC collections (file reading included).
2. Tokenisation: tokens/s of the batched encoder (``encode_batch``, Rust
   threads) against a plain Python loop of single ``encode`` calls on the same
   texts, and their ratio.

Run: .venv/bin/python bench/corpus_speed.py [--vocab-size V]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus.sources import TuneRecord, convert_file, music21_files  # noqa: E402
from corpus.tokenizer import AbcTokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args()

    files = music21_files()
    started = time.perf_counter()
    results = [item for f in files for item in convert_file(f)]
    convert_s = time.perf_counter() - started
    texts = [r.smt for r in results if isinstance(r, TuneRecord)]
    print(f"SMT-ABC conversion: {len(results)} tunes from {len(files)} files in {convert_s:.2f} s = "
          f"{len(results) / convert_s:,.0f} tunes/s ({len(texts)} converted, {len(results) - len(texts)} skipped)")

    started = time.perf_counter()
    tok = AbcTokenizer.train(texts, args.vocab_size)
    print(f"BPE training (vocab {args.vocab_size}): {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    batched = tok.encode_batch(texts)
    batched_s = time.perf_counter() - started
    n_tokens = sum(len(ids) for ids in batched)
    started = time.perf_counter()
    single = [tok.encode(t) for t in texts]
    single_s = time.perf_counter() - started
    assert single == batched
    print(f"tokenisation, batched    : {n_tokens:,} tokens in {batched_s:.2f} s = {n_tokens / batched_s:,.0f} tokens/s")
    print(f"tokenisation, Python loop: {n_tokens:,} tokens in {single_s:.2f} s = {n_tokens / single_s:,.0f} tokens/s")
    print(f"batched / loop speed ratio: {single_s / batched_s:.2f}x")


if __name__ == "__main__":
    main()
