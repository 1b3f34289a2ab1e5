"""Shared test helpers: where the project's reference data lives, and a small generated corpus."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from corpus.shards import BuildConfig, build_corpus
from corpus.sources import user_files

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The reference data of ../shared/data (CI runs with shared/ beside the checkout).

    SMSLAB_SHARED_DATA overrides; otherwise the first ``shared/data`` found
    walking up from the repository.
    """
    override = os.environ.get("SMSLAB_SHARED_DATA")
    if override:
        return Path(override)
    for parent in [REPO, *REPO.parents]:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no shared/data beside {REPO} or above it; set SMSLAB_SHARED_DATA to the folder of the reference data"
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


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
