"""Shared test helpers: a small generated corpus.

The published reference data the tests use is bundled with lawfit (lawfit/data), so
the tests need nothing beside the checkout.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from corpus.shards import BuildConfig, build_corpus
from corpus.sources import user_files


def write_tunes(folder: Path, n: int, seed: int = 0) -> None:
    """Generated reels with real structure: repeated phrases, so a model can learn them."""
    rng = random.Random(seed)
    notes = "DEFGABcdefg"
    tunes = []
    for i in range(n):
        phrase = " ".join("".join(rng.choice(notes) for _ in range(4)) for _ in range(2))
        answer = " ".join("".join(rng.choice(notes) for _ in range(4)) for _ in range(2))
        key = rng.choice("DGA")
        bars = [phrase, answer, phrase, answer[:-1] + "d"]
        tunes.append(f"X:{i + 1}\nT:Reel {i + 1}\nM:4/4\nL:1/8\nK:{key}\n|: " + " | ".join(bars) + " :|\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reels.abc").write_text("\n".join(tunes))


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_tunes(root / "abc", 400)
    build_corpus(user_files([root / "abc"]), root / "corpus", BuildConfig(vocab_size=300, fractions=(0.25, 0.5, 1.0), val_fraction=0.05))
    return root / "corpus"
