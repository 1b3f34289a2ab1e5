"""User-defined laws: a law of one's own, fitted like the built-in ones (MuPT Eq. 16, same grid and batched L-BFGS).

A law file is a Python file (see docs/examples/my_law.py) that defines

- ``NAME``: the law's name; not one of the built-in laws (``lawfit.names.LAW_NAMES``).
- ``EXPRESSION``: the predicted loss L̂ in N, D, U_D, ``Dpp`` and the parameter names, e.g.
  ``"A/N**alpha + B/D**beta + E"`` (``^`` also means power; functions: exp, log, sqrt, tanh, erf).
  ``Dpp`` is D'' = (1 − k^(D/U_D))/(1 − k)·U_D (MuPT Eq. 3), computed like the built-in ``dprime`` law;
  it needs a parameter ``k`` with 0 < min and max < 1.
- ``PARAMS``: an ``lmfit.Parameters``: ``value``, bounds ``min``/``max``, ``vary=False`` for a held
  parameter and ``expr`` for a tied one; ``user_data={"unit": ..., "description": ...}`` is optional.
- optional ``GRID`` (name -> start values, raw units), ``TITLE`` and ``DOC``.

Conventions:

- A parameter with min > 0 (a scale) is fitted as log(value), any other as the value itself.
- Bounds may be infinite, as in lmfit: the coordinate is then unbounded.
- Tied parameters are not fitted: their ``expr`` (in parameter names only) is substituted into the
  expression before it is differentiated, so they are not parameters of the law; ``LoadedLaw.tied_values``
  computes them from a fit. Their min/max are ignored.
- Held parameters stay parameters of the law, listed in ``LoadedLaw.fixed``: pass
  ``FitOptions(fixed=loaded.fixed)`` to ``fit_law``.
- Default starts (``GRID`` replaces them per parameter): the value; for a free parameter also, with
  at most 7 free parameters, two more: value·e^−3 and value·e^3 for a log parameter, the quarter and
  three-quarter points of [min, max] for a linear one (value ± max(1, |value|) if a bound is
  infinite), clipped to the bounds; with 8 to 12 free parameters one more (the larger); beyond, the value.
- log L̂ = log(EXPRESSION); where the expression is ≤ 0 the start is infeasible (objective inf).
- The optimiser's centring (``lawfit.objective.CENTRING``) goes by parameter name, so user
  parameters called A, alpha, B, beta, d, k_in, k_n, k_u are centred like the built-ins' ones.

The gradient is exact: sympy differentiates the expression and lambdify turns value and
derivatives into one numpy function (common subexpressions shared).
"""

from __future__ import annotations

import math
import re
import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import lmfit
import numpy as np
import sympy
from sympy.core.function import AppliedUndef, ArgumentIndexError
from sympy.parsing.sympy_parser import auto_number, auto_symbol, convert_xor, parse_expr

from lawfit.errors import LawfitInputError
from lawfit.laws.base import Array, Covariates, Gradient, Law, ParamSpec, all_laws, register
from lawfit.laws.mupt import log_d_double_prime
from lawfit.names import LAW_NAMES

COVARIATES = ("N", "D", "U_D")
FUNCTIONS: dict[str, Any] = {"exp": sympy.exp, "log": sympy.log, "sqrt": sympy.sqrt, "tanh": sympy.tanh,
                             "erf": sympy.erf}
RESERVED = {*COVARIATES, "Dpp", "pi", *FUNCTIONS}
_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_TRANSFORMS = (auto_symbol, auto_number, convert_xor)
_SPREAD_FULL, _SPREAD_ONE = 7, 12  # free parameters up to which the default grid adds two, one extra start


class DoublePrime(sympy.Function):
    """D''(k, D, U_D) of MuPT Eq. 3, evaluated by ``lawfit.laws.mupt.log_d_double_prime`` (its expm1 form)."""

    nargs = 3

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        if argindex == 1:  # only k carries parameters: D and U_D are data
            return DoublePrimeDk(*self.args)
        raise ArgumentIndexError(self, argindex)


class DoublePrimeDk(sympy.Function):
    """dD''/dk (MuPT Eq. 3)."""

    nargs = 3


def _double_prime(k: Array, d: Array, u: Array) -> Array:
    return np.exp(log_d_double_prime(k, Covariates(d, d, u))[0])


def _double_prime_dk(k: Array, d: Array, u: Array) -> Array:
    log_value, dlog_dk = log_d_double_prime(k, Covariates(d, d, u))
    return np.exp(log_value) * dlog_dk


_NUMERIC = [{"DoublePrime": _double_prime, "DoublePrimeDk": _double_prime_dk}, "numpy"]


class _Param(NamedTuple):
    """One lmfit parameter as read from PARAMS (hashable: a law file's definition is compared by these)."""

    name: str
    value: float
    lower: float
    upper: float
    vary: bool
    expr: str | None
    unit: str
    description: str


@dataclass(frozen=True)
class LoadedLaw:
    """A law file's law (registered under its NAME), its held parameters and its tied ones."""

    law: Law
    fixed: Mapping[str, float]  # vary=False parameters: pass as FitOptions(fixed=...)
    tied: Mapping[str, str]  # name -> expr as written in PARAMS
    path: str
    expression: str
    _tied_fns: Mapping[str, Callable[..., Any]] = field(repr=False, compare=False, default_factory=dict)

    def tied_values(self, params: Mapping[str, float]) -> dict[str, float]:
        """The tied parameters' values at ``params`` (raw values of the law's parameters)."""
        args = [float(params[n]) for n in self.law.param_names]
        return {name: float(fn(*args)) for name, fn in self._tied_fns.items()}


_LOCK = threading.Lock()
_LOADED: dict[str, tuple[tuple[Any, ...], LoadedLaw]] = {}


def held_values(law_name: str) -> dict[str, float]:
    """The values a loaded user law holds (its ``vary=False`` parameters); {} for any other law."""
    cached = _LOADED.get(law_name)
    return dict(cached[1].fixed) if cached is not None else {}


def load_law_file(path: str | Path) -> LoadedLaw:
    """Read, check, build and register the law of a law file; loading the same definition again is a no-op.

    A different definition under a NAME already registered is refused: fits cached under that name
    (``GridCache``) would otherwise be reused for the new law.
    """
    file = Path(path)
    spec = _read(file)
    with _LOCK:
        name = spec["NAME"]
        cached = _LOADED.get(name)
        existing = next((law for law in all_laws() if law.name == name), None)
        if cached is not None and cached[0] == spec["key"] and (existing is None or existing is cached[1].law):
            if existing is None:  # the registry was reset (tests): register it again
                register(cached[1].law)
            return cached[1]
        if existing is not None:
            origin = f" from {cached[1].path}" if cached is not None else ""
            raise LawfitInputError(f"{file}: NAME {name!r}: a law of that name is already registered{origin} with a "
                                   "different definition; give this law another NAME")
        loaded = _build(file, spec)
        register(loaded.law)
        _LOADED[name] = (spec["key"], loaded)
        return loaded


def _read(file: Path) -> dict[str, Any]:
    """Run the law file and check its names and parameters (not yet the expression)."""
    if not file.is_file():
        raise LawfitInputError(f"{file}: no such law file")
    try:
        scope = runpy.run_path(str(file), run_name="lawfit_user_law")
    except SyntaxError as exc:
        raise LawfitInputError(f"{file}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001  the file is the user's code: whatever it raises is bad input
        raise LawfitInputError(f"{file}: running the law file failed: {type(exc).__name__}: {exc}") from None
    for required in ("NAME", "EXPRESSION", "PARAMS"):
        if required not in scope:
            raise LawfitInputError(f"{file}: defines no {required} (a law file defines NAME, EXPRESSION and PARAMS)")
    name, expression, params = scope["NAME"], scope["EXPRESSION"], scope["PARAMS"]
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise LawfitInputError(f"{file}: NAME must be a name of letters, digits, _ and -, got {name!r}")
    if name in LAW_NAMES:
        raise LawfitInputError(f"{file}: NAME {name!r} is a built-in law ({', '.join(LAW_NAMES)}); choose another")
    if not isinstance(expression, str) or not expression.strip():
        raise LawfitInputError(f"{file}: EXPRESSION must be a non-empty string, got {expression!r}")
    if not isinstance(params, lmfit.Parameters) or not params:
        raise LawfitInputError(f"{file}: PARAMS must be a non-empty lmfit.Parameters, got {type(params).__name__}")
    rows: list[_Param] = []
    for p in params.values():
        if p.name in RESERVED:
            raise LawfitInputError(f"{file}: parameter {p.name!r} has a reserved name ({', '.join(sorted(RESERVED))})")
        if p.expr is None:
            _check_value(file, p)
        data = p.user_data if isinstance(p.user_data, dict) else {}
        rows.append(_Param(p.name, float(p.value), float(p.min), float(p.max), bool(p.vary) and p.expr is None, p.expr,
                           str(data.get("unit", "unspecified")), str(data.get("description", ""))))
    grid = scope.get("GRID")
    if grid is not None and not isinstance(grid, Mapping):
        raise LawfitInputError(f"{file}: GRID must be a dict of parameter name -> start values")
    grid_key = None if grid is None else tuple(sorted((str(k), repr(v)) for k, v in grid.items()))
    title, doc = str(scope.get("TITLE", name)), str(scope.get("DOC", f"L = {expression}"))
    key = (expression, tuple(rows), grid_key, title, doc)
    return {"NAME": name, "EXPRESSION": expression, "PARAMS": params, "GRID": grid, "TITLE": title, "DOC": doc,
            "rows": rows, "key": key}


def _check_value(file: Path, p: lmfit.Parameter) -> None:
    # lmfit clips a value outside [min, max] to the bound and keeps the value given in init_value.
    given = p.init_value if p.init_value is not None and p.value in (p.min, p.max) else p.value
    if given is None or not math.isfinite(given):
        raise LawfitInputError(f"{file}: parameter {p.name!r} needs a finite value, got {given!r}")
    if not p.min <= given <= p.max:
        raise LawfitInputError(f"{file}: parameter {p.name!r}: value {given!r} is outside its bounds [{p.min}, {p.max}]")
    if p.vary and not p.min < p.max:
        raise LawfitInputError(f"{file}: parameter {p.name!r}: a free parameter needs min < max (vary=False holds it)")


def _parse(file: Path, what: str, text: str, allowed: set[str]) -> sympy.Expr:
    """``text`` as a sympy expression over the names in ``allowed`` only (nothing else is looked up)."""
    if "__" in text:
        raise LawfitInputError(f"{file}: {what}: {text!r} may not contain '__'")
    local = {n: sympy.Symbol(n) for n in allowed}
    global_dict = {"__builtins__": {}, "Integer": sympy.Integer, "Float": sympy.Float, "Rational": sympy.Rational,
                   "Symbol": sympy.Symbol, "Function": sympy.Function, "pi": sympy.pi, **FUNCTIONS}
    try:
        expr = parse_expr(text, local_dict=local, global_dict=global_dict, transformations=_TRANSFORMS)
    except Exception as exc:  # noqa: BLE001  SyntaxError, TokenError, TypeError ...: an unreadable expression
        raise LawfitInputError(f"{file}: {what}: cannot parse {text!r} ({type(exc).__name__}: {exc})") from None
    if not isinstance(expr, sympy.Expr):
        raise LawfitInputError(f"{file}: {what}: {text!r} is not an arithmetic expression")
    unknown_fns = sorted(str(f.func) for f in expr.atoms(AppliedUndef))
    if unknown_fns:
        raise LawfitInputError(f"{file}: {what}: unknown function {unknown_fns[0]!r}; known: {', '.join(FUNCTIONS)}")
    unknown = sorted(str(s) for s in expr.free_symbols if str(s) not in allowed)
    if unknown:
        raise LawfitInputError(f"{file}: {what}: unknown name {unknown[0]!r} in {text!r}; "
                               f"it may use {', '.join(sorted(allowed))}")
    return expr


def _resolve_ties(file: Path, ties: Mapping[str, sympy.Expr]) -> dict[str, sympy.Expr]:
    """Each tied parameter's expression in untied parameters only; a cycle of ties is refused."""
    resolved: dict[str, sympy.Expr] = {}

    def visit(name: str, chain: tuple[str, ...]) -> sympy.Expr:
        if name in chain:
            raise LawfitInputError(f"{file}: tied parameters form a cycle: {' -> '.join((*chain, name))}")
        if name not in resolved:
            expr = ties[name]
            deps = {str(s) for s in expr.free_symbols} & set(ties)
            resolved[name] = expr.xreplace({sympy.Symbol(d): visit(d, (*chain, name)) for d in deps})
        return resolved[name]

    for name in ties:
        visit(name, ())
    return resolved


def _build(file: Path, spec: Mapping[str, Any]) -> LoadedLaw:
    params: lmfit.Parameters = spec["PARAMS"]
    names = set(params)
    ties = {p.name: _parse(file, f"expr of {p.name!r}", p.expr, names) for p in params.values() if p.expr is not None}
    resolved = _resolve_ties(file, ties)
    expr = _parse(file, "EXPRESSION", spec["EXPRESSION"], names | {*COVARIATES, "Dpp"})
    expr = expr.xreplace({sympy.Symbol(t): e for t, e in resolved.items()})
    if sympy.Symbol("Dpp") in expr.free_symbols:
        if "k" not in names:
            raise LawfitInputError(f"{file}: EXPRESSION uses Dpp, D'' = (1 - k^(D/U_D))/(1 - k)·U_D, but PARAMS has no k")
        k = params["k"]
        if k.expr is None and not (k.min > 0 and k.max < 1):
            raise LawfitInputError(f"{file}: parameter 'k' of D'' needs 0 < min and max < 1 (D'' divides by 1 - k); "
                                   "e.g. min=1e-6, max=1 - 1e-9, as the built-in dprime law")
        k_expr = resolved.get("k", sympy.Symbol("k"))
        expr = expr.xreplace({sympy.Symbol("Dpp"): DoublePrime(k_expr, sympy.Symbol("D"), sympy.Symbol("U_D"))})
    law_params: list[_Param] = [row for row in spec["rows"] if row.expr is None]  # untied ones, in PARAMS order
    used = {str(s) for s in expr.free_symbols}
    unused = [row.name for row in law_params if row.name not in used]
    if unused:
        raise LawfitInputError(f"{file}: parameter {unused[0]!r} does not appear in EXPRESSION (nor in a tie it uses)")

    param_names = tuple(row.name for row in law_params)
    specs = tuple(ParamSpec(row.name, row.unit, row.lower, row.upper, "log" if row.lower > 0 else "linear",
                            description=row.description) for row in law_params)
    fixed = {row.name: row.value for row in law_params if not row.vary}
    grid = _grid(file, specs, fixed, {row.name: row.value for row in law_params}, spec["GRID"] or {}, set(ties))

    symbols = [sympy.Symbol(n) for n in (*param_names, *COVARIATES)]
    value_fn = sympy.lambdify(symbols, expr, modules=_NUMERIC)
    grad_fn = sympy.lambdify(symbols, [expr, *(sympy.diff(expr, sympy.Symbol(n)) for n in param_names)],
                             modules=_NUMERIC, cse=True)

    def log_loss(p: Mapping[str, Array], x: Covariates, with_grad: bool) -> tuple[Array, Gradient | None]:
        """log L̂ = log(EXPRESSION); its gradient is one part: coef 1/L̂, partials dL̂/dp."""
        args = [p[n] for n in param_names] + [x.N, x.D, x.U_D]
        shape = (np.shape(p[param_names[0]])[0], x.N.shape[0])
        with np.errstate(all="ignore"):
            if not with_grad:
                return np.log(np.broadcast_to(np.asarray(value_fn(*args), dtype=float), shape)), None
            value, *partials = grad_fn(*args)
            value = np.broadcast_to(np.asarray(value, dtype=float), shape)
            grads = {n: np.asarray(d, dtype=float) for n, d in zip(param_names, partials, strict=True)}
            return np.log(value), Gradient(((1.0 / value, grads),))

    law = Law(name=spec["NAME"], title=spec["TITLE"], equation=f"user law, {file.name}", params=specs,
              log_loss=log_loss, default_grid=grid, uses_unique_tokens="U_D" in used,  # U_D itself or through Dpp
              doc=spec["DOC"], standard_names=False)
    tied_fns = {t: sympy.lambdify([sympy.Symbol(n) for n in param_names], e, modules=_NUMERIC)
                for t, e in resolved.items()}
    return LoadedLaw(law, MappingProxyType(fixed), MappingProxyType({t: params[t].expr for t in ties}), str(file),
                     spec["EXPRESSION"], MappingProxyType(tied_fns))


def _grid(file: Path, specs: tuple[ParamSpec, ...], fixed: Mapping[str, float], values: Mapping[str, float],
          given: Mapping[str, Any], tied: set[str]) -> dict[str, tuple[float, ...]]:
    """Start values per parameter: GRID where given, else the defaults of the module docstring."""
    by_name = {s.name: s for s in specs}
    for name, starts in given.items():
        if name in tied:
            raise LawfitInputError(f"{file}: GRID names {name!r}, a tied parameter (it is computed, not fitted)")
        if name not in by_name:
            raise LawfitInputError(f"{file}: GRID names {name!r}, which is not a parameter of the law")
        try:
            floats = tuple(float(v) for v in starts)
        except (TypeError, ValueError):
            raise LawfitInputError(f"{file}: GRID[{name!r}] must be a sequence of numbers, got {starts!r}") from None
        problems = [by_name[name].check(v) for v in floats]
        if not floats or any(problems):
            raise LawfitInputError(f"{file}: GRID[{name!r}]: {next((p for p in problems if p), 'no start values')}")
    n_free = len(specs) - len(fixed)
    n_extra = 2 if n_free <= _SPREAD_FULL else 1 if n_free <= _SPREAD_ONE else 0
    grid: dict[str, tuple[float, ...]] = {}
    for s in specs:
        if s.name in given:
            grid[s.name] = tuple(float(v) for v in given[s.name])
            continue
        v = values[s.name]
        if s.name in fixed or n_extra == 0:
            grid[s.name] = (v,)
            continue
        if s.transform == "log":
            extra = [v * math.exp(-3.0), v * math.exp(3.0)]
        elif math.isfinite(s.lower) and math.isfinite(s.upper):
            extra = [s.lower + 0.25 * (s.upper - s.lower), s.lower + 0.75 * (s.upper - s.lower)]
        else:
            extra = [v - max(1.0, abs(v)), v + max(1.0, abs(v))]
        extra = [float(np.clip(e, s.lower, s.upper)) for e in extra[2 - n_extra:]]
        grid[s.name] = tuple(sorted({v, *extra}))
    return grid
