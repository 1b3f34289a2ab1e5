"""``smslab campaign simulate``: the campaign loop played in-process against a known law.

A small spec with no built corpus (``--unique-tokens``), a Chinchilla truth the campaign's law can represent, and
one seed: seconds per campaign. The command line's errors are checked as a user meets them, in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lawfit.planning import chinchilla_closed_form
from lawfit.result import FitResult

SPEC = """
[campaign]
name = "simulated"
corpus = "no-such-corpus"

[grid]
presets = ["tiny-0.1m", "tiny-0.3m", "tiny-1m"]
fractions = [0.25, 0.5]
epochs = [1, 2, 4]

[train]
context = 32
batch_tokens = 512
micro_batch = 16

[plan]
target_flops = 1e12
tolerance = {tolerance}
budget_flops = 1e13
max_rounds = 1
runs_per_round = 2
bootstrap = 10
laws = ["chinchilla"]
presets = ["tiny-0.1m", "tiny-0.3m", "tiny-1m", "tiny-3m"]
"""
# N* = (A/B)^(1/(alpha+beta)) (C/6)^(1/2) = 4.1e5 at C = 1e12: between the grid's presets.
TRUTH = {"A": 40.0, "B": 40.0, "E": 1.0, "alpha": 0.3, "beta": 0.3}


def smslab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smslab", *args], check=False, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture()
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "simulated.toml"
    path.write_text(SPEC.format(tolerance=1.0001))
    return path


@pytest.fixture()
def truth(tmp_path: Path) -> Path:
    path = tmp_path / "truth.json"
    FitResult.from_dict({"format": "smslab.fit/1", "law": "chinchilla", "params": TRUTH, "objective": 0.0,
                         "n_points": 1, "metrics": {"train": None}, "procedure": "preset"}).write(path)
    return path


def test_with_exact_losses_every_strategy_finds_the_truths_n_star_from_the_grid(spec: Path, truth: Path,
                                                                              tmp_path: Path):
    out = tmp_path / "simulation.json"
    result = smslab("campaign", "simulate", str(spec), "--truth", str(truth), "--noise", "0", "--seeds", "1",
                    "--unique-tokens", "200000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    expected = chinchilla_closed_form(TRUTH, 1e12)
    assert expected is not None
    assert data["truth_n_opt"] == pytest.approx(expected["n_opt"], rel=0.01)  # lawfit.planning on the truth law
    assert [s["strategy"] for s in data["strategies"]] == ["proposals", "denser grid", "random runs"]
    for campaign in data["campaigns"]:
        # Exact losses: the grid alone pins N* down, its interval collapses and the stop rule stops at round 0.
        assert [r["runs"] for r in campaign["rounds"]] == [18]
        assert campaign["stop"].startswith("N*'s interval is within the tolerance")
        assert campaign["abs_log_error"] < 1e-3 and campaign["covered"] in (True, False)
    for summary in data["strategies"]:
        assert summary["reached"] == 1 and summary["median_rounds_to_tolerance"] == 0
        assert summary["median_abs_log_error"] < 1e-3 and summary["coverage"] in (0.0, 1.0)
    # The table is what stdout says, with its coverage and error columns; progress went to stderr.
    assert "(a) smslab proposals" in result.stdout and "coverage" in result.stdout and "|log err|" in result.stdout
    assert "seed 0: grid (18 runs)" in result.stderr and "Traceback" not in result.stderr


def test_with_little_noise_the_loop_proposes_and_the_baselines_spend_no_more(spec: Path, truth: Path):
    spec.write_text(SPEC.format(tolerance=1.0001).replace("budget_flops = 1e13", "budget_flops = 2e13"))
    args = ["campaign", "simulate", str(spec), "--truth", str(truth), "--noise", "0.001", "--seeds", "1",
            "--unique-tokens", "0.25=50000,0.5=100000", "--bootstrap", "10", "--json"]
    first, again = smslab(*args), smslab(*args)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["bootstrap"] == 10 and data["noise"] == 0.001
    ours = next(c for c in data["campaigns"] if c["strategy"] == "proposals")
    assert len(ours["rounds"]) == 2 and len(ours["added"]) == 1 and ours["stop"] == "max_rounds (1) reached"
    assert ours["rounds"][1]["runs"] == 20  # runs_per_round = 2 proposals
    assert "predicted optimum" in ours["added"][0]
    for campaign in data["campaigns"]:
        assert campaign["rounds"][0] == ours["rounds"][0]  # the same grid and the same round-0 fit
        assert campaign["abs_log_error"] < 0.05  # N* within 5 % of the truth's at the end
        for mine, theirs in zip(ours["rounds"], campaign["rounds"], strict=False):
            assert theirs["spent_flops"] <= mine["spent_flops"] * (1 + 1e-9)  # (b), (c): no more than (a) spent
    assert json.loads(again.stdout)["campaigns"] == data["campaigns"]  # a seed is a seed


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing truth", "no such fit file"),
        ("bad truth", "not a JSON fit file"),
        ("missing spec", "no such spec file"),
        ("no plan", "a campaign needs a [plan] table"),
        ("no corpus", "is not built (no manifest.json)"),
        ("bad unique tokens", "--unique-tokens gives no token count for data fraction 0.5"),
    ],
)
def test_bad_inputs_are_one_line_errors_naming_the_file(case: str, message: str, spec: Path, truth: Path,
                                                         tmp_path: Path):
    named = {"missing truth": tmp_path / "absent.json", "bad truth": tmp_path / "bad.json",
             "missing spec": tmp_path / "absent.toml", "no plan": tmp_path / "no-plan.toml"}
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "no-plan.toml").write_text(SPEC.split("[plan]")[0])
    spec_arg = named[case] if case in ("missing spec", "no plan") else spec
    truth_arg = named[case] if case in ("missing truth", "bad truth") else truth
    tokens = {"no corpus": [], "bad unique tokens": ["--unique-tokens", "0.25=50000"]}.get(case, ["--unique-tokens",
                                                                                                  "200000"])
    result = smslab("campaign", "simulate", str(spec_arg), "--truth", str(truth_arg), "--noise", "0.01", *tokens)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and message in result.stderr
    assert str(named.get(case, spec)) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_built_corpus_gives_the_fractions_and_a_truth_beyond_ln_v_is_called_out(small_corpus: Path, truth: Path,
                                                                                  tmp_path: Path):
    spec = tmp_path / "on-corpus.toml"
    spec.write_text(SPEC.format(tolerance=50.0).replace('corpus = "no-such-corpus"', f'corpus = "{small_corpus}"'))
    loud = tmp_path / "loud.json"
    loud.write_text(truth.read_text().replace('"E": 1.0', '"E": 10.0'))  # 10 nats: above ln 300 = 5.7
    result = smslab("campaign", "simulate", str(spec), "--truth", str(loud), "--noise", "0.01", "--seeds", "1",
                    "--bootstrap", "5")
    assert result.returncode == 0, result.stderr
    assert "warning: the truth predicts losses above ln V = 5.7 nats" in result.stdout
    assert "U_D [" in result.stdout and "--rescale" in result.stdout
