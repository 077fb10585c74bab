"""Synthetic traces have the shapes they claim: length quantiles, rate swings, seeding."""

from __future__ import annotations

import itertools
import random
from argparse import ArgumentTypeError
from collections import Counter
from collections.abc import Sequence

import pytest

from tierserve.autoscaler.sim.synthetic import SHAPES, Quantiles, synthetic
from tierserve.autoscaler.sim.trace import Trace


def quantile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def per_minute(trace: Trace) -> list[int]:
    counts = Counter(int(r.arrival_s // 60) for r in trace)
    return [counts.get(m, 0) for m in range(60)]


@pytest.fixture(scope="module")
def prefill() -> Trace:
    return synthetic("prefill-heavy", seed=0)


@pytest.mark.parametrize(("q", "stated"), [(0.5, 1500), (0.9, 5200), (0.99, 7400)])
def test_prefill_heavy_prompt_quantiles(prefill: Trace, q: float, stated: float) -> None:
    got = quantile([r.prompt_tokens for r in prefill], q)
    assert got == pytest.approx(stated, rel=0.06)


@pytest.mark.parametrize(("q", "stated"), [(0.5, 13), (0.9, 55)])
def test_prefill_heavy_answer_quantiles(prefill: Trace, q: float, stated: float) -> None:
    got = quantile([r.output_tokens for r in prefill], q)
    assert got == pytest.approx(stated, rel=0.1)


def test_prefill_heavy_rate_swings_by_two_orders_within_minutes(prefill: Trace) -> None:
    minutes = per_minute(prefill)
    assert 110 <= quantile(minutes, 0.5) <= 210  # median about 160 a minute
    assert 500 <= max(minutes) <= 650  # peak about 585 a minute
    assert min(minutes) <= 10  # lulls of a few a minute
    # "within minutes": some 3-minute span moves the rate by at least 10x
    spans = [max(minutes[i : i + 3]) / max(1, min(minutes[i : i + 3])) for i in range(58)]
    assert max(spans) >= 10


def test_long_answers_are_long_and_steady() -> None:
    trace = synthetic("long-answers", seed=0)
    assert quantile([r.output_tokens for r in trace], 0.5) == pytest.approx(600, rel=0.1)
    assert quantile([r.prompt_tokens for r in trace], 0.5) == pytest.approx(200, rel=0.1)
    minutes = per_minute(trace)
    assert max(minutes) / min(minutes) < 1.6  # Poisson noise only


def test_diurnal_swings_from_night_to_noon() -> None:
    trace = synthetic("diurnal", seed=0)
    minutes = per_minute(trace)
    night, noon = sum(minutes[:3]) / 3, sum(minutes[28:32]) / 4
    assert noon / night > 4
    assert quantile([r.output_tokens for r in trace], 0.5) == pytest.approx(130, rel=0.1)


def test_flash_crowd_jumps_within_a_minute() -> None:
    minutes = per_minute(synthetic("flash-crowd", seed=0))
    before, after = sum(minutes[15:20]) / 5, minutes[21]
    assert after / before > 4
    assert minutes[-1] / before < 1.5  # decays back


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_seeded(name: str) -> None:
    a, b = synthetic(name, seed=3, duration_s=300), synthetic(name, seed=3, duration_s=300)
    assert a == b and len(a) > 0
    assert a != synthetic(name, seed=4, duration_s=300)
    assert all(x.arrival_s <= y.arrival_s for x, y in itertools.pairwise(a))


def test_unknown_shape_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown synthetic trace 'spiky'.*prefill-heavy"):
        synthetic("spiky")


def test_quantiles_hold_and_bad_knots_are_refused() -> None:
    dist = Quantiles(((0.0, 1), (0.5, 100), (1.0, 1000)))
    draws = [dist.sample(random.Random(i)) for i in range(4000)]
    assert quantile(draws, 0.5) == pytest.approx(100, rel=0.1)
    assert max(draws) <= 1000
    with pytest.raises(ValueError, match="quantile knots"):
        Quantiles(((0.1, 1), (1.0, 10)))


def test_tune_targets_flag_builds_the_sweeps() -> None:
    from tierserve.autoscaler.sim.compare import target_sweeps
    from tierserve.autoscaler.sim_cli import _targets

    sweeps = target_sweeps(_targets("1,4"))
    assert [k["target"] for k in sweeps["hpa"]] == [1.0, 4.0] * 3
    assert {k["scale_down_delay_s"] for k in sweeps["kpa"]} == {0.0, 120.0, 300.0}
    with pytest.raises(ArgumentTypeError, match="'1,x'"):
        _targets("1,x")
    with pytest.raises(ArgumentTypeError, match="positive"):
        _targets("0,2")
