"""How good a fitted law is: R² of the loss (MuPT Eq. 14) and the Huber objective on log loss (Eq. 15–16)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lawfit.errors import LawfitInputError
from lawfit.laws.base import Law
from lawfit.objective import DEFAULT_DELTA, huber
from lawfit.points import LossPoints

# Held-out scores on fewer points than this, or on losses spanning less than this in log (5 %), are weak
# evidence: one point moves R² by a lot, and a narrow range makes R² small whatever the law.
WEAK_EVIDENCE_POINTS = 20
WEAK_EVIDENCE_SPREAD_LOG = 0.05


@dataclass(frozen=True)
class Metrics:
    """Scores of one law on one set of points.

    ``r2`` is 1 − SS_res/SS_tot of the loss itself, not of log loss (MuPT Eq. 14);
    ``huber`` is Σ Huber_delta(log L̂ − log L) over the points (Eq. 15–16, unweighted),
    ``huber_mean`` the same divided by the point count (sums of splits of
    different sizes are not comparable; means are), ``rmse_log`` the root
    mean square of log L̂ − log L, ``loss_spread_log`` = log(max L / min L) of
    the observed losses scored.
    """

    r2: float
    huber: float
    huber_mean: float
    rmse_log: float
    n_points: int
    loss_spread_log: float = float("nan")

    @property
    def weak_evidence(self) -> bool:
        """Too few points, or too narrow a loss range, for R² and Huber to rank laws (see WEAK_EVIDENCE_*)."""
        narrow = self.loss_spread_log == self.loss_spread_log and self.loss_spread_log < WEAK_EVIDENCE_SPREAD_LOG
        return self.n_points < WEAK_EVIDENCE_POINTS or narrow

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "r2": self.r2,
            "huber": self.huber,
            "huber_mean": self.huber_mean,
            "rmse_log": self.rmse_log,
            "n_points": self.n_points,
            "loss_spread_log": self.loss_spread_log,
            "weak_evidence": self.weak_evidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Metrics:
        return cls(
            r2=float(data["r2"]),
            huber=float(data["huber"]),
            huber_mean=float(data["huber_mean"]),
            rmse_log=float(data["rmse_log"]),
            n_points=int(data["n_points"]),
            loss_spread_log=float(data.get("loss_spread_log", float("nan"))),
        )


def r_squared(observed: np.ndarray, predicted: np.ndarray) -> float:
    """R² = 1 − SS_res / SS_tot   (MuPT Eq. 14); NaN when all observations are equal."""
    ss_res = float(np.sum((observed - predicted) ** 2))
    ss_tot = float(np.sum((observed - np.mean(observed)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def metrics_from_predictions(observed: np.ndarray, predicted: np.ndarray, delta: float = DEFAULT_DELTA) -> Metrics:
    with np.errstate(all="ignore"):
        residual_log = np.log(predicted) - np.log(observed)
    spread = float(np.log(np.max(observed) / np.min(observed)))
    if not np.all(np.isfinite(residual_log)):
        nan = float("nan")
        return Metrics(nan, float("inf"), float("inf"), float("inf"), int(observed.shape[0]), spread)
    terms = huber(residual_log, delta)
    return Metrics(
        r2=r_squared(observed, predicted),
        huber=float(np.sum(terms)),
        huber_mean=float(np.mean(terms)),
        rmse_log=float(np.sqrt(np.mean(residual_log**2))),
        n_points=int(observed.shape[0]),
        loss_spread_log=spread,
    )


def score(law: Law, params: Mapping[str, float], points: LossPoints, delta: float = DEFAULT_DELTA) -> Metrics:
    """Metrics of ``law`` with ``params`` on ``points``."""
    x = points.covariates()
    predicted = law.predict(params, x.N, x.D, x.U_D)
    return metrics_from_predictions(points.loss, predicted, delta)


def split_by_size(points: LossPoints, train_max_n: float | None) -> tuple[LossPoints, LossPoints | None]:
    """Train on N ≤ train_max_n, hold out N > train_max_n (MuPT Table 3); no threshold: no held-out split."""
    if train_max_n is None:
        return points, None
    in_train = points.N <= train_max_n
    if not np.any(in_train):
        sizes = ", ".join(f"{n:.4g}" for n in points.sizes)
        raise LawfitInputError(
            f"{points.source}: no point has N <= {train_max_n:.4g}, so the training split is empty (sizes: {sizes})"
        )
    if np.all(in_train):
        sizes = ", ".join(f"{n:.4g}" for n in points.sizes)
        raise LawfitInputError(
            f"{points.source}: no point has N > {train_max_n:.4g}, so the held-out split is empty "
            f"(sizes: {sizes}); choose --train-max-n below the largest size"
        )
    return points.subset(in_train), points.subset(~in_train)


def default_train_max_n(points: LossPoints) -> float | None:
    """Hold out the two largest model sizes, as MuPT Table 3 does (one with 3–4 sizes; none under 3)."""
    sizes = points.sizes
    if sizes.shape[0] < 3:
        return None
    return float(sizes[-3] if sizes.shape[0] >= 5 else sizes[-2])


# Leaving one size out needs two sizes left to fit on: with fewer than three, a fold cannot fit a law.
MIN_SIZES_TO_LEAVE_ONE_OUT = 3


def can_leave_one_size_out(points: LossPoints) -> bool:
    """Whether laws can be scored (and so chosen) by leave-one-size-out on ``points``."""
    return int(points.sizes.shape[0]) >= MIN_SIZES_TO_LEAVE_ONE_OUT
