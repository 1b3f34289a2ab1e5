"""``smslab fit-published``: a whole law study on real published runs, no training.

The datablations runs bundled with lawfit (182 runs up to 9B parameters): all
laws fitted (the paper's staged procedures and the joint ones) and compared on
held-out model sizes (MuPT Table 3), the best by leave-one-size-out bootstrapped, and a compute-optimal plan with
intervals. (``smslab quickstart`` trains its own models: ``sweeps/quickstart.py``.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = subparsers.add_parser(
        "fit-published",
        help="compare the laws on bundled published runs (datablations) and plan N*, D*, epochs* with intervals",
        description=(
            "Fit the laws to the bundled datablations runs (the paper's staged procedure and the joint one "
            "where a law has both), hold out the two largest model sizes, bootstrap the law and procedure that "
            "predict left-out sizes best and plan for a FLOP budget and unique-token count."
        ),
    )
    cmd.add_argument("--out", default="smslab-published", help="folder for the fit files (default ./smslab-published)")
    cmd.add_argument("--flops", type=float, default=1e21, help="compute budget to plan for (default 1e21)")
    cmd.add_argument("--unique-tokens", type=float, default=1e10, help="unique tokens to plan for (default 1e10)")
    cmd.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the chosen law (default 200)")
    cmd.set_defaults(handler=run)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from lawfit.bootstrap import bootstrap_fit
    from lawfit.errors import LawfitInputError
    from lawfit.cli import comparison_file_name, say_warnings
    from lawfit.fit import FitOptions, GridCache, fit_procedures
    from lawfit.names import LAW_NAMES
    from lawfit.planning import plan_compute_optimal
    from lawfit.presets import preset_fit
    from lawfit.reference_data import datablations_points
    from lawfit.report import comparison_table, plan_report
    from lawfit.result import best_fit
    from lawfit.scoring import default_train_max_n

    if args.bootstrap < 1:
        raise LawfitInputError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    out = Path(args.out)
    points = datablations_points("fit")
    threshold = default_train_max_n(points)
    _say(f"[1/3] fitting {len(LAW_NAMES)} laws to {len(points)} datablations runs (train N <= {threshold:.3g}) ...")
    fits = []
    cache = GridCache()  # the laws share their base fits: SMS's stage 1 is the "nd" law's Eq. 4 fit
    for name in LAW_NAMES:
        started = time.perf_counter()
        for fit in fit_procedures(points, name, FitOptions(train_max_n=threshold, leave_one_size_out=True), cache):
            fits.append(fit)
            fit.write(out / comparison_file_name(name, fit.procedure))
            _say(f"      {name:<17} {fit.procedure:<7} objective {fit.objective:.5g}  "
                 f"({time.perf_counter() - started:.1f} s)")
    print(comparison_table(fits, points))
    # Choose by leave-one-size-out: it scores every size, where the held-out
    # split scores only the largest two.
    best = best_fit(fits)
    _say(f"[2/3] {best.law} ({best.procedure}) predicts unseen sizes best (leave-one-size-out); bootstrapping it "
         f"with {args.bootstrap} resamples of the runs ...")
    best = best.with_bootstrap(
        bootstrap_fit(best, points, args.bootstrap, FitOptions(train_max_n=threshold), level=0.95, seed=0)
    )
    best_file = out / comparison_file_name(best.law, best.procedure)
    best.write(best_file)
    _say("[3/3] planning ...")
    plan = plan_compute_optimal(best, args.flops, args.unique_tokens)
    say_warnings(plan.warnings)
    print()
    print("Recommendation")
    print(plan_report(best, plan))
    print()
    print("For reference, the published data-constrained fit (preset datablations):")
    print(plan_report(preset_fit("datablations"), plan_compute_optimal(preset_fit("datablations"), args.flops, args.unique_tokens)))
    print(f"\nfit files: {out}/<law>[.<procedure>].json   (smslab plan --fit {best_file} --flops C --unique-tokens U)")
    return 0
