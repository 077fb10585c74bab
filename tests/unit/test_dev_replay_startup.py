"""The calibration's start phase: which token gaps count, and the slowdown it fits."""

from __future__ import annotations

import dataclasses

import pytest

from tierserve.core.profiles import get_profile
from tierserve.dev.replay.startup import StartCycle, StartPhase, fit_start, gaps

CPU = get_profile("smollm2-135m-cpu1")


def test_gaps_are_within_one_stream_and_wholly_inside_the_window() -> None:
    streams = [[1.0, 2.0, 3.0, 4.5], [5.0, 5.5, 7.0]]
    # 4.5 -> 5.0 spans two streams: not a gap; 2.0 -> 3.0 starts before the window
    assert gaps(streams, (2.5, 6.0)) == [1.5, 0.5]
    assert gaps(streams, (0.0, 10.0)) == [1.0, 1.0, 1.5, 0.5, 1.5]
    assert gaps(streams, (7.5, 9.0)) == []


def test_a_cycle_times_its_start_and_splits_the_gaps() -> None:
    tokens = [3.0 + 0.02 * k for k in range(200)]  # one stream, 20 ms alone ...
    tokens += [tokens[-1] + 0.03 * k for k in range(1, 101)]  # ... then 30 ms
    cycle = StartCycle.of([tokens], (3.0, tokens[199]), (tokens[199], tokens[-1]))
    assert cycle.start_s == pytest.approx(3.0)
    assert len(cycle.alone) == 199 and len(cycle.during) == 100
    assert fit_start([cycle], CPU).itl_ratio == pytest.approx(1.5)


def _cycle(alone_ms: float, during_ms: float, start_s: float = 4.0) -> StartCycle:
    return StartCycle(start_s, (alone_ms / 1000,) * 30, (during_ms / 1000,) * 10)


def test_fit_is_the_pooled_gap_ratio_less_one() -> None:
    fit = fit_start([_cycle(20, 30, 4.0), _cycle(20, 26, 5.0), _cycle(20, 28, 4.5)], CPU)
    assert fit.itl_ratio == pytest.approx(28 / 20)
    assert fit.profile.neighbour_starting_slowdown == pytest.approx(0.4)
    assert fit.start_s == 4.5
    assert dataclasses.replace(fit.profile, neighbour_starting_slowdown=None) == CPU
    assert "neighbour_starting_slowdown 0.4" in str(fit)


def test_a_start_faster_than_alone_fits_no_slowdown() -> None:
    fit = fit_start([_cycle(20, 19), _cycle(20, 19)], CPU)
    assert fit.profile.neighbour_starting_slowdown == 0


def test_fit_refuses_too_few_gaps() -> None:
    short = StartCycle(1.0, (0.02,) * 30, (0.02,) * 5)
    with pytest.raises(ValueError, match="got 90 and 15"):
        fit_start([short] * 3, CPU)


def test_phase_refuses_a_settle_as_long_as_the_baseline() -> None:
    with pytest.raises(ValueError, match="settle_s < baseline_s"):
        StartPhase(baseline_s=3.0, settle_s=3.0)
