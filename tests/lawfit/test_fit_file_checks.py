"""A fit file is checked completely before a plan trusts it: law, parameter names, values, units, draws."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lawfit.bootstrap import Bootstrap
from lawfit.errors import LawfitInputError
from lawfit.presets import preset_fit
from lawfit.result import FitResult


def good_fit() -> dict[str, object]:
    fit = preset_fit("hoffmann")
    draws = tuple(dict(fit.params, A=fit.params["A"] * (1 + i / 100)) for i in range(5))
    intervals = {k: (min(d[k] for d in draws), max(d[k] for d in draws)) for k in fit.params}
    return fit.with_bootstrap(Bootstrap(draws, 0.9, 0, 5, intervals)).to_dict()


def edited(edit) -> dict[str, object]:  # type: ignore[no-untyped-def]
    data = good_fit()
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(law="kaplan"), "law: unknown law 'kaplan'"),
        (lambda d: d["params"].pop("beta"), "params: not the parameters of law 'chinchilla' (missing beta)"),
        (lambda d: d.update(law="dprime"), "params: not the parameters of law 'dprime' (missing k)"),
        (lambda d: d["params"].update(k=0.9), "params: not the parameters of law 'chinchilla' (unknown k)"),
        (lambda d: d["params"].update(alpha=None), "params.alpha: alpha must be finite"),
        (lambda d: d["params"].update(A=-5.0), "params.A: A=-5.0 must be positive"),
        (lambda d: d["params"].update(alpha=7.0), "params.alpha: alpha=7.0 is outside its bounds"),
        (lambda d: d["params"].update(E=float("inf")), "params.E: E must be finite"),
        (lambda d: d["units"].update(A="loss"), "units.A: 'loss', but law 'chinchilla' measures A in"),
        (lambda d: d["bootstrap"]["draws"][2].update(beta=None), "bootstrap.draws[2].beta: beta must be finite"),
        (lambda d: d["bootstrap"]["intervals"].update(beta=[0.3, None]), "bootstrap.intervals.beta"),
        (lambda d: d.update(fixed=["gamma"]), "fixed: law 'chinchilla' has no parameter 'gamma'"),
        (lambda d: d.update(format="smslab.fit/0"), "not a smslab fit file"),
    ],
)
def test_a_fit_file_that_does_not_hold_a_law_is_refused_naming_the_field(edit, message, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(edited(edit)))
    with pytest.raises(LawfitInputError) as info:
        FitResult.read(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_good_fit_file_reads_back_equal(tmp_path: Path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(good_fit()))
    assert FitResult.read(path).to_dict() == good_fit()


def test_plan_on_a_fit_whose_parameter_overflows_exits_2_and_names_it(tmp_path: Path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(good_fit()).replace('"B": 410.7', '"B": 1e400'))  # JSON reads it as inf
    proc = subprocess.run([sys.executable, "-m", "smslab", "plan", "--fit", str(path), "--flops", "1e21"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "params.B: B must be finite" in proc.stderr and "Traceback" not in proc.stderr


def test_plan_takes_the_budget_as_n_times_d_as_mupt_states_it():
    proc = subprocess.run([sys.executable, "-m", "smslab", "plan", "--preset", "hoffmann", "--nd", "2e20",
                           "--unique-tokens", "3.36e10", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["n_opt"] * plan["d_opt"] == pytest.approx(2e20, rel=1e-9) and plan["flops"] == pytest.approx(1.2e21)
    text = subprocess.run([sys.executable, "-m", "smslab", "plan", "--preset", "hoffmann", "--nd", "2e20"],
                          capture_output=True, text=True, timeout=120).stdout
    assert "C = 1.2e+21 FLOPs (C = 6·N·D: N·D = 2e+20)" in text  # the convention is named
