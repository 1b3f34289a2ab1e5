"""Plain-text reports of fits, comparisons and plans for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from lawfit.laws.base import get_law
from lawfit.names import FLOPS_PER_PARAM_TOKEN
from lawfit.planning import ComputeOptimalPlan, TokenPlan
from lawfit.points import LossPoints
from lawfit.result import FitResult, best_fit
from lawfit.scoring import WEAK_EVIDENCE_POINTS, WEAK_EVIDENCE_SPREAD_LOG, Metrics


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [str(cells[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def num(value: float | None, digits: int = 4) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}g}"


WEAK_MARK = "*"
# Parameter pairs correlated at least this much are listed: they trade off, and neither is pinned alone.
STRONG_CORRELATION = 0.9


def _metric_cells(m: Metrics | None) -> list[str]:
    """R², Huber sum and Huber mean; R² marked when the split is weak evidence."""
    if m is None:
        return ["-", "-", "-"]
    r2 = f"{m.r2:.4f}" if m.r2 == m.r2 else "-"
    return [r2 + (WEAK_MARK if m.weak_evidence else ""), f"{m.huber:.4g}", f"{m.huber_mean:.3g}"]


def weak_note(metrics: Sequence[Metrics | None]) -> str:
    if not any(m is not None and m.weak_evidence for m in metrics):
        return ""
    return (f"{WEAK_MARK} weak evidence: fewer than {WEAK_EVIDENCE_POINTS} points, or losses spanning less than "
            f"{WEAK_EVIDENCE_SPREAD_LOG:.0%} (log): do not rank laws on it alone")


def n_words(n_convention: str) -> str:
    return {"non_embedding": "non-embedding parameters", "with_embeddings": "parameters with embeddings"}.get(
        n_convention, "parameters (convention unstated)")


def fit_report(fit: FitResult) -> str:
    law = get_law(fit.law)
    lines = [f"law {law.name}: {law.title} ({law.equation})", f"  {law.doc}"]
    split = f", train N <= {fit.train_max_n:.4g}" if fit.train_max_n is not None else ""
    lines.append(f"fitted on {fit.n_points} points ({fit.n_runs} runs) from {fit.source}{split}; "
                 f"N counts {n_words(fit.n_convention)}")
    lines.append(f"objective (sum of Huber, delta={fit.delta:g}): {fit.objective:.6g}   procedure: {fit.procedure}")
    for name, alt in fit.alternatives.items():
        lines.append(f"  {name:>6} fit objective: {alt.objective:.6g}")
    if fit.starts is not None:
        s = fit.starts
        lines.append(
            f"starts: {s.total} total, {s.converged} converged, {s.near_best} within 1e-6 of the best, "
            f"{s.distinct_optima} distinct optima; status counts: "
            + ", ".join(f"{k}={v}" for k, v in s.by_status.items() if v)
        )
    header = ["parameter", "value", "unit"]
    errors = fit.standard_errors
    if errors is not None:
        header.append("stderr (Hessian)")
    boot = fit.bootstrap
    if boot is not None:
        header.append(f"{boot.level:.0%} interval ({len(boot.draws)} draws)")
    rows = []
    for p in law.params:
        row = [p.name + (" (fixed)" if p.name in fit.fixed else ""), num(fit.params[p.name], 6), p.unit]
        if errors is not None:
            row.append(num(errors.stderr.get(p.name), 3))
        if boot is not None:
            lo, hi = boot.intervals[p.name]
            row.append(f"[{num(lo)}, {num(hi)}]")
        rows.append(row)
    lines += ["", table(header, rows)]
    if errors is not None:
        lines.append(f"stderr: {errors.note}")
        strong = [f"{a}~{b} {r:+.3f}" for i, (a, row) in enumerate(errors.correlation.items())
                  for b, r in list(row.items())[i + 1:] if r == r and abs(r) >= STRONG_CORRELATION]
        if strong:
            lines.append(f"strongly correlated (|r| >= {STRONG_CORRELATION}): " + ", ".join(strong))
    lines.append("")
    score_rows = [["train", *_metric_cells(fit.metrics.get("train")), str(fit.n_points)]]
    test = fit.metrics.get("test")
    if test is not None:
        score_rows.append(["test (held-out sizes)", *_metric_cells(test), str(test.n_points)])
    if fit.leave_one_size_out is not None:
        score_rows.append(["leave-one-size-out", *_metric_cells(fit.leave_one_size_out), str(fit.leave_one_size_out.n_points)])
    lines.append(table(["split", "R² (loss)", "Huber (log loss)", "Huber mean", "points"], score_rows))
    note = weak_note([fit.metrics.get("train"), test, fit.leave_one_size_out])
    return "\n".join([*lines, note] if note else lines)


def comparison_table(fits: Sequence[FitResult], points: LossPoints) -> str:
    """MuPT Table 3: train/test R² and Huber for every law and procedure, plus leave-one-size-out.

    A law with a base appears twice: its staged fit (the paper's procedure) and its joint fit.
    """
    threshold = fits[0].train_max_n
    head = [(f"Law comparison on {points.source}: {len(points)} points, {points.n_runs} runs, "
             f"{len(points.sizes)} model sizes; N counts {n_words(points.n_convention)}")]
    if threshold is not None:
        n_test = sum(points.N > threshold)
        head.append(f"train: N <= {threshold:.4g} ({len(points) - n_test} points); test: larger models ({n_test} points)")
    rows = []
    for fit in fits:
        law = get_law(fit.law)
        rows.append([
            f"{law.name} ({law.equation})",
            fit.procedure,
            *_metric_cells(fit.metrics.get("train")),
            *_metric_cells(fit.metrics.get("test")),
            *_metric_cells(fit.leave_one_size_out),
        ])
    header = ["law", "procedure", "R² train", "Huber train", "mean", "R² test", "Huber test", "mean",
              "R² LOSO", "Huber LOSO", "mean"]
    body = table(header, rows)
    footer = ""
    tested = [f for f in fits if f.metrics.get("test") is not None]
    if tested:
        best = min(tested, key=lambda f: f.metrics["test"].huber_mean)  # type: ignore[union-attr]
        footer += f"\nlowest held-out Huber: {best.law} ({best.procedure})"
    loso = [f for f in fits if f.leave_one_size_out is not None]
    if loso:
        best = best_fit(loso)
        footer += (f"\nlowest leave-one-size-out Huber: {best.law} ({best.procedure}) — what a campaign fitting "
                   "these laws would plan with")
    note = weak_note([m for f in fits for m in (f.metrics.get("test"), f.leave_one_size_out)])
    return "\n".join(head) + "\n\n" + body + footer + ("\n" + note if note else "")


def _interval(plan_interval: object, key: str) -> str:
    if not plan_interval or key not in plan_interval:  # type: ignore[operator]
        return ""
    lo, hi = plan_interval[key]  # type: ignore[index]
    return f"   [{num(lo)}, {num(hi)}]"


def plan_report(fit: FitResult, plan: ComputeOptimalPlan) -> str:
    lines = [f"compute-optimal plan with {fit.law} ({fit.source or fit.procedure})"]
    budget = f"C = {plan.flops:.4g} FLOPs (C = 6·N·D: N·D = {plan.flops / FLOPS_PER_PARAM_TOKEN:.4g})"
    budget += f", U_D = {plan.unique_tokens:.4g} unique tokens" if plan.unique_tokens is not None else ", unlimited unique data"
    lines.append(budget)
    if plan.level is not None:
        lines.append(f"intervals: {plan.level:.0%} bootstrap percentiles")
    lines.append(f"  N*      = {plan.n_opt:.4g} {n_words(fit.n_convention)}{_interval(plan.interval, 'n_opt')}")
    lines.append(f"  D*      = {plan.d_opt:.4g} tokens{_interval(plan.interval, 'd_opt')}")
    if plan.epochs is not None:
        lines.append(f"  epochs* = {plan.epochs:.4g}{_interval(plan.interval, 'epochs')}")
    lines.append(f"  loss    = {plan.loss:.4g}{_interval(plan.interval, 'loss')}")
    if plan.closed_form is not None:
        lines.append(
            f"  closed form (MuPT Eq. 10): N_opt = {plan.closed_form['n_opt']:.4g}, D_opt = {plan.closed_form['d_opt']:.4g}"
        )
    if plan.at_search_edge:
        lines.append("  warning: the optimum lies at the edge of the searched range of N; the law may not bound it")
    return "\n".join(lines)


def token_plan_report(fit: FitResult, plan: TokenPlan) -> str:
    lines = [
        f"token plan with {fit.law} for N = {plan.n_params:.4g} {n_words(fit.n_convention)} and U_D = {plan.unique_tokens:.4g} unique tokens",
        f"  lowest loss {plan.loss_best:.4g} at D = {plan.d_best:.4g} tokens ({plan.epochs_best:.4g} epochs)"
        + _interval(plan.interval, "epochs_best"),
        "  the loss turns up after that (overfitting onset)"
        if plan.overfits
        else "  the loss still falls at the largest epoch count considered: no overfitting onset predicted",
        "",
        table(["epochs", "tokens", "loss"], [[num(e), num(e * plan.unique_tokens), num(v, 5)] for e, v in zip(plan.epochs, plan.losses, strict=True)]),
    ]
    return "\n".join(lines)
