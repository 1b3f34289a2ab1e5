"""What the views show: a campaign's curves, run states, recorded fits and rounds, read through storage.

Fits come from the campaign's own MLflow run (the fits each round of
``smslab campaign run`` logged as artifacts); a law the record lacks, or a
train/test split other than the recorded one, is fitted here with lawfit the
way campaigns fit (on each run's final loss, or on every evaluation when the
campaign's ``[plan] points = "curve"``; leave-one-size-out scored with three
or more sizes) and kept in memory keyed by the points' hash, so it is fitted
once. The law a plan is made with is bootstrapped over runs, as campaigns do.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lawfit.bootstrap import bootstrap_fit
from lawfit.fit import FitOptions, GridCache, fit_law
from lawfit.memo import Memo
from lawfit.points import LossPoints
from lawfit.result import FitResult
from lawfit.scoring import can_leave_one_size_out, default_train_max_n
from storage.points import POINT_SELECTIONS, fit_points
from storage.sqlite_store import sqlite_file
from storage.tracking import StorageError, Tracker, open_store

BOOTSTRAP_DRAWS = 100  # the campaign spec's default ([plan] bootstrap)
BOOTSTRAP_LEVEL = 0.9  # and its default level
FIT_CACHE_SIZE = 64  # fits kept: each new set of points (a run landed) adds one per law shown


class DataUnavailable(RuntimeError):
    """The tracking store cannot be read (unreachable server, missing file); the message says which."""


@dataclass(frozen=True)
class CampaignView:
    campaign: str
    points: pd.DataFrame  # the loss-point table: every evaluation of every run (finite, positive values only)
    final_points: pd.DataFrame  # the last evaluation of each finished run (storage.points.fit_points "final")
    statuses: dict[str, str]  # smslab run id → status
    recorded_fits: dict[str, FitResult] = field(default_factory=dict)  # law → the latest round's fit
    rounds: tuple[dict[str, float], ...] = ()  # round, n_opt, lo, hi, ratio
    recorded_plan: dict[str, object] | None = None  # the latest round's plan (flops, unique_tokens, ...)
    recorded_round: int | None = None  # the round the recorded fits and plan are from
    points_setting: str = "final"  # what the campaign fits: each run's "final" loss, or its whole "curve"
    left_out: int = 0  # points read back with a loss, N, D or U_D that is not a finite positive number
    # One row per evaluated run (Tracker.read_measures): run_id, N, N_with_embeddings, D, U_D, eval_* columns.
    measures: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def has_measures(self) -> bool:
        """Whether any run carries evaluation measures: the measures view is shown only then."""
        return not self.measures.empty

    @property
    def fit_points(self) -> pd.DataFrame:
        """What the laws are fitted on, as the campaign fits: finished runs' final points, or their curves."""
        return fit_points(self.points, self.statuses, self.points_setting)  # type: ignore[arg-type]


def _fail_fast() -> None:
    """A dashboard answers in seconds: MLflow's HTTP client otherwise retries an unreachable
    server for minutes (7 retries with exponential backoff). Settings given by the user win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _open(tracking_uri: str) -> Tracker:
    """The store, which must exist: opening a SQLite URI would otherwise create an empty store at a mistyped path."""
    _fail_fast()
    path = sqlite_file(tracking_uri)
    try:
        if path is not None and not path.is_file():
            _tracker.cache_clear()  # a store removed since: do not keep a client of it
        return _tracker(tracking_uri)
    except StorageError as exc:
        hint = " (give --tracking-uri; `smslab quickstart` makes smslab-quickstart/campaign/mlflow.db)" if path else ""
        raise DataUnavailable(f"{exc}{hint}") from None
    except Exception as exc:  # noqa: BLE001  any store error is shown, not raised
        raise DataUnavailable(f"cannot read the tracking store {tracking_uri}: {exc}") from None


@functools.lru_cache(maxsize=8)
def _tracker(tracking_uri: str) -> Tracker:
    # Opening a client checks the store's schema (about a second on SQLite): once per store, not per refresh.
    return open_store(tracking_uri)


def campaigns(tracking_uri: str) -> list[str]:
    """The campaigns (MLflow experiments with smslab runs) in the store."""
    tracker = _open(tracking_uri)
    try:
        return tracker.campaigns()
    except Exception as exc:  # noqa: BLE001  any store error is shown, not raised
        raise DataUnavailable(f"cannot read the tracking store {tracking_uri}: {exc}") from None


def fingerprint(tracking_uri: str, campaign: str) -> str | None:
    """What changes when the campaign's data does (storage's cheap check); None: cannot tell, read it all."""
    try:
        return _open(tracking_uri).campaign_fingerprint(campaign)
    except Exception:  # noqa: BLE001  load_view reads it all and says what is wrong
        return None


def load_view(tracking_uri: str, campaign: str) -> CampaignView:
    tracker = _open(tracking_uri)
    try:
        tracker.require_campaign(campaign)
        points = tracker.read_points(campaign)
        statuses = tracker.run_statuses(campaign)
        settings = tracker.campaign_params(campaign)
        measures = tracker.read_measures(campaign)
        with tempfile.TemporaryDirectory() as folder:
            artifacts = tracker.download_campaign_artifacts(campaign, folder)
            fits, rounds, plan, latest = _read_rounds(artifacts) if artifacts is not None else ({}, (), None, None)
    except StorageError as exc:
        raise DataUnavailable(str(exc)) from None
    except Exception as exc:  # noqa: BLE001
        raise DataUnavailable(f"cannot read campaign {campaign!r} from {tracking_uri}: {exc}") from None
    values = points[["N", "D", "U_D", "loss"]].to_numpy(float)
    usable = np.all(np.isfinite(values) & (values > 0), axis=1)
    points = points[usable].reset_index(drop=True)
    final = fit_points(points, statuses, "final")
    points_setting = settings.get("points", "final") if settings.get("points") in POINT_SELECTIONS else "final"
    return CampaignView(campaign, points, final, statuses, fits, rounds, plan, latest, points_setting,
                        int((~usable).sum()), measures)


def _read_rounds(folder: Path) -> tuple[dict[str, FitResult], tuple[dict[str, float], ...], dict[str, object] | None,
                                       int | None]:
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
    number = None
    if round_dirs:
        latest = round_dirs[-1]
        number = int(latest.name.split("-")[1])
        for path in sorted((latest / "fits").glob("*.json")):
            fit = FitResult.read(path)
            fits[fit.law] = fit
        if (latest / "plan.json").is_file():
            plan = json.loads((latest / "plan.json").read_text())
    return fits, tuple(rounds), plan, number


class FitCache:
    """Fits (and bootstraps) made here, once per (points, law, split); the most recent ``FIT_CACHE_SIZE`` are kept.

    The app's request threads share it: views needing the same fit wait for one computation, while a
    planner click needing another fit does not wait behind it (``lawfit.memo.Memo``).
    """

    def __init__(self, size: int = FIT_CACHE_SIZE) -> None:
        self._fits: Memo[tuple[object, ...], FitResult] = Memo(size)
        # The laws' full-grid fits, shared as a comparison shares them: the SMS law's stage 1 is the "nd" law's fit.
        self._grid_runs = GridCache()

    def fit(self, points: LossPoints, law: str, train_max_n: float | None, leave_one_size_out: bool = False) -> FitResult:
        options = FitOptions(train_max_n=train_max_n, leave_one_size_out=leave_one_size_out)
        return self._fits.get(("fit", points.content_hash(), law, train_max_n, leave_one_size_out),
                              lambda: fit_law(points, law, options, self._grid_runs))

    def bootstrapped(self, fit: FitResult, points: LossPoints) -> FitResult:
        """``fit`` with bootstrap draws over runs (as a campaign round makes them), for planning intervals."""
        if fit.bootstrap is not None:
            return fit
        key = ("bootstrap", points.content_hash(), fit.law, fit.train_max_n)
        options = FitOptions(delta=fit.delta, train_max_n=fit.train_max_n)
        return self._fits.get(key, lambda: fit.with_bootstrap(
            bootstrap_fit(fit, points, BOOTSTRAP_DRAWS, options, level=BOOTSTRAP_LEVEL, seed=0)))


def view_points(view: CampaignView) -> LossPoints:
    """The points the laws are fitted on, as lawfit's table."""
    if view.fit_points.empty:
        raise ValueError(f"campaign {view.campaign} has no finished runs to fit yet")
    points = LossPoints.from_frame(view.fit_points, f"campaign {view.campaign}")
    if len(points.sizes) < 2:
        raise ValueError(f"campaign {view.campaign} has one model size ({points.sizes[0]:.3g}): the laws need two or more")
    return points


def fits_for(view: CampaignView, laws: Sequence[str], split: str, cache: FitCache,
             errors: dict[str, str] | None = None) -> tuple[list[FitResult], float | None]:
    """The fits to draw for ``split`` ("all": every size, as campaigns fit; "held-out": the largest sizes held
    out as MuPT Table 3): recorded ones where they match, else fitted here. A law that cannot be fitted is
    left out, its reason put in ``errors``; when none can, the first reason is raised."""
    points = view_points(view)
    train_max_n = default_train_max_n(points) if split == "held-out" else None
    leave_one_size_out = train_max_n is None and can_leave_one_size_out(points)  # as campaigns choose their law
    out = []
    failed: dict[str, str] = {}
    for law in laws:
        recorded = view.recorded_fits.get(law)
        if recorded is not None and recorded.train_max_n == train_max_n and recorded.points_hash == points.content_hash():
            out.append(recorded)
            continue
        try:
            out.append(cache.fit(points, law, train_max_n, leave_one_size_out))
        except (ValueError, ArithmeticError) as exc:
            failed[law] = str(exc)
    if errors is not None:
        errors.update(failed)
    if not out and failed:
        raise ValueError(next(iter(failed.values())))
    if not out:
        raise ValueError("no law selected")
    return out, train_max_n


def fit_provenance(view: CampaignView, fit: FitResult) -> str:
    """Where a fit comes from, in words: the campaign's record (which round) or this dashboard."""
    recorded = view.recorded_fits.get(fit.law)
    draws = "no bootstrap"
    if fit.bootstrap is not None:
        # lawfit keeps only the resamples whose refit reached an optimum: say how many were drawn, and kept.
        drawn, kept = max(fit.bootstrap.requested, len(fit.bootstrap.draws)), len(fit.bootstrap.draws)
        draws = f"{drawn} bootstrap resamples" + (f", {kept} reached an optimum" if kept < drawn else "")
    if recorded is not None and recorded.points_hash == fit.points_hash and dict(recorded.params) == dict(fit.params):
        origin = f"recorded by round {view.recorded_round} of the campaign"
    else:
        origin = "fitted by this dashboard"
    since = ""
    try:
        if fit.train_max_n is None and view_points(view).content_hash() != fit.points_hash:
            since = "; runs have landed since"
    except ValueError:
        pass
    return f"{fit.law} law {origin} on {fit.n_points} points of {fit.n_runs} runs ({draws}{since})"
