"""Which code trained a run: the package version, and the git commit when run from a checkout.

Recorded with every run (``spec.json`` and the MLflow params) so that a curve
can be traced to the code that made it; a checkout with uncommitted changes
says so (``+dirty``), since its commit alone does not name that code.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]


@functools.cache
def code_version() -> str:
    """``<version>`` or ``<version>+g<commit>[.dirty]`` (PEP 440 local version style)."""
    try:
        version = metadata.version("smslab")
    except metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return version  # an installed wheel, or no git on this machine
    return f"{version}+g{commit}" + (".dirty" if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10,
                          check=True).stdout.strip()
