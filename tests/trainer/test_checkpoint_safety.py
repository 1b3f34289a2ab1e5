"""A checkpoint is data: resuming never runs code from it, and a bad one is named, not a traceback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.folder import RunFolder, write_atomic
from trainer.run import CheckpointError, train_run
from trainer.spec import RunSpec

SPEC = RunSpec(preset="tiny-0.1m", fraction=0.25, epochs=1, context=32, batch_tokens=512, micro_batch=8,
               eval_every_tokens=4096)


class Exploit:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def planted(out: Path, content: object | bytes) -> Path:
    checkpoint = RunFolder(out).checkpoint
    checkpoint.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        checkpoint.write_bytes(content)
    else:
        torch.save(content, checkpoint)
    return checkpoint


def test_resuming_from_a_malicious_checkpoint_runs_nothing_and_fails_the_run(small_corpus: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    checkpoint = planted(tmp_path / "run", {"global_step": 3, "payload": Exploit(marker)})
    with pytest.raises(CheckpointError) as info:
        train_run(SPEC, small_corpus, tmp_path / "run", show_progress=False)
    assert not marker.exists()  # the pickle's command never ran
    assert str(checkpoint) in str(info.value) and "delete it" in str(info.value)
    state = RunFolder(tmp_path / "run").read_state()
    assert state["status"] == "failed" and state["reason"] == "checkpoint"  # a launcher does not retry it


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None], ids=["empty", "garbage", "truncated"])
def test_a_corrupt_checkpoint_is_named_with_what_to_do(small_corpus: Path, tmp_path: Path, content: bytes | None):
    if content is None:  # a real checkpoint cut short, as a full disk leaves one
        whole = tmp_path / "whole.ckpt"
        torch.save({"global_step": 3, "state_dict": {"w": torch.zeros(1000)}}, whole)
        content = whole.read_bytes()[: whole.stat().st_size // 2]
    checkpoint = planted(tmp_path / "run", content)
    proc = subprocess.run([sys.executable, "-m", "smslab", "train", "--corpus", str(small_corpus), "--out",
                           str(tmp_path / "run"), "--spec", str(write_spec(tmp_path))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(checkpoint) in proc.stderr and "delete it" in proc.stderr and "Traceback" not in proc.stderr


def write_spec(folder: Path) -> Path:
    path = folder / "spec.json"
    path.write_text(json.dumps(SPEC.to_dict()))
    return path


def test_files_smslab_writes_follow_the_umask_so_a_group_can_read_them(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "state.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left beside it
