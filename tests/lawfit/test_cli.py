"""``smslab fit`` and ``smslab plan`` as a user runs them: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lawfit.reference_data import bundled_path, synthetic_curves

CORE = {"A": 300.0, "B": 800.0, "E": 0.5, "alpha": 0.34, "beta": 0.30}
DATABLATIONS_COLUMNS = "run_id=name,N=params_N,D=tokens_D,U_D=unique_tokens_U,loss=val_loss"


def smslab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "smslab", *args], capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"smslab {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def assert_input_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


@pytest.fixture()
def curves_csv(tmp_path: Path) -> Path:
    points = synthetic_curves("chinchilla", CORE, (1e8, 2e8, 4e8, 8e8, 1.6e9), (1e10,), 12, 1.0, 0.005, seed=2)
    frame = pd.DataFrame({"run": points.run_id, "params": points.N, "tokens": points.D, "U_D": points.U_D, "loss": points.loss})
    path = tmp_path / "curves.csv"
    frame.to_csv(path, index=False)
    return path


def test_plan_with_the_hoffmann_preset_answers_in_json():
    out = json.loads(smslab("plan", "--preset", "hoffmann", "--flops", "5.88e23", "--json").stdout)
    assert set(out) >= {"n_opt", "d_opt", "epochs", "loss", "interval"}
    assert 3e10 < out["n_opt"] < 3.5e10 and out["epochs"] is None and out["interval"] is None
    assert out["closed_form"]["n_opt"] == pytest.approx(out["n_opt"], rel=1e-6)
    text = smslab("plan", "--preset", "hoffmann", "--flops", "5.88e23").stdout
    assert "N*" in text and "closed form" in text


def test_fit_json_has_the_documented_shape_and_plan_reads_the_fit_file(curves_csv: Path, tmp_path: Path):
    fit_file = tmp_path / "fit.json"
    proc = smslab(
        "fit", str(curves_csv), "--law", "chinchilla", "--columns", "run_id=run,N=params,D=tokens",
        "--train-max-n", "5e8", "--bootstrap", "20", "--out", str(fit_file), "--json",
    )
    out = json.loads(proc.stdout)
    assert out["law"] == "chinchilla" and set(out["params"]) == {"A", "B", "E", "alpha", "beta"}
    assert out["n_points"] == 3 * 12
    assert out["objective"] == pytest.approx(out["metrics"]["train"]["huber"], rel=1e-9)
    assert set(out["metrics"]["test"]) >= {"r2", "huber"}
    assert out["starts"]["total"] == 4500 and 0 < out["starts"]["converged"] <= 4500
    assert json.loads(fit_file.read_text())["params"] == out["params"]
    plan = json.loads(smslab("plan", "--fit", str(fit_file), "--flops", "1e20", "--unique-tokens", "1e9", "--json").stdout)
    assert plan["interval"] is not None and set(plan["interval"]) == {"n_opt", "d_opt", "epochs", "loss"}
    assert plan["epochs"] == pytest.approx(plan["d_opt"] / 1e9)


def test_fix_every_parameter_only_scores(curves_csv: Path):
    fix = ",".join(f"{k}={v}" for k, v in CORE.items())
    out = json.loads(smslab("fit", str(curves_csv), "--law", "chinchilla", "--columns", "N=params,D=tokens", "--fix", fix, "--json").stdout)
    assert out["procedure"] == "scored" and out["starts"] is None
    assert out["params"] == pytest.approx(CORE)
    assert out["metrics"]["train"]["r2"] > 0.99


@pytest.mark.slow
def test_compare_reports_the_papers_staged_fits_beside_the_joint_ones(tmp_path: Path):
    proc = smslab("fit", str(bundled_path("datablations_fit_runs_182.csv")), "--compare", "--columns", DATABLATIONS_COLUMNS,
                  "--n-convention", "non_embedding", "--out", str(tmp_path / "fits"), "--json")
    out = json.loads(proc.stdout)
    rows = {(r["law"], r["procedure"]): r for r in out["laws"]}
    assert {("sms", "staged"), ("sms", "joint"), ("data_constrained", "staged"), ("data_constrained", "joint"),
            ("chinchilla", "joint"), ("dprime", "joint"), ("nd", "joint")} <= set(rows)
    # SMS staged is MuPT A.3.2: Eq. 4's fit held, only the overfitting term fitted on top of it.
    nd, sms_staged = rows[("nd", "joint")]["params"], rows[("sms", "staged")]["params"]
    for name in ("A", "B", "E", "alpha", "beta", "k", "d"):
        assert sms_staged[name] == pytest.approx(nd[name], rel=1e-9)
    # The joint fit starts from the staged optimum too, so on train it can only be lower.
    for law in ("sms", "data_constrained"):
        assert rows[(law, "joint")]["objective"] <= rows[(law, "staged")]["objective"] * (1 + 1e-9)
        assert rows[(law, "staged")]["leave_one_size_out"]["huber_mean"] > 0
    # The planning law is the lowest mean leave-one-size-out Huber over every row, procedure included.
    best = min(out["laws"], key=lambda r: r["leave_one_size_out"]["huber_mean"])
    assert out["planning_law"] == {"law": best["law"], "procedure": best["procedure"]}
    assert out["n_convention"] == "non_embedding" and rows[("sms", "joint")]["n_convention"] == "non_embedding"
    # 17 held-out points: the held-out scores are flagged as weak evidence.
    assert rows[("sms", "staged")]["metrics"]["test"]["weak_evidence"] is True
    assert rows[("sms", "staged")]["metrics"]["train"]["weak_evidence"] is False
    for name in ("sms.staged.json", "sms.joint.json", "data_constrained.staged.json", "chinchilla.json"):
        assert (tmp_path / "fits" / name).is_file()
    table = smslab("fit", str(bundled_path("datablations_fit_runs_182.csv")), "--law", "chinchilla", "--columns",
                   DATABLATIONS_COLUMNS, "--leave-one-size-out").stdout
    assert "Huber mean" in table


def test_missing_column_names_the_file_and_the_columns(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("N,tokens,loss\n1e8,1e9,3.0\n")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", check=False), str(path), "missing column(s) D", "--columns")


def test_non_numeric_cell_names_file_row_and_column(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("N,D,loss\n1e8,1e9,3.0\n2e8,lots,2.9\n")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", check=False), str(path), "row 2 (line 3)", "'D'", "'lots'")


@pytest.mark.parametrize(
    ("cell", "message"), [("nan", "not a finite number"), ("inf", "not a finite number"), ("-3", "must be positive"), ("0", "must be positive")]
)
def test_nan_inf_and_non_positive_values_are_rejected(tmp_path: Path, cell: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(f"N,D,loss\n1e8,1e9,3.0\n2e8,2e9,{cell}\n")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", check=False), "row 2", "'loss'", message)


def test_fewer_points_than_free_parameters(tmp_path: Path):
    path = tmp_path / "few.csv"
    path.write_text("N,D,loss\n1e8,1e9,3.0\n2e8,2e9,2.9\n")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", check=False), "2 training point(s) for 5 free parameter(s)")


def test_empty_held_out_split(curves_csv: Path):
    proc = smslab("fit", str(curves_csv), "--law", "chinchilla", "--columns", "N=params,D=tokens", "--train-max-n", "1e12", check=False)
    assert_input_error(proc, "held-out split is empty")


def test_law_needing_unique_tokens_without_them(tmp_path: Path):
    path = tmp_path / "nou.csv"
    path.write_text("N,D,loss\n" + "\n".join(f"{n},{d},{3 - i * 0.01}" for i, (n, d) in enumerate(zip(np.geomspace(1e7, 1e9, 12), np.geomspace(1e8, 1e10, 12)))))
    assert_input_error(smslab("fit", str(path), "--law", "sms", check=False), "needs the unique-token column U_D")


@pytest.mark.parametrize(
    ("fix", "message"),
    [("alpha", "NAME=VALUE"), ("alpha=abc", "not a number"), ("gamma=1", "no parameter 'gamma'"), ("alpha=-1", "outside its bounds")],
)
def test_malformed_fix(curves_csv: Path, fix: str, message: str):
    proc = smslab("fit", str(curves_csv), "--law", "chinchilla", "--columns", "N=params,D=tokens", "--fix", fix, check=False)
    assert_input_error(proc, "--fix", message)


def test_unknown_law_and_preset_are_usage_errors(curves_csv: Path):
    proc = smslab("fit", str(curves_csv), "--law", "kaplan", check=False)
    assert proc.returncode == 2 and "invalid choice: 'kaplan'" in proc.stderr and "Traceback" not in proc.stderr
    proc = smslab("plan", "--preset", "gpt5", "--flops", "1e20", check=False)
    assert proc.returncode == 2 and "invalid choice: 'gpt5'" in proc.stderr


def test_missing_file_bad_column_map_and_bad_fit_file(tmp_path: Path):
    assert_input_error(smslab("fit", str(tmp_path / "nope.csv"), "--law", "chinchilla", check=False), "nope.csv: no such file")
    path = tmp_path / "ok.csv"
    path.write_text("N,D,loss\n1e8,1e9,3.0\n")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", "--columns", "X=foo", check=False), "unknown name 'X'")
    assert_input_error(smslab("fit", str(path), "--law", "chinchilla", "--columns", "N=size", check=False), "column 'size' (given for N) is missing")
    bad_fit = tmp_path / "fit.json"
    bad_fit.write_text("{not json")
    assert_input_error(smslab("plan", "--fit", str(bad_fit), "--flops", "1e20", check=False), "not a JSON fit file")
    bad_fit.write_text('{"format": "other"}')
    assert_input_error(smslab("plan", "--fit", str(bad_fit), "--flops", "1e20", check=False), "not a smslab fit file")


def test_plan_rejects_bad_budgets():
    assert_input_error(smslab("plan", "--preset", "hoffmann", "--flops", "-1", check=False), "--flops must be a positive number")
    assert_input_error(smslab("plan", "--preset", "hoffmann", check=False), "needs --flops")
    assert_input_error(smslab("plan", "--preset", "hoffmann", "--n-params", "1e9", check=False), "needs --unique-tokens")


def test_parquet_input_is_read(tmp_path: Path, curves_csv: Path):
    frame = pd.read_csv(curves_csv).rename(columns={"params": "N", "tokens": "D", "run": "run_id"})
    path = tmp_path / "curves.parquet"
    frame.to_parquet(path)
    fix = ",".join(f"{k}={v}" for k, v in CORE.items())
    out = json.loads(smslab("fit", str(path), "--law", "chinchilla", "--fix", fix, "--json").stdout)
    assert out["n_points"] == len(frame) and out["n_runs"] == 5
