"""lawfit speed, measured side by side in one run.

1. The full 4,500-start Chinchilla fit on the replication data (Besiroglu et al.
   2024): lawfit's batched L-BFGS with analytic gradients against the naive loop
   that public notebooks use — scipy's L-BFGS-B once per start with
   finite-difference gradients — on the same data, grid and objective. The naive
   loop runs with the tolerances needed to reach the optimum (ftol=1e-15,
   gtol=1e-10; scipy's defaults stop early on these small objectives).
   Target: >= 100x faster at an equal or lower best objective.
2. A 1,000-resample bootstrap of the SMS law on synthetic curves
   (5 sizes x 3 U_D x 30 points). Target: under 60 s on a 2-core machine.

The replication data is the copy bundled with lawfit (lawfit/data/svg_extracted_data.csv);
--replication-data CSV reads another copy of that file instead.

Run: .venv/bin/python bench/lawfit_speed.py [--naive-starts K] [--replication-data CSV]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lawfit.bootstrap import bootstrap_fit  # noqa: E402
from lawfit.fit import FitOptions, fit_law  # noqa: E402
from lawfit.reference_data import (  # noqa: E402
    CHINCHILLA_REPLICATION_FILE,
    EXAMPLE_PARAMS,
    bundled_path,
    chinchilla_replication_points,
    synthetic_curves,
)

REPLICATION_GRID = list(
    itertools.product(
        [0.0, 0.5, 1.0, 1.5, 2.0],  # alpha
        [0.0, 0.5, 1.0, 1.5, 2.0],  # beta
        [-1.0, -0.5, 0.0, 0.5, 1.0],  # log E
        [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],  # log A
        [0.0, 5.0, 10.0, 15.0, 20.0, 25.0],  # log B
    )
)


def find_replication_data(explicit: str | None) -> Path:
    """The replication CSV: the path given, else the copy bundled with lawfit."""
    path = Path(explicit) if explicit else bundled_path(CHINCHILLA_REPLICATION_FILE)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (the Chinchilla replication data, svg_extracted_data.csv)")
    return path


def naive_fit(log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, starts: list[tuple[float, ...]]) -> float:
    """The notebook loop: scipy L-BFGS-B per start, finite-difference gradients."""

    def objective(p: np.ndarray) -> float:
        a, b, e, alpha, beta = p
        pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
        return float(np.sum(huber(1e-3, pred - log_l)))

    best = np.inf
    for alpha, beta, e, a, b in starts:
        res = minimize(objective, [a, b, e, alpha, beta], method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10})
        best = min(best, float(res.fun))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--naive-starts", type=int, default=len(REPLICATION_GRID),
                        help="starts for the naive loop (default: all 4,500; fewer gives an extrapolated time)")
    parser.add_argument("--replication-data", default=None, metavar="CSV",
                        help="a copy of svg_extracted_data.csv (default: the copy bundled with lawfit)")
    parser.add_argument("--bootstrap-draws", type=int, default=1000)
    args = parser.parse_args()

    points = chinchilla_replication_points(find_replication_data(args.replication_data))
    print(f"Chinchilla replication data: {len(points)} points; grid of {len(REPLICATION_GRID)} starts")

    started = time.perf_counter()
    fit = fit_law(points, "chinchilla")
    ours_s = time.perf_counter() - started
    assert fit.starts is not None
    print(f"lawfit batched L-BFGS : {ours_s:8.2f} s   best objective {fit.objective:.12g}   "
          f"({fit.starts.converged} of {fit.starts.total} starts converged, {fit.starts.near_best} at the best)")

    starts = REPLICATION_GRID[: args.naive_starts]
    started = time.perf_counter()
    naive_best = naive_fit(np.log(points.N), np.log(points.D), np.log(points.loss), starts)
    naive_s = time.perf_counter() - started
    scale = len(REPLICATION_GRID) / len(starts)
    note = "" if scale == 1 else f"  (ran {len(starts)} starts, time scaled x{scale:.1f})"
    print(f"naive scipy per start : {naive_s * scale:8.2f} s   best objective {naive_best:.12g}{note}")
    print(f"speed ratio           : {naive_s * scale / ours_s:8.1f}x   (target >= 100x)")
    print(f"objective             : lawfit {'<=' if fit.objective <= naive_best * (1 + 1e-9) else '>'} naive "
          f"(difference {fit.objective - naive_best:+.3e})")

    truth = EXAMPLE_PARAMS["sms"]
    curves = synthetic_curves("sms", truth, (1e8, 2e8, 4e8, 8e8, 1.6e9), (1e9, 4e9, 1.6e10), 30, 30.0, 0.002, seed=1)
    sms = fit_law(curves, "sms")
    started = time.perf_counter()
    boot = bootstrap_fit(sms, curves, args.bootstrap_draws, FitOptions(), level=0.95, seed=0)
    boot_s = time.perf_counter() - started
    print(f"\nSMS bootstrap: {len(boot.draws)} resamples of {curves.n_runs} runs ({len(curves)} points): "
          f"{boot_s:.1f} s   ({boot.converged} converged; target under 60 s)")
    lo, hi = boot.intervals["k_d"]
    print(f"  95% interval of k_d: [{lo:.3g}, {hi:.3g}] (truth 2e-12)")


if __name__ == "__main__":
    main()
