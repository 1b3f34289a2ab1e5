"""A batched, box-constrained L-BFGS: many independent minimisations in one pass.

A multi-start scaling-law fit (4,500 starts for the Chinchilla grid) or a
bootstrap (1,000 resamples) is thousands of small, independent problems over
the same data. Running scipy's L-BFGS-B once per start spends nearly all its
time in Python overhead; here every start keeps its own L-BFGS memory, its own
step length and its own stopping state, while the objective and its gradient
are evaluated for all running starts in one vectorised call.

The method is L-BFGS (Nocedal & Wright, Algorithm 7.4, memory m = 10 as in MuPT
Appendix A.5) with the two-loop recursion restricted to the free variables, a
projected backtracking Armijo line search, and the projected gradient as the
stopping test — the projected-quasi-Newton scheme of Bertsekas (1982) in its
simplest form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

Array = np.ndarray
# (theta of shape (S, P), rows: the batch index of each of the S starts) -> (f (S,), grad (S, P))
ValueAndGrad = Callable[[Array, Array], tuple[Array, Array]]


class Status(IntEnum):
    RUNNING = 0
    CONVERGED_GRADIENT = 1  # projected gradient below gtol
    CONVERGED_NO_PROGRESS = 2  # relative decrease below ftol in a step, or below window_rtol over window_iter steps
    LINE_SEARCH_FAILED = 3  # no decrease along a descent direction before the step vanished
    MAX_ITER = 4
    NONFINITE_START = 5  # objective not finite at the starting point
    ABANDONED = 6  # still far above the best start after many iterations: cannot win, not polished

    @property
    def converged(self) -> bool:
        return self in (Status.CONVERGED_GRADIENT, Status.CONVERGED_NO_PROGRESS)


@dataclass(frozen=True)
class LbfgsOptions:
    max_iter: int = 1000
    memory: int = 10
    gtol: float = 1e-9
    ftol: float = 1e-15
    armijo_c1: float = 1e-4
    max_line_search: int = 40
    # A flat valley (parameters that trade off against each other) can lower the
    # objective by 1e-12 per step for thousands of steps: less than window_rtol
    # over window_iter iterations counts as converged.
    window_iter: int = 20
    window_rtol: float = 1e-10
    # Multi-start economy: a start still running after ``abandon_after_iter``
    # iterations whose objective exceeds ``abandon_factor`` × the best objective
    # of any start is stopped (status ABANDONED). None keeps every start to the end.
    abandon_after_iter: int | None = 50
    abandon_factor: float = 2.0


@dataclass(frozen=True)
class BatchResult:
    x: Array  # (S, P) final points
    f: Array  # (S,) final objective values (inf where not finite)
    status: Array  # (S,) Status codes
    iterations: Array  # (S,)

    @property
    def converged(self) -> Array:
        return np.isin(self.status, [Status.CONVERGED_GRADIENT, Status.CONVERGED_NO_PROGRESS])


def projected_gradient(x: Array, g: Array, lower: Array, upper: Array) -> Array:
    """The gradient with components that push against an active bound set to zero."""
    blocked = ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))
    return np.where(blocked, 0.0, g)


def _two_loop(q: Array, hist_s: Array, hist_y: Array, hist_rho: Array) -> Array:
    """H·q for each start by the L-BFGS two-loop recursion; empty slots have rho = 0."""
    m = hist_s.shape[1]
    alphas = np.zeros((q.shape[0], m))
    q = q.copy()
    for i in range(m - 1, -1, -1):
        a = hist_rho[:, i] * np.einsum("sp,sp->s", hist_s[:, i], q)
        alphas[:, i] = a
        q -= a[:, None] * hist_y[:, i]
    s_new, y_new = hist_s[:, -1], hist_y[:, -1]
    yy = np.einsum("sp,sp->s", y_new, y_new)
    sy = np.einsum("sp,sp->s", s_new, y_new)
    gamma = np.where((hist_rho[:, -1] > 0) & (yy > 0), sy / np.where(yy > 0, yy, 1.0), 1.0)
    r = gamma[:, None] * q
    for i in range(m):
        b = hist_rho[:, i] * np.einsum("sp,sp->s", hist_y[:, i], r)
        r += hist_s[:, i] * (alphas[:, i] - b)[:, None]
    return r


def minimize_batched(
    value_and_grad: ValueAndGrad,
    x0: Array,
    lower: Array,
    upper: Array,
    options: LbfgsOptions | None = None,
) -> BatchResult:
    """Minimise S independent problems from the starts ``x0`` (S, P) within [lower, upper]."""
    opts = options or LbfgsOptions()
    x = np.clip(np.array(x0, dtype=float), lower, upper)
    n_starts, n_params = x.shape
    rows_all = np.arange(n_starts)
    with np.errstate(all="ignore"):
        f, g = value_and_grad(x, rows_all)
    f = np.where(np.isfinite(f), f, np.inf)
    status = np.full(n_starts, Status.RUNNING, dtype=int)
    status[~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)] = Status.NONFINITE_START
    if n_params == 0:
        # Nothing free (every parameter held): the objective at the start is the optimum.
        status[status == Status.RUNNING] = Status.CONVERGED_GRADIENT
        return BatchResult(x, f, status, np.zeros(n_starts, dtype=int))
    iterations = np.zeros(n_starts, dtype=int)
    m = opts.memory
    hist_s = np.zeros((n_starts, m, n_params))
    hist_y = np.zeros((n_starts, m, n_params))
    hist_rho = np.zeros((n_starts, m))
    f_window = f.copy()
    it_window = np.zeros(n_starts, dtype=int)

    for _ in range(opts.max_iter):
        act = np.flatnonzero(status == Status.RUNNING)
        if act.size == 0:
            break
        xa, fa, ga = x[act], f[act], g[act]
        pg = projected_gradient(xa, ga, lower, upper)
        done = np.max(np.abs(pg), axis=1) <= opts.gtol
        status[act[done]] = Status.CONVERGED_GRADIENT
        keep = ~done
        act, xa, fa, ga, pg = act[keep], xa[keep], fa[keep], ga[keep], pg[keep]
        if act.size == 0:
            break
        iterations[act] += 1

        free = pg != 0.0
        direction = -_two_loop(np.where(free, ga, 0.0), hist_s[act], hist_y[act], hist_rho[act]) * free
        slope = np.einsum("sp,sp->s", ga, direction)
        not_descent = ~(slope < 0) | ~np.all(np.isfinite(direction), axis=1)
        if np.any(not_descent):
            # Lost curvature information: restart from steepest descent.
            direction[not_descent] = -pg[not_descent]
            hist_rho[act[not_descent]] = 0.0
        fresh = hist_rho[act, -1] == 0.0
        step = np.ones(act.size)
        # Without curvature pairs the direction has the gradient's scale: cap the first step.
        norm_inf = np.max(np.abs(direction), axis=1)
        step[fresh] = np.minimum(1.0, 1.0 / np.maximum(norm_inf[fresh], 1e-300))

        new_x = xa.copy()
        new_f = fa.copy()
        new_g = ga.copy()
        accepted = np.zeros(act.size, dtype=bool)
        pending = np.arange(act.size)
        for _ls in range(opts.max_line_search):
            trial = np.clip(xa[pending] + step[pending, None] * direction[pending], lower, upper)
            with np.errstate(all="ignore"):
                ft, gt = value_and_grad(trial, act[pending])
            decrease_bound = fa[pending] + opts.armijo_c1 * np.einsum("sp,sp->s", ga[pending], trial - xa[pending])
            ok = np.isfinite(ft) & np.all(np.isfinite(gt), axis=1) & (ft <= decrease_bound)
            hit = pending[ok]
            new_x[hit], new_f[hit], new_g[hit] = trial[ok], ft[ok], gt[ok]
            accepted[hit] = True
            pending = pending[~ok]
            if pending.size == 0:
                break
            step[pending] *= 0.5

        failed = ~accepted
        status[act[failed]] = Status.LINE_SEARCH_FAILED
        ok_idx = np.flatnonzero(accepted)
        rows = act[ok_idx]
        s_vec = new_x[ok_idx] - xa[ok_idx]
        y_vec = new_g[ok_idx] - ga[ok_idx]
        sy = np.einsum("sp,sp->s", s_vec, y_vec)
        yy = np.einsum("sp,sp->s", y_vec, y_vec)
        good_pair = sy > 1e-12 * np.maximum(yy, 1e-300)
        upd = rows[good_pair]
        hist_s[upd] = np.roll(hist_s[upd], -1, axis=1)
        hist_y[upd] = np.roll(hist_y[upd], -1, axis=1)
        hist_rho[upd] = np.roll(hist_rho[upd], -1, axis=1)
        hist_s[upd, -1] = s_vec[good_pair]
        hist_y[upd, -1] = y_vec[good_pair]
        hist_rho[upd, -1] = 1.0 / sy[good_pair]

        f_old = fa[ok_idx]
        x[rows], f[rows], g[rows] = new_x[ok_idx], new_f[ok_idx], new_g[ok_idx]
        stalled = (f_old - new_f[ok_idx]) <= opts.ftol * np.maximum(np.abs(f_old), 1e-300)
        status[rows[stalled]] = Status.CONVERGED_NO_PROGRESS
        due = rows[iterations[rows] - it_window[rows] >= opts.window_iter]
        flat = (f_window[due] - f[due]) <= opts.window_rtol * np.abs(f_window[due])
        status[due[flat & (status[due] == Status.RUNNING)]] = Status.CONVERGED_NO_PROGRESS
        f_window[due], it_window[due] = f[due], iterations[due]

        if opts.abandon_after_iter is not None:
            best = np.min(f)
            hopeless = (status == Status.RUNNING) & (iterations >= opts.abandon_after_iter)
            hopeless &= f > opts.abandon_factor * max(best, 0.0) + 1e-300
            status[hopeless] = Status.ABANDONED

    status[status == Status.RUNNING] = Status.MAX_ITER
    return BatchResult(x=x, f=f, status=status, iterations=iterations)
