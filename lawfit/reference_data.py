"""Readers for published scaling-law data sets, as loss-point tables.

- datablations (Muennighoff et al. 2023; Apache-2.0): final validation losses,
  bundled with lawfit (``lawfit/data``).
- the Chinchilla replication points (Besiroglu et al. 2024, read off Hoffmann
  et al. 2022 Fig. 4): bundled with lawfit (``lawfit/data``; the source states no
  licence, see ``lawfit/data/SOURCE.txt``), or read from a path of one's own;
  D = C/(6N) and the five highest losses dropped, as the replication did.
- the OLMo 2 model ladder (Bhagia et al. 2024; Apache-2.0): final losses of
  five sizes × six token budgets and two target models, bundled with lawfit
  (``lawfit/data``); one epoch everywhere (U_D = D), N without embeddings.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import numpy as np

from lawfit.points import LossPoints, read_points

DATABLATIONS_COLUMNS = {"run_id": "name", "N": "params_N", "D": "tokens_D", "U_D": "unique_tokens_U", "loss": "val_loss"}


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("lawfit") / "data" / name))


def datablations_points(subset: str = "fit") -> LossPoints:
    """The datablations runs: ``"fit"`` the 182 runs R_D*, R_N* were fitted on, ``"all"`` all 296."""
    files = {"fit": "datablations_fit_runs_182.csv", "all": "datablations_all_runs_incl_seeds.csv"}
    if subset not in files:
        raise ValueError(f"unknown datablations subset {subset!r}; choose one of {', '.join(files)}")
    return read_points(bundled_path(files[subset]), DATABLATIONS_COLUMNS)


CHINCHILLA_REPLICATION_FILE = "svg_extracted_data.csv"


def chinchilla_replication_points(path: str | Path | None = None, drop_highest: int = 5) -> LossPoints:
    """Hoffmann et al.'s Fig. 4 points as extracted by Besiroglu et al.: N, C → D = C/(6N).

    ``path`` defaults to the bundled copy (``lawfit/data/svg_extracted_data.csv``);
    give one to read another copy of the file (same columns). The replication
    drops the five points with the highest loss before fitting.
    """
    import pandas as pd

    if path is None:
        path = bundled_path(CHINCHILLA_REPLICATION_FILE)
    frame = pd.read_csv(path)
    frame = frame.sort_values("loss", kind="stable").iloc[: len(frame) - drop_highest]
    n = frame["Model Size"].to_numpy(dtype=float)
    d = frame["Training FLOP"].to_numpy(dtype=float) / (6.0 * n)
    return LossPoints.from_arrays(N=n, D=d, loss=frame["loss"].to_numpy(dtype=float), source=str(path))


OLMO_LADDER_FILE = "olmo_ladder_points.csv"
OLMO_LADDER_GROUPS = ("ladder", "target")


def olmo_ladder_points(column: str = "val_ce_c4_en", groups: tuple[str, ...] = OLMO_LADDER_GROUPS) -> LossPoints:
    """The OLMo 2 ladder's final losses: N = n_params (non-embedding), D = tokens, U_D = D, loss = ``column``.

    ``column`` is one of the file's metrics (``val_ce_c4_en``, ``val_ce_pile``, ... in nats/token; see
    ``lawfit/data/SOURCE.txt``). The ladder never repeats data, so every point is one epoch. ``groups``:
    ``"ladder"`` (30 runs: 190M-3B × 0.5-10×Chinchilla, and a 1×C rerun of each size), ``"target"``
    (7B-4T and 13B-5T).
    """

    import pandas as pd

    path = bundled_path(OLMO_LADDER_FILE)
    frame = pd.read_csv(path)
    metrics = [c for c in frame.columns if c.startswith(("val_ce_", "task_bpb_", "task_acc_"))]
    if column not in metrics:
        raise ValueError(f"unknown OLMo ladder column {column!r}; choose one of {', '.join(metrics)}")
    unknown = sorted(set(groups) - set(OLMO_LADDER_GROUPS))
    if unknown or not groups:
        raise ValueError(f"unknown OLMo ladder group(s) {unknown or groups}; choose from {', '.join(OLMO_LADDER_GROUPS)}")
    return olmo_frame_points(frame[frame["group"].isin(groups)], column, f"{path}:{column}")


def olmo_frame_points(frame: object, column: str, source: str) -> LossPoints:
    """OLMo ladder rows (its points or curves file) as loss points: N non-embedding, D = tokens, and
    U_D = D since the ladder never repeats data."""
    tokens = frame["tokens"].to_numpy(dtype=float)  # type: ignore[index]
    points = LossPoints.from_arrays(
        N=frame["n_params"].to_numpy(dtype=float),  # type: ignore[index]
        D=tokens,
        U_D=tokens,
        loss=frame[column].to_numpy(dtype=float),  # type: ignore[index]
        run_id=frame["run"].to_numpy(dtype=str),  # type: ignore[index]
        source=source,
    )
    return dataclasses.replace(points, n_convention="non_embedding")


_CORE_EXAMPLE = {"A": 300.0, "B": 800.0, "E": 0.5, "alpha": 0.34, "beta": 0.30}
# Parameters of plausible shape for each law, to generate synthetic curves with
# (tests, benchmarks): the SMS law's onset falls inside 30 epochs at U_D = 1.6e10.
EXAMPLE_PARAMS: dict[str, dict[str, float]] = {
    "chinchilla": _CORE_EXAMPLE,
    "data_constrained": {**_CORE_EXAMPLE, "R_D_star": 15.0, "R_N_star": 5.0},
    "dprime": {**_CORE_EXAMPLE, "k": 0.9},
    "nd": {**_CORE_EXAMPLE, "k": 0.9, "d": 2e5},
    "sms": {**_CORE_EXAMPLE, "k": 0.9, "d": 2e5, "k_d": 2e-12, "k_n": 0.05, "k_u": 0.05, "k_in": 1.0},
    # smslab's repetition law: the onset a few epochs in (z_1 ≈ −1 at N = 1e8, U_D = 4e9).
    "sms_repetition": {**_CORE_EXAMPLE, "k": 0.9, "d": 2e5, "s": 0.1, "k_r": 1.2, "k_n": 0.3, "k_u": 0.2, "k_in": 2.0},
}


def synthetic_curves(
    law_name: str,
    params: dict[str, float],
    sizes: tuple[float, ...],
    unique_tokens: tuple[float, ...],
    points_per_curve: int,
    max_epochs: float,
    noise: float,
    seed: int,
) -> LossPoints:
    """Loss curves generated by a law with multiplicative log-normal noise: one run per (N, U_D)."""
    from lawfit.laws import get_law

    law = get_law(law_name)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[object]] = {"run_id": [], "N": [], "D": [], "U_D": [], "loss": []}
    for n in sizes:
        for u in unique_tokens:
            d = np.geomspace(0.05 * u, max_epochs * u, points_per_curve)
            loss = law.predict(params, n, d, u) * np.exp(noise * rng.standard_normal(points_per_curve))
            rows["run_id"] += [f"N{n:.3g}-U{u:.3g}"] * points_per_curve
            rows["N"] += [n] * points_per_curve
            rows["D"] += list(d)
            rows["U_D"] += [u] * points_per_curve
            rows["loss"] += list(loss)
    return LossPoints.from_arrays(**rows, source=f"synthetic:{law_name}")  # type: ignore[arg-type]
