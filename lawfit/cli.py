"""``smslab fit`` and ``smslab plan``: lawfit's own command line.

Heavy imports (numpy, scipy, pandas) happen inside the handlers so that
``smslab --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from lawfit.errors import LawfitInputError
from lawfit.names import FLOPS_PER_PARAM_TOKEN, LAW_NAMES, N_CONVENTIONS  # numpy-free, so --help stays instant


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fit = subparsers.add_parser(
        "fit",
        help="fit a scaling law (or compare them all) to a table of loss points",
        description=(
            "Fit a scaling law to a CSV/Parquet table with columns run_id, N, D, U_D, loss "
            "(raw counts; run_id optional, U_D needed by laws that use it, optional weight). "
            "Objective: the sum of Huber(log L_hat - log L) (MuPT Eq. 16), L-BFGS from a grid of starts."
        ),
    )
    fit.add_argument("points", help="CSV or Parquet table of loss points")
    which = fit.add_mutually_exclusive_group(required=True)
    which.add_argument("--law", choices=LAW_NAMES, help="the law to fit")
    which.add_argument("--law-file", metavar="LAW.py",
                       help="fit a law of your own: a Python file with NAME, EXPRESSION (in N, D, U_D, Dpp) and PARAMS "
                            "(lmfit Parameters: bounds, vary=False, expr ties); see docs/examples/my_law.py")
    which.add_argument("--compare", action="store_true",
                       help="fit every law (staged and joint where a law has both) and print MuPT Table 3")
    fit.add_argument("--procedure", choices=("best", "staged", "joint"), default="best",
                     help="for a law with a base (sms, data_constrained): 'staged' is the paper's procedure (base law "
                          "first, then the rest with it held), 'joint' fits all at once, 'best' (default) keeps the "
                          "lower objective; --compare reports both")
    fit.add_argument("--n-convention", choices=N_CONVENTIONS, default=None,
                     help="what N counts in the table, when it has no n_convention column: non_embedding (Kaplan; "
                          "smslab's campaigns) or with_embeddings (MuPT's sizes); recorded in every fit")
    fit.add_argument("--train-max-n", type=float, default=None, metavar="N",
                     help="train on N <= this, hold out larger models (--compare default: hold out the two largest "
                          "sizes, one with 3-4 sizes, none with fewer, as MuPT Table 3)")
    fit.add_argument("--columns", default=None, metavar="MAP", help="map names, e.g. N=params_N,D=tokens_D,U_D=unique_tokens_U,loss=val_loss")
    fit.add_argument("--fix", default=None, metavar="NAME=VALUE,...", help="hold parameters fixed (raw units); all fixed: only score")
    fit.add_argument("--delta", type=float, default=1e-3, help="Huber delta on log loss (default 1e-3, as MuPT)")
    fit.add_argument("--bootstrap", type=int, default=0, metavar="K", help="bootstrap: refit on K resamples of the runs")
    fit.add_argument("--level", type=float, default=0.95, help="bootstrap interval level (default 0.95)")
    fit.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    fit.add_argument("--leave-one-size-out", action="store_true", help="also score leave-one-size-out (always on with --compare)")
    fit.add_argument("--out", default=None, metavar="PATH", help="write the fit as JSON (with --compare: a folder, one LAW.json each)")
    fit.add_argument("--json", action="store_true", help="print JSON instead of tables")
    fit.set_defaults(handler=run_fit)

    plan = subparsers.add_parser(
        "plan",
        help="plan N*, D*, epochs* for a FLOP budget (or the best epochs for a model size)",
        description=(
            "Minimise the fitted law over N with D = C/(6N) for budget C and unique tokens U "
            "(MuPT Eq. 1); with --n-params, find the token count with the lowest loss for that model size."
        ),
    )
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--fit", dest="fit_file", metavar="FIT.json", help="a fit written by smslab fit --out")
    source.add_argument("--preset", choices=("hoffmann", "datablations"), help="a published fit")
    plan.add_argument("--law-file", metavar="LAW.py", help="the law file of a fit of a user law (fit --law-file)")
    budget = plan.add_mutually_exclusive_group()
    budget.add_argument("--flops", type=float, default=None,
                        help="compute budget C in FLOPs, with C = 6·N·D (the default convention)")
    budget.add_argument("--nd", type=float, default=None, metavar="N·D",
                        help="the budget as the product N·D, as MuPT §4.2.3 states it (N·D = 2e20): C = 6·N·D")
    plan.add_argument("--unique-tokens", type=float, default=None, metavar="U", help="unique tokens available (U_D); default unlimited")
    plan.add_argument("--n-params", type=float, default=None, metavar="N", help="plan the token count for this model size instead")
    plan.add_argument("--max-epochs", type=float, default=100.0, help="with --n-params: the most epochs to consider")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(handler=run_plan)


def parse_fix(text: str | None) -> dict[str, float]:
    from lawfit.errors import LawfitInputError

    if not text:
        return {}
    fixed: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise LawfitInputError(f"--fix: {item!r} is not of the form NAME=VALUE (e.g. --fix alpha=0.34,beta=0.28)")
        if name in fixed:
            raise LawfitInputError(f"--fix: {name} is given twice; give each parameter once")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise LawfitInputError(f"--fix: {name}={value!r} is not a number") from None
        if not math.isfinite(fixed[name]):
            raise LawfitInputError(f"--fix: {name}={value!r} is not a finite number")
    return fixed


def run_fit(args: argparse.Namespace) -> int:
    from lawfit.bootstrap import bootstrap_fit
    from lawfit.errors import LawfitInputError
    from lawfit.fit import FitOptions, GridCache, fit_law, fit_procedures
    from lawfit.points import parse_column_map, read_points
    from lawfit.scoring import default_train_max_n

    if args.bootstrap < 0:
        raise LawfitInputError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise LawfitInputError(f"--level must lie in (0, 1), got {args.level}")
    if not (math.isfinite(args.delta) and args.delta > 0):
        raise LawfitInputError(f"--delta must be a positive number, got {args.delta}")
    if args.out:
        check_output(Path(args.out), folder=args.compare)
    points = read_points(args.points, parse_column_map(args.columns), args.n_convention)
    fixed = parse_fix(args.fix)
    loaded = None
    if args.law_file:
        from lawfit.user_law import load_law_file

        loaded = load_law_file(args.law_file)
        fixed = {**loaded.fixed, **fixed}
    laws = list(LAW_NAMES) if args.compare else [loaded.law.name if loaded else args.law]
    train_max_n = args.train_max_n
    if args.compare and train_max_n is None:
        train_max_n = default_train_max_n(points)
    if args.compare and not points.has_unique_tokens:
        raise LawfitInputError(f"{points.source}: --compare needs the unique-token column U_D (laws 2-5 use it)")
    results = []
    cache = GridCache()  # the laws share their base fits: SMS's stage 1 is the "nd" law's Eq. 4 fit
    for name in laws:
        law_fixed = fixed
        if args.compare:
            from lawfit.laws import get_law

            law_fixed = {k: v for k, v in fixed.items() if k in get_law(name).param_names}
        options = FitOptions(
            delta=args.delta,
            fixed=law_fixed,
            train_max_n=train_max_n,
            leave_one_size_out=args.compare or args.leave_one_size_out,
            procedure=args.procedure,
        )
        if not args.json:
            print(f"fitting {name} ...", file=sys.stderr, flush=True)
        fitted = fit_procedures(points, name, options, cache) if args.compare else (fit_law(points, name, options, cache),)
        for result in fitted:
            if not args.compare:
                from lawfit.uncertainty import fit_standard_errors

                result = result.with_standard_errors(fit_standard_errors(result, points))
            if args.bootstrap:
                result = result.with_bootstrap(
                    bootstrap_fit(result, points, args.bootstrap, options, args.level, args.seed))
            results.append(result)
    if args.out:
        out = Path(args.out)
        if args.compare:
            for r in results:
                r.write(out / comparison_file_name(r.law, r.procedure))
        else:
            results[0].write(out)
    if args.json:
        from lawfit.result import best_fit

        planning = best_fit(results) if args.compare else None
        payload: Any = results[0].to_dict() if not args.compare or planning is None else {
            "train_max_n": train_max_n,
            "n_convention": points.n_convention,
            "laws": [r.to_dict() for r in results],
            # chosen as campaigns choose: the lowest mean leave-one-size-out Huber
            "planning_law": {"law": planning.law, "procedure": planning.procedure},
        }
        print(json.dumps(payload, indent=2, allow_nan=False))
    elif args.compare:
        from lawfit.report import comparison_table

        print(comparison_table(results, points))
    else:
        from lawfit.report import fit_report

        print(fit_report(results[0]))
        if loaded is not None and loaded.tied:
            tied = loaded.tied_values(results[0].params)
            print("tied: " + ", ".join(f"{n} = {loaded.tied[n]} = {tied[n]:.6g}" for n in loaded.tied))
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from lawfit.errors import LawfitInputError
    from lawfit.planning import plan_compute_optimal, plan_tokens
    from lawfit.presets import preset_fit
    from lawfit.result import FitResult

    if args.law_file:
        from lawfit.user_law import load_law_file

        load_law_file(args.law_file)
    fit = FitResult.read(args.fit_file) if args.fit_file else preset_fit(args.preset)
    if args.n_params is not None:
        if args.unique_tokens is None:
            raise LawfitInputError("--n-params needs --unique-tokens: the best epoch count depends on U_D")
        plan = plan_tokens(fit, args.n_params, args.unique_tokens, args.max_epochs)
        say_warnings(plan.warnings)
        if args.json:
            print(json.dumps(plan.to_dict(), indent=2))
        else:
            from lawfit.report import token_plan_report

            print(token_plan_report(fit, plan))
        return 0
    if args.nd is not None and not (math.isfinite(args.nd) and args.nd > 0):
        raise LawfitInputError(f"--nd must be a positive number, got {args.nd}")
    flops = FLOPS_PER_PARAM_TOKEN * args.nd if args.nd is not None else args.flops
    if flops is None:
        raise LawfitInputError("plan needs --flops C or --nd N·D (or --n-params N with --unique-tokens U)")
    plan_c = plan_compute_optimal(fit, flops, args.unique_tokens)
    say_warnings(plan_c.warnings)
    if args.json:
        print(json.dumps(plan_c.to_dict(), indent=2))
    else:
        from lawfit.report import plan_report

        print(plan_report(fit, plan_c))
    return 0


def say_warnings(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def comparison_file_name(law: str, procedure: str) -> str:
    """``LAW.json`` for a law fitted one way, ``LAW.PROCEDURE.json`` for each procedure of a law with a base."""
    from lawfit.laws import get_law

    return f"{law}.{procedure}.json" if get_law(law).base else f"{law}.json"


def check_output(path: Path, folder: bool = False) -> None:
    """Refuse an output path before any work: a folder where a file goes (or a file where a folder goes),
    or a place under a file or in a folder that cannot be written."""
    if path.is_dir() != folder and path.exists():
        raise LawfitInputError(f"--out {path}: is {'a file' if folder else 'a folder'}; give "
                               f"{'a folder' if folder else 'a file name'}")
    parent = path if folder and path.is_dir() else path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise LawfitInputError(f"--out {path}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise LawfitInputError(f"--out {path}: {existing} is not writable")
