"""Honest extrapolation: what a plan says about where the fitted law was never measured.

A law fitted on N in [N_lo, N_hi] and D in [D_lo, D_hi] says little beyond them,
and the MuPT laws can say wrong things there: Eq. 6's overfitting term grows with
raw D, so with fresh data (U_D = D) the SMS law predicts a loss that rises with
tokens (at N = 1e9, 2.57 at 1e12 fresh tokens and 5.91 at 1e13 on the
datablations fit) and a compute-optimal loss that rises with compute. A plan
carries these as warnings (``smslab plan`` prints them on stderr and in its JSON
``warnings``); it is not refused, since extrapolating is what a plan is for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from lawfit.laws.base import get_law
from lawfit.result import FitResult

# A plan beyond this factor outside the fitted range of N, D or epochs is flagged.
EXTRAPOLATION_FACTOR = 3.0
# The compute frontier is checked over budgets down to C / FRONTIER_SPAN_DECADES decades below the plan's.
FRONTIER_SPAN_DECADES = 2.0
FRONTIER_POINTS = 9


def range_warnings(fit: FitResult, values: Mapping[str, float | None]) -> list[str]:
    """One warning per quantity (N, D, epochs) that lies more than EXTRAPOLATION_FACTOR outside the fitted range."""
    if not fit.fitted_ranges:
        return [f"the {fit.law} fit records no fitted ranges (a preset or an older fit file): nothing says whether "
                "this plan extrapolates"]
    words = {"N": "N", "D": "D", "epochs": "epochs"}
    out = []
    for key, value in values.items():
        if value is None or key not in fit.fitted_ranges:
            continue
        lo, hi = fit.fitted_ranges[key]
        if value > hi * EXTRAPOLATION_FACTOR or value < lo / EXTRAPOLATION_FACTOR:
            side = f"{value / hi:.3g}× the largest" if value > hi else f"1/{lo / value:.3g} of the smallest"
            out.append(f"{words[key]} = {value:.4g} is {side} fitted {words[key]} (fitted range {lo:.4g} – {hi:.4g}): "
                       "the law was never measured there")
    return out


def unique_tokens_warning(fit: FitResult, unique_tokens: float | None) -> list[str]:
    """The law's own warning when planned without a unique-token budget (SMS: Eq. 6 penalises raw D)."""
    message = get_law(fit.law).plan_without_unique_tokens
    return [message] if unique_tokens is None and message else []


def frontier_warning(loss_at_budget: Callable[[float], float], flops: float) -> list[str]:
    """Whether the compute-optimal loss rises with compute over the two decades of budget up to ``flops``.

    A law's frontier should fall as compute grows; one that rises says the law is outside what it can represent.
    """
    budgets = np.geomspace(flops / 10**FRONTIER_SPAN_DECADES, flops, FRONTIER_POINTS)
    losses = [loss_at_budget(float(c)) for c in budgets]
    for (c_lo, l_lo), (c_hi, l_hi) in zip(zip(budgets, losses), zip(budgets[1:], losses[1:]), strict=False):
        if math.isfinite(l_lo) and math.isfinite(l_hi) and l_hi > l_lo * (1 + 1e-9):
            return [f"non-monotone compute frontier: the compute-optimal loss rises from {l_lo:.4g} at C = {c_lo:.3g} "
                    f"to {l_hi:.4g} at C = {c_hi:.3g}; more compute predicts a worse model, so this law does not "
                    "describe this budget"]
    return []
