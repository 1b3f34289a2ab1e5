"""What the views show: a campaign's curves, run states, recorded fits and rounds, read through storage.

Fits come from the campaign's own MLflow run (the fits each round of
``smslab campaign run`` logged as artifacts); a law the record lacks, or a
train/test split other than the recorded one, is fitted here with lawfit and
kept in memory (keyed by the points' hash), so it is fitted once.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lawfit.fit import FitOptions, fit_law
from lawfit.points import LossPoints
from lawfit.result import FitResult
from lawfit.scoring import default_train_max_n
from storage.tracking import Tracker

LAWS = ("chinchilla", "data_constrained", "dprime", "nd", "sms")


class DataUnavailable(RuntimeError):
    """The tracking store cannot be read (unreachable server, missing file); the message says which."""


@dataclass(frozen=True)
class CampaignView:
    campaign: str
    points: pd.DataFrame  # the loss-point table: every evaluation of every run
    final_points: pd.DataFrame  # the last evaluation of each finished run (what campaigns fit)
    statuses: dict[str, str]  # smslab run id → status
    recorded_fits: dict[str, FitResult] = field(default_factory=dict)  # law → the latest round's fit
    rounds: tuple[dict[str, float], ...] = ()  # round, n_opt, lo, hi, ratio
    recorded_plan: dict[str, object] | None = None  # the latest round's plan (flops, unique_tokens, ...)


def _fail_fast() -> None:
    """A dashboard answers in seconds: MLflow's HTTP client otherwise retries an unreachable
    server for minutes (7 retries with exponential backoff). Settings given by the user win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def campaigns(tracking_uri: str) -> list[str]:
    """The campaigns (MLflow experiments with smslab runs) in the store."""
    _fail_fast()
    try:
        tracker = Tracker(tracking_uri)
        experiments = tracker.client.search_experiments()
    except Exception as exc:  # noqa: BLE001  any store error is shown, not raised
        raise DataUnavailable(f"cannot read the tracking store {tracking_uri}: {exc}") from None
    return sorted(e.name for e in experiments if e.name != "Default")


def load_view(tracking_uri: str, campaign: str) -> CampaignView:
    _fail_fast()
    try:
        tracker = Tracker(tracking_uri)
        points = tracker.read_points(campaign)
        statuses = tracker.run_statuses(campaign)
        with tempfile.TemporaryDirectory() as folder:
            artifacts = tracker.download_campaign_artifacts(campaign, folder)
            fits, rounds, plan = _read_rounds(artifacts) if artifacts is not None else ({}, (), None)
    except Exception as exc:  # noqa: BLE001
        raise DataUnavailable(f"cannot read campaign {campaign!r} from {tracking_uri}: {exc}") from None
    finished = {run for run, status in statuses.items() if status == "finished"}
    final = points[points["run_id"].isin(finished)].sort_values(["run_id", "D"]).groupby("run_id").tail(1)
    return CampaignView(campaign, points, final.reset_index(drop=True), statuses, fits, rounds, plan)


def _read_rounds(folder: Path) -> tuple[dict[str, FitResult], tuple[dict[str, float], ...], dict[str, object] | None]:
    round_dirs = sorted((p for p in (folder / "rounds").glob("round-*") if re.fullmatch(r"round-\d+", p.name)),
                        key=lambda p: int(p.name.split("-")[1]))
    rounds = []
    for directory in round_dirs:
        plan_file = directory / "plan.json"
        if not plan_file.is_file():
            continue
        plan = json.loads(plan_file.read_text())
        interval = (plan.get("interval") or {}).get("n_opt")
        lo, hi = interval if interval else (float("nan"), float("nan"))
        rounds.append({"round": int(directory.name.split("-")[1]), "n_opt": plan["n_opt"], "lo": lo, "hi": hi,
                       "ratio": hi / lo if interval and lo > 0 else float("nan")})
    fits: dict[str, FitResult] = {}
    plan = None
    if round_dirs:
        latest = round_dirs[-1]
        for path in sorted((latest / "fits").glob("*.json")):
            fit = FitResult.read(path)
            fits[fit.law] = fit
        if (latest / "plan.json").is_file():
            plan = json.loads((latest / "plan.json").read_text())
    return fits, tuple(rounds), plan


def as_loss_points(frame: pd.DataFrame, source: str) -> LossPoints:
    return LossPoints.from_arrays(frame["N"].to_numpy(float), frame["D"].to_numpy(float), frame["loss"].to_numpy(float),
                                  U_D=frame["U_D"].to_numpy(float), run_id=frame["run_id"].to_numpy(), source=source)


class FitCache:
    """Fits made here for a split or law the record lacks, once per (points, law, split)."""

    def __init__(self) -> None:
        self._fits: dict[tuple[str, str, float | None], FitResult] = {}
        self._lock = threading.Lock()

    def fit(self, points: LossPoints, law: str, train_max_n: float | None) -> FitResult:
        key = (points.content_hash(), law, train_max_n)
        with self._lock:
            if key not in self._fits:
                self._fits[key] = fit_law(points, law, FitOptions(train_max_n=train_max_n))
            return self._fits[key]


def fits_for(view: CampaignView, laws: Sequence[str], split: str, cache: FitCache,
             errors: dict[str, str] | None = None) -> tuple[list[FitResult], float | None]:
    """The fits to draw for ``split`` ("all": every size, as campaigns fit; "held-out": the largest sizes held
    out as MuPT Table 3): recorded ones where they match, else fitted here. A law that cannot be fitted is
    left out, its reason put in ``errors``; when none can, the first reason is raised."""
    if view.final_points.empty:
        raise ValueError(f"campaign {view.campaign} has no finished runs to fit yet")
    points = as_loss_points(view.final_points, f"campaign {view.campaign}")
    if len(points.sizes) < 2:
        raise ValueError(f"campaign {view.campaign} has one model size ({points.sizes[0]:.3g}): the laws need two or more")
    train_max_n = default_train_max_n(points) if split == "held-out" else None
    out = []
    failed: dict[str, str] = {}
    for law in laws:
        recorded = view.recorded_fits.get(law)
        if recorded is not None and recorded.train_max_n == train_max_n and recorded.points_hash == points.content_hash():
            out.append(recorded)
            continue
        try:
            out.append(cache.fit(points, law, train_max_n))
        except (ValueError, ArithmeticError) as exc:
            failed[law] = str(exc)
    if errors is not None:
        errors.update(failed)
    if not out and failed:
        raise ValueError(next(iter(failed.values())))
    if not out:
        raise ValueError("no law selected")
    return out, train_max_n
