"""Caches the caller owns: a law comparison shares its full-grid fits, from one thread or many."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import lawfit.laws.base
from lawfit.fit import FitOptions, GridCache, fit_law
from lawfit.laws import get_law
from lawfit.memo import Memo
from lawfit.reference_data import EXAMPLE_PARAMS, synthetic_curves

TRUE = EXAMPLE_PARAMS["sms"]
# One start per Eq. 4 parameter but A: the grid is small, so that SMS fits take about a second.
GRID = {**{k: (TRUE[k],) for k in ("B", "E", "alpha", "beta", "k", "d")}, "A": (100.0, 1000.0)}


@pytest.fixture(scope="module")
def points():
    return synthetic_curves("sms", TRUE, (1e8, 4e8, 1.6e9), (1e9, 1.6e10), 12, 30.0, 0.002, seed=3)


def test_the_sms_fit_takes_its_stage_1_from_the_nd_fit_of_the_same_comparison(points):
    cache = GridCache()
    fit_law(points, "nd", FitOptions(grid=GRID), cache)
    assert len(cache) == 1
    sms = fit_law(points, "sms", FitOptions(grid=GRID), cache)
    assert len(cache) == 1  # SMS's stage 1 is the Eq. 4 fit already made
    assert sms.to_dict() == fit_law(points, "sms", FitOptions(grid=GRID)).to_dict()  # without a cache: the same fit


def test_a_grid_cache_shared_by_threads_gives_the_fits_made_without_one(points):
    options = FitOptions(grid=GRID)
    alone = {law: fit_law(points, law, options) for law in ("nd", "sms")}
    cache = GridCache()
    with ThreadPoolExecutor(4) as pool:
        shared = list(pool.map(lambda law: fit_law(points, law, options, cache), ["sms", "nd", "sms", "nd"]))
    for fit in shared:
        assert fit.to_dict() == alone[fit.law].to_dict()
    assert len(cache) == 1  # one Eq. 4 grid fit served all four


def test_the_fitter_asks_the_law_for_a_guess_and_keeps_fixed_parameters_fixed(points, monkeypatch):
    sms = get_law("sms")
    guess = sms.guess
    assert guess is not None
    asked: list[set[str]] = []

    def spy(base_params, x, loss):  # type: ignore[no-untyped-def]
        asked.append(set(base_params))
        return guess(base_params, x, loss)

    monkeypatch.setitem(lawfit.laws.base._REGISTRY, "sms", dataclasses.replace(sms, guess=spy))
    fit = fit_law(points, "sms", FitOptions(fixed={"k_n": 0.05}, grid=GRID))
    assert len(asked) == 1 and set(get_law("nd").param_names) <= asked[0]  # the base law's fitted parameters
    assert fit.params["k_n"] == 0.05 and fit.fixed == ("k_n",)


def test_a_memo_makes_a_key_once_while_threads_make_other_keys():
    memo: Memo[str, int] = Memo(size=2)
    made: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        made.append("slow")
        started.set()
        assert release.wait(timeout=30)
        return 1

    with ThreadPoolExecutor(3) as pool:
        waiting = [pool.submit(memo.get, "slow", slow) for _ in range(3)]
        assert started.wait(timeout=30)
        assert memo.get("fast", lambda: 2) == 2  # not held up by the key being made
        release.set()
        assert [w.result(timeout=30) for w in waiting] == [1, 1, 1]
    assert made == ["slow"]
    memo.get("third", lambda: 3)  # "fast" was made before "slow" and not asked for since: it goes
    assert len(memo) == 2 and memo.get("slow", lambda: -1) == 1 and memo.get("fast", lambda: -1) == -1


def test_a_memo_keeps_nothing_when_making_fails():
    memo: Memo[str, int] = Memo(size=2)

    def fail() -> int:
        raise ArithmeticError("no fit")

    with pytest.raises(ArithmeticError):
        memo.get("key", fail)
    assert len(memo) == 0 and memo.get("key", lambda: 7) == 7
