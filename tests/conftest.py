"""Shared test helpers: a small generated corpus.

The published reference data the tests use is bundled with lawfit (lawfit/data), so
the tests need nothing beside the checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write_tunes

from corpus.shards import BuildConfig, build_corpus
from corpus.sources import user_files


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_tunes(root / "abc", 400)
    build_corpus(user_files([root / "abc"]), root / "corpus", BuildConfig(vocab_size=300, fractions=(0.25, 0.5, 1.0), val_fraction=0.05))
    return root / "corpus"
