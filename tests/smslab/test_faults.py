"""Fault injection: the guarantees a probe of kills, damaged files and full disks found, kept true.

- every kind of file smslab reads, truncated or corrupted, is refused with exit 2 naming it (no traceback);
- a full disk under the tracking store is one line, and the run resumes once space is freed;
- kill -9 of ``campaign run`` in each phase, then a rerun: run folders, MLflow runs and Optuna trials agree
  one to one, and nothing finished is trained again.

An unreachable tracking server is in ``tests/storage/test_server.py``; a malicious checkpoint in
``tests/trainer/test_checkpoint_safety.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

TRAIN = ["--preset", "tiny-0.1m", "--fraction", "1", "--epochs", "1", "--context", "32", "--batch-tokens", "512",
         "--micro-batch", "8", "--eval-every", "2048"]


def smslab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def damaged_points_csv(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    path = tmp / "points.csv"
    path.write_text("run_id,N,D,U_D,loss\na,1e6,1e9,1e9,3.1\nb,3e6,1e9,1e9,2.9\nc,1e7,1e9,1e")
    return ["fit", str(path), "--law", "chinchilla"], path


def damaged_points_parquet(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    import pandas as pd

    path = tmp / "points.parquet"
    pd.DataFrame({"run_id": ["a", "b"], "N": [1e6, 3e6], "D": [1e9, 1e9], "loss": [3.1, 2.9]}).to_parquet(path)
    return ["fit", str(cut(path)), "--law", "chinchilla"], path


def damaged_fit_json(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    from lawfit.presets import preset_fit

    path = tmp / "fit.json"
    preset_fit("hoffmann").write(path)
    return ["plan", "--fit", str(cut(path)), "--flops", "1e20"], path


def damaged_manifest(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    copy = tmp / "corpus"
    shutil.copytree(corpus, copy)
    return ["train", "--corpus", str(copy), "--out", str(tmp / "run"), *TRAIN], cut(copy / "manifest.json")


def damaged_shard(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    copy = tmp / "corpus"
    shutil.copytree(corpus, copy)
    return ["train", "--corpus", str(copy), "--out", str(tmp / "run"), *TRAIN], cut(copy / "val.bin")


def damaged_checkpoint(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    import torch

    checkpoint = tmp / "run" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"global_step": 2, "state_dict": {"w": torch.zeros(4096)}}, checkpoint)
    return ["train", "--corpus", str(corpus), "--out", str(tmp / "run"), *TRAIN], cut(checkpoint)


def damaged_campaign_spec(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    path = tmp / "grid.toml"
    path.write_text(f'[campaign]\nname = "x"\ncorpus = "{corpus}"\n\n[grid]\npresets = ["tiny-0.1m"]\n'
                    'fractions = [1]\nepochs = [1')
    return ["sweep", "launch", str(path)], path


def damaged_run_spec(tmp: Path, corpus: Path) -> tuple[list[str], Path]:
    path = tmp / "spec.json"
    path.write_text('{"preset": "tiny-0.1m", "fraction": 1, "epo')
    return ["train", "--corpus", str(corpus), "--out", str(tmp / "run"), "--spec", str(path)], path


DAMAGED: dict[str, Callable[[Path, Path], tuple[list[str], Path]]] = {
    "points csv": damaged_points_csv, "points parquet": damaged_points_parquet, "fit json": damaged_fit_json,
    "manifest": damaged_manifest, "shard": damaged_shard, "checkpoint": damaged_checkpoint,
    "campaign spec": damaged_campaign_spec, "run spec": damaged_run_spec,
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(DAMAGED))
def test_every_kind_of_input_truncated_is_refused_naming_the_file(kind: str, small_corpus: Path, tmp_path: Path):
    args, damaged = DAMAGED[kind](tmp_path, small_corpus)
    proc = smslab(*args, cwd=tmp_path)
    assert proc.returncode == 2, (kind, proc.stderr[-2000:])
    assert str(damaged) in proc.stderr and "Traceback" not in proc.stderr, (kind, proc.stderr[-2000:])
    assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr  # a message, not a page of library logs


def require_root() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must run the full-disk test (it mounts a small tmpfs)")
        pytest.skip("mounting a small filesystem needs root")


@pytest.mark.slow
def test_a_full_disk_under_the_store_is_one_line_and_the_run_finishes_once_space_is_freed(small_corpus: Path,
                                                                                         tmp_path: Path):
    require_root()
    store = tmp_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(store)], check=True)
    try:
        uri = f"sqlite:///{store / 'mlflow.db'}"
        from storage.tracking import Tracker

        Tracker(uri).experiment_id("full")  # the store exists; then its disk fills up
        filler = store / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k", "count=200"], capture_output=True)
        args = ["train", "--corpus", str(small_corpus), "--out", str(tmp_path / "run"), *TRAIN,
                "--tracking-uri", uri, "--campaign", "full"]
        full = smslab(*args)
        assert full.returncode == 1 and "Traceback" not in full.stderr
        lines = [line for line in full.stderr.strip().splitlines() if " INFO " not in line]
        assert lines == [lines[0]] and "the disk under the tracking store is full" in lines[0]
        assert not list((tmp_path / "run").rglob("*.tmp"))  # nothing half-written left behind
        filler.unlink()
        again = smslab(*args)
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "finished"
        assert Tracker(uri).run_statuses("full") == {json.loads((tmp_path / "run" / "spec.json").read_text())["run_id"]:
                                                     "finished"}
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


CAMPAIGN = """
[campaign]
name = "faults"
corpus = "{corpus}"
folder = "campaign"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m"]
fractions = [0.25, 0.5]
epochs = [1, 2]

[train]
context = 32
batch_tokens = 512
micro_batch = 16
eval_every_tokens = 4096

[launcher]
kind = "debug"

[plan]
target_flops = 2e10
tolerance = 1.0001
budget_flops = 1e13
max_rounds = 1
runs_per_round = 2
bootstrap = 10
laws = ["chinchilla"]
"""


def kill_when(spec: Path, ready: Callable[[], bool], timeout_s: float = 600) -> None:
    """Start ``campaign run`` and kill -9 it (its in-process jobs with it) the moment ``ready`` holds."""
    proc = subprocess.Popen([sys.executable, "-m", "smslab", "campaign", "run", str(spec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while not ready():
        assert proc.poll() is None, "the campaign ended before the phase it was to be killed in"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_9_of_a_campaign_in_each_phase_then_a_rerun_keeps_runs_folders_and_trials_one_to_one(
        small_corpus: Path, tmp_path: Path):
    import optuna

    from storage.tracking import Tracker
    from sweeps.runs import tracking_uri_of
    from sweeps.spec import load_campaign

    spec = tmp_path / "faults.toml"
    spec.write_text(CAMPAIGN.format(corpus=small_corpus))
    campaign = load_campaign(spec)
    runs, rounds = campaign.folder / "runs", campaign.folder / "rounds"
    grid = {s.run_id() for s in campaign.runs}

    def curves(ids: Callable[[str], bool]) -> bool:
        return any(p.stat().st_size > 200 for p in runs.glob("*/curve.csv") if ids(p.parent.name))

    kill_when(spec, lambda: curves(lambda run: run in grid))  # training the grid
    kill_when(spec, lambda: (rounds / "round-00" / "proposals.json").is_file())  # just after proposing
    kill_when(spec, lambda: curves(lambda run: run not in grid))  # training the proposals
    done = smslab("campaign", "run", str(spec))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "max_rounds (1) reached" in done.stdout

    folders = {p.name for p in runs.iterdir() if json.loads((p / "state.json").read_text())["status"] == "finished"}
    tracked = Tracker(tracking_uri_of(campaign)).run_statuses(campaign.name)
    study = optuna.load_study(study_name=campaign.name, storage=f"sqlite:///{campaign.folder / 'optuna.db'}")
    trials = {t.user_attrs["run_id"]: t for t in study.get_trials()}
    assert folders == set(tracked) == set(trials) and grid < folders
    assert set(tracked.values()) == {"finished"}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials.values())
    jobs = json.loads((campaign.folder / "jobs.json").read_text())
    again = smslab("campaign", "run", str(spec))
    assert again.returncode == 0 and json.loads((campaign.folder / "jobs.json").read_text()) == jobs
