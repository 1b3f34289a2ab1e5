"""The fit result that crosses package lines: frozen, JSON in and out."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lawfit.errors import LawfitInputError
from lawfit.names import N_CONVENTIONS, N_UNSTATED
from lawfit.scoring import Metrics

FORMAT = "smslab.fit/1"


@dataclass(frozen=True)
class StartsReport:
    """What the multi-start L-BFGS did: how many starts converged and how far apart their optima are."""

    total: int
    converged: int
    by_status: Mapping[str, int]
    near_best: int  # starts whose objective is within 1e-6 (relative) of the best
    distinct_optima: int  # converged objectives that differ by more than 1e-6 (relative)
    converged_objective: Mapping[str, float]  # best / median / worst over converged starts
    param_spread_near_best: Mapping[str, float]  # max |p − p_best| / |p_best| over near-best starts


@dataclass(frozen=True)
class Alternative:
    """One procedure's optimum (staged or joint)."""

    objective: float
    params: Mapping[str, float]


@dataclass(frozen=True)
class Bootstrap:
    """Refits on resampled runs: one parameter set per draw that reached an optimum, and their percentile
    intervals; ``requested`` draws were made, ``converged`` of them kept."""

    draws: tuple[Mapping[str, float], ...]
    level: float
    seed: int
    converged: int
    intervals: Mapping[str, tuple[float, float]]
    requested: int = 0


@dataclass(frozen=True)
class ParameterErrors:
    """Standard errors (raw units), correlations and covariance of the free parameters, from the Hessian of
    the objective at the optimum (``lawfit.uncertainty`` computes them and says how in ``note``)."""

    stderr: Mapping[str, float]  # NaN where not identifiable
    correlation: Mapping[str, Mapping[str, float]]  # correlation[a][b], 1 on the diagonal
    covariance: Mapping[str, Mapping[str, float]]
    form: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"form": self.form, "note": self.note, "stderr": dict(self.stderr),
                "correlation": {k: dict(v) for k, v in self.correlation.items()},
                "covariance": {k: dict(v) for k, v in self.covariance.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterErrors:
        def nested(m: Mapping[str, Any]) -> dict[str, dict[str, float]]:
            return {a: {b: _num(v) for b, v in row.items()} for a, row in m.items()}

        return cls({k: _num(v) for k, v in data["stderr"].items()}, nested(data["correlation"]),
                   nested(data["covariance"]), str(data["form"]), str(data["note"]))


@dataclass(frozen=True)
class FitResult:
    law: str
    params: Mapping[str, float]  # raw units (parameters, tokens), as in the paper's formulas
    units: Mapping[str, str]
    fixed: tuple[str, ...]
    objective: float  # Σ Huber over the training points (MuPT Eq. 16), weights applied
    n_points: int
    n_runs: int
    points_hash: str
    delta: float
    train_max_n: float | None
    metrics: Mapping[str, Metrics | None]  # "train", "test"
    starts: StartsReport | None
    procedure: str  # "joint", "staged", "scored" (every parameter fixed) or "preset"
    alternatives: Mapping[str, Alternative] = field(default_factory=dict)
    leave_one_size_out: Metrics | None = None
    bootstrap: Bootstrap | None = None
    source: str = ""
    # What N counts in the points the fit was made on (lawfit.names.N_CONVENTIONS, or "unstated").
    n_convention: str = N_UNSTATED
    # The training points' range of N, D and (with U_D) epochs D/U_D: where the law was measured.
    fitted_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    standard_errors: ParameterErrors | None = None

    def with_standard_errors(self, errors: ParameterErrors) -> FitResult:
        return replace(self, standard_errors=errors)

    def with_bootstrap(self, bootstrap: Bootstrap) -> FitResult:
        return replace(self, bootstrap=bootstrap)

    def to_dict(self) -> dict[str, Any]:
        metrics = {k: (m.to_dict() if m is not None else None) for k, m in self.metrics.items()}
        out: dict[str, Any] = {
            "format": FORMAT,
            "law": self.law,
            "params": dict(self.params),
            "units": dict(self.units),
            "fixed": list(self.fixed),
            "objective": self.objective,
            "n_points": self.n_points,
            "n_runs": self.n_runs,
            "points_hash": self.points_hash,
            "delta": self.delta,
            "train_max_n": self.train_max_n,
            "metrics": metrics,
            "leave_one_size_out": self.leave_one_size_out.to_dict() if self.leave_one_size_out else None,
            "starts": None,
            "procedure": self.procedure,
            "alternatives": {k: {"objective": a.objective, "params": dict(a.params)} for k, a in self.alternatives.items()},
            "bootstrap": None,
            "source": self.source,
            "n_convention": self.n_convention,
            "fitted_ranges": {k: list(v) for k, v in self.fitted_ranges.items()},
            "standard_errors": self.standard_errors.to_dict() if self.standard_errors is not None else None,
        }
        if self.starts is not None:
            out["starts"] = asdict(self.starts)
        if self.bootstrap is not None:
            b = self.bootstrap
            out["bootstrap"] = {
                "level": b.level,
                "seed": b.seed,
                "n_draws": len(b.draws),
                "converged": b.converged,
                "requested": b.requested,
                "intervals": {k: list(v) for k, v in b.intervals.items()},
                "draws": [dict(d) for d in b.draws],
            }
        return _json_safe(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<fit>") -> FitResult:
        try:
            if data.get("format") != FORMAT:
                raise LawfitInputError(f"{source}: not a smslab fit file (format {data.get('format')!r}, expected {FORMAT!r})")
            metrics = {k: (Metrics.from_dict(v) if v is not None else None) for k, v in data["metrics"].items()}
            s = data.get("starts")
            starts = (
                StartsReport(
                    total=int(s["total"]),
                    converged=int(s["converged"]),
                    by_status=dict(s["by_status"]),
                    near_best=int(s["near_best"]),
                    distinct_optima=int(s["distinct_optima"]),
                    converged_objective={k: _num(v) for k, v in s["converged_objective"].items()},
                    param_spread_near_best={k: _num(v) for k, v in s["param_spread_near_best"].items()},
                )
                if s
                else None
            )
            b = data.get("bootstrap")
            bootstrap = (
                Bootstrap(
                    draws=tuple({k: _num(v) for k, v in d.items()} for d in b["draws"]),
                    level=float(b["level"]),
                    seed=int(b["seed"]),
                    converged=int(b["converged"]),
                    intervals={k: (_num(v[0]), _num(v[1])) for k, v in b["intervals"].items()},
                    requested=int(b.get("requested", len(b["draws"]))),
                )
                if b
                else None
            )
            loso = data.get("leave_one_size_out")
            fit = cls(
                law=str(data["law"]),
                params={k: _num(v) for k, v in data["params"].items()},
                units=dict(data.get("units", {})),
                fixed=tuple(data.get("fixed", ())),
                objective=_num(data["objective"]),
                n_points=int(data["n_points"]),
                n_runs=int(data.get("n_runs", data["n_points"])),
                points_hash=str(data.get("points_hash", "")),
                delta=float(data.get("delta", 1e-3)),
                train_max_n=None if data.get("train_max_n") is None else float(data["train_max_n"]),
                metrics=metrics,
                starts=starts,
                procedure=str(data.get("procedure", "joint")),
                alternatives={
                    k: Alternative(_num(v["objective"]), {p: _num(x) for p, x in v["params"].items()})
                    for k, v in data.get("alternatives", {}).items()
                },
                leave_one_size_out=Metrics.from_dict(loso) if loso else None,
                bootstrap=bootstrap,
                source=str(data.get("source", "")),
                n_convention=_n_convention(data.get("n_convention", N_UNSTATED), source),
                fitted_ranges={k: (float(v[0]), float(v[1])) for k, v in data.get("fitted_ranges", {}).items()},
                standard_errors=ParameterErrors.from_dict(data["standard_errors"]) if data.get("standard_errors") else None,
            )
            check_against_law(fit, source)
            return fit
        except LawfitInputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LawfitInputError(f"{source}: malformed fit file ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> str:
        """The fit file's text (what ``write`` writes)."""
        return json.dumps(_json_safe(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def write(self, path: str | Path) -> None:
        """Write as JSON atomically: a temporary file in the same folder, then rename."""
        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> FitResult:
        file = Path(path)
        if not file.is_file():
            raise LawfitInputError(f"{file}: no such fit file")
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LawfitInputError(f"{file}: not a JSON fit file: {exc}") from None
        if not isinstance(data, dict):
            raise LawfitInputError(f"{file}: not a JSON fit file (top level is not an object)")
        return cls.from_dict(data, source=str(file))


def _n_convention(value: object, source: str) -> str:
    if value != N_UNSTATED and value not in N_CONVENTIONS:
        raise LawfitInputError(f"{source}: n_convention {value!r} is not one of {', '.join((*N_CONVENTIONS, N_UNSTATED))}")
    return str(value)


def check_against_law(fit: FitResult, source: str) -> None:
    """A fit read from a file names a registered law and holds exactly its parameters, each finite and within
    its bounds (in ``params``, every bootstrap draw and interval), with the law's units: a plan made from
    anything else would be confidently wrong. The error names the field."""
    from lawfit.laws.base import get_law

    try:
        law = get_law(fit.law)
    except KeyError as exc:
        raise LawfitInputError(f"{source}: law: {exc.args[0]} (a fit of a user law needs its law file: "
                               "--law-file)") from None
    expected = set(law.param_names)

    def check_names(field: str, names: Any) -> None:
        missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
        if missing or extra:
            problem = "; ".join(part for part in (
                f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(extra)}" if extra else "") if part)
            raise LawfitInputError(f"{source}: {field}: not the parameters of law {law.name!r} ({problem}); "
                                   f"its parameters are {', '.join(law.param_names)}")

    def check_values(field: str, values: Mapping[str, float]) -> None:
        for name in law.param_names:
            spec, value = law.spec(name), float(values[name])
            # Scale parameters (log transform) are fitted unbounded when centred (lawfit/objective.py), so a
            # fit may hold one beyond its nominal range: it must be a finite positive number.
            problem = spec.check(value) if spec.transform != "log" or not math.isfinite(value) else (
                None if value > 0 else f"{name}={value!r} must be positive (a scale parameter)")
            if problem:
                raise LawfitInputError(f"{source}: {field}.{name}: {problem}")

    check_names("params", fit.params)
    check_values("params", fit.params)
    if fit.units:
        check_names("units", fit.units)
        for name, unit in fit.units.items():
            if unit != law.spec(name).unit:
                raise LawfitInputError(f"{source}: units.{name}: {unit!r}, but law {law.name!r} measures {name} "
                                       f"in {law.spec(name).unit!r}")
    unknown_fixed = sorted(set(fit.fixed) - expected)
    if unknown_fixed:
        raise LawfitInputError(f"{source}: fixed: law {law.name!r} has no parameter {unknown_fixed[0]!r}")
    if fit.bootstrap is not None:
        for i, draw in enumerate(fit.bootstrap.draws):
            check_names(f"bootstrap.draws[{i}]", draw)
            check_values(f"bootstrap.draws[{i}]", draw)
        check_names("bootstrap.intervals", fit.bootstrap.intervals)
        for name, (low, high) in fit.bootstrap.intervals.items():
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise LawfitInputError(f"{source}: bootstrap.intervals.{name}: [{low}, {high}] is not a finite interval")
        if not 0.0 < fit.bootstrap.level < 1.0:
            raise LawfitInputError(f"{source}: bootstrap.level: {fit.bootstrap.level} is not in (0, 1)")


def _num(value: Any) -> float:
    """JSON value to float; None stands for a non-finite number."""
    return float("nan") if value is None else float(value)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def selection_huber(fit: FitResult) -> float:
    """The score a law is chosen by: its mean leave-one-size-out Huber where the fit was so scored (it
    scores every size as unseen), else its mean train Huber; lower is better."""
    metrics = fit.leave_one_size_out or fit.metrics.get("train")
    return metrics.huber_mean if metrics is not None else math.inf


def best_fit(fits: Sequence[FitResult]) -> FitResult:
    """The law that predicts unseen model sizes best (lowest ``selection_huber``)."""
    return min(fits, key=selection_huber)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created like any file (mode from the umask, unlike mkstemp's 0600): fits are shared.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x") as handle:
            json.dump(_json_safe(data), handle, indent=2, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
