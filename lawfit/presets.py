"""Published fits, so that planning works with no fit of one's own."""

from __future__ import annotations

import math

from lawfit.errors import LawfitInputError
from lawfit.laws.base import get_law
from lawfit.names import N_UNSTATED
from lawfit.result import FitResult

# Hoffmann et al. (2022), approach 3, as published.
HOFFMANN = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
# Muennighoff et al. (2023), "Scaling Data-Constrained Language Models", their fitted
# data-constrained law (github.com/huggingface/datablations, parametric fit).
DATABLATIONS = {
    "A": math.exp(6.255414),
    "B": math.exp(7.3049974),
    "E": math.exp(0.6254804),
    "alpha": 0.3526596,
    "beta": 0.3526596,
    "R_D_star": 15.387756,
    "R_N_star": 5.309743,
}

PRESETS: dict[str, tuple[str, dict[str, float], str]] = {
    "hoffmann": ("chinchilla", HOFFMANN, "Hoffmann et al. 2022, approach 3"),
    "datablations": ("data_constrained", DATABLATIONS, "Muennighoff et al. 2023, data-constrained law"),
}


def preset_fit(name: str) -> FitResult:
    """A published fit as a FitResult (no data, no metrics) that ``plan`` can use."""
    if name not in PRESETS:
        raise LawfitInputError(f"unknown preset {name!r}; presets are {', '.join(sorted(PRESETS))}")
    from lawfit.fit import fitted_ranges
    from lawfit.reference_data import chinchilla_replication_points, datablations_points

    law_name, params, citation = PRESETS[name]
    law = get_law(law_name)
    # Where each published law was measured, from the bundled copies of its data: plans beyond it are flagged.
    measured = chinchilla_replication_points() if name == "hoffmann" else datablations_points("all")
    return FitResult(
        law=law_name,
        params=dict(params),
        units={p.name: p.unit for p in law.params},
        fixed=law.param_names,
        objective=float("nan"),
        n_points=0,
        n_runs=0,
        points_hash="",
        delta=1e-3,
        train_max_n=None,
        metrics={"train": None, "test": None},
        starts=None,
        procedure="preset",
        source=f"preset:{name} ({citation})",
        # Hoffmann et al. count the embeddings in N (Pearce & Song 2024 trace the Kaplan–Chinchilla gap to
        # this); the datablations release does not say which count its N is.
        n_convention="with_embeddings" if name == "hoffmann" else N_UNSTATED,
        fitted_ranges=fitted_ranges(measured),
    )
