"""What ``smslab campaign simulate`` prints: per strategy, the FLOPs and rounds to the tolerance, the coverage of
the truth's N* by the final interval, and the final error in N*; the scale the truth was evaluated at."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from sweeps.simulate import STRATEGIES, Simulation, Trajectory

LABELS = {"proposals": "(a) smslab proposals", "denser grid": "(b) denser grid", "random runs": "(c) random runs"}


def truth_losses(sim: Simulation) -> Mapping[str, float]:
    """The truth's loss at every grid and pool run (no noise): how far it is from its fitted range."""
    return {r.run_id: sim.truth_loss(r) for r in (*sim.grid, *sim.pool)}


def log_error(sim: Simulation, t: Trajectory) -> float:
    return abs(math.log(t.rounds[-1].n_opt / sim.n_opt))


def covered(sim: Simulation, t: Trajectory) -> bool | None:
    interval = t.rounds[-1].interval
    return None if interval is None else interval[0] <= sim.n_opt <= interval[1]


def summary(sim: Simulation, trajectories: Sequence[Trajectory]) -> list[dict[str, object]]:
    tolerance = sim.settings.tolerance
    out = []
    for strategy in STRATEGIES:
        mine = [t for t in trajectories if t.strategy == strategy]
        reached = [r for t in mine if (r := t.reached(tolerance)) is not None]
        cover = [c for t in mine if (c := covered(sim, t)) is not None]
        # Upper/lower of every final interval, trusted or not (the stop rule uses only trusted ones).
        ratios = [hi / lo for t in mine if (span := t.rounds[-1].interval) and (lo := span[0]) > 0 for hi in [span[1]]]
        out.append({
            "strategy": strategy, "campaigns": len(mine), "reached": len(reached),
            "median_rounds_to_tolerance": statistics.median(r.number for r in reached) if reached else None,
            "median_flops_to_tolerance": statistics.median(r.spent_flops for r in reached) if reached else None,
            "median_flops_spent": statistics.median(t.rounds[-1].spent_flops for t in mine),
            "median_runs": statistics.median(t.rounds[-1].runs for t in mine),
            "median_final_ratio": statistics.median(ratios) if ratios else None,
            "coverage": sum(cover) / len(cover) if cover else None,
            "median_abs_log_error": statistics.median(log_error(sim, t) for t in mine),
            "max_abs_log_error": max(log_error(sim, t) for t in mine),
            "untrusted_final_intervals": sum(1 for t in mine if t.rounds[-1].interval and t.rounds[-1].ratio is None),
        })
    return out


def scale_notes(sim: Simulation, known_vocab: bool) -> list[str]:
    """Where the truth is evaluated: the campaign's runs in the truth's units, and the losses it gives there."""
    runs = [*sim.grid, *sim.pool]
    losses = truth_losses(sim)

    def span(xs: Sequence[float]) -> str:
        return f"[{min(xs):.3g}, {max(xs):.3g}]"

    notes = [(f"the truth ({sim.truth.law}, fitted on {sim.truth.n_runs} runs of {sim.truth.source or 'unknown points'}) "
             f"is evaluated at N {span([r.n_params * sim.n_scale for r in runs])}, "
             f"D {span([r.tokens * sim.d_scale for r in runs])}, "
             f"U_D {span([r.unique_tokens * sim.d_scale for r in runs])} (the runs' N x {sim.n_scale:g}, "
             f"D and U_D x {sim.d_scale:g}); it gives final losses {span(list(losses.values()))} nats there")]
    if sim.truth.train_max_n is not None and max(r.n_params * sim.n_scale for r in runs) > sim.truth.train_max_n:
        notes.append(f"warning: N beyond the truth's training range (N <= {sim.truth.train_max_n:.3g})")
    for name, values in (("N", [r.n_params * sim.n_scale for r in runs]), ("D", [r.tokens * sim.d_scale for r in runs])):
        lo, hi = sim.truth.fitted_ranges.get(name, (0.0, math.inf))
        if min(values) < lo / 3 or max(values) > hi * 3:
            notes.append(f"warning: {name} {span(values)} reaches beyond 3x the range the truth was fitted on "
                         f"[{lo:.3g}, {hi:.3g}]: see --rescale")
    vocab = sim.campaign.corpus_info.manifest.vocab_size if sim.campaign.corpus_info else 0
    if known_vocab and max(losses.values()) > math.log(vocab):
        notes.append(f"warning: the truth predicts losses above ln V = {math.log(vocab):.3g} nats (a uniform guess over "
                     f"the corpus's {vocab} tokens) for {sum(v > math.log(vocab) for v in losses.values())} of "
                     f"{len(losses)} runs: it is evaluated far outside the range it was fitted on, and the numbers "
                     "below measure the loop on a law no model of this size follows; see --rescale")
    if sim.truth_at_edge:
        notes.append("warning: the truth's N* lies at the edge of the searched N range (MuPT Eq. 1 has no interior "
                     "optimum there)")
    return notes


def table(sim: Simulation, trajectories: Sequence[Trajectory], seconds: float, known_vocab: bool,
          bootstrap_note: str) -> str:
    s = sim.settings
    rows = summary(sim, trajectories)
    seeds = rows[0]["campaigns"]
    lines = [f"# Simulated campaign {sim.campaign.name} ({sim.campaign.source})", "",
             (f"truth N* = {sim.n_opt:.4g} for C = {s.target_flops:.3g} FLOPs on U_D = {sim.unique_tokens:.4g} "
             f"(the truth law, lawfit.planning); tolerance upper/lower <= {s.tolerance:g}, budget "
             f"{s.budget_flops:.3g} FLOPs, max_rounds {s.max_rounds}, runs_per_round {s.runs_per_round}, "
             f"{s.level:.0%} intervals"),
             f"laws {', '.join(s.laws)}; {bootstrap_note}; noise: log L = log L_truth + {sim.noise:g}·ε, "
             f"ε ~ N(0,1) per run; {seeds} seeds; grid {len(sim.grid)} runs, {sim.grid_flops():.3g} FLOPs"
             + (f" (+{sim.searched_flops:.3g} learning-rate search)" if sim.searched_flops else ""),
             *scale_notes(sim, known_vocab), "",
             (f"{'strategy':<22} {'reached':>8} {'rounds':>6} {'FLOPs to tol':>13} {'FLOPs spent':>12} {'runs':>5} "
             f"{'final hi/lo':>11} {'coverage':>9} {'|log err| med':>13} {'max':>6}")]
    for r in rows:
        reached = f"{r['reached']}/{r['campaigns']}"
        to_tol = f"{r['median_flops_to_tolerance']:.3g}" if r["reached"] else "not reached"
        rounds = f"{r['median_rounds_to_tolerance']:g}" if r["reached"] else "-"
        ratio = f"{r['median_final_ratio']:.3g}" if r["median_final_ratio"] is not None else "-"
        cover = f"{r['coverage']:.0%}" if r["coverage"] is not None else "-"
        lines.append(f"{LABELS[str(r['strategy'])]:<22} {reached:>8} {rounds:>6} {to_tol:>13} "
                     f"{r['median_flops_spent']:>12.3g} {r['median_runs']:>5g} {ratio:>11} {cover:>9} "
                     f"{r['median_abs_log_error']:>13.3g} {r['max_abs_log_error']:>6.3g}")
    for r in rows:
        if r["untrusted_final_intervals"]:
            lines.append(f"{LABELS[str(r['strategy'])]}: {r['untrusted_final_intervals']} final interval(s) from fewer "
                         "than half the bootstrap fits converged (not stopped on)")
    stops: dict[str, int] = {}
    for t in trajectories:
        key = f"{LABELS[t.strategy]}: {t.stop}"
        stops[key] = stops.get(key, 0) + 1
    lines += ["", ("reached: campaigns whose N* interval got within the tolerance; rounds, FLOPs to tol: medians over "
              "those; FLOPs spent, runs, final hi/lo: medians at the end; coverage: share of campaigns whose final "
              "interval holds the truth's N*; |log err|: |log(N*_est / N*_truth)| at the end. (b) and (c) spend at "
              "most what (a) had spent by each round."), "", "stopped:",
              *(f"  {count:>3} x {key}" for key, count in sorted(stops.items())), "",
              f"{len(trajectories)} campaigns in {seconds:.0f} s ({seconds / max(seeds, 1):.1f} s per seed)"]  # type: ignore[call-overload]
    return "\n".join(lines)


def as_json(sim: Simulation, trajectories: Sequence[Trajectory], seconds: float, known_vocab: bool,
            bootstrap: int) -> dict[str, object]:
    s = sim.settings
    return {
        "spec": str(sim.campaign.source), "truth_law": sim.truth.law, "truth_n_opt": sim.n_opt,
        "target_flops": s.target_flops, "unique_tokens": sim.unique_tokens, "tolerance": s.tolerance,
        "budget_flops": s.budget_flops, "noise": sim.noise, "bootstrap": bootstrap, "laws": list(s.laws),
        "rescale": {"N": sim.n_scale, "D": sim.d_scale}, "notes": scale_notes(sim, known_vocab),
        "seconds": seconds, "strategies": summary(sim, trajectories),
        "campaigns": [{"strategy": t.strategy, "seed": t.seed, "stop": t.stop, "added": list(t.added),
                       "covered": covered(sim, t), "abs_log_error": log_error(sim, t),
                       "rounds": [{"number": r.number, "runs": r.runs, "spent_flops": r.spent_flops, "law": r.law,
                                   "n_opt": r.n_opt, "interval": list(r.interval) if r.interval else None,
                                   "ratio": r.ratio, "bootstrap_draws_kept": r.draws} for r in t.rounds]} for t in trajectories],
    }
