"""Leave-one-size-out (LOSO) scores of the laws, side by side, on three kinds of data.

For each data set and law: the full fit (``lawfit.fit.fit_law``, default procedure) and its
leave-one-size-out score — each model size held out in turn, the law refitted on the others
(warm-started from the full fit), and the held-out sizes' predictions pooled:

- LOSO Huber: Σ Huber_delta(log L̂ − log L) over the pooled held-out points, and its mean per point;
- LOSO R²: 1 − SS_res/SS_tot of the loss (MuPT Eq. 14) on the same predictions;
- train objective: the full fit's Σ Huber (MuPT Eq. 16), and the fit's wall time (LOSO included).

Data sets:
  (a) datablations: the 182 runs of Muennighoff et al. (bundled, lawfit.reference_data.datablations_points);
  (b) OLMo ladder: final losses of the OLMo 2 ladder (bundled; one val_ce_* column; U_D = D), and, with
      --olmo-curves PATH, every checkpoint of the ladder runs from olmo_ladder_curves.csv (not bundled);
  (c) --points CSV: a loss-point table (run_id, N, D, U_D, loss), e.g. a campaign's
      ``smslab runs export``; scored on every point and on each run's final point.

Laws: --laws (default: nd, sms, sms_repetition; "all" for every registered law). The laws of one data set
share a GridCache, so SMS's and sms_repetition's first stage is the "nd" fit made just before.

Run: .venv/bin/python bench/law_loso.py [--points CSV] [--olmo-curves CSV] [--laws all]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lawfit.fit import FitOptions, GridCache, fit_law
from lawfit.laws import all_laws
from lawfit.points import LossPoints, read_points
from lawfit.reference_data import datablations_points, olmo_frame_points, olmo_ladder_points

DEFAULT_LAWS = ("nd", "sms", "sms_repetition")
# Checkpoints before this fraction of a ladder run's last token count are left out of the curve data set:
# warm-up and the first steep drop, which no law here models.
CURVE_MIN_FRACTION = 0.1


def olmo_curve_points(path: Path, column: str, every: int) -> LossPoints:
    """The ladder runs' checkpoints (group "ladder"): N = n_params, D = tokens, U_D = D, loss = ``column``;
    past CURVE_MIN_FRACTION of each run, every ``every``-th checkpoint."""
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame[frame["group"] == "ladder"].sort_values(["run", "tokens"])
    last = frame.groupby("run")["tokens"].transform("max")
    frame = frame[frame["tokens"] >= CURVE_MIN_FRACTION * last]
    frame = frame[frame.groupby("run").cumcount() % every == 0]
    return olmo_frame_points(frame, column, f"{path}:{column}")


def final_points(points: LossPoints) -> LossPoints:
    """Each run's last point (largest D): what a campaign with points = "final" fits."""
    keep = np.zeros(len(points), dtype=bool)
    for run in np.unique(points.run_id):
        rows = np.flatnonzero(points.run_id == run)
        keep[rows[np.argmax(points.D[rows])]] = True
    return points.subset(keep)


def describe(points: LossPoints) -> str:
    epochs = points.D / points.U_D
    return (f"{len(points)} points, {points.n_runs} runs, {len(points.sizes)} sizes "
            f"(N {points.sizes[0]:.3g}-{points.sizes[-1]:.3g}), epochs {epochs.min():.3g}-{epochs.max():.4g}")


def fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None else str(value)
    return format(value, spec)


def score_laws(title: str, points: LossPoints, laws: list[str]) -> list[dict[str, object]]:
    print(f"\n== {title}: {describe(points)}", flush=True)
    header = f"{'law':<17} {'LOSO Huber':>11} {'mean/point':>11} {'LOSO R²':>9} {'train obj':>11} {'train R²':>9} {'proc':>7} {'time':>7}"
    print(header)
    print("-" * len(header))
    cache = GridCache()
    rows = []
    for name in laws:
        started = time.perf_counter()
        fit = fit_law(points, name, FitOptions(leave_one_size_out=True), cache)
        seconds = time.perf_counter() - started
        loso = fit.leave_one_size_out
        train = fit.metrics.get("train")
        row = {
            "data": title,
            "law": name,
            "loso_huber": loso.huber if loso else None,
            "loso_huber_mean": loso.huber_mean if loso else None,
            "loso_r2": loso.r2 if loso else None,
            "train_objective": fit.objective,
            "train_r2": train.r2 if train else None,
            "procedure": fit.procedure,
            "seconds": seconds,
            "params": fit.params,
        }
        rows.append(row)
        print(f"{name:<17} {fmt(row['loso_huber'], '11.5g')} {fmt(row['loso_huber_mean'], '11.3g')} "
              f"{fmt(row['loso_r2'], '9.4f')} {fit.objective:11.5g} {fmt(row['train_r2'], '9.4f')} "
              f"{fit.procedure:>7} {seconds:6.1f}s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--laws", default=",".join(DEFAULT_LAWS), help="comma-separated law names, or 'all'")
    parser.add_argument("--olmo-column", default="val_ce_c4_en", help="the OLMo ladder loss column (default val_ce_c4_en)")
    parser.add_argument("--olmo-curves", type=Path, default=None, metavar="CSV",
                        help="olmo_ladder_curves.csv: also score the ladder runs' checkpoints")
    parser.add_argument("--curve-every", type=int, default=4, metavar="K",
                        help="with --olmo-curves: keep every K-th checkpoint of each run (default 4)")
    parser.add_argument("--points", type=Path, default=None, metavar="CSV",
                        help="a loss-point table, e.g. a campaign's `smslab runs export` (every point, and each run's last)")
    parser.add_argument("--skip", default="", help="comma-separated data sets to skip: datablations, olmo")
    parser.add_argument("--show-params", action="store_true", help="print each law's fitted parameters")
    args = parser.parse_args(argv)

    laws = [law.name for law in all_laws()] if args.laws == "all" else [x.strip() for x in args.laws.split(",") if x.strip()]
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    # "nd" first: it fills the GridCache that the staged laws' first stage reads.
    laws.sort(key=lambda name: name != "nd")

    rows: list[dict[str, object]] = []
    if "datablations" not in skip:
        rows += score_laws("(a) datablations fit runs", datablations_points("fit"), laws)
    if "olmo" not in skip:
        rows += score_laws(f"(b) OLMo ladder final points, {args.olmo_column}",
                           olmo_ladder_points(args.olmo_column, ("ladder",)), laws)
        if args.olmo_curves is not None:
            curves = olmo_curve_points(args.olmo_curves, args.olmo_column, args.curve_every)
            rows += score_laws(f"(b) OLMo ladder curves, {args.olmo_column}", curves, laws)
    if args.points is not None:
        points = read_points(args.points)
        rows += score_laws(f"(c) {args.points.name}, every point", points, laws)
        rows += score_laws(f"(c) {args.points.name}, final point per run", final_points(points), laws)
    if args.show_params:
        print()
        for row in rows:
            params = row["params"]
            assert isinstance(params, dict)
            print(f"{row['data']} / {row['law']}: " + ", ".join(f"{k}={v:.4g}" for k, v in params.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
