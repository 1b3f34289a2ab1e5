"""Shared test helpers: where the project's reference data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
